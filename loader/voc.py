"""Pascal VOC XML: one file per image, <object><name> with <bndbox> xmin/ymin/xmax/ymax.

Boxes are stored as x = xmin, y = ymin, width = xmax - xmin, height = ymax - ymin (the
convention of most converters). <difficult>, <truncated>, <occluded> and <pose> go into
the shape's attributes. --annotations is one XML file or a folder searched recursively.

XML 1.0 cannot carry a NUL, most control characters or a lone surrogate (expat refuses them,
`&#0;` too: an "invalid XML" problem at its line and column), so a VOC file's text reaches
the database only as names over annotations.INDEXED_TEXT_MAX_BYTES, which are refused, and
numbers, which must be finite. Files are read only if they are regular files, up to
`XML_FILE_MAX_BYTES` (scan.read_regular).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pgsearch.loader.annotations import (
    INDEXED_TEXT_MAX_BYTES,
    AnnotationSet,
    FileIndex,
    Problems,
    ShapeSpec,
    check_xywh,
)
from pgsearch.loader.errors import AnnotationError
from pgsearch.loader.scan import read_regular

# One image's XML: 64 MiB is hundreds of thousands of objects.
XML_FILE_MAX_BYTES = 64 << 20


def parse_voc(path: str, index: FileIndex, skip_bad: bool) -> AnnotationSet:
    given = Path(path)
    if given.is_file():
        files, base = [given], given.parent
    else:
        base = given
        files = sorted(
            p for p in given.rglob("*") if p.suffix.lower() == ".xml" and not p.name.startswith(".")
        )
    shapes: dict[str, list[ShapeSpec]] = {}
    labels: list[str] = []
    problems_all: list[str] = []
    for file in files:
        rel = file.relative_to(base).as_posix()
        problems = Problems(rel, skip_bad=True)
        result = _parse_file(file, rel, index, problems)
        if result is not None:
            filename, specs = result
            shapes.setdefault(filename, []).extend(specs)
            for spec in specs:
                if spec.label not in labels:
                    labels.append(spec.label)
        problems_all.extend(problems.items)
    if problems_all and not skip_bad:
        more = len(problems_all) - 1
        tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
        raise AnnotationError(
            f"{problems_all[0]}{tail}; nothing was loaded (--skip-bad-annotations drops bad entries)"
        )
    return AnnotationSet(str(path), shapes, labels, problems_all)


def _text(node: ET.Element | None, tag: str) -> str | None:
    if node is None:
        return None
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


def _parse_file(
    file: Path, rel: str, index: FileIndex, problems: Problems
) -> tuple[str, list[ShapeSpec]] | None:
    try:
        root = ET.fromstring(read_regular(str(file), XML_FILE_MAX_BYTES))
    except ET.ParseError as exc:
        line, col = exc.position
        problems.add(f"line {line} column {col + 1}", f"invalid XML: {str(exc).split(':')[0]}")
        return None
    except OSError as exc:  # FileRefused (a FIFO, too large) included
        problems.add("", f"cannot read ({exc.strerror or exc})")
        return None
    if root.tag != "annotation":
        problems.add("", f"expected an <annotation> root element, got <{root.tag}>")
        return None
    image_ref = _text(root, "filename")
    filename, why = (None, None)
    if image_ref:
        folder = _text(root, "folder")
        filename, why = index.resolve(image_ref)
        if filename is None and folder:
            filename, why = index.resolve(f"{folder}/{image_ref}")
    if filename is None:  # the XML's own name, the other common convention
        filename, why_stem = index.resolve(os.path.splitext(rel)[0], stem=True)
        why = why or why_stem
    if filename is None:
        problems.add("<filename>", f"no image for this annotation: {why}")
        return None
    width = height = None
    size = root.find("size")
    if size is not None:
        try:
            w, h = float(_text(size, "width") or 0), float(_text(size, "height") or 0)
        except ValueError:
            problems.add("<size>", "width and height must be numbers")
            return None
        width, height = (w, h) if w > 0 and h > 0 else (None, None)
    specs: list[ShapeSpec] = []
    for i, obj in enumerate(root.findall("object")):
        where = f"object[{i}]"
        name = _text(obj, "name")
        if not name:
            problems.add(f"{where}.<name>", "missing or empty")
            continue
        if not problems.text_ok(f"{where}.<name>", name, INDEXED_TEXT_MAX_BYTES):
            continue
        box = obj.find("bndbox")
        if box is None:
            problems.add(f"{where}.<bndbox>", "missing")
            continue
        coords: dict[str, float] = {}
        for key in ("xmin", "ymin", "xmax", "ymax"):
            value = _text(box, key)
            if value is None:
                problems.add(f"{where}.<bndbox>.<{key}>", "missing")
                break
            try:
                coords[key] = float(value)
            except ValueError:
                problems.add(f"{where}.<bndbox>.<{key}>", f"expected a number, got {value!r}")
                break
        if len(coords) < 4:
            continue
        if coords["xmax"] < coords["xmin"] or coords["ymax"] < coords["ymin"]:
            axis = "x" if coords["xmax"] < coords["xmin"] else "y"
            problems.add(
                f"{where}.<bndbox>",
                f"{axis}max {coords[axis + 'max']:g} is less than {axis}min {coords[axis + 'min']:g}",
            )
            continue
        bbox = check_xywh(
            coords["xmin"],
            coords["ymin"],
            coords["xmax"] - coords["xmin"],
            coords["ymax"] - coords["ymin"],
            width,
            height,
            f"{where}.<bndbox>",
            problems,
        )
        if bbox is None:
            continue
        attributes: dict[str, Any] = {}
        for key in ("difficult", "truncated", "occluded"):
            value = _text(obj, key)
            # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
            if value is not None and re.fullmatch(r"-?[0-9]{1,18}", value):
                attributes[key] = int(value)
        pose = _text(obj, "pose")
        if pose and pose.lower() != "unspecified":
            attributes["pose"] = pose
        specs.append(ShapeSpec(name, "bbox", bbox, {}, bbox[2] * bbox[3], attributes))
    return filename, specs
