"""The HTML gallery: escaping, one figure per row, boxes in the right place, and what a browser
shows (headless Chromium screenshot)."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgsearch.gallery import _label_colour, gallery_html, write_gallery

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


def test_chromium_shows_the_images(rows: list[dict[str, object]], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    _image(tmp_path / "green.jpg", GREEN)
    page = write_gallery(rows, tmp_path / "gallery.html", title="colours", image_root=tmp_path)
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
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
    total = pixels.shape[0] * pixels.shape[1]
    # Each 256 x 192 thumbnail is about 4.5% of the window; demand at least 2% per colour.
    for colour in (RED, GREEN, BLUE):
        share = (np.abs(pixels - colour).max(axis=2) < 40).sum() / total
        assert share > 0.02, (colour, share)
    box = (np.abs(pixels - np.array(_label_colour("person"))).max(axis=2) < 40).sum()
    assert box > 300  # the shape's outline is on screen
