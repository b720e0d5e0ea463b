"""Shape crops for embedding: the box grown by a context margin on each side, clipped to the image.

A box under 2 px on either side has nothing to embed; it is skipped and its embedding state
says so ('degenerate box ...').
"""

from __future__ import annotations

import math

from PIL import Image

from pgsearch.loader.annotations import Box

CONTEXT_PADDING = 0.10
MIN_SIDE_PX = 2.0


def crop_window(
    bbox: Box, width: int, height: int, padding: float = CONTEXT_PADDING
) -> tuple[int, int, int, int] | str:
    """(left, top, right, bottom) in whole pixels, or the reason there is nothing to crop."""
    x, y, w, h = bbox
    if not all(math.isfinite(v) for v in bbox):
        return "degenerate box (non-finite coordinates)"
    if w < MIN_SIDE_PX or h < MIN_SIDE_PX:
        return f"degenerate box ({w:g}x{h:g} px; needs at least {MIN_SIDE_PX:g}x{MIN_SIDE_PX:g})"
    pad_x, pad_y = w * padding, h * padding
    left = max(0, math.floor(x - pad_x))
    top = max(0, math.floor(y - pad_y))
    right = min(width, math.ceil(x + w + pad_x))
    bottom = min(height, math.ceil(y + h + pad_y))
    if right - left < MIN_SIDE_PX or bottom - top < MIN_SIDE_PX:
        return f"degenerate box (outside the {width}x{height} image)"
    return left, top, right, bottom


def crop(img: Image.Image, bbox: Box, padding: float = CONTEXT_PADDING) -> Image.Image | str:
    """The padded crop of `img`, or the reason there is none."""
    window = crop_window(bbox, img.width, img.height, padding)
    if isinstance(window, str):
        return window
    return img.crop(window)
