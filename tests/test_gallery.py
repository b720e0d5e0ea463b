"""The HTML gallery: escaping, one figure per row, boxes in the right place, and what a browser
shows (headless Chromium screenshot)."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from PIL import Image

from pgsearch.cli import cli
from pgsearch.gallery import Box, _label_colour, gallery_html, write_gallery

RED, GREEN, BLUE = (230, 20, 20), (20, 200, 40), (20, 40, 230)
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>.jpg'


def _image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def _embedded_images(page: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(data)))
        for data in re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    ]


@pytest.fixture
def rows(tmp_path: Path) -> list[dict[str, object]]:
    white = _image(tmp_path / "white.png", (255, 255, 255), (400, 200))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    return [
        {
            "id": 1,
            "filename": "red.png",
            "path": str(_image(tmp_path / "red.png", RED)),
            "distance": 0.0123,
            "label_counts": {"car": 2, "<b>bold</b>": 1},
        },
        {"id": 2, "filename": HOSTILE, "path": "green.jpg", "distance": 0.25, "label_counts": {}},
        {
            "id": 3,
            "filename": "blue.png",
            "path": str(_image(tmp_path / "blue.png", BLUE)),
            "label_counts": None,
        },
        {"id": 4, "filename": "gone.jpg", "path": str(tmp_path / "gone.jpg")},
        {"id": 5, "filename": "broken.jpg", "path": str(tmp_path / "broken.jpg")},
        # A shape: its box in the pixels of the 400 x 200 image.
        {
            "id": 6,
            "filename": "white.png",
            "path": str(white),
            "label": "person",
            "distance": 0.5,
            "bbox_x": 100,
            "bbox_y": 50,
            "bbox_width": 200,
            "bbox_height": 100,
        },
    ]


def test_page_escapes_text_and_has_one_figure_per_row(rows: list[dict[str, object]], tmp_path: Path) -> None:
    _image(tmp_path / "green.jpg", GREEN)
    out = write_gallery(rows, tmp_path / "g.html", title="Top <10> & more", image_root=tmp_path, thumb_px=128)
    page = out.read_text(encoding="utf-8")
    assert page.count("<figure") == len(rows) == page.count("</figure>")
    assert "<script" not in page and "onerror=alert(1)>" not in page and "<b>bold" not in page
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&lt;img src=x onerror=alert(1)&gt;.jpg" in page
    )
    assert "&lt;b&gt;bold&lt;/b&gt; \u00d71" in page and "car \u00d72" in page
    assert "<title>Top &lt;10&gt; &amp; more</title>" in page
    assert "distance 0.0123" in page and "label person" in page
    assert page.count('class="missing"') == 2
    assert "file not found" in page and "unreadable image" in page
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r'(src|href)="(?!data:)', page)
    images = _embedded_images(page)
    assert len(images) == 4
    assert all(max(image.size) == 128 for image in images)
    red = np.asarray(images[0].convert("RGB"), dtype=int)
    assert np.abs(red - RED).max() < 30


def test_shape_box_is_drawn_scaled(rows: list[dict[str, object]]) -> None:
    shape = rows[-1]
    thumb = _embedded_images(gallery_html([shape], title="t", thumb_px=200))[0].convert("RGB")
    assert thumb.size == (200, 100)  # 400 x 200 scaled by 1/2: the box spans x 50..149, y 25..74
    pixels = np.asarray(thumb, dtype=int)
    colour = np.array(_label_colour("person"))

    def is_box(x: int, y: int) -> bool:
        return bool(np.abs(pixels[y, x] - colour).max() < 60)

    assert is_box(50, 50) and is_box(149, 50) and is_box(100, 25) and is_box(100, 74)  # the four edges
    assert not is_box(100, 50) and not is_box(20, 50) and not is_box(180, 90)  # inside, outside
    assert np.abs(pixels[50, 100] - 255).max() < 20  # the inside stays white


def _screenshot(page: Path, tmp_path: Path) -> np.ndarray:
    """What headless Chromium shows of `page` in a 1200 x 900 window, as RGB pixels."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    shot = tmp_path / f"{page.stem}.png"
    profile = tmp_path / f"profile-{page.stem}"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert pixels.shape[:2] == (900, 1200)
    return pixels


def test_chromium_shows_the_images(rows: list[dict[str, object]], tmp_path: Path) -> None:
    _image(tmp_path / "green.jpg", GREEN)
    page = write_gallery(rows, tmp_path / "gallery.html", title="colours", image_root=tmp_path)
    pixels = _screenshot(page, tmp_path)
    total = pixels.shape[0] * pixels.shape[1]
    # Each 256 x 192 thumbnail is about 4.5% of the window; demand at least 2% per colour.
    for colour in (RED, GREEN, BLUE):
        share = (np.abs(pixels - colour).max(axis=2) < 40).sum() / total
        assert share > 0.02, (colour, share)
    box = (np.abs(pixels - np.array(_label_colour("person"))).max(axis=2) < 40).sum()
    assert box > 300  # the shape's outline is on screen


# -- the boxes of an asset's shapes, drawn over its card ---------------------------------------


class _Page(HTMLParser):
    """Each figure of a gallery page: its class, caption text, overlay viewBox and boxes."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, Any]] = []
        self._in_title = False
        self._in_svg = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figures.append({"class": a.get("class"), "text": "", "viewbox": None, "boxes": []})
        elif self.figures and tag == "svg":
            self._in_svg = True
            self.figures[-1]["viewbox"] = [float(v) for v in (a["viewbox"] or "").split()]
        elif self.figures and tag == "g" and a.get("class") == "box":
            self.figures[-1]["boxes"].append({"label": a["data-label"], "kind": a["data-kind"], "title": ""})
        elif self.figures and tag == "rect":
            box = self.figures[-1]["boxes"][-1]
            box["rect"] = tuple(float(a[k] or "nan") for k in ("x", "y", "width", "height"))
            box["stroke"] = a["stroke"]
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        self._in_svg = self._in_svg and tag != "svg"

    def handle_data(self, data: str) -> None:
        if not self.figures:
            return
        if self._in_title:
            self.figures[-1]["boxes"][-1]["title"] += data
        elif not self._in_svg:  # the caption's texts, one per element
            self.figures[-1]["text"] += data + "\n"


def parse_page(page: str) -> list[dict[str, Any]]:
    parser = _Page()
    parser.feed(page)
    return parser.figures


def test_asset_boxes_are_drawn_over_the_card_scaled_and_escaped(tmp_path: Path) -> None:
    """The overlay's viewBox is the thumbnail's pixels; each box is scaled from the image's, in its
    label's colour, with its label (escaped) as the hover title; larger boxes first."""
    path = _image(tmp_path / "street.png", (200, 200, 200), (400, 200))
    rows = [
        {"id": 7, "filename": "street.png", "path": str(path), "width": 400, "height": 200},
        {"id": 8, "filename": "plain.png", "path": str(path)},  # no shapes: no overlay
    ]
    boxes = {
        7: [
            Box("car", "bbox", 40, 20, 100, 60),
            Box(HOSTILE, "polygon", 0, 0, 400, 200),
        ]
    }
    page = gallery_html(rows, title="t", thumb_px=200, boxes=boxes)
    assert "<script" not in page and "onerror=alert(1)>" not in page
    with_boxes, plain = parse_page(page)
    assert with_boxes["viewbox"] == [0, 0, 200, 100] and plain["viewbox"] is None and not plain["boxes"]
    big, car = with_boxes["boxes"]
    assert (
        big["label"] == HOSTILE and big["title"] == f"{HOSTILE} (polygon)" and big["rect"] == (0, 0, 200, 100)
    )
    assert car["label"] == "car" and car["title"] == "car" and car["rect"] == (20, 10, 50, 30)
    assert car["stroke"] == "rgb({},{},{})".format(*_label_colour("car"))
    # The JPEG itself is left as it was: the boxes are only in the overlay.
    thumb = np.asarray(_embedded_images(page)[0].convert("RGB"), dtype=int)
    assert np.abs(thumb - 200).max() < 20


def test_shape_rows_keep_their_own_box_and_get_no_overlay(rows: list[dict[str, object]]) -> None:
    shape = rows[-1]
    page = gallery_html([shape], title="t", boxes={6: [Box("car", "bbox", 0, 0, 10, 10)]})
    assert parse_page(page)[0]["viewbox"] is None


def test_page_boxes_reads_a_page_in_one_query(conn: psycopg.Connection, tmp_path: Path) -> None:
    """One statement for the whole page, whatever the number of assets; shape rows, tags and the
    assets of other pages are left out, and each asset gets at most `per_asset` boxes."""
    from pgsearch.gallery import page_boxes

    ds = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('g') RETURNING id").fetchone()[0]
    label = conn.execute(
        "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, 'cat') RETURNING id", (ds,)
    ).fetchone()[0]
    ids = [
        conn.execute(
            "INSERT INTO pgsearch.assets (dataset_id, filename) VALUES (%s, %s) RETURNING id",
            (ds, f"{i}.jpg"),
        ).fetchone()[0]
        for i in range(4)
    ]
    for asset, count in zip(ids, (3, 0, 1, 2), strict=True):
        for j in range(count):
            conn.execute(
                "INSERT INTO pgsearch.shapes (dataset_id, asset_id, label_id, kind, bbox_x, bbox_y, bbox_width,"
                " bbox_height) VALUES (%s, %s, %s, 'bbox', %s, 1, 5, 5)",
                (ds, asset, label, j),
            )
    conn.execute(
        "INSERT INTO pgsearch.shapes (dataset_id, asset_id, label_id, kind) VALUES (%s, %s, %s, 'tag')",
        (ds, ids[2], label),
    )
    conn.commit()

    executed: list[object] = []

    class Counting(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            executed.append(query)
            return super().execute(query, *args, **kwargs)

    conn.cursor_factory = Counting
    page = [{"id": ids[0]}, {"id": ids[1]}, {"id": ids[2]}, {"id": 99, "asset_id": ids[3], "label": "cat"}]
    found = page_boxes(conn, page, per_asset=2)
    assert len(executed) == 1
    assert {k: [b.x for b in v] for k, v in found.items()} == {ids[0]: [0, 1], ids[2]: [0]}
    assert found[ids[2]][0] == Box("cat", "bbox", 0, 1, 5, 5)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # nothing left open
    executed.clear()
    assert page_boxes(conn, [{"id": 1, "label": "x"}]) == {} and not executed  # no asset: no query


def _boxed_shapes(conn: psycopg.Connection, dataset: str) -> dict[int, int]:
    return dict(
        conn.execute(
            "SELECT s.asset_id, count(*) FROM pgsearch.shapes s JOIN pgsearch.datasets d ON d.id = s.dataset_id"
            " WHERE d.name = %s AND s.bbox_x IS NOT NULL GROUP BY s.asset_id",
            (dataset,),
        ).fetchall()
    )


def _card_ids(figure: dict[str, Any]) -> int:
    found = re.search(r"\bid (\d+)", figure["text"])
    assert found, figure["text"]
    return int(found.group(1))


def test_the_demo_gallery_draws_the_boxes_of_its_assets(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    """`pgsearch demo` and `pgsearch query -f html`: every asset card shows exactly its asset's
    boxed shapes (the demo draws them all as COCO boxes), shape cards have none."""
    done = CliRunner().invoke(cli, ["demo", "--images", "20", "--dir", str(tmp_path), "--quiet"])
    assert done.exit_code == 0, done.output
    expected = _boxed_shapes(conn, "demo")
    figures = parse_page((tmp_path / "gallery.html").read_text(encoding="utf-8"))
    assets = [f for f in figures if f["class"] == "asset"]
    assert assets and any(f["class"] == "shape" for f in figures)
    assert all(f["viewbox"] is None for f in figures if f["class"] == "shape")
    drawn = 0
    for figure in assets:
        count = expected.get(_card_ids(figure), 0)
        assert len(figure["boxes"]) == count, figure
        drawn += count
        if count:
            width, height = figure["viewbox"][2:]
            assert max(width, height) == 256  # the thumbnail's pixels
            for box in figure["boxes"]:
                x, y, w, h = box["rect"]
                assert 0 <= x and 0 <= y and x + w <= width + 0.01 and y + h <= height + 0.01, box
                assert box["title"] == box["label"] and box["kind"] == "bbox"
    assert drawn >= 10

    out = tmp_path / "squirrels.html"
    done = CliRunner().invoke(cli, ["query", "squirrel >= 1", "--dataset", "demo", "-o", str(out)])
    assert done.exit_code == 0, done.output
    cards = parse_page(out.read_text(encoding="utf-8"))
    assert cards and all(len(f["boxes"]) == expected[_card_ids(f)] > 0 for f in cards)
    assert all(any(b["label"] == "squirrel" for b in f["boxes"]) for f in cards)


def test_chromium_draws_the_asset_boxes_where_they_belong(tmp_path: Path) -> None:
    """A card with one box, rendered: the box's outline is on screen in its label's colour, and
    it spans the middle half of the picture, which the browser has scaled to the card's width."""
    grey = (128, 128, 128)
    path = _image(tmp_path / "road.png", grey, (400, 300))
    row = {"id": 1, "filename": "road.png", "path": str(path), "width": 400, "height": 300}
    boxes = {1: [Box("car", "bbox", 100, 75, 200, 150)]}
    page = write_gallery([row], tmp_path / "boxes.html", title="boxes", boxes=boxes)
    pixels = _screenshot(page, tmp_path)

    def where(colour: tuple[int, int, int], tolerance: int, least: int) -> tuple[np.ndarray, np.ndarray]:
        """Columns and rows with more than `least` pixels of `colour`."""
        mask = np.abs(pixels - np.array(colour)).max(axis=2) < tolerance
        return np.nonzero(mask.sum(axis=0) > least)[0], np.nonzero(mask.sum(axis=1) > least)[0]

    image_x, image_y = where(grey, 10, 20)  # the picture, not a caption's stray grey pixels
    box_x, box_y = where(_label_colour("car"), 40, 0)
    assert len(box_x) > 50 and len(box_y) > 50, "no box on screen"
    left, right, top, bottom = image_x.min(), image_x.max(), image_y.min(), image_y.max()
    shown_w, shown_h = right - left + 1, bottom - top + 1
    assert abs(shown_w / shown_h - 4 / 3) < 0.03  # the picture, as object-fit: contain shows it
    # The outline: the middle half of the picture both ways, within the stroke's width.
    assert abs(box_x.min() - (left + shown_w / 4)) <= 4 and abs(box_x.max() - (left + 3 * shown_w / 4)) <= 4
    assert abs(box_y.min() - (top + shown_h / 4)) <= 4 and abs(box_y.max() - (top + 3 * shown_h / 4)) <= 4
