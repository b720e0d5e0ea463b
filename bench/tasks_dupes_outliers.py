"""Benchmarks of `pgsearch duplicates` and `pgsearch outliers` (to be wired into bench/curate.py):
quality on scikit-learn's digits (bench/digits.py, pixels model), how copies of real photos fare
with the pixels model, and timings on bench/synthetic.py's vectors.

    python bench/tasks_dupes_outliers.py duplicates [--n 100000] [--home DIR | --dsn URL]
    python bench/tasks_dupes_outliers.py outliers [--n 100000] [--home DIR | --dsn URL]

Each prints one JSON document. The measured numbers behind the defaults are in their docstrings:
pgsearch/curate/duplicates.py, pgsearch/curate/outliers.py.
"""

from __future__ import annotations

import argparse
import io
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

# scikit-image sample images that ship with the package (no download); `cat` is `chelsea`.
SKIMAGE_IMAGES = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "immunohistochemistry",
    "retina", "moon", "page", "text", "coins", "horse", "clock", "grass", "gravel", "brick", "logo",
    "colorwheel",
)  # fmt: skip
TRANSFORMS = ("jpeg_q70", "resize_50", "crop_5", "brighten_10")
THRESHOLD_FACTORS = (0.5, 1, 2, 5, 10, 25)


def _dsn(home: Path | None, dsn: str | None) -> str:
    from synthetic import server_dsn  # bench/synthetic.py

    return server_dsn(home, dsn)


def _load(dsn: str, root: Path, dataset: str) -> None:
    from pgsearch import db as database
    from pgsearch.loader.pipeline import LoadOptions, load_folder

    with database.connect(dsn) as conn:
        conn.execute("SELECT pgsearch.drop_dataset(%s)", (dataset,))
        conn.commit()
        load_folder(
            conn, LoadOptions(root=str(root), dataset=dataset, format="folders", model="pixels", workers=0)
        )


def _space_graph(dsn: str, dataset: str) -> tuple[Any, Any, dict[int, str]]:
    from pgsearch import db as database
    from pgsearch.curate import graph as graphs
    from pgsearch.curate.spaces import resolve_space

    with database.connect(dsn) as conn:
        space = resolve_space(conn, dataset, "asset", None)
        graph = graphs.ensure_graph(conn, space)
        names = dict(
            conn.execute(
                "SELECT id, filename FROM pgsearch.assets WHERE dataset_id = %s", (space.dataset_id,)
            ).fetchall()
        )
        conn.commit()
    return space, graph, names


def _vectors(dsn: str, space: Any) -> Any:
    from pgsearch import db as database
    from pgsearch.curate.copyio import read_space_vectors

    with database.connect(dsn) as conn:
        return read_space_vectors(conn, space.table_name, "asset_id", space.dim)


# -- duplicates --------------------------------------------------------------------------------------


def _pairs(groups: Any) -> set[tuple[int, int]]:
    """The pairs a listing reports: (member, its representative), sorted ids."""
    keep = ~groups.representative
    return {
        tuple(sorted(p))
        for p in zip(groups.item_ids[keep].tolist(), groups.group[keep].tolist(), strict=True)
    }


def digits_duplicates(dsn: str, work: Path) -> dict[str, Any]:
    """Planted +-1 grey level copies among the 1,797 digits: recall and false pairs at the default
    threshold and at multiples of it, with and without the chaining guard."""
    from digits import write_digits

    from pgsearch import db as database
    from pgsearch.curate import duplicates as dup

    truth = write_digits(work / "digits")
    _load(dsn, work / "digits", "bench_digits")
    space, graph, names = _space_graph(dsn, "bench_digits")
    ids_by_name = {v: k for k, v in names.items()}
    planted = {
        tuple(sorted((ids_by_name[f], ids_by_name[t["duplicate_of"]])))
        for f, t in truth["files"].items()
        if "duplicate_of" in t
    }
    vectors = _vectors(dsn, space)
    pos = {int(i): p for p, i in enumerate(vectors.ids.tolist())}
    planted_d = sorted(float(1 - vectors.vectors[pos[a]] @ vectors.vectors[pos[b]]) for a, b in planted)
    planted_ids = {i for p in planted for i in p}
    # The closest distinct pairs (neither planted): each item's nearest neighbour.
    nearest = []
    for row, item in enumerate(graph.ids.tolist()):
        other = int(graph.neighbor_ids[row, 0])
        if item in planted_ids or other in planted_ids or "noise" in names[item] or item > other:
            continue
        nearest.append((float(graph.distances[row, 0]), names[item], names[other]))
    nearest.sort()
    default, _ = dup.threshold_for(space.model)
    sweep = []
    with database.connect(dsn) as conn:
        for factor in THRESHOLD_FACTORS:
            for guard in (True, False):
                t = default * factor
                groups = dup.find_duplicates(conn, space, graph, t, guard=guard)
                pairs = _pairs(groups)
                sizes = (
                    np.bincount(np.unique(groups.group, return_inverse=True)[1])
                    if groups.members
                    else np.zeros(1)
                )
                sweep.append(
                    {
                        "threshold": round(t, 5),
                        "guard": guard,
                        "groups": groups.groups,
                        "members": groups.members,
                        "largest_group": int(sizes.max()),
                        "planted_found": len(planted & pairs),
                        "recall": round(len(planted & pairs) / len(planted), 3),
                        "false_pairs": len(pairs - planted),
                        "largest_component": groups.stats.get("largest_component"),
                        "detached_by_guard": groups.stats.get("detached"),
                    }
                )
        conn.commit()
    return {
        "items": len(graph.ids),
        "planted_pairs": len(planted),
        "default_threshold": default,
        "planted_distance": {
            "max": round(max(planted_d), 5),
            "median": round(float(np.median(planted_d)), 5),
        },
        "closest_distinct_pairs": [{"distance": round(d, 5), "a": a, "b": b} for d, a, b in nearest[:5]],
        "distinct_nearest_neighbour_quantiles": {
            q: round(float(np.quantile([d for d, _, _ in nearest], float(q))), 5)
            for q in ("0.001", "0.01", "0.1", "0.5")
        },
        "sweep": sweep,
    }


def _copy(img: Any, how: str) -> Any:
    from PIL import Image, ImageEnhance

    if how == "resize_50":
        return img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)
    if how == "crop_5":  # 5% off the width and height, from the top left corner
        return img.crop((round(img.width * 0.05), round(img.height * 0.05), img.width, img.height))
    if how == "brighten_10":
        return ImageEnhance.Brightness(img).enhance(1.1)
    raise ValueError(how)


def copies(dsn: str, work: Path) -> dict[str, Any]:
    """Each scikit-image sample photo and 40 digits, with a re-encoded (JPEG q70), half-size, 5%
    cropped and 10% brightened copy, loaded with the pixels model: each copy's distance to its
    original, and the distances between distinct originals."""
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_digits

    root = work / "copies"
    originals: dict[str, Any] = {}
    for name in SKIMAGE_IMAGES:
        array = getattr(skimage.data, name)()
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        elif array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) - array.min()) / max(float(np.ptp(array)), 1e-9)).astype(
                np.uint8
            )
        originals[f"photo_{name}"] = Image.fromarray(array).convert("RGB")
    digits = np.rint(load_digits().images[:40] * 255 / 16).astype(np.uint8)
    for i, d in enumerate(digits):
        originals[f"digit_{i:02d}"] = Image.fromarray(np.kron(d, np.ones((4, 4), dtype=np.uint8))).convert(
            "RGB"
        )
    for name, img in originals.items():
        folder = root / "all"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{name}.png")
        for how in TRANSFORMS:
            if how == "jpeg_q70":  # the re-encoded file itself, as a JPEG
                buffer = io.BytesIO()
                img.save(buffer, format="JPEG", quality=70)
                (folder / f"{name}__{how}.jpg").write_bytes(buffer.getvalue())
            else:
                _copy(img, how).save(folder / f"{name}__{how}.png")
    _load(dsn, root, "bench_copies")
    space, _graph, names = _space_graph(dsn, "bench_copies")
    vectors = _vectors(dsn, space)
    by_name = {
        names[int(i)].split("/", 1)[1].rsplit(".", 1)[0]: v
        for i, v in zip(vectors.ids, vectors.vectors, strict=True)
    }
    out: dict[str, Any] = {"photos": {}, "digits": {}}
    for kind, prefix in (("photos", "photo_"), ("digits", "digit_")):
        names_k = [n for n in originals if n.startswith(prefix)]
        for how in TRANSFORMS:
            d = [float(1 - by_name[n] @ by_name[f"{n}__{how}"]) for n in names_k]
            out[kind][how] = {
                "min": round(min(d), 5),
                "median": round(float(np.median(d)), 5),
                "max": round(max(d), 5),
                **(
                    {"each": {n[len(prefix) :]: round(x, 4) for n, x in zip(names_k, d, strict=True)}}
                    if kind == "photos"
                    else {}
                ),
            }
        matrix = np.stack([by_name[n] for n in names_k])
        dist = 1 - matrix @ matrix.T
        upper = dist[np.triu_indices(len(names_k), 1)]
        out[kind]["distinct_originals"] = {
            "min": round(float(upper.min()), 5),
            "p05": round(float(np.quantile(upper, 0.05)), 5),
            "median": round(float(np.median(upper)), 5),
        }
    return out


# -- timings on synthetic vectors ------------------------------------------------------------------


def _timed(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Runs `python -m pgsearch ARGV` in a fresh process: wall seconds and peak RSS (GNU time's
    %M where /usr/bin/time exists: a child forked from this process would report this process's
    memory as its own until it execs)."""
    import shutil

    timer = ["/usr/bin/time", "-f", "peak_rss_kb=%M"] if shutil.which("/usr/bin/time") else []
    started = time.perf_counter()
    proc = subprocess.run(
        [*timer, sys.executable, "-m", "pgsearch", *argv], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    lines = proc.stderr.strip().splitlines()
    peak = next((int(x.split("=", 1)[1]) for x in lines if x.startswith("peak_rss_kb=")), None)
    return {
        "argv": " ".join(argv[:1] + argv[3:]),
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(peak / 1024) if peak else None,
        "stderr": [x for x in lines if not x.startswith("peak_rss_kb=")][-3:],
    }


def synthetic_timings(dsn: str, n: int, tool: str, kind: str = "skewed") -> dict[str, Any]:
    """`pgsearch TOOL` at n synthetic items (graph built beforehand, not timed): first run
    (computed and stored), second run (reused), and after --recompute."""
    from synthetic import generate_chunks, write_dataset

    from pgsearch import db as database
    from pgsearch.curate import graph as graphs
    from pgsearch.curate.spaces import resolve_space

    name = f"bench_{kind}_{n}"
    info: dict[str, Any] = {"n": n, "kind": kind}
    with database.connect(dsn) as conn:
        exists = conn.execute(
            "SELECT count(*) FROM pgsearch.assets a JOIN pgsearch.datasets d ON d.id = a.dataset_id WHERE d.name = %s",
            (name,),
        ).fetchone()
        if not exists or exists[0] != n:
            write_dataset(conn, name, generate_chunks(n, kind=kind), progress=False)
        space = resolve_space(conn, name, "asset", None)
        t0 = time.perf_counter()
        graphs.refresh_graph(conn, space)
        info["graph_s (not timed below)"] = round(time.perf_counter() - t0, 1)
        conn.execute("DELETE FROM pgsearch.curation_runs WHERE space_id = %s AND tool = %s", (space.id, tool))
        conn.commit()
    env = dict(os.environ, PGSEARCH_DSN=dsn)
    base = [tool, "--dataset", name, "-f", "json", "-o", os.devnull, "-q"]
    info["first"] = _timed(base, env)
    info["reused"] = _timed(base, env)
    info["recompute"] = _timed([*base, "--recompute"], env)
    return info


# -- outliers ------------------------------------------------------------------------------------------


def _ranks(score: np.ndarray, target: np.ndarray) -> np.ndarray:
    order = np.argsort(-score, kind="stable")
    rank = np.empty(len(score), dtype=np.int64)
    rank[order] = np.arange(len(score))
    return np.sort(rank[target])


def digits_outliers(dsn: str, work: Path, *, groups_of: int = 3) -> dict[str, Any]:
    """The 20 planted noise images of the digits, and a harder variant with the noise images
    coming in tight groups (each noise image also present as `groups_of` - 1 copies moved by +-1
    grey level: the same broken upload several times): where each scoring variant ranks them."""
    from digits import write_digits
    from PIL import Image

    from pgsearch import db as database
    from pgsearch.curate import outliers as out

    results: dict[str, Any] = {}
    for variant in ("plain", "grouped"):
        folder = work / f"digits_{variant}"
        truth = write_digits(folder)
        if variant == "grouped":
            rng = np.random.default_rng(1)
            for name in [f for f, t in truth["files"].items() if t.get("noise")]:
                pixels = np.asarray(Image.open(folder / name), dtype=np.int16)
                for j in range(groups_of - 1):
                    copy = np.clip(pixels + rng.integers(-1, 2, size=pixels.shape), 0, 255).astype(np.uint8)
                    target = folder / name.replace(".png", f"_copy{j}.png")
                    Image.fromarray(copy, mode="L").save(target)
        dataset = f"bench_outliers_{variant}"
        _load(dsn, folder, dataset)
        space, graph, names = _space_graph(dsn, dataset)
        noise = np.array(["noise_" in names[int(i)] for i in graph.ids])
        d = graph.distances
        variants: dict[str, np.ndarray] = {}
        for k in (1, 5, 10, 15):
            variants[f"mean of {k} nearest"] = d[:, :k].mean(axis=1)
            variants[f"{k}-th nearest"] = d[:, k - 1]
        # A LOF-like ratio: the item's mean distance over its neighbours' mean distances.
        mean15 = d[:, :15].mean(axis=1)
        positions = graph.positions()
        variants["ratio to neighbours' (LOF-like)"] = mean15 / np.maximum(
            mean15[np.maximum(positions[:, :15], 0)].mean(axis=1), 1e-6
        )
        with database.connect(dsn) as conn:
            scores = out.space_scores(conn, space, graph)
            variants["pgsearch outliers, no map"] = scores.uniqueness + 1e-6 * scores.knn_distance
            try:  # the latest map's sparse clusters (pgsearch map), when the curate extra is there
                from pgsearch.curate import projection

                projection.make_map(conn, dataset)
                scores = out.space_scores(conn, space, graph)
                variants["pgsearch outliers, with the map"] = scores.uniqueness + 1e-6 * scores.knn_distance
                sizes = scores.cluster_size
                variants["map alone: smallest cluster first"] = -sizes.astype(np.float64)
                noise_sizes = sorted(int(x) for x in sizes[noise])
            except ImportError:
                noise_sizes = []
            conn.commit()
        planted = int(noise.sum())
        results[variant] = {
            "items": len(graph.ids),
            "planted_noise_images": planted,
            "map_run": scores.map_run,
            "sparse_bound": scores.sparse_bound,
            "cluster_size_of_noise_images": noise_sizes,
            "sparse_items": int(scores.sparse.sum()),
            "flagged_at_default": scores.flagged(out.DEFAULT_THRESHOLD),
            "flagged_planted": int((scores.uniqueness[noise] >= out.DEFAULT_THRESHOLD).sum()),
            "variants": {
                name: {
                    f"in top {2 * planted}": int((_ranks(s, noise) < 2 * planted).sum()),
                    "worst rank": int(_ranks(s, noise).max()) + 1,
                }
                for name, s in variants.items()
            },
        }
    return results


# -- entry points (bench/curate.py) ---------------------------------------------------------------------


def bench_duplicates(
    *, home: Path | None = None, dsn: str | None = None, n: int = 0, work: Path | None = None
) -> dict[str, Any]:
    """Digits recall / false pairs, the copies' distances, and (n > 0) timings at n items."""
    work = work or Path(tempfile.mkdtemp(prefix="bench-dupes-"))
    url = _dsn(home, dsn)
    report: dict[str, Any] = {
        "digits": digits_duplicates(url, work),
        "copies_pixels_model": copies(url, work),
    }
    if n:
        report["timings"] = synthetic_timings(url, n, "duplicates")
    return report


def bench_outliers(
    *, home: Path | None = None, dsn: str | None = None, n: int = 0, work: Path | None = None
) -> dict[str, Any]:
    """Digits planted noise images: ranks per scoring variant; (n > 0) timings at n items."""
    work = work or Path(tempfile.mkdtemp(prefix="bench-outliers-"))
    url = _dsn(home, dsn)
    report: dict[str, Any] = {"digits": digits_outliers(url, work)}
    if n:
        report["timings"] = synthetic_timings(url, n, "outliers")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tool", choices=("duplicates", "outliers"))
    parser.add_argument("--n", type=int, default=0, help="also time the command at N synthetic items")
    parser.add_argument(
        "--home", type=Path, help="PGSEARCH_HOME of the embedded server (default: a temp dir)"
    )
    parser.add_argument("--dsn", help="use this server instead of an embedded one")
    parser.add_argument("--work", type=Path, help="folder for the generated images (default: a temp dir)")
    args = parser.parse_args()
    run = bench_duplicates if args.tool == "duplicates" else bench_outliers
    print(json.dumps(run(home=args.home, dsn=args.dsn, n=args.n, work=args.work), indent=1))


if __name__ == "__main__":
    main()
