"""YOLO labels: one .txt per image (`class cx cy w h`, normalised; or `class x1 y1 x2 y2 ...`
for segmentation polygons), class names from classes.txt / obj.names or a data.yaml `names`.

--annotations may be the labels folder, or the data.yaml (labels are then looked for under
its folder). A label file is matched to an image by its path without extension relative to the
labels folder (`train/x.txt` <-> `train/x.jpg`), then by a unique stem.

Files are read only if they are regular files, up to a size limit (scan.read_text). A names
file that is not UTF-8, cannot be read, is nested too deeply (YAML), or holds a class name
PostgreSQL cannot store (a NUL, a lone surrogate from a YAML "\\ud800", over
annotations.INDEXED_TEXT_MAX_BYTES) stops the load before anything is written: every label
depends on it. Coordinates are finite numbers by the checks below, so nothing else in a label
file can reach the database.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pgsearch.loader.annotations import (
    INDEXED_TEXT_MAX_BYTES,
    NORMALISED_TOLERANCE,
    AnnotationSet,
    FileIndex,
    Problems,
    ShapeSpec,
    polygon_area,
    text_problem,
)
from pgsearch.loader.errors import AnnotationError
from pgsearch.loader.scan import FileRefused, read_text

# One label file holds one image's boxes: 64 MiB is about a million of them.
LABEL_FILE_MAX_BYTES = 64 << 20

NAME_FILES = ("classes.txt", "obj.names", "classes.names")
YAML_FILES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")


def _read_names_file(path: Path) -> str:
    try:
        return read_text(str(path), LABEL_FILE_MAX_BYTES)
    except UnicodeDecodeError:
        raise AnnotationError(f"{path.name}: not UTF-8 text") from None
    except FileRefused as exc:
        raise AnnotationError(f"{path.name}: cannot read ({exc})") from None
    except OSError as exc:
        raise AnnotationError(f"{path.name}: cannot read ({exc.strerror or exc})") from None


def _check_names(path: Path, names: list[str], where: str, start: int = 0) -> list[str]:
    for i, name in enumerate(names, start=start):
        why = text_problem(name, INDEXED_TEXT_MAX_BYTES)
        if why is not None:
            raise AnnotationError(f"{path.name}: {where.format(i)}: {why}")
    return names


def _names_from_yaml(path: Path) -> list[str]:
    import yaml

    text = _read_names_file(path)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        raise AnnotationError(f"{path.name}: {where}invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise AnnotationError(f"{path.name}: invalid YAML: nested too deeply to read") from None
    except ValueError as exc:  # a constructor's: an int over 4300 digits, a date like 2020-13-45
        raise AnnotationError(f"{path.name}: invalid YAML: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or "names" not in doc:
        raise AnnotationError(f"{path.name}: missing key 'names'")
    names = doc["names"]
    if isinstance(names, dict):
        if not all(isinstance(k, int) for k in names):
            raise AnnotationError(f"{path.name}: names: keys must be class indices 0..n-1")
        if sorted(names) != list(range(len(names))):
            raise AnnotationError(f"{path.name}: names: class indices must be 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not all(isinstance(n, (str, int)) and str(n).strip() for n in names):
        raise AnnotationError(f"{path.name}: names: expected a list of class names")
    if not names:
        raise AnnotationError(f"{path.name}: names: the list is empty")
    return _check_names(path, [str(n).strip() for n in names], "names[{}]")


def _names_from_txt(path: Path) -> list[str]:
    names = [line.strip() for line in _read_names_file(path).splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise AnnotationError(f"{path.name}: no class names in it (one name per line)")
    for i, name in enumerate(names):
        if not name:
            raise AnnotationError(f"{path.name}: line {i + 1}: empty class name")
    return _check_names(path, names, "line {}", start=1)


def _find_names(labels_dir: Path, yaml_file: Path | None) -> tuple[list[str], Path]:
    if yaml_file is not None:
        return _names_from_yaml(yaml_file), yaml_file
    for folder in (labels_dir, labels_dir.parent):
        for name in NAME_FILES:
            if (folder / name).is_file():
                return _names_from_txt(folder / name), folder / name
        for name in YAML_FILES:
            if (folder / name).is_file():
                return _names_from_yaml(folder / name), folder / name
    raise AnnotationError(
        f"{labels_dir}: no class names found: put classes.txt (one name per line) or a data.yaml "
        "with 'names' in the labels folder or its parent, or pass the data.yaml as --annotations"
    )


def parse_yolo(path: str, index: FileIndex, skip_bad: bool) -> AnnotationSet:
    given = Path(path)
    yaml_file = given if given.is_file() and given.suffix.lower() in (".yaml", ".yml") else None
    if given.is_file() and yaml_file is None:
        raise AnnotationError(f"{path}: --format yolo needs the labels folder or a data.yaml")
    labels_dir = given.parent if yaml_file else given
    if yaml_file is not None and (labels_dir / "labels").is_dir():
        labels_dir = labels_dir / "labels"
    names, names_file = _find_names(labels_dir, yaml_file)
    skip_names = {n.lower() for n in NAME_FILES} | {"readme.txt"}
    label_files = sorted(
        p
        for p in labels_dir.rglob("*.txt")
        if p.name.lower() not in skip_names
        and not any(part.startswith(".") for part in p.relative_to(labels_dir).parts)
    )
    shapes: dict[str, list[ShapeSpec]] = {}
    problems_all: list[str] = []
    for file in label_files:
        rel = file.relative_to(labels_dir).as_posix()
        problems = Problems(rel, skip_bad=True)
        filename, why = index.resolve(rel, stem=True)
        if filename is None:
            problems.add("", f"no image for this label file: {why}")
        else:
            shapes[filename] = _parse_file(file, names, problems)
        problems_all.extend(problems.items)
    if problems_all and not skip_bad:
        more = len(problems_all) - 1
        tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
        raise AnnotationError(
            f"{problems_all[0]}{tail}; nothing was loaded (--skip-bad-annotations drops bad entries)"
        )
    return AnnotationSet(str(labels_dir), shapes, names, problems_all)


def _parse_file(file: Path, names: list[str], problems: Problems) -> list[ShapeSpec]:
    try:
        text = read_text(str(file), LABEL_FILE_MAX_BYTES)
    except UnicodeDecodeError:
        problems.add("", "not UTF-8 text")
        return []
    except OSError as exc:  # FileRefused (a FIFO, too large) included
        problems.add("", f"cannot read ({exc.strerror or exc})")
        return []
    out: list[ShapeSpec] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or line.lstrip().startswith("#"):
            continue
        spec = _parse_line(tokens, names, f"line {lineno}", problems)
        if spec is not None:
            out.append(spec)
    return out


def _parse_line(tokens: list[str], names: list[str], where: str, problems: Problems) -> ShapeSpec | None:
    try:
        cls_value = float(tokens[0])
        values = [float(t) for t in tokens[1:]]
    except ValueError:
        problems.add(where, f"expected numbers, got {' '.join(tokens)!r}")
        return None
    if not cls_value.is_integer() or not 0 <= cls_value < len(names):
        problems.add(where, f"class {tokens[0]} is not a class index 0..{len(names) - 1}")
        return None
    label = names[int(cls_value)]
    if not all(math.isfinite(v) for v in values):
        problems.add(where, "coordinates must be finite")
        return None
    attributes: dict[str, Any] = {}
    if len(values) in (4, 5):
        if len(values) == 5:  # a prediction: cx cy w h confidence
            attributes["score"] = values[4]
        cx, cy, w, h = values[:4]
        if w < 0 or h < 0:
            problems.add(where, f"{'width' if w < 0 else 'height'} {w if w < 0 else h:g} is negative")
            return None
        edges = {"left": cx - w / 2, "top": cy - h / 2, "right": cx + w / 2, "bottom": cy + h / 2}
        for name, edge in edges.items():
            if edge < -NORMALISED_TOLERANCE or edge > 1 + NORMALISED_TOLERANCE:
                problems.add(
                    where, f"box {name} edge {edge:g} is outside the image (normalised coordinates are 0..1)"
                )
                return None
        x0, y0 = max(cx - w / 2, 0.0), max(cy - h / 2, 0.0)
        x1, y1 = min(cx + w / 2, 1.0), min(cy + h / 2, 1.0)
        return ShapeSpec(label, "bbox", (x0, y0, x1 - x0, y1 - y0), {}, None, attributes, normalised=True)
    if len(values) >= 6 and len(values) % 2 == 0:
        points = [[values[i], values[i + 1]] for i in range(0, len(values), 2)]
        for px, py in points:
            if not (
                -NORMALISED_TOLERANCE <= px <= 1 + NORMALISED_TOLERANCE
                and -NORMALISED_TOLERANCE <= py <= 1 + NORMALISED_TOLERANCE
            ):
                problems.add(
                    where, f"point ({px:g}, {py:g}) is outside the image (normalised coordinates are 0..1)"
                )
                return None
        points = [[min(max(px, 0.0), 1.0), min(max(py, 0.0), 1.0)] for px, py in points]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        bbox = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        return ShapeSpec(
            label, "polygon", bbox, {"points": points}, polygon_area(points), attributes, normalised=True
        )
    problems.add(
        where, f"expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', got {len(tokens)} values"
    )
    return None
