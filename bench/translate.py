"""Median compile time of the query translator, per query (target: below 1 ms each).

    python bench/translate.py [--repeat N]

Compiles each query N times (after a warm-up) against an in-memory catalog; nothing touches a
database. Prints the machine, Python and sqlglot versions, then one row per query.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import sqlglot

from pgsearch.translator import (
    AssetSource,
    Catalog,
    EmbeddingSpace,
    Similarity,
    VectorSource,
    compile_query,
)

SPACE = EmbeddingSpace(id=7, model="openclip:ViT-B-16", target="asset", dim=512, table="asset_embeddings_7")
CATALOG = Catalog(
    dataset_id=1,
    dataset_name="bench",
    labels=frozenset(
        {"squirrel", "wheels", "butterfly", "traffic light", *(f"label{i}" for i in range(200))}
    ),
    metadata_keys=frozenset({"camera", "iso", "gps"}),
    asset_run=1,
    spaces=(SPACE,),
)

QUERIES: list[tuple[str, str | None, dict[str, object]]] = [
    ("verbatim 1", '(squirrel > 2 or height > 200) and "dataset2" in groups', {}),
    ("verbatim 2", "wheels % 2 == 1", {}),
    ("status/size/groups", 'status == "review" and size > 2MB and not "train" in groups', {}),
    ("filename equality", 'filename == "IMG_0042.jpg"', {}),
    ("bare string", '"IMG_00"', {}),
    ("in list", 'status in ("review", "to_fix", "completed")', {}),
    ("metadata", 'metadata.camera == "Canon" and metadata.iso >= 800', {}),
    ("arithmetic", "width / height > 1.5 and width * height > 1000000", {}),
    ("regex", 'matches(filename, "^IMG_[0-9]{4}\\\\.jpg$")', {}),
    ("projection", "cluster == 3 and x > 0.5", {}),
    ("shapes", 'label == "squirrel" and area > 400 and asset.width > 100', {"target": "shape"}),
    (
        "similar (asset)",
        '"dataset2" in groups',
        {"similarity": Similarity(SPACE, AssetSource(filename="IMG_0042.jpg"))},
    ),
    (
        "least similar (vector)",
        None,
        {"similarity": Similarity(SPACE, VectorSource([0.01] * 512), dissimilar=True)},
    ),
    (
        "long (20 terms)",
        " or ".join(f"label{i} > {i}" for i in range(20)),
        {},
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"python {platform.python_version()}, sqlglot {sqlglot.__version__}, {args.repeat} runs per query")
    print()
    print(f"{'query':<24} {'median ms':>10} {'p95 ms':>8}  text")
    print("-" * 100)
    worst = 0.0
    for name, text, options in QUERIES:
        for _ in range(20):
            compile_query(text, CATALOG, **options)  # type: ignore[arg-type]
        samples = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            compile_query(text, CATALOG, **options)  # type: ignore[arg-type]
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        median = statistics.median(samples)
        worst = max(worst, median)
        shown = (text or "(no condition)")[:52]
        print(f"{name:<24} {median:>10.3f} {samples[int(len(samples) * 0.95) - 1]:>8.3f}  {shown}")
    print("-" * 100)
    print(f"slowest median: {worst:.3f} ms (target < 1 ms): {'OK' if worst < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
