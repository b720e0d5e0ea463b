"""Decoding one image file into facts (hash, size, format, oriented width/height) and RGB pixels.

Everything that can go wrong with a file becomes a short reason string instead of an exception,
so a bad asset is recorded (assets.load_error, embedding state 'failed') and the load goes on.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pgsearch.loader.errors import LoadInputError, printable
from pgsearch.loader.scan import FileRefused, read_regular

# Decompression-bomb guard: a 40 kB PNG can claim 50,000 x 50,000 pixels and need 7 GB to decode.
DEFAULT_MAX_PIXELS = 100_000_000
# Files beyond this are refused before reading them into memory.
MAX_FILE_BYTES = 1 << 30

ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class ImageFacts:
    """What the assets row records about a file; `error` is set when it could not be decoded."""

    content_hash: str | None
    size: int | None
    format: str | None
    width: int | None
    height: int | None
    error: str | None = None


class DecodeFailure(Exception):
    """A file that is not a usable image; str() is the reason stored for it."""


class ImageUnreadable(LoadInputError):
    """An image given directly by the user (a query image) cannot be decoded."""


def read_file(path: str, *, follow_symlinks: bool = True) -> bytes:
    """The file's bytes, read only if it is a regular file of at most MAX_FILE_BYTES (scan.py's
    read_regular); DecodeFailure with the reason otherwise. The loader's workers pass
    follow_symlinks=False: scan.py resolved every link it follows, so a link left is one that
    leads outside the load folder."""
    try:
        return read_regular(path, MAX_FILE_BYTES, follow_symlinks=follow_symlinks)
    except FileRefused as exc:
        raise DecodeFailure(str(exc)) from None
    except FileNotFoundError:
        raise DecodeFailure("file not found") from None
    except IsADirectoryError:
        raise DecodeFailure("not a file") from None
    except OSError as exc:
        raise DecodeFailure(f"cannot read file ({exc.strerror or exc})") from None


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: alpha composited on white, 16-bit and float rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and arr.min() >= 0 and arr.max() <= 65535):
            scaled = arr / 257.0
        else:  # 32-bit int or float: stretch what is there
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        gray = Image.fromarray(np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8), "L")
        return gray.convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, str]:
    """(RGB image after EXIF orientation, lower-case format name); DecodeFailure with the reason."""
    if not data:
        raise DecodeFailure("empty file (0 bytes)")
    with warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; we refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            img: Image.Image = Image.open(io.BytesIO(data))
            fmt = (img.format or "unknown").lower()
            width, height = img.size
            if width * height > max_pixels:
                raise DecodeFailure(_too_large(width, height, max_pixels))
            img.seek(0)  # first frame of an animation
            img.load()
            try:
                img = ImageOps.exif_transpose(img) or img
            except Exception:  # a broken EXIF block must not cost the image
                pass
            rgb = to_rgb(img)
        except DecodeFailure:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            size = _claimed_size(data)
            raise DecodeFailure(
                _too_large(*size, max_pixels) if size else "image too large (decompression bomb guard)"
            ) from None
        except UnidentifiedImageError:
            raise DecodeFailure("not an image (unrecognised file format)") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
            raise DecodeFailure(f"corrupt image ({_short(exc)})") from None
        except MemoryError:
            raise DecodeFailure("image too large (out of memory while decoding)") from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    return rgb, fmt


def _claimed_size(data: bytes) -> tuple[int, int] | None:
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(data)).size
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return (
        f"image too large ({width}x{height} px = {width * height / 1e6:.0f} MP, "
        f"limit {max_pixels / 1e6:.0f} MP; decompression bomb guard)"
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # The reason is stored in assets.load_error (text): a decoder's message may quote bytes of
    # the file, and a NUL or a lone surrogate there would fail the batch's COPY.
    return printable(text[:200])


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ImageFacts, Image.Image | None]:
    """Facts and RGB pixels of the file at `path`; pixels None (and facts.error set) when unusable."""
    try:
        data = read_file(path)
    except DecodeFailure as exc:
        return ImageFacts(None, None, None, None, None, str(exc)), None
    digest, size = content_hash(data), len(data)
    try:
        rgb, fmt = decode(data, max_pixels)
    except DecodeFailure as exc:
        return ImageFacts(digest, size, None, None, None, str(exc)), None
    return ImageFacts(digest, size, fmt, rgb.width, rgb.height), rgb


def open_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The RGB pixels of an image file exactly as the loader embeds them (EXIF orientation, modes);
    ImageUnreadable (a PgsearchError) says why a file cannot be used."""
    facts, img = load_image(os.fspath(path), max_pixels)
    if img is None:
        raise ImageUnreadable(f"{os.fspath(path)}: {facts.error}")
    return img
