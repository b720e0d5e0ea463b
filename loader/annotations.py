"""What every annotation format parses into, and the checks they share.

Parsers validate everything before the load writes anything. A problem is "file: location:
what"; without --skip-bad-annotations the first one is raised (with the count of the others),
with it every bad entry is dropped and listed in the summary.

Bounds tolerance: a box or point up to `PIXEL_TOLERANCE` (1 px) outside the image is clipped to
the image, since exporters often round x+width up; further out is an error. YOLO coordinates are
normalised, so there the tolerance is `NORMALISED_TOLERANCE` (0.5% of the side).

Values PostgreSQL would refuse are problems of this checking pass too, so a load never commits
some batches and then dies on a row (issue 15, item 5). Refused, with the file and the place:

* text (labels, status, groups, metadata and attribute strings, JSON keys) with a NUL
  character (`text` and `jsonb` cannot hold one) or a lone surrogate (JSON's "\\ud800": not
  Unicode, so not UTF-8 either);
* labels, status and groups over `INDEXED_TEXT_MAX_BYTES` (they are btree / GIN index keys,
  whose entries hold at most ~2.7 kB);
* NaN and Infinity in JSON (jsonb has neither; JSON's `1e400` reads as Infinity), JSON nested
  deeper than `JSON_MAX_DEPTH` (or too deep for Python's parser), one metadata or attributes
  object over `JSON_MAX_BYTES`, integers too long to read (over 4300 digits);
* coordinates and image sizes that are not finite or beyond `MAX_COORDINATE`.

Stored as they are: other control characters (text and jsonb keep them; JSON escapes them),
any other Unicode, numbers of any size jsonb's numeric holds. The metadata reader adds the CSV
cases (metadata.py); file names are scan.py's.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pgsearch.loader.errors import AnnotationError, MetadataError, printable
from pgsearch.translator.bounds import INDEXED_TEXT_MAX_BYTES as INDEXED_TEXT_MAX_BYTES  # defined once, there
from pgsearch.translator.bounds import text_problem as text_problem  # re-exported: the loaders' checks

PIXEL_TOLERANCE = 1.0
NORMALISED_TOLERANCE = 0.005
FORMATS = ("coco", "yolo", "voc", "folders")

Box = tuple[float, float, float, float]

# See the module doc: what PostgreSQL stores, and the margins kept below its limits.
JSON_MAX_DEPTH = 64
# jsonb refuses a value over 256 MiB; strings are counted in UTF-8 plus a few bytes per node.
JSON_MAX_BYTES = 64 << 20
# images are at most 2^31 - 1 px a side (assets.width is an integer); beyond it areas overflow.
MAX_COORDINATE = float(2**31 - 1)


@dataclass(frozen=True)
class ShapeSpec:
    """One shape to store: label, kind, pixel bbox (None for a tag), geometry, area, attributes.

    With `normalised` (YOLO) the bbox and polygon points are fractions of the image size and
    become pixels in `resolve` once the decoded size is known.
    """

    label: str
    kind: str
    bbox: Box | None = None
    geometry: dict[str, Any] = field(default_factory=dict)
    area: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    normalised: bool = False

    def resolve(self, width: int, height: int) -> ShapeSpec:
        if not self.normalised:
            return self
        assert self.bbox is not None
        x, y, w, h = self.bbox
        x0, y0 = _clip(x * width, 0, width), _clip(y * height, 0, height)
        x1, y1 = _clip((x + w) * width, 0, width), _clip((y + h) * height, 0, height)
        bbox = (x0, y0, x1 - x0, y1 - y0)
        geometry = self.geometry
        area = bbox[2] * bbox[3]
        if "points" in geometry:
            pts = [
                [_clip(px * width, 0, width), _clip(py * height, 0, height)] for px, py in geometry["points"]
            ]
            geometry = {"points": pts}
            area = polygon_area(pts)
        return replace(self, bbox=bbox, geometry=geometry, area=area, normalised=False)

    def key(self) -> str:
        """A canonical text form: equal keys mean the same stored row (ids and times aside)."""
        return json.dumps(
            [
                self.label,
                self.kind,
                list(self.bbox) if self.bbox else None,
                self.geometry,
                self.area,
                self.attributes,
            ],
            sort_keys=True,
        )


def _clip(v: float, lo: float, hi: float) -> float:
    return float(min(max(v, lo), hi))


def polygon_area(points: list[list[float]]) -> float:
    """Shoelace area of one simple polygon."""
    if len(points) < 3:
        return 0.0
    s = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        s += x0 * y1 - x1 * y0
    return abs(s) / 2.0


def points_bbox(polygons: Iterable[list[list[float]]]) -> Box:
    xs = [p[0] for poly in polygons for p in poly]
    ys = [p[1] for poly in polygons for p in poly]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


@dataclass
class AnnotationSet:
    """Shapes per scanned filename, the label vocabulary, and what was dropped."""

    source: str
    shapes: dict[str, list[ShapeSpec]]
    labels: list[str]
    dropped: list[str] = field(default_factory=list)


class Problems:
    """Collects "file: location: what" problems; `finish` raises unless bad entries may be skipped."""

    def __init__(
        self,
        source: str,
        skip_bad: bool,
        error: type[AnnotationError] | type[MetadataError] = AnnotationError,
    ) -> None:
        self.source = source
        self.error = error
        self.skip_bad = skip_bad
        self.items: list[str] = []

    def add(self, location: str, what: str) -> None:
        # printable: the items go into the summary, which is printed (a lone surrogate would fail).
        self.items.append(
            printable(f"{self.source}: {location}: {what}" if location else f"{self.source}: {what}")
        )

    def fatal(self, location: str, what: str) -> AnnotationError | MetadataError:
        """A problem that leaves nothing to salvage (the file itself is unreadable)."""
        return self.error(f"{self.source}: {location}: {what}" if location else f"{self.source}: {what}")

    def text_ok(self, location: str, text: str, limit: int | None = None) -> bool:
        """False (and a problem added) when PostgreSQL cannot store `text`."""
        why = text_problem(text, limit)
        if why is not None:
            self.add(location, why)
        return why is None

    def json_ok(self, location: str, value: Any) -> bool:
        """False (and a problem added, at the spot inside `value`) when jsonb cannot store it."""
        found = json_problem(value)
        if found is not None:
            self.add(f"{location}{found[0]}", found[1])
        return found is None

    def finish(self) -> list[str]:
        if self.items and not self.skip_bad:
            more = len(self.items) - 1
            tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
            raise self.error(
                f"{self.items[0]}{tail}; nothing was loaded (--skip-bad-annotations drops bad entries)"
            )
        return list(self.items)


def check_box(
    box: object, width: float | None, height: float | None, location: str, problems: Problems
) -> Box | None:
    """A COCO-style [x, y, w, h] in pixels, clipped within the tolerance, or None (problem added)."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        problems.add(location, "expected [x, y, width, height]")
        return None
    if not all(is_number(v) for v in box):
        problems.add(location, "coordinates must be numbers")
        return None
    x, y, w, h = (float(v) for v in box)
    return check_xywh(x, y, w, h, width, height, location, problems)


def check_xywh(
    x: float,
    y: float,
    w: float,
    h: float,
    width: float | None,
    height: float | None,
    location: str,
    problems: Problems,
) -> Box | None:
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        problems.add(location, "coordinates must be finite")
        return None
    if not all(abs(v) <= MAX_COORDINATE for v in (x, y, w, h)):
        problems.add(location, f"coordinates must be within {MAX_COORDINATE:.0f} px")
        return None
    if w < 0 or h < 0:
        problems.add(location, f"{'width' if w < 0 else 'height'} {w if w < 0 else h:g} is negative")
        return None
    if x < -PIXEL_TOLERANCE or y < -PIXEL_TOLERANCE:
        problems.add(
            location,
            f"{'x' if x < -PIXEL_TOLERANCE else 'y'} {x if x < -PIXEL_TOLERANCE else y:g} is negative",
        )
        return None
    if width is not None and x + w > width + PIXEL_TOLERANCE:
        problems.add(location, f"x+width {x + w:g} exceeds image width {width:g}")
        return None
    if height is not None and y + h > height + PIXEL_TOLERANCE:
        problems.add(location, f"y+height {y + h:g} exceeds image height {height:g}")
        return None
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1 = min(x + w, width) if width is not None else x + w
    y1 = min(y + h, height) if height is not None else y + h
    return (x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0))


def check_point(
    px: float, py: float, width: float | None, height: float | None, location: str, problems: Problems
) -> list[float] | None:
    if not (math.isfinite(px) and math.isfinite(py)):
        problems.add(location, "coordinates must be finite")
        return None
    if not (abs(px) <= MAX_COORDINATE and abs(py) <= MAX_COORDINATE):
        problems.add(location, f"coordinates must be within {MAX_COORDINATE:.0f} px")
        return None
    for value, limit, axis, side in ((px, width, "x", "width"), (py, height, "y", "height")):
        if value < -PIXEL_TOLERANCE:
            problems.add(location, f"{axis} {value:g} is negative")
            return None
        if limit is not None and value > limit + PIXEL_TOLERANCE:
            problems.add(location, f"{axis} {value:g} exceeds image {side} {limit:g}")
            return None
    return [
        _clip(px, 0.0, width if width is not None else math.inf),
        _clip(py, 0.0, height if height is not None else math.inf),
    ]


def is_number(v: object) -> bool:
    """An int or float (NaN and Infinity included: the coordinate checks name those); not an
    int too large for a float (10**400 would raise OverflowError where it is converted)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, float) or abs(v) <= 2**1023


def json_key(key: str) -> str:
    """A key as a step of a location: `.name`, or `['odd key']` (repr escapes NUL and the like)."""
    return f".{key}" if key.isidentifier() and key.isascii() else f"[{key!r}]"


def json_problem(value: Any) -> tuple[str, str] | None:
    """(where inside `value`, what) for the first thing jsonb would refuse, or None.

    Iterative, so a deep value cannot exhaust the stack here; children are visited in order, so
    the problem reported is the first in the file."""
    size = 0
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        where, node, depth = stack.pop()
        size += 8  # a node's header in jsonb, about
        if isinstance(node, str):
            why = text_problem(node)
            if why is not None:
                return where, why
            size += len(node.encode("utf-8"))
        elif isinstance(node, float):
            if math.isnan(node):
                return where, "NaN is not allowed (PostgreSQL's jsonb has no NaN)"
            if math.isinf(node):
                return where, (
                    "Infinity is not allowed (PostgreSQL's jsonb has none; "
                    "a number beyond 1.8e308 reads as Infinity)"
                )
        elif isinstance(node, (dict, list)):
            if depth >= JSON_MAX_DEPTH:
                return where, f"nested more than {JSON_MAX_DEPTH} levels deep"
            children: list[tuple[str, Any, int]] = []
            if isinstance(node, dict):
                for key, child in node.items():
                    if not isinstance(key, str):
                        return where, f"key {key!r} is not a string"
                    why = text_problem(key)
                    if why is not None:
                        return f"{where}{json_key(key)}", f"in the key: {why}"
                    size += len(key.encode("utf-8"))
                    children.append((f"{where}{json_key(key)}", child, depth + 1))
            else:
                children = [(f"{where}[{i}]", child, depth + 1) for i, child in enumerate(node)]
            stack.extend(reversed(children))
        elif not (node is None or isinstance(node, (bool, int))):
            return where, f"a {type(node).__name__} is not a JSON value"
        if size > JSON_MAX_BYTES:
            return "", f"over {JSON_MAX_BYTES >> 20} MiB (PostgreSQL's jsonb holds at most 256 MiB)"
    return None


class FileIndex:
    """Resolves a file name written in an annotation file to a scanned filename.

    Tried in order: the exact relative path; the reference with leading folders removed (an
    export that says `images/train/x.jpg` while the load root is `images/`); the load-relative
    path with leading folders removed; a unique basename. `stem=True` ignores extensions (YOLO
    label files and VOC XML name images by stem).
    """

    def __init__(self, filenames: Iterable[str]) -> None:
        self.filenames = list(filenames)
        self._exact: dict[str, str] = {}
        self._stems: dict[str, str] = {}
        self._suffix: dict[str, list[str]] = defaultdict(list)
        self._stem_suffix: dict[str, list[str]] = defaultdict(list)
        for name in self.filenames:
            self._exact[name] = name
            stem = os.path.splitext(name)[0]
            self._stems.setdefault(stem, name)
            parts = name.split("/")
            stem_parts = stem.split("/")
            for i in range(1, len(parts)):
                self._suffix["/".join(parts[i:])].append(name)
                self._stem_suffix["/".join(stem_parts[i:])].append(name)

    def resolve(self, reference: str, *, stem: bool = False) -> tuple[str | None, str | None]:
        """(filename, None) or (None, why not)."""
        ref = reference.replace("\\", "/").strip()
        while ref.startswith("./"):
            ref = ref[2:]
        ref = ref.lstrip("/")
        if stem:
            ref = os.path.splitext(ref)[0]
        exact, suffix = (self._stems, self._stem_suffix) if stem else (self._exact, self._suffix)
        parts = ref.split("/")
        for i in range(len(parts)):
            candidate = "/".join(parts[i:])
            if candidate in exact:
                return exact[candidate], None
            matches = suffix.get(candidate, [])
            if len(matches) == 1:
                return matches[0], None
            if len(matches) > 1:
                shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
                return None, f"{reference!r} matches several images ({shown})"
        return (
            None,
            f"{reference!r} is not among the {len(self.filenames)} images found under the load folder",
        )


def parse_annotations(
    fmt: str, path: str | None, root: str, index: FileIndex, skip_bad: bool
) -> AnnotationSet:
    """Dispatch on --format."""
    if fmt == "folders":
        from pgsearch.loader.folders import parse_folders

        return parse_folders(index)
    if path is None:
        raise AnnotationError(f"--format {fmt} needs --annotations FILE")
    if not os.path.exists(path):
        raise AnnotationError(f"{path}: no such file or folder")
    if fmt == "coco":
        from pgsearch.loader.coco import parse_coco

        return parse_coco(path, index, skip_bad)
    if fmt == "yolo":
        from pgsearch.loader.yolo import parse_yolo

        return parse_yolo(path, index, skip_bad)
    if fmt == "voc":
        from pgsearch.loader.voc import parse_voc

        return parse_voc(path, index, skip_bad)
    raise AnnotationError(f"unknown annotation format {fmt!r}; expected one of {', '.join(FORMATS)}")
