"""Exact and near duplicates of an embedding space (`pgsearch duplicates`), grouped, one item of
each group kept.

    exact pairs: the same file content (assets.content_hash; for shapes, the same box on the same
                 file content: an identical crop, e.g. an annotation drawn twice)
    near pairs:  the neighbour graph's edges under the threshold (cosine distance)
      -> connected components of both (scipy.sparse.csgraph), over the items that have a pair only
      -> a representative per component (--keep; default `largest`: the most pixels, then the
         biggest file, then the lowest id: the best copy of a resized or re-encoded one)
      -> the chaining guard: every member must be within the threshold of its representative
         (distance computed by PostgreSQL on the stored vectors); the others (chained to it
         through other members) are grouped again among themselves as stars of the graph's edges
         under the threshold: a node better ranked by --keep than all its neighbours represents
         those of them that have no better ranked representative next to them, round after round
      -> stored with results.write_results("duplicates", ...): item_id, duplicate_group (the
         representative's id), representative, kind ('exact': the same content as the
         representative, else 'near'), distance (to the representative)

Near pairs are looked for among each item's k nearest neighbours (the graph's k, 15 by default):
a group larger than k + 1 is still found whole when its members are chained through each other's
lists, as they are in practice.

The chaining guard: near-duplicate edges chain (A~B, B~C, ... each under the threshold while A
and Z are not alike at all); a connected component alone could grow across a whole cluster of
similar images at a loose threshold. Requiring every member to be within the threshold of the
kept item keeps the promise that removing the others loses nothing farther than the threshold
from what is kept. Measured on the digits (bench/tasks_dupes_outliers.py, pixels model): at the
default threshold (0.002) every component is a planted pair and the guard does nothing; at 0.02
(10x) the largest component holds 54 digits, the largest guarded group 9; at 0.05 one component
holds 1,328 of the 1,837 digits (72%), the guarded groups at most 38, in 5 rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgsearch.curate import graph as graphs
from pgsearch.curate.spaces import CurationError
from pgsearch.loader.spaces import Space

# Default threshold (cosine distance) per model family; see threshold_for() and README.
# pixels: measured (bench/tasks_dupes_outliers.py): +-1 grey level copies of the digits are at
#   most 0.0011 from their original, JPEG q=70 and 50% resized copies of photos at most ~0.001,
#   while the closest distinct digits (two different hand-written 1s) are 0.0030 apart and
#   distinct photos 0.05 or more. 5% crops (0.002-0.16) and +10% brightness (0-0.5) are not
#   caught at this threshold: pixels sees colour layout, and a shift moves it.
# openclip, timm (DINOv2): not measured here (no weights in this environment); a usual starting
#   point for copies with learned embeddings (cosine similarity 0.95).
# random: random-init weights; their distances have no meaning (tests only).
THRESHOLDS: dict[str, float] = {
    "pixels": 0.002,
    "openclip": 0.05,
    "timm": 0.05,
    "random": 0.002,
}
# A model of no known family (vectors brought with --embeddings, benchmark spaces).
FALLBACK_THRESHOLD = 0.05
MAX_THRESHOLD = 1.0

KEEP_CHOICES = ("largest", "first", "smallest", "newest", "oldest")
DEFAULT_KEEP = "largest"
# Rounds of the chaining guard (members too far from their representative, grouped again).
MAX_ROUNDS = 100


def model_family(model: str) -> str | None:
    """'pixels', 'openclip', 'timm', 'random' (a ...:random spec), or None."""
    if model == "pixels":
        return "pixels"
    if model.endswith(":random"):
        return "random"
    family = model.split(":", 1)[0]
    return family if family in ("openclip", "timm") else None


def threshold_for(model: str) -> tuple[float, str | None]:
    """The default threshold for `model` and its family (None: no family, the fallback)."""
    family = model_family(model)
    if family is None:
        return FALLBACK_THRESHOLD, None
    return THRESHOLDS[family], family


def check_threshold(value: float) -> float:
    if not (math.isfinite(value) and 0 < value <= MAX_THRESHOLD):
        raise CurationError(
            f"--threshold is a cosine distance above 0 and at most {MAX_THRESHOLD:g} "
            f"(0: identical, 1: unrelated), not {value:g}"
        )
    return float(value)


def check_keep(value: str) -> str:
    if value not in KEEP_CHOICES:
        raise CurationError(f"--keep must be one of {', '.join(KEEP_CHOICES)}, not {value!r}")
    return value


@dataclass
class DuplicateGroups:
    """Members of the duplicate groups of a space, in display order: biggest groups first, then
    by group id; within a group the representative first, then by distance and id."""

    item_ids: np.ndarray  # int64 (m,)
    group: np.ndarray  # int64 (m,): the representative's id
    representative: np.ndarray  # bool (m,)
    exact: np.ndarray  # bool (m,): the same content as the representative (kind 'exact')
    distance: np.ndarray  # float32 (m,): cosine distance to the representative
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def members(self) -> int:
        return len(self.item_ids)

    @property
    def groups(self) -> int:
        return int(self.representative.sum())

    def group_sizes(self) -> np.ndarray:
        """Per member, the size of its group."""
        if not len(self.group):
            return np.zeros(0, dtype=np.int64)
        _, inverse, counts = np.unique(self.group, return_inverse=True, return_counts=True)
        return counts[inverse]

    def kinds(self) -> np.ndarray:
        """'exact' or 'near' per member; a representative is 'exact' when every other member of
        its group is an exact copy of it."""
        kind = np.where(self.exact, "exact", "near")
        if len(self.group):
            groups, inverse = np.unique(self.group, return_inverse=True)
            all_exact = np.ones(len(groups), dtype=bool)
            others = ~self.representative
            np.logical_and.at(all_exact, inverse[others], self.exact[others])
            kind = np.where(self.representative, np.where(all_exact[inverse], "exact", "near"), kind)
        return kind

    def removable(self) -> np.ndarray:
        """Ids of every member but the kept one of its group."""
        return np.asarray(self.item_ids[~self.representative], dtype=np.int64)

    def ordered(self) -> DuplicateGroups:
        sizes = self.group_sizes()
        order = np.lexsort((self.item_ids, self.distance, ~self.representative, self.group, -sizes))
        return DuplicateGroups(
            self.item_ids[order],
            self.group[order],
            self.representative[order],
            self.exact[order],
            self.distance[order],
            self.stats,
        )

    def rows(self) -> Iterator[tuple[int, int, bool, str, float]]:
        """Rows for write_results("duplicates"): item_id, duplicate_group, representative, kind,
        distance."""
        return zip(
            self.item_ids.tolist(),
            self.group.tolist(),
            self.representative.tolist(),
            self.kinds().tolist(),
            self.distance.astype(np.float64).tolist(),
            strict=True,
        )


def _items_table(space: Space) -> str:
    return "assets" if space.target == "asset" else "shapes"


def _key(space: Space) -> sql.Identifier:
    return sql.Identifier("asset_id" if space.target == "asset" else "shape_id")


def _vectors(space: Space) -> sql.Identifier:
    return sql.Identifier("pgsearch", space.table_name)


# The content an exact duplicate shares: the file's hash; for a shape, the file's hash and its box
# in whole pixels (the same crop of the same pixels).
_SHAPE_CONTENT = (
    "a.content_hash || ':' || s.kind || ':' || coalesce(round(s.bbox_x)::text || ',' || round(s.bbox_y)::text"
    " || ',' || round(s.bbox_width)::text || ',' || round(s.bbox_height)::text, 'whole')"
)


def exact_sets(conn: psycopg.Connection, space: Space) -> list[list[int]]:
    """Ids of the items sharing their content with another item of the dataset, one list per
    content (ascending ids); items without a vector in the space included (filtered later)."""
    statement: sql.Composable
    if space.target == "asset":
        statement = sql.SQL(
            "SELECT array_agg(id ORDER BY id) FROM pgsearch.assets"
            " WHERE dataset_id = %s AND content_hash IS NOT NULL GROUP BY content_hash HAVING count(*) > 1"
        )
    else:
        statement = sql.SQL(
            "SELECT array_agg(s.id ORDER BY s.id) FROM pgsearch.shapes AS s"
            " JOIN pgsearch.assets AS a ON a.id = s.asset_id"
            " WHERE s.dataset_id = %s AND a.content_hash IS NOT NULL"
            " GROUP BY {content} HAVING count(*) > 1"
        ).format(content=sql.SQL(_SHAPE_CONTENT))
    return [list(r[0]) for r in conn.execute(statement, (space.dataset_id,)).fetchall()]


@dataclass
class _Facts:
    """What --keep and kind need of each candidate item (aligned with ids, ascending)."""

    ids: np.ndarray
    content: np.ndarray  # int64 code of the content (-1 - position where unknown: unique)
    pixels: np.ndarray  # float64: width x height (a shape: its box's area)
    size: np.ndarray  # float64: file size in bytes (shapes: 0)
    created: np.ndarray  # float64: epoch seconds the item was added


def _facts(conn: psycopg.Connection, space: Space, ids: np.ndarray) -> _Facts:
    statement: sql.Composable
    if space.target == "asset":
        statement = sql.SQL(
            "SELECT id, content_hash, coalesce(width::float8 * height, 0), coalesce(size, 0)::float8,"
            " extract(epoch FROM created_at)::float8 FROM pgsearch.assets WHERE id = ANY(%s) ORDER BY id"
        )
    else:
        statement = sql.SQL(
            "SELECT s.id, {content}, coalesce(s.bbox_width * s.bbox_height, s.area, 0),"
            " 0::float8, extract(epoch FROM s.created_at)::float8 FROM pgsearch.shapes AS s"
            " JOIN pgsearch.assets AS a ON a.id = s.asset_id WHERE s.id = ANY(%s) ORDER BY s.id"
        ).format(content=sql.SQL(_SHAPE_CONTENT))
    rows = conn.execute(statement, (ids.tolist(),)).fetchall()
    found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    at = np.searchsorted(ids, found)
    n = len(ids)
    content = -1 - np.arange(n, dtype=np.int64)
    pixels = np.zeros(n)
    size = np.zeros(n)
    created = np.zeros(n)
    if rows:
        texts = np.array([r[1] if r[1] is not None else "" for r in rows], dtype=object)
        known = texts != ""
        if known.any():
            _, codes = np.unique(texts[known].astype(str), return_inverse=True)
            content[at[known]] = codes
        pixels[at] = [r[2] for r in rows]
        size[at] = [r[3] for r in rows]
        created[at] = [r[4] for r in rows]
    return _Facts(ids, content, pixels, size, created)


def _priority(facts: _Facts, keep: str) -> tuple[np.ndarray, ...]:
    """np.lexsort keys (least significant first) whose smallest is the item to keep."""
    ids = facts.ids.astype(np.float64)
    if keep == "first":
        return (ids,)
    if keep == "largest":
        return (ids, -facts.size, -facts.pixels)
    if keep == "smallest":
        return (ids, facts.size, facts.pixels)
    if keep == "newest":
        return (-ids, -facts.created)
    return (ids, facts.created)  # oldest


def _components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Connected component labels of n nodes joined by the edges src[i] - dst[i]."""
    try:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
    except ImportError:  # pragma: no cover - scipy comes with the curate extra (scikit-learn)
        raise CurationError(
            "pgsearch duplicates needs scipy: python3 -m pip install 'pgsearch[curate]'"
        ) from None
    matrix = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n)).tocsr()
    _, labels = connected_components(matrix, directed=True, connection="weak")
    return np.asarray(labels, dtype=np.int64)


def _distances(conn: psycopg.Connection, space: Space, members: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """Cosine distance of each members[i] to reps[i] on the stored vectors (inf: no vector)."""
    out = np.full(len(members), np.inf, dtype=np.float32)
    if not len(members):
        return out
    statement = sql.SQL(
        "SELECT u.i, (a.embedding <=> b.embedding)::float8"
        " FROM unnest(%s::bigint[], %s::bigint[]) WITH ORDINALITY AS u(m, r, i)"
        " JOIN {v} AS a ON a.{key} = u.m JOIN {v} AS b ON b.{key} = u.r"
    ).format(v=_vectors(space), key=_key(space))
    rows = conn.execute(statement, (members.tolist(), reps.tolist())).fetchall()
    if rows:
        at = np.fromiter((r[0] - 1 for r in rows), dtype=np.int64, count=len(rows))
        out[at] = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
    return out


def _first_per_label(labels: np.ndarray, keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """Index (into labels) of the best item of each label: the first by keys within it."""
    order = np.lexsort((*keys, labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    best = np.empty(int(labels.max()) + 1 if len(labels) else 0, dtype=np.int64)
    best[sorted_labels[starts]] = order[starts]
    return best


def near_edges(graph: graphs.Graph, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row positions, neighbour row positions, distances) of the graph's edges under the
    threshold."""
    rows, cols = np.nonzero(graph.distances < threshold)
    if not len(rows) or not len(graph.ids):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    neighbours = graph.neighbor_ids[rows, cols]
    at = np.minimum(np.searchsorted(graph.ids, neighbours), len(graph.ids) - 1)
    ok = (graph.ids[at] == neighbours) & (neighbours >= 0)
    return rows[ok].astype(np.int64), at[ok].astype(np.int64), graph.distances[rows[ok], cols[ok]]


def _stars(
    alive: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    rank: np.ndarray,
    content: np.ndarray,
    group_rep: np.ndarray,
    distance: np.ndarray,
    max_rounds: int,
) -> int:
    """Groups the alive nodes (bool mask) as stars of the edges among them, in place: each round
    every node better ranked than all its alive neighbours becomes a representative, and every
    other node next to one (or of the same content as one) joins the best ranked of them, at the
    edge's distance. Nodes left without an alive neighbour are no duplicates. Returns rounds."""
    keep = alive[src] & alive[dst]
    a = np.concatenate([src[keep], dst[keep]])
    b = np.concatenate([dst[keep], src[keep]])
    w = np.concatenate([weight[keep], weight[keep]])
    rounds = 0
    while len(a) and rounds < max_rounds:
        rounds += 1
        best_neighbour = np.full(len(rank), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best_neighbour, a, rank[b])
        has = np.zeros(len(rank), dtype=bool)
        has[a] = True
        is_rep = has & (rank < best_neighbour)
        joins = is_rep[b] & ~is_rep[a]
        ja, jb, jw = a[joins], b[joins], w[joins]
        order = np.lexsort((rank[jb], ja))
        first = order[np.r_[True, ja[order][1:] != ja[order][:-1]]] if len(order) else order
        member, rep, dist = ja[first], jb[first], jw[first]
        # The same content as a representative of this round: an exact copy, wherever it is.
        reps = np.flatnonzero(is_rep)
        by_content = {int(c): int(r) for c, r in zip(content[reps][::-1], reps[::-1], strict=True) if c >= 0}
        if by_content:
            pending = np.flatnonzero(alive & ~is_rep)
            pending = pending[~np.isin(pending, member)]
            codes = content[pending]
            hit = np.isin(codes, np.fromiter(by_content, dtype=np.int64))
            if hit.any():
                member = np.concatenate([member, pending[hit]])
                rep = np.concatenate([rep, [by_content[int(c)] for c in codes[hit]]]).astype(np.int64)
                dist = np.concatenate([dist, np.zeros(int(hit.sum()), dtype=np.float32)])
        group_rep[member] = rep
        distance[member] = dist
        formed = np.unique(rep)
        group_rep[formed] = formed
        distance[formed] = 0
        alive[member] = False
        alive[formed] = False
        keep = alive[a] & alive[b]
        a, b, w = a[keep], b[keep], w[keep]
    return rounds


def find_duplicates(
    conn: psycopg.Connection,
    space: Space,
    graph: graphs.Graph,
    threshold: float,
    keep: str = DEFAULT_KEEP,
    *,
    guard: bool = True,
) -> DuplicateGroups:
    """The duplicate groups of `space` at `threshold` (see the module docstring). guard=False
    skips the chaining guard (for measuring it): groups are then whole connected components."""
    check_threshold(threshold)
    check_keep(keep)
    n = len(graph.ids)
    src, dst, weight = near_edges(graph, threshold)
    near_pairs = len(src)
    # Exact sets: each member joined to the set's first member that has a row in the graph.
    exact_src: list[np.ndarray] = []
    exact_dst: list[np.ndarray] = []
    for members in exact_sets(conn, space):
        ids = np.asarray(members, dtype=np.int64)
        at = np.minimum(np.searchsorted(graph.ids, ids), max(n - 1, 0))
        present = at[(graph.ids[at] == ids)] if n else at[:0]
        if len(present) > 1:
            exact_src.append(present[1:])
            exact_dst.append(np.full(len(present) - 1, present[0]))
    if exact_src:
        src = np.concatenate([src, *exact_src])
        dst = np.concatenate([dst, *exact_dst])
        weight = np.concatenate([weight, np.zeros(len(src) - len(weight), dtype=np.float32)])
    stats: dict[str, Any] = {"near_edges": int(near_pairs), "exact_edges": int(len(src) - near_pairs)}
    if not len(src):
        empty = np.zeros(0, dtype=np.int64)
        stats.update(candidates=0, components=0, largest_component=0, detached=0, rounds=0, dropped=0)
        return DuplicateGroups(
            empty, empty.copy(), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.float32), stats
        )
    nodes = np.unique(np.concatenate([src, dst]))  # graph row positions of the candidates
    local_src = np.searchsorted(nodes, src)
    local_dst = np.searchsorted(nodes, dst)
    m = len(nodes)
    labels = _components(m, local_src, local_dst)
    comp_sizes = np.bincount(labels)
    stats.update(candidates=int(m), components=int(len(comp_sizes)), largest_component=int(comp_sizes.max()))
    facts = _facts(conn, space, graph.ids[nodes])
    keys = _priority(facts, keep)

    group_rep = np.full(m, -1, dtype=np.int64)  # local index of the member's representative
    distance = np.zeros(m, dtype=np.float32)
    # Round 1: one representative per component; its members within the threshold of it (the
    # distance computed on the stored vectors, as they need not be graph neighbours).
    sizes = np.bincount(labels)
    active = np.flatnonzero(sizes[labels] > 1)
    active_labels = labels[active]
    best = _first_per_label(active_labels, tuple(k[active] for k in keys))
    rep = active[best[active_labels]]
    d = np.zeros(len(active), dtype=np.float32)
    same = facts.content[active] == facts.content[rep]
    ask = ~same & (active != rep)
    d[ask] = _distances(conn, space, facts.ids[active[ask]], facts.ids[rep[ask]])
    ok = (d <= threshold) if guard else np.ones(len(active), dtype=bool)
    # A representative whose every other member is too far stays alone: no group.
    rep_ok_count = np.bincount(active_labels, weights=ok, minlength=len(best))
    grouped = ok & (rep_ok_count[active_labels] > 1)
    group_rep[active[grouped]] = rep[grouped]
    distance[active[grouped]] = d[grouped]
    # The members too far from theirs (chained to it through others): stars of the graph's edges
    # among them, each member a neighbour under the threshold of its representative.
    alive = np.zeros(m, dtype=bool)
    alive[active[~ok]] = True
    detached = int(alive.sum())
    rank = np.empty(m, dtype=np.int64)
    rank[np.lexsort(keys)] = np.arange(m)
    rounds = 1 + _stars(
        alive, local_src, local_dst, weight, rank, facts.content, group_rep, distance, MAX_ROUNDS
    )
    stats.update(rounds=rounds, detached=detached, dropped=int((alive & (group_rep < 0)).sum()))
    chosen = np.flatnonzero(group_rep >= 0)
    result = DuplicateGroups(
        facts.ids[chosen],
        facts.ids[group_rep[chosen]],
        group_rep[chosen] == chosen,
        facts.content[chosen] == facts.content[group_rep[chosen]],
        np.where(group_rep[chosen] == chosen, 0.0, distance[chosen]).astype(np.float32),
        stats,
    )
    return result.ordered()


def stored_groups(conn: psycopg.Connection, space: Space) -> DuplicateGroups:
    """The stored results of the latest run (pgsearch.duplicates_<space>)."""
    table = sql.Identifier("pgsearch", f"duplicates_{space.id}")
    found = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"pgsearch.duplicates_{space.id}",)
    ).fetchone()
    rows = (
        conn.execute(
            sql.SQL("SELECT item_id, duplicate_group, representative, kind, distance FROM {}").format(table)
        ).fetchall()
        if found and found[0]
        else []
    )
    result = DuplicateGroups(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=bool),
        np.array([r[3] == "exact" for r in rows], dtype=bool),
        np.array([r[4] for r in rows], dtype=np.float32),
    )
    if len(rows):
        # The stored kind of a representative is its group's: recover the per-member "exact".
        result.exact[result.representative] = True
    return result.ordered()


# -- rows to print ---------------------------------------------------------------------------------

ASSET_FIELDS = (
    "a.id, a.filename, a.path, a.width, a.height, a.size, a.status, a.groups, a.label_counts, a.content_hash"
)
SHAPE_FIELDS = (
    "s.id, s.asset_id, a.filename, a.path, a.width, a.height, l.name AS label, s.kind AS shape_kind,"
    " s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height, s.area"
)


def items_statement(space: Space) -> sql.Composed:
    """SELECT of the display fields of the items whose ids are the one parameter (an array)."""
    if space.target == "asset":
        return sql.SQL("SELECT {} FROM pgsearch.assets AS a WHERE a.id = ANY(%s)").format(
            sql.SQL(ASSET_FIELDS)
        )
    return sql.SQL(
        "SELECT {} FROM pgsearch.shapes AS s JOIN pgsearch.assets AS a ON a.id = s.asset_id"
        " JOIN pgsearch.labels AS l ON l.id = s.label_id WHERE s.id = ANY(%s)"
    ).format(sql.SQL(SHAPE_FIELDS))


def item_rows(conn: psycopg.Connection, space: Space, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Display fields of the given items, by id."""
    from psycopg.rows import dict_row

    if not ids:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        statement = items_statement(space)
        cur.execute(statement, (list(ids),))
        return {int(r["id"]): r for r in cur.fetchall()}


def member_rows(
    conn: psycopg.Connection, space: Space, groups: DuplicateGroups, limit: int
) -> list[dict[str, Any]]:
    """The first `limit` members (0: all) as dicts for output.emit."""
    count = groups.members if limit == 0 else min(limit, groups.members)
    ids = groups.item_ids[:count]
    info = item_rows(conn, space, ids.tolist())
    sizes = groups.group_sizes()[:count]
    kinds = groups.kinds()[:count]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(ids.tolist()):
        row = dict(info.get(item, {"id": item, "filename": None, "path": None}))
        row.pop("content_hash", None)
        row.update(
            duplicate_group=int(groups.group[i]),
            group_size=int(sizes[i]),
            representative=bool(groups.representative[i]),
            kind=str(kinds[i]),
            distance=round(float(groups.distance[i]), 6),
        )
        out.append(row)
    return out


# -- shared with pgsearch outliers: the graph, the run's state ------------------------------------

Say = Callable[[str], None]


@dataclass(frozen=True)
class GraphState:
    graph: graphs.Graph
    action: str  # built, refreshed, up to date
    updated_at: str  # neighbor_graphs.updated_at after the call, ISO


def prepare_graph(conn: psycopg.Connection, space: Space, *, say: Say, progress: Any = None) -> GraphState:
    """The space's neighbour graph, built when there is none (said on stderr) and brought up to
    date when items were added or changed since (graphs.refresh_graph), then read."""
    found = conn.execute("SELECT k FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)).fetchone()
    count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_vectors(space))).fetchone()
    items = int(count[0]) if count else 0
    if items < 2:
        raise CurationError(
            f"the {space.target} embeddings of model {space.model} hold {items} item"
            f"{'' if items == 1 else 's'}; duplicates and outliers need at least 2"
        )
    started = time.monotonic()
    if found is None:
        k = min(graphs.DEFAULT_K, items - 1)
        say(
            f"no neighbour graph yet for the {space.target}s of model {space.model}: building it "
            f"({items:,} items, k {k}; `pgsearch neighbors` does the same)"
        )
        result = graphs.build_graph(conn, space, k, progress=progress)
        action = "built"
    else:
        result = graphs.refresh_graph(conn, space, int(found[0]), progress=progress)
        action = result.action
        if action == "refreshed":
            say(f"neighbour graph refreshed: {result.updated:,} rows recomputed for items added or changed")
        elif action == "built":
            say("neighbour graph rebuilt: too many items were added or changed since it was built")
    if action == "built":
        say(f"neighbour graph built in {time.monotonic() - started:.1f} s")
    graph = graphs.load_graph(conn, space, progress=progress)
    row = conn.execute(
        "SELECT updated_at FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)
    ).fetchone()
    conn.commit()
    return GraphState(graph, action, row[0].isoformat() if row else "")
