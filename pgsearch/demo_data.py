"""A small synthetic dataset for `pgsearch demo`: drawn scenes with COCO boxes and metadata.

Scenes are parks (green, squirrels and birds), roads (grey, cars with wheels) and skies (blue,
birds), drawn with Pillow so the demo needs no download and the model-free `pixels` embedder
finds meaningful neighbours (scene colour and layout).
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

CATEGORIES = ("squirrel", "bird", "car", "wheels", "traffic light")
SCENES = {
    "park": ((70, 140, 60), (120, 190, 90)),
    "road": ((95, 95, 100), (150, 150, 155)),
    "sky": ((90, 150, 230), (190, 220, 250)),
}


@dataclass
class DemoImage:
    filename: str
    width: int
    height: int
    scene: str
    boxes: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)


def _background(draw: ImageDraw.ImageDraw, width: int, height: int, scene: str, rng: random.Random) -> None:
    top, bottom = SCENES[scene]
    jitter = rng.randint(-20, 20)
    for y in range(height):
        t = y / max(1, height - 1)
        colour = tuple(
            max(0, min(255, int(a + (b - a) * t) + jitter)) for a, b in zip(top, bottom, strict=True)
        )
        draw.line([(0, y), (width, y)], fill=colour)


def _place(width: int, height: int, w: int, h: int, rng: random.Random) -> tuple[int, int]:
    return rng.randint(0, max(0, width - w)), rng.randint(0, max(0, height - h))


def _squirrel(img: DemoImage, draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    w, h = rng.randint(30, 70), rng.randint(30, 60)
    x, y = _place(img.width, img.height, w + w // 2, h, rng)
    brown = (120 + rng.randint(-20, 20), 70, 30)
    draw.ellipse([x, y + h // 3, x + w, y + h], fill=brown)
    draw.ellipse([x + w - w // 4, y, x + w + w // 2, y + h // 2], fill=brown)
    img.boxes.append(("squirrel", (x, y, w + w // 2, h)))


def _bird(img: DemoImage, draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    w, h = rng.randint(20, 50), rng.randint(12, 30)
    x, y = _place(img.width, img.height, w, h, rng)
    draw.polygon(
        [(x, y + h // 2), (x + w // 2, y), (x + w, y + h // 2), (x + w // 2, y + h)], fill=(30, 30, 40)
    )
    img.boxes.append(("bird", (x, y, w, h)))


def _car(img: DemoImage, draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    w, h = rng.randint(80, 160), rng.randint(40, 70)
    x, y = _place(img.width, img.height, w, h + h // 3, rng)
    colour = rng.choice([(200, 30, 30), (30, 60, 200), (230, 200, 40), (240, 240, 240)])
    draw.rectangle([x, y, x + w, y + h], fill=colour)
    img.boxes.append(("car", (x, y, w, h + h // 3)))
    r = h // 3
    for cx in (x + w // 5, x + w - w // 5) + ((x + w // 2,) if rng.random() < 0.3 else ()):
        draw.ellipse([cx - r, y + h - r, cx + r, y + h + r], fill=(15, 15, 15))
        img.boxes.append(("wheels", (cx - r, y + h - r, 2 * r, 2 * r)))


def _traffic_light(img: DemoImage, draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    w, h = rng.randint(14, 22), rng.randint(40, 60)
    x, y = _place(img.width, img.height, w, h, rng)
    draw.rectangle([x, y, x + w, y + h], fill=(20, 20, 20))
    for i, colour in enumerate([(220, 30, 30), (230, 200, 30), (40, 200, 60)]):
        cy = y + h * (2 * i + 1) // 6
        draw.ellipse([x + 3, cy - w // 2 + 3, x + w - 3, cy + w // 2 - 3], fill=colour)
    img.boxes.append(("traffic light", (x, y, w, h)))


DRAWERS = {
    "park": [(_squirrel, 0.9, 4), (_bird, 0.5, 2)],
    "road": [(_car, 0.9, 2), (_traffic_light, 0.4, 1)],
    "sky": [(_bird, 0.9, 5)],
}


def generate(root: Path, n: int = 120, seed: int = 7) -> tuple[Path, Path, Path]:
    """Writes `n` images under root/images, root/annotations.json (COCO) and root/metadata.csv.

    Returns (images folder, annotation file, metadata file)."""
    rng = random.Random(seed)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    made: list[DemoImage] = []
    for i in range(n):
        scene = rng.choice(list(SCENES))
        width, height = rng.choice([(320, 240), (400, 300), (480, 320), (640, 480), (300, 400)])
        img = DemoImage(f"{scene}_{i:04d}.jpg", width, height, scene)
        picture = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(picture)
        _background(draw, width, height, scene, rng)
        for drawer, chance, most in DRAWERS[scene]:
            if rng.random() < chance:
                for _ in range(rng.randint(1, most)):
                    drawer(img, draw, rng)
        picture.save(images_dir / img.filename, quality=90)
        made.append(img)
    annotations = root / "annotations.json"
    annotations.write_text(json.dumps(_coco(made)))
    metadata = root / "metadata.csv"
    with metadata.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "status", "groups", "scene", "camera"])
        for i, img in enumerate(made):
            groups = ["dataset1" if i % 2 == 0 else "dataset2"] + (["train"] if i % 5 else ["val"])
            status = rng.choice(["annotated", "annotated", "review", "to_fix", "completed"])
            writer.writerow(
                [img.filename, status, ";".join(groups), img.scene, rng.choice(["cam-a", "cam-b"])]
            )
    return images_dir, annotations, metadata


def _coco(images: list[DemoImage]) -> dict[str, object]:
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CATEGORIES)]
    ids = {name: i + 1 for i, name in enumerate(CATEGORIES)}
    coco_images: list[dict[str, object]] = []
    coco_annotations: list[dict[str, object]] = []
    for image_id, img in enumerate(images, start=1):
        coco_images.append(
            {"id": image_id, "file_name": img.filename, "width": img.width, "height": img.height}
        )
        for label, (x, y, w, h) in img.boxes:
            x0, y0 = max(0.0, x), max(0.0, y)
            w = min(w, img.width - x0)
            h = min(h, img.height - y0)
            coco_annotations.append(
                {
                    "id": len(coco_annotations) + 1,
                    "image_id": image_id,
                    "category_id": ids[label],
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {"images": coco_images, "annotations": coco_annotations, "categories": categories}
