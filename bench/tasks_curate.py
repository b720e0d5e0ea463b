"""Benchmarks of `pgsearch curate` (to be wired into bench/curate.py): subset quality on
scikit-learn's digits (bench/digits.py: 1,797 real digits + 20 near-duplicates + 20 noise images,
pixels model) against random subsets of the same size, what each design choice is worth, and
timings on bench/synthetic.py's vectors.

    python bench/tasks_curate.py digits [--home DIR | --dsn URL] [--seeds 5]
    python bench/tasks_curate.py timing --n 100000 [--home DIR | --dsn URL]

Each prints one JSON document.

Quality, measured independently of curate's own clustering:
- classes covered: true digit classes (truth.json) with at least one item in the subset;
- k-means(100) coverage: the benchmark's own k-means with 100 clusters (scikit-learn, n_init 10,
  seeds 0..4) of the real digits' stored vectors: the share of those clusters holding a pick,
  averaged over the 5 clusterings (and the first one alone, as peers report it);
- 1-NN accuracy: a 1-nearest-neighbour classifier (cosine, on the stored vectors) trained on the
  subset's TRUE labels (noise images, which have none, train nothing), tested on the real digits
  not in the subset;
- noise: planted noise images in the subset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DATASET = "digits_curate"
BENCH_CLUSTERS = 100
BENCH_SEEDS = 5
RANDOM_REPEATS = 20
# What peers measured on the same data (10% subsets; the table).
PEERS = {
    "random (peers' run)": {"kmeans100_covered_pct": 81.0, "one_nn_accuracy": 0.936},
    "k-means(100) cluster-balanced": {"kmeans100_covered_pct": 100.0, "one_nn_accuracy": 0.965},
    "LightlyStudio diverse": {"kmeans100_covered_pct": 89.0, "one_nn_accuracy": 0.944},
    "FiftyOne unique": {"kmeans100_covered_pct": 88.0, "one_nn_accuracy": 0.951},
}


def _dsn(home: Path | None, dsn: str | None) -> str:
    from synthetic import server_dsn  # bench/synthetic.py

    return server_dsn(home, dsn)


def _load_digits(dsn: str, work: Path) -> dict[str, Any]:
    from digits import write_digits  # bench/digits.py

    from pgsearch import db as database
    from pgsearch.loader.pipeline import LoadOptions, load_folder

    root = work / "digits"
    truth = write_digits(root)
    with database.connect(dsn) as conn:
        conn.execute("SELECT pgsearch.drop_dataset(%s)", (DATASET,))
        conn.commit()
        load_folder(
            conn, LoadOptions(root=str(root), dataset=DATASET, format="folders", model="pixels", workers=0)
        )
    return truth


class DigitsTruth:
    """The stored vectors of the digits with what was planted, aligned by asset id."""

    def __init__(self, dsn: str, truth: dict[str, Any]) -> None:
        from pgsearch import db as database
        from pgsearch.curate.copyio import read_space_vectors
        from pgsearch.curate.spaces import resolve_space

        with database.connect(dsn) as conn:
            space = resolve_space(conn, DATASET, "asset", None)
            vectors = read_space_vectors(conn, space.table_name, "asset_id", space.dim)
            names = dict(
                conn.execute(
                    "SELECT id, filename FROM pgsearch.assets WHERE dataset_id = %s", (space.dataset_id,)
                ).fetchall()
            )
        self.ids = vectors.ids
        self.x = vectors.vectors
        files = truth["files"]
        self.names = [names[int(i)] for i in self.ids]
        self.label = np.array(
            [int(files[f]["true_label"]) if files[f]["true_label"] is not None else -1 for f in self.names]
        )
        self.noise = np.array([bool(files[f].get("noise")) for f in self.names])
        self.original = np.array([f.split("/")[1].startswith("digit_") for f in self.names])
        from sklearn.cluster import KMeans

        real = np.flatnonzero(self.original)
        self.bench_clusters = []
        for seed in range(BENCH_SEEDS):
            labels = np.full(len(self.ids), -1)
            labels[real] = KMeans(BENCH_CLUSTERS, n_init=10, random_state=seed).fit_predict(self.x[real])
            self.bench_clusters.append(labels)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ids, np.asarray(ids, dtype=np.int64))

    def evaluate(self, ids: np.ndarray) -> dict[str, Any]:
        chosen = np.zeros(len(self.ids), dtype=bool)
        chosen[self.rows(ids)] = True
        covered = [len(set(c[chosen & self.original].tolist()) - {-1}) for c in self.bench_clusters]
        train = chosen & (self.label >= 0)
        test = self.original & ~chosen
        nearest = np.argmax(self.x[test] @ self.x[train].T, axis=1)
        accuracy = float((self.label[train][nearest] == self.label[test]).mean())
        return {
            "size": int(chosen.sum()),
            "classes_covered": len(set(self.label[chosen].tolist()) - {-1}),
            "kmeans100_covered_pct": round(100.0 * float(np.mean(covered)) / BENCH_CLUSTERS, 1),
            "kmeans100_covered_pct_seed0": round(100.0 * covered[0] / BENCH_CLUSTERS, 1),
            "one_nn_accuracy": round(accuracy, 4),
            "noise_in_subset": int((chosen & self.noise).sum()),
        }


def _mean(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in results[0] if isinstance(results[0][k], (int, float))]
    out: dict[str, Any] = {k: round(float(np.mean([r[k] for r in results])), 4) for k in keys}
    out["min_one_nn_accuracy"] = min(r["one_nn_accuracy"] for r in results)
    out["max_noise_in_subset"] = max(r["noise_in_subset"] for r in results)
    out["runs"] = len(results)
    return out


def _curate(dsn: str, size: int, seed: int, **extra: Any) -> Any:
    from pgsearch import db as database
    from pgsearch.curate.subset import CurateRequest, run_curate

    with database.connect(dsn) as conn:
        request = CurateRequest(
            dataset=DATASET, size=size, group=f"bench-{size}-{seed}", seed=seed, replace=True, **extra
        )
        return run_curate(conn, request)


def digits_quality(dsn: str, work: Path, *, seeds: int = 5) -> dict[str, Any]:
    """curate against random subsets (same size, same candidates) at 10% of the dataset (184 of
    1,837) and 10% of the real digits (180); peers' figures alongside."""
    truth = DigitsTruth(dsn, _load_digits(dsn, work))
    out: dict[str, Any] = {"items": len(truth.ids), "real_digits": int(truth.original.sum()), "peers": PEERS}
    for size, what in ((184, "10% of the 1,837 items"), (180, "10% of the 1,797 real digits")):
        runs = []
        timing = []
        for seed in range(seeds):
            result = _curate(dsn, size, seed)
            runs.append(truth.evaluate(result.selection.picked))
            timing.append(result.seconds)
            summary = result.summary()
        rng = np.random.default_rng(12345)
        randoms = [
            truth.evaluate(rng.choice(truth.ids, size=size, replace=False)) for _ in range(RANDOM_REPEATS)
        ]
        out[f"size_{size}"] = {
            "what": what,
            "curate": _mean(runs),
            "curate_runs": runs,
            "random": _mean(randoms),
            "curate_seconds_mean": round(float(np.mean(timing)), 2),
            "own_clusters": {
                "clusters": summary["clusters"],
                "covered_pct": summary["covered_pct"],
                "random_covered_pct": summary["random_covered_pct"],
            },
            "junk_excluded": summary["junk_excluded"],
            "junk_threshold": summary["junk_threshold"],
            "duplicates_skipped": summary["duplicates_skipped"],
        }
    out["baseline_kmeans_medoids"] = kmeans_medoids(truth, 184)
    out["junk_separation"] = junk_separation(dsn, truth)
    out["ablations"] = ablations(dsn, truth, seeds=min(seeds, 3))
    return out


def kmeans_medoids(truth: DigitsTruth, size: int, seeds: int = 3) -> dict[str, Any]:
    """A plain baseline: k-means with `size` clusters of all items, the item nearest each centroid
    (no junk or duplicate handling)."""
    from sklearn.cluster import KMeans

    runs = []
    for seed in range(seeds):
        model = KMeans(size, n_init=1, random_state=seed).fit(truth.x)
        d = model.transform(truth.x)
        picks = np.unique(np.argmin(d, axis=0))
        runs.append(truth.evaluate(truth.ids[picks]))
    return _mean(runs)


def junk_separation(dsn: str, truth: DigitsTruth) -> dict[str, Any]:
    """Isolation (distance to the nearest non-duplicate neighbour) of real items vs noise."""
    from pgsearch import db as database
    from pgsearch.curate import duplicates as dup
    from pgsearch.curate import graph as graphs
    from pgsearch.curate import subset
    from pgsearch.curate.spaces import resolve_space

    with database.connect(dsn) as conn:
        space = resolve_space(conn, DATASET, "asset", None)
        graph = graphs.ensure_graph(conn, space)
        conn.commit()
    threshold = dup.threshold_for(space.model)[0]
    iso = subset.isolation(graph.distances, graph.neighbor_ids >= 0, threshold)
    rows = truth.rows(graph.ids)
    noise = truth.noise[rows]
    limit = subset.junk_threshold(iso, subset.median_pair_distance(truth.x, 0))
    return {
        "real_isolation_p50_p99_max": [round(float(v), 4) for v in np.percentile(iso[~noise], [50, 99, 100])],
        "noise_isolation_min_median": [round(float(v), 4) for v in np.percentile(iso[noise], [0, 50])],
        "junk_threshold": round(limit, 4),
        "real_flagged": int((iso[~noise] > limit).sum()),
        "noise_flagged": int((iso[noise] > limit).sum()),
    }


def ablations(dsn: str, truth: DigitsTruth, *, seeds: int = 3, size: int = 184) -> dict[str, Any]:
    """What each choice is worth at 184: quota power, number of clusters, junk exclusion."""
    from pgsearch.curate import subset

    variants: dict[str, dict[str, Any]] = {
        "default (power 0.5, K sqrt(n) = 43)": {},
        "quota power 0 (equal shares)": {"power": 0.0},
        "quota power 1 (proportional)": {"power": 1.0},
        "K = N/10 = 18": {"clusters": 18},
        "K = N/2 = 92": {"clusters": 92},
        "K = N = 184 (one pick per cluster)": {"clusters": 184},
        "junk kept (--include-outliers)": {"include_outliers": True},
    }
    out: dict[str, Any] = {}
    saved = subset.QUOTA_POWER
    try:
        for name, variant in variants.items():
            subset.QUOTA_POWER = variant.get("power", saved)
            extra = {k: v for k, v in variant.items() if k != "power"}
            runs = [
                truth.evaluate(_curate(dsn, size, seed, **extra).selection.picked) for seed in range(seeds)
            ]
            out[name] = _mean(runs)
    finally:
        subset.QUOTA_POWER = saved
    return out


# -- timings on synthetic vectors ------------------------------------------------------------------


def _timed(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Runs `python -m pgsearch ARGV` in a fresh process: wall seconds, peak RSS, its JSON."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgsearch", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    rc = os.waitstatus_to_exitcode(status)
    info: dict[str, Any] = {"rc": rc, "wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    try:
        summary = json.loads(stdout)
        info.update(
            seconds_inside=summary["seconds"],
            timings=summary["timings"],
            clusters=summary["clusters"],
            covered_pct=summary["covered_pct"],
            random_covered_pct=summary["random_covered_pct"],
            junk_excluded=summary["junk_excluded"],
            duplicates_skipped=summary["duplicates_skipped"],
        )
    except (ValueError, KeyError):
        info["stderr"] = stderr.strip().splitlines()[-5:]
    return info


def synthetic_timing(
    dsn: str, n: int, *, kind: str = "clustered", fraction: float = 0.1, report: bool = True
) -> dict[str, Any]:
    """`pgsearch curate --size n*fraction` at n synthetic 512-d items, graph built beforehand (not
    timed), from a fresh process."""
    from synthetic import generate_chunks, write_dataset

    from pgsearch import db as database
    from pgsearch.curate import graph as graphs
    from pgsearch.curate.spaces import resolve_space

    name = f"bench_curate_{kind}_{n}"
    info: dict[str, Any] = {"n": n, "kind": kind, "size": int(n * fraction)}
    with database.connect(dsn) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pgsearch.assets a JOIN pgsearch.datasets d ON d.id = a.dataset_id WHERE d.name = %s",
            (name,),
        ).fetchone()
        if not found or found[0] != n:
            t0 = time.perf_counter()
            write_dataset(conn, name, generate_chunks(n, kind=kind), progress=False)
            info["write_s (not timed below)"] = round(time.perf_counter() - t0, 1)
        space = resolve_space(conn, name, "asset", None)
        t0 = time.perf_counter()
        graphs.ensure_graph(conn, space)
        info["graph_s (not timed below)"] = round(time.perf_counter() - t0, 1)
        conn.commit()
    env = dict(os.environ, PGSEARCH_DSN=dsn)
    base = ["curate", "--dataset", name, "--size", str(info["size"]), "-q", "-f", "json", "--replace"]
    info["without_report"] = _timed([*base, "--into-group", "bench-a"], env)
    if report:
        target = Path(tempfile.mkdtemp(prefix="bench-curate-")) / "report.html"
        info["with_report"] = _timed([*base, "--into-group", "bench-b", "--report", str(target)], env)
        info["report_bytes"] = target.stat().st_size if target.exists() else None
    return info


# -- entry points (bench/curate.py) ---------------------------------------------------------------------


def bench_curate(
    *, home: Path | None = None, dsn: str | None = None, n: int = 0, seeds: int = 5, work: Path | None = None
) -> dict[str, Any]:
    """Digits quality against random and peers; (n > 0) timings at n synthetic items."""
    work = work or Path(tempfile.mkdtemp(prefix="bench-curate-"))
    url = _dsn(home, dsn)
    report: dict[str, Any] = {"digits": digits_quality(url, work, seeds=seeds)}
    if n:
        report["timings"] = synthetic_timing(url, n)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("task", choices=("digits", "timing", "all"))
    parser.add_argument("--n", type=int, default=100_000, help="synthetic items for the timing")
    parser.add_argument("--kind", default="clustered", help="bench/synthetic.py kind for the timing")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--home", type=Path, help="PGSEARCH_HOME of the embedded server (default: a temp dir)"
    )
    parser.add_argument("--dsn", help="use this server instead of an embedded one")
    parser.add_argument("--work", type=Path, help="folder for the generated images (default: a temp dir)")
    args = parser.parse_args()
    if args.task == "digits":
        url = _dsn(args.home, args.dsn)
        result: dict[str, Any] = digits_quality(
            url, args.work or Path(tempfile.mkdtemp(prefix="bench-curate-")), seeds=args.seeds
        )
    elif args.task == "timing":
        result = synthetic_timing(_dsn(args.home, args.dsn), args.n, kind=args.kind)
    else:
        result = bench_curate(home=args.home, dsn=args.dsn, n=args.n, seeds=args.seeds, work=args.work)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
