"""The 2-D map of an embedding space (`pgsearch map`): a UMAP layout computed from the space's
neighbour graph, clusters found on it (DBSCAN or HDBSCAN), stored as a projection run whose
points the views (`v_assets.x/y/cluster`, `v_projections`) and the query language (`x`, `y`,
`cluster`) read.

    vectors (copyio) + neighbour graph (graph.ensure_graph)
      -> UMAP layout (umap-learn with precomputed_knn: the graph, each item its own neighbour 0)
      -> clusters on the 2-D points (DBSCAN, Picsellia's eps and min_samples; or HDBSCAN)
      -> projection_runs row + projection_points by binary COPY, in one transaction

Defaults (no tuning per dataset; bench/curate.py, 2 cores):

* UMAP: n_neighbors 15 (the graph's k; the item itself is added as neighbour 0 with distance 0,
  as umap's precomputed_knn contract asks), min_dist 0.05, repulsion_strength 2 (stronger
  negative sampling keeps local neighbourhoods better: on the digits trustworthiness 0.989 over
  5 seeds instead of 0.988 with umap's 1.0), umap's epochs (500 up to 10,000 points, 200 above),
  spectral initialisation, seed 0 (the same map every time; umap then lays out on one thread).
* DBSCAN (the default): min_samples 5 and eps relative to the map's own scale: EPS_FACTOR (6)
  times the median distance of a point to its min_samples-th nearest point on the map, so the
  default means the same at 300 and at 1,000,000 points (UMAP's coordinates have no unit).
  `--eps` overrides it with an absolute distance on the map (printed with every run).
* HDBSCAN (`--cluster hdbscan`, scikit-learn's): min_cluster_size max(10, 1.5 sqrt(n)),
  min_samples 3. Slightly better on the digits (ARI 0.913 against 0.901 over 5 seeds), but not
  the default: on one dense blob it calls 15-40% of the points noise (DBSCAN: one cluster, no
  noise), and 100,000 points in 1,000 natural clusters come out as 6 clusters and 25% noise
  (DBSCAN: 1,005 clusters, 5% noise).

Measured: scikit-learn's digits (1,797 real images, `pixels` model): trustworthiness 0.9887,
adjusted Rand index 0.926 against the digit labels at the default seed (0.90 mean over 5 seeds;
noise counted as a cluster of its own), 4 s warm from a fresh process, 10 s the very first time.

Large spaces (more than SAMPLE_ABOVE items, 50,000) are not laid out whole. UMAP is fitted on a
sample of SAMPLE_SIZE (25,000) balanced over tiles of the space (spherical k-means cells of the
vectors, an equal share from each cell, so rare regions are as present in the fit as common
ones), starting from a UMAP of the cells' centroids (each item at its cell: the sample's graph
rarely links separate regions, so this is what keeps neighbouring regions neighbours). The other
items are placed at the weighted mean of their placed graph neighbours, round after round until
all are placed (an item with no placed neighbour at all goes to its most similar sampled item).
A few epochs of layout optimisation over the whole graph afterwards were tried and left out:
they lowered trustworthiness (0.84 -> 0.80 at 100,000) and merged clusters. Clusters are found
on the sample's map and given to the other items by the majority of their graph neighbours.
`params.sampling` in the run says how many items were fitted and how. On 1,000,000 clustered
512-d vectors (bench/synthetic.py, graph already built): 55 s wall, 3.4 GB peak, trustworthiness
0.83 on a 5,000-item subsample, 1,004 clusters; 100,000: 27 s, 0.85 (a full UMAP: 90 s, 0.80).

umap-learn compiles its numba functions at every new process unless they are cached: this module
turns caching on for them, in $PGSEARCH_HOME/numba-cache (or $NUMBA_CACHE_DIR when set), so only
the very first map pays for the compilation, and it keeps pynndescent (umap's approximate
neighbour search, of no use with a precomputed graph) from being imported at all.
"""

from __future__ import annotations

import math
import sys
import time
import types
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgsearch.curate import graph as graphs
from pgsearch.curate.copyio import copy_in, point_rows, read_space_vectors
from pgsearch.curate.spaces import CurationError, resolve_space
from pgsearch.datasets import get_dataset
from pgsearch.loader.spaces import Space
from pgsearch.progress import NoBar

CURATE_EXTRA = "python3 -m pip install 'pgsearch[curate]'"

# Fewest items a map is made of: UMAP's spectral initialisation and a neighbourhood of a few
# points need that many.
MIN_ITEMS = 10
MAX_NEIGHBORS = graphs.MAX_K

DEFAULT_NEIGHBORS = graphs.DEFAULT_K
DEFAULT_MIN_DIST = 0.05
DEFAULT_REPULSION = 2.0
DEFAULT_SEED = 0
DEFAULT_MIN_SAMPLES = 5
# eps = EPS_FACTOR x the median distance of a point to its min_samples-th nearest point on the map.
EPS_FACTOR = 6.0

# HDBSCAN: min_cluster_size = max(10, HDBSCAN_SIZE_FACTOR x sqrt(points)), min_samples 3.
HDBSCAN_SIZE_FACTOR = 1.5
HDBSCAN_MIN_SAMPLES = 3

# Above this many items UMAP is fitted on a balanced sample of SAMPLE_SIZE and the rest placed.
SAMPLE_ABOVE = 50_000
SAMPLE_SIZE = 25_000
# Tiles of the space the sample is balanced over (k-means cells of the vectors).
SAMPLE_CELLS = 512
# Jitter of the sample's items around their cell's place in the initial layout (a box of 10).
CELL_JITTER = 0.05

CLUSTER_METHODS = ("dbscan", "hdbscan")

Progress = Callable[[str, "int | None"], Any]


@dataclass(frozen=True)
class MapOptions:
    """What a map is computed with; None means the documented default (see the module doc)."""

    n_neighbors: int = DEFAULT_NEIGHBORS
    min_dist: float = DEFAULT_MIN_DIST
    seed: int = DEFAULT_SEED
    cluster: str = "dbscan"
    eps: float | None = None
    min_samples: int | None = None
    min_cluster_size: int | None = None
    n_epochs: int | None = None
    repulsion_strength: float = DEFAULT_REPULSION
    sample_above: int = SAMPLE_ABOVE
    sample_size: int = SAMPLE_SIZE

    def check(self) -> None:
        """CurationError for a value no map can be made with."""
        if not 2 <= self.n_neighbors <= MAX_NEIGHBORS:
            raise CurationError(
                f"--n-neighbors must be between 2 and {MAX_NEIGHBORS}, not {self.n_neighbors}"
            )
        if not (math.isfinite(self.min_dist) and 0.0 <= self.min_dist <= 1.0):
            raise CurationError(f"--min-dist must be between 0 and 1, not {self.min_dist}")
        if self.cluster not in CLUSTER_METHODS:
            raise CurationError(
                f"--cluster must be one of {', '.join(CLUSTER_METHODS)}, not {self.cluster!r}"
            )
        if self.eps is not None and not (math.isfinite(self.eps) and self.eps > 0):
            raise CurationError(
                f"--eps must be a positive distance on the map, not {self.eps} "
                "(leave it out for the automatic one, printed with each run)"
            )
        if self.eps is not None and self.cluster != "dbscan":
            raise CurationError("--eps is DBSCAN's; HDBSCAN takes --min-cluster-size and --min-samples")
        if self.min_samples is not None and not 1 <= self.min_samples <= 10_000:
            raise CurationError(f"--min-samples must be between 1 and 10000, not {self.min_samples}")
        if self.min_cluster_size is not None:
            if self.cluster != "hdbscan":
                raise CurationError("--min-cluster-size is HDBSCAN's: add --cluster hdbscan")
            if not 2 <= self.min_cluster_size <= 1_000_000:
                raise CurationError(
                    f"--min-cluster-size must be between 2 and 1000000, not {self.min_cluster_size}"
                )
        if self.seed < 0 or self.seed > 2**31 - 1:
            raise CurationError(f"--seed must be between 0 and {2**31 - 1}, not {self.seed}")
        if self.n_epochs is not None and not 1 <= self.n_epochs <= 10_000:
            raise CurationError(f"--epochs must be between 1 and 10000, not {self.n_epochs}")
        if not (math.isfinite(self.repulsion_strength) and 0 < self.repulsion_strength <= 100):
            raise CurationError(f"repulsion_strength must be in (0, 100], not {self.repulsion_strength}")
        if self.sample_size < 1000 or self.sample_above < self.sample_size:
            raise CurationError(
                f"the sample size ({self.sample_size}) must be at least 1000 and at most the size "
                f"above which datasets are sampled ({self.sample_above})"
            )

    def request(self) -> dict[str, Any]:
        """The options as stored in a run's params (`request`): a later `pgsearch map` with the
        same request reuses the run."""
        return asdict(self)


@dataclass
class Projection:
    """A computed map: row i of xy and cluster belongs to the i-th item given."""

    xy: np.ndarray  # float64 (n, 2)
    cluster: np.ndarray  # int32 (n,), -1 noise, 0 the largest cluster, 1 the next, ...
    params: dict[str, Any]

    @property
    def clusters(self) -> int:
        return int(self.cluster.max()) + 1 if len(self.cluster) and self.cluster.max() >= 0 else 0

    @property
    def noise_fraction(self) -> float:
        return float(np.mean(self.cluster < 0)) if len(self.cluster) else 0.0


@dataclass
class RunSummary:
    """One stored map, as `pgsearch map` prints it (`--format json`: as_dict())."""

    run_id: int
    dataset: str
    target: str
    model: str | None
    space_id: int | None
    method: str
    items: int
    clusters: int
    noise_fraction: float
    seconds: float | None
    created_at: str
    is_latest: bool
    params: dict[str, Any] = field(default_factory=dict)
    computed: bool = False  # made by this call (False: an existing run, reused or listed)

    @property
    def sampling(self) -> dict[str, Any] | None:
        value = self.params.get("sampling")
        return value if isinstance(value, dict) else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sampling"] = self.sampling
        out["reused"] = not self.computed
        return out

    def describe(self) -> str:
        """Two lines for the terminal."""
        cluster = self.params.get("cluster", {})
        how = cluster.get("method", "?")
        if how == "dbscan":
            how += f" eps {cluster.get('eps', 0):.3g}{' (auto)' if cluster.get('eps_auto') else ''}, "
            how += f"min_samples {cluster.get('min_samples')}"
        elif how == "hdbscan":
            how += f" min_cluster_size {cluster.get('min_cluster_size')}"
            if cluster.get("min_samples") is not None:
                how += f", min_samples {cluster.get('min_samples')}"
        state = "computed" if self.computed else "reused (--recompute makes a new one)"
        seconds = f" in {self.seconds:.1f} s" if self.computed and self.seconds is not None else ""
        lines = [
            f"map of {self.dataset} ({self.target}s, model {self.model}): run {self.run_id}, {state}{seconds}",
            f"  {self.items:,} points, {self.clusters} clusters ({how}), "
            f"{100 * self.noise_fraction:.1f}% noise",
        ]
        sampling = self.sampling
        if sampling:
            lines.append(
                f"  large dataset: UMAP fitted on {sampling['fitted']:,} items balanced over "
                f"{sampling['cells']} cells of the space, the other {self.items - sampling['fitted']:,} "
                "placed from their graph neighbours"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# umap-learn, imported once, with its numba functions cached


_UMAP: Any = None


def numba_cache_dir() -> Path:
    """Where umap's compiled functions are kept: $NUMBA_CACHE_DIR, else $PGSEARCH_HOME/numba-cache."""
    import os

    from pgsearch.config import home_dir

    configured = os.environ.get("NUMBA_CACHE_DIR")
    return Path(configured) if configured else home_dir() / "numba-cache"


class _LazyNNDescent:
    """Stands in for pynndescent.NNDescent inside umap: the real class, imported when used."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from pynndescent import NNDescent

        return NNDescent(*args, **kwargs)


class _LazyDistances(dict):  # type: ignore[type-arg]
    """Stands in for pynndescent's distance tables inside umap: filled on first look-up."""

    def __init__(self, module: str, attribute: str) -> None:
        super().__init__()
        self._source = (module, attribute)
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            import importlib

            self._loaded = True
            self.update(getattr(importlib.import_module(self._source[0]), self._source[1]))

    def __contains__(self, key: object) -> bool:
        self._load()
        return super().__contains__(key)

    def __getitem__(self, key: Any) -> Any:
        self._load()
        return super().__getitem__(key)


def _import_umap_without_pynndescent() -> None:
    """Imports umap.umap_ with pynndescent stubbed out for the duration of the import.

    umap imports pynndescent at the top for its own neighbour search, which a precomputed graph
    never runs; pynndescent compiles (or loads) dozens of numba functions when imported. The stubs
    live only during the import (a later `import pynndescent` gets the real package), and umap's
    references to it become lazy stand-ins that import the real thing if ever used."""
    names = ("pynndescent", "pynndescent.distances", "pynndescent.sparse")
    stubs = {name: types.ModuleType(name) for name in names}
    stubs["pynndescent"].NNDescent = _LazyNNDescent  # type: ignore[attr-defined]
    stubs["pynndescent.distances"].named_distances = {}  # type: ignore[attr-defined]
    stubs["pynndescent.sparse"].sparse_named_distances = {}  # type: ignore[attr-defined]
    sys.modules.update(stubs)
    try:
        import umap.umap_
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]
    umap_module: Any = umap.umap_
    umap_module.NNDescent = _LazyNNDescent
    umap_module.pynn_named_distances = _LazyDistances("pynndescent.distances", "named_distances")
    umap_module.pynn_sparse_named_distances = _LazyDistances("pynndescent.sparse", "sparse_named_distances")


def _enable_numba_cache(modules: Iterable[types.ModuleType]) -> None:
    """Turns on numba's on-disk cache for the jitted functions of `modules` that lack it."""
    try:
        from numba.core import config as numba_config
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover - numba comes with umap-learn
        return
    config: Any = numba_config
    try:
        directory = numba_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # not writable: compile per process, as umap does by default
    previous = config.CACHE_DIR
    config.CACHE_DIR = str(directory)
    try:
        for module in modules:
            for value in list(vars(module).values()):
                if (
                    isinstance(value, Dispatcher)
                    and getattr(value, "__module__", None) == module.__name__
                    and type(getattr(value, "_cache", None)).__name__ == "NullCache"
                ):
                    try:
                        value.enable_caching()
                    except Exception:  # noqa: BLE001 - a function numba cannot cache stays uncached
                        continue
    finally:
        config.CACHE_DIR = previous


def load_umap() -> Any:
    """umap.umap_ (CurationError with the install command when the curate extra is missing)."""
    global _UMAP
    if _UMAP is not None:
        return _UMAP
    try:
        import numba  # noqa: F401
        import sklearn  # noqa: F401

        if "umap" not in sys.modules and "pynndescent" not in sys.modules:
            _import_umap_without_pynndescent()
        import umap.distances
        import umap.layouts
        import umap.sparse
        import umap.spectral
        import umap.umap_ as umap_module
        import umap.utils
    except ImportError as exc:
        raise CurationError(
            f"pgsearch map needs the curate extra (umap-learn, scikit-learn, matplotlib): {CURATE_EXTRA} "
            f"({exc})"
        ) from None
    _enable_numba_cache([umap_module, umap.layouts, umap.utils, umap.spectral, umap.distances, umap.sparse])
    _UMAP = umap_module
    return umap_module


def _sklearn_cluster() -> Any:
    try:
        import sklearn.cluster
        import sklearn.neighbors  # noqa: F401
    except ImportError:
        raise CurationError(f"pgsearch map needs the curate extra: {CURATE_EXTRA}") from None
    return sklearn.cluster


# ---------------------------------------------------------------------------------------------
# Computing a map (numpy in, numpy out)


def _stage(progress: Progress | None, name: str, total: int | None = None) -> Any:
    return progress(name, total) if progress is not None else NoBar()


def _knn_with_self(positions: np.ndarray, distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """umap's precomputed_knn: each row's own index first (distance 0), then its k nearest; a
    neighbour missing from the graph (-1) gets an infinite distance, which umap leaves out."""
    n = len(positions)
    k = min(k, positions.shape[1])
    indices = np.empty((n, k + 1), dtype=np.int64)
    dists = np.empty((n, k + 1), dtype=np.float32)
    indices[:, 0] = np.arange(n)
    dists[:, 0] = 0.0
    indices[:, 1:] = positions[:, :k]
    dists[:, 1:] = distances[:, :k]
    dists[:, 1:][indices[:, 1:] < 0] = np.inf
    return indices, dists


def _umap_params(options: MapOptions, k: int, n: int) -> dict[str, Any]:
    return {
        "n_neighbors": k,
        "min_dist": options.min_dist,
        "spread": 1.0,
        "metric": "cosine",
        "repulsion_strength": options.repulsion_strength,
        "negative_sample_rate": 5,
        "n_epochs": options.n_epochs or (500 if n <= 10_000 else 200),
        "init": "spectral",
        "seed": options.seed,
    }


def umap_layout(
    vectors: np.ndarray,
    positions: np.ndarray,
    distances: np.ndarray,
    options: MapOptions,
    *,
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """UMAP of `vectors` from their neighbour graph (positions into vectors, item itself left
    out): (xy float64 (n, 2), the UMAP parameters used)."""
    umap_module = load_umap()
    n = len(vectors)
    k = min(options.n_neighbors, positions.shape[1], n - 1)
    params = _umap_params(options, k, n)
    indices, dists = _knn_with_self(positions, distances, k)
    model = umap_module.UMAP(
        n_neighbors=k + 1,
        n_components=2,
        metric="cosine",
        min_dist=options.min_dist,
        spread=1.0,
        repulsion_strength=options.repulsion_strength,
        negative_sample_rate=5,
        n_epochs=params["n_epochs"],
        init=init if init is not None else "spectral",
        random_state=options.seed,
        precomputed_knn=(indices, dists),
        verbose=False,
        tqdm_kwds={"disable": True},
    )
    lazy = (umap_module.pynn_named_distances, umap_module.pynn_sparse_named_distances)
    try:
        # With a precomputed graph umap only asks whether the metric is one of pynndescent's to
        # pick the search it will not run: answer "no" rather than import pynndescent for it.
        umap_module.pynn_named_distances, umap_module.pynn_sparse_named_distances = {}, {}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # "precomputed_knn[2] is not an NNDescent object", "n_jobs overridden by random_state",
            # spectral initialisation falling back on tiny or degenerate graphs: none is the user's.
            warnings.simplefilter("ignore")
            xy = model.fit_transform(np.ascontiguousarray(vectors, dtype=np.float32))
    finally:
        umap_module.pynn_named_distances, umap_module.pynn_sparse_named_distances = lazy
    if init is not None:
        params["init"] = "given"
    return np.asarray(xy, dtype=np.float64), params


def cluster_points(xy: np.ndarray, options: MapOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Clusters of 2-D points: (labels int32, -1 noise, 0 the largest cluster; the parameters
    used, eps and min_cluster_size resolved)."""
    cluster_module = _sklearn_cluster()
    with warnings.catch_warnings():
        # scikit-learn's ConvergenceWarning and the like on degenerate maps (many points on one
        # spot): printed on stderr even with --quiet, and nothing the user can act on; the run
        # says what came out (clusters, noise).
        warnings.simplefilter("ignore")
        return _cluster_points(cluster_module, xy, options)


def _cluster_points(
    cluster_module: Any, xy: np.ndarray, options: MapOptions
) -> tuple[np.ndarray, dict[str, Any]]:
    n = len(xy)
    info: dict[str, Any] = {"method": options.cluster}
    if options.cluster == "dbscan":
        min_samples = options.min_samples or DEFAULT_MIN_SAMPLES
        eps = options.eps
        info["eps_auto"] = eps is None
        if eps is None:
            eps = auto_eps(xy, min_samples)
            info["eps_rule"] = f"{EPS_FACTOR:g} x median distance to the min_samples-th nearest point"
        labels = cluster_module.DBSCAN(eps=eps, min_samples=min_samples).fit_predict(xy)
        info.update(eps=float(eps), min_samples=int(min_samples))
    else:
        size = options.min_cluster_size or max(10, int(round(HDBSCAN_SIZE_FACTOR * math.sqrt(n))))
        info["min_cluster_size_auto"] = options.min_cluster_size is None
        size = min(size, max(2, n))
        min_samples = min(options.min_samples or HDBSCAN_MIN_SAMPLES, n)
        labels = cluster_module.HDBSCAN(
            min_cluster_size=size, min_samples=min_samples, copy=True
        ).fit_predict(xy)
        info.update(min_cluster_size=int(size), min_samples=int(min_samples))
    return _by_size(np.asarray(labels)), info


def auto_eps(xy: np.ndarray, min_samples: int) -> float:
    """EPS_FACTOR x the median distance of a point to its min_samples-th nearest point (itself
    counted, as DBSCAN counts it): DBSCAN's eps in the map's own unit."""
    from sklearn.neighbors import NearestNeighbors

    k = max(2, min(min_samples, len(xy)))
    dist, _ = NearestNeighbors(n_neighbors=k).fit(xy).kneighbors(xy)
    scale = float(np.median(dist[:, k - 1]))
    if not scale > 0:  # many points on one spot
        positive = dist[:, 1:][dist[:, 1:] > 0]
        scale = float(np.median(positive)) if len(positive) else 1.0
    return EPS_FACTOR * scale


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids renumbered by size (0 the largest; ties by first appearance); noise stays -1."""
    out = np.full(len(labels), -1, dtype=np.int32)
    found = labels >= 0
    if not found.any():
        return out
    values, first, counts = np.unique(labels[found], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(values), dtype=np.int32)
    rank[order] = np.arange(len(values), dtype=np.int32)
    out[found] = rank[np.searchsorted(values, labels[found])]
    return out


def project(
    vectors: np.ndarray,
    positions: np.ndarray,
    distances: np.ndarray,
    options: MapOptions = MapOptions(),
    *,
    progress: Progress | None = None,
) -> Projection:
    """The map of `vectors` (float32 (n, d), unit length) given their neighbour graph
    (positions int64 (n, k) into vectors, -1 for none, nearest first, the item itself left out;
    distances float32 (n, k), cosine)."""
    options.check()
    n = len(vectors)
    if n < MIN_ITEMS:
        raise CurationError(f"a map needs at least {MIN_ITEMS} embedded items, this space has {n}")
    if n > options.sample_above:
        return _project_sampled(vectors, positions, distances, options, progress=progress)
    _stage(progress, "umap layout")
    xy, umap_params = umap_layout(vectors, positions, distances, options)
    _stage(progress, "clusters")
    labels, cluster_info = cluster_points(xy, options)
    return Projection(xy, labels, {**umap_params, "cluster": cluster_info, "sampling": None})


# --- large spaces -----------------------------------------------------------------------------


def _normalised(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return out


def kmeans_cells(
    vectors: np.ndarray, cells: int, rng: np.random.Generator, *, fit_rows: int = 40_000, rounds: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means tiles of the space: (cell of each row int32, unit centroids (cells, d)).
    Fitted on a random subset, then every row goes to its most similar centroid."""
    n = len(vectors)
    cells = max(1, min(cells, n))
    fit = vectors[rng.choice(n, size=min(n, max(fit_rows, cells)), replace=False)]
    centroids = fit[rng.choice(len(fit), size=cells, replace=False)].copy()
    for _ in range(rounds):
        assign = _nearest(fit, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, fit)
        empty = np.bincount(assign, minlength=cells) == 0
        sums[empty] = fit[rng.choice(len(fit), size=int(empty.sum()))]
        centroids = _normalised(sums)
    return _nearest(vectors, centroids), centroids


def _nearest(rows: np.ndarray, centroids: np.ndarray, block: int = 65_536) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.int32)
    for start in range(0, len(rows), block):
        out[start : start + block] = np.argmax(rows[start : start + block] @ centroids.T, axis=1)
    return out


def balanced_sample(cells: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices (sorted) of `size` rows with an equal share from each cell: a cell with fewer
    rows than its share gives them all and the rest is shared among the larger cells."""
    n = len(cells)
    if size >= n:
        return np.arange(n)
    counts = np.bincount(cells)
    quota = np.zeros_like(counts)
    left, open_cells = size, counts > 0
    while left > 0 and open_cells.any():
        share = max(1, left // int(open_cells.sum()))
        grant = np.minimum(counts - quota, share) * open_cells
        if grant.sum() > left:  # the last round: one more from the first cells that have them
            grant = np.zeros_like(counts)
            for c in np.flatnonzero(open_cells)[:left]:
                grant[c] = 1
        quota += grant
        left -= int(grant.sum())
        open_cells = quota < counts
    order = np.argsort(cells, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    chosen = [
        order[starts[c] + rng.choice(counts[c], size=quota[c], replace=False)] for c in np.flatnonzero(quota)
    ]
    return np.sort(np.concatenate(chosen))


def sample_knn(
    vectors: np.ndarray, cells: np.ndarray, centroids: np.ndarray, k: int, *, probe: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of each row among the rows (cosine), searched in the rows of the
    `probe` cells whose centroids are nearest to the row's own (an inverted file: nearly exact for
    a balanced sample, and far cheaper than all pairs). Returns (positions, distances)."""
    n = len(vectors)
    ncells = len(centroids)
    probe = min(probe, ncells)
    near_cells = np.argsort(-(centroids @ centroids.T), axis=1)[:, :probe]
    members = [np.flatnonzero(cells == c) for c in range(ncells)]
    positions = np.full((n, k), -1, dtype=np.int64)
    dists = np.full((n, k), np.inf, dtype=np.float32)
    for c in range(ncells):
        queries = members[c]
        if not len(queries):
            continue
        candidates = np.concatenate([members[j] for j in near_cells[c]])
        sims = vectors[queries] @ vectors[candidates].T
        sims[queries[:, None] == candidates[None, :]] = -np.inf
        kk = min(k, len(candidates) - 1)
        if kk <= 0:
            continue
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        positions[queries, :kk] = candidates[top]
        dists[queries, :kk] = np.clip(1.0 - np.take_along_axis(top_sims, order, axis=1), 0.0, 2.0)
    return positions, dists


def place_from_neighbours(
    xy: np.ndarray, placed: np.ndarray, positions: np.ndarray, distances: np.ndarray, *, rounds: int = 50
) -> int:
    """Places unplaced rows at the weighted mean of their placed graph neighbours, round after
    round, until no more can be placed (in place; returns the rounds used). Weights follow UMAP's
    membership: exp(-(d - d_nearest) / spread of the row's distances)."""
    valid = positions >= 0
    safe = np.where(valid, positions, 0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without any neighbour
        d = np.where(valid & np.isfinite(distances), distances, np.nan).astype(np.float64)
        nearest = np.nanmin(d, axis=1, keepdims=True)
        scale = np.nanmean(d, axis=1, keepdims=True) - nearest
        scale = np.where(np.isfinite(scale) & (scale > 1e-6), scale, 1.0)
        weights = np.nan_to_num(np.exp(-(d - nearest) / scale), nan=0.0)
    used = 0
    for used in range(1, rounds + 1):
        todo = np.flatnonzero(~placed)
        if not len(todo):
            return used - 1
        w = weights[todo] * placed[safe[todo]]
        total = w.sum(axis=1)
        ready = total > 0
        if not ready.any():
            return used
        rows = todo[ready]
        w = w[ready] / total[ready, None]
        xy[rows] = np.einsum("ik,ikj->ij", w, xy[safe[rows]])
        placed[rows] = True
    return used


def cell_layout(
    centroids: np.ndarray, cell_of: np.ndarray, options: MapOptions, rng: np.random.Generator
) -> np.ndarray:
    """The sample's initial layout: a UMAP of the cells' centroids (their own neighbour graph),
    each item starting at its cell's place with a little jitter. The sample's neighbour graph
    rarely links separate regions of the space, so where regions end up relative to each other
    is decided by the initial layout; laying out the centroids keeps neighbouring regions
    neighbours on the map (a 25,000 sample of 100,000 clustered vectors, trustworthiness on 5,000
    of them: 0.83 instead of 0.80 with UMAP's spectral initialisation, in 4 s instead of 64 s)."""
    ncells = len(centroids)
    if ncells < MIN_ITEMS:
        return rng.normal(scale=1.0, size=(len(cell_of), 2)).astype(np.float32)
    positions, distances = sample_knn(centroids, np.zeros(ncells, dtype=np.int32), centroids[:1], 15)
    cxy, _ = umap_layout(centroids, positions, distances, replace(options, min_dist=0.1, n_epochs=500))
    low, high = cxy.min(axis=0), cxy.max(axis=0)
    cxy = 10.0 * (cxy - low) / np.maximum(high - low, 1e-12)
    init: np.ndarray = (cxy[cell_of] + rng.normal(scale=CELL_JITTER, size=(len(cell_of), 2))).astype(
        np.float32
    )
    return init


def _project_sampled(
    vectors: np.ndarray,
    positions: np.ndarray,
    distances: np.ndarray,
    options: MapOptions,
    *,
    progress: Progress | None = None,
) -> Projection:
    n = len(vectors)
    rng = np.random.default_rng(options.seed)
    k = min(options.n_neighbors, positions.shape[1])
    _stage(progress, "sample: tiles of the space")
    ncells = min(SAMPLE_CELLS, max(1, options.sample_size // 50))
    cells, centroids = kmeans_cells(vectors, ncells, rng)
    sample = balanced_sample(cells, options.sample_size, rng)
    _stage(progress, f"sample: neighbours of {len(sample):,}")
    s_positions, s_distances = sample_knn(vectors[sample], cells[sample], centroids, k)
    _stage(progress, f"umap layout of {len(sample):,}")
    init = cell_layout(centroids, cells[sample], options, rng)
    s_xy, umap_params = umap_layout(vectors[sample], s_positions, s_distances, options, init=init)
    _stage(progress, f"placing {n - len(sample):,}")
    xy = np.zeros((n, 2), dtype=np.float64)
    placed = np.zeros(n, dtype=bool)
    xy[sample] = s_xy
    placed[sample] = True
    rounds = place_from_neighbours(xy, placed, positions[:, :k], distances[:, :k])
    stray = np.flatnonzero(~placed)
    if len(stray):  # no placed neighbour at all (an unsampled island): the most similar sampled item
        for start in range(0, len(stray), 4096):
            rows = stray[start : start + 4096]
            best = np.argmax(vectors[rows] @ vectors[sample].T, axis=1)
            xy[rows] = s_xy[best]
    # A small jitter, so that items placed from the same neighbours do not sit on one spot.
    scale = float(np.median(np.linalg.norm(s_xy[s_positions[:, 0]] - s_xy, axis=1)))
    rest = np.ones(n, dtype=bool)
    rest[sample] = False
    xy[rest] += rng.normal(scale=0.25 * scale, size=(int(rest.sum()), 2))
    _stage(progress, "clusters")
    s_labels, cluster_info = cluster_points(xy[sample], options)
    labels = np.full(n, -2, dtype=np.int32)  # -2: not yet labelled
    labels[sample] = s_labels
    _spread_labels(labels, positions[:, :k])
    labels[labels == -2] = -1
    labels = _by_size(labels)
    sampling = {
        "items": n,
        "fitted": int(len(sample)),
        "cells": int(len(centroids)),
        "cell_method": "spherical k-means of the vectors",
        "per_cell": "equal share",
        "sample_knn": "inverted file over the cells (8 nearest cells searched)",
        "init": "UMAP of the cell centroids, each item at its cell",
        "placement": f"weighted mean of placed graph neighbours, {rounds} rounds",
        "stray": int(len(stray)),
        "clusters": "found on the sample's map; the rest by majority of graph neighbours",
    }
    return Projection(xy, labels, {**umap_params, "cluster": cluster_info, "sampling": sampling})


def _spread_labels(labels: np.ndarray, positions: np.ndarray, rounds: int = 50) -> None:
    """Gives each unlabelled row (-2) the most common label among its labelled graph neighbours,
    round after round (in place)."""
    valid = positions >= 0
    safe = np.where(valid, positions, 0)
    for _ in range(rounds):
        todo = np.flatnonzero(labels == -2)
        if not len(todo):
            return
        neighbour = labels[safe[todo]]
        neighbour = np.where(valid[todo], neighbour, -2)
        known = neighbour != -2
        has = known.any(axis=1)
        if not has.any():
            return
        rows, votes = todo[has], neighbour[has]
        # Majority per row: sort each row's votes and take the longest run (nearest first on ties).
        best = np.full(len(rows), -2, dtype=np.int32)
        best_count = np.zeros(len(rows), dtype=np.int32)
        for j in range(votes.shape[1]):
            candidate = votes[:, j]
            count = ((votes == candidate[:, None]) & (candidate[:, None] != -2)).sum(axis=1)
            better = (count > best_count) & (candidate != -2)
            best[better] = candidate[better]
            best_count[better] = count[better]
        labels[rows] = best


# ---------------------------------------------------------------------------------------------
# Runs in the database


_RUNS_SQL = """
SELECT r.run_id, r.dataset, r.target, r.model, r.space_id, r.method, coalesce(r.items, 0),
       coalesce(r.clusters, 0), coalesce(r.noise_fraction, 0), r.seconds, r.created_at, r.is_latest,
       r.params
  FROM pgsearch.v_projection_runs AS r
"""


def _summary(row: tuple[Any, ...], computed: bool = False) -> RunSummary:
    return RunSummary(
        run_id=int(row[0]),
        dataset=row[1],
        target=row[2],
        model=row[3],
        space_id=row[4],
        method=row[5],
        items=int(row[6]),
        clusters=int(row[7]),
        noise_fraction=float(row[8]),
        seconds=None if row[9] is None else float(row[9]),
        created_at=row[10].isoformat() if row[10] is not None else "",
        is_latest=bool(row[11]),
        params=dict(row[12] or {}),
        computed=computed,
    )


def get_run(conn: psycopg.Connection, run_id: int, *, computed: bool = False) -> RunSummary:
    row = conn.execute(_RUNS_SQL + " WHERE r.run_id = %s", (run_id,)).fetchone()
    if row is None:
        raise CurationError(f"there is no map run {run_id}; `pgsearch map --list` lists them")
    return _summary(row, computed)


def list_runs(conn: psycopg.Connection, dataset: str | None = None) -> list[RunSummary]:
    """Stored runs, oldest first; of one dataset, or of all."""
    if dataset is None:
        rows = conn.execute(_RUNS_SQL + " ORDER BY r.dataset, r.run_id").fetchall()
    else:
        ds = get_dataset(conn, dataset)
        rows = conn.execute(_RUNS_SQL + " WHERE r.dataset_id = %s ORDER BY r.run_id", (ds.id,)).fetchall()
    return [_summary(row) for row in rows]


def drop_run(conn: psycopg.Connection, dataset: str, run_id: int) -> RunSummary:
    """Deletes one run of `dataset` with its points; the previous run of its target becomes the
    latest (the one v_assets and the query language read)."""
    ds = get_dataset(conn, dataset)
    found = conn.execute(
        "SELECT r.dataset_id, d.name FROM pgsearch.projection_runs AS r"
        " JOIN pgsearch.datasets AS d ON d.id = r.dataset_id WHERE r.id = %s",
        (run_id,),
    ).fetchone()
    if found is None:
        raise CurationError(
            f"there is no map run {run_id}; `pgsearch map --list --dataset {dataset}` lists the dataset's runs"
        )
    if found[0] != ds.id:
        raise CurationError(
            f"map run {run_id} belongs to dataset {found[1]!r}, not {dataset!r}; nothing was dropped"
        )
    summary = get_run(conn, run_id)
    with conn.transaction():
        conn.execute("DELETE FROM pgsearch.projection_runs WHERE id = %s", (run_id,))
    return summary


def _vector_key(space: Space) -> str:
    return "asset_id" if space.target == "asset" else "shape_id"


def _reusable(conn: psycopg.Connection, space: Space, request: dict[str, Any]) -> int | None:
    """The space's latest run when it was made with the same request and covers the space's
    current items: every item with a vector has a point, and none was re-embedded since."""
    row = conn.execute(
        "SELECT id, params, created_at FROM pgsearch.projection_runs WHERE space_id = %s ORDER BY id DESC LIMIT 1",
        (space.id,),
    ).fetchone()
    if row is None or (row[1] or {}).get("request") != request:
        return None
    run_id, _, created_at = row
    state = sql.Identifier("pgsearch", f"{space.target}_embedding_state")
    uncovered = conn.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {vectors} AS e WHERE NOT EXISTS"
            " (SELECT 1 FROM pgsearch.projection_points AS p WHERE p.run_id = %(run)s AND p.item_id = e.{key}))"
            " OR EXISTS (SELECT 1 FROM {state} AS s WHERE s.space_id = %(space)s AND s.updated_at > %(at)s)"
        ).format(
            vectors=sql.Identifier("pgsearch", space.table_name),
            key=sql.Identifier(_vector_key(space)),
            state=state,
        ),
        {"run": run_id, "space": space.id, "at": created_at},
    ).fetchone()
    return None if uncovered is None or uncovered[0] else int(run_id)


def make_map(
    conn: psycopg.Connection,
    dataset: str,
    *,
    target: str = "asset",
    model: str | None = None,
    options: MapOptions = MapOptions(),
    recompute: bool = False,
    progress: Progress | None = None,
) -> RunSummary:
    """The map of the dataset's `target` space (of `model`: None, the only one): the latest run
    of that space when it was made with the same options and still covers the space's items
    (unless `recompute`), else a new run computed and stored."""
    options.check()
    space = resolve_space(conn, dataset, target, model)
    request = options.request()
    if not recompute:
        reuse = _reusable(conn, space, request)
        if reuse is not None:
            conn.commit()
            return get_run(conn, reuse)
    started = time.monotonic()
    count_row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pgsearch", space.table_name))
    ).fetchone()
    count = int(count_row[0]) if count_row else 0
    if count < MIN_ITEMS:
        flag = " --shapes" if target == "shape" else ""
        raise CurationError(
            f"a map needs at least {MIN_ITEMS} embedded {target}s; dataset {dataset!r} has {count} "
            f"with {space.model} vectors (`pgsearch status --dataset {dataset}`; load or embed more{flag})"
        )
    load_umap()  # the curate extra, checked before anything long runs
    k = min(options.n_neighbors, count - 1)
    graph_progress = None
    if progress is not None:
        report = progress

        def graph_progress(name: str, total: int | None = None, unit: str = "item") -> Any:
            return report(f"neighbour graph: {name}", total)

    graph = graphs.ensure_graph(conn, space, k, progress=graph_progress)
    bar = _stage(progress, f"reading {count:,} vectors", count)
    vectors = read_space_vectors(
        conn, space.table_name, _vector_key(space), space.dim, progress=bar if progress is not None else None
    )
    if not np.array_equal(graph.ids, vectors.ids):
        raise CurationError(
            "the neighbour graph does not match the space's vectors (items embedded or removed "
            "meanwhile?); run `pgsearch map` again"
        )
    conn.commit()  # no transaction left open during the computation
    projection = project(vectors.vectors, graph.positions(), graph.distances, options, progress=progress)
    del vectors
    _stage(progress, f"storing {len(graph.ids):,} points")
    graph_info = conn.execute(
        "SELECT k, method FROM pgsearch.neighbor_graphs WHERE space_id = %s", (space.id,)
    ).fetchone()
    params = {
        **projection.params,
        "graph": {"k": int(graph_info[0]), "method": graph_info[1]} if graph_info else None,
        "versions": _versions(),
        "request": request,
    }
    run_id = store_run(conn, space, graph.ids, projection, params, started)
    return get_run(conn, run_id, computed=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("umap-learn", "scikit-learn", "numba"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def store_run(
    conn: psycopg.Connection,
    space: Space,
    ids: np.ndarray,
    projection: Projection,
    params: dict[str, Any],
    started: float,
) -> int:
    """A new projection run with its points, in one transaction, committed (the connection's
    open transaction first: the run must not hang on a transaction the caller commits later, or
    lose it when something after fails); returns its id. `started`: time.monotonic() when the run
    began (its seconds count up to the end of the write)."""
    conn.commit()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO pgsearch.projection_runs"
            " (dataset_id, space_id, target, method, params, items, clusters, noise_fraction, seconds)"
            " VALUES (%s, %s, %s, 'umap', %s, %s, %s, %s, %s) RETURNING id",
            (
                space.dataset_id,
                space.id,
                space.target,
                Jsonb(_jsonable(params)),
                len(ids),
                projection.clusters,
                projection.noise_fraction,
                time.monotonic() - started,
            ),
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
        copy_in(
            conn,
            sql.SQL(
                "COPY pgsearch.projection_points (run_id, item_id, x, y, cluster) FROM STDIN (FORMAT binary)"
            ),
            point_rows(run_id, ids, projection.xy[:, 0], projection.xy[:, 1], projection.cluster),
        )
        conn.execute(
            "UPDATE pgsearch.projection_runs SET seconds = %s WHERE id = %s",
            (time.monotonic() - started, run_id),
        )
    if len(ids) >= 10_000:
        conn.execute("ANALYZE pgsearch.projection_points")
        conn.commit()
    return run_id


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------
# Reading a run's points back (for the PNG and the HTML page)


COLOR_FIELDS = ("cluster", "label", "status", "group")


def check_color_by(color_by: str) -> None:
    if color_by in COLOR_FIELDS or (color_by.startswith("metadata.") and len(color_by) > len("metadata.")):
        return
    raise CurationError(
        f"--color-by must be one of {', '.join(COLOR_FIELDS)} or metadata.KEY, not {color_by!r}"
    )


def run_points(
    conn: psycopg.Connection, run: RunSummary, *, color_by: str | None = None
) -> list[dict[str, Any]]:
    """The run's points with what the map page and the PNG show: id, x, y, cluster, filename,
    path (and for shapes label and bbox), plus `color` when color_by names a field."""
    if color_by is not None:
        check_color_by(color_by)
    key = color_by.split(".", 1)[1] if color_by and color_by.startswith("metadata.") else ""
    if run.target == "asset":
        color = {
            None: sql.SQL("NULL"),
            "cluster": sql.SQL("NULL"),
            "label": sql.SQL(
                "(SELECT l.key FROM jsonb_each(a.label_counts) AS l ORDER BY l.value::numeric DESC, l.key LIMIT 1)"
            ),
            "status": sql.SQL("a.status"),
            "group": sql.SQL("(SELECT min(g) FROM unnest(a.groups) AS g)"),
        }.get(color_by, sql.SQL("a.metadata -> {}").format(sql.Literal(key)))
        statement = sql.SQL(
            "SELECT p.item_id, p.x, p.y, p.cluster, a.filename, a.path, {color}"
            "  FROM pgsearch.projection_points AS p JOIN pgsearch.assets AS a ON a.id = p.item_id"
            " WHERE p.run_id = %s ORDER BY p.item_id"
        ).format(color=color)
        rows = conn.execute(statement, (run.run_id,)).fetchall()
        return [
            {"id": r[0], "x": r[1], "y": r[2], "cluster": r[3], "filename": r[4], "path": r[5], "color": r[6]}
            for r in rows
        ]
    color = {
        None: sql.SQL("NULL"),
        "cluster": sql.SQL("NULL"),
        "label": sql.SQL("l.name"),
        "status": sql.SQL("a.status"),
        "group": sql.SQL("(SELECT min(g) FROM unnest(a.groups) AS g)"),
    }.get(
        color_by, sql.SQL("coalesce(s.attributes -> {key}, a.metadata -> {key})").format(key=sql.Literal(key))
    )
    statement = sql.SQL(
        "SELECT p.item_id, p.x, p.y, p.cluster, a.filename, a.path, l.name, s.bbox_x, s.bbox_y,"
        "       s.bbox_width, s.bbox_height, {color}"
        "  FROM pgsearch.projection_points AS p JOIN pgsearch.shapes AS s ON s.id = p.item_id"
        "  JOIN pgsearch.assets AS a ON a.id = s.asset_id JOIN pgsearch.labels AS l ON l.id = s.label_id"
        " WHERE p.run_id = %s ORDER BY p.item_id"
    ).format(color=color)
    rows = conn.execute(statement, (run.run_id,)).fetchall()
    return [
        {
            "id": r[0], "x": r[1], "y": r[2], "cluster": r[3], "filename": r[4], "path": r[5],
            "label": r[6], "bbox_x": r[7], "bbox_y": r[8], "bbox_width": r[9], "bbox_height": r[10],
            "color": r[11],
        }
        for r in rows
    ]  # fmt: skip


def write_html(points: list[dict[str, Any]], path: str | Path, run: RunSummary) -> Path:
    """The interactive map page (pgsearch.curate.mappage)."""
    from pgsearch.curate.mappage import write_map_page

    title = f"{run.dataset} · {run.model} · {run.target}s · map run {run.run_id}"
    summary = f"{run.items:,} {run.target}s · {run.clusters} clusters · noise {100 * run.noise_fraction:.1f}%"
    return write_map_page(
        [{k: v for k, v in p.items() if k != "color"} for p in points],
        path,
        dataset=run.dataset,
        target=run.target,
        title=title,
        summary=summary,
    )


# Categorical colours (tab20), then grey for noise / other / none.
_NOISE_GREY = "#b0b0b0"
MAX_LEGEND = 20


def write_png(
    points: list[dict[str, Any]], path: str | Path, run: RunSummary, *, color_by: str = "cluster"
) -> Path:
    """A scatter plot of the run (matplotlib, Agg): coloured by cluster or by a field, with a
    legend (the MAX_LEGEND largest groups; noise and missing values grey) or, for a field with
    many numeric values, a colour bar."""
    check_color_by(color_by)
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise CurationError(f"--png needs matplotlib, part of the curate extra: {CURATE_EXTRA}") from None
    with warnings.catch_warnings():
        # Glyphs missing from the font (labels in scripts or emoji DejaVu Sans lacks: drawn as
        # boxes) would print a warning per glyph on stderr, even with --quiet.
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph .* missing from")
        fig, ax = plt.subplots(figsize=(11, 9), dpi=130)
        try:
            _draw_png(plt, fig, ax, points, run, color_by)
            out = Path(path)
            fig.savefig(out, format="png")
        finally:
            plt.close(fig)
    return out


def _draw_png(
    plt: Any, fig: Any, ax: Any, points: list[dict[str, Any]], run: RunSummary, color_by: str
) -> None:
    from matplotlib.lines import Line2D

    n = len(points)
    x = np.fromiter((p["x"] for p in points), dtype=np.float64, count=n)
    y = np.fromiter((p["y"] for p in points), dtype=np.float64, count=n)
    if color_by == "cluster":
        values: list[Any] = [p["cluster"] for p in points]
    else:
        values = [p.get("color") for p in points]
    size = float(np.clip(40_000 / max(n, 1), 1.0, 14.0))
    alpha = float(np.clip(3_000 / max(n, 1) ** 0.8, 0.25, 0.9))
    numeric = color_by != "cluster" and _numeric(values)
    if numeric:
        v = np.array([float(a) if _is_number(a) else np.nan for a in values])
        missing = np.isnan(v)
        ax.scatter(x[missing], y[missing], s=size, c=_NOISE_GREY, alpha=alpha, linewidths=0, rasterized=True)
        art = ax.scatter(
            x[~missing],
            y[~missing],
            s=size,
            c=v[~missing],
            cmap="viridis",
            alpha=alpha,
            linewidths=0,
            rasterized=True,
        )
        fig.colorbar(art, ax=ax, shrink=0.8, label=plain_text(color_by))
    else:
        keys = ["(none)" if a is None else a if color_by == "cluster" else _category(a) for a in values]
        counts: dict[Any, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        special = {-1, "(none)"}
        ranked = sorted((k for k in counts if k not in special), key=lambda k: (-counts[k], str(k)))
        cmap = plt.get_cmap("tab20" if len(ranked) > 10 else "tab10")
        palette = [cmap(i) for i in range(cmap.N)]
        # Every group its colour (cycling through the palette when there are many), largest first;
        # noise and "none" grey underneath.
        colour_of = {key: palette[i % len(palette)] for i, key in enumerate(ranked)}
        coloured = np.array([key in colour_of for key in keys], dtype=bool)
        ax.scatter(
            x[~coloured],
            y[~coloured],
            s=size,
            c=_NOISE_GREY,
            alpha=alpha * 0.7,
            linewidths=0,
            rasterized=True,
        )
        order = np.flatnonzero(coloured)
        np.random.default_rng(0).shuffle(order)  # no group drawn over all the others
        if len(order):
            colours = np.array([colour_of[keys[i]] for i in order])
            ax.scatter(x[order], y[order], s=size, c=colours, alpha=alpha, linewidths=0, rasterized=True)
        shown = ranked[:MAX_LEGEND]
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=colour_of[key],
                label=_legend_label(key, color_by, counts[key]),
            )
            for key in shown
        ]
        rest = ranked[MAX_LEGEND:]
        if rest:
            what = "clusters" if color_by == "cluster" else "values"
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="",
                    label=f"{len(rest):,} more {what} ({sum(counts[k] for k in rest):,}; colours repeat)",
                )
            )
        for key, name in ((-1, "noise"), ("(none)", "none")):
            if key in counts:
                handles.append(
                    Line2D(
                        [], [], marker="o", linestyle="", color=_NOISE_GREY, label=f"{name} ({counts[key]:,})"
                    )
                )
        if handles:
            ax.legend(
                handles=handles,
                title=plain_text(color_by),
                loc="center left",
                bbox_to_anchor=(1.01, 0.5),
                fontsize=8,
                title_fontsize=9,
                frameon=False,
                markerscale=1.2,
            )
    ax.set_title(
        f"{plain_text(run.dataset)} · {plain_text(run.model or '')} · {run.target}s · map run {run.run_id}\n"
        f"{run.items:,} points, {run.clusters} clusters, {100 * run.noise_fraction:.1f}% noise"
        + (f" · coloured by {plain_text(color_by)}" if color_by != "cluster" else ""),
        fontsize=10,
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def _numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(_is_number(v) for v in present) and len(set(present)) > MAX_LEGEND


def _category(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or _is_number(value):
        return str(value).lower() if isinstance(value, bool) else value
    import json

    return json.dumps(value, sort_keys=True)[:60]


def _legend_label(key: Any, color_by: str, count: int) -> str:
    text = f"cluster {key}" if color_by == "cluster" else _visible(str(key))
    if len(text) > 40:
        text = text[:39] + "…"
    return f"{_no_mathtext(text)} ({count:,})"


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _visible(text: str) -> str:
    """Control characters written as escapes (a newline would split a legend entry, a tab is a
    missing glyph)."""
    return "".join(
        _ESCAPES.get(c, f"\\x{ord(c):02x}") if unicodedata.category(c) == "Cc" else c for c in text
    )


def _no_mathtext(text: str) -> str:
    """Text matplotlib draws as it is: a pair of $ would start mathtext (and a bad expression
    such as $\\notacommand$ fail the whole picture)."""
    return text.replace("$", "\\$")


def plain_text(text: str) -> str:
    """A label, name or title as matplotlib should draw it: verbatim, on one line."""
    return _no_mathtext(_visible(text))


__all__ = [
    "CurationError",
    "MapOptions",
    "Projection",
    "RunSummary",
    "cluster_points",
    "drop_run",
    "get_run",
    "list_runs",
    "make_map",
    "project",
    "run_points",
    "umap_layout",
    "write_html",
    "write_png",
]
