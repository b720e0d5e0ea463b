"""bench/synthetic: a dataset of N assets with synthetic 512-d vectors, written straight into
Postgres (no images), for the curation benchmarks (bench/graph.py) and tests.

    python bench/synthetic.py --n 100000 --home /tmp/g100k             # clustered, embedded server
    python bench/synthetic.py --n 20000 --kind isotropic --dsn postgresql://...
    python bench/synthetic.py --n 1000000 --home /tmp/g1m --index        # + the HNSW index (~6 min at 1M)

Kinds of data (`--kind`):

- clustered (default): bench/query.py's generator. A mixture of `--clusters` (1,000) Gaussian
  clusters (centres standard normal, spread 0.5) in a random `--latent-dim` (32) dimensional
  subspace of the 512 dimensions, plus a little isotropic noise (0.1 * sqrt(1.25 * latent / 512)
  per coordinate), L2-normalised. Like real image embeddings, whose intrinsic dimension is a few
  tens, with clusters at varying distances from each other.
- isotropic-clusters: clusters drawn isotropically in all 512 dimensions (bench/query.py
  --latent-dim 0): every cluster is as far from every other.
- isotropic: no structure at all, every vector uniform on the 512-d sphere: the hardest case for
  any partitioning method (the nearest neighbours are barely nearer than everything else).
- skewed: a harder clustered mixture: Zipf-distributed cluster sizes (a few huge clusters, many
  tiny ones), per-cluster spreads from 0.2 to 1.2, a 64-d latent space, 2% exact duplicates.
- pixels: real embeddings of made-up pictures: the product's `pixels` embedder (256-d colour
  layout + colour histogram) of 32x32 scenes (a two-colour gradient and three coloured boxes).
  70% of the items are variants of `--clusters` base scenes (shifted by up to 4 px, brightness
  0.75..1.25, pixel noise, one box recoloured in a third of them), 30% are scenes of their own:
  clusters of near-duplicates of uneven tightness in a space nobody shaped to be Gaussian.

What goes in (for speed): a dataset, one asset row per vector (filename NNNNNNN.jpg), an embedding
model `bench:synthetic-512`, its asset space and partition, the vectors as binary halfvec COPY with
session_replication_role = replica (the per-row foreign key check is skipped; the curation tools
read no sketches, so none are written unless `--sketches` asks: pgsearch.refresh_asset_sketches,
one UPDATE of every asset),
and 'done' embedding states. The HNSW index only with `--index` (the bulk neighbour graph does not
need it; the incremental refresh of `pgsearch neighbors` does).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIM = 512
MODEL = "bench:synthetic-512"
CHUNK = 50_000
KINDS = ("clustered", "isotropic-clusters", "isotropic", "skewed", "pixels")
PIXELS_DIM = 256


def generate(
    n: int,
    *,
    kind: str = "clustered",
    dim: int = DIM,
    clusters: int = 1000,
    latent_dim: int = 32,
    seed: int = 7,
    point_seed: int | None = None,
) -> np.ndarray:
    """n unit vectors (float16, (n, dim)) of the given kind; the same arguments give the same
    vectors. Generated in chunks, so the peak memory is the result plus one chunk. point_seed:
    other points of the same mixture (the clusters come from `seed`, the points from this)."""
    chunks = list(
        generate_chunks(
            n, kind=kind, dim=dim, clusters=clusters, latent_dim=latent_dim, seed=seed, point_seed=point_seed
        )
    )
    return np.concatenate(chunks) if chunks else np.empty((0, dim), dtype=np.float16)


def generate_chunks(
    n: int,
    *,
    kind: str = "clustered",
    dim: int = DIM,
    clusters: int = 1000,
    latent_dim: int = 32,
    seed: int = 7,
    point_seed: int | None = None,
) -> Iterator[np.ndarray]:
    """generate() in chunks of at most CHUNK rows (float16)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "pixels":
        yield from _pixels_chunks(n, clusters=clusters, seed=seed, point_seed=point_seed)
        return
    rng = np.random.default_rng(seed)
    if kind == "skewed":
        latent_dim = max(latent_dim, 64)
    latent_dim = min(latent_dim, dim)
    basis = np.linalg.qr(rng.standard_normal((dim, latent_dim)))[0].T.astype(np.float32)  # orthonormal rows
    if kind in ("clustered", "skewed"):
        centers = rng.standard_normal((clusters, latent_dim)).astype(np.float32)
        noise = 0.1 * np.sqrt(1.25 * latent_dim / dim)
    elif kind == "isotropic-clusters":
        centers = rng.standard_normal((clusters, dim)).astype(np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    if kind == "skewed":
        weights = 1.0 / np.arange(1, clusters + 1) ** 1.1
        weights /= weights.sum()
        spreads = rng.uniform(0.2, 1.2, size=clusters).astype(np.float32)
    if point_seed is not None:
        rng = np.random.default_rng(point_seed)
    done = 0
    while done < n:
        m = min(CHUNK, n - done)
        if kind == "clustered":
            x = centers[rng.integers(clusters, size=m)]
            x = x + 0.5 * rng.standard_normal(x.shape, dtype=np.float32)
            x = x @ basis + noise * rng.standard_normal((m, dim), dtype=np.float32)
        elif kind == "skewed":
            label = rng.choice(clusters, size=m, p=weights)
            x = centers[label] + spreads[label, None] * rng.standard_normal((m, latent_dim), dtype=np.float32)
            x = x @ basis + noise * rng.standard_normal((m, dim), dtype=np.float32)
            dup = np.flatnonzero(rng.random(m) < 0.02)
            if len(dup) and m > 1:
                x[dup] = x[rng.integers(m, size=len(dup))]
        elif kind == "isotropic-clusters":
            x = centers[rng.integers(clusters, size=m)]
            x = x + (0.7 / np.sqrt(dim)) * rng.standard_normal(x.shape, dtype=np.float32)
        else:
            x = rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x.astype(np.float16)
        done += m


def _scenes(rng: np.random.Generator, count: int) -> np.ndarray:
    """count random 32x32 RGB scenes (uint8): a two-colour gradient and three coloured boxes."""
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    angle = rng.uniform(0, 2 * np.pi, size=count)
    t = (np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy + 1.5) / 3.0
    c0, c1 = rng.uniform(0, 255, size=(2, count, 1, 1, 3))
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(3):
        x0, y0 = rng.integers(0, 28, size=(2, count))
        w, h = rng.integers(4, 16, size=(2, count))
        colour = rng.uniform(0, 255, size=(count, 3))
        inside = (
            (xx[None] * 31 >= x0[:, None, None])
            & (xx[None] * 31 < (x0 + w)[:, None, None])
            & (yy[None] * 31 >= y0[:, None, None])
            & (yy[None] * 31 < (y0 + h)[:, None, None])
        )
        img = np.where(inside[..., None], colour[:, None, None, :], img)
    return np.asarray(np.clip(img, 0, 255), dtype=np.uint8)


def _pixels_chunks(n: int, *, clusters: int, seed: int, point_seed: int | None) -> Iterator[np.ndarray]:
    from pgsearch.loader.models import PixelsEmbedder

    embedder = PixelsEmbedder()
    rng = np.random.default_rng(seed)
    base = _scenes(rng, clusters)
    if point_seed is not None:
        rng = np.random.default_rng(point_seed)
    done = 0
    while done < n:
        m = min(CHUNK, n - done)
        own = rng.random(m) < 0.3
        img = base[rng.integers(clusters, size=m)].astype(np.float32)
        img[own] = _scenes(rng, int(own.sum()))
        dx, dy = rng.integers(-4, 5, size=(2, m))
        for i in np.flatnonzero(~own):
            img[i] = np.roll(img[i], (int(dy[i]), int(dx[i])), axis=(0, 1))
        img *= rng.uniform(0.75, 1.25, size=(m, 1, 1, 1))
        img += rng.normal(0, 6, size=img.shape)
        recolour = np.flatnonzero(~own & (rng.random(m) < 0.33))
        if len(recolour):
            img[recolour] = np.where(
                _scenes(rng, len(recolour)).astype(np.float32) > 250, img[recolour], img[recolour] * 0.9 + 20
            )
        x = embedder.embed_arrays(np.clip(img, 0, 255).astype(np.uint8))
        yield (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
        done += m


def write_dataset(
    conn: psycopg.Connection,
    name: str,
    chunks: Iterator[np.ndarray],
    *,
    dim: int = DIM,
    model: str = MODEL,
    sketches: bool = False,
    index: bool = False,
    recipe: dict[str, object] | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """A fresh dataset `name` (dropped first if it exists) with one asset per vector; returns
    timings, the space id and the partition's name."""
    info: dict[str, object] = {}
    conn.execute("SELECT pgsearch.drop_dataset(%s)", (name,))
    dataset = conn.execute(
        "INSERT INTO pgsearch.datasets (name, description) VALUES (%s, %s) RETURNING id",
        (name, json.dumps(recipe or {})),
    ).fetchone()[0]  # type: ignore[index]
    model_name = model if dim == DIM else f"{model.rsplit('-', 1)[0]}-{dim}"
    conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
        (model_name, dim),
    )
    model_id = conn.execute(
        "SELECT id FROM pgsearch.embedding_models WHERE name = %s", (model_name,)
    ).fetchone()[0]  # type: ignore[index]
    space = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (dataset, model_id)
    ).fetchone()[0]  # type: ignore[index]
    table = conn.execute(
        "SELECT table_name FROM pgsearch.embedding_spaces WHERE id = %s", (space,)
    ).fetchone()[0]  # type: ignore[index]
    row = np.dtype(
        [
            ("nf", ">i2"),
            ("l1", ">i4"),
            ("space", ">i8"),
            ("l2", ">i4"),
            ("aid", ">i8"),
            ("l3", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("v", ">f2", (dim,)),
        ]
    )
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    t_assets = t_vectors = t_states = 0.0
    total = 0
    conn.execute("SET session_replication_role = replica")
    for chunk in chunks:
        m = len(chunk)
        t0 = time.perf_counter()
        ids = np.array(
            [
                r[0]
                for r in conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('pgsearch.assets', 'id')) FROM generate_series(1, %s)",
                    (m,),
                )
            ],
            dtype=np.int64,
        )
        with conn.cursor().copy(
            "COPY pgsearch.assets (id, dataset_id, filename, path, width, height, size, format) FROM STDIN"
        ) as copy:
            for j, aid in enumerate(ids.tolist()):
                i = total + j
                copy.write_row(
                    (aid, dataset, f"{i:07d}.jpg", f"/data/{name}/{i:07d}.jpg", 640, 480, 100_000, "jpeg")
                )
        t_assets += time.perf_counter() - t0
        t0 = time.perf_counter()
        with conn.cursor().copy(
            sql.SQL("COPY pgsearch.{} (space_id, asset_id, embedding) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table)
            )
        ) as copy:
            copy.write(header)
            block = np.zeros(m, dtype=row)
            block["nf"], block["l1"], block["space"], block["l2"] = 3, 8, space, 8
            block["aid"] = ids
            block["l3"], block["dim"] = 4 + 2 * dim, dim
            block["v"] = chunk
            copy.write(block.tobytes())
            copy.write(struct.pack(">h", -1))
        t_vectors += time.perf_counter() - t0
        t0 = time.perf_counter()
        with conn.cursor().copy(
            "COPY pgsearch.asset_embedding_state (space_id, asset_id, state, attempts) FROM STDIN"
        ) as copy:
            for aid in ids.tolist():
                copy.write_row((space, aid, "done", 1))
        t_states += time.perf_counter() - t0
        total += m
        if progress:
            print(f"  {total:,} rows", file=sys.stderr, flush=True)
    conn.execute("SET session_replication_role = DEFAULT")
    info.update(
        assets_copy_s=round(t_assets, 1), vectors_copy_s=round(t_vectors, 1), states_copy_s=round(t_states, 1)
    )
    if sketches:
        t0 = time.perf_counter()
        conn.execute("SELECT pgsearch.refresh_asset_sketches(%s)", (space,))
        info["sketches_s"] = round(time.perf_counter() - t0, 1)
    conn.commit()
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE pgsearch.assets")
        conn.execute(sql.SQL("VACUUM ANALYZE pgsearch.{}").format(sql.Identifier(table)))
        conn.execute("ANALYZE pgsearch.asset_embedding_state")
        info["vacuum_analyze_s"] = round(time.perf_counter() - t0, 1)
        if index:
            conn.execute("SET maintenance_work_mem = '4GB'")
            t0 = time.perf_counter()
            conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
            info["index_build_s"] = round(time.perf_counter() - t0, 1)
    finally:
        conn.autocommit = autocommit
    info.update(items=total, space_id=space, table=table, dataset_id=dataset)
    return info


def server_dsn(home: Path | None, dsn: str | None) -> str:
    """--dsn, else the embedded server under `home` (a new temp dir by default), started and
    brought to the current schema."""
    from pgsearch import migrate

    if dsn is None:
        from pgsearch.server import EmbeddedServer

        home = home or Path(tempfile.mkdtemp(prefix="pgsearch-bench-"))
        dsn = EmbeddedServer(home).url()
        print(f"embedded server: {dsn} (home {home})", file=sys.stderr, flush=True)
    migrate.upgrade(dsn)
    return dsn


def recipe_of(args: argparse.Namespace) -> dict[str, object]:
    return {
        "generator": "bench/synthetic.py",
        "n": args.n,
        "kind": args.kind,
        "clusters": args.clusters,
        "latent_dim": args.latent_dim,
        "seed": args.seed,
        "dim": args.dim,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000, help="assets (vectors) to generate")
    parser.add_argument("--kind", choices=KINDS, default="clustered")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dataset", default="synthetic", help="dataset name (replaced if it exists)")
    parser.add_argument(
        "--home", type=Path, help="PGSEARCH_HOME of the embedded server (default: a temp dir)"
    )
    parser.add_argument("--dsn", help="use this server instead of an embedded one")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument(
        "--sketches", action="store_true", help="write the assets' sketches (one UPDATE of every asset)"
    )
    parser.add_argument("--index", action="store_true", help="build the space's HNSW index")
    args = parser.parse_args()
    from pgsearch import db as database

    dsn = server_dsn(args.home, args.dsn)
    if args.kind == "pixels":
        args.dim = PIXELS_DIM
    recipe = recipe_of(args)
    t0 = time.perf_counter()
    chunks = generate_chunks(
        args.n,
        kind=args.kind,
        dim=args.dim,
        clusters=args.clusters,
        latent_dim=args.latent_dim,
        seed=args.seed,
    )
    with database.connect(dsn) as conn:
        info = write_dataset(
            conn, args.dataset, chunks, dim=args.dim, sketches=args.sketches, index=args.index, recipe=recipe
        )
    info["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({"dsn": dsn, "dataset": args.dataset, **recipe, **info}, indent=2))


if __name__ == "__main__":
    main()
