"""COCO instances JSON: images, categories, annotations with boxes, polygons and RLE masks.

What PostgreSQL would refuse is a problem at its place, found before anything is written
(annotations.py's module doc): a category name with a NUL, a lone surrogate or over the label
limit (`categories[3].name: ...`); NaN / Infinity / NUL / too deep anywhere in an annotation's
`attributes` (`annotations[12].attributes.note: ...`); a non-finite `score`; image sizes that
are not finite or beyond 2^31 - 1. A file too deeply nested for the JSON parser, or with an
integer over 4300 digits, is refused whole. The file is read only if it is a regular file
(scan.read_text).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from pgsearch.loader import rle
from pgsearch.loader.annotations import (
    INDEXED_TEXT_MAX_BYTES,
    MAX_COORDINATE,
    AnnotationSet,
    FileIndex,
    Problems,
    ShapeSpec,
    check_box,
    check_point,
    is_number,
    points_bbox,
    polygon_area,
)
from pgsearch.loader.scan import read_text


def _load_json(path: str, problems: Problems) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise problems.fatal(f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise problems.fatal("", "not UTF-8 text") from None
    except OSError as exc:
        raise problems.fatal("", f"cannot read ({exc.strerror or exc})") from None
    except RecursionError:
        raise problems.fatal("", "invalid JSON: nested too deeply to read") from None
    except ValueError:  # what json raises besides JSONDecodeError: int('9' * 5000)
        raise problems.fatal("", "invalid JSON: a number too long to read (over 4300 digits)") from None


def _key(entry: dict[str, Any], key: str, where: str, problems: Problems) -> Any:
    if key not in entry:
        problems.add(where, f"missing key {key!r}")
    return entry.get(key)


def _is_id(v: object) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, str)


def parse_coco(path: str, index: FileIndex, skip_bad: bool) -> AnnotationSet:
    source = os.path.basename(path) if os.path.isfile(path) else path
    problems = Problems(source, skip_bad)
    if os.path.isdir(path):
        raise problems.fatal("", "--format coco needs a JSON file, not a folder")
    doc = _load_json(path, problems)
    if not isinstance(doc, dict):
        raise problems.fatal("", "expected a JSON object with 'images', 'annotations' and 'categories'")
    for key in ("images", "categories"):
        if key not in doc:
            raise problems.fatal("", f"missing key {key!r}")
        if not isinstance(doc[key], list):
            raise problems.fatal(key, "expected a list")
    annotations = doc.get("annotations", [])
    if not isinstance(annotations, list):
        raise problems.fatal("annotations", "expected a list")

    categories: dict[Any, str] = {}
    labels: list[str] = []
    for i, cat in enumerate(doc["categories"]):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            problems.add(where, "expected an object")
            continue
        cid, name = _key(cat, "id", where, problems), _key(cat, "name", where, problems)
        if cid is None or name is None:
            continue
        if not _is_id(cid):
            problems.add(f"{where}.id", "expected an integer or string")
        elif not isinstance(name, str) or not name.strip():
            problems.add(f"{where}.name", "expected a non-empty string")
        elif not problems.text_ok(f"{where}.name", name.strip(), INDEXED_TEXT_MAX_BYTES):
            pass
        elif cid in categories:
            problems.add(f"{where}.id", f"duplicate category id {cid!r}")
        else:
            categories[cid] = name.strip()
            if categories[cid] not in labels:
                labels.append(categories[cid])

    images: dict[Any, tuple[str, float, float]] = {}  # id -> (filename, width, height)
    shapes: dict[str, list[ShapeSpec]] = {}
    for i, img in enumerate(doc["images"]):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            problems.add(where, "expected an object")
            continue
        iid = _key(img, "id", where, problems)
        file_name = _key(img, "file_name", where, problems)
        width, height = _key(img, "width", where, problems), _key(img, "height", where, problems)
        if iid is None or file_name is None or width is None or height is None:
            continue
        if not _is_id(iid):
            problems.add(f"{where}.id", "expected an integer or string")
            continue
        if iid in images:
            problems.add(f"{where}.id", f"duplicate image id {iid!r}")
            continue
        if not isinstance(file_name, str) or not file_name:
            problems.add(f"{where}.file_name", "expected a non-empty string")
            continue
        if not (is_number(width) and is_number(height) and width > 0 and height > 0):
            problems.add(where, f"width and height must be positive numbers (got {width!r} x {height!r})")
            continue
        if not (width <= MAX_COORDINATE and height <= MAX_COORDINATE):  # inf too
            problems.add(
                where, f"width and height must be at most {MAX_COORDINATE:.0f} (got {width!r} x {height!r})"
            )
            continue
        filename, why = index.resolve(file_name)
        if filename is None:
            problems.add(f"{where}.file_name", str(why))
            continue
        images[iid] = (filename, float(width), float(height))
        shapes.setdefault(filename, [])

    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            problems.add(where, "expected an object")
            continue
        spec = _annotation(ann, where, images, categories, problems)
        if spec is not None:
            shapes[images[ann["image_id"]][0]].append(spec)

    dropped = problems.finish()
    return AnnotationSet(source, shapes, labels, dropped)


def _annotation(
    ann: dict[str, Any],
    where: str,
    images: dict[Any, tuple[str, float, float]],
    categories: dict[Any, str],
    problems: Problems,
) -> ShapeSpec | None:
    image_id, category_id = _key(ann, "image_id", where, problems), _key(ann, "category_id", where, problems)
    if image_id is None or category_id is None:
        return None
    if not _is_id(image_id) or image_id not in images:
        problems.add(f"{where}.image_id", f"unknown image id {image_id!r}")
        return None
    if not _is_id(category_id) or category_id not in categories:
        problems.add(f"{where}.category_id", f"unknown category id {category_id!r}")
        return None
    _, width, height = images[image_id]
    attributes: dict[str, Any] = {}
    extra = ann.get("attributes")
    if isinstance(extra, dict):
        if not problems.json_ok(f"{where}.attributes", extra):
            return None
        attributes.update(extra)
    iscrowd = ann.get("iscrowd", 0)
    if iscrowd not in (0, 1, True, False):
        problems.add(f"{where}.iscrowd", f"expected 0 or 1, got {iscrowd!r}")
        return None
    attributes["iscrowd"] = int(iscrowd)
    if "score" in ann:
        if not is_number(ann["score"]) or not math.isfinite(ann["score"]):
            problems.add(f"{where}.score", "expected a finite number")
            return None
        attributes["score"] = float(ann["score"])

    bbox = None
    if ann.get("bbox") is not None:
        bbox = check_box(ann["bbox"], width, height, f"{where}.bbox", problems)
        if bbox is None:
            return None
    seg = ann.get("segmentation")
    label = categories[category_id]
    if isinstance(seg, dict):
        return _mask(seg, bbox, label, attributes, width, height, f"{where}.segmentation", problems)
    if isinstance(seg, list) and seg:
        return _polygons(seg, bbox, label, attributes, width, height, f"{where}.segmentation", problems)
    if seg not in (None, []):
        problems.add(f"{where}.segmentation", "expected a list of polygons or an RLE object")
        return None
    if bbox is None:
        problems.add(where, "has neither 'bbox' nor 'segmentation'")
        return None
    return ShapeSpec(label, "bbox", bbox, {}, bbox[2] * bbox[3], attributes)


def _polygons(
    seg: list[Any],
    bbox: Any,
    label: str,
    attributes: dict[str, Any],
    width: float,
    height: float,
    where: str,
    problems: Problems,
) -> ShapeSpec | None:
    polygons: list[list[list[float]]] = []
    for j, flat in enumerate(seg):
        loc = f"{where}[{j}]"
        if not isinstance(flat, list) or not all(is_number(v) for v in flat):
            problems.add(loc, "a polygon must be a flat list of numbers [x1, y1, x2, y2, ...]")
            return None
        if len(flat) % 2 or len(flat) < 6:
            problems.add(loc, f"a polygon needs an even count of at least 6 numbers, got {len(flat)}")
            return None
        points = []
        for k in range(0, len(flat), 2):
            point = check_point(float(flat[k]), float(flat[k + 1]), width, height, f"{loc}[{k}]", problems)
            if point is None:
                return None
            points.append(point)
        polygons.append(points)
    area = sum(polygon_area(p) for p in polygons)
    box = bbox if bbox is not None else points_bbox(polygons)
    geometry = {"points": polygons[0]} if len(polygons) == 1 else {"polygons": polygons}
    return ShapeSpec(label, "polygon", box, geometry, area, attributes)


def _mask(
    seg: dict[str, Any],
    bbox: Any,
    label: str,
    attributes: dict[str, Any],
    width: float,
    height: float,
    where: str,
    problems: Problems,
) -> ShapeSpec | None:
    size, counts = seg.get("size"), seg.get("counts")
    if size is None or counts is None:
        problems.add(where, "an RLE mask needs 'size' and 'counts'")
        return None
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        problems.add(f"{where}.size", "expected [height, width]")
        return None
    h, w = size
    if (h, w) != (int(height), int(width)):
        problems.add(
            f"{where}.size",
            f"[{h}, {w}] does not match the image's {int(height)}x{int(width)} (height x width)",
        )
        return None
    try:
        runs = rle.normalise_counts(counts, h, w)
    except rle.RLEError as exc:
        problems.add(f"{where}.counts", str(exc))
        return None
    area, mask_box = rle.area_and_bbox(runs, h)
    box = bbox if bbox is not None else mask_box
    return ShapeSpec(label, "mask", box, {"rle": {"size": [h, w], "counts": counts}}, float(area), attributes)
