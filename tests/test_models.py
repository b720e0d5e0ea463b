"""Embedding models and the pieces under them: specs, offline failure, preprocessing against
open_clip's own transform, the pixels embedder, crops, RLE and the halfvec COPY encoding."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from imagegen import pattern, rle_compress, rle_encode
from PIL import Image

from pgsearch.errors import PgsearchError
from pgsearch.loader import rle
from pgsearch.loader.crops import crop_window
from pgsearch.loader.errors import ModelError, ModelUnavailable, TextNotSupported
from pgsearch.loader.models import (
    DEFAULT_MODEL,
    OpenClipEmbedder,
    PixelsEmbedder,
    Preprocess,
    get_embedder,
    parse_spec,
)
from pgsearch.loader.vectors import halfvec_copy_rows

TINY = "openclip:pgsearch-tiny:random"


def images(n: int = 4) -> list[Image.Image]:
    return [pattern(40 + 13 * i, 30 + 7 * i, i) for i in range(n)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("clip", "unknown model 'clip'"),
        ("openclip:ViT-B-33", "did you mean"),
        ("openclip:ViT-B-32:nonsense_tag", "is neither a pretrained tag of ViT-B-32 nor a weights file"),
        ("openclip:ViT-B-32:/nowhere/w.bin", "weights file /nowhere/w.bin does not exist"),
        ("openclip:", "unknown model"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=None) as info:
        parse_spec(spec)
    assert message in str(info.value)


def test_spec_names_are_canonical() -> None:
    assert parse_spec("pixels").name == "pixels"
    assert parse_spec("openclip:ViT-B-32").name == "openclip:ViT-B-32:openai"  # the first published tag
    assert parse_spec(TINY).name == TINY
    assert parse_spec("timm:resnet18").name == "timm:resnet18"


def test_pretrained_tag_without_network_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as info:
        get_embedder.__wrapped__(DEFAULT_MODEL)
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "local weights file" in message and "--model pixels" in message
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        get_embedder.__wrapped__("openclip:ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(ModelUnavailable, match="cannot be downloaded here"):
        get_embedder.__wrapped__("timm:resnet18.a1_in1k")
    assert time.monotonic() - started < 15


def test_pixels_embedder() -> None:
    e = get_embedder("pixels")
    assert (e.dim, e.has_text, e.name) == (256, False, "pixels")
    imgs = images()
    v = e.embed_images(imgs)
    assert v.shape == (4, 256) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(v, e.embed_images(imgs))  # deterministic
    np.testing.assert_array_equal(v[1:2], e.embed_images(imgs[1:2]))  # independent of the batch
    # a slightly brightened copy is closer than another picture
    brighter = Image.eval(imgs[0], lambda p: min(255, p + 8))
    w = e.embed_images([brighter])[0]
    assert float(w @ v[0]) > max(float(w @ v[i]) for i in range(1, 4))
    # uniform images are still unit vectors (no zero vector for the index)
    flat = e.embed_images([Image.new("RGB", (10, 10), (128, 128, 128))])
    assert abs(float(np.linalg.norm(flat)) - 1) < 1e-6
    with pytest.raises(TextNotSupported, match="embeds images only"):
        e.embed_texts(["a cat"])
    assert issubclass(TextNotSupported, PgsearchError)


def test_tiny_openclip_images_and_texts() -> None:
    e = get_embedder(TINY)
    assert e.has_text and e.dim == 64 and e.warning and "meaningless" in e.warning
    v = e.embed_images(images())
    t = e.embed_texts(["a cat", "a dog"])
    assert v.shape == (4, 64) and t.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-5)
    # 'random' is the same model in every process: the query layer rebuilds it to embed queries
    again = OpenClipEmbedder(TINY, "pgsearch-tiny", "random", "cpu")
    np.testing.assert_allclose(again.embed_images(images()), v, atol=1e-6)


def test_local_weights_file(tmp_path: Path) -> None:
    e = get_embedder(TINY)
    path = tmp_path / "tiny.pt"
    torch.save(e.model.state_dict(), path)
    from_file = get_embedder(f"openclip:pgsearch-tiny:{path}")
    assert from_file.name == f"openclip:pgsearch-tiny:{path}" and from_file.warning is None
    np.testing.assert_allclose(from_file.embed_images(images()), e.embed_images(images()), atol=1e-6)


@pytest.mark.parametrize("resize_mode", ["shortest", "squash", "longest"])
def test_preprocess_matches_open_clip_transform(resize_mode: str) -> None:
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(size=48, resize_mode=resize_mode)
    theirs = image_transform_v2(cfg, is_train=False)
    ours = Preprocess(48, 48, resize_mode=resize_mode, interpolation="bicubic")
    mean, std = np.array(cfg.mean)[:, None, None], np.array(cfg.std)[:, None, None]
    for img in [*images(), pattern(200, 31, 7), pattern(17, 90, 8)]:
        expected = theirs(img).numpy()
        got = (ours(img).astype(np.float32).transpose(2, 0, 1) / 255.0 - mean) / std
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_timm_image_only_model() -> None:
    e = get_embedder("timm:resnet10t:random")
    assert not e.has_text
    v = e.embed_images(images(2))
    assert v.shape == (2, e.dim) and e.dim == 512
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(TextNotSupported):
        e.embed_texts(["x"])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_rle_against_numpy(h: int, w: int, seed: int, density: float) -> None:
    mask = np.random.default_rng(seed).random((h, w)) < density
    counts = rle_encode(mask)
    assert rle.mask_to_counts(mask) == counts
    assert rle.decode_counts_string(rle_compress(counts)) == counts
    assert rle.normalise_counts(rle_compress(counts), h, w) == counts
    area, bbox = rle.area_and_bbox(counts, h)
    assert area == int(mask.sum())
    if area:
        ys, xs = np.nonzero(mask)
        assert bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    np.testing.assert_array_equal(rle.counts_to_mask(counts, h, w), mask)


def test_rle_rejects_bad_counts() -> None:
    with pytest.raises(rle.RLEError, match="cover 5 pixels"):
        rle.normalise_counts([2, 3], 2, 3)
    with pytest.raises(rle.RLEError, match="invalid character"):
        rle.normalise_counts("ab~\x01", 2, 3)


@settings(max_examples=200, deadline=None)
@given(st.floats(-20, 120), st.floats(-20, 120), st.floats(0, 80), st.floats(0, 80), st.floats(0, 0.5))
def test_crop_window_contains_the_box_inside_the_image(
    x: float, y: float, w: float, h: float, pad: float
) -> None:
    window = crop_window((x, y, w, h), 100, 90, pad)
    if isinstance(window, str):
        assert window.startswith("degenerate box")
        return
    left, top, right, bottom = window
    assert 0 <= left < right <= 100 and 0 <= top < bottom <= 90
    assert right - left >= 2 and bottom - top >= 2
    assert left <= max(x, 0) + 1e-9 and top <= max(y, 0) + 1e-9
    assert right >= min(x + w, 100) - 1e-9 and bottom >= min(y + h, 90) - 1e-9


def test_halfvec_copy_rows_layout() -> None:
    vectors = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    data = halfvec_copy_rows(7, np.array([10, 11, 12]), vectors)
    row_len = 2 + 4 + 8 + 4 + 8 + 4 + 4 + 2 * 5
    assert len(data) == 3 * row_len
    row = data[row_len : 2 * row_len]
    assert int.from_bytes(row[0:2], "big") == 3
    assert int.from_bytes(row[6:14], "big") == 7 and int.from_bytes(row[18:26], "big") == 11
    assert int.from_bytes(row[30:32], "big") == 5
    np.testing.assert_array_equal(np.frombuffer(row[34:], dtype=">f2"), vectors[1].astype(np.float16))


def test_device_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from pgsearch.loader.models import pick_device

    monkeypatch.setenv("PGSEARCH_DEVICE", "cpu")
    assert pick_device() == "cpu"
    monkeypatch.delenv("PGSEARCH_DEVICE")
    assert pick_device() in ("cuda", "mps", "cpu")
    assert isinstance(PixelsEmbedder().preprocess, Preprocess)


def test_cli_default_model_is_the_loader_default() -> None:
    from pgsearch.commands.load import DEFAULT_MODEL as CLI_DEFAULT

    assert CLI_DEFAULT == DEFAULT_MODEL
