"""How unique each item of an embedding space is (`pgsearch outliers`): isolated points are where
corrupted images, wrong crops and rare cases hide.

    knn_distance: the mean cosine distance to the item's K nearest neighbours (the graph's first K
                  columns, K = 15)
    z:            a robust z-score of log(knn_distance): (log d - median) / (1.4826 x MAD); the
                  log makes it relative ("three times the typical neighbour distance"), the
                  median and MAD keep the outliers themselves from setting the scale
    sparse:       the item is noise or in a sparse cluster of the latest map of the space (the
                  map's DBSCAN/HDBSCAN clusters, pgsearch map): a cluster of at most
                  max(5, min(1% of the points, a tenth of the mean cluster size)) items; noise
                  counts as a cluster of 1. A sparse item's z gets SPARSE_BONUS (+1)
    uniqueness:   z+ / (z+ + 3.5) in 0..1: 0 for an item as close to its neighbours as the
                  median item or closer, 0.5 at z = 3.5 (the usual cut-off of the modified
                  z-score), towards 1 for the most isolated

Flagged (curation_runs.flagged, the default of --threshold): uniqueness >= 0.5.

Why the mean over 15 neighbours and not the nearest one: a broken image seldom comes alone (the
same corrupt upload twice, a few black frames): its nearest neighbour is its twin, at distance 0,
while the mean over 15 still sees that the group is far from everything else. The digits
benchmark (bench/tasks_dupes_outliers.py) measures the variants.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgsearch.curate import graph as graphs
from pgsearch.curate.duplicates import items_statement
from pgsearch.curate.spaces import CurationError
from pgsearch.loader.spaces import Space

DEFAULT_K = 15
DEFAULT_THRESHOLD = 0.5
# The modified z-score at which uniqueness is 0.5 (Iglewicz and Hoaglin's outlier cut-off).
Z_HALF = 3.5
MAD_SCALE = 1.4826
# Distances under this are halfvec rounding: log(d) is taken of max(d, DISTANCE_FLOOR).
DISTANCE_FLOOR = 1e-4
# The smallest robust spread of log distances (1%): a space of equidistant items is not a space
# of outliers.
MIN_SPREAD = 0.01
SPARSE_MIN = 5
SPARSE_FRACTION_OF_ITEMS = 0.01
SPARSE_FRACTION_OF_MEAN = 0.1
SPARSE_BONUS = 1.0


def check_threshold(value: float) -> float:
    if not (math.isfinite(value) and 0 < value < 1):
        raise CurationError(
            f"--threshold is a uniqueness between 0 and 1 (0.5: a robust z-score of 3.5), not {value:g}"
        )
    return float(value)


@dataclass
class Scores:
    """Per item of the graph (ids ascending): its scores; order: most unique first."""

    ids: np.ndarray  # int64 (n,)
    knn_distance: np.ndarray  # float32 (n,)
    z: np.ndarray  # float32 (n,), the bonus included
    uniqueness: np.ndarray  # float32 (n,)
    cluster_size: np.ndarray  # int32 (n,), -1: not in the map
    sparse: np.ndarray  # bool (n,)
    map_run: int | None
    sparse_bound: int | None
    k: int

    def order(self) -> np.ndarray:
        return np.lexsort((self.ids, -self.knn_distance, -self.uniqueness))

    def flagged(self, threshold: float) -> int:
        return int((self.uniqueness >= threshold).sum())

    def rows(self) -> Any:
        """Rows for write_results("outliers"): item_id, uniqueness, knn_distance, cluster_size."""
        sizes = [None if s < 0 else s for s in self.cluster_size.tolist()]
        return zip(
            self.ids.tolist(),
            self.uniqueness.astype(np.float64).tolist(),
            self.knn_distance.astype(np.float64).tolist(),
            sizes,
            strict=True,
        )


def knn_distance(graph: graphs.Graph, k: int = DEFAULT_K) -> np.ndarray:
    """Mean distance to each item's first k neighbours (those it has, when fewer)."""
    d = graph.distances[:, : min(k, graph.distances.shape[1])]
    finite = np.isfinite(d)
    count = finite.sum(axis=1)
    total = np.where(finite, d, 0).sum(axis=1, dtype=np.float64)
    out = np.divide(total, count, out=np.full(len(d), np.nan), where=count > 0)
    # An item with no neighbour at all is as isolated as the most isolated one.
    if np.isnan(out).any():
        out[np.isnan(out)] = np.nanmax(out) if np.isfinite(out).any() else 1.0
    return np.asarray(np.maximum(out, 0), dtype=np.float32)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(log v - median) / (1.4826 x MAD) over log(max(v, DISTANCE_FLOOR))."""
    s = np.log(np.maximum(values.astype(np.float64), DISTANCE_FLOOR))
    median = float(np.median(s))
    spread = max(MAD_SCALE * float(np.median(np.abs(s - median))), MIN_SPREAD)
    return np.asarray((s - median) / spread, dtype=np.float64)


def sparse_bound(cluster_of_point: np.ndarray) -> int:
    """The largest cluster size that counts as sparse for a map's cluster labels (-1 noise)."""
    points = len(cluster_of_point)
    clustered = cluster_of_point[cluster_of_point >= 0]
    clusters = len(np.unique(clustered))
    mean = len(clustered) / clusters if clusters else 0.0
    return int(
        max(SPARSE_MIN, math.floor(min(SPARSE_FRACTION_OF_ITEMS * points, SPARSE_FRACTION_OF_MEAN * mean)))
    )


def latest_map(conn: psycopg.Connection, space: Space) -> int | None:
    row = conn.execute(
        "SELECT max(id) FROM pgsearch.projection_runs WHERE space_id = %s", (space.id,)
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


_POINT = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("c_len", ">i4"), ("c", ">i4")])
_HEADER = 19


def map_points(conn: psycopg.Connection, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(item ids ascending, cluster labels with -1 for noise) of a projection run, by binary COPY."""
    statement = sql.SQL(
        "COPY (SELECT item_id, coalesce(cluster, -1) FROM pgsearch.projection_points WHERE run_id = {}"
        " ORDER BY item_id) TO STDOUT (FORMAT binary)"
    ).format(sql.Literal(run_id))
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for data in copy:
            buffer += data
    extension = struct.unpack(">i", buffer[15:19])[0] if len(buffer) >= _HEADER else 0
    body = memoryview(buffer)[_HEADER + extension :]
    rows = (len(body) - 2) // _POINT.itemsize if len(body) >= 2 else 0
    block = np.frombuffer(body[: rows * _POINT.itemsize], dtype=_POINT)
    if rows and not (
        (block["fields"] == 2).all() and (block["id_len"] == 8).all() and (block["c_len"] == 4).all()
    ):
        raise CurationError(f"unexpected rows in the points of map run {run_id}")
    return block["id"].astype(np.int64), block["c"].astype(np.int64)


def cluster_sizes(ids: np.ndarray, point_ids: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, int]:
    """Per item of ids, the size of its cluster in the map (noise: 1; -1: not in the map), and the
    sparse bound of the map."""
    out = np.full(len(ids), -1, dtype=np.int32)
    if not len(point_ids):
        return out, SPARSE_MIN
    labels, inverse, counts = np.unique(clusters, return_inverse=True, return_counts=True)
    size = np.where(labels[inverse] < 0, 1, counts[inverse])
    at = np.minimum(np.searchsorted(point_ids, ids), len(point_ids) - 1)
    found = point_ids[at] == ids
    out[found] = size[at[found]]
    return out, sparse_bound(clusters)


def score(
    graph: graphs.Graph,
    *,
    k: int = DEFAULT_K,
    cluster_size: np.ndarray | None = None,
    bound: int | None = None,
    map_run: int | None = None,
    bonus: float = SPARSE_BONUS,
) -> Scores:
    """The scores of every item of the graph (see the module docstring)."""
    if len(graph.ids) < 2:
        raise CurationError("outliers need at least 2 items with a neighbour graph")
    knn = knn_distance(graph, k)
    z = robust_z(knn)
    sizes = np.full(len(graph.ids), -1, dtype=np.int32) if cluster_size is None else cluster_size
    sparse = (sizes >= 1) & (sizes <= (bound if bound is not None else SPARSE_MIN))
    z = z + bonus * sparse
    positive = np.maximum(z, 0)
    uniqueness = positive / (positive + Z_HALF)
    return Scores(
        ids=graph.ids,
        knn_distance=knn,
        z=z.astype(np.float32),
        uniqueness=uniqueness.astype(np.float32),
        cluster_size=sizes,
        sparse=sparse,
        map_run=map_run,
        sparse_bound=bound if cluster_size is not None else None,
        k=min(k, graph.k),
    )


def space_scores(
    conn: psycopg.Connection, space: Space, graph: graphs.Graph, *, k: int = DEFAULT_K
) -> Scores:
    """score() with the latest map of the space, when there is one."""
    run = latest_map(conn, space)
    if run is None:
        return score(graph, k=k)
    point_ids, clusters = map_points(conn, run)
    sizes, bound = cluster_sizes(graph.ids, point_ids, clusters)
    return score(graph, k=k, cluster_size=sizes, bound=bound, map_run=run)


def top_rows(
    conn: psycopg.Connection, space: Space, scores: Scores, limit: int, threshold: float
) -> list[dict[str, Any]]:
    """The `limit` most unique items (0: all) as dicts for output.emit."""
    order = scores.order()
    if limit:
        order = order[:limit]
    return _rows(
        conn,
        space,
        scores.ids[order],
        scores.uniqueness[order],
        scores.knn_distance[order],
        scores.cluster_size[order],
        threshold,
        scores.sparse_bound,
    )


def stored_rows(
    conn: psycopg.Connection, space: Space, limit: int, threshold: float, bound: int | None
) -> list[dict[str, Any]]:
    """The `limit` most unique items of the stored results (pgsearch.uniqueness_<space>)."""
    statement = sql.SQL(
        "SELECT item_id, uniqueness, knn_distance, coalesce(cluster_size, -1) FROM {}"
        " ORDER BY uniqueness DESC, knn_distance DESC, item_id{}"
    ).format(
        sql.Identifier("pgsearch", f"uniqueness_{space.id}"),
        sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit else sql.SQL(""),
    )
    rows = conn.execute(statement).fetchall()
    return _rows(
        conn,
        space,
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.float32),
        np.array([r[2] for r in rows], dtype=np.float32),
        np.array([r[3] for r in rows], dtype=np.int32),
        threshold,
        bound,
    )


def stored_flagged(conn: psycopg.Connection, space: Space, threshold: float) -> int:
    """How many stored items have uniqueness >= threshold."""
    found = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE uniqueness >= %s").format(
            sql.Identifier("pgsearch", f"uniqueness_{space.id}")
        ),
        (threshold,),
    ).fetchone()
    return int(found[0]) if found else 0


def _rows(
    conn: psycopg.Connection,
    space: Space,
    ids: np.ndarray,
    uniqueness: np.ndarray,
    knn: np.ndarray,
    sizes: np.ndarray,
    threshold: float,
    bound: int | None,
) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    info: dict[int, dict[str, Any]] = {}
    if len(ids):
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(items_statement(space), (ids.tolist(),))
            info = {int(r["id"]): r for r in cur.fetchall()}
    out = []
    for rank, (item, u, d, c) in enumerate(
        zip(ids.tolist(), uniqueness.tolist(), knn.tolist(), sizes.tolist(), strict=True)
    ):
        row: dict[str, Any] = {"rank": rank + 1}
        row.update(info.get(item, {"id": item, "filename": None, "path": None}))
        row.update(
            uniqueness=round(u, 4),
            knn_distance=round(d, 6),
            cluster_size=None if c < 0 else int(c),
            sparse=None if c < 0 or bound is None else bool(c <= bound),
            flagged=bool(u >= threshold),
        )
        out.append(row)
    return out
