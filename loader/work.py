"""What a decoding worker process does with one file: hash, maybe stop (unchanged), decode,
settle the shapes against the decoded size, preprocess the image and its shape crops.

Only PIL and numpy here (no torch, no database), so worker processes start fast and never touch
the model's threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pgsearch.loader import crops
from pgsearch.loader.annotations import ShapeSpec
from pgsearch.loader.images import (
    DEFAULT_MAX_PIXELS,
    DecodeFailure,
    ImageFacts,
    content_hash,
    decode,
    read_file,
)
from pgsearch.loader.models import Preprocess


@dataclass
class WorkItem:
    path: str | None
    known_hash: str | None = None
    # Stop after hashing when the hash equals known_hash: nothing to do for this file.
    skip_if_same: bool = False
    # The asset's shapes as stored (pixels) and, when this load brings annotations, as desired.
    stored: list[ShapeSpec] = field(default_factory=list)
    desired: list[ShapeSpec] | None = None
    embed_asset: bool = False
    crop_shapes: bool = False
    preprocess: Preprocess | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    padding: float = crops.CONTEXT_PADDING


@dataclass
class WorkResult:
    facts: ImageFacts
    unchanged: bool = False
    # Shapes to store instead of the stored ones (None: keep the stored ones).
    new_shapes: list[ShapeSpec] | None = None
    dropped_shapes: int = 0  # normalised (YOLO) shapes of an image whose size is unknown
    asset_pixels: np.ndarray | None = None
    # Per shape of (new_shapes or stored), in order: model input, or why there is none; None for tags.
    crops: list[np.ndarray | str | None] = field(default_factory=list)


def settle(desired: list[ShapeSpec], width: int | None, height: int | None) -> tuple[list[ShapeSpec], int]:
    """Desired shapes in pixels; normalised ones are dropped when the image size is unknown."""
    if width is None or height is None:
        kept = [s for s in desired if not s.normalised]
        return kept, len(desired) - len(kept)
    return [s.resolve(width, height) for s in desired], 0


def same_shapes(a: list[ShapeSpec], b: list[ShapeSpec]) -> bool:
    return sorted(s.key() for s in a) == sorted(s.key() for s in b)


def process(item: WorkItem) -> WorkResult:
    if item.path is None:
        return WorkResult(
            ImageFacts(None, None, None, None, None, "asset has no path to read the image from")
        )
    try:
        # Not following links: scan.py resolved those inside the load folder (see its module doc).
        data = read_file(item.path, follow_symlinks=False)
    except DecodeFailure as exc:
        facts = ImageFacts(None, None, None, None, None, str(exc))
        return _failed(item, facts, same=False)
    digest = content_hash(data)
    same = item.known_hash is not None and digest == item.known_hash
    if same and item.skip_if_same:
        return WorkResult(ImageFacts(digest, len(data), None, None, None), unchanged=True)
    try:
        img, fmt = decode(data, item.max_pixels)
    except DecodeFailure as exc:
        return _failed(item, ImageFacts(digest, len(data), None, None, None, str(exc)), same)
    facts = ImageFacts(digest, len(data), fmt, img.width, img.height)
    del data
    result = WorkResult(facts)
    shapes = item.stored
    if item.desired is not None:
        desired, result.dropped_shapes = settle(item.desired, img.width, img.height)
        if not (same and same_shapes(desired, item.stored)):
            result.new_shapes = shapes = desired
    if item.embed_asset and item.preprocess is not None:
        result.asset_pixels = item.preprocess(img)
    for spec in shapes:
        if spec.kind == "tag" or spec.bbox is None or not item.crop_shapes or item.preprocess is None:
            result.crops.append(None)
            continue
        piece = crops.crop(img, spec.bbox, item.padding)
        result.crops.append(piece if isinstance(piece, str) else item.preprocess(piece))
    return result


def _failed(item: WorkItem, facts: ImageFacts, same: bool) -> WorkResult:
    result = WorkResult(facts)
    shapes = item.stored
    if item.desired is not None:
        desired, result.dropped_shapes = settle(item.desired, None, None)
        if not (same and same_shapes(desired, item.stored)):
            result.new_shapes = shapes = desired
    result.crops = [None for _ in shapes]
    return result


def process_many(items: list[WorkItem]) -> list[WorkResult]:
    return [process(item) for item in items]
