"""bench/query: filtered top-k similarity and metadata-only queries on N synthetic 512-d assets.

Generates one dataset straight into Postgres (no images): asset rows with a status distribution,
groups, user metadata and label counts, and one clustered, L2-normalised 512-d vector per asset
(binary COPY as halfvec into an embedding space partition), then builds the space's HNSW index.
Then, for unfiltered and filtered (10%, 1%, 0.1%) top-k queries through the statement shape the
query translator emits, prints p50 / p95 latency, recall@k against exact numpy search on the same
(half-precision) vectors, and rows returned; and the same for a few metadata-only queries.

    python bench/query.py --n 100000                 # quick
    python bench/query.py                            # 1,000,000 assets (generation ~10 min here)
    python bench/query.py --home /tmp/b --reuse      # re-run the queries on an existing load

How the data goes in: through the loader's own writers, as `pgsearch load` writes (asset rows
COPYed once with their sketches and group memberships, loader/writer.py; vectors and embedding
states through loader/vectors.py), then VACUUM ANALYZE and the index build, each step timed.
No shapes are generated: label_counts / annotation_count go into the asset rows' COPY, as the
loader writes a new asset's counts of its shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgsearch import db as database  # noqa: E402
from pgsearch import migrate  # noqa: E402
from pgsearch.catalog import load_catalog  # noqa: E402
from pgsearch.indexes import add_index, drop_index, list_indexes  # noqa: E402
from pgsearch.loader import sketches, vectors, writer  # noqa: E402
from pgsearch.loader.rows import AssetRow  # noqa: E402
from pgsearch.loader.spaces import Space  # noqa: E402
from pgsearch.search_settings import SEARCH_SETTINGS, apply_settings  # noqa: E402
from pgsearch.translator import (  # noqa: E402
    Catalog,
    CompiledQuery,
    EmbeddingSpace,
    Similarity,
    VectorSource,
    compile_query,
)
from pgsearch.translator.paths import RERANK_BITS, RERANK_FACTOR, RERANK_MIN  # noqa: E402

DIM = 512
DATASET = "bench"
MODEL = "bench:synthetic-512"
CHUNK = 50_000
STATUSES = [("completed", 0.001), ("to_fix", 0.01), ("review", 0.1), ("annotated", 0.389)]  # rest: none


# -- data ---------------------------------------------------------------------------------------


@dataclass
class Data:
    vectors: np.ndarray  # (n, DIM) float16, as stored
    status: np.ndarray  # (n,) str
    groups: list[list[str]]
    bucket: np.ndarray  # (n,) int 0..999: metadata.bucket
    car: np.ndarray  # (n,) label count of "car"
    queries: np.ndarray  # (q, DIM) float16: held-out points near the clusters


def generate(n: int, n_queries: int, clusters: int, seed: int, latent_dim: int) -> Data:
    """Gaussian clusters, L2-normalised. With latent_dim > 0 (the default) the clusters live in a
    random latent_dim-dimensional subspace of the 512 dimensions, plus a little isotropic noise:
    like real image embeddings, whose intrinsic dimension is a few tens, with clusters at varying
    distances from each other. latent_dim = 0 draws everything isotropically in 512-d: every
    cluster is then at the same distance from every other and every point from its cluster
    mates, which no real embedding space looks like and which defeats graph routing (see
    bench/README.md)."""
    rng = np.random.default_rng(seed)
    if latent_dim:
        centers = rng.standard_normal((clusters, latent_dim)).astype(np.float32)
        basis = np.linalg.qr(rng.standard_normal((DIM, latent_dim)))[0].T.astype(
            np.float32
        )  # orthonormal rows
        spread, noise = 0.5, 0.1 * np.sqrt(1.25 * latent_dim / DIM)
    else:
        centers = rng.standard_normal((clusters, DIM)).astype(np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        spread = 0.7 / np.sqrt(DIM)  # a point sits about 0.7 away from its centre before normalising

    def points(count: int, r: np.random.Generator) -> np.ndarray:
        out = np.empty((count, DIM), dtype=np.float16)
        for start in range(0, count, CHUNK):
            m = min(CHUNK, count - start)
            x = centers[r.integers(clusters, size=m)]
            x = x + spread * r.standard_normal(x.shape, dtype=np.float32)
            if latent_dim:
                x = x @ basis + noise * r.standard_normal((m, DIM), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[start : start + m] = x
        return out

    vectors = points(n, rng)
    queries = points(n_queries, np.random.default_rng(seed + 1))
    u = rng.random(n)
    status = np.full(n, "none", dtype=object)
    edge = 0.0
    for name, share in STATUSES:
        status[(u >= edge) & (u < edge + share)] = name
        edge += share
    g = rng.random((n, 3))
    split = rng.random(n) < 0.8
    groups = [
        [
            s
            for s, keep in (
                ("train" if tr else "val", True),
                ("g10", a < 0.1),
                ("g1", b < 0.01),
                ("g01", c < 0.001),
            )
            if keep
        ]
        for tr, (a, b, c) in zip(split.tolist(), g.tolist(), strict=True)
    ]
    bucket = rng.integers(1000, size=n)
    car = np.where(rng.random(n) < 0.3, rng.integers(1, 6, size=n), 0)
    return Data(vectors, status, groups, bucket, car, queries)


def load(conn: psycopg.Connection, data: Data, m: int, ef_construction: int) -> dict[str, object]:
    """Fresh dataset, assets, vectors, index; returns timings and sizes."""
    info: dict[str, object] = {}
    n = len(data.vectors)
    conn.execute("SELECT pgsearch.drop_dataset(%s)", (DATASET,))
    dataset = conn.execute(
        "INSERT INTO pgsearch.datasets (name) VALUES (%s) RETURNING id", (DATASET,)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
        (MODEL, DIM),
    )
    model = conn.execute("SELECT id FROM pgsearch.embedding_models WHERE name = %s", (MODEL,)).fetchone()[0]

    space = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (dataset, model)
    ).fetchone()[0]
    table = conn.execute(
        "SELECT table_name FROM pgsearch.embedding_spaces WHERE id = %s", (space,)
    ).fetchone()[0]
    writing = Space(space, dataset, model, MODEL, "asset", DIM, table, False, False)

    # As `pgsearch load` writes (loader/pipeline.py): ids reserved, each asset row COPYed once with
    # its sketch (loader/sketches.py) and its group memberships, then the vectors and their
    # embedding states through the one embedding writer (loader/vectors.py), chunk by chunk.
    t0 = time.perf_counter()
    ids = np.array(writer.reserve_ids(conn, "assets", n), dtype=np.int64)
    center = vectors.sketch_center(conn, writing, data.vectors[: min(n, 32)].astype(np.float32))
    sketch_s = 0.0
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        rows = []
        for i in range(start, stop):
            rows.append(
                AssetRow(
                    id=int(ids[i]),
                    dataset_id=dataset,
                    filename=f"{i:07d}.jpg",
                    path=f"/data/bench/{i:07d}.jpg",
                    content_hash=None,
                    width=640,
                    height=480,
                    size=100_000 + i % 5_000_000,
                    format="JPEG",
                    status=data.status[i],
                    groups=data.groups[i],
                    metadata={"bucket": int(data.bucket[i]), "camera": f"cam{i % 5}"},
                    load_error=None,
                    # as the loader counts a new asset's shapes into its row (no shapes here)
                    label_counts={"car": int(data.car[i])} if data.car[i] else {},
                    annotation_count=int(data.car[i]),
                )
            )
        s0 = time.perf_counter()
        texts = sketches.sketch_texts(data.vectors[start:stop], center)
        arrays = {
            int(ids[i]): sketches.sketches_array_text(space, t)
            for i, t in zip(range(start, stop), texts, strict=True)
        }
        sketch_s += time.perf_counter() - s0
        writer.insert_assets(conn, rows, arrays)
    info["assets_copy_s"] = round(time.perf_counter() - t0, 1)
    info["sketches_numpy_s"] = round(sketch_s, 1)

    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        chunk_ids = ids[start:stop].tolist()
        items = [vectors.Embedding(i, 1, v) for i, v in zip(chunk_ids, data.vectors[start:stop], strict=True)]
        vectors.write(conn, writing, items, sketched=chunk_ids)
    info["vectors_copy_s"] = round(time.perf_counter() - t0, 1)
    conn.commit()

    conn.autocommit = True
    t0 = time.perf_counter()
    conn.execute("VACUUM ANALYZE pgsearch.assets")
    conn.execute("VACUUM ANALYZE pgsearch.group_members")
    conn.execute(sql.SQL("VACUUM ANALYZE pgsearch.{}").format(sql.Identifier(table)))
    info["vacuum_analyze_s"] = round(time.perf_counter() - t0, 1)
    conn.execute("SET maintenance_work_mem = '6GB'")
    t0 = time.perf_counter()
    conn.execute("SELECT pgsearch.build_embedding_index(%s, %s, %s)", (space, m, ef_construction))
    info["index_build_s"] = round(time.perf_counter() - t0, 1)
    conn.autocommit = False
    return info


# -- queries ------------------------------------------------------------------------------------

# Filters independent of the vectors, in the query language. "groups" ones are GIN-indexed
# (assets_groups_idx) and the planner can estimate them; "metadata" ones are ranges on user
# metadata, which no index serves unless `pgsearch index add metadata.bucket` made one (--metadata-index).
FILTERS: dict[str, tuple[str | None, Callable[[Data], np.ndarray]]] = {
    "none": (None, lambda d: np.ones(len(d.vectors), dtype=bool)),
    "groups 10%": ('"g10" in groups', lambda d: np.array(["g10" in g for g in d.groups])),
    "groups 1%": ('"g1" in groups', lambda d: np.array(["g1" in g for g in d.groups])),
    "groups 0.1%": ('"g01" in groups', lambda d: np.array(["g01" in g for g in d.groups])),
    "metadata 10%": ("metadata.bucket < 100", lambda d: d.bucket < 100),
    "metadata 5%": ("metadata.bucket < 50", lambda d: d.bucket < 50),
    "metadata 2%": ("metadata.bucket < 20", lambda d: d.bucket < 20),
    "metadata 1%": ("metadata.bucket < 10", lambda d: d.bucket < 10),
    "metadata 0.1%": ("metadata.bucket < 1", lambda d: d.bucket < 1),
    "status 10%": ('status == "review"', lambda d: d.status == "review"),
    "status 1%": ('status == "to_fix"', lambda d: d.status == "to_fix"),
    "status 0.1%": ('status == "completed"', lambda d: d.status == "completed"),
    # Two conditions: no one index hands over the rows, the exact path reads the asset rows.
    "two filters 1%": (
        '"g10" in groups and metadata.bucket < 100',
        lambda d: np.array(["g10" in g for g in d.groups]) & (d.bucket < 100),
    ),
}

METADATA_QUERIES = {
    "status == to_fix (1%)": 'status == "to_fix"',
    "'g01' in groups (0.1%)": '"g01" in groups',
    "car > 2 (12%)": "car > 2",
    "car >= 1 and status == completed": 'car >= 1 and status == "completed"',
    "metadata.bucket == 7 (0.1%)": "metadata.bucket == 7",
}


def exact_truth(data: Data, masks: dict[str, np.ndarray], k: int) -> dict[str, list[tuple[set[int], float]]]:
    """Per filter and query: the indexes of the exact top-k and the k-th distance (for ties)."""
    x = data.vectors.astype(np.float32)
    norms = np.linalg.norm(x, axis=1)
    out: dict[str, list[tuple[set[int], float]]] = {name: [] for name in masks}
    for q in data.queries.astype(np.float32):
        dist = 1.0 - (x @ q) / (norms * np.linalg.norm(q))
        for name, mask in masks.items():
            idx = np.flatnonzero(mask)
            kk = min(k, len(idx))
            top = idx[np.argpartition(dist[idx], kk - 1)[:kk]]
            out[name].append((set(top.tolist()), float(dist[top].max())))
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def compiled_for(catalog: Catalog, space: EmbeddingSpace, text: str | None, k: int) -> CompiledQuery:
    """The translator's statement for one filter; the query vector is a parameter set per query."""
    similarity = Similarity(space, VectorSource([1.0] + [0.0] * (space.dim - 1)))
    return compile_query(text, catalog, similarity=similarity, limit=k)


def route_of(conn: psycopg.Connection, compiled: CompiledQuery) -> str:
    """Which path the statement's route sends this filter to: "exact" or "ann" (the index walk,
    which still falls back to the exact path when it comes up short)."""
    probe = compiled.route_statement()
    row = conn.execute(probe, compiled.params).fetchone() if probe else None
    return "exact" if row and row[0] else "ann"


def params_for(compiled: CompiledQuery, q: np.ndarray) -> dict[str, object]:
    return {**compiled.params, "query_vector": HalfVector(q.astype(np.float32)).to_text()}


def run_similarity(
    conn: psycopg.Connection,
    compiled: CompiledQuery,
    data: Data,
    truth: list[tuple[set[int], float]],
    index_of: dict[int, int],
    dist_of: Callable[[int, int], float],
) -> dict[str, float]:
    latencies, recalls, rows = [], [], []
    for qi, q in enumerate(data.queries):
        params = params_for(compiled, q)
        t0 = time.perf_counter()
        got = conn.execute(compiled.sql, params, prepare=False).fetchall()
        latencies.append((time.perf_counter() - t0) * 1000)
        expected, kth = truth[qi]
        hits = sum(1 for r in got if index_of[r[0]] in expected or dist_of(qi, index_of[r[0]]) <= kth + 1e-5)
        recalls.append(hits / max(1, len(expected)))
        rows.append(len(got))
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 95),
        "recall": statistics.mean(recalls),
        "min_recall": min(recalls),
        "rows": statistics.mean(rows),
        "min_rows": min(rows),
    }


def machine(conn: psycopg.Connection) -> dict[str, object]:
    def one(q: str) -> object:
        return conn.execute(q).fetchone()[0]  # type: ignore[index]

    return {
        "cpus": os.cpu_count(),
        "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postgres": one("SHOW server_version"),
        "pgvector": one("SELECT extversion FROM pg_extension WHERE extname = 'vector'"),
        "shared_buffers": one("SHOW shared_buffers"),
        "effective_cache_size": one("SHOW effective_cache_size"),
        "work_mem": one("SHOW work_mem"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=32,
        help="intrinsic dimension of the clusters (0: isotropic in all 512, a stress case)",
    )
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=128,
        help="the schema's default (pgsearch.build_embedding_index)",
    )
    parser.add_argument(
        "--ef-search",
        type=int,
        nargs="*",
        default=None,
        help="ef_search values to sweep (default: the recommended setting only)",
    )
    parser.add_argument(
        "--max-scan-tuples",
        type=int,
        nargs="*",
        default=None,
        help="hnsw.max_scan_tuples values to sweep (default: the recommended setting only)",
    )
    parser.add_argument(
        "--home", type=Path, help="PGSEARCH_HOME of the embedded server (default: a temp dir)"
    )
    parser.add_argument("--dsn", help="use this server instead of an embedded one")
    parser.add_argument(
        "--metadata-index",
        action="store_true",
        help="`pgsearch index add metadata.bucket` before the queries (default: drop that index)",
    )
    parser.add_argument("--reuse", action="store_true", help="skip the load when the dataset is there")
    parser.add_argument("--only", nargs="*", help="filters to run (names as printed)")
    args = parser.parse_args()

    if args.dsn:
        dsn = args.dsn
    else:
        from pgsearch.server import EmbeddedServer

        home = args.home or Path(tempfile.mkdtemp(prefix="pgsearch-bench-"))
        dsn = EmbeddedServer(home).url()
        print(f"embedded server: {dsn} (home {home})", flush=True)
    migrate.upgrade(dsn)

    t0 = time.perf_counter()
    data = generate(args.n, args.queries, args.clusters, args.seed, args.latent_dim)
    print(
        f"generated {args.n} vectors + {args.queries} queries in {time.perf_counter() - t0:.1f}s", flush=True
    )

    with database.connect(dsn) as conn:
        # The generator's parameters travel in the dataset's description, so --reuse never
        # measures a load of other data against this run's truth.
        recipe = json.dumps(
            {
                "n": args.n,
                "clusters": args.clusters,
                "seed": args.seed,
                "latent_dim": args.latent_dim,
                "m": args.m,
                "ef_construction": args.ef_construction,
            }
        )
        existing = conn.execute(
            "SELECT d.description, s.indexed FROM pgsearch.datasets d"
            " JOIN pgsearch.embedding_spaces s ON s.dataset_id = d.id WHERE d.name = %s",
            (DATASET,),
        ).fetchone()
        info: dict[str, object] = {}
        if not (args.reuse and existing == (recipe, True)):
            info = load(conn, data, args.m, args.ef_construction)
            conn.execute("UPDATE pgsearch.datasets SET description = %s WHERE name = %s", (recipe, DATASET))
            conn.commit()
            print(f"loaded: {info}", flush=True)
        # The query language knows label names from the labels table (the bench writes counts only).
        conn.execute(
            "INSERT INTO pgsearch.labels (dataset_id, name) SELECT id, 'car' FROM pgsearch.datasets"
            " WHERE name = %s ON CONFLICT DO NOTHING",
            (DATASET,),
        )
        # `pgsearch index add metadata.bucket` gives the planner statistics for the metadata filters
        # (it cannot estimate a range on a jsonb value otherwise) and the exact path an index.
        bucket_indexes = [i for i in list_indexes(conn) if i.field == "metadata.bucket"]
        indexed = bool(bucket_indexes)
        # (An index made before the generated columns, on the expression, is replaced.)
        if args.metadata_index and (not indexed or any(i.column is None for i in bucket_indexes)):
            add_index(conn, "metadata.bucket", "number")
        elif indexed and not args.metadata_index:
            drop_index(conn, "metadata.bucket")
        conn.commit()
        dataset, table, space = conn.execute(
            "SELECT d.id, s.table_name, s.id FROM pgsearch.datasets d JOIN pgsearch.embedding_spaces s"
            " ON s.dataset_id = d.id WHERE d.name = %s",
            (DATASET,),
        ).fetchone()
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_relation_size(%s::regclass)), pg_size_pretty(pg_total_relation_size(%s::regclass)),"
            " pg_size_pretty(pg_total_relation_size('pgsearch.assets'))",
            (f"pgsearch.{table}_hnsw", f"pgsearch.{table}"),
        ).fetchone()
        info.update(hnsw_index_size=sizes[0], embeddings_total_size=sizes[1], assets_total_size=sizes[2])
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY filename", (dataset,)
            )
        ]
        index_of = {asset_id: i for i, asset_id in enumerate(ids)}
        conn.commit()

        filters = {name: f for name, f in FILTERS.items() if not args.only or name in args.only}
        masks = {name: f[1](data) for name, f in filters.items()}
        t0 = time.perf_counter()
        truth = exact_truth(data, masks, args.k)
        print(f"exact truth in {time.perf_counter() - t0:.1f}s", flush=True)
        xf = data.vectors.astype(np.float32)
        qf = data.queries.astype(np.float32)
        qn = np.linalg.norm(qf, axis=1)
        xn = np.linalg.norm(xf, axis=1)

        def dist_of(qi: int, i: int) -> float:
            return float(1.0 - xf[i] @ qf[qi] / (xn[i] * qn[qi]))

        catalog = load_catalog(conn, DATASET, keys=False)
        space_info = next(sp for sp in catalog.spaces if sp.id == space)
        settings = dict(SEARCH_SETTINGS)
        sweeps = [
            (ef, mst)
            for ef in args.ef_search or [int(settings["hnsw.ef_search"])]
            for mst in args.max_scan_tuples or [int(settings["hnsw.max_scan_tuples"])]
        ]
        results = []
        for ef, mst in sweeps:
            settings["hnsw.ef_search"], settings["hnsw.max_scan_tuples"] = str(ef), str(mst)
            apply_settings(conn, settings)
            for name, (text, _) in filters.items():
                compiled = compiled_for(catalog, space_info, text, args.k)
                # Warm: the first configuration reads the index and tables into the caches.
                for q in data.queries if (ef, mst) == sweeps[0] else data.queries[:3]:
                    conn.execute(compiled.sql, params_for(compiled, q), prepare=False).fetchall()
                r = run_similarity(conn, compiled, data, truth[name], index_of, dist_of)
                r.update(filter=name, ef_search=ef, max_scan_tuples=mst, path=route_of(conn, compiled))
                r.update(matching=int(masks[name].sum()))
                results.append(r)
                print(
                    f"  ef={ef:<4} mst={mst:<6} {name:14} {r['path']:6} p50 {r['p50_ms']:7.1f} ms"
                    f"  p95 {r['p95_ms']:7.1f} ms  recall {r['recall']:.3f} (min {r['min_recall']:.2f})"
                    f"  rows {r['rows']:.0f} (min {r['min_rows']})",
                    flush=True,
                )
            conn.rollback()

        meta_results = []
        apply_settings(conn, dict(SEARCH_SETTINGS))
        for name, text in METADATA_QUERIES.items():
            compiled = compile_query(text, catalog, limit=100)
            conn.execute(compiled.sql, compiled.params).fetchall()
            lat, rows = [], 0
            for _ in range(30):
                t0 = time.perf_counter()
                rows = len(conn.execute(compiled.sql, compiled.params, prepare=False).fetchall())
                lat.append((time.perf_counter() - t0) * 1000)
            meta_results.append((name, statistics.median(lat), percentile(lat, 95), rows))

        print()
        print(
            "== bench/query:",
            json.dumps(
                {
                    "n": args.n,
                    "dim": DIM,
                    "k": args.k,
                    "queries": args.queries,
                    "clusters": args.clusters,
                    "latent_dim": args.latent_dim,
                    "m": args.m,
                    "ef_construction": args.ef_construction,
                    "vector": "halfvec(512)",
                    "metadata_index": args.metadata_index,
                    "exact_path": f"sketch pre-rank, rerank max({RERANK_MIN}, {RERANK_FACTOR} * k) * ceil({RERANK_BITS} / dim)",
                    **info,
                    **machine(conn),
                }
            ),
        )
        print("settings:", " ".join(f"{k}={v}" for k, v in SEARCH_SETTINGS.items()))
        print(
            f"{'ef':>4} {'max_scan':>8} {'filter':15} {'path':6} {'matching':>9} {'p50 ms':>8} {'p95 ms':>8} {'recall':>7}"
            f" {'min rec':>7} {'rows':>6} {'min rows':>8}"
        )
        for r in results:
            print(
                f"{r['ef_search']:>4} {r['max_scan_tuples']:>8} {r['filter']:15} {r['path']:6} {r['matching']:>9} {r['p50_ms']:>8.1f}"
                f" {r['p95_ms']:>8.1f} {r['recall']:>7.3f} {r['min_recall']:>7.2f} {r['rows']:>6.0f}"
                f" {r['min_rows']:>8}"
            )
        print()
        print(f"{'metadata-only query (LIMIT 100, ORDER BY id)':45} {'p50 ms':>8} {'p95 ms':>8} {'rows':>6}")
        for name, p50, p95, rows in meta_results:
            print(f"{name:45} {p50:>8.1f} {p95:>8.1f} {rows:>6}")


if __name__ == "__main__":
    main()
