"""Small generated images and datasets for tests and demos: folders of images, COCO / YOLO / VOC
annotation files, metadata files, and hostile files (corrupt, truncated, empty, not an image,
decompression bomb, odd colour modes, EXIF rotation, animation).

Everything is deterministic in its seed, and every generator returns what it wrote, so tests
can compare the database with the truth instead of with the loader's own view of it.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

FORMAT_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}


def pattern(width: int, height: int, seed: int) -> Image.Image:
    """An RGB image with a colour gradient and a few rectangles and ellipses, unique per seed."""
    rng = random.Random(seed)
    y, x = np.mgrid[0:height, 0:width]
    c0 = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float64)
    c1 = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float64)
    t = ((x / max(width - 1, 1)) * 0.5 + (y / max(height - 1, 1)) * 0.5)[..., None]
    arr = (c0 * (1 - t) + c1 * t).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 5)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = (
            min(width, x0 + rng.randint(4, max(5, width // 2))),
            min(height, y0 + rng.randint(4, max(5, height // 2))),
        )
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)([x0, y0, x1, y1], fill=colour)
    return img


def save(img: Image.Image, path: Path, fmt: str | None = None, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {v: k for k, v in FORMAT_EXT.items()}.get(path.suffix.lower(), "PNG")
    if fmt == "JPEG" and "quality" not in kwargs:
        kwargs["quality"] = 90
    img.save(path, format=fmt, **kwargs)
    return path


@dataclass
class GeneratedImage:
    filename: str  # relative to the dataset root, POSIX
    width: int
    height: int
    seed: int


@dataclass
class Folder:
    root: Path
    images: list[GeneratedImage] = field(default_factory=list)

    @property
    def filenames(self) -> list[str]:
        return [g.filename for g in self.images]

    def by_name(self) -> dict[str, GeneratedImage]:
        return {g.filename: g for g in self.images}


def make_folder(
    root: Path,
    count: int = 6,
    *,
    seed: int = 0,
    sizes: tuple[tuple[int, int], ...] = ((64, 48), (40, 60)),
    formats: tuple[str, ...] = ("PNG", "JPEG"),
    subfolders: tuple[str, ...] = ("",),
    uppercase_ext: bool = False,
) -> Folder:
    """`count` generated images spread over sub-folders, cycling through sizes and formats."""
    folder = Folder(root)
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        fmt = formats[i % len(formats)]
        sub = subfolders[i % len(subfolders)]
        ext = FORMAT_EXT[fmt].upper() if uppercase_ext else FORMAT_EXT[fmt]
        rel = f"{sub}/img_{i:04d}{ext}" if sub else f"img_{i:04d}{ext}"
        save(pattern(w, h, seed * 100_003 + i), root / rel, fmt)
        folder.images.append(GeneratedImage(rel, w, h, seed * 100_003 + i))
    return folder


# --- annotation truth ---------------------------------------------------------------------------


@dataclass
class TruthShape:
    filename: str
    label: str
    kind: str  # bbox | polygon | mask | tag
    bbox: tuple[float, float, float, float] | None
    area: float | None
    attributes: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)


def random_box(
    rng: random.Random, width: int, height: int, min_side: int = 4
) -> tuple[float, float, float, float]:
    w = rng.randint(min_side, max(min_side, width // 2))
    h = rng.randint(min_side, max(min_side, height // 2))
    x = rng.randint(0, width - w)
    y = rng.randint(0, height - h)
    return float(x), float(y), float(w), float(h)


def rle_encode(mask: np.ndarray) -> list[int]:
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    runs: list[int] = []
    current, count = False, 0
    for v in flat:
        if bool(v) == current:
            count += 1
        else:
            runs.append(count)
            current, count = bool(v), 1
    runs.append(count)
    return runs


def rle_compress(counts: list[int]) -> str:
    """COCO's compressed string form (pycocotools' rleToString, transcribed)."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def make_coco(
    folder: Folder,
    path: Path,
    *,
    seed: int = 0,
    labels: tuple[str, ...] = ("cat", "dog", "car"),
    per_image: int = 3,
    kinds: tuple[str, ...] = ("bbox", "polygon", "rle", "rle_str"),
    file_name_prefix: str = "",
) -> tuple[dict[str, Any], list[TruthShape]]:
    """A COCO instances file for the folder's images, with boxes, polygons and RLE masks."""
    rng = random.Random(seed)
    categories = [{"id": i + 1, "name": name, "supercategory": "thing"} for i, name in enumerate(labels)]
    images, annotations, truth = [], [], []
    for image_id, g in enumerate(folder.images, start=1):
        images.append(
            {"id": image_id, "file_name": file_name_prefix + g.filename, "width": g.width, "height": g.height}
        )
        for k in range(per_image):
            cat = rng.randrange(len(labels))
            kind = kinds[(image_id + k) % len(kinds)]
            x, y, w, h = random_box(rng, g.width, g.height)
            ann: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": cat + 1,
                "iscrowd": 0,
            }
            if kind == "bbox":
                ann["bbox"] = [x, y, w, h]
                ann["area"] = w * h
                truth.append(TruthShape(g.filename, labels[cat], "bbox", (x, y, w, h), w * h, {"iscrowd": 0}))
            elif kind == "polygon":
                pts = [x, y, x + w, y, x + w / 2, y + h]  # a triangle
                ann["segmentation"] = [pts]
                ann["bbox"] = [x, y, w, h]
                truth.append(
                    TruthShape(
                        g.filename,
                        labels[cat],
                        "polygon",
                        (x, y, w, h),
                        w * h / 2,
                        {"iscrowd": 0},
                        {"points": [[x, y], [x + w, y], [x + w / 2, y + h]]},
                    )
                )
            else:
                mask = np.zeros((g.height, g.width), dtype=bool)
                mask[int(y) : int(y + h), int(x) : int(x + w)] = True
                mask[int(y), int(x)] = False  # not quite a rectangle
                counts = rle_encode(mask)
                ann["iscrowd"] = 1
                ann["segmentation"] = {
                    "size": [g.height, g.width],
                    "counts": rle_compress(counts) if kind == "rle_str" else counts,
                }
                ys, xs = np.nonzero(mask)
                box = (
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1),
                )
                truth.append(
                    TruthShape(
                        g.filename,
                        labels[cat],
                        "mask",
                        box,
                        float(mask.sum()),
                        {"iscrowd": 1},
                        {"rle": ann["segmentation"]},
                    )
                )
            annotations.append(ann)
    doc = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(json.dumps(doc))
    return doc, truth


def make_yolo(
    folder: Folder,
    labels_dir: Path,
    *,
    seed: int = 0,
    labels: tuple[str, ...] = ("cat", "dog"),
    per_image: int = 2,
    names_as: str = "classes.txt",
    polygons: bool = True,
) -> list[TruthShape]:
    """YOLO txt files mirroring the folder layout, plus classes.txt or data.yaml."""
    rng = random.Random(seed)
    labels_dir.mkdir(parents=True, exist_ok=True)
    if names_as == "classes.txt":
        (labels_dir / "classes.txt").write_text("\n".join(labels) + "\n")
    else:
        (labels_dir / "data.yaml").write_text(
            "names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(labels))
        )
    truth = []
    for i, g in enumerate(folder.images):
        lines = []
        for k in range(per_image):
            cls = rng.randrange(len(labels))
            x, y, w, h = random_box(rng, g.width, g.height)
            if polygons and (i + k) % 2:
                pts = [(x, y), (x + w, y), (x + w, y + h)]
                lines.append(
                    f"{cls} " + " ".join(f"{px / g.width:.6f} {py / g.height:.6f}" for px, py in pts)
                )
                xs = [round(px / g.width, 6) * g.width for px, _ in pts]
                ys = [round(py / g.height, 6) * g.height for _, py in pts]
                truth.append(
                    TruthShape(
                        g.filename,
                        labels[cls],
                        "polygon",
                        (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)),
                        w * h / 2,
                    )
                )
            else:
                lines.append(
                    f"{cls} {(x + w / 2) / g.width:.6f} {(y + h / 2) / g.height:.6f} "
                    f"{w / g.width:.6f} {h / g.height:.6f}"
                )
                truth.append(TruthShape(g.filename, labels[cls], "bbox", (x, y, w, h), w * h))
        target = labels_dir / (os.path.splitext(g.filename)[0] + ".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n")
    return truth


def voc_xml(
    filename: str,
    width: int,
    height: int,
    objects: list[tuple[str, tuple[float, float, float, float]]],
    folder: str = "images",
) -> str:
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x0:g}</xmin><ymin>{y0:g}</ymin><xmax>{x1:g}</xmax><ymax>{y1:g}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects
    )
    return (
        f"<annotation><folder>{folder}</folder><filename>{filename}</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>{objs}</annotation>"
    )


def make_voc(
    folder: Folder,
    xml_dir: Path,
    *,
    seed: int = 0,
    labels: tuple[str, ...] = ("person", "bike"),
    per_image: int = 2,
) -> list[TruthShape]:
    rng = random.Random(seed)
    xml_dir.mkdir(parents=True, exist_ok=True)
    truth = []
    for g in folder.images:
        objects = []
        for _ in range(per_image):
            x, y, w, h = random_box(rng, g.width, g.height)
            name = labels[rng.randrange(len(labels))]
            objects.append((name, (x, y, x + w, y + h)))
            truth.append(
                TruthShape(g.filename, name, "bbox", (x, y, w, h), w * h, {"difficult": 0, "truncated": 0})
            )
        stem = os.path.splitext(g.filename)[0].replace("/", "__")
        (xml_dir / f"{stem}.xml").write_text(voc_xml(g.filename, g.width, g.height, objects))
    return truth


def make_metadata(folder: Folder, path: Path, *, kind: str = "csv") -> dict[str, dict[str, Any]]:
    """Metadata rows for every image: status, groups, a number and a string column."""
    rows: dict[str, dict[str, Any]] = {}
    for i, g in enumerate(folder.images):
        rows[g.filename] = {
            "status": ["review", "to_fix", "completed"][i % 3],
            "groups": [f"split{i % 2}"],
            "score": i * 0.5,
            "camera": f"cam{i % 3}",
        }
    if kind == "csv":
        lines = ["filename,status,groups,score,camera"]
        lines += [
            f"{f},{r['status']},{';'.join(r['groups'])},{r['score']},{r['camera']}" for f, r in rows.items()
        ]
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text("".join(json.dumps({"filename": f, **r}) + "\n" for f, r in rows.items()))
    return rows


# --- hostile and odd files ----------------------------------------------------------------------


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims width x height (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + type of IHDR
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def make_hostile(root: Path) -> dict[str, str]:
    """Bad files: filename -> the start of the reason the loader must record."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_bytes(b"this is a text file, not a JPEG\n" * 4)
    (root / "random.webp").write_bytes(bytes(random.Random(1).randrange(256) for _ in range(3000)))
    good = io.BytesIO()
    pattern(64, 64, 5).save(good, "JPEG", quality=90)
    (root / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (root / "bomb.png").write_bytes(_png_with_size(40_000, 40_000))
    return {
        "empty.png": "empty file",
        "notes.jpg": "not an image",
        "random.webp": "not an image",
        "truncated.jpg": "corrupt image",
        "bomb.png": "image too large",
    }


def make_odd_modes(root: Path) -> dict[str, tuple[int, int]]:
    """Decodable but unusual files: filename -> (width, height) after EXIF orientation."""
    root.mkdir(parents=True, exist_ok=True)
    base = pattern(48, 32, 9)
    save(base.convert("CMYK"), root / "cmyk.jpg", "JPEG")
    arr16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(arr16).save(root / "gray16.png")
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(root / "palette.png", transparency=0)
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "alpha.png")
    base.convert("LA").save(root / "gray_alpha.png")
    base.convert("1").save(root / "bilevel.bmp")
    save(base, root / "tiff.TIFF", "TIFF")
    frames = [pattern(30, 20, s) for s in (1, 2, 3)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed: 48x32 stored -> 32x48 shown
    base.save(root / "rotated.jpg", "JPEG", exif=exif.tobytes())
    return {
        "cmyk.jpg": (48, 32),
        "gray16.png": (48, 32),
        "palette.png": (48, 32),
        "alpha.png": (48, 32),
        "gray_alpha.png": (48, 32),
        "bilevel.bmp": (48, 32),
        "tiff.TIFF": (48, 32),
        "anim.gif": (30, 20),
        "rotated.jpg": (32, 48),
    }
