"""Benchmarks of `pgsearch map`: quality on real data (scikit-learn's handwritten digits) and
time, memory and trustworthiness at scale (bench/synthetic.py's clustered 512-d vectors).

    python bench/curate.py digits [--home DIR] [--seeds 3]
    python bench/curate.py scale --n 100000 [--home DIR] [--reuse]
    python bench/curate.py scale --n 1000000 --home /tmp/m1m
    python bench/curate.py duplicates|outliers|mislabels|subset [--n 100000]   # Curation II tasks

The Curation II tasks live in bench/tasks_dupes_outliers.py (duplicates, outliers),
bench/tasks_mislabels.py and bench/tasks_curate.py (subset: `pgsearch curate`); each runs on the
digits of bench/digits.py with its planted problems (flipped labels, near-duplicates, noise
images) and, with --n, at N synthetic items; this script runs them and prints their results as a
table with the machine.

Every `pgsearch` step runs as its own fresh process (what a user waits for), timed from start to
exit, with the peak resident memory of that process (os.wait4's ru_maxrss).

digits: the 1,797 images of load_digits written by bench/digits.py (no planted problems) into
class folders, loaded with `pgsearch load --format folders --model pixels` into a temporary
home. Then `pgsearch map --dataset digits` twice: cold (a fresh home: empty numba cache, the
graph not built yet) and warm (--recompute in a new process: the cache is filled). Quality of
each map, computed here from what the database holds:
- trustworthiness (sklearn.manifold.trustworthiness, 10 neighbours) of the map against the
  stored vectors;
- adjusted Rand index of the clusters against the digit labels (the class folder); noise points
  (cluster -1) count as one cluster of their own.
Then the same with other parameters (seeds, HDBSCAN) to show the spread.

scale: N synthetic assets written straight into Postgres (bench/synthetic.py, clustered kind),
`pgsearch neighbors` (the graph), `pgsearch map`; trustworthiness on a random 5,000-item
subsample (their stored vectors against their map points).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


# -- the machine ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("pgsearch", "numpy", "umap-learn", "scikit-learn", "numba", "psycopg"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "-"
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram, "versions": versions}


def print_machine(info: dict[str, Any]) -> None:
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))


# -- fresh processes -------------------------------------------------------------------------------


def pgsearch(args: list[str], home: Path, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs `pgsearch ARGS` as a new process: wall seconds, peak RSS (MB), stdout (JSON when it
    parses). Fails loudly on a non-zero exit."""
    environment = {**os.environ, "PGSEARCH_HOME": str(home), **(env or {})}
    environment.pop("PGSEARCH_DSN", None)
    environment.pop("DATABASE_URL", None)
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(
        ["pgsearch", *args],
        stdout=out,
        stderr=err,
        env=environment,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    text = out.read().decode()
    if process.returncode != 0:
        raise SystemExit(
            f"pgsearch {' '.join(args)} failed ({process.returncode}):\n{err.read().decode()[-3000:]}"
        )
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return {"seconds": wall, "peak_mb": usage.ru_maxrss / 1024, "output": parsed}


def server_dsn(home: Path) -> str:
    from pgsearch.server import EmbeddedServer

    return EmbeddedServer(home).url()


# -- quality from the database ------------------------------------------------------------------


def map_of(
    dsn: str, run_id: int, target: str = "asset"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(ids, xy, cluster, filenames) of a run's points, ordered by id."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT p.item_id, p.x, p.y, p.cluster, a.filename FROM pgsearch.projection_points AS p"
            " JOIN pgsearch.assets AS a ON a.id = p.item_id WHERE p.run_id = %s ORDER BY p.item_id",
            (run_id,),
        ).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    xy = np.array([[r[1], r[2]] for r in rows], dtype=np.float64)
    cluster = np.array([r[3] for r in rows], dtype=np.int64)
    return ids, xy, cluster, [r[4] for r in rows]


def vectors_of(dsn: str, dataset: str, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors float32) of the dataset's asset space, ordered by id (only `ids` if given)."""
    from pgsearch import db as database
    from pgsearch.curate.copyio import read_space_vectors
    from pgsearch.curate.spaces import resolve_space

    with database.connect(dsn) as conn:
        space = resolve_space(conn, dataset, "asset", None)
        vectors = read_space_vectors(conn, space.table_name, "asset_id", space.dim)
    if ids is None:
        return vectors.ids, vectors.vectors
    rows = np.searchsorted(vectors.ids, ids)
    return ids, vectors.vectors[rows]


def trustworthiness(vectors: np.ndarray, xy: np.ndarray, k: int = 10) -> float:
    from sklearn.manifold import trustworthiness as tw

    return float(tw(vectors, xy, n_neighbors=k))


# -- digits ------------------------------------------------------------------------------------


def bench_digits(args: argparse.Namespace) -> dict[str, Any]:
    from digits import write_digits
    from sklearn.metrics import adjusted_rand_score

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pgsearch-bench-map-"))
    if (home / "numba-cache").exists():
        shutil.rmtree(home / "numba-cache")  # the cold run starts with an empty cache
    folder = home / "digits-images"
    if not folder.exists():
        write_digits(folder, flip=0.0, duplicates=0, noise=0)
    load = pgsearch(
        ["load", str(folder), "--dataset", "digits", "--format", "folders", "--model", "pixels", "--json"],
        home,
    )
    dsn = server_dsn(home)
    runs: list[dict[str, Any]] = []

    def measure(name: str, extra: list[str]) -> None:
        result = pgsearch(["map", "--dataset", "digits", "--format", "json", "-q", *extra], home)
        summary = result["output"]
        ids, xy, cluster, filenames = map_of(dsn, summary["run_id"])
        _, vectors = vectors_of(dsn, "digits", ids)
        truth = np.array([int(f.split("/", 1)[0]) for f in filenames])
        runs.append(
            {
                "run": name,
                "args": " ".join(extra) or "(defaults)",
                "seconds": round(result["seconds"], 2),
                "inside_s": round(summary["seconds"], 2) if summary.get("computed") else None,
                "peak_mb": round(result["peak_mb"]),
                "trustworthiness": round(trustworthiness(vectors, xy), 4),
                "ari": round(float(adjusted_rand_score(truth, cluster)), 4),
                "clusters": summary["clusters"],
                "noise": round(summary["noise_fraction"], 4),
                "computed": summary["computed"],
            }
        )
        print_row(runs[-1])

    print("| run | args | wall s | in-command s | peak MB | trustworthiness | ARI | clusters | noise |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    measure("cold (first map, empty numba cache)", [])
    measure("warm (new process, --recompute)", ["--recompute"])
    measure("reused (no --recompute)", [])
    for seed in range(1, args.seeds):
        measure(f"seed {seed}", ["--recompute", "--seed", str(seed)])
    measure("hdbscan", ["--recompute", "--cluster", "hdbscan"])
    for seed in range(1, args.seeds):
        measure(f"hdbscan seed {seed}", ["--recompute", "--cluster", "hdbscan", "--seed", str(seed)])
    return {"home": str(home), "load_s": round(load["seconds"], 1), "runs": runs}


def print_row(row: dict[str, Any]) -> None:
    print(
        f"| {row['run']} | {row['args']} | {row['seconds']:.2f} | "
        f"{'' if row['inside_s'] is None else row['inside_s']} | {row['peak_mb']} | "
        f"{row['trustworthiness']:.4f} | {row['ari']:.4f} | {row['clusters']} | {100 * row['noise']:.1f}% |",
        flush=True,
    )


# -- scale ---------------------------------------------------------------------------------------


def bench_scale(args: argparse.Namespace) -> dict[str, Any]:
    from synthetic import generate_chunks, write_dataset

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pgsearch-bench-map-"))
    dsn = server_dsn(home)
    from pgsearch import db as database
    from pgsearch import migrate

    migrate.upgrade(dsn)
    dataset = args.dataset
    steps: list[dict[str, Any]] = []
    with database.connect(dsn) as conn:
        have = conn.execute(
            "SELECT count(*) FROM pgsearch.assets AS a JOIN pgsearch.datasets AS d ON d.id = a.dataset_id"
            " WHERE d.name = %s",
            (dataset,),
        ).fetchone()
    if not (args.reuse and have and have[0] == args.n):
        started = time.perf_counter()
        with database.connect(dsn) as conn:
            write_dataset(
                conn,
                dataset,
                generate_chunks(args.n, kind=args.kind),
                recipe={"generator": "bench/synthetic.py", "n": args.n, "kind": args.kind},
                progress=False,
            )
        steps.append(
            {
                "step": f"bench/synthetic.py --n {args.n} --kind {args.kind}",
                "seconds": time.perf_counter() - started,
            }
        )
    neighbors = pgsearch(["neighbors", "--dataset", dataset, "--format", "json", "-q"], home)
    steps.append(
        {"step": "pgsearch neighbors", "seconds": neighbors["seconds"], "peak_mb": neighbors["peak_mb"]}
    )
    mapped = pgsearch(
        ["map", "--dataset", dataset, "--format", "json", "-q", "--recompute", *args.map_args], home
    )
    summary = mapped["output"]
    steps.append({"step": "pgsearch map", "seconds": mapped["seconds"], "peak_mb": mapped["peak_mb"]})
    ids, xy, cluster, _ = map_of(dsn, summary["run_id"])
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(ids), size=min(5000, len(ids)), replace=False))
    _, vectors = vectors_of(dsn, dataset, ids[pick])
    tw = trustworthiness(vectors, xy[pick])
    print("| step | wall s | peak MB |")
    print("|---|---:|---:|")
    for step in steps:
        peak = f"{step['peak_mb']:.0f}" if "peak_mb" in step else ""
        print(f"| {step['step']} | {step['seconds']:.1f} | {peak} |")
    sampling = summary.get("sampling") or {}
    print(
        f"\nmap: {summary['items']:,} points, {summary['clusters']} clusters, "
        f"{100 * summary['noise_fraction']:.1f}% noise, {summary['seconds']:.1f} s inside the command; "
        f"fitted on {sampling.get('fitted', summary['items']):,}; "
        f"trustworthiness (10 neighbours, 5,000-item subsample) {tw:.4f}"
    )
    return {"home": str(home), "steps": steps, "map": summary, "trustworthiness_5000": tw}


def bench_task(args: argparse.Namespace) -> dict[str, Any]:
    """One Curation II task module's benchmark (see the module docstring)."""
    if args.bench in ("duplicates", "outliers"):
        import tasks_dupes_outliers as dupes

        run = dupes.bench_duplicates if args.bench == "duplicates" else dupes.bench_outliers
        return run(home=args.home, n=args.n)
    if args.bench == "mislabels":
        import tasks_mislabels as mislabels

        rows = mislabels.run_digits(home=args.home)
        print(mislabels.digits_table(rows))
        result: dict[str, Any] = {"digits": rows}
        if args.n:
            result["synthetic"] = mislabels.run_synthetic(home=args.home, n=args.n)
        return result
    import tasks_curate as subset

    return subset.bench_curate(home=args.home, n=args.n)


def print_flat(result: Any, prefix: str = "") -> None:
    """A nested result as a two-column Markdown table (dotted keys)."""
    rows: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        else:
            text = f"{value:.4g}" if isinstance(value, float) else json.dumps(value, default=str)
            rows.append((key, text))

    walk(result, prefix)
    print("| measure | value |\n|---|---|")
    for key, text in rows:
        print(f"| {key} | {text} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="bench", required=True)
    digits = sub.add_parser("digits", help="quality and start-up time on scikit-learn's digits")
    digits.add_argument("--home", help="PGSEARCH_HOME to use (default: a new temp dir)")
    digits.add_argument("--seeds", type=int, default=3, help="seeds per setting (the spread of the numbers)")
    scale = sub.add_parser("scale", help="time, memory, trustworthiness on N synthetic vectors")
    scale.add_argument("--n", type=int, default=100_000)
    scale.add_argument("--kind", default="clustered")
    scale.add_argument("--home", help="PGSEARCH_HOME to use (default: a new temp dir)")
    scale.add_argument("--dataset", default="synthetic")
    scale.add_argument("--reuse", action="store_true", help="keep a dataset of that size already in --home")
    scale.add_argument("map_args", nargs="*", help="extra arguments for pgsearch map (after --)")
    for task in ("duplicates", "outliers", "mislabels", "subset"):
        tool = sub.add_parser(task, help=f"Curation II: {task} on the digits (and --n synthetic items)")
        tool.add_argument("--home", type=Path, help="PGSEARCH_HOME to use (default: a new temp dir)")
        tool.add_argument("--n", type=int, default=0, help="also time the command at N synthetic items")
    args = parser.parse_args()
    info = machine()
    print_machine(info)
    if args.bench in ("duplicates", "outliers", "mislabels", "subset"):
        result = bench_task(args)
        print_flat(result)
    else:
        result = bench_digits(args) if args.bench == "digits" else bench_scale(args)
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(
            json.dumps({"machine": info, **result}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
