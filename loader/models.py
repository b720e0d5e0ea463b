"""Embedding models behind one interface, chosen by a spec string (stored as the model's name).

Specs:

- `openclip:ARCH[:PRETRAINED]`: an open_clip architecture (`ViT-B-16`, `ViT-B-32`, ...) with
  PRETRAINED one of open_clip's tags for it (`datacomp_xl_s13b_b90k`, `openai`, ...), a local
  weights file, or `random` (random init: for tests and benchmarks; its vectors mean nothing).
  Without PRETRAINED the architecture's first tag is used. `openclip:pgsearch-tiny:random` is
  a 2-layer 64x64 ViT registered by pgsearch for smoke tests.
- `timm:NAME[:random|:FILE]`: an image-only timm model (e.g. `timm:vit_small_patch14_dinov2.lvd142m`),
  pooled features (num_classes=0).
- `pixels`: no weights at all; see `PixelsEmbedder`.

Every embedder returns L2-normalised float32 rows. Preprocessing (`Preprocess`) is plain PIL +
numpy and picklable, so decoding worker processes produce model-ready uint8 arrays without torch.

For the query layer: `get_embedder(name)` with the `embedding_models.name` stored for a space
returns the embedder that produced its vectors; `embed_images` / `embed_texts` embed queries.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from pgsearch.loader.defaults import DEFAULT_MODEL as DEFAULT_MODEL  # noqa: E402  (defined once, there)
from pgsearch.loader.errors import ModelError, ModelUnavailable, TextNotSupported

TINY_ARCH = "pgsearch-tiny"
NETWORK_TIMEOUT_S = 3.0

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocess:
    """PIL image -> uint8 array (height, width, 3) at the model's input size.

    resize_mode 'shortest': the shorter side becomes `resize_to` (default: the output size) and
    the centre is cropped, as torchvision's Resize(int) + CenterCrop do; 'squash': resized to
    the output size ignoring the aspect ratio; 'longest': the longer side fits, padded with `fill`.
    """

    height: int
    width: int
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    resize_to: int | None = None
    fill: int = 0

    def __call__(self, img: Image.Image) -> np.ndarray:
        if img.mode != "RGB":
            img = img.convert("RGB")
        resample = _RESAMPLE.get(self.interpolation, Image.Resampling.BICUBIC)
        if self.resize_mode == "squash":
            out = img.resize((self.width, self.height), resample)
        elif self.resize_mode == "longest":
            scale = min(self.width / img.width, self.height / img.height)
            w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
            resized = img.resize((w, h), resample)
            out = Image.new("RGB", (self.width, self.height), (self.fill,) * 3)
            out.paste(resized, ((self.width - w) // 2, (self.height - h) // 2))
        else:
            target = self.resize_to or min(self.height, self.width)
            w, h = img.size
            # torchvision's _compute_resized_output_size for an int size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = target, int(target * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            if (new_w, new_h) != (w, h):
                img = img.resize((new_w, new_h), resample)
            out = _center_crop(img, self.height, self.width, self.fill)
        return np.asarray(out, dtype=np.uint8)


def _center_crop(img: Image.Image, height: int, width: int, fill: int) -> Image.Image:
    if img.width < width or img.height < height:  # torchvision pads before cropping
        padded = Image.new("RGB", (max(width, img.width), max(height, img.height)), (fill,) * 3)
        padded.paste(img, ((padded.width - img.width) // 2, (padded.height - img.height) // 2))
        img = padded
    top = int(round((img.height - height) / 2.0))
    left = int(round((img.width - width) / 2.0))
    return img.crop((left, top, left + width, top + height))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


class Embedder:
    """An embedding model: `embed_images`, `embed_texts`, `dim`, `name`, `has_text`."""

    name: str
    dim: int
    has_text: bool = False
    preprocess: Preprocess
    # Said to the user once when the model is used (random weights).
    warning: str | None = None
    device: str = "cpu"
    batch_size: int = 32

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 from `preprocess` -> (N, dim) float32, L2-normalised."""
        raise NotImplementedError

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            arrays = np.stack([self.preprocess(img) for img in images[start : start + self.batch_size]])
            out.append(self.embed_arrays(arrays))
        return np.concatenate(out)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise TextNotSupported(
            f"model {self.name} embeds images only; text search needs a model with a text tower, "
            "e.g. openclip:ViT-B-16:datacomp_xl_s13b_b90k"
        )

    def config(self) -> dict[str, Any]:
        return {"preprocess": asdict(self.preprocess), "device": self.device}


class PixelsEmbedder(Embedder):
    """A model-free embedder of 256 dims: colour layout plus colour histogram.

    It captures what the pixels look like, not what they show: the image squashed to 32x32,
    (a) the mean RGB colour of each cell of an 8x8 grid (192 values: the coarse layout, e.g. a
    blue sky over green grass) and (b) a 4x4x4 RGB histogram (64 values, square-rooted: the
    colour palette regardless of where). Each part is normalised and weighted equally.
    Near-duplicates, recolourings and scenes of similar layout come out close; objects do not.
    """

    def __init__(self) -> None:
        self.name = "pixels"
        self.dim = 256
        self.preprocess = Preprocess(32, 32, resize_mode="squash", interpolation="box")
        self.batch_size = 256

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, dtype=np.uint8)
        n = x.shape[0]
        layout = (
            x.reshape(n, 8, 4, 8, 4, 3).astype(np.float64).mean(axis=(2, 4)).reshape(n, 192) / 255.0 - 0.5
        )
        bins = (x >> 6).astype(np.int64)  # 4 levels per channel
        codes = (bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]).reshape(n, -1)
        hist = np.zeros((n, 64), dtype=np.float64)
        np.add.at(hist, (np.repeat(np.arange(n), codes.shape[1]), codes.ravel()), 1.0)
        hist = np.sqrt(hist / codes.shape[1])
        parts = []
        for part in (layout, hist):
            norm = np.linalg.norm(part, axis=1, keepdims=True)
            parts.append(np.divide(part, norm, out=np.zeros_like(part), where=norm > 0) * math.sqrt(0.5))
        return l2_normalise(np.concatenate(parts, axis=1))


def pick_device() -> str:
    """$PGSEARCH_DEVICE, else cuda, else mps, else cpu."""
    forced = os.environ.get("PGSEARCH_DEVICE")
    if forced:
        return forced
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


@contextlib.contextmanager
def _seeded() -> Iterator[None]:
    """Random init from a fixed seed, so `...:random` is the same model in every process (the query
    layer re-creates it to embed queries) without disturbing the caller's RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    # open_clip logs "No pretrained weights loaded" on the root logger; we warn in our own words.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class TorchEmbedder(Embedder):
    """Shared forward pass: uint8 -> float, normalise with mean/std, half precision on a GPU."""

    def __init__(
        self,
        name: str,
        model: Any,
        preprocess: Preprocess,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        dim: int,
        device: str,
    ) -> None:
        import torch

        self.name = name
        self.dim = dim
        self.preprocess = preprocess
        self.device = device
        self.half = device.startswith("cuda") or device.startswith("mps")
        self.model = model.to(device).eval()
        if self.half:
            self.model = self.model.half()
        dtype = torch.float16 if self.half else torch.float32
        self._mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0
        self._dtype = dtype

    def _forward(self, pixels: Any) -> Any:
        raise NotImplementedError

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float()
            # ToTensor (x / 255) then Normalize((x - mean) / std), folded into one step
            x = ((x - self._mean) / self._std).to(self._dtype)
            out = self._forward(x).float().cpu().numpy()
        return l2_normalise(out)


class OpenClipEmbedder(TorchEmbedder):
    def __init__(self, name: str, arch: str, weights: str, device: str) -> None:
        import open_clip

        pretrained = None if weights == "random" else weights
        try:
            with _quiet_logging(), _seeded():
                model = open_clip.create_model(arch, pretrained=pretrained, device="cpu")
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            raise ModelUnavailable(
                f"{name}: cannot build the model: {str(exc).splitlines()[0][:300]}"
            ) from None
        cfg = dict(model.visual.preprocess_cfg)
        size = cfg.get("size", 224)
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        preprocess = Preprocess(
            int(height),
            int(width),
            resize_mode=cfg.get("resize_mode", "shortest"),
            interpolation=cfg.get("interpolation", "bicubic"),
            fill=int(cfg.get("fill_color", 0)),
        )
        dim = (
            int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None else 0
        )
        super().__init__(name, model, preprocess, tuple(cfg["mean"]), tuple(cfg["std"]), dim, device)
        if not self.dim:
            self.dim = int(self.embed_arrays(np.zeros((1, height, width, 3), np.uint8)).shape[1])
        self.has_text = True
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.arch, self.weights = arch, weights
        if weights == "random":
            self.warning = (
                f"{name}: randomly initialised weights; its embeddings are meaningless "
                "(use it for tests and benchmarks only)"
            )

    def _forward(self, pixels: Any) -> Any:
        return self.model.encode_image(pixels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            out = self.model.encode_text(tokens).float().cpu().numpy()
        return l2_normalise(out)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "kind": "openclip", "arch": self.arch, "weights": self.weights}


class TimmEmbedder(TorchEmbedder):
    def __init__(self, name: str, arch: str, weights: str, device: str) -> None:
        import timm
        from timm.data import resolve_data_config

        kwargs: dict[str, Any] = {"num_classes": 0}
        if weights == "random":
            kwargs["pretrained"] = False
        elif weights == "default":
            kwargs["pretrained"] = True
        else:
            kwargs["pretrained"] = True
            kwargs["pretrained_cfg_overlay"] = {"file": weights}
        try:
            with _quiet_logging(), _seeded():
                model = timm.create_model(arch, **kwargs)
        except (RuntimeError, FileNotFoundError, OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"{name}: cannot build the model: {str(exc).splitlines()[0][:300]}"
            ) from None
        cfg = resolve_data_config({}, model=model)
        _, height, width = cfg["input_size"]
        crop_pct = float(cfg.get("crop_pct") or 1.0)
        mode = cfg.get("crop_mode") or "center"
        preprocess = Preprocess(
            int(height),
            int(width),
            resize_mode="squash" if mode == "squash" else "shortest",
            interpolation=str(cfg.get("interpolation", "bicubic")),
            resize_to=math.floor(min(height, width) / crop_pct),
        )
        super().__init__(
            name,
            model,
            preprocess,
            tuple(cfg["mean"]),
            tuple(cfg["std"]),
            int(model.num_features),
            device,  # type: ignore[arg-type]
        )
        self.arch, self.weights = arch, weights
        if weights == "random":
            self.warning = f"{name}: randomly initialised weights; its embeddings are meaningless"

    def _forward(self, pixels: Any) -> Any:
        return self.model(pixels)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "kind": "timm", "arch": self.arch, "weights": self.weights}


# --- specs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # openclip | timm | pixels
    arch: str = ""
    weights: str = ""  # tag, file path, 'random', or 'default' (timm)

    @property
    def name(self) -> str:
        if self.kind == "pixels":
            return "pixels"
        if self.kind == "external":
            return f"external:{self.arch}"
        return (
            f"{self.kind}:{self.arch}:{self.weights}"
            if self.weights and self.weights != "default"
            else f"{self.kind}:{self.arch}"
        )

    @property
    def has_text(self) -> bool:
        return self.kind == "openclip"


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def parse_spec(spec: str) -> ModelSpec:
    """Checks a model spec without building anything; ModelError says what is wrong."""
    text = spec.strip()
    if text == "pixels":
        return ModelSpec("pixels")
    kind, sep, rest = text.partition(":")
    if kind == "external" and rest:
        return ModelSpec("external", rest)
    if kind not in ("openclip", "timm") or not sep or not rest:
        raise ModelError(
            f"unknown model {spec!r}: expected openclip:ARCH[:PRETRAINED] (PRETRAINED: an open_clip tag, "
            "a weights file or 'random'), timm:NAME[:random|:FILE], or pixels"
        )
    _require_models_extra(kind)
    if kind == "openclip" and rest.startswith("hf-hub:"):
        return ModelSpec("openclip", rest, "")
    arch, _, weights = rest.partition(":")
    if not arch:
        raise ModelError(f"{spec!r}: missing the architecture name")
    if kind == "timm":
        return ModelSpec("timm", arch, weights or "default")
    _register_tiny()
    import open_clip

    if arch not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(arch, open_clip.list_models(), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ModelError(f"{spec!r}: open_clip has no architecture {arch!r}{hint}")
    if not weights:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if not tags:
            raise ModelError(f"{spec!r}: {arch} has no published weights; say :random or give a weights file")
        weights = tags[0]
    if weights != "random" and _looks_like_path(weights):
        path = os.path.abspath(os.path.expanduser(weights))
        if not os.path.isfile(path):
            raise ModelUnavailable(f"{spec!r}: weights file {weights} does not exist")
        weights = path
    elif weights != "random" and not open_clip.get_pretrained_cfg(arch, weights):
        if os.path.isfile(weights):
            return ModelSpec("openclip", arch, os.path.abspath(weights))
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelError(
            f"{spec!r}: {weights!r} is neither a pretrained tag of {arch} nor a weights file; "
            f"tags: {', '.join(tags) if tags else 'none'}; or 'random'"
        )
    return ModelSpec("openclip", arch, weights)


def _require_models_extra(kind: str) -> None:
    """open_clip and timm models need torch, which the base install leaves out: say so plainly."""
    import importlib.util

    needed = ("torch", "torchvision", "open_clip") if kind == "openclip" else ("torch", "timm")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelUnavailable(
            f"{kind} models need {', '.join(missing)}, which are not installed: "
            "pip install 'pgsearch[models]' (or use --model pixels, which needs no weights)"
        )


def _register_tiny() -> None:
    import open_clip
    from open_clip import factory

    if TINY_ARCH not in factory._MODEL_CONFIGS:
        factory._MODEL_CONFIGS[TINY_ARCH] = {
            "embed_dim": 64,
            "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
        }
    assert TINY_ARCH in open_clip.list_models()


def _offline_flag() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=NETWORK_TIMEOUT_S):
            return True
    except OSError:
        return False


def _how_to_supply(spec: ModelSpec) -> str:
    if spec.kind == "openclip":
        fetch = f"python -c \"import open_clip; open_clip.create_model('{spec.arch}', pretrained='{spec.weights}')\""
        file_hint = f"--model openclip:{spec.arch}:/path/to/open_clip_pytorch_model.bin"
    else:
        fetch = f"python -c \"import timm; timm.create_model('{spec.arch}', pretrained=True)\""
        file_hint = f"--model timm:{spec.arch}:/path/to/weights.safetensors"
    return (
        "supply the weights one of these ways: (1) run once where there is network "
        f"({fetch}) and copy the Hugging Face cache (~/.cache/huggingface, or $HF_HOME) here; "
        f"(2) give a local weights file: {file_hint}; (3) load with --model pixels, or bring vectors "
        "with --embeddings FILE"
    )


def _resolve_openclip_weights(spec: ModelSpec) -> str:
    """A local file for a pretrained tag (from the cache), the tag itself when it can be downloaded,
    or ModelUnavailable at once: open_clip would retry the hub for about 45 s before failing."""
    if spec.weights == "random" or os.path.isfile(spec.weights):
        return spec.weights
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.weights)
    if "file" in cfg:
        return str(cfg["file"])
    hf_hub = cfg.get("hf_hub", "")
    url = cfg.get("url", "")
    if hf_hub:
        model_id, filename = os.path.split(hf_hub)
        filename = filename or "open_clip_pytorch_model.bin"
        cached = _hf_cached(model_id, filename)
        if cached:
            return cached
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    else:
        cached_url = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        if url and os.path.isfile(cached_url):
            return cached_url
        endpoint = url
    if _offline_flag():
        raise ModelUnavailable(
            f"{spec.name}: the weights are not in the local cache and HF_HUB_OFFLINE is set; "
            + _how_to_supply(spec)
        )
    if not _reachable(endpoint):
        host = urlparse(endpoint).hostname
        raise ModelUnavailable(
            f"{spec.name}: the weights are not in the local cache and {host} cannot be reached; "
            + _how_to_supply(spec)
        )
    return spec.weights


def _hf_cached(model_id: str, filename: str) -> str | None:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    candidates = [filename]
    if filename.endswith((".bin", ".pth")):
        candidates.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
    for name in candidates:
        try:
            return str(hf_hub_download(repo_id=model_id, filename=name, local_files_only=True))
        except Exception:  # not cached: LocalEntryNotFoundError and friends
            continue
    return None


def _check_timm_weights(spec: ModelSpec) -> None:
    if spec.weights != "default":
        if spec.weights != "random" and not os.path.isfile(spec.weights):
            raise ModelUnavailable(f"{spec.name}: weights file {spec.weights} does not exist")
        return
    import timm

    if not timm.is_model(spec.arch.split(".")[0]):
        raise ModelError(f"{spec.name}: timm has no model {spec.arch!r}")
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.arch)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        model_id = hub_id.split("@")[0]
        if _hf_cached(model_id, "model.safetensors") or _hf_cached(model_id, "pytorch_model.bin"):
            return
    if _offline_flag() or not _reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co")):
        raise ModelUnavailable(
            f"{spec.name}: the weights are not in the local cache and cannot be downloaded "
            "here; " + _how_to_supply(spec)
        )


@functools.lru_cache(maxsize=4)
def get_embedder(spec: str, device: str | None = None) -> Embedder:
    """The embedder for a model spec or a stored `embedding_models.name` (cached per process)."""
    parsed = parse_spec(spec)
    if parsed.kind == "pixels":
        return PixelsEmbedder()
    if parsed.kind == "external":
        raise ModelUnavailable(
            f"model {parsed.name} holds vectors brought with --embeddings; it cannot embed new images or "
            "queries: load more vectors with --embeddings, or embed the dataset with a model (--model)"
        )
    chosen = device or pick_device()
    if parsed.kind == "openclip":
        _register_tiny()
        weights = parsed.weights
        if not parsed.arch.startswith("hf-hub:"):
            weights = _resolve_openclip_weights(parsed)
        embedder: Embedder = OpenClipEmbedder(parsed.name, parsed.arch, weights, chosen)
        if weights != parsed.weights:  # a cached file stands in for the tag; the name stays the tag
            embedder.weights = parsed.weights  # type: ignore[attr-defined]
        return embedder
    _check_timm_weights(parsed)
    return TimmEmbedder(parsed.name, parsed.arch, parsed.weights, chosen)


def warn(embedder: Embedder, quiet: bool = False) -> None:
    if embedder.warning:
        print(f"warning: {embedder.warning}", file=sys.stderr)


# The name the query layer uses.
load_embedder = get_embedder
