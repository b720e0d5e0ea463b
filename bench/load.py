"""Benchmark of `pgsearch load`; prints a table.

1. End-to-end images/s of `pgsearch load` (a subprocess running the real CLI) against the same
   model's forward-only images/s (preprocessed batches straight into the model), same machine,
   same run. Target: load >= 0.9 x forward-only with openclip:ViT-B-32:random on CPU.
2. COPY rate of precomputed 512-d vectors into an embedding space (binary halfvec COPY).
   Target: >= 50,000 vectors/s.
3. Peak memory (RSS) of `pgsearch load` for 10,000 and 50,000 tiny images with the model-free
   `pixels` embedder: flat when the loader streams.

Without --dsn it starts a throwaway embedded server in a temporary folder.

    python bench/load.py                       # defaults: 400 images, 100k vectors, 10k and 50k images
    python bench/load.py --images 100 --rss-counts 2000,5000 --copy-vectors 20000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

# Runs `pgsearch load` and reports its memory: VmHWM of the main process (ru_maxrss would carry the
# bench's own peak across fork + exec), and the peak of main + worker processes sampled every 50 ms.
RSS_SNIPPET = """
import json, os, sys, threading, time

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return int(next(l for l in fh if l.startswith("VmRSS")).split()[1])
    except (OSError, StopIteration):
        return 0

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []

peak = {"total": 0}
def sample():
    me = os.getpid()
    while True:
        peak["total"] = max(peak["total"], rss_kib(me) + sum(rss_kib(c) for c in children(me)))
        time.sleep(0.05)

threading.Thread(target=sample, daemon=True).start()
from pgsearch.cli import cli
cli.main(args=sys.argv[1:], prog_name="pgsearch", standalone_mode=False)
with open("/proc/self/status") as fh:
    hwm = int(next(l for l in fh if l.startswith("VmHWM")).split()[1])
print(json.dumps({"main_kib": hwm, "total_kib": peak["total"]}), file=sys.stderr)
"""


def machine() -> dict[str, Any]:
    import torch

    from pgsearch.loader.models import pick_device

    mem_kib = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kib = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        pass
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(mem_kib / 2**20, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": pick_device(),
        "python": platform.python_version(),
    }


def make_images(root: Path, count: int, size: tuple[int, int], fmt: str = "JPEG") -> None:
    """Noisy gradients, so JPEG decoding costs what real photos of that size cost."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    w, h = size
    base = np.linspace(0, 255, w * h * 3, dtype=np.float32).reshape(h, w, 3)
    ext = ".jpg" if fmt == "JPEG" else ".png"
    for i in range(count):
        sub = root / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        noise = rng.integers(0, 40, size=(h, w, 3), dtype=np.uint8) if fmt == "JPEG" else np.uint8(i % 251)
        arr = np.clip(base + noise + (i * 7) % 200, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(sub / f"img_{i:06d}{ext}", fmt)


def forward_only(model: str, root: Path, batch_size: int) -> float:
    from pgsearch.loader.images import open_image
    from pgsearch.loader.models import get_embedder

    embedder = get_embedder(model)
    arrays = [embedder.preprocess(open_image(p)) for p in sorted(root.rglob("*.jpg"))]
    embedder.embed_arrays(np.stack(arrays[:batch_size]))  # warm-up
    started = time.perf_counter()
    for start in range(0, len(arrays), batch_size):
        embedder.embed_arrays(np.stack(arrays[start : start + batch_size]))
    return len(arrays) / (time.perf_counter() - started)


def cli_load(dsn: str, args: list[str]) -> tuple[dict[str, Any], float, dict[str, int]]:
    env = {**os.environ, "PGSEARCH_DSN": dsn}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RSS_SNIPPET, "load", *args, "--json", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"pgsearch load failed:\n{proc.stderr[-3000:]}")
    rss = json.loads(proc.stderr.strip().splitlines()[-1])
    return json.loads(proc.stdout), wall, rss


def copy_rate(dsn: str, count: int, dim: int = 512) -> tuple[float, float]:
    from pgsearch import db as database
    from pgsearch.datasets import ensure_dataset
    from pgsearch.loader import vectors, writer
    from pgsearch.loader.rows import AssetRow
    from pgsearch.loader.spaces import ensure_model, ensure_space

    with database.connect(dsn) as conn:
        dataset = ensure_dataset(conn, f"bench-copy-{time.time_ns()}")
        model_id = ensure_model(conn, f"bench:random-{dim}", dim, False, {})
        space = ensure_space(conn, dataset.id, model_id, "asset")
        ids = writer.reserve_ids(conn, "assets", count)
        writer.insert_assets(
            conn,
            [
                AssetRow(i, dataset.id, f"f{i}.jpg", None, None, None, None, None, None, "none", [], {}, None)
                for i in ids
            ],
        )
        conn.commit()
        matrix = np.random.default_rng(0).standard_normal((count, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        started = time.perf_counter()
        for start in range(0, count, 10_000):  # the loader's shape: one transaction per batch
            vectors.write(
                conn,
                space,
                [
                    vectors.Embedding(i, 1, v)
                    for i, v in zip(ids[start : start + 10_000], matrix[start : start + 10_000], strict=True)
                ],
            )
            conn.commit()
        seconds = time.perf_counter() - started
        # the same bytes into a table without the partition's PK and two foreign keys: the wire + halfvec cost
        conn.execute("CREATE TEMP TABLE bench_plain (space_id bigint, asset_id bigint, embedding halfvec)")
        plain_started = time.perf_counter()
        for start in range(0, count, 10_000):
            with conn.cursor().copy(
                "COPY bench_plain (space_id, asset_id, embedding) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.write(vectors.COPY_HEADER)
                cp.write(
                    vectors.halfvec_copy_rows(
                        space.id, np.asarray(ids[start : start + 10_000]), matrix[start : start + 10_000]
                    )
                )
                cp.write(vectors.COPY_TRAILER)
            conn.commit()
        plain_seconds = time.perf_counter() - plain_started
        conn.execute("DROP TABLE bench_plain")
        stored = conn.execute(
            "SELECT count(*) FROM pgsearch.asset_embeddings WHERE space_id = %s", (space.id,)
        ).fetchone()
        assert stored is not None and stored[0] == count
        conn.execute("SELECT pgsearch.drop_dataset(%s)", (dataset.name,))
        conn.commit()
    return count / seconds, count / plain_seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="PostgreSQL to use (default: a throwaway embedded server)")
    parser.add_argument("--model", default="openclip:ViT-B-32:random")
    parser.add_argument("--images", type=int, default=400, help="images for the throughput comparison")
    parser.add_argument("--size", default="256x224", help="their size, WxH")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding processes of the load (default: auto)"
    )
    parser.add_argument("--copy-vectors", type=int, default=100_000)
    parser.add_argument(
        "--rss-counts", default="10000,50000", help="image counts for the memory test ('' skips)"
    )
    parser.add_argument("--rss-model", default="pixels")
    args = parser.parse_args()

    rows: list[tuple[str, str]] = []
    info = machine()
    rows.append(
        (
            "machine",
            f"{info['cpus']} CPUs, {info['ram_gib']} GiB RAM, torch {info['torch']} "
            f"({info['torch_threads']} threads), device {info['device']}, Python {info['python']}",
        )
    )
    server = None
    dsn = args.dsn or os.environ.get("PGSEARCH_DSN")
    tmp = Path(tempfile.mkdtemp(prefix="pgsearch-bench-"))
    if dsn is None:
        from pgsearch.server import EmbeddedServer

        server = EmbeddedServer(tmp / "home")
        server.start()
        dsn = server.url()
    from pgsearch import db as database

    database.upgrade(database.Target(dsn, embedded=False))
    try:
        if args.images > 0:
            w, h = (int(v) for v in args.size.split("x"))
            make_images(tmp / "throughput", args.images, (w, h))
            # forward-only before and after the load, so a noisy neighbour shows up as a spread, not a bias
            fwd_before = forward_only(args.model, tmp / "throughput", args.batch_size)
            load_args = [
                str(tmp / "throughput"),
                "-d",
                "bench-throughput",
                "--model",
                args.model,
                "--batch-size",
                str(args.batch_size),
            ]
            if args.workers is not None:
                load_args += ["--workers", str(args.workers)]
            summary, wall, _ = cli_load(dsn, load_args)
            fwd_after = forward_only(args.model, tmp / "throughput", args.batch_size)
            fwd = (fwd_before + fwd_after) / 2
            streaming = summary["files"] / summary["streaming_seconds"]
            in_load_model = summary["files"] / summary["model_seconds"]
            rows += [
                ("model", f"{args.model}, {args.images} JPEG images {w}x{h}, batch {args.batch_size}"),
                (
                    "forward-only",
                    f"{fwd:.1f} images/s (preprocessed batches, model only; {fwd_before:.1f} before "
                    f"and {fwd_after:.1f} after the load)",
                ),
                (
                    "model inside the load",
                    f"{in_load_model:.1f} images/s; the load streams at "
                    f"{streaming / in_load_model:.2f} x its own model time (pipeline overhead)",
                ),
                (
                    "pgsearch load, streaming",
                    f"{streaming:.1f} images/s = {streaming / fwd:.2f} x forward-only "
                    "(decode + embed + COPY + commit, after the model is built)",
                ),
                (
                    "pgsearch load, whole command",
                    f"{summary['files'] / wall:.1f} images/s = "
                    f"{summary['files'] / wall / fwd:.2f} x forward-only (incl. start-up, model build, HNSW, ANALYZE: "
                    f"{wall:.1f} s)",
                ),
            ]
        if args.copy_vectors > 0:
            rate, plain = copy_rate(dsn, args.copy_vectors)
            rows.append(
                (
                    "COPY 512-d halfvec",
                    f"{rate:,.0f} vectors/s into a space partition ({args.copy_vectors:,} "
                    "vectors, 10,000 per transaction; PK + 2 foreign-key checks per row)",
                )
            )
            rows.append(
                (
                    "COPY 512-d, no keys",
                    f"{plain:,.0f} vectors/s: the same bytes into a table without PK and foreign keys",
                )
            )
        for count in [int(c) for c in args.rss_counts.split(",") if c.strip()]:
            root = tmp / f"rss-{count}"
            make_images(root, count, (24, 24), fmt="PNG")
            summary, wall, rss = cli_load(
                dsn, [str(root), "-d", f"bench-rss-{count}", "--model", args.rss_model, "--batch-size", "256"]
            )
            rows.append(
                (
                    f"peak RSS, {count:,} images",
                    f"{rss['main_kib'] / 1024:.0f} MiB main process, "
                    f"{rss['total_kib'] / 1024:.0f} MiB with its workers ({args.rss_model}, "
                    f"{summary['files'] / wall:.0f} images/s)",
                )
            )
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(k) for k, _ in rows)
    print(f"{'measure'.ljust(width)} | result")
    print(f"{'-' * width}-+-{'-' * 60}")
    for key, value in rows:
        print(f"{key.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
