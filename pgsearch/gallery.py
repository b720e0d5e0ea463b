"""A self-contained HTML gallery of query results: one file, thumbnails embedded as base64 JPEG.

Rows are the query layer's result dicts: `id`, `filename`, `path`, optionally `distance`,
`label_counts` ({label: count}), and for shape rows `label` and `bbox_x`, `bbox_y`, `bbox_width`,
`bbox_height` (pixels of the full image), whose box is drawn into the thumbnail. Every text that
came from the data (file names, labels, paths) is escaped: file names are hostile input.

Pixels become RGB the way the loader makes them (pgsearch.loader.images): EXIF orientation,
alpha composited on white, 16-bit and float images rescaled. The decompression-bomb guard is the
loader's too: an image is refused above `max_pixels` (default the loader's, 100 MP), or above the
size the loader recorded for it (a row's `width` x `height`) when that is larger, since the
loader accepted it at that size (`pgsearch load --max-megapixels`).

An asset row's own shapes are drawn over its card when the page is given them (`boxes`, from
`page_boxes`: one query for every asset of the page): an SVG overlay in the thumbnail's pixels,
each box in its label's colour, the label shown on hover. They are vector, not drawn into the
JPEG, so that they stay crisp and the label can appear on hover; a shape row's single box is
drawn into its thumbnail instead, as before, since that box is the row itself.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import html
import io
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError
from psycopg import sql

from pgsearch.loader.images import DEFAULT_MAX_PIXELS, to_rgb

ORIENTATION_TAG = 0x0112
BOX_KEYS = ("bbox_x", "bbox_y", "bbox_width", "bbox_height")
JPEG_QUALITY = 82
MIDDLE_DOT = " \u00b7 "
TIMES = "\u00d7"
# Boxes drawn on one asset card at most: past a few hundred they hide the image and only grow
# the page (the card's label counts still say how many shapes there are).
MAX_BOXES_PER_ASSET = 200

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 16px; background: #f4f4f5; color: #18181b; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 20px 0 4px; }
p.summary { margin: 0 0 16px; color: #52525b; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(var(--thumb), 1fr)); gap: 12px; }
figure { margin: 0; background: #fff; border-radius: 6px; box-shadow: 0 1px 3px #0002; overflow: hidden; }
figure img, figure .missing { display: block; width: 100%; height: var(--thumb); object-fit: contain;
  background: #e4e4e7; }
figure .missing { display: flex; align-items: center; justify-content: center; color: #71717a;
  font-size: 13px; text-align: center; }
figcaption { padding: 6px 8px; line-height: 1.35; }
.name { font-weight: 600; overflow-wrap: anywhere; }
.meta { color: #52525b; font-size: 12px; }
.labels { font-size: 12px; }
.labels span { display: inline-block; background: #eef2ff; border-radius: 3px; padding: 0 4px; margin: 2px 2px 0 0; }
.thumb { position: relative; }
/* The overlay covers the img box exactly and, like object-fit: contain, fits its viewBox (the
   thumbnail's pixels) centred in it, so the boxes land on the picture at any card width. */
.thumb svg.boxes { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
.boxes g { pointer-events: all; cursor: default; }
.boxes rect { fill: none; stroke-width: 2px; vector-effect: non-scaling-stroke; }
.boxes text { display: none; fill: #fff; stroke: #000; paint-order: stroke; font-family: system-ui, sans-serif;
  font-weight: 600; dominant-baseline: hanging; }
.boxes g:hover rect { stroke-width: 4px; }
.boxes g:hover text { display: inline; }
"""


@dataclass(frozen=True)
class Box:
    """A shape of an asset as its card draws it: the bounding box, in pixels of the full image."""

    label: str
    kind: str
    x: float
    y: float
    width: float
    height: float


# asset id -> its boxes, as page_boxes reads them
Boxes = Mapping[int, Sequence[Box]]

# Every shape with a box (all kinds but tags) of the given assets, at most `per_asset` each (the
# first ones loaded): one statement for the whole page, an index lookup per asset.
_PAGE_BOXES = sql.SQL(
    """SELECT page.asset_id, b.name, b.kind, b.bbox_x, b.bbox_y, b.bbox_width, b.bbox_height
  FROM unnest({ids}::bigint[]) AS page(asset_id)
 CROSS JOIN LATERAL (
       SELECT l.name, s.kind, s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height
         FROM pgsearch.shapes AS s
         JOIN pgsearch.labels AS l ON l.id = s.label_id
        WHERE s.asset_id = page.asset_id AND s.bbox_x IS NOT NULL
        ORDER BY s.id
        LIMIT {per_asset}) AS b"""
).format(ids=sql.Placeholder("ids"), per_asset=sql.Placeholder("per_asset"))


def asset_ids(rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """The ids of the asset rows among `rows` (shape rows carry a label or a box of their own)."""
    ids = {
        int(row["id"])
        for row in rows
        if row.get("id") is not None
        and "label" not in row
        and "asset_id" not in row
        and shape_box(row) is None
    }
    return sorted(ids)


def page_boxes(
    conn: psycopg.Connection[Any],
    rows: Iterable[Mapping[str, Any]],
    *,
    per_asset: int = MAX_BOXES_PER_ASSET,
) -> dict[int, list[Box]]:
    """The boxes of every asset row of a page, read in one query: {asset id: boxes}, assets
    without a boxed shape left out. Its own transaction (a savepoint inside the caller's), so
    that it leaves the connection as it found it."""
    ids = asset_ids(rows)
    if not ids:
        return {}
    found: dict[int, list[Box]] = {}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_PAGE_BOXES, {"ids": ids, "per_asset": per_asset})
        for asset_id, name, kind, x, y, w, h in cur:
            found.setdefault(asset_id, []).append(Box(name, kind, x, y, w, h))
    return found


def gallery_renderer(
    conn: psycopg.Connection[Any], rows: Iterable[Mapping[str, Any]]
) -> Callable[[list[dict[str, Any]], str], str]:
    """A page renderer (rows, title) -> html for pgsearch.output.emit that draws the boxes of the
    asset rows among `rows`, read now (page_boxes: one query) while the connection is open."""
    boxes = page_boxes(conn, rows)

    def render(page: list[dict[str, Any]], title: str) -> str:
        return gallery_html(page, title=title, boxes=boxes)

    return render


def write_gallery(
    rows: Iterable[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str,
    image_root: str | Path | None = None,
    thumb_px: int = 256,
    max_pixels: int | None = None,
    boxes: Boxes | None = None,
) -> Path:
    """Writes the gallery page to `path` and returns it. Relative image paths resolve against
    `image_root` (default: the current directory)."""
    target = Path(path)
    target.write_text(
        gallery_html(
            rows, title=title, image_root=image_root, thumb_px=thumb_px, max_pixels=max_pixels, boxes=boxes
        ),
        encoding="utf-8",
    )
    return target


def gallery_html(
    rows: Iterable[Mapping[str, Any]],
    *,
    title: str,
    image_root: str | Path | None = None,
    thumb_px: int = 256,
    max_pixels: int | None = None,
    boxes: Boxes | None = None,
) -> str:
    """The gallery page as a string; `boxes` (page_boxes) are drawn on the asset cards."""
    return sections_html(
        [(None, rows)],
        title=title,
        image_root=image_root,
        thumb_px=thumb_px,
        max_pixels=max_pixels,
        boxes=boxes,
    )


def write_gallery_sections(
    sections: Iterable[tuple[str | None, Iterable[Mapping[str, Any]]]],
    path: str | Path,
    *,
    title: str,
    image_root: str | Path | None = None,
    thumb_px: int = 256,
    max_pixels: int | None = None,
    links: Iterable[tuple[str, str]] = (),
    boxes: Boxes | None = None,
) -> Path:
    """Writes one page holding several result sets, each under its own heading."""
    target = Path(path)
    target.write_text(
        sections_html(
            sections,
            title=title,
            image_root=image_root,
            thumb_px=thumb_px,
            max_pixels=max_pixels,
            links=links,
            boxes=boxes,
        ),
        encoding="utf-8",
    )
    return target


def sections_html(
    sections: Iterable[tuple[str | None, Iterable[Mapping[str, Any]]]],
    *,
    title: str,
    image_root: str | Path | None = None,
    thumb_px: int = 256,
    max_pixels: int | None = None,
    links: Iterable[tuple[str, str]] = (),
    boxes: Boxes | None = None,
) -> str:
    """A page of result sets; a section without a heading is a plain gallery. Images above
    `max_pixels` (default: the loader's limit) show as too large, unless the row records a larger
    size the loader accepted. links: (text, relative URL) pairs shown under the title, e.g. the
    dataset's map page. boxes: the asset rows' shapes (page_boxes), drawn over their cards."""
    thumbs = Thumbnails(
        Path(image_root) if image_root is not None else None,
        thumb_px,
        DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
    )
    e = html.escape
    body: list[str] = []
    shown = [f'<a href="{e(href, quote=True)}">{e(text)}</a>' for text, href in links]
    if shown:
        body.append(f'<p class="summary">{" · ".join(shown)}</p>')
    for heading, rows in sections:
        figures = [figure_html(row, thumbs, boxes) for row in rows]
        if heading is not None:
            body.append(f"<h2>{e(heading)}</h2>")
        body.append(f'<p class="summary">{len(figures)} result{"" if len(figures) == 1 else "s"}</p>')
        body.extend(['<main class="grid">', *figures, "</main>"])
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            f"<style>:root {{ --thumb: {int(thumb_px)}px; }}{STYLE}</style>",
            "</head><body>",
            f"<h1>{e(title)}</h1>",
            *body,
            "</body></html>",
            "",
        ]
    )


def figure_html(row: Mapping[str, Any], thumbs: Thumbnails, boxes: Boxes | None = None) -> str:
    e = html.escape
    filename = str(row.get("filename") or "")
    box = shape_box(row)
    label = row.get("label")
    data_uri, problem = thumbs.get(row.get("path"), box, label, recorded_pixels(row))
    if data_uri is not None:
        image = f'<img src="{data_uri}" alt="{e(filename)}" title="{e(str(row.get("path") or ""))}">'
        own = boxes.get(row["id"]) if boxes and row.get("id") is not None and box is None else None
        sizes = thumbs.sizes(row.get("path"), recorded_pixels(row)) if own else None
        if own and sizes is not None:
            image = f'<div class="thumb">{image}{overlay_svg(own, *sizes)}</div>'
    else:
        image = f'<div class="missing">{e(problem or "no image")}</div>'
    meta = []
    if row.get("id") is not None:
        meta.append(f"id {e(str(row['id']))}")
    if row.get("distance") is not None:
        meta.append(f"distance {float(row['distance']):.4f}")
    if label is not None:
        meta.append(f"label {e(str(label))}")
    counts = row.get("label_counts") or {}
    labels = "".join(f"<span>{e(str(name))} {TIMES}{e(str(n))}</span>" for name, n in sorted(counts.items()))
    kind = "shape" if box is not None or label is not None else "asset"
    return (
        f'<figure class="{kind}">{image}<figcaption>'
        f'<div class="name">{e(filename)}</div>'
        f'<div class="meta">{MIDDLE_DOT.join(meta)}</div>'
        + (f'<div class="labels">{labels}</div>' if labels else "")
        + "</figcaption></figure>"
    )


def overlay_svg(boxes: Sequence[Box], thumb: tuple[int, int], image: tuple[int, int]) -> str:
    """An asset's boxes as an SVG over its thumbnail: the viewBox is the thumbnail's pixels (the
    boxes scaled from the full image's, as the shape rows' boxes are), each box a group with its
    label as the hover tooltip (title) and as a text shown on hover. Larger boxes come first, so
    that a small box inside a large one stays on top, where the pointer finds it."""
    e = html.escape
    tw, th = thumb
    sx, sy = tw / image[0], th / image[1]
    font = max(8.0, max(tw, th) / 16)
    groups = []
    for b in sorted(boxes, key=lambda b: -(b.width * b.height)):
        x, y, w, h = b.x * sx, b.y * sy, b.width * sx, b.height * sy
        r, g, bl = _label_colour(b.label)
        name = e(b.label)
        title = name if b.kind == "bbox" else f"{name} ({e(b.kind)})"
        groups.append(
            f'<g class="box" data-label="{e(b.label, quote=True)}" data-kind="{e(b.kind, quote=True)}">'
            f"<title>{title}</title>"
            f'<rect x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}" stroke="rgb({r},{g},{bl})"/>'
            f'<text x="{x + 2:.2f}" y="{y + 2:.2f}">{name}</text></g>'
        )
    return (
        f'<svg class="boxes" viewBox="0 0 {tw} {th}" preserveAspectRatio="xMidYMid meet" '
        f'font-size="{font:.1f}" stroke-width="{font / 6:.2f}" xmlns="http://www.w3.org/2000/svg" '
        f'aria-label="{len(boxes)} shape{"" if len(boxes) == 1 else "s"}">' + "".join(groups) + "</svg>"
    )


def shape_box(row: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    values = [row.get(key) for key in BOX_KEYS]
    if any(v is None for v in values):
        return None
    x, y, w, h = (float(v) for v in values)  # type: ignore[arg-type]
    return x, y, w, h


def recorded_pixels(row: Mapping[str, Any]) -> int | None:
    """width x height as the loader recorded them (asset rows), when they are whole numbers."""
    width, height = row.get("width"), row.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width * height
    return None


@contextmanager
def _pixel_limit(limit: int) -> Iterator[None]:
    """Pillow's decompression-bomb guard at `limit` pixels for the block, as the loader sets it:
    Pillow warns between its limit and twice it and refuses beyond; here both refuse (the warning
    becomes an error), and an image within the limit neither warns nor fails. Pillow keeps the
    limit in a module global; it is restored when the block ends."""
    previous = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _label_colour(label: object) -> tuple[int, int, int]:
    """A bright colour per label, the same on every page."""
    digest = hashlib.sha1(str(label).encode()).digest()
    r, g, b = colorsys.hsv_to_rgb(digest[0] / 255, 0.9, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


class Thumbnails:
    """Decodes each image once (shape rows often share one) and encodes each thumbnail."""

    def __init__(self, root: Path | None, px: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = root
        self.px = px
        self.max_pixels = max_pixels
        self._decoded: dict[tuple[str, int], tuple[Image.Image, tuple[int, int]] | str] = {}

    def get(
        self,
        path: object,
        box: tuple[float, float, float, float] | None,
        label: object,
        recorded_pixels: int | None = None,
    ) -> tuple[str | None, str | None]:
        """(data URI, None), or (None, why there is no picture)."""
        if not path:
            return None, "no image path"
        decoded = self._decode(str(path), max(self.max_pixels, recorded_pixels or 0))
        if isinstance(decoded, str):
            return None, decoded
        thumb, (width, height) = decoded
        thumb = thumb.copy()
        if box is not None:
            scale_x, scale_y = thumb.width / width, thumb.height / height
            x, y, w, h = box
            stroke = max(3, round(min(thumb.size) / 80))
            ImageDraw.Draw(thumb).rectangle(
                [
                    x * scale_x,
                    y * scale_y,
                    max(x * scale_x, (x + w) * scale_x - 1),
                    max(y * scale_y, (y + h) * scale_y - 1),
                ],
                outline=_label_colour(label),
                width=stroke,
            )
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)  # 4:4:4 keeps thin boxes crisp
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), None

    def sizes(
        self, path: object, recorded_pixels: int | None = None
    ) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(thumbnail size, full upright image size) of the image get() shows, None when it
        shows none; decoded once, shared with get()."""
        if not path:
            return None
        decoded = self._decode(str(path), max(self.max_pixels, recorded_pixels or 0))
        if isinstance(decoded, str):
            return None
        return decoded[0].size, decoded[1]

    def _decode(self, path: str, max_pixels: int) -> tuple[Image.Image, tuple[int, int]] | str:
        key = (path, max_pixels)
        if key not in self._decoded:
            self._decoded[key] = self._load(path, max_pixels)
        return self._decoded[key]

    def _load(self, path: str, max_pixels: int) -> tuple[Image.Image, tuple[int, int]] | str:
        file = Path(path)
        if not file.is_absolute() and self.root is not None:
            file = self.root / file
        try:
            with _pixel_limit(max_pixels), Image.open(file) as image:
                # Boxes are in the pixels of the upright image: its size before any reduced decode.
                width, height = image.size
                if image.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8):
                    width, height = height, width
                # JPEG decodes at a reduced scale straight away; a no-op for other formats.
                image.draft("RGB", (self.px, self.px))
                image.load()
                # The loader's conversion: alpha on white, 16-bit and float images rescaled.
                rgb = to_rgb(ImageOps.exif_transpose(image))
        except FileNotFoundError:
            return "file not found"
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return f"image too large (limit {max_pixels / 1e6:.0f} MP)"
        except MemoryError:
            return "image too large (out of memory)"
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            IndexError,
            KeyError,
            TypeError,
        ):
            return "unreadable image"
        rgb.thumbnail((self.px, self.px))
        return rgb, (width, height)
