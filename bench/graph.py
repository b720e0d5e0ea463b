"""bench/graph: the whole `pgsearch neighbors` command on N synthetic 512-d vectors, from a fresh
process: wall time, peak memory, recall@10 against exact neighbours.

    python bench/graph.py --n 100000 --home /tmp/g100k                # generates, then measures
    python bench/graph.py --n 1000000 --home /tmp/g1m                 # ~2 min to generate
    python bench/graph.py --n 100000 --home /tmp/g100k --reuse        # measure again on that data
    python bench/graph.py --n 100000 --kind skewed --method exact     # other data, another method
    python bench/graph.py --n 100000 --home /tmp/g100k --reuse --compare   # + pynndescent, FAISS
    python bench/graph.py --n 100000 --home /tmp/g100k --reuse --refresh 1000  # + a refresh

The data comes from bench/synthetic.py (default: 1,000 Gaussian clusters in a random 32-d subspace
of 512 dimensions plus a little noise, seed 7, as bench/query.py generates them), written straight
into an embedded server under --home (or --dsn). No HNSW index unless --refresh asks for one
(the bulk graph does not read it).

Measured: `pgsearch neighbors --dataset D --rebuild --format json --quiet` in a child process
(imports, COPY out, compute, COPY in, primary key, summary), its wall time and its peak resident
memory (/usr/bin/time -v when present, else getrusage of the children). Recall@10: the stored graph
against exact numpy neighbours (cosine, on the stored half-precision vectors) of 1,000 random
items; a neighbour whose distance ties the true 10th counts as found.

--compare runs, in this process and on the same vectors, the alternatives that were considered:
pynndescent (what umap-learn uses), FAISS IVF-flat (nlist 4 sqrt(n), nprobe 8) and the exact
search; each only if its package is installed.
--refresh N: builds the HNSW index if missing, adds N new vectors (same generator, another seed),
changes N/10 and deletes N/10, then times `pgsearch neighbors` (the incremental refresh) and its
recall@10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402

from pgsearch import db as database  # noqa: E402
from pgsearch.curate import graph  # noqa: E402
from pgsearch.curate.copyio import read_space_vectors  # noqa: E402
from pgsearch.curate.spaces import resolve_space  # noqa: E402


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model or platform.processor(),
        "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def run_command(dsn: str, args: list[str]) -> dict[str, Any]:
    """`pgsearch neighbors ARGS --format json --quiet` in a fresh process: its JSON, wall time
    and peak RSS."""
    command = [
        sys.executable,
        "-m",
        "pgsearch",
        "neighbors",
        *args,
        "--format",
        "json",
        "--quiet",
        "--dsn",
        dsn,
    ]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer:
        command = [timer, "-v", *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"pgsearch neighbors failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    rss_kb = None
    for line in done.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss_kb = int(line.rsplit(":", 1)[1])
    if rss_kb is None:  # without time -v: the largest child so far (ours, since it ran last)
        rss_kb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {
        "result": json.loads(done.stdout),
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(rss_kb / 2**20, 2),
    }


def exact_sample(x: np.ndarray, k: int, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours of x[sample] (positions, cosine distances), itself left out."""
    pos = np.empty((len(sample), k), dtype=np.int64)
    dist = np.empty((len(sample), k), dtype=np.float32)
    for s0 in range(0, len(sample), 64):
        rows = sample[s0 : s0 + 64]
        s = x[rows] @ x.T
        s[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(s, len(x) - k, axis=1)[:, len(x) - k :]
        ts = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-ts, axis=1)
        pos[s0 : s0 + len(rows)] = np.take_along_axis(top, order, axis=1)
        dist[s0 : s0 + len(rows)] = 1 - np.take_along_axis(ts, order, axis=1)
    return pos, dist


def recall_at(
    found: np.ndarray, found_d: np.ndarray, truth: np.ndarray, truth_d: np.ndarray, k: int
) -> float:
    hits = 0
    for f, fd, t, td in zip(found, found_d, truth, truth_d, strict=True):
        expected = set(t[:k].tolist())
        hits += sum(1 for p, d in zip(f[:k], fd[:k], strict=True) if p in expected or d <= td[k - 1] + 1e-6)
    return hits / (len(found) * k)


def stored(conn: Any, dataset: str) -> tuple[Any, np.ndarray, np.ndarray]:
    space = resolve_space(conn, dataset, "asset", None)
    v = read_space_vectors(conn, space.table_name, "asset_id", space.dim)
    x = v.vectors
    graph._normalize(x)
    return space, v.ids, x


def graph_recall(conn: Any, dataset: str, sample_size: int, k: int = 10) -> float:
    space, ids, x = stored(conn, dataset)
    g = graph.load_graph(conn, space)
    assert (g.ids == ids).all()
    sample = np.sort(
        np.random.default_rng(2024).choice(len(ids), size=min(sample_size, len(ids)), replace=False)
    )
    truth, truth_d = exact_sample(x, k, sample)
    positions = np.searchsorted(ids, g.neighbor_ids[sample, :k])
    return recall_at(positions, g.distances[sample, :k], truth, truth_d, k)


def compare(conn: Any, dataset: str, k: int, sample_size: int) -> list[dict[str, Any]]:
    """The alternatives on the same vectors, in this process."""
    _, ids, x = stored(conn, dataset)
    n = len(x)
    sample = np.sort(np.random.default_rng(2024).choice(n, size=min(sample_size, n), replace=False))
    truth, truth_d = exact_sample(x, 10, sample)
    rows: list[dict[str, Any]] = []

    def record(name: str, seconds: float, pos: np.ndarray, dist: np.ndarray, note: str = "") -> None:
        r = recall_at(pos[sample], dist[sample], truth, truth_d, 10)
        rows.append({"method": name, "compute_s": round(seconds, 1), "recall@10": round(r, 4), "note": note})
        print(f"  {name}: {seconds:.1f} s, recall@10 {r:.4f} {note}", file=sys.stderr, flush=True)

    for method in ("ivf", "exact"):
        if method == "exact" and n > 200_000:
            continue
        info: dict[str, Any] = {}
        t0 = time.perf_counter()
        pos, dist = graph.knn(x, k, method=method, info=info)
        record(f"pgsearch {method}", time.perf_counter() - t0, pos, dist)
    try:
        import pynndescent

        t0 = time.perf_counter()
        index = pynndescent.NNDescent(x, n_neighbors=k + 1, metric="cosine", random_state=0, n_jobs=-1)
        nbr, dst = index.neighbor_graph
        seconds = time.perf_counter() - t0
        # drop each item itself from its own list
        keep = nbr != np.arange(n)[:, None]
        pos = np.array([r[m][:k] for r, m in zip(nbr, keep, strict=True)])
        dist = np.array([r[m][:k] for r, m in zip(dst, keep, strict=True)], dtype=np.float32)
        record("pynndescent", seconds, pos, dist, "(includes numba JIT compile on first use)")
    except ImportError:
        pass
    try:
        import faiss

        nlist = int(4 * np.sqrt(n))
        t0 = time.perf_counter()
        quantizer = faiss.IndexFlatIP(x.shape[1])
        index = faiss.IndexIVFFlat(quantizer, x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        train = x[np.random.default_rng(0).choice(n, size=min(n, 50 * nlist), replace=False)]
        index.train(train)
        index.add(x)
        trained = time.perf_counter() - t0
        index.nprobe = 8
        t1 = time.perf_counter()
        sims, pos = index.search(x, k + 1)
        searched = time.perf_counter() - t1
        keep = pos != np.arange(n)[:, None]
        pos2 = np.array([r[m][:k] for r, m in zip(pos, keep, strict=True)])
        dist2 = np.array([1 - r[m][:k] for r, m in zip(sims, keep, strict=True)], dtype=np.float32)
        record(
            "faiss IVF-flat",
            trained + searched,
            pos2,
            dist2,
            f"(nlist {nlist}, nprobe 8: train+add {trained:.1f} s)",
        )
    except ImportError:
        pass
    return rows


def ids_before(conn: Any, space: Any) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            sql.SQL("SELECT asset_id FROM {}").format(sql.Identifier("pgsearch", space.table_name))
        )
    ]


def refresh(conn: Any, dsn: str, dataset: str, count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Adds `count` vectors, changes and deletes count/10, then times the refresh."""
    space = resolve_space(conn, dataset, "asset", None)
    table = sql.Identifier("pgsearch", space.table_name)
    conn.commit()
    conn.autocommit = True
    if not space.indexed:
        t0 = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space.id,))
        print(f"  HNSW index built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    # more items of the same mixture (the same clusters, other points)
    fresh = synthetic.generate(
        count,
        kind=args.kind,
        clusters=args.clusters,
        latent_dim=args.latent_dim,
        seed=args.seed,
        point_seed=args.seed + 1000 + len(ids_before(conn, space)),
    )
    ids = np.array(
        [r[0] for r in conn.execute(sql.SQL("SELECT asset_id FROM {} ORDER BY asset_id").format(table))]
    )
    rng = np.random.default_rng(11)
    touched = rng.choice(ids, size=2 * max(1, count // 10), replace=False)
    changed, gone = touched[: len(touched) // 2], touched[len(touched) // 2 :]
    ds = conn.execute("SELECT id FROM pgsearch.datasets WHERE name = %s", (dataset,)).fetchone()[0]
    new_ids = [
        r[0]
        for r in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('pgsearch.assets', 'id')) FROM generate_series(1, %s)",
            (count,),
        )
    ]
    with conn.cursor().copy("COPY pgsearch.assets (id, dataset_id, filename) FROM STDIN") as copy:
        for aid in new_ids:
            copy.write_row((aid, ds, f"new_{aid}.jpg"))
    from pgvector import HalfVector

    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} (space_id, asset_id, embedding) VALUES (%s, %s, %s)").format(table),
            [
                (space.id, int(a), HalfVector(v))
                for a, v in zip(new_ids, fresh.astype(np.float32), strict=True)
            ],
        )
        replacement = synthetic.generate(
            len(changed),
            kind=args.kind,
            clusters=args.clusters,
            latent_dim=args.latent_dim,
            seed=args.seed,
            point_seed=args.seed + 2000 + len(ids),
        )
        cur.executemany(
            sql.SQL("UPDATE {} SET embedding = %s WHERE asset_id = %s").format(table),
            [(HalfVector(v), int(a)) for a, v in zip(changed, replacement.astype(np.float32), strict=True)],
        )
    conn.execute("DELETE FROM pgsearch.assets WHERE id = ANY(%s)", (gone.tolist(),))
    before = graph.summary(conn, space)
    print(
        f"  before the refresh: {before.missing} missing, {before.stale} stale ({before.changed} changed, {before.gone} gone)",
        file=sys.stderr,
    )
    run = run_command(dsn, ["--dataset", dataset])
    return {
        "added": count,
        "changed": len(changed),
        "deleted": len(gone),
        "stale_before": before.stale,
        **run,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    synthetic.add_arguments(parser)
    parser.set_defaults(dataset="bench-graph")
    parser.add_argument(
        "--k", type=int, default=graph.DEFAULT_K, help="neighbours per item (the command's default)"
    )
    parser.add_argument("--method", choices=graph.METHODS, default="auto")
    parser.add_argument(
        "--sample", type=int, default=1000, help="items whose exact neighbours measure recall"
    )
    parser.add_argument("--reuse", action="store_true", help="skip the generation when the dataset is there")
    parser.add_argument("--compare", action="store_true", help="also time pynndescent, FAISS IVF-flat, exact")
    parser.add_argument(
        "--refresh", type=int, default=0, metavar="N", help="then time a refresh after N new items"
    )
    args = parser.parse_args()

    dsn = synthetic.server_dsn(args.home, args.dsn)
    if args.kind == "pixels":
        args.dim = synthetic.PIXELS_DIM
    recipe = synthetic.recipe_of(args)
    with database.connect(dsn) as conn:
        row = conn.execute(
            "SELECT description FROM pgsearch.datasets WHERE name = %s", (args.dataset,)
        ).fetchone()
        if not (args.reuse and row and json.loads(row[0] or "{}") == recipe):
            t0 = time.perf_counter()
            chunks = synthetic.generate_chunks(
                args.n,
                kind=args.kind,
                dim=args.dim,
                clusters=args.clusters,
                latent_dim=args.latent_dim,
                seed=args.seed,
            )
            info = synthetic.write_dataset(
                conn, args.dataset, chunks, dim=args.dim, recipe=recipe, progress=False
            )
            print(
                f"generated and loaded in {time.perf_counter() - t0:.0f} s: {info}",
                file=sys.stderr,
                flush=True,
            )
    mach = machine()
    run = run_command(
        dsn, ["--dataset", args.dataset, "--rebuild", "-k", str(args.k), "--method", args.method]
    )
    with database.connect(dsn) as conn:
        found = conn.execute(
            "SELECT g.params FROM pgsearch.neighbor_graphs g JOIN pgsearch.embedding_spaces s ON s.id = g.space_id"
            " JOIN pgsearch.datasets d ON d.id = s.dataset_id WHERE d.name = %s",
            (args.dataset,),
        ).fetchone()
        assert found is not None
        params = found[0]
        r10 = graph_recall(conn, args.dataset, args.sample)
        extra = compare(conn, args.dataset, args.k, args.sample) if args.compare else []
        refreshed = refresh(conn, dsn, args.dataset, args.refresh, args) if args.refresh else None
        if refreshed:
            refreshed["recall@10"] = round(graph_recall(conn, args.dataset, args.sample), 4)
    result = run["result"]
    print(
        f"\nmachine: {mach['cpus']} CPUs ({mach['cpu']}), {mach['ram_gb']} GB RAM, load average {mach['load_avg_1m']}"
        f" at the start; python {mach['python']}, numpy {mach['numpy']}"
    )
    print(f"data: {json.dumps(recipe)}\n")
    print("| n | dim | k | method | wall (whole command) | peak RSS | recall@10 | read / compute / write |")
    print("|---:|---:|---:|---|---:|---:|---:|---|")
    print(
        f"| {result['items']:,} | {args.dim} | {result['k']} | {result['method']} | {run['wall_s']:.1f} s "
        f"| {run['peak_rss_gb']:.2f} GB | {r10:.4f} | {params.get('read_s')} / {params.get('compute_s')} / "
        f"{params.get('write_s')} s |"
    )
    detail = {
        key: params.get(key)
        for key in ("lists", "pca_dims", "probes_per_item", "work", "estimated_recall", "seconds", "fallback")
    }
    print(f"\nivf details: {json.dumps(detail)}")
    if extra:
        print(
            "\n| alternative (same vectors, in-process) | compute | recall@10 | note |\n|---|---:|---:|---|"
        )
        for r in extra:
            print(f"| {r['method']} | {r['compute_s']} s | {r['recall@10']} | {r['note']} |")
    if refreshed:
        res = refreshed["result"]
        print(
            f"\nrefresh after +{refreshed['added']:,} new, {refreshed['changed']:,} changed, {refreshed['deleted']:,} deleted"
            f" ({refreshed['stale_before']:,} stale rows): {res['action']}, {refreshed['wall_s']:.1f} s whole command,"
            f" {res['updated']:,} rows written or deleted, peak RSS {refreshed['peak_rss_gb']:.2f} GB,"
            f" recall@10 {refreshed['recall@10']}"
        )


if __name__ == "__main__":
    main()
