"""The neighbour graph of an embedding space: each item's k nearest neighbours by cosine distance,
computed in bulk from the stored vectors and kept in pgsearch.neighbors_<space id>.

It is the shared input of the 2-D map (UMAP's fuzzy graph is built from it) and of the curation
tools (duplicates, edge cases, mislabels, subsets): computed once, reused by all.

    vectors out (binary COPY, copyio.read_space_vectors)
      -> knn() in numpy
      -> a fresh partition, binary COPY in, swapped for the old one in one transaction

The stored rows are the contract: item_id, neighbor_ids (nearest first, the item itself left out),
distances (cosine distance = 1 - cosine similarity of the stored unit vectors).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgsearch.curate.copyio import copy_in, neighbor_rows, read_space_vectors
from pgsearch.curate.spaces import CurationError
from pgsearch.loader.spaces import Space

DEFAULT_K = 15
MAX_K = 200
# Rows of queries per GEMM block in the exact search: block x n float32 distances in memory.
EXACT_BLOCK_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class GraphSummary:
    """What `pgsearch neighbors --format json` prints."""

    space_id: int
    model: str
    target: str
    items: int  # items with a row in the graph
    k: int
    missing: int  # items with a vector and no row
    stale: int  # rows older than their item's last change, or whose item is gone
    seconds: float | None  # of the last build
    method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Graph:
    """A graph in memory: ids[i]'s neighbours are neighbor_ids[i] (nearest first)."""

    ids: np.ndarray  # int64 (n,), ascending
    neighbor_ids: np.ndarray  # int64 (n, k)
    distances: np.ndarray  # float32 (n, k)

    def positions(self) -> np.ndarray:
        """neighbor_ids as row positions into ids (int64 (n, k)); -1 where a neighbour has no row."""
        pos = np.searchsorted(self.ids, self.neighbor_ids)
        pos = np.minimum(pos, len(self.ids) - 1)
        found = self.ids[pos] == self.neighbor_ids
        return np.where(found, pos, -1)


def knn(vectors: np.ndarray, k: int, *, progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows by cosine distance: (positions int64 (n, k), distances
    float32 (n, k)), nearest first. vectors: float32 (n, d), unit length. Exact, in blocks of
    queries against all rows (one GEMM each)."""
    n = len(vectors)
    if n < 2:
        raise CurationError(f"a neighbour graph needs at least 2 embedded items, this space has {n}")
    k = min(k, n - 1)
    block = max(1, min(n, EXACT_BLOCK_BYTES // (4 * n)))
    positions = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = vectors[start:stop] @ vectors.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        positions[start:stop] = np.take_along_axis(top, order, axis=1)
        distances[start:stop] = 1.0 - np.take_along_axis(top_sims, order, axis=1)
        if progress is not None:
            progress.update(stop - start)
    np.clip(distances, 0.0, 2.0, out=distances)
    return positions, distances


def _key(space: Space) -> str:
    return "asset_id" if space.target == "asset" else "shape_id"


def _partition(space: Space) -> sql.Identifier:
    return sql.Identifier("pgsearch", f"neighbors_{space.id}")


def build_graph(conn: psycopg.Connection, space: Space, k: int = DEFAULT_K, *, progress: Any = None) -> GraphSummary:
    """Computes the whole graph of `space` and replaces the stored one, in one transaction."""
    if not 1 <= k <= MAX_K:
        raise CurationError(f"-k must be between 1 and {MAX_K}, not {k}")
    started = time.monotonic()
    vectors = read_space_vectors(conn, space.table_name, _key(space), space.dim)
    positions, distances = knn(vectors.vectors, k, progress=progress)
    neighbor_ids = vectors.ids[positions]
    seconds = time.monotonic() - started
    write_graph(conn, space, vectors.ids, neighbor_ids, distances, method="exact", seconds=seconds)
    return summary(conn, space)


def write_graph(
    conn: psycopg.Connection,
    space: Space,
    ids: np.ndarray,
    neighbor_ids: np.ndarray,
    distances: np.ndarray,
    *,
    method: str,
    seconds: float,
    params: dict[str, Any] | None = None,
) -> None:
    """Replaces the space's stored graph with these rows (a fresh partition, swapped in)."""
    table = _partition(space)
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF pgsearch.neighbors FOR VALUES IN ({})").format(
                table, sql.Literal(space.id)
            )
        )
        copy_in(
            conn,
            sql.SQL("COPY {} (space_id, item_id, neighbor_ids, distances) FROM STDIN (FORMAT binary)").format(table),
            neighbor_rows(space.id, ids, neighbor_ids, distances),
        )
        conn.execute(
            "INSERT INTO pgsearch.neighbor_graphs (space_id, k, method, params, items, seconds)"
            " VALUES (%(space)s, %(k)s, %(method)s, %(params)s, %(items)s, %(seconds)s)"
            " ON CONFLICT (space_id) DO UPDATE SET k = excluded.k, method = excluded.method,"
            " params = excluded.params, items = excluded.items, seconds = excluded.seconds,"
            " built_at = now(), updated_at = now()",
            {
                "space": space.id,
                "k": int(neighbor_ids.shape[1]),
                "method": method,
                "params": Jsonb(params or {}),
                "items": len(ids),
                "seconds": seconds,
            },
        )
    conn.execute(sql.SQL("ANALYZE {}").format(table))


def summary(conn: psycopg.Connection, space: Space) -> GraphSummary:
    """The stored graph's size and how far it lags behind the space's vectors."""
    row = conn.execute(
        "SELECT k, method, seconds FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)
    ).fetchone()
    if row is None:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pgsearch", space.table_name))
        ).fetchone()
        missing = int(count[0]) if count else 0
        return GraphSummary(space.id, space.model, space.target, 0, 0, missing, 0, None, "none")
    k, method, seconds = row
    items_table = sql.Identifier("pgsearch", "assets" if space.target == "asset" else "shapes")
    counts = conn.execute(
        sql.SQL(
            "SELECT (SELECT count(*) FROM {graph}),"
            " (SELECT count(*) FROM {vectors} AS e WHERE NOT EXISTS"
            "   (SELECT 1 FROM {graph} AS g WHERE g.item_id = e.{key})),"
            " (SELECT count(*) FROM {graph} AS g LEFT JOIN {items} AS i ON i.id = g.item_id"
            "   WHERE i.id IS NULL OR {changed} > g.computed_at)"
        ).format(
            graph=_partition(space),
            vectors=sql.Identifier("pgsearch", space.table_name),
            key=sql.Identifier(_key(space)),
            items=items_table,
            changed=sql.SQL("i.updated_at" if space.target == "asset" else "i.created_at"),
        )
    ).fetchone()
    assert counts is not None
    return GraphSummary(
        space.id, space.model, space.target, int(counts[0]), int(k), int(counts[1]), int(counts[2]),
        seconds, method,
    )  # fmt: skip


def load_graph(conn: psycopg.Connection, space: Space) -> Graph:
    """The stored graph of `space`, ordered by item id (CurationError when there is none)."""
    row = conn.execute("SELECT k FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)).fetchone()
    if row is None:
        raise CurationError(
            f"the {space.target} embeddings of model {space.model} have no neighbour graph yet; "
            "run `pgsearch neighbors` for the dataset first"
        )
    rows = conn.execute(
        sql.SQL("SELECT item_id, neighbor_ids, distances FROM {} ORDER BY item_id").format(_partition(space))
    ).fetchall()
    k = int(row[0])
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    neighbor_ids = np.full((len(rows), k), -1, dtype=np.int64)
    distances = np.full((len(rows), k), np.inf, dtype=np.float32)
    for i, r in enumerate(rows):
        neighbor_ids[i, : len(r[1])] = r[1]
        distances[i, : len(r[2])] = r[2]
    return Graph(ids, neighbor_ids, distances)


def ensure_graph(conn: psycopg.Connection, space: Space, k: int = DEFAULT_K, *, progress: Any = None) -> Graph:
    """The space's graph with at least k neighbours per item, built first when missing."""
    found = conn.execute("SELECT k FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)).fetchone()
    if found is None or int(found[0]) < k:
        build_graph(conn, space, k, progress=progress)
    return load_graph(conn, space)
