"""The interactive 2-D map page (`pgsearch map --html FILE`): one self-contained HTML file.

A projection run's points (UMAP x, y and the DBSCAN cluster of each asset or shape) are drawn on
a canvas, coloured by cluster. Hovering shows a thumbnail and the file name; rectangle, lasso
and cluster selections list the items and write the selection as a pgsearch query expression,
with a ready `pgsearch query ... --add-to-group NAME` command that puts those items in a group.

Design:

* The page is pgsearch/templates/map.html (markup and style) and map.js (behaviour, plain
  JavaScript, no libraries), filled in here in one pass, so no data text is ever read as a
  template marker. Nothing is fetched: no CDN, no network; the file works from disk or a mail.
* Point data travels as JSON in `<script type="application/json">` tags, as parallel arrays
  (ids, x, y, cluster, filename, label), which is compact and fast to parse. The JSON escapes
  `<`, `>`, `&`, U+2028/U+2029 (and lone surrogates) as \\uXXXX, so a hostile file name such as
  `</script><img onerror=...>` stays inside its string; the script writes data text to the DOM
  with textContent only.
* Points are sorted by id and x, y written with Python's shortest round-trip repr, so the page
  holds exactly the doubles the database holds, and its selection (computed in JavaScript, with
  the numbers as the expression writes them) is the rows the expression selects.
* Thumbnails (64 px JPEG, base64) are embedded for at most `thumbnails` points, spread evenly in
  id order over the points that have an image path. Pixels come from pgsearch.gallery's
  decoder, which reads images as the loader does (EXIF orientation, modes, the decompression-bomb
  limit). A shape's thumbnail is its box cut from the image. A missing or unreadable file just
  has no thumbnail.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from pgsearch.gallery import Thumbnails, recorded_pixels, shape_box
from pgsearch.loader.images import DEFAULT_MAX_PIXELS
from pgsearch.options import MAX_LIMIT

THUMB_PX = 64
THUMB_QUALITY = 75
# A shape's box is cut from the image decoded at this size (JPEG decodes reduced straight away),
# so a small box still gives a usable crop.
SHAPE_DECODE_PX = 512
SHAPE_MARGIN = 0.1  # of the box's size on each side: a little context around the object

# Categorical colours for clusters 0, 1, 2, ... (cycling); noise (-1) and "no cluster" are greys.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#3b3eac",
    "#f5c400",
    "#0f9d58",
    "#a50f15",
    "#7b4173",
    "#00a6ed",
    "#ff4fa0",
    "#6b8e23",
    "#ff9d7a",
    "#5e2ca5",
    "#00c2a8",
)
NOISE_COLOUR = "#b4b4bb"
NONE_COLOUR = "#71717a"

# The query language's limits (pgsearch.translator.parse and the query command's --limit).
MAX_QUERY_LENGTH = 10_000
DEFAULT_LIMIT = 100

TARGETS = ("asset", "shape")
MIDDLE_DOT = " \u00b7 "

# Characters that must not appear raw inside a <script> element: < > & end or start tags and
# entities, U+2028/9 end lines in older JavaScript, lone surrogates cannot be written as UTF-8.
_SCRIPT_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")
_MARKER = re.compile(r"@@([A-Z_]+)@@")


def write_map_page(
    points: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    dataset: str,
    target: str = "asset",
    title: str | None = None,
    summary: str = "",
    thumbnails: int = 4000,
    max_pixels: int | None = None,
) -> Path:
    """Writes the map page of `points` to `path` and returns it.

    `points` are dicts with `id`, `x`, `y`, `cluster` (-1 noise, None when not clustered),
    `filename`, `path` (image file, relative to the current directory, or None) and for shapes
    `label` and `bbox_x`, `bbox_y`, `bbox_width`, `bbox_height`. `target` is "asset" or "shape"
    (the command the page writes then has --shapes). Images above `max_pixels` (default: the
    loader's limit) get no thumbnail. Points without finite coordinates are left out."""
    page = map_page_html(
        points,
        dataset=dataset,
        target=target,
        title=title,
        summary=summary,
        thumbnails=thumbnails,
        max_pixels=max_pixels,
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out


def map_page_html(
    points: Sequence[Mapping[str, Any]],
    *,
    dataset: str,
    target: str = "asset",
    title: str | None = None,
    summary: str = "",
    thumbnails: int = 4000,
    max_pixels: int | None = None,
) -> str:
    """The map page as a string (see write_map_page)."""
    if target not in TARGETS:
        raise ValueError(f"target must be 'asset' or 'shape', not {target!r}")
    rows = sorted(
        (p for p in points if _finite(p.get("x")) and _finite(p.get("y"))), key=lambda p: int(p["id"])
    )
    left_out = len(points) - len(rows)
    data: dict[str, Any] = {
        "ids": [int(p["id"]) for p in rows],
        "x": [float(p["x"]) for p in rows],
        "y": [float(p["y"]) for p in rows],
        "cluster": [None if p.get("cluster") is None else int(p["cluster"]) for p in rows],
        "filename": [str(p.get("filename") or "") for p in rows],
    }
    if target == "shape":
        data["label"] = [None if p.get("label") is None else str(p["label"]) for p in rows]
    thumbs = _thumbnails(rows, thumbnails, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels, target)
    title = title if title is not None else "pgsearch map"
    config = {
        "dataset": dataset,
        "target": target,
        "palette": list(PALETTE),
        "noiseColour": NOISE_COLOUR,
        "noneColour": NONE_COLOUR,
        "maxQueryLength": MAX_QUERY_LENGTH,
        "maxLimit": MAX_LIMIT,
        "defaultLimit": DEFAULT_LIMIT,
    }
    line = summary or _default_summary(data["cluster"], target)
    extras = [f"thumbnails for {len(thumbs):,} of {len(rows):,}"]
    if left_out:
        extras.append(f"{left_out:,} without finite coordinates left out")
    script = _template("map.js")
    # The script is written raw into a <script> element: it must not end or open one itself.
    if re.search(r"</script|<!--", script, re.IGNORECASE):
        raise RuntimeError("templates/map.js must not contain </script or <!--")
    values = {
        "TITLE": _text(title),
        "DATASET_LINE": _text(f"{dataset}{MIDDLE_DOT}{target}s"),
        "SUMMARY": _text(MIDDLE_DOT.join([line, *extras])),
        "CONFIG_JSON": _script_json(config),
        "DATA_JSON": _script_json(data),
        "THUMBS_JSON": _script_json(thumbs),
        "SCRIPT": script,
    }
    return _MARKER.sub(lambda m: values[m.group(1)], _template("map.html"))


def _template(name: str) -> str:
    return (resources.files("pgsearch") / "templates" / name).read_text(encoding="utf-8")


def _finite(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _text(value: str) -> str:
    """HTML text: escaped, and lone surrogates (undecodable file names) shown as \\udcXX."""
    return html.escape(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _script_json(value: object) -> str:
    """JSON that can sit inside a <script> element whatever its strings hold."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SCRIPT_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _default_summary(clusters: Sequence[int | None], target: str) -> str:
    total = len(clusters)
    named = {c for c in clusters if c is not None and c != -1}
    noise = sum(1 for c in clusters if c == -1)
    share = f"{100 * noise / total:.1f}%" if total else "0%"
    return MIDDLE_DOT.join([f"{total:,} {target}s", f"{len(named):,} clusters", f"noise {share}"])


def _sample(rows: Sequence[Mapping[str, Any]], limit: int) -> list[int]:
    """Indices of at most `limit` rows with an image path, evenly spread in id order."""
    candidates = [i for i, row in enumerate(rows) if row.get("path")]
    if limit <= 0:
        return []
    if len(candidates) <= limit:
        return candidates
    return [candidates[(k * len(candidates)) // limit] for k in range(limit)]


def _thumbnails(
    rows: Sequence[Mapping[str, Any]], limit: int, max_pixels: int, target: str
) -> dict[str, str]:
    """{row index: base64 JPEG}. Rows of one image (a shape map's boxes) share one decode."""
    by_path: dict[str, list[int]] = {}
    for i in _sample(rows, limit):
        by_path.setdefault(str(rows[i]["path"]), []).append(i)
    decode_px = SHAPE_DECODE_PX if target == "shape" else THUMB_PX
    out: dict[str, str] = {}
    for image_path, members in by_path.items():
        # A decoder per image: its cache then holds one image at a time, not thousands.
        decoder = Thumbnails(None, decode_px, max_pixels)
        recorded = max((recorded_pixels(rows[i]) or 0) for i in members)
        decoded = decoder._decode(image_path, max(max_pixels, recorded))
        if isinstance(decoded, str):  # why there is no picture: not an error for a map
            continue
        picture, full_size = decoded
        for i in members:
            box = shape_box(rows[i]) if target == "shape" else None
            thumb = _crop(picture, full_size, box) if box is not None else picture.copy()
            out[str(i)] = _jpeg(thumb)
    return out


def _crop(
    picture: Image.Image, full_size: tuple[int, int], box: tuple[float, float, float, float]
) -> Image.Image:
    """The box (pixels of the full, upright image) and a margin, cut from the decoded picture."""
    scale_x, scale_y = picture.width / full_size[0], picture.height / full_size[1]
    x, y, w, h = box
    mx, my = w * SHAPE_MARGIN, h * SHAPE_MARGIN
    left = max(0, math.floor((x - mx) * scale_x))
    top = max(0, math.floor((y - my) * scale_y))
    right = min(picture.width, max(left + 1, math.ceil((x + w + mx) * scale_x)))
    bottom = min(picture.height, max(top + 1, math.ceil((y + h + my) * scale_y)))
    if left >= picture.width or top >= picture.height:  # a box outside the image: show the image
        return picture.copy()
    return picture.crop((left, top, right, bottom))


def _jpeg(picture: Image.Image) -> str:
    # Fit THUMB_PX: a small crop is enlarged (so the tooltip shows it), a large picture reduced.
    factor = THUMB_PX / max(picture.width, picture.height)
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    if size != picture.size:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=THUMB_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
