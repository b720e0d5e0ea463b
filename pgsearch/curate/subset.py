"""A subset to label first (`pgsearch curate`): N items balanced over the clusters of the space,
small (sparse) clusters favoured over large (dense) ones, at most one item of each near-duplicate
group, isolated junk left out.

    candidates:  the space's items (with a vector and a graph row), narrowed by --where
    junk:        items with no neighbourhood: isolation (the distance to the nearest graph
                 neighbour that is not a near-duplicate) above
                     T = max(JUNK_FACTOR x the 95th percentile of isolation,
                             PAIR_FLOOR x the median distance between two random items)
                 left out unless --include-outliers (then each is a cluster of its own)
    clusters:    the latest map run's clusters (pgsearch map) when it has a point for every
                 candidate (its noise, cluster -1, joins the nearest cluster centroid), else
                 k-means on the vectors, K = round(sqrt(candidates)) (at most N; --clusters)
    quotas:      every cluster one pick, the rest in proportion to sqrt(cluster size): a cluster
                 four times larger gets twice the picks, not four times (QUOTA_POWER)
    picks:       greedy facility location on the neighbour graph under the quotas: each pick
                 is the item that brings the most candidates closer to a picked item than they
                 are to their k-th neighbour (representative and spread at once); after a pick,
                 its duplicates are no longer eligible: its whole duplicate group (the stored
                 groups of a current `pgsearch duplicates` run, else the groups that run would
                 store, found now: identical files and graph edges under the threshold,
                 duplicates.find_duplicates), and its graph neighbours under the threshold

Edge cases against broken images. A rare case that is real comes in a few mutually close items
(a small cluster): each has a near neighbour, so its isolation is small, while its distance to
everything else is large. The facility-location gain of such a group is large (nothing picked
elsewhere covers it), and its cluster's quota is at least one, so it is picked. A broken image
(noise, a blank frame, a wrong file) has no neighbour: its nearest non-duplicate neighbour is
farther away than almost any item's (on the digits, the 20 planted noise images are at 0.32 or
more, the real digits at 0.097 at most, T = 0.13). Near-duplicates of a broken image (the same
upload twice) are skipped when measuring isolation, so a pair of broken twins is still junk.
pgsearch outliers' uniqueness (the mean distance to 15 neighbours) is not used for this: by
design it also flags the members of small rare clusters, the very items worth labelling.

Measured on bench/digits.py's data (bench/tasks_curate.py), see README.md and the module's docs.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pgsearch.curate.spaces import CurationError

DEFAULT_SEED = 0
# Junk: isolation above JUNK_FACTOR x its JUNK_QUANTILE, and above PAIR_FLOOR x the median
# distance between random pairs (so that a dataset of near-identical frames, whose percentile is
# tiny, does not call every distinct image junk).
JUNK_FACTOR = 2.5
JUNK_QUANTILE = 0.95
PAIR_FLOOR = 0.5
PAIR_SAMPLE = 20_000
# Quotas: cluster weight = size ** QUOTA_POWER (1: plain stratified sampling, 0: equal shares).
QUOTA_POWER = 0.5
# The selection graph: the stored graph restricted to the candidates, unless they are under this
# share of the space (a narrow --where), when it is computed again among the candidates alone.
LOCAL_GRAPH_BELOW = 0.5
SELECTION_K = 15
# k-means: on all candidates up to KMEANS_FULL_MAX, else in PCA_DIMS dimensions fitted on a
# sample of KMEANS_SAMPLE_PER_CLUSTER items per cluster.
KMEANS_FULL_MAX = 20_000
KMEANS_SAMPLE_PER_CLUSTER = 40
KMEANS_INIT_PER_CLUSTER = 8
KMEANS_SAMPLE_MIN = 20_000
KMEANS_SAMPLE_MAX = 200_000
PCA_DIMS = 64
MAX_CLUSTERS = 5_000  # the default K's cap, and --clusters' upper bound
# --seed: what numpy's and scikit-learn's generators both take.
MAX_SEED = 2**32 - 1
ASSIGN_BLOCK = 16_384


@dataclass
class Clustering:
    """Cluster of every candidate (-1: junk left out), and what the clusters are."""

    labels: np.ndarray  # int64 (n,) per candidate
    sizes: np.ndarray  # int64 (K,) candidates per cluster (junk excluded)
    isolated: np.ndarray  # bool (K,): a cluster of one isolated item (--include-outliers)
    source: str  # "map" or "kmeans"
    names: list[str]  # display name per cluster ("map cluster 3", "k-means 12", "isolated 4211")
    run_id: int | None = None  # the map run
    noise_joined: int = 0  # map noise points given to their nearest cluster


@dataclass
class Selection:
    """What select() chose, and what a report compares it with."""

    candidates: np.ndarray  # int64 ids, ascending
    picked: np.ndarray  # int64 ids, in pick order
    random: np.ndarray  # int64 ids: a seeded random subset of the same size of the same candidates
    clustering: Clustering
    junk: np.ndarray  # bool per candidate
    isolation: np.ndarray  # float32 per candidate
    junk_threshold: float
    duplicates_skipped: int  # eligible candidates made ineligible by a picked near-duplicate
    duplicate_threshold: float
    quotas: np.ndarray  # int64 (K,)
    graph_kind: str  # "stored" or "local"
    stats: dict[str, Any] = field(default_factory=dict)

    def picked_per_cluster(self, ids: np.ndarray) -> np.ndarray:
        """How many of `ids` (candidates) fall in each cluster (junk counts in none)."""
        at = np.searchsorted(self.candidates, ids)
        labels = self.clustering.labels[at]
        labels = labels[labels >= 0]
        return np.bincount(labels, minlength=len(self.clustering.sizes)).astype(np.int64)

    def junk_in(self, ids: np.ndarray) -> int:
        at = np.searchsorted(self.candidates, ids)
        return int(self.junk[at].sum())


def random_subset(candidates: np.ndarray, size: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The report's baseline: `size` of the candidate ids (ascending) drawn uniformly without
    replacement by numpy's default_rng(seed), sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.asarray(candidates, dtype=np.int64), size=size, replace=False))


# -- junk ----------------------------------------------------------------------------------------


def isolation(distances: np.ndarray, neighbor_ok: np.ndarray, threshold: float) -> np.ndarray:
    """Per graph row, the distance to its nearest neighbour at or above the duplicates threshold
    (its first neighbour that is not a near-duplicate); a row whose every neighbour is a
    near-duplicate gets its farthest neighbour's distance (it sits among copies: not isolated);
    a row without neighbours, inf."""
    valid = neighbor_ok & np.isfinite(distances)
    far = valid & (distances >= threshold)
    first = np.argmax(far, axis=1)
    rows = np.arange(len(distances))
    has_far = far.any(axis=1)
    out = np.full(len(distances), np.inf, dtype=np.float32)
    out[has_far] = distances[rows[has_far], first[has_far]]
    only_near = ~has_far & valid.any(axis=1)
    if only_near.any():
        last = valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
        out[only_near] = distances[rows[only_near], last[only_near]]
    return out


def median_pair_distance(vectors: np.ndarray, seed: int, sample: int = PAIR_SAMPLE) -> float:
    """The median cosine distance between random pairs of distinct rows (unit vectors)."""
    n = len(vectors)
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed + 7919)
    a = rng.integers(0, n, size=sample)
    b = (a + rng.integers(1, n, size=sample)) % n
    d = 1.0 - np.einsum("ij,ij->i", vectors[a], vectors[b])
    return float(np.median(d))


def junk_threshold(iso: np.ndarray, pair_median: float) -> float:
    finite = iso[np.isfinite(iso)]
    if not len(finite):
        return math.inf
    return float(max(JUNK_FACTOR * np.quantile(finite, JUNK_QUANTILE), PAIR_FLOOR * pair_median))


# -- clusters ------------------------------------------------------------------------------------


def default_clusters(candidates: int, size: int) -> int:
    return int(max(1, min(size, round(math.sqrt(candidates)), MAX_CLUSTERS, candidates)))


def _nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared euclidean) of every row of x, in blocks."""
    c2 = np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), ASSIGN_BLOCK):
        block = x[start : start + ASSIGN_BLOCK]
        out[start : start + len(block)] = np.argmin(c2[None, :] - 2.0 * (block @ centroids.T), axis=1)
    return out


def kmeans(vectors: np.ndarray, rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means labels (0..k-1, every label used) of vectors[rows]. Up to KMEANS_FULL_MAX rows:
    scikit-learn's KMeans on all of them; above: PCA to PCA_DIMS dimensions and KMeans fitted on
    a sample, every row then given its nearest centroid, a block of rows at a time (the rows are
    never copied whole)."""
    n = len(rows)
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=np.int64)
    k = min(k, n)
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        raise CurationError(
            "pgsearch curate needs scikit-learn: python3 -m pip install 'pgsearch[curate]'"
        ) from None
    if n <= KMEANS_FULL_MAX:
        labels = KMeans(k, n_init=3, random_state=seed).fit_predict(vectors[rows]).astype(np.int64)
    else:
        rng = np.random.default_rng(seed)
        m = int(min(n, max(KMEANS_SAMPLE_MIN, KMEANS_SAMPLE_PER_CLUSTER * k), KMEANS_SAMPLE_MAX))
        sample = vectors[rows[np.sort(rng.choice(n, size=m, replace=False))]].astype(np.float32)
        mean = sample.mean(axis=0)
        sample -= mean
        dims = min(PCA_DIMS, vectors.shape[1], m)
        # The principal axes: eigenvectors of the (d x d) scatter matrix, largest first (an SVD of
        # the sample itself would compute its (m x d) left factor for nothing).
        _, axes = np.linalg.eigh((sample.T @ sample).astype(np.float64))
        basis = np.ascontiguousarray(axes[:, ::-1][:, :dims].astype(np.float32))  # (d, dims)
        reduced = sample @ basis
        del sample
        # Seeds: k-means++ (plain D^2 sampling) on a part of the sample; scikit-learn's greedy
        # k-means++ over the whole sample costs minutes at k = 1,000 where this costs seconds.
        from sklearn.cluster import kmeans_plusplus

        part = reduced[rng.choice(m, size=min(m, KMEANS_INIT_PER_CLUSTER * k), replace=False)]
        init, _ = kmeans_plusplus(part, k, random_state=seed, n_local_trials=1)
        model = KMeans(k, init=init, n_init=1, max_iter=100).fit(reduced)
        del reduced
        centroids = model.cluster_centers_.astype(np.float32)
        labels = np.empty(n, dtype=np.int64)
        for start in range(0, n, ASSIGN_BLOCK):
            block = (vectors[rows[start : start + ASSIGN_BLOCK]] - mean) @ basis
            labels[start : start + len(block)] = _nearest_centroid(block, centroids)
    # Renumber so that every label is used (an emptied centroid leaves a gap).
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64)


def map_clusters(
    vectors: np.ndarray, rows: np.ndarray, cluster_of_item: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """A map run's clusters for vectors[rows] (cluster_of_item: the run's cluster per row, -1
    noise): (labels 0..K-1, the map's cluster id per label, noise rows joined). Noise rows join
    the cluster whose centroid (mean of its members' vectors) is nearest."""
    ids, labels = np.unique(np.where(cluster_of_item >= 0, cluster_of_item, -1), return_inverse=True)
    labels = labels.astype(np.int64)
    if len(ids) and ids[0] == -1:
        labels -= 1
        ids = ids[1:]
    noise = labels < 0
    joined = int(noise.sum())
    if joined and len(ids):
        from scipy.sparse import csr_matrix

        k = len(ids)
        sums = np.zeros((k, vectors.shape[1]), dtype=np.float64)
        for start in range(0, len(rows), ASSIGN_BLOCK):
            part = labels[start : start + ASSIGN_BLOCK]
            inside = np.flatnonzero(part >= 0)
            one_hot = csr_matrix(
                (np.ones(len(inside), dtype=np.float32), (part[inside], inside)), shape=(k, len(part))
            )
            sums += one_hot @ vectors[rows[start : start + ASSIGN_BLOCK]]
        counts = np.bincount(labels[~noise], minlength=k)
        centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        labels[noise] = _nearest_centroid(vectors[rows[noise]], centroids)
    elif joined:
        labels[:] = 0
        ids = np.array([-1])
    return labels, ids.astype(np.int64), joined


def quotas(sizes: np.ndarray, size: int, power: float | None = None) -> np.ndarray:
    """Picks per cluster: every cluster one (the smallest clusters first when there are more
    clusters than picks), the rest in proportion to size ** power (default QUOTA_POWER; largest
    remainders), never more than the cluster holds."""
    power = QUOTA_POWER if power is None else power
    sizes = np.asarray(sizes, dtype=np.int64)
    k = len(sizes)
    q = np.zeros(k, dtype=np.int64)
    if size <= 0 or k == 0:
        return q
    if size <= k:
        order = np.lexsort((np.arange(k), sizes))
        q[order[:size]] = 1
        return q
    caps: np.ndarray = np.maximum(sizes, 1)
    if size >= caps.sum():
        return np.asarray(caps, dtype=np.int64)
    weight = caps.astype(np.float64) ** power

    def share(t: float) -> np.ndarray:
        return np.asarray(np.clip(weight * t, 1.0, caps), dtype=np.float64)

    lo, hi = 0.0, 1.0
    while np.floor(share(hi)).sum() < size:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.floor(share(mid)).sum() <= size:
            lo = mid
        else:
            hi = mid
    exact = share(lo)
    q = np.floor(exact).astype(np.int64)
    rest = size - int(q.sum())
    if rest > 0:
        room = q < caps
        remainder = np.where(room, exact - q, -1.0)
        order = np.lexsort((np.arange(k), -remainder))
        order = order[room[order]][:rest]
        q[order] += 1
        rest = size - int(q.sum())
    while rest > 0:  # ties at a jump of share(): the largest clusters with room take one more
        room = np.flatnonzero(q < caps)
        take = room[np.argsort(-weight[room], kind="stable")][:rest]
        q[take] += 1
        rest = size - int(q.sum())
    return np.asarray(q, dtype=np.int64)


# -- the picks -----------------------------------------------------------------------------------


@dataclass
class _Csr:
    ptr: np.ndarray
    idx: np.ndarray

    def row(self, i: int) -> np.ndarray:
        return self.idx[self.ptr[i] : self.ptr[i + 1]]


def _csr(n: int, src: np.ndarray, dst: np.ndarray) -> _Csr:
    order = np.argsort(src, kind="stable")
    return _Csr(np.searchsorted(src[order], np.arange(n + 1)), dst[order].astype(np.int64))


def facility_location(
    neighbors: np.ndarray,
    distances: np.ndarray,
    clusters: np.ndarray,
    quota: np.ndarray,
    size: int,
    duplicate_edges: tuple[np.ndarray, np.ndarray],
    duplicate_group: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Greedy facility location under per-cluster quotas (lazy greedy: gains only shrink).

    neighbors: (m, k) row positions of each row's graph neighbours, -1 for none; distances: the
    cosine distances. Row i can be represented by itself (similarity 1) or by any of its listed
    neighbours j (similarity 1 - d); its baseline is its k-th listed neighbour's similarity, so a
    pick gains, for each row it represents, how much closer that row gets than its own k-th
    neighbour. Rows in sparse regions (a far k-th neighbour) weigh more.

    duplicate_edges: (a, b) row pairs that are near-duplicates; duplicate_group: per row a group
    number (-1 none). A pick makes its duplicates ineligible. When quotas cannot be met because of
    that, the remaining picks are made without quotas. Returns (row positions in pick order,
    rows made ineligible by a picked duplicate)."""
    m = len(neighbors)
    if size <= 0 or m == 0:
        return np.zeros(0, dtype=np.int64), 0
    valid = (neighbors >= 0) & np.isfinite(distances)
    sim = np.where(valid, 1.0 - distances, np.inf).astype(np.float32)
    baseline = sim.min(axis=1).astype(np.float64)  # the k-th (farthest listed) neighbour's similarity
    no_neighbours = ~np.isfinite(baseline)
    if no_neighbours.any():
        has = ~no_neighbours
        baseline[no_neighbours] = float(np.median(baseline[has])) if has.any() else 0.0
    index = np.int32 if m < 2**31 - 1 else np.int64
    client, slot = np.nonzero(valid)
    del valid
    candidate = neighbors[client, slot].astype(index)
    weights = sim[client, slot]
    del sim, slot
    # Self edges: every row represents itself exactly.
    client = np.concatenate([client.astype(index), np.arange(m, dtype=index)])
    candidate = np.concatenate([candidate, np.arange(m, dtype=index)])
    weights = np.concatenate([weights, np.ones(m, dtype=np.float32)])
    order = np.argsort(candidate, kind="stable")
    client, candidate, weights = client[order], candidate[order], weights[order]
    del order
    ptr = np.searchsorted(candidate, np.arange(m + 1))
    best = baseline
    gains = np.bincount(candidate, weights=np.maximum(weights - best[client], 0.0), minlength=m)
    del candidate

    dup = _csr(m, *map(np.asarray, (np.concatenate(duplicate_edges), np.concatenate(duplicate_edges[::-1]))))
    grouped = np.flatnonzero(duplicate_group >= 0)
    group_members = _csr(
        int(duplicate_group.max()) + 1 if len(grouped) else 0, duplicate_group[grouped], grouped
    )

    blocked = np.zeros(m, dtype=bool)
    left = quota.astype(np.int64).copy()
    picked: list[int] = []
    skipped = 0

    def gain_of(j: int) -> float:
        lo, hi = ptr[j], ptr[j + 1]
        return float(np.maximum(weights[lo:hi] - best[client[lo:hi]], 0.0).sum())

    def run(use_quota: bool) -> None:
        nonlocal skipped
        heap = [(-float(g), int(j)) for j, g in enumerate(gains) if not blocked[j]]
        heapq.heapify(heap)
        while heap and len(picked) < size:
            _, j = heapq.heappop(heap)
            if blocked[j] or (use_quota and left[clusters[j]] <= 0):
                continue
            g = gain_of(j)
            if heap and g < -heap[0][0] - 1e-12:
                heapq.heappush(heap, (-g, j))
                continue
            picked.append(j)
            left[clusters[j]] -= 1
            lo, hi = ptr[j], ptr[j + 1]
            rows = client[lo:hi]
            best[rows] = np.maximum(best[rows], weights[lo:hi])
            gains[j] = g
            blocked[j] = True
            twins = dup.row(j)
            if duplicate_group[j] >= 0:
                twins = np.concatenate([twins, group_members.row(int(duplicate_group[j]))])
            if len(twins):
                fresh = twins[~blocked[twins]]
                fresh = np.unique(fresh)
                skipped += len(fresh)
                blocked[fresh] = True

    run(use_quota=True)
    if len(picked) < size:
        run(use_quota=False)
    return np.asarray(picked, dtype=np.int64), skipped


# -- the whole selection ---------------------------------------------------------------------------


def _too_few(size: int, eligible: int, candidates: int, junk: int, twins: int, where: bool) -> str:
    """The error when fewer than `size` candidates are eligible: how many were left out, why."""
    parts = []
    if junk:
        parts.append(
            f"{junk:,} {'is' if junk == 1 else 'are'} junk (isolated: no near neighbour; "
            "--include-outliers keeps them)"
        )
    if twins:
        parts.append(
            f"{twins:,} {'is a near-duplicate' if twins == 1 else 'are near-duplicates'} of others "
            "(one per duplicate group is eligible)"
        )
    matching = " matching --where" if where else ""
    why = f"of {candidates:,} candidate{'s' if candidates != 1 else ''}{matching}, "
    why += " and ".join(parts) if parts else "none is left out"
    if eligible == 0:
        hints = (["give --include-outliers"] if junk else []) + (["widen --where"] if where else [])
        return f"no eligible candidates: {why}" + (f"; {' or '.join(hints)}" if hints else "")
    return (
        f"--size {size:,} is more than the {eligible:,} eligible candidate{'s' if eligible != 1 else ''}: "
        f"{why}; choose --size {eligible:,} or less"
    )


def select(
    *,
    ids: np.ndarray,
    vectors: np.ndarray,
    graph_neighbors: np.ndarray,
    graph_distances: np.ndarray,
    candidate: np.ndarray,
    size: int,
    duplicate_threshold: float,
    duplicate_group: np.ndarray | None = None,
    map_cluster: np.ndarray | None = None,
    map_run: int | None = None,
    clusters: int | None = None,
    include_outliers: bool = False,
    seed: int = DEFAULT_SEED,
    knn: Any = None,
) -> Selection:
    """Chooses `size` of the candidates (see the module docstring).

    ids: int64 (n,) ascending, the space's items with a vector and a graph row; vectors: their
    unit vectors (float32 (n, d)); graph_neighbors: (n, k) row positions of the stored graph's
    neighbours (-1: none), graph_distances: their distances; candidate: bool (n,), the items
    --where keeps; duplicate_group: per row the stored duplicate group (-1 none) or None;
    map_cluster: per row the latest map run's cluster (-1 noise; None: no usable run);
    clusters: K for k-means (and k-means even when a map run exists); knn: the function that
    computes a local graph, graph.knn's signature (positions, distances) = knn(x, k)."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    n = len(ids)
    cand_rows = np.flatnonzero(candidate)
    n_cand = len(cand_rows)
    if size < 1:
        raise CurationError(f"--size must be at least 1, not {size}")
    if size > n_cand:
        raise CurationError(
            f"--size {size:,} is more than the {n_cand:,} candidate item{'s' if n_cand != 1 else ''}"
            + (" matching --where" if n_cand < n else "")
            + f"; choose --size {n_cand:,} or less"
        )

    # Junk, from the whole space's graph.
    ok = graph_neighbors >= 0
    iso_all = isolation(graph_distances, ok, duplicate_threshold)
    pair_median = median_pair_distance(vectors, seed)
    threshold = junk_threshold(iso_all, pair_median)
    iso = iso_all[cand_rows]
    junk = iso > threshold
    timings["junk_s"] = time.monotonic() - started

    eligible_rows = cand_rows if include_outliers else cand_rows[~junk]
    m = len(eligible_rows)
    if m < size:  # only without --include-outliers: junk left out leaves too few
        raise CurationError(_too_few(size, m, n_cand, int(junk.sum()), 0, n_cand < n))

    # Clusters over the eligible candidates (isolated ones, when included, each on their own).
    t0 = time.monotonic()
    core = ~junk[np.searchsorted(cand_rows, eligible_rows)] if include_outliers else np.ones(m, dtype=bool)
    core_rows = np.flatnonzero(core)
    names: list[str]
    noise_joined = 0
    use_map = map_cluster is not None and clusters is None
    if use_map:
        assert map_cluster is not None
        core_labels, map_ids, noise_joined = map_clusters(
            vectors, eligible_rows[core_rows], map_cluster[eligible_rows[core_rows]]
        )
        names = [f"map cluster {c}" if c >= 0 else "map noise" for c in map_ids.tolist()]
        source = "map"
    else:
        k = clusters if clusters is not None else default_clusters(len(core_rows), size)
        k = int(max(1, min(k, len(core_rows)))) if len(core_rows) else 0
        core_labels = kmeans(vectors, eligible_rows[core_rows], k, seed) if k else np.zeros(0, dtype=np.int64)
        k = int(core_labels.max()) + 1 if len(core_labels) else 0
        names = [f"k-means {c}" for c in range(k)]
        source = "kmeans"
    labels_elig = np.full(m, -1, dtype=np.int64)
    labels_elig[core_rows] = core_labels
    base_k = len(names)
    isolated_rows = np.flatnonzero(~core)
    labels_elig[isolated_rows] = base_k + np.arange(len(isolated_rows))
    names += [f"isolated {int(ids[eligible_rows[r]])}" for r in isolated_rows.tolist()]
    k_total = len(names)
    sizes = np.bincount(labels_elig, minlength=k_total).astype(np.int64)
    isolated = np.zeros(k_total, dtype=bool)
    isolated[base_k:] = True
    cand_labels = np.full(n_cand, -1, dtype=np.int64)
    cand_labels[np.searchsorted(cand_rows, eligible_rows)] = labels_elig
    timings["clusters_s"] = time.monotonic() - t0

    # The selection graph over the eligible rows.
    t0 = time.monotonic()
    position = np.full(n, -1, dtype=np.int64)
    position[eligible_rows] = np.arange(m)
    local = m < n and m < LOCAL_GRAPH_BELOW * n and m > 1 and knn is not None
    stored_nb = np.where(ok[eligible_rows], position[np.maximum(graph_neighbors[eligible_rows], 0)], -1)
    stored_d = graph_distances[eligible_rows]
    if local:
        k_local = min(SELECTION_K, m - 1)
        nb, dist = knn(vectors[eligible_rows], k_local)
        nb = np.asarray(nb, dtype=np.int64)
        dist = np.asarray(dist, dtype=np.float32)
    else:
        nb, dist = stored_nb, np.where(stored_nb >= 0, stored_d, np.inf).astype(np.float32)
    timings["selection_graph_s"] = time.monotonic() - t0

    # Near-duplicate relations among the eligible rows: stored-graph edges under the threshold
    # (and the local graph's), and the stored duplicate groups.
    near = (stored_nb >= 0) & (stored_d < duplicate_threshold)
    a, slot = np.nonzero(near)
    b = stored_nb[a, slot]
    if local:
        near_local = (nb >= 0) & (dist < duplicate_threshold)
        a2, s2 = np.nonzero(near_local)
        a, b = np.concatenate([a, a2]), np.concatenate([b, nb[a2, s2]])
    groups = duplicate_group[eligible_rows] if duplicate_group is not None else np.full(m, -1, dtype=np.int64)
    if duplicate_group is not None and (groups >= 0).any():
        _, dense = np.unique(groups[groups >= 0], return_inverse=True)
        groups = groups.copy()
        groups[groups >= 0] = dense

    # Every item is eligible only once per duplicate relation: N must not exceed what is left.
    t0 = time.monotonic()
    q = quotas(sizes, size)
    picks, skipped = facility_location(nb, dist, labels_elig, q, size, (a, b), groups)
    timings["picks_s"] = time.monotonic() - t0
    if len(picks) < size:
        left_out = 0 if include_outliers else int(junk.sum())
        raise CurationError(_too_few(size, len(picks), n_cand, left_out, m - len(picks), n_cand < n))
    picked_ids = ids[eligible_rows[picks]]
    candidates = ids[cand_rows]
    clustering = Clustering(
        labels=cand_labels,
        sizes=sizes,
        isolated=isolated,
        source=source,
        names=names,
        run_id=map_run if use_map else None,
        noise_joined=noise_joined,
    )
    timings["total_s"] = time.monotonic() - started
    return Selection(
        candidates=candidates,
        picked=picked_ids,
        random=random_subset(candidates, size, seed),
        clustering=clustering,
        junk=junk,
        isolation=iso.astype(np.float32),
        junk_threshold=threshold,
        duplicates_skipped=skipped,
        duplicate_threshold=duplicate_threshold,
        quotas=q,
        graph_kind="local" if local else "stored",
        stats={
            "pair_median_distance": pair_median,
            "eligible": m,
            "timings": {key: round(value, 3) for key, value in timings.items()},
        },
    )


# -- against the database --------------------------------------------------------------------------


@dataclass(frozen=True)
class CurateRequest:
    """What `pgsearch curate` takes (see the command's help)."""

    dataset: str
    size: int
    group: str
    where: str | None = None
    model: str | None = None
    seed: int = DEFAULT_SEED
    include_outliers: bool = False
    clusters: int | None = None
    replace: bool = False


@dataclass
class CurateResult:
    selection: Selection
    space: Any  # pgsearch.loader.spaces.Space
    run_id: int  # curation_runs.id
    added: int  # assets added to the group
    removed: int  # assets taken out of the group first (--replace)
    params: dict[str, Any]
    notes: list[str]
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The numbers `pgsearch curate` prints (and --format json)."""
        s = self.selection
        k = len(s.clustering.sizes)
        covered = int((s.picked_per_cluster(s.picked) > 0).sum())
        covered_random = int((s.picked_per_cluster(s.random) > 0).sum())
        return {
            "dataset": self.params["dataset"],
            "model": self.space.model,
            "group": self.params["group"],
            "run_id": self.run_id,
            "chosen": int(len(s.picked)),
            "candidates": int(len(s.candidates)),
            "where": self.params["where"],
            "clusters": k,
            "clustering": self.params["clustering"],
            "covered": covered,
            "covered_pct": round(100.0 * covered / k, 1) if k else 0.0,
            "random_covered": covered_random,
            "random_covered_pct": round(100.0 * covered_random / k, 1) if k else 0.0,
            "junk": int(s.junk.sum()),
            "junk_excluded": 0 if self.params["include_outliers"] else int(s.junk.sum()),
            "junk_threshold": round(s.junk_threshold, 6),
            "junk_in_random": s.junk_in(s.random),
            "duplicates_skipped": int(s.duplicates_skipped),
            "duplicate_threshold": s.duplicate_threshold,
            "duplicates_source": self.params["duplicates"],
            "added_to_group": self.added,
            "removed_from_group": self.removed,
            "seed": self.params["seed"],
            "seconds": round(self.seconds, 2),
            "timings": dict(s.stats.get("timings", {})),
            "notes": list(self.notes),
        }


def group_size(conn: Any, dataset_id: int, group: str) -> int:
    found = conn.execute(
        "SELECT count(*) FROM pgsearch.assets WHERE dataset_id = %s AND %s = ANY(groups)", (dataset_id, group)
    ).fetchone()
    return int(found[0]) if found else 0


def check_group(conn: Any, dataset_id: int, group: str, replace: bool) -> int:
    """The group's current size; CurationError when it holds assets and replace is not given."""
    if not group or not group.strip():
        raise CurationError("--into-group must not be empty")
    existing = group_size(conn, dataset_id, group)
    if existing and not replace:
        raise CurationError(
            f"group {group!r} already holds {existing:,} asset{'s' if existing != 1 else ''}; give --replace "
            "to empty it first (it then holds exactly the new subset), or choose another group name"
        )
    return existing


def where_ids(conn: Any, dataset: str, where: str) -> np.ndarray:
    """Ids (ascending) of the assets matching a query of the query language, through the API: the
    statement pgsearch query would run, without its row limit."""
    from psycopg import sql as pgsql

    from pgsearch.api import Client, SearchRequest
    from pgsearch.translator.compiler import MAX_LIMIT

    compiled = Client(conn).compile(SearchRequest(dataset=dataset, query=where, limit=MAX_LIMIT))
    params = dict(compiled.params)
    if "limit" in params:
        params["limit"] = None  # LIMIT NULL: every matching row
    statement = pgsql.SQL("SELECT q.id FROM ({}) AS q").format(pgsql.SQL(compiled.sql))
    with conn.cursor() as cur:
        cur.execute(statement, params)
        rows = cur.fetchall()
    conn.commit()
    return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))


def _aligned(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in ids of the wanted ids that are there, mask over wanted of those found)."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    found = ids[at] == wanted
    return at[found], found


def run_curate(
    conn: Any,
    request: CurateRequest,
    *,
    say: Any = None,
    progress: Any = None,
) -> CurateResult:
    """Selects the subset, writes the group (through the API's group edit) and records the run in
    pgsearch.curation_runs (tool 'curate'). say(text): notes for the user; progress: a stage
    factory as the graph functions take it."""
    from psycopg import sql as pgsql

    from pgsearch.api import Client
    from pgsearch.curate import duplicates as dup
    from pgsearch.curate import graph as graphs
    from pgsearch.curate import outliers as outl
    from pgsearch.curate.copyio import read_space_vectors
    from pgsearch.curate.results import latest_run
    from pgsearch.curate.spaces import resolve_space

    def note(text: str) -> None:
        notes.append(text)
        if say is not None:
            say(text)

    started = time.monotonic()
    notes: list[str] = []
    check_request(request)
    space = resolve_space(conn, request.dataset, "asset", request.model)
    check_group(conn, space.dataset_id, request.group, request.replace)
    wanted = where_ids(conn, request.dataset, request.where) if request.where is not None else None
    if wanted is not None and not len(wanted):
        raise CurationError(f"--where matches no asset of dataset {request.dataset!r}")
    if wanted is not None and len(wanted) < request.size:
        raise CurationError(
            f"--size {request.size:,} is more than the {len(wanted):,} asset{'s' if len(wanted) != 1 else ''} "
            f"matching --where; choose --size {len(wanted):,} or less"
        )
    counted = conn.execute(
        pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier("pgsearch", space.table_name))
    ).fetchone()
    embedded = int(counted[0]) if counted else 0
    if embedded < 2:
        raise CurationError(
            f"dataset {request.dataset!r} has {embedded} asset{'' if embedded == 1 else 's'} embedded with "
            f"{space.model}; curate needs at least 2 (`pgsearch status --dataset {request.dataset}` shows "
            "what is pending, `pgsearch embed` computes it)"
        )
    # The graph's k: SELECTION_K, or every other item on a smaller space (as pgsearch duplicates).
    k = min(SELECTION_K, embedded - 1)
    found = conn.execute("SELECT 1 FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)).fetchone()
    if found is None and say is not None:
        say(
            f"no neighbour graph yet for the assets of model {space.model}: building it (k {k}; "
            "`pgsearch neighbors` does the same)"
        )
    t0 = time.monotonic()
    graph = graphs.ensure_graph(conn, space, k, progress=progress)
    conn.commit()
    graph_s = time.monotonic() - t0
    t0 = time.monotonic()
    vectors = read_space_vectors(conn, space.table_name, "asset_id", space.dim)
    conn.commit()
    read_s = time.monotonic() - t0
    t0 = time.monotonic()

    # Rows: items with both a vector and a graph row (ensure_graph brought the graph up to date).
    rows_in_vectors, in_graph = _aligned(vectors.ids, graph.ids)
    ids = graph.ids[in_graph]
    x = vectors.vectors[rows_in_vectors] if len(rows_in_vectors) != len(vectors.ids) else vectors.vectors
    del vectors
    positions = graph.positions()[in_graph]
    if not in_graph.all():
        # Neighbours that are not rows any more: renumber into the kept rows.
        keep_of_old = np.full(len(graph.ids), -1, dtype=np.int64)
        keep_of_old[np.flatnonzero(in_graph)] = np.arange(len(ids))
        positions = np.where(positions >= 0, keep_of_old[np.maximum(positions, 0)], -1)
    distances = graph.distances[in_graph]
    if wanted is None:
        candidate = np.ones(len(ids), dtype=bool)
    else:
        at, hit = _aligned(ids, wanted)
        candidate = np.zeros(len(ids), dtype=bool)
        candidate[at] = True
        if (~hit).any():
            note(
                f"{int((~hit).sum()):,} assets matching --where have no {space.model} vector yet; they are not candidates"
            )
    n_cand = int(candidate.sum())
    if n_cand == 0 and wanted is not None:
        raise CurationError(
            f"none of the {len(wanted):,} assets matching --where has a {space.model} vector yet "
            f"(`pgsearch embed --dataset {request.dataset}` computes them)"
        )
    if n_cand < request.size:
        raise CurationError(
            f"--size {request.size:,} is more than the {n_cand:,} candidate asset{'s' if n_cand != 1 else ''} "
            f"(embedded with {space.model}{', matching --where' if wanted is not None else ''}); "
            f"choose --size {n_cand:,} or less"
        )

    # Near-duplicates: the stored groups of a current `pgsearch duplicates` run, else the groups
    # it would store, found now (graph edges under the threshold and identical files, whole: a
    # pick blocks its group even where its members are not in each other's neighbour lists).
    run = latest_run(conn, space, "duplicates")
    if run is not None and not run.changed_since:
        threshold = float(run.params.get("threshold", dup.threshold_for(space.model)[0]))
        groups = dup.stored_groups(conn, space)
        duplicates_source = f"stored groups of duplicates run {run.run_id} (threshold {threshold:g})"
    else:
        threshold = dup.threshold_for(space.model)[0]
        groups = dup.find_duplicates(conn, space, graph, threshold)
        duplicates_source = (
            f"duplicate groups found now: identical files and neighbour graph edges under {threshold:g}"
        )
        if run is not None:
            duplicates_source += f" (duplicates run {run.run_id} is stale)"
    at, hit = _aligned(ids, groups.item_ids)
    group_of = np.full(len(ids), -1, dtype=np.int64)
    group_of[at] = groups.group[hit]
    del groups

    # Clusters: the latest map run when it has a point for every candidate.
    map_cluster: np.ndarray | None = None
    map_run = outl.latest_map(conn, space) if request.clusters is None else None
    if map_run is not None:
        point_ids, point_clusters = outl.map_points(conn, map_run)
        at, hit = _aligned(point_ids, ids)
        if hit[candidate].all():
            map_cluster = np.full(len(ids), -1, dtype=np.int64)
            map_cluster[hit] = point_clusters[at]
        else:
            missing = int((~hit[candidate]).sum())
            note(
                f"map run {map_run} has no point for {missing:,} of the candidates (embedded after it); "
                "clustering with k-means instead (`pgsearch map` again to use its clusters)"
            )
            map_run = None
    conn.commit()

    prepare_s = time.monotonic() - t0
    selection = select(
        ids=ids,
        vectors=x,
        graph_neighbors=positions,
        graph_distances=distances,
        candidate=candidate,
        size=request.size,
        duplicate_threshold=threshold,
        duplicate_group=group_of,
        map_cluster=map_cluster,
        map_run=map_run,
        clusters=request.clusters,
        include_outliers=request.include_outliers,
        seed=request.seed,
        knn=lambda v, k: graphs.knn(v, k, seed=request.seed),
    )
    c = selection.clustering
    clustering = (
        f"map run {c.run_id}: {len(c.sizes) - int(c.isolated.sum())} clusters"
        + (f", {c.noise_joined:,} noise points joined to the nearest" if c.noise_joined else "")
        if c.source == "map"
        else f"k-means, K {len(c.sizes) - int(c.isolated.sum())}"
    )
    if c.isolated.any():
        clustering += f", + {int(c.isolated.sum())} isolated items as clusters of one"

    params: dict[str, Any] = {
        "dataset": request.dataset,
        "size": request.size,
        "group": request.group,
        "where": request.where,
        "seed": request.seed,
        "include_outliers": request.include_outliers,
        "clusters_requested": request.clusters,
        "clustering": clustering,
        "clusters": len(c.sizes),
        "map_run": c.run_id,
        "duplicates": duplicates_source,
        "duplicate_threshold": threshold,
        "junk_threshold": selection.junk_threshold,
        "replace": request.replace,
        "selection_graph": selection.graph_kind,
        "quota_power": QUOTA_POWER,
    }

    # The group, through the API's group edit (--replace: its members out first), and the run's
    # row in one transaction: a run interrupted or failing anywhere leaves the group as it was.
    t0 = time.monotonic()
    client = Client(conn)
    conn.commit()  # idle: the block below is a transaction of its own, committed at its end
    with conn.transaction():
        check_group(conn, space.dataset_id, request.group, request.replace)  # again, under the edit
        members = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM pgsearch.assets WHERE dataset_id = %s AND %s = ANY(groups)",
                (space.dataset_id, request.group),
            ).fetchall()
        ]
        added, removed = client.edit_group(
            request.dataset, request.group, add=selection.picked.tolist(), remove=members, commit=False
        )
        group_s = time.monotonic() - t0
        seconds = time.monotonic() - started
        stats = dict(selection.stats)
        stats["timings"] = dict(
            stats.get("timings", {}),
            neighbour_graph_s=round(graph_s, 3),
            read_vectors_s=round(read_s, 3),
            prepare_s=round(prepare_s, 3),
            group_s=round(group_s, 3),
        )
        selection.stats = stats
        run_id = record_run(conn, space, params, n_cand, len(selection.picked), seconds)
    conn.commit()
    return CurateResult(selection, space, run_id, added, removed, params, notes, seconds)


def record_run(
    conn: Any, space: Any, params: dict[str, Any], items: int, flagged: int, seconds: float
) -> int:
    """Inserts the run's pgsearch.curation_runs row (tool 'curate') in the current transaction;
    its id."""
    from psycopg.types.json import Jsonb

    found = conn.execute(
        "INSERT INTO pgsearch.curation_runs (dataset_id, space_id, target, tool, params, items, flagged, seconds)"
        " VALUES (%s, %s, 'asset', 'curate', %s, %s, %s, %s) RETURNING id",
        (space.dataset_id, space.id, Jsonb(params), items, flagged, seconds),
    ).fetchone()
    assert found is not None
    return int(found[0])


def check_request(request: CurateRequest) -> None:
    """CurationError naming the parameter when one is out of range (the CLI checks them too)."""
    if not _whole(request.size) or request.size < 1:
        raise CurationError(f"--size must be a whole number of at least 1, not {request.size!r}")
    if request.clusters is not None and (
        not _whole(request.clusters) or not 1 <= request.clusters <= MAX_CLUSTERS
    ):
        raise CurationError(
            f"--clusters must be a whole number from 1 to {MAX_CLUSTERS:,}, not {request.clusters!r}"
        )
    if not _whole(request.seed) or not 0 <= request.seed <= MAX_SEED:
        raise CurationError(f"--seed must be a whole number from 0 to {MAX_SEED:,}, not {request.seed!r}")


def _whole(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
