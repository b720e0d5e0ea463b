"""scikit-learn's bundled handwritten digits (load_digits: 1,797 real 8x8 images, 10 classes) as
an image folder that `pgsearch load --format folders` reads, with planted problems for the
curation benchmarks: labels flipped at random, near-duplicate copies, and noise images.

    python bench/digits.py OUT [--flip 0.1] [--duplicates 20] [--noise 20] [--seed 0] [--scale 4]

Writes OUT/<label>/<name>.png and OUT/truth.json: for every file its true label, the label it was
filed under, and what was planted (flipped, duplicate_of, noise). The labels a file is filed under
are what pgsearch sees; truth.json is what the benchmark scores against.

Pixels: the 0..16 grey levels scaled to 0..255 (round(v * 255 / 16)), upscaled `--scale` times
with nearest-neighbour so a person can see them (the `pixels` model reads an 8x8 colour layout, so
the upscaling changes nothing it sees). A near-duplicate is a copy with every pixel moved by -1, 0
or +1 grey level (of 255) at random, after upscaling; a noise image is uniform random pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_digits(
    out: Path,
    *,
    flip: float = 0.1,
    duplicates: int = 20,
    noise: int = 20,
    seed: int = 0,
    scale: int = 4,
) -> dict[str, Any]:
    """Writes the folder and returns the truth (also written to OUT/truth.json)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images = np.rint(digits.images * 255 / 16).astype(np.uint8)
    labels = digits.target.astype(int)
    n = len(labels)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=int(round(flip * n)), replace=False)] = True
    filed = labels.copy()
    for i in np.flatnonzero(flipped):
        filed[i] = rng.choice([c for c in range(10) if c != labels[i]])

    out.mkdir(parents=True, exist_ok=True)
    truth: dict[str, Any] = {"seed": seed, "flip": flip, "files": {}}

    def save(pixels: np.ndarray, label: int, name: str, **facts: Any) -> None:
        big = np.kron(pixels, np.ones((scale, scale), dtype=np.uint8)) if pixels.shape[0] == 8 else pixels
        folder = out / str(label)
        folder.mkdir(exist_ok=True)
        Image.fromarray(big, mode="L").save(folder / f"{name}.png")
        truth["files"][f"{label}/{name}.png"] = {"filed_label": str(label), **facts}

    for i in range(n):
        save(
            images[i],
            int(filed[i]),
            f"digit_{i:04d}",
            true_label=str(labels[i]),
            flipped=bool(flipped[i]),
        )
    # Near-duplicates of images whose label was not flipped, filed under the same label.
    originals = rng.choice(np.flatnonzero(~flipped), size=duplicates, replace=False)
    for j, i in enumerate(originals):
        big = np.kron(images[i], np.ones((scale, scale), dtype=np.uint8)).astype(np.int16)
        big += rng.integers(-1, 2, size=big.shape, dtype=np.int16)
        save(
            np.clip(big, 0, 255).astype(np.uint8),
            int(labels[i]),
            f"copy_{j:02d}",
            true_label=str(labels[i]),
            flipped=False,
            duplicate_of=f"{labels[i]}/digit_{i:04d}.png",
        )
    # Noise images, filed under random labels (as a broken upload would be).
    for j in range(noise):
        pixels = rng.integers(0, 256, size=(8 * scale, 8 * scale), dtype=np.uint8)
        label = int(rng.integers(0, 10))
        save(pixels, label, f"noise_{j:02d}", true_label=None, flipped=False, noise=True)
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--duplicates", type=int, default=20)
    parser.add_argument("--noise", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    truth = write_digits(
        args.out,
        flip=args.flip,
        duplicates=args.duplicates,
        noise=args.noise,
        seed=args.seed,
        scale=args.scale,
    )
    print(f"wrote {len(truth['files'])} images to {args.out}")


if __name__ == "__main__":
    main()
