"""The neighbour graph of an embedding space: each item's k nearest neighbours by cosine distance,
computed in bulk from the stored vectors and kept in pgsearch.neighbors_<space id>.

It is the shared input of the 2-D map (UMAP's fuzzy graph is built from it) and of the curation
tools (duplicates, edge cases, mislabels, subsets): computed once, reused by all.

    vectors out (binary COPY, copyio.read_space_vectors)
      -> knn() in numpy: exact below EXACT_MAX_ITEMS, else the partitioned search below
      -> a fresh table, binary COPY in, indexed, swapped in for the old partition in one transaction

The stored rows are the contract: item_id, neighbor_ids (nearest first, the item itself left out),
distances (cosine distance = 1 - cosine similarity, as pgvector's `<=>` computes it on the stored
halfvecs), computed_at (when the vectors it was computed from were read).

The bulk method ("ivf"): a partition of the space into about 2 sqrt(n) lists by k-means, then
exact distances inside the lists each item probes, computed as matrix products.

1. PCA (on a sample) to the few dimensions that hold 90% of the variance (32..128): the lists are
   chosen there, the distances are exact in the full space.
2. Lloyd's k-means on a sample of 40 items per list; every item's home list is its nearest
   centroid.
3. Tuning: the exact neighbours of 512 sample items (matrix products against everything) say
   how much farther than its home list's centroid an item's true neighbours' lists can lie.
   The margin `delta` is the 99.5th percentile of that gap: every item probes the lists whose
   centroid is within delta of its nearest one. Where the data is cleanly clustered almost
   every item probes its home list alone; where it is not, items near list boundaries probe
   more lists, as many as the recall target needs. The same sample estimates the work: when the
   probes would cost more than half of the exact search (unstructured data, e.g. uniform on the
   sphere) the exact search runs instead.
4. Search: per list, its items against its items (one GEMM), then per list the items from other
   lists that probe it against its items (one GEMM per block of such items), each folded into
   a running top-k per item (the entries above a block-maxima threshold, or above the k-th best
   found so far, then one sort of those few: argpartition is 4x slower on such rows). Two
   threads, each with a single-threaded BLAS, over disjoint items.
5. Items that found fewer than k candidates (a tiny home list) get the exact search.

Measured with bench/graph.py on this project's 2-core machine (shared, load average 2-4), k 15,
the whole `pgsearch neighbors` command in a fresh process, recall@10 against exact neighbours of
1,000 items: 1,000,000 x 512-d clustered vectors 33 s on a quiet machine, 62 s with the other
core busy (read 7-8, compute 21-49, write 2.5-3.2), peak RSS 2.8 GB, recall 0.996-0.997;
100,000: 4-5.5 s, 0.6 GB, 0.994. Harder data at 100,000: Zipf-sized diffuse
clusters ("skewed") 13 s, recall 0.998 (34 lists probed per item); real `pixels` embeddings of
made-up scenes 7 s, 0.999; uniform on the sphere: no list structure, the exact search (67 s).
Exact is as fast below about 20,000 items (EXACT_MAX_ITEMS).
Alternatives on the same data (computation only): at 1,000,000, pynndescent (as umap-learn uses
it) 135 s + 51 s of JIT, recall 0.93, 4.7 GB; FAISS IVF-flat with 4,000 lists, 217 s to train and
fill plus ~290 s to probe 8 lists for every item (recall 0.995): its per-query scans are bound by
memory, the GEMMs here are not. At 100,000 (bench/graph.py --compare): this 4.6 s, recall 0.994;
FAISS IVF-flat (1,264 lists, nprobe 8) 10.2 s, 1.000; pynndescent 30 s with its JIT, 0.9998;
exact 76 s.

Keeping it current ("refresh"): items embedded since the graph was written (`missing`), rows whose
item is gone or whose vector changed, and rows that name such an item (`stale`) are recomputed
through the space's HNSW index (pgvector), a few hundred items per statement, when they are under
INCREMENTAL_MAX_FRACTION of the graph (plus INCREMENTAL_MIN_ITEMS); each new or changed item is also
offered to the rows of its REVERSE_CANDIDATES nearest items (the reverse edges: a row takes it when
it beats that row's k-th distance). Otherwise, or without an HNSW index, the graph is rebuilt. Rows
of gone items are deleted. How a changed vector is told apart from a changed asset row (a new group,
a status) is in summary(). Not covered by a refresh: an item that would enter the list of a row
beyond its new neighbour's 100 nearest (a hub), which only a rebuild finds.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgsearch.curate.copyio import (
    copy_in,
    neighbor_rows,
    postgres_epoch_us,
    read_neighbor_rows,
    read_space_vectors,
)
from pgsearch.curate.spaces import CurationError
from pgsearch.loader.spaces import Space
from pgsearch.progress import NoBar

DEFAULT_K = 15
MAX_K = 200
METHODS = ("auto", "exact", "ivf")
# Below this many items the exact search is as fast as the partitioned one (512-d clustered:
# 10,000 items 0.9 s exact, 1.2 s ivf; 20,000 3.6 s both; 50,000 28 s and 5 s) and needs no tuning.
EXACT_MAX_ITEMS = 20_000
# The share of a sample's true neighbours the probes must reach (the tuning aims a little higher).
TARGET_RECALL = 0.99
# Items whose exact neighbours tune the probes.
TUNING_SAMPLE = 512
# Above this share of the exact search's work the partitioned search runs the exact one instead.
IVF_MAX_WORK = 0.5
# Queries per GEMM block in the exact search: block x n float32 similarities in memory.
EXACT_BLOCK_BYTES = 128 * 1024 * 1024
# Rows of one GEMM in the partitioned search.
IVF_QUERY_BLOCK = 4096
# A refresh recomputes rows through the HNSW index when it has at most this share of the graph's
# rows to recompute; more, and the bulk build is cheaper (and more exact). bench/graph.py
# --refresh on 2 cores, 1,000,000 items: a refresh costs ~6 s (two summaries, the lagging ids)
# plus ~2.6 ms per new or changed item (a walk of ef_search 100) and ~1.5 ms per other row to
# recompute; 3,000 new, 300 changed and 300 deleted items (12,800 rows to recompute, 41,000 rows
# taking a new item) took 40 s, a rebuild 33-62 s. At 100,000 items 2,200 rows took 3.8 s, as
# long as a rebuild. So: 1%.
INCREMENTAL_MAX_FRACTION = 0.01
# ... plus this many: a small graph is rebuilt in a moment, but so are a few rows refreshed.
INCREMENTAL_MIN_ITEMS = 200
# Items per HNSW statement in a refresh, and the candidate list of each walk (at 100,000
# clustered items, ef_search 100 gave recall@15 1.000 against exact on 1,000 items, 600 items/s;
# 200 the same recall at half the rate).
HNSW_BATCH = 250
HNSW_EF_SEARCH = 100
# How many of a new item's nearest items are offered it (the reverse edges): the rows it beats
# the k-th neighbour of. 2k missed rows in sparse regions (recall 0.97 on rows that should take
# a new item, 1,000,000 items); one walk holds ef_search candidates anyway.
REVERSE_CANDIDATES = 100
# A stored distance and today's differ by float rounding only (numpy vs pgvector); a changed
# vector moves it by more than this.
DISTANCE_TOLERANCE = 1e-4
# Neighbours whose distances tell a changed vector from a touched row (summary()).
CHANGE_PROBES = 5
# How long the swap of a rebuilt graph waits for sessions still reading the old one.
SWAP_LOCK_TIMEOUT_S = 30
# Session advisory lock key space for graph builds: (this << 32) | space id.
_LOCK_CLASS = 0x70676E62  # "pgnb"


@dataclass(frozen=True)
class GraphSummary:
    """What `pgsearch neighbors --format json` prints.

    seconds: from summary(), how long the last build took; from build_graph / refresh_graph, how
    long that call took. stale counts the rows a refresh would recompute: their item is gone or its
    vector changed (`gone`, `changed`), or they name such an item among their neighbours."""

    space_id: int
    model: str
    target: str
    items: int  # items with a row in the graph
    k: int
    missing: int  # items with a vector and no row
    stale: int  # rows to recompute (see above)
    seconds: float | None
    method: str
    gone: int = 0  # rows whose item has no vector any more
    changed: int = 0  # rows whose item's vector changed since the row was computed
    action: str = "none"  # what the call did: built, refreshed, up to date, none (summary only)
    updated: int = 0  # rows written or deleted by the call
    estimated_recall: float | None = None  # the build's own estimate (ivf: on its tuning sample)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Graph:
    """A graph in memory: ids[i]'s neighbours are neighbor_ids[i] (nearest first)."""

    ids: np.ndarray  # int64 (n,), ascending
    neighbor_ids: np.ndarray  # int64 (n, k); -1 pads a row that holds fewer than k
    distances: np.ndarray  # float32 (n, k); inf pads

    @property
    def k(self) -> int:
        return int(self.neighbor_ids.shape[1])

    def positions(self) -> np.ndarray:
        """neighbor_ids as row positions into ids (int64 (n, k)); -1 where a neighbour has no row."""
        if len(self.ids) == 0:
            return np.full(self.neighbor_ids.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, self.neighbor_ids)
        pos = np.minimum(pos, len(self.ids) - 1)
        found = self.ids[pos] == self.neighbor_ids
        return np.where(found, pos, -1)


# -- progress ------------------------------------------------------------------------------------


Progress = Any  # None, a tqdm-like bar (update), or a factory (stage, total, unit) -> bar


def _stage(progress: Progress, name: str, total: int, unit: str) -> Any:
    """A bar for one stage. `progress` may be a factory `(name, total, unit) -> bar`, or a single
    bar (the one knn() took before stages existed), which then follows the computing stage."""
    if progress is None:
        return NoBar()
    if not callable(progress):  # a bar (tqdm instances are not callable; classes are)
        return progress if name == "computing" else NoBar()
    return progress(name, total, unit)


class _Work:
    """Advances a bar of `total` steps by shares of an estimated amount of work."""

    def __init__(self, bar: Any, total: int) -> None:
        self.bar, self.total, self.done, self.shown = bar, total, 0.0, 0

    def add(self, share: float) -> None:
        self.done = min(1.0, self.done + share)
        step = int(self.done * self.total) - self.shown
        if step > 0:
            self.bar.update(step)
            self.shown += step

    def finish(self) -> None:
        self.add(1.0)


# -- compute -------------------------------------------------------------------------------------


def _threads() -> int:
    """Our own threads for GEMM blocks: one per core, each with a one-thread BLAS; one thread
    (and BLAS's own) where threadpoolctl, which limits BLAS, is not installed."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


@contextmanager
def _blas_threads(n: int) -> Iterator[None]:
    """BLAS limited to n threads while our own threads run GEMMs side by side."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency; without it BLAS keeps its own threads
        yield
        return
    with threadpool_limits(n):
        yield


def _normalize(x: np.ndarray) -> None:
    """Scales the rows of x (float32) to unit length in place; zero rows stay zero."""
    for start in range(0, len(x), 65_536):
        block = x[start : start + 65_536]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        norms[norms == 0] = 1.0
        block /= norms[:, None]


def knn(
    vectors: np.ndarray,
    k: int,
    *,
    progress: Progress = None,
    method: str = "auto",
    target_recall: float = TARGET_RECALL,
    seed: int = 0,
    info: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows by cosine distance: (positions int64 (n, k), distances
    float32 (n, k)), nearest first. vectors: float32 (n, d), any length (scaled to unit length
    on a copy when they are not). method: "exact" (GEMM blocks against all rows), "ivf" (the
    partitioned search of the module doc; it still runs the exact search when that is cheaper
    for this data), "auto" (exact below EXACT_MAX_ITEMS rows). info, if given, receives what
    was done (method, lists, probes, estimated recall, timings)."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise CurationError("vectors must be a 2-D array")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    if not np.allclose(norms[norms > 0], 1.0, atol=1e-6):
        x = x.copy()
        _normalize(x)
    return _knn_unit(
        x, k, progress=progress, method=method, target_recall=target_recall, seed=seed, info=info
    )


def _check_k(n: int, k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise CurationError(f"-k must be between 1 and {MAX_K}, not {k}")
    if n < k + 1:
        hint = f" (or a smaller -k: at most {n - 1})" if n >= 2 else ""
        raise CurationError(
            f"a graph of {k} neighbours per item needs at least {k + 1} embedded items; this space "
            f"has {n}: embed more items{hint}"
        )


def _knn_unit(
    x: np.ndarray,
    k: int,
    *,
    progress: Progress = None,
    method: str = "auto",
    target_recall: float = TARGET_RECALL,
    seed: int = 0,
    info: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """knn() on rows already of unit length (or zero)."""
    if method not in METHODS:
        raise CurationError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    n = len(x)
    _check_k(n, k)
    info = {} if info is None else info
    bar = _stage(progress, "computing", n, "item")
    work = _Work(bar, int(getattr(bar, "total", None) or n))
    started = time.monotonic()
    result = None
    if method == "ivf" or (method == "auto" and n > EXACT_MAX_ITEMS):
        result = _ivf(x, k, target_recall=target_recall, seed=seed, info=info, work=work)
    if result is None:
        info["method"] = "exact"
        info["estimated_recall"] = 1.0
        work.done = 0.0
        pos, sims = _exact(x, k, work=work)
    else:
        info["method"] = "ivf"
        pos, sims = result
    work.finish()
    if bar is not progress:
        bar.close()
    info["compute_s"] = round(time.monotonic() - started, 2)
    distances = 1.0 - sims
    np.clip(distances, 0.0, 2.0, out=distances)
    return pos, distances


def _candidates(s: np.ndarray, k: int, floor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the entries of s that may be among their row's k largest: at least k
    per row (those at or above the k-th largest of the row's block maxima; every row's k-th
    largest entry is at least that), and none at or below `floor` (per row) or -inf. In row
    order. One pass over s plus a small partition: about 3 ns an entry where argpartition
    takes 3 to 12 (its introselect slows down on rows of near-equal similarities)."""
    rows, m = s.shape
    width = min(128, m // (2 * k))
    if width >= 2:
        # Blocks of columns j, j + count, j + 2 count, ...: the maxima are elementwise maxima of
        # contiguous slices (a reduction over a short last axis is five times slower).
        full = m - m % width
        maxima = s[:, :full].reshape(rows, width, full // width).max(axis=1)
        if full < m:
            maxima = np.concatenate([maxima, s[:, full:].max(axis=1, keepdims=True)], axis=1)
        count = maxima.shape[1]
        threshold = np.partition(maxima, count - k, axis=1)[:, count - k]
    elif m > k:
        threshold = np.partition(s, m - k, axis=1)[:, m - k]
    else:
        threshold = np.full(rows, -np.inf, dtype=s.dtype)
    if floor is not None:
        threshold = np.maximum(threshold, np.nextafter(floor, np.float32(np.inf)))
    keep = s >= threshold[:, None]
    if not np.isfinite(threshold).all():
        keep &= s > -np.inf
    r, c = np.nonzero(keep)
    return r, c


def _best_k(
    row: np.ndarray, value: np.ndarray, ident: np.ndarray, rows: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row 0..rows-1, the k entries (row[i], value[i], ident[i]) of largest value, best first:
    (ids (rows, k), values (rows, k)), padded with -1 / -inf. One sort of a float64 key (row,
    then value descending): values are similarities in [-1, 1]."""
    key = row.astype(np.float64) * 4.0 + (1.0 - np.maximum(value, -2.0).astype(np.float64))
    order = np.argsort(key, kind="quicksort")
    counts = np.bincount(row, minlength=rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take = starts[:, None] + np.arange(k)[None, :]
    valid = np.arange(k)[None, :] < counts[:, None]
    take = np.where(valid, take, 0)
    picked = order[take] if len(order) else np.zeros_like(take)
    ids = np.where(valid, ident[picked] if len(order) else -1, -1)
    values = np.where(valid, value[picked] if len(order) else -np.inf, -np.inf).astype(np.float32)
    return ids.astype(np.int64), values


def _exact(
    x: np.ndarray, k: int, rows: np.ndarray | None = None, *, work: _Work | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product of rows `rows` (positions into x; all by default) against all
    of x, the row itself left out: (positions (q, k), similarities (q, k)), best first.

    Tiled: blocks of up to 2,048 queries against chunks of x, so that a block of similarities
    stays within EXACT_BLOCK_BYTES, and a few queries against many rows stream x once per block
    instead of multiplying skinny matrices."""
    n = len(x)
    queries = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    q = len(queries)
    pos = np.empty((q, k), dtype=np.int64)
    sims = np.empty((q, k), dtype=np.float32)
    threads = _threads()
    per_block = max(1, min(2048, -(-q // threads)))
    chunk = max(1024, EXACT_BLOCK_BYTES // (4 * per_block))
    starts = list(range(0, q, per_block))

    def one(start: int) -> None:
        chosen = queries[start : start + per_block]
        xq = x[chosen]
        best_i: np.ndarray | None = None
        best_s: np.ndarray | None = None
        for c0 in range(0, n, chunk):
            s = xq @ x[c0 : c0 + chunk].T
            mine = (chosen >= c0) & (chosen < c0 + chunk)
            s[np.flatnonzero(mine), chosen[mine] - c0] = -np.inf  # not its own neighbour
            r, c = _candidates(s, k)
            if best_i is None or best_s is None:
                best_i, best_s = _best_k(r, s[r, c], c + c0, len(chosen), k)
            else:
                best_i, best_s = _best_k(
                    np.concatenate([r, np.repeat(np.arange(len(chosen)), k)]),
                    np.concatenate([s[r, c], best_s.ravel()]),
                    np.concatenate([c + c0, best_i.ravel()]),
                    len(chosen),
                    k,
                )
            if work is not None:
                work.add(len(chosen) * min(chunk, n - c0) / (float(q) * n))
        assert best_i is not None and best_s is not None
        pos[start : start + len(chosen)] = best_i
        sims[start : start + len(chosen)] = best_s

    _run(one, starts)
    return pos, sims


def _run(fn: Callable[[Any], None], items: list[Any]) -> None:
    """fn over items, on our threads (each with a one-thread BLAS) when there are several."""
    threads = min(_threads(), len(items))
    if threads <= 1:
        for item in items:
            fn(item)
        return
    with _blas_threads(1), ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fn, items):
            pass


def _pca(
    x: np.ndarray, rng: np.random.Generator, sample: int = 20_000
) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, basis (d, p)) of the fewest principal components holding 90% of the variance
    (32..128 of them), from a sample; None when that is most of the dimensions anyway. Above
    1,024 dimensions by a randomized range finder (two power iterations) instead of the
    covariance's eigendecomposition: 1.6 s instead of 18 s at 4,000."""
    n, d = x.shape
    if d <= 48:
        return None
    idx = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    s = x[idx].astype(np.float32)
    mean = s.mean(axis=0)
    s -= mean
    total = float(np.einsum("ij,ij->", s, s))
    if d <= 1024:
        values, vectors = np.linalg.eigh((s.T @ s).astype(np.float64))
        values, vectors = values[::-1], vectors[:, ::-1]
    else:
        q = np.linalg.qr(s.T @ (s @ rng.standard_normal((d, 144)).astype(np.float32)))[0]
        for _ in range(2):
            q = np.linalg.qr(s.T @ (s @ q))[0]
        _, singular, vt = np.linalg.svd(s @ q, full_matrices=False)
        values, vectors = singular.astype(np.float64) ** 2, q @ vt.T
    share = np.cumsum(np.maximum(values, 0)) / max(total, 1e-30)
    p = min(max(int(np.searchsorted(share, 0.9) + 1), 32), 128, len(values))
    if p >= 0.75 * d:
        return None
    return mean.astype(np.float32), np.ascontiguousarray(vectors[:, :p], dtype=np.float32)


def _project(x: np.ndarray, pca: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Rows in the PCA space with a trailing 1 (so that one GEMM against _centroid_rows gives
    the centroid scores)."""
    n, d = x.shape
    p = d if pca is None else pca[1].shape[1]
    y = np.empty((n, p + 1), dtype=np.float32)
    y[:, p] = 1.0
    for start in range(0, n, 65_536):
        block = x[start : start + 65_536]
        y[start : start + len(block), :p] = block if pca is None else (block - pca[0]) @ pca[1]
    return y


def _centroid_rows(c: np.ndarray) -> np.ndarray:
    """Centroids (m, p) as the (p + 1, m) right-hand side whose product with _project's rows is
    y.c - |c|^2 / 2: higher is nearer (the squared L2 distance is |y|^2 - 2 * that)."""
    return np.ascontiguousarray(np.vstack([c.T, -0.5 * (c * c).sum(axis=1)[None, :]]), dtype=np.float32)


def _nearest(y: np.ndarray, c: np.ndarray, block: int = 32_768) -> np.ndarray:
    """Index of each row's nearest centroid."""
    rhs = _centroid_rows(c)
    out = np.empty(len(y), dtype=np.int64)
    for start in range(0, len(y), block):
        out[start : start + block] = (y[start : start + block] @ rhs).argmax(axis=1)
    return out


def _kmeans(
    y: np.ndarray, lists: int, rng: np.random.Generator, iters: int = 12, per_list: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means (L2) on a sample of 40 rows per list: (centroids (lists, p), estimated
    list sizes of all rows)."""
    n, p1 = y.shape
    m = min(n, lists * per_list)
    s = y[np.sort(rng.choice(n, size=m, replace=False))] if m < n else y
    c = s[rng.choice(len(s), size=lists, replace=False), : p1 - 1].copy()
    for _ in range(iters):
        label = _nearest(s, c)
        counts = np.bincount(label, minlength=lists)
        order = np.argsort(label, kind="stable")
        filled = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
        sums = np.add.reduceat(s[order, : p1 - 1], starts, axis=0)
        c[filled] = sums / counts[filled, None]
        empty = np.flatnonzero(~filled)
        if len(empty):  # re-seed: a random row each
            c[empty] = s[rng.choice(len(s), size=len(empty), replace=False), : p1 - 1]
    counts = np.bincount(_nearest(s, c), minlength=lists)
    return c, counts * (n / len(s))


def _ivf(
    x: np.ndarray,
    k: int,
    *,
    target_recall: float,
    seed: int,
    info: dict[str, Any],
    work: _Work,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The partitioned search of the module doc; None when the exact search is cheaper here."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    lists = max(1, min(n // (4 * k), int(round(2 * math.sqrt(n)))))
    sample = min(n, TUNING_SAMPLE)
    t0 = time.monotonic()
    pca = _pca(x, rng)
    y = _project(x, pca)
    p = y.shape[1] - 1
    # Shares of the work, to advance the bar (multiply-adds, roughly).
    fixed = float(n * d * p + 13 * lists * 40 * lists * p + sample * n * d + n * lists * p)
    work.add(0.0)
    t1 = time.monotonic()
    centroids, sizes = _kmeans(y, lists, rng)
    t2 = time.monotonic()

    # Tuning: how far beyond the nearest centroid the lists of true neighbours lie.
    tuning = np.sort(rng.choice(n, size=sample, replace=False))
    true_pos, _ = _exact(x, k, tuning)
    rhs = _centroid_rows(centroids)
    scores = y[tuning] @ rhs
    best = scores.max(axis=1)
    true_list = _nearest(y[true_pos.ravel()], centroids).reshape(true_pos.shape)
    gaps = (best[:, None] - np.take_along_axis(scores, true_list, axis=1)).ravel()
    aim = 1.0 - (1.0 - target_recall) / 2
    ordered = np.sort(gaps)
    delta = float(ordered[min(len(ordered) - 1, max(0, int(math.ceil(aim * len(ordered))) - 1))])
    estimated = float((gaps <= delta).mean())
    probed = (best[:, None] - scores) <= delta
    share = float((probed * sizes[None, :]).sum(axis=1).mean()) / n
    t3 = time.monotonic()
    info.update(
        lists=lists,
        pca_dims=p if pca is not None else None,
        delta=round(delta, 5),
        estimated_recall=round(estimated, 4),
        estimated_work=round(share, 4),
        tuning_sample=sample,
    )
    if share > IVF_MAX_WORK:
        info["fallback"] = f"probes would cost {share:.0%} of the exact search"
        return None
    search = float(share) * n * n * d
    total = fixed + search
    work.add((n * d * p + 13 * lists * 40 * lists * p + sample * n * d) / total)

    # Every row's home list and the other lists it probes.
    home = np.empty(n, dtype=np.int64)
    pair_rows: list[np.ndarray] = []
    pair_lists: list[np.ndarray] = []
    block = 16_384
    starts = list(range(0, n, block))
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def assign(start: int, y: np.ndarray = y) -> None:
        sc = y[start : start + block] @ rhs
        h = sc.argmax(axis=1)
        floor = sc[np.arange(len(h)), h] - delta
        keep = sc >= floor[:, None]
        keep[np.arange(len(h)), h] = False
        r, c = np.nonzero(keep)
        home[start : start + len(h)] = h
        found[start] = ((r + start).astype(np.int64), c.astype(np.int64))

    _run(assign, starts)
    for start in starts:
        r, c = found.pop(start)
        pair_rows.append(r)
        pair_lists.append(c)
    del y, assign
    probe_rows = np.concatenate(pair_rows)
    probe_lists = np.concatenate(pair_lists)
    del pair_rows, pair_lists
    t4 = time.monotonic()
    work.add(n * lists * p / total)

    order = np.argsort(home, kind="stable")
    counts = np.bincount(home, minlength=lists)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    members = [order[bounds[j] : bounds[j + 1]] for j in range(lists)]
    by_list = np.argsort(probe_lists, kind="stable")
    probe_rows = probe_rows[by_list]
    probe_counts = np.bincount(probe_lists, minlength=lists)
    probe_bounds = np.concatenate([[0], np.cumsum(probe_counts)])
    del by_list, probe_lists, order
    cost = float((counts.astype(np.float64) ** 2).sum() + (probe_counts * counts.astype(np.float64)).sum())
    info.update(
        probes_per_item=round(1 + len(probe_rows) / n, 2),
        work=round(cost / (float(n) * n), 4),
        largest_list=int(counts.max()),
    )
    unit = search / total / max(cost, 1.0)

    top_s = np.full((n, k), -np.inf, dtype=np.float32)
    top_i = np.full((n, k), -1, dtype=np.int64)
    kth = np.full(n, -np.inf, dtype=np.float32)

    def merge(q: np.ndarray, s: np.ndarray, cand: np.ndarray) -> None:
        """Folds similarities s (len(q) x len(cand)) into the running top-k of rows q (rows of
        q are distinct; candidates are new to them)."""
        floor = kth[q]
        if np.isneginf(floor).any():
            r, c = _candidates(s, k, None if np.isneginf(floor).all() else floor)
        else:  # rows with k found already: only what beats their k-th
            r, c = np.nonzero(s > floor[:, None])
        if len(r) == 0:
            return
        first = np.flatnonzero(np.concatenate([[True], r[1:] != r[:-1]]))
        touched = r[first]
        local = np.repeat(np.arange(len(touched)), np.diff(np.concatenate([first, [len(r)]])))
        rows = q[touched]
        current_s = top_s[rows]
        current_i = top_i[rows]
        ids, values = _best_k(
            np.concatenate([local, np.repeat(np.arange(len(touched)), k)]),
            np.concatenate([s[r, c], current_s.ravel()]),
            np.concatenate([cand[c], current_i.ravel()]),
            len(touched),
            k,
        )
        top_s[rows] = values
        top_i[rows] = ids
        kth[rows] = values[:, k - 1]

    def own(j: int) -> None:
        mem = members[j]
        if len(mem) == 0:
            return
        xm = x[mem]
        for s0 in range(0, len(mem), IVF_QUERY_BLOCK):
            q = mem[s0 : s0 + IVF_QUERY_BLOCK]
            s = xm[s0 : s0 + IVF_QUERY_BLOCK] @ xm.T
            s[np.arange(len(q)), np.arange(s0, s0 + len(q))] = -np.inf  # not its own neighbour
            merge(q, s, mem)
        work.add(unit * float(len(mem)) ** 2)

    threads = max(1, min(_threads(), lists))

    def probe(part: int) -> None:
        for j in range(lists):
            mem = members[j]
            qs = probe_rows[probe_bounds[j] : probe_bounds[j + 1]]
            if threads > 1:
                qs = qs[qs % threads == part]
            if len(mem) == 0 or len(qs) == 0:
                continue
            xm = x[mem]
            for s0 in range(0, len(qs), IVF_QUERY_BLOCK):
                q = qs[s0 : s0 + IVF_QUERY_BLOCK]
                merge(q, x[q] @ xm.T, mem)
            work.add(unit * float(len(qs)) * len(mem))

    # Home lists first: their k-th best makes most rows of the other lists' blocks skippable.
    _run(own, list(range(lists)))
    t5 = time.monotonic()
    _run(probe, list(range(threads)))
    t6 = time.monotonic()

    short = np.flatnonzero((top_i < 0).any(axis=1))  # rows stay sorted, best first
    if len(short):  # fewer than k candidates in the probed lists
        top_i[short], top_s[short] = _exact(x, k, short)
    info.update(
        short_rows=int(len(short)),
        seconds={
            "pca": round(t1 - t0, 2),
            "kmeans": round(t2 - t1, 2),
            "tuning": round(t3 - t2, 2),
            "assign": round(t4 - t3, 2),
            "home_lists": round(t5 - t4, 2),
            "probes": round(t6 - t5, 2),
        },
    )
    return top_i, top_s


# -- the stored graph ------------------------------------------------------------------------------


def _key(space: Space) -> str:
    return "asset_id" if space.target == "asset" else "shape_id"


def _partition_name(space: Space) -> str:
    return f"neighbors_{space.id}"


def _partition(space: Space) -> sql.Identifier:
    return sql.Identifier("pgsearch", _partition_name(space))


def _vectors(space: Space) -> sql.Identifier:
    return sql.Identifier("pgsearch", space.table_name)


def _idle(conn: psycopg.Connection) -> bool:
    return conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@contextmanager
def _graph_lock(conn: psycopg.Connection, space: Space) -> Iterator[Callable[[], None]]:
    """One build or refresh of a space's graph at a time (a session advisory lock). Yields
    settle(): commits what the statements since opened, when the connection had no transaction
    open on entry (a caller's open transaction is left open: then everything runs inside it)."""
    owned = _idle(conn) and not conn.autocommit
    key = (_LOCK_CLASS << 32) | (space.id & 0xFFFFFFFF)

    def settle() -> None:
        if owned and not _idle(conn):
            conn.commit()

    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    settle()
    try:
        yield settle
    finally:
        if not conn.closed:
            if owned and conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                conn.rollback()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                settle()


def _read_snapshot_time(conn: psycopg.Connection) -> float:
    """The time the rows computed from what this transaction reads are as of: its start, or the
    start of the oldest other transaction still open in this database (one of those may commit
    a changed vector after our snapshot while its state rows carry its earlier start time).
    As a Unix time. Run it first in a REPEATABLE READ transaction."""
    row = conn.execute(
        "SELECT extract(epoch FROM least(now(), (SELECT min(xact_start) FROM pg_stat_activity"
        "  WHERE datname = current_database() AND pid <> pg_backend_pid()"
        "    AND backend_type = 'client backend' AND xact_start IS NOT NULL)))::float8"
    ).fetchone()
    assert row is not None
    return float(row[0])


@contextmanager
def _snapshot(conn: psycopg.Connection) -> Iterator[float]:
    """A REPEATABLE READ transaction (a savepoint inside the caller's, if one is open) and the
    time its reads are as of (see _read_snapshot_time)."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield _read_snapshot_time(conn)
    else:
        with conn.transaction():
            yield _read_snapshot_time(conn)


def _count(conn: psycopg.Connection, relation: sql.Composable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()
    return int(row[0]) if row else 0


def build_graph(
    conn: psycopg.Connection,
    space: Space,
    k: int = DEFAULT_K,
    *,
    progress: Progress = None,
    method: str = "auto",
    target_recall: float = TARGET_RECALL,
) -> GraphSummary:
    """Computes the whole graph of `space` and replaces the stored one (swapped in one
    transaction). progress: None, a tqdm bar (advanced while computing) or a factory
    `(stage, total, unit) -> bar` for the stages reading vectors, computing, writing."""
    if not 1 <= k <= MAX_K:
        raise CurationError(f"-k must be between 1 and {MAX_K}, not {k}")
    with _graph_lock(conn, space) as settle:
        return _build(conn, space, k, settle, progress=progress, method=method, target_recall=target_recall)


def _build(
    conn: psycopg.Connection,
    space: Space,
    k: int,
    settle: Callable[[], None],
    *,
    progress: Progress,
    method: str,
    target_recall: float,
) -> GraphSummary:
    started = time.monotonic()
    settle()
    with _snapshot(conn) as as_of:
        count = _count(conn, _vectors(space))
        _check_k(count, k)
        bar = _stage(progress, "reading vectors", count, "item")
        vectors = read_space_vectors(
            conn, space.table_name, _key(space), space.dim, count=count, progress=bar, ordered=False
        )
        bar.close()
    read_s = time.monotonic() - started
    ids, x = vectors.ids, vectors.vectors
    del vectors
    _normalize(x)
    info: dict[str, Any] = {}
    positions, distances = _knn_unit(
        x, k, progress=progress, method=method, target_recall=target_recall, info=info
    )
    del x
    neighbor_ids = ids[positions]
    del positions
    order = np.argsort(ids, kind="stable")  # rows in id order: the heap then reads in id order
    ids, neighbor_ids, distances = ids[order], neighbor_ids[order], distances[order]
    compute_s = time.monotonic() - started - read_s
    info.update(read_s=round(read_s, 2), target_recall=target_recall, k=k)
    seconds = time.monotonic() - started
    write_graph(
        conn,
        space,
        ids,
        neighbor_ids,
        distances,
        method=str(info["method"]),
        seconds=seconds,
        params=info,
        computed_at=as_of,
        progress=progress,
    )
    seconds = time.monotonic() - started
    info["write_s"] = round(seconds - read_s - compute_s, 2)
    conn.execute(
        "UPDATE pgsearch.neighbor_graphs SET seconds = %s, params = %s WHERE space_id = %s",
        (seconds, Jsonb(info), space.id),
    )
    settle()
    result = summary(conn, space)
    settle()
    return replace(result, seconds=round(time.monotonic() - started, 2), action="built", updated=len(ids))


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
    computed_at: float | None = None,
    progress: Progress = None,
) -> None:
    """Replaces the space's stored graph with these rows: a fresh table filled by binary COPY
    (FREEZE: no later VACUUM rewrites it), its primary key built once, then swapped in for the
    old partition in the same transaction (readers of the old one wait only for the swap).
    computed_at: the Unix time the vectors were read at (default: now)."""
    table = _partition(space)
    fresh = sql.Identifier("pgsearch", f"{_partition_name(space)}_new")
    at = postgres_epoch_us(time.time() if computed_at is None else computed_at)
    bar = _stage(progress, "writing", len(ids), "item")
    # FREEZE needs a transaction of our own (no snapshot of the caller's held).
    options = sql.SQL("FORMAT binary, FREEZE" if _idle(conn) else "FORMAT binary")
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(fresh))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (LIKE pgsearch.neighbors INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
                " CHECK (space_id = {}))"
            ).format(fresh, sql.Literal(space.id))
        )
        copy_in(
            conn,
            sql.SQL(
                "COPY {} (space_id, item_id, neighbor_ids, distances, computed_at) FROM STDIN ({})"
            ).format(fresh, options),
            neighbor_rows(space.id, ids, neighbor_ids, distances, computed_at=at, progress=bar),
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (space_id, item_id)").format(
                fresh, sql.Identifier(f"{_partition_name(space)}_new_pkey")
            )
        )
        # The swap: the parent's lock is taken here, for the moments these statements take. A
        # session with an open transaction that read the old partition holds it up: waiting
        # for it would also queue every new reader behind us, so we give up after a while.
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{SWAP_LOCK_TIMEOUT_S}s",))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        except psycopg.errors.LockNotAvailable:
            raise CurationError(
                f"the neighbour graph of space {space.id} is in use by another session with an open "
                f"transaction (reading pgsearch.v_neighbors or {_partition_name(space)}?); the new graph "
                "was not stored: run the command again once that transaction ends"
            ) from None
        conn.execute("SELECT set_config('lock_timeout', '0', true)")
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(fresh, sql.Identifier(_partition_name(space)))
        )
        conn.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier("pgsearch", f"{_partition_name(space)}_new_pkey"),
                sql.Identifier(f"{_partition_name(space)}_pkey"),
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE pgsearch.neighbors ATTACH PARTITION {} FOR VALUES IN ({})").format(
                table, sql.Literal(space.id)
            )
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
    bar.close()
    conn.execute(sql.SQL("ANALYZE {}").format(table))


# -- how far the stored graph lags behind ----------------------------------------------------------


def _lag_ctes(space: Space) -> sql.Composed:
    """CTEs over the stored graph g: gone (rows whose item has no vector), changed (rows whose
    item's vector changed since computed_at), bad (both).

    A vector written by pgsearch's embedding writer (loader/vectors.py: `pgsearch load`,
    `pgsearch embed`) always rewrites its embedding state row, whose updated_at then lies after
    the graph row's computed_at. Those rows are the candidates; a state rewritten with the same
    vector (a retry, a reload of an unchanged image under another name) keeps its distances to
    its neighbours. A candidate whose distance to its nearest neighbour, recomputed now, is the
    stored one kept its vector (one index lookup: most candidates end there). Otherwise it counts
    as changed when its distances to its first CHANGE_PROBES neighbours differ from the stored
    ones: the distance to any of them whose own state was not rewritten (so whose vector is the
    same), or where all were, at least two of the distances (one, when one of those neighbours is
    left; a row none of whose neighbours is left counts too). So a row one of whose neighbours
    changed is not taken for a changed item (it is stale all the same: it names one).
    A vector rewritten with plain SQL, around the writer and its state rows, is not seen:
    `pgsearch neighbors --rebuild` recomputes everything."""
    state = sql.Identifier("pgsearch", f"{space.target}_embedding_state")
    key = sql.Identifier(_key(space))
    touched = sql.SQL(
        "JOIN {state} AS st ON st.space_id = {space} AND st.{key} = g.item_id WHERE st.updated_at > g.computed_at"
    ).format(state=state, space=sql.Literal(space.id), key=key)
    row_of = sql.SQL("LEFT JOIN {state} AS st ON st.space_id = {space} AND st.{key} = u.id").format(
        state=state, space=sql.Literal(space.id), key=key
    )
    touched_at = sql.SQL("st.updated_at")
    return sql.SQL(
        "gone AS MATERIALIZED ("
        "  SELECT g.item_id FROM {graph} AS g"
        "   WHERE NOT EXISTS (SELECT 1 FROM {vectors} AS e WHERE e.{key} = g.item_id)),"
        # touched rows whose distance to their nearest neighbour is not the stored one
        " suspects AS MATERIALIZED ("
        "  SELECT g.item_id, g.at, g.ids, g.d"
        "    FROM (SELECT g.item_id, g.computed_at AS at, g.neighbor_ids[1:{probe}] AS ids,"
        "                 g.distances[1:{probe}] AS d"
        "            FROM {graph} AS g {touched}) AS g"
        "    JOIN {vectors} AS e ON e.{key} = g.item_id"
        "    LEFT JOIN {vectors} AS f ON f.{key} = g.ids[1]"
        "   WHERE f.{key} IS NULL OR abs((e.embedding <=> f.embedding) - g.d[1]) > {tolerance}),"
        " changed AS MATERIALIZED ("
        "  SELECT g.item_id FROM suspects AS g JOIN {vectors} AS e ON e.{key} = g.item_id"
        "   CROSS JOIN LATERAL ("
        "     SELECT count(*) FILTER (WHERE n.sure) AS sure, count(*) FILTER (WHERE n.sure AND n.moved) AS sure_moved,"
        "            count(*) AS present, count(*) FILTER (WHERE n.moved) AS moved"
        "       FROM (SELECT coalesce({touched_at} <= g.at, false) AS sure,"
        "                    abs((e.embedding <=> f.embedding) - u.d) > {tolerance} AS moved"
        "               FROM unnest(g.ids, g.d) AS u(id, d) JOIN {vectors} AS f ON f.{key} = u.id {row_of}) AS n) AS m"
        "   WHERE CASE WHEN m.sure > 0 THEN m.sure_moved > 0 ELSE m.moved >= least(2, m.present) END),"
        " bad AS MATERIALIZED (SELECT item_id FROM gone UNION SELECT item_id FROM changed)"
    ).format(
        probe=sql.Literal(CHANGE_PROBES),
        row_of=row_of,
        touched_at=touched_at,
        graph=_partition(space),
        vectors=_vectors(space),
        key=sql.Identifier(_key(space)),
        touched=touched,
        tolerance=sql.Literal(DISTANCE_TOLERANCE),
    )


def _with_graph(space: Space, body: sql.Composable) -> sql.Composed:
    return sql.SQL("WITH {ctes} {body}").format(ctes=_lag_ctes(space), body=body)


def _naming_bad(space: Space) -> sql.Composed:
    """Items of the rows that name an item of `bad` among their neighbours: one hash semi-join of
    the unnested neighbour lists against bad (a per-row EXISTS would scan bad once per row)."""
    return sql.SQL(
        "SELECT g.item_id FROM {graph} AS g CROSS JOIN LATERAL unnest(g.neighbor_ids) AS u(id)"
        " WHERE u.id IN (SELECT item_id FROM bad)"
    ).format(graph=_partition(space))


def summary(conn: psycopg.Connection, space: Space) -> GraphSummary:
    """The stored graph's size and how far it lags behind the space's vectors: items with a
    vector and no row (missing), and rows a refresh would recompute (stale: their item is gone,
    its vector changed, or they name such an item). See _lag_ctes for how a changed vector is
    found (one distance recomputed per touched row; untouched rows cost nothing)."""
    row = conn.execute(
        "SELECT k, method, seconds, params FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)
    ).fetchone()
    if row is None or not _partition_exists(conn, space):
        missing = _count(conn, _vectors(space))
        return GraphSummary(space.id, space.model, space.target, 0, 0, missing, 0, None, "none")
    k, method, seconds, params = row
    body = sql.SQL(
        "SELECT (SELECT count(*) FROM {graph}),"
        " (SELECT count(*) FROM {vectors} AS e WHERE NOT EXISTS"
        "   (SELECT 1 FROM {graph} AS g WHERE g.item_id = e.{key})),"
        " (SELECT count(*) FROM gone), (SELECT count(*) FROM changed),"
        " CASE WHEN EXISTS (SELECT 1 FROM bad)"
        "   THEN (SELECT count(*) FROM (SELECT item_id FROM bad UNION {naming}) AS stale) ELSE 0 END"
    ).format(
        graph=_partition(space),
        vectors=_vectors(space),
        key=sql.Identifier(_key(space)),
        naming=_naming_bad(space),
    )
    counts = conn.execute(_with_graph(space, body)).fetchone()
    assert counts is not None
    estimated = (params or {}).get("estimated_recall")
    return GraphSummary(
        space.id, space.model, space.target, int(counts[0]), int(k), int(counts[1]), int(counts[4]),
        seconds, method, gone=int(counts[2]), changed=int(counts[3]),
        estimated_recall=float(estimated) if estimated is not None else None,
    )  # fmt: skip


def _partition_exists(conn: psycopg.Connection, space: Space) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"pgsearch.{_partition_name(space)}",)
    ).fetchone()
    return bool(row and row[0])


# -- incremental refresh ---------------------------------------------------------------------------


def refresh_graph(
    conn: psycopg.Connection,
    space: Space,
    k: int | None = None,
    *,
    rebuild: bool = False,
    progress: Progress = None,
    method: str = "auto",
    max_fraction: float = INCREMENTAL_MAX_FRACTION,
) -> GraphSummary:
    """Builds the graph when there is none (or rebuild, or k differs from the stored graph's),
    else brings it up to date: the rows to recompute (missing items, stale rows, see summary)
    go through the HNSW index when they are at most max_fraction of the graph plus
    INCREMENTAL_MIN_ITEMS, else the graph is rebuilt. k: neighbours per item (default: the stored graph's, else DEFAULT_K)."""
    if k is not None and not 1 <= k <= MAX_K:
        raise CurationError(f"-k must be between 1 and {MAX_K}, not {k}")
    started = time.monotonic()
    with _graph_lock(conn, space) as settle:
        row = conn.execute(
            "SELECT k FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)
        ).fetchone()
        stored_k = int(row[0]) if row is not None and _partition_exists(conn, space) else None
        want = k if k is not None else (stored_k or DEFAULT_K)

        def build() -> GraphSummary:
            return _build(
                conn, space, want, settle, progress=progress, method=method, target_recall=TARGET_RECALL
            )

        if rebuild or stored_k is None or stored_k != want:
            return build()
        before = summary(conn, space)
        settle()
        todo = before.missing + before.stale
        if todo == 0:
            return replace(before, seconds=round(time.monotonic() - started, 2), action="up to date")
        indexed = conn.execute(
            "SELECT indexed FROM pgsearch.embedding_spaces WHERE id = %s", (space.id,)
        ).fetchone()
        total = before.items + before.missing
        if not (indexed and indexed[0]) or todo > max_fraction * total + INCREMENTAL_MIN_ITEMS:
            return build()
        settle()
        updated = _refresh(conn, space, want, progress=progress)
        settle()
        after = summary(conn, space)
        settle()
        return replace(
            after, seconds=round(time.monotonic() - started, 2), action="refreshed", updated=updated
        )


def _refresh(conn: psycopg.Connection, space: Space, k: int, *, progress: Progress) -> int:
    """Recomputes the lagging rows through the HNSW index, offers new and changed items to their
    neighbours' rows, deletes the rows of gone items; one transaction. Returns rows written or
    deleted."""
    with _snapshot(conn) as as_of:
        ids = conn.execute(
            _with_graph(
                space,
                sql.SQL(
                    "SELECT array(SELECT item_id FROM gone), array(SELECT item_id FROM changed),"
                    " array(SELECT e.{key} FROM {vectors} AS e WHERE NOT EXISTS"
                    "   (SELECT 1 FROM {graph} AS g WHERE g.item_id = e.{key})),"
                    " array({naming} EXCEPT SELECT item_id FROM bad)"
                ).format(
                    graph=_partition(space),
                    vectors=_vectors(space),
                    key=sql.Identifier(_key(space)),
                    naming=_naming_bad(space),
                ),
            )
        ).fetchone()
        assert ids is not None
        gone, changed, missing, affected = (np.array(a, dtype=np.int64) for a in ids)
        fresh = np.union1d(changed, missing)  # new vectors: their rows, and offered to others
        redo = np.union1d(fresh, affected)  # rows to recompute
        count = _count(conn, _vectors(space))
        _check_k(count, k)
        # New vectors: their REVERSE_CANDIDATES nearest (one walk of ef_search holds that many).
        wide = min(max(REVERSE_CANDIDATES, 2 * k), count - 1)
        found = _hnsw_neighbors(conn, space, fresh, wide, need=k, progress=progress)
        found.update(_hnsw_neighbors(conn, space, np.setdiff1d(affected, fresh), k, progress=progress))
        recomputed = len(found)
        rows: dict[int, tuple[list[int], list[float]]] = {i: (n[:k], d[:k]) for i, (n, d) in found.items()}
        # Reverse edges: a kept row takes a new or changed item that beats its k-th distance.
        skip = set(redo.tolist()) | set(gone.tolist())
        offer_x: list[int] = []
        offer_q: list[int] = []
        offer_d: list[float] = []
        for q in fresh.tolist():
            for x, dist in zip(*found.get(q, ([], [])), strict=True):
                if x not in skip:
                    offer_x.append(x)
                    offer_q.append(q)
                    offer_d.append(dist)
        if offer_x:
            # Only the rows an offer beats come back (a few per new item, of up to 100 offered).
            taking = conn.execute(
                sql.SQL(
                    "SELECT g.item_id, g.neighbor_ids, g.distances, array_agg(o.q ORDER BY o.d, o.q),"
                    " array_agg(o.d ORDER BY o.d, o.q)"
                    " FROM unnest(%s::bigint[], %s::bigint[], %s::real[]) AS o(x, q, d)"
                    " JOIN {} AS g ON g.item_id = o.x"
                    " WHERE cardinality(g.distances) < %s OR o.d < g.distances[cardinality(g.distances)]"
                    " GROUP BY g.item_id, g.neighbor_ids, g.distances"
                ).format(_partition(space)),
                (offer_x, offer_q, offer_d, k),
            ).fetchall()
            for x, nbr, dist, qs, ds in taking:
                merged = sorted(zip(dist, nbr, strict=True))
                taken = {int(i) for i in nbr}
                for d, q in zip(ds, qs, strict=True):
                    if q not in taken and (len(merged) < k or d < merged[-1][0]):
                        merged.append((d, q))
                        merged.sort()
                        del merged[k:]
                        taken.add(q)
                rows[int(x)] = ([i for _, i in merged], [d for d, _ in merged])
        bar = _stage(progress, "writing", len(rows) + len(gone), "item")
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE item_id = ANY(%s)").format(_partition(space)), (gone.tolist(),)
        )
        bar.update(len(gone))
        if rows:
            order = sorted(rows)
            out_ids = np.array(order, dtype=np.int64)
            out_nbr = np.array([rows[i][0] for i in order], dtype=np.int64)
            out_dist = np.array([rows[i][1] for i in order], dtype=np.float32)
            conn.execute("DROP TABLE IF EXISTS pg_temp.pgsearch_neighbor_rows")
            conn.execute(
                "CREATE TEMP TABLE pgsearch_neighbor_rows (LIKE pgsearch.neighbors INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            copy_in(
                conn,
                sql.SQL(
                    "COPY pgsearch_neighbor_rows (space_id, item_id, neighbor_ids, distances, computed_at)"
                    " FROM STDIN (FORMAT binary)"
                ),
                neighbor_rows(
                    space.id, out_ids, out_nbr, out_dist, computed_at=postgres_epoch_us(as_of), progress=bar
                ),
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (space_id, item_id, neighbor_ids, distances, computed_at)"
                    " SELECT space_id, item_id, neighbor_ids, distances, computed_at FROM pgsearch_neighbor_rows"
                    " ON CONFLICT (space_id, item_id) DO UPDATE SET neighbor_ids = excluded.neighbor_ids,"
                    " distances = excluded.distances, computed_at = excluded.computed_at"
                ).format(_partition(space))
            )
        bar.close()
        conn.execute(
            sql.SQL(
                "UPDATE pgsearch.neighbor_graphs SET items = (SELECT count(*) FROM {}), updated_at = now(),"
                " params = params || jsonb_build_object('last_refresh', jsonb_build_object("
                "   'at', now(), 'recomputed', %s::int, 'reverse_updates', %s::int, 'deleted', %s::int))"
                " WHERE space_id = %s"
            ).format(_partition(space)),
            (recomputed, len(rows) - recomputed, len(gone), space.id),
        )
    return len(rows) + len(gone)


def _hnsw_neighbors(
    conn: psycopg.Connection,
    space: Space,
    items: np.ndarray,
    k: int,
    *,
    need: int | None = None,
    progress: Progress,
) -> dict[int, tuple[list[int], list[float]]]:
    """Each item's k nearest other items through the space's HNSW index, a batch of items per
    statement (LATERAL): {item: (neighbour ids, distances)}, nearest first. An item the walk
    finds fewer than `need` (default k) for gets an exact scan instead."""
    if len(items) == 0:
        return {}
    vectors = _vectors(space)
    key = sql.Identifier(_key(space))
    cast = sql.SQL("halfvec({})").format(sql.Literal(space.dim))
    statement = sql.SQL(
        "SELECT q.id, n.ids, n.dists FROM unnest(%s::bigint[]) AS q(id)"
        " JOIN {vectors} AS e ON e.{key} = q.id"
        " CROSS JOIN LATERAL ("
        "   SELECT array_agg(c.id ORDER BY c.d, c.id) AS ids, array_agg(c.d ORDER BY c.d, c.id) AS dists"
        "     FROM (SELECT o.{key} AS id, (o.embedding::{cast} <=> e.embedding::{cast})::real AS d"
        "             FROM {vectors} AS o"
        "            ORDER BY o.embedding::{cast} <=> e.embedding::{cast}"
        "            LIMIT %s) AS c) AS n"
    ).format(vectors=vectors, key=key, cast=cast)
    ef = max(HNSW_EF_SEARCH, min(1000, k + 1))
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
    conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
    bar = _stage(progress, "computing", len(items), "item")
    out: dict[int, tuple[list[int], list[float]]] = {}
    for start in range(0, len(items), HNSW_BATCH):
        batch = items[start : start + HNSW_BATCH].tolist()
        for item, nbr, dist in conn.execute(statement, (batch, k + 1)):
            pairs = [(d, i) for i, d in zip(nbr or [], dist or [], strict=True) if i != item][:k]
            out[int(item)] = ([i for _, i in pairs], [float(d) for d, _ in pairs])
        bar.update(len(batch))
    bar.close()
    short = [i for i, (n, _) in out.items() if len(n) < (k if need is None else need)]
    if short:  # the walk came up short (it should not, unfiltered): an exact scan for those
        exact = sql.SQL(
            "SELECT q.id, n.ids, n.dists FROM unnest(%s::bigint[]) AS q(id)"
            " JOIN {vectors} AS e ON e.{key} = q.id"
            " CROSS JOIN LATERAL ("
            "   SELECT array_agg(c.id ORDER BY c.d, c.id) AS ids, array_agg(c.d ORDER BY c.d, c.id) AS dists"
            "     FROM (SELECT o.{key} AS id, (o.embedding <=> e.embedding)::real AS d FROM {vectors} AS o"
            "            WHERE o.{key} <> q.id ORDER BY (o.embedding <=> e.embedding) + 0, o.{key}"
            "            LIMIT %s) AS c) AS n"
        ).format(vectors=vectors, key=key)
        for item, nbr, dist in conn.execute(exact, (short, k)):
            out[int(item)] = (list(nbr or []), [float(d) for d in dist or []])
    return out


# -- reading ---------------------------------------------------------------------------------------


def load_graph(conn: psycopg.Connection, space: Space, *, progress: Progress = None) -> Graph:
    """The stored graph of `space`, ordered by item id (CurationError when there is none), read
    with binary COPY straight into numpy (1,000,000 rows of 15 in a few seconds)."""
    row = conn.execute(
        "SELECT k, items FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)
    ).fetchone()
    if row is None or not _partition_exists(conn, space):
        raise CurationError(
            f"the {space.target} embeddings of model {space.model} have no neighbour graph yet; "
            "run `pgsearch neighbors` for the dataset first"
        )
    k, items = int(row[0]), int(row[1])
    bar = _stage(progress, "reading graph", items, "item")
    rows = read_neighbor_rows(conn, _partition_name(space), k, count=items, progress=bar)
    bar.close()
    return Graph(rows.ids, rows.neighbor_ids, rows.distances)


def ensure_graph(
    conn: psycopg.Connection, space: Space, k: int = DEFAULT_K, *, progress: Progress = None
) -> Graph:
    """The space's graph with at least k neighbours per item: built first when there is none or
    its k is smaller, brought up to date (refresh_graph) when items were added, changed or
    removed since."""
    found = conn.execute("SELECT k FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)).fetchone()
    if found is None or int(found[0]) < k or not _partition_exists(conn, space):
        build_graph(conn, space, k, progress=progress)
    else:
        refresh_graph(conn, space, int(found[0]), progress=progress)
    return load_graph(conn, space, progress=progress)


# -- the command -----------------------------------------------------------------------------------


def update_graph(
    conn: psycopg.Connection,
    dataset: str,
    *,
    target: str = "asset",
    model: str | None = None,
    k: int | None = None,
    rebuild: bool = False,
    method: str = "auto",
    progress: Progress = None,
) -> GraphSummary:
    """`pgsearch neighbors`: the dataset's space for (target, model), its graph built or brought
    up to date (refresh_graph). Errors a user can fix are CurationError / NotFound, with what to
    run: no such dataset, no embeddings yet, several models and no --model, a bad -k, too few
    embedded items."""
    from pgsearch.curate.spaces import resolve_space

    if k is not None and not 1 <= k <= MAX_K:
        raise CurationError(f"-k must be between 1 and {MAX_K}, not {k}")
    if method not in METHODS:
        raise CurationError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    space = resolve_space(conn, dataset, target, model)
    count = _count(conn, _vectors(space))
    flag = " --shapes" if target == "shape" else ""
    if count == 0:
        raise CurationError(
            f"dataset {dataset!r} has no embedded {target}s of model {space.model} yet: run "
            f"`pgsearch embed --dataset {dataset}` (`pgsearch status --dataset {dataset}` shows what is pending)"
        )
    want = k if k is not None else DEFAULT_K
    if count < want + 1 and k is None and count >= 2:
        # No -k asked for and too few items for the default: every other item is a neighbour.
        k = want = count - 1
    if count < want + 1:
        raise CurationError(
            f"dataset {dataset!r} has {count} embedded {target}{'s' if count != 1 else ''} of model "
            f"{space.model}; a graph of {want} neighbours per item needs at least {want + 1}"
            + (f": use -k {count - 1} or fewer{flag}, or embed more" if count >= 2 else ": embed more")
        )
    if not _idle(conn) and not conn.autocommit:
        conn.commit()
    return refresh_graph(conn, space, k, rebuild=rebuild, progress=progress, method=method)
