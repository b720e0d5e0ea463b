"""Gallery thumbnails of images in every mode the loader accepts, converted as the loader
converts them, and the loader's decompression-bomb limit (no warning, no refusal within it)."""

from __future__ import annotations

import base64
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgsearch.gallery import gallery_html
from pgsearch.loader.images import load_image


def _thumbs(page: str) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), dtype=np.int16)
        for data in re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    ]


def _one_thumb(path: Path, **row: object) -> np.ndarray:
    page = gallery_html([{"id": 1, "filename": path.name, "path": str(path), **row}], title="t", thumb_px=64)
    thumbs = _thumbs(page)
    assert len(thumbs) == 1, page
    return thumbs[0]


def _loader_pixels(path: Path, size: tuple[int, int]) -> np.ndarray:
    facts, rgb = load_image(str(path))
    assert rgb is not None, facts.error
    return np.asarray(rgb.resize(size), dtype=np.int16)


def _centre(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return a[h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2].reshape(-1, 3).mean(axis=0)


def test_16_bit_png_is_grey_not_white(tmp_path: Path) -> None:
    path = tmp_path / "depth16.png"
    Image.fromarray(np.full((60, 80), 32768, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    thumb = _one_thumb(path)
    assert np.allclose(_centre(thumb), 128, atol=4)
    assert np.abs(thumb - _loader_pixels(path, (thumb.shape[1], thumb.shape[0]))).max() <= 4


def test_32_bit_integer_tiff_is_grey_not_white(tmp_path: Path) -> None:
    path = tmp_path / "counts.tif"
    Image.fromarray(np.full((60, 80), 30000, dtype=np.int32), "I").save(path)
    assert Image.open(path).mode == "I"
    assert np.allclose(_centre(_one_thumb(path)), 30000 / 257, atol=4)


def test_float_tiff_is_stretched_not_black(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    values = np.zeros((60, 80), dtype=np.float32)
    values[:, 40:] = 0.75  # dark left half, bright right half after stretching 0..0.75
    Image.fromarray(values, "F").save(path)
    assert Image.open(path).mode == "F"
    thumb = _one_thumb(path)
    assert thumb[:, :20].mean() < 10 and thumb[:, -20:].mean() > 245


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "pal.png"
    image = Image.new("P", (80, 60), 0)
    image.putpalette([0, 0, 0, 230, 20, 20] + [0] * 762)
    image.paste(1, (30, 20, 50, 40))
    image.save(path, transparency=0)  # index 0 (black) is transparent
    thumb = _one_thumb(path)
    assert np.allclose(thumb[1, 1], 255, atol=3)  # transparent corner: white, not black
    assert np.allclose(_centre(thumb), (230, 20, 20), atol=12)


@pytest.mark.parametrize("suffix", ["png", "webp"])
def test_rgba_is_composited_on_white(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"alpha.{suffix}"
    image = Image.new("RGBA", (80, 60), (0, 0, 0, 0))
    image.paste((20, 40, 230, 255), (30, 20, 50, 40))
    image.save(path, **({"lossless": True} if suffix == "webp" else {}))
    thumb = _one_thumb(path)
    assert np.allclose(thumb[1, 1], 255, atol=3)
    assert np.allclose(_centre(thumb), (20, 40, 230), atol=12)


def test_greyscale_with_alpha_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    image = Image.new("LA", (80, 60), (0, 0))
    image.paste((40, 255), (30, 20, 50, 40))
    image.save(path)
    thumb = _one_thumb(path)
    assert np.allclose(thumb[1, 1], 255, atol=3) and np.allclose(_centre(thumb), 40, atol=6)


def _wide(path: Path, size: tuple[int, int] = (2000, 1000)) -> Path:
    Image.new("L", size, 90).save(path)
    return path


def test_the_loaders_limit_not_pillows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's own guard (here lowered to 0.5 MP) neither warns nor refuses an image within the
    gallery's limit, and the process's setting is left as it was."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500_000)
    path = _wide(tmp_path / "wide.png")  # 2 MP: above twice Pillow's limit, within the loader's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        thumb = _one_thumb(path)
    assert np.allclose(_centre(thumb), 90, atol=3)
    assert Image.MAX_IMAGE_PIXELS == 500_000


def test_above_the_limit_says_too_large(tmp_path: Path) -> None:
    path = _wide(tmp_path / "wide.png")
    rows = [{"id": 1, "filename": "wide.png", "path": str(path)}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = gallery_html(rows, title="t", max_pixels=1_000_000)  # both between 1x and 2x, and above
        page += gallery_html(rows, title="t", max_pixels=500_000)
    assert page.count("image too large") == 2 and "unreadable" not in page and not _thumbs(page)


def test_a_size_the_loader_recorded_is_accepted(tmp_path: Path) -> None:
    """A row's width x height is what the loader accepted (--max-megapixels): shown, even above the
    gallery's limit; a row without a recorded size (a shape of another image) keeps the limit."""
    path = _wide(tmp_path / "big.png")
    other = _wide(tmp_path / "other.png")
    rows = [
        {"id": 1, "filename": "big.png", "path": str(path), "width": 2000, "height": 1000},
        {"id": 2, "filename": "other.png", "path": str(other), "label": "x"},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = gallery_html(rows, title="t", max_pixels=1_000_000)
    assert len(_thumbs(page)) == 1 and page.count("image too large") == 1


@pytest.mark.slow
def test_90_megapixels_decode_without_a_warning(tmp_path: Path) -> None:
    """Above Pillow's default guard (89.5 MP), within the loader's 100 MP: no DecompressionBombWarning."""
    path = tmp_path / "huge.png"
    Image.new("1", (9500, 9500), 1).save(path)
    assert 9500 * 9500 > Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        thumb = _one_thumb(path)
    assert _centre(thumb).min() > 250
