"""COCO run-length encoded masks in numpy, so no pycocotools is needed.

Runs are column-major (Fortran order) over an h x w mask and start with a run of zeros.
Compressed counts are COCO's string form: 6-bit chunks offset by 48, 5 payload bits, a
continuation bit and a sign bit, with every run after the second stored as a delta to the
run two places back.
"""

from __future__ import annotations

import numpy as np


class RLEError(ValueError):
    pass


def decode_counts_string(text: str) -> list[int]:
    counts: list[int] = []
    pos = 0
    n = len(text)
    while pos < n:
        value = 0
        shift = 0
        more = True
        while more:
            if pos >= n:
                raise RLEError("compressed counts end in the middle of a number")
            chunk = ord(text[pos]) - 48
            if chunk < 0 or chunk > 63:
                raise RLEError(f"invalid character {text[pos]!r} in compressed counts")
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            pos += 1
            shift += 1
            if not more and (chunk & 0x10):
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def encode_counts_string(counts: list[int]) -> str:
    out: list[str] = []
    for i, count in enumerate(counts):
        value = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = not ((value == 0 and not (chunk & 0x10)) or (value == -1 and (chunk & 0x10)))
            if more:
                chunk |= 0x20
            out.append(chr(chunk + 48))
    return "".join(out)


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed counts of a 2-D boolean mask."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return [int(r) for r in runs]


def counts_to_mask(counts: list[int], height: int, width: int) -> np.ndarray:
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
    return flat.reshape((height, width), order="F")


def normalise_counts(counts: object, height: int, width: int) -> list[int]:
    """The counts of an RLE dict as a list of ints, checked against the mask size."""
    if isinstance(counts, str):
        runs = decode_counts_string(counts)
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        runs = list(counts)
    else:
        raise RLEError("counts must be a string (compressed) or a list of integers")
    if any(r < 0 for r in runs):
        raise RLEError("counts contain a negative run")
    total = sum(runs)
    if total != height * width:
        raise RLEError(f"counts cover {total} pixels but size {height}x{width} has {height * width}")
    return runs


def area_and_bbox(counts: list[int], height: int) -> tuple[int, tuple[float, float, float, float]]:
    """(pixel count, (x, y, w, h) of the ones) without materialising the mask."""
    area = 0
    x0 = y0 = 1 << 62
    x1 = y1 = -1
    pos = 0
    for i, run in enumerate(counts):
        if i % 2 == 1 and run > 0:
            start, end = pos, pos + run - 1
            area += run
            c0, c1 = start // height, end // height
            x0, x1 = min(x0, c0), max(x1, c1)
            if c0 == c1:
                y0, y1 = min(y0, start % height), max(y1, end % height)
            else:  # a run across a column boundary covers the bottom of one and the top of the next
                y0, y1 = 0, height - 1
        pos += run
    if area == 0:
        return 0, (0.0, 0.0, 0.0, 0.0)
    return area, (float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1))
