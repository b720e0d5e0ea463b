"""Finding the images under a load root.

A file's `filename` in the database is its path relative to the load root with POSIX
separators, so `a/img.jpg` and `b/img.jpg` never collide; `path` is the absolute path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pgsearch.loader.errors import LoadInputError

# Lower-case; matching is case-insensitive (IMG_0001.JPG is an image).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


@dataclass(frozen=True)
class ScannedFile:
    filename: str  # relative to the load root, POSIX separators
    path: str  # absolute path on this machine


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk(root: Path) -> Iterator[Path]:
    # Hidden files and folders (.git, .DS_Store, .ipynb_checkpoints) are never dataset images.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_name(name):
                yield Path(dirpath) / name


def scan(root: str | os.PathLike[str]) -> list[ScannedFile]:
    """The images under `root` (a folder, searched recursively, or one image file), sorted by filename."""
    base = Path(root).expanduser()
    if not base.exists():
        raise LoadInputError(f"{root}: no such file or folder")
    base = base.absolute()
    if base.is_file():
        if not is_image_name(base.name):
            raise LoadInputError(
                f"{root}: not an image file name (expected one of {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        return [ScannedFile(base.name, str(base))]
    files = [ScannedFile(p.relative_to(base).as_posix(), str(p)) for p in _walk(base)]
    files.sort(key=lambda f: f.filename)
    return files
