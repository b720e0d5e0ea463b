"""Malformed annotation, metadata and embeddings files: refused before anything is written, with
the file and the location in the message; --skip-bad-annotations drops the bad entries instead."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from imagegen import Folder, make_coco, make_folder, make_voc, make_yolo

from pgsearch.cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["load", *args, "--workers", "0", "--no-embed"], catch_exceptions=False)


def nothing_written(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM pgsearch.datasets").fetchone()[0] == 0


@pytest.fixture
def coco(tmp_path: Path) -> tuple[Folder, dict[str, Any]]:
    folder = make_folder(tmp_path / "images", 3, sizes=((640, 480),), formats=("PNG",))
    doc, _ = make_coco(folder, tmp_path / "good.json", kinds=("bbox", "polygon", "rle"), per_image=3)
    return folder, doc


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _first_of_kind(doc: dict[str, Any], kind: str) -> int:
    for i, ann in enumerate(doc["annotations"]):
        seg = ann.get("segmentation")
        if (
            kind == "rle"
            and isinstance(seg, dict)
            or kind == "polygon"
            and isinstance(seg, list)
            or kind == "bbox"
            and seg is None
        ):
            return i
    raise AssertionError(kind)


COCO_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing images", lambda d: d.pop("images"), "coco.json: missing key 'images'"),
    ("categories not a list", _set(["categories"], {}), "coco.json: categories: expected a list"),
    (
        "annotation without category",
        lambda d: d["annotations"][4].pop("category_id"),
        "coco.json: annotations[4]: missing key 'category_id'",
    ),
    (
        "unknown image id",
        _set(["annotations", 2, "image_id"], 99),
        "coco.json: annotations[2].image_id: unknown image id 99",
    ),
    (
        "unknown category id",
        _set(["annotations", 1, "category_id"], 42),
        "coco.json: annotations[1].category_id: unknown category id 42",
    ),
    (
        "box past the right edge",
        _set(["annotations", 0, "bbox"], [600, 10, 100, 20]),
        "coco.json: annotations[0].bbox: x+width 700 exceeds image width 640",
    ),
    (
        "box past the bottom",
        _set(["annotations", 0, "bbox"], [0, 470, 10, 20]),
        "coco.json: annotations[0].bbox: y+height 490 exceeds image height 480",
    ),
    (
        "negative width",
        _set(["annotations", 0, "bbox"], [10, 10, -5, 20]),
        "annotations[0].bbox: width -5 is negative",
    ),
    (
        "negative x",
        _set(["annotations", 0, "bbox"], [-3, 10, 5, 20]),
        "annotations[0].bbox: x -3 is negative",
    ),
    (
        "bbox not 4 numbers",
        _set(["annotations", 0, "bbox"], [1, 2, 3]),
        "annotations[0].bbox: expected [x, y, width, height]",
    ),
    (
        "image not on disk",
        _set(["images", 1, "file_name"], "nope.png"),
        "coco.json: images[1].file_name: 'nope.png' is not among the 3 images",
    ),
    ("duplicate image id", _set(["images", 1, "id"], 1), "coco.json: images[1].id: duplicate image id 1"),
    (
        "non-positive image size",
        _set(["images", 0, "width"], 0),
        "coco.json: images[0]: width and height must be positive",
    ),
    (
        "odd polygon",
        lambda d: d["annotations"][_first_of_kind(d, "polygon")]["segmentation"][0].pop(),
        "needs an even count of at least 6 numbers",
    ),
    (
        "polygon point outside",
        lambda d: d["annotations"][_first_of_kind(d, "polygon")]["segmentation"][0].__setitem__(0, 900),
        "x 900 exceeds image width 640",
    ),
    (
        "rle size mismatch",
        lambda d: d["annotations"][_first_of_kind(d, "rle")]["segmentation"].__setitem__("size", [10, 10]),
        "does not match the image's 480x640",
    ),
    (
        "rle counts too short",
        lambda d: d["annotations"][_first_of_kind(d, "rle")]["segmentation"]["counts"].pop(),
        "counts cover",
    ),
    ("iscrowd not 0/1", _set(["annotations", 0, "iscrowd"], 7), "annotations[0].iscrowd: expected 0 or 1"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), COCO_CASES, ids=[c[0] for c in COCO_CASES])
def test_coco_rejections(
    conn: psycopg.Connection,
    tmp_path: Path,
    coco: tuple[Folder, dict[str, Any]],
    case: str,
    mutate: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    _, doc = coco
    bad = copy.deepcopy(doc)
    mutate(bad)
    (tmp_path / "coco.json").write_text(json.dumps(bad))
    result = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "coco.json"), "--format", "coco")
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert nothing_written(conn)


def test_broken_json_names_line_and_column(conn: psycopg.Connection, tmp_path: Path, coco: Any) -> None:
    (tmp_path / "coco.json").write_text('{"images": [\n  {"id": 1,, }\n]}')
    result = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "coco.json"), "--format", "coco")
    assert result.exit_code != 0
    assert "coco.json: line 2 column 12: invalid JSON" in result.output
    assert nothing_written(conn)


def test_skip_bad_annotations_drops_and_reports(conn: psycopg.Connection, tmp_path: Path, coco: Any) -> None:
    _, doc = coco
    bad = copy.deepcopy(doc)
    bad["annotations"][0]["bbox"] = [600, 10, 100, 20]
    bad["annotations"][1]["category_id"] = 42
    bad["annotations"][2]["bbox"] = [639.5, 0, 1.2, 10]  # within the 1 px tolerance: clipped, kept
    bad["annotations"][2].pop("segmentation", None)
    (tmp_path / "coco.json").write_text(json.dumps(bad))
    refused = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "coco.json"), "--format", "coco")
    assert refused.exit_code != 0 and "(and 1 more problem)" in refused.output
    result = run(
        str(tmp_path / "images"),
        "-d",
        "d",
        "-a",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--skip-bad-annotations",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["shapes"]["inserted"] == len(doc["annotations"]) - 2
    assert len(summary["dropped_annotations"]) == 2
    assert summary["dropped_annotations"][0].startswith("coco.json: annotations[0].bbox: x+width 700")
    clipped = conn.execute("SELECT bbox_x, bbox_width FROM pgsearch.shapes WHERE bbox_x = 639.5").fetchone()
    assert clipped is not None and abs(clipped[0] + clipped[1] - 640) < 1e-9


def _yolo(tmp_path: Path) -> Folder:
    folder = make_folder(tmp_path / "images", 2)
    make_yolo(folder, tmp_path / "labels", polygons=False)
    return folder


YOLO_CASES = [
    ("class out of range", "7 0.5 0.5 0.1 0.1", "img_0000.txt: line 1: class 7 is not a class index 0..1"),
    ("not numbers", "0 a b c d", "img_0000.txt: line 1: expected numbers"),
    (
        "outside the image",
        "0 0.95 0.5 0.2 0.1",
        "img_0000.txt: line 1: box right edge 1.05 is outside the image",
    ),
    ("negative size", "0 0.5 0.5 -0.2 0.1", "img_0000.txt: line 1: width -0.2 is negative"),
    ("wrong count", "0 0.5 0.5 0.2", "img_0000.txt: line 1: expected 'class cx cy w h'"),
]


@pytest.mark.parametrize(("case", "line", "message"), YOLO_CASES, ids=[c[0] for c in YOLO_CASES])
def test_yolo_rejections(
    conn: psycopg.Connection, tmp_path: Path, case: str, line: str, message: str
) -> None:
    _yolo(tmp_path)
    (tmp_path / "labels" / "img_0000.txt").write_text(line + "\n")
    result = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "labels"), "--format", "yolo")
    assert result.exit_code != 0 and message in result.output, result.output
    assert nothing_written(conn)


def test_yolo_label_file_without_image_and_missing_names(conn: psycopg.Connection, tmp_path: Path) -> None:
    _yolo(tmp_path)
    (tmp_path / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    result = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "labels"), "--format", "yolo")
    assert result.exit_code != 0 and "ghost.txt: no image for this label file" in result.output
    (tmp_path / "labels" / "ghost.txt").unlink()
    (tmp_path / "labels" / "classes.txt").unlink()
    result = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "labels"), "--format", "yolo")
    assert result.exit_code != 0 and "no class names found" in result.output
    (tmp_path / "labels" / "data.yaml").write_text("names: [a, b\n")
    result = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "labels"), "--format", "yolo")
    assert result.exit_code != 0 and "data.yaml: line" in result.output and "invalid YAML" in result.output
    assert nothing_written(conn)


VOC_CASES = [
    ("broken xml", "<annotation><filename>img_0000.png</filename><object></annotation>", "line 1 column"),
    (
        "xmax < xmin",
        "<annotation><filename>img_0000.png</filename><object><name>a</name><bndbox><xmin>30</xmin>"
        "<ymin>1</ymin><xmax>10</xmax><ymax>5</ymax></bndbox></object></annotation>",
        "object[0].<bndbox>: xmax 10 is less than xmin 30",
    ),
    (
        "missing bndbox",
        "<annotation><filename>img_0000.png</filename><object><name>a</name></object></annotation>",
        "object[0].<bndbox>: missing",
    ),
    (
        "out of bounds",
        "<annotation><filename>img_0000.png</filename><size><width>64</width><height>48</height></size>"
        "<object><name>a</name><bndbox><xmin>10</xmin><ymin>1</ymin><xmax>80</xmax><ymax>5</ymax></bndbox></object>"
        "</annotation>",
        "x+width 80 exceeds image width 64",
    ),
    (
        "not a number",
        "<annotation><filename>img_0000.png</filename><object><name>a</name><bndbox><xmin>ten</xmin>"
        "<ymin>1</ymin><xmax>80</xmax><ymax>5</ymax></bndbox></object></annotation>",
        "<xmin>: expected a number, got 'ten'",
    ),
]


@pytest.mark.parametrize(("case", "xml", "message"), VOC_CASES, ids=[c[0] for c in VOC_CASES])
def test_voc_rejections(conn: psycopg.Connection, tmp_path: Path, case: str, xml: str, message: str) -> None:
    folder = make_folder(tmp_path / "images", 2)
    make_voc(folder, tmp_path / "xml")
    (tmp_path / "xml" / "img_0000.xml").write_text(xml)
    result = run(str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "xml"), "--format", "voc")
    assert result.exit_code != 0 and "img_0000.xml: " in result.output and message in result.output, (
        result.output
    )
    assert nothing_written(conn)


METADATA_CASES = [
    (
        "meta.jsonl",
        '{"filename": "img_0000.png", "status": "review"}\n{"filename": \n',
        "meta.jsonl: line 2 column",
    ),
    ("meta.jsonl", '{"status": "review"}\n', "meta.jsonl: line 1: missing 'filename'"),
    ("meta.jsonl", '{"filename": "zzz.png"}\n', "meta.jsonl: line 1.filename: 'zzz.png' is not among"),
    (
        "meta.jsonl",
        '{"filename": "img_0000.png", "groups": [1]}\n',
        "line 1.groups: expected a list of non-empty strings",
    ),
    (
        "meta.csv",
        "name,status\nimg_0000.png,review\n",
        "meta.csv: line 1: the header needs a 'filename' column",
    ),
    (
        "meta.csv",
        "filename,status\nimg_0000.png,review\nimg_0000.png,done\n",
        "meta.csv: line 3.filename: 'img_0000.png' appears twice",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), METADATA_CASES)
def test_metadata_rejections(
    conn: psycopg.Connection, tmp_path: Path, name: str, text: str, message: str
) -> None:
    make_folder(tmp_path / "images", 2)
    (tmp_path / name).write_text(text)
    result = run(str(tmp_path / "images"), "-d", "d", "--metadata", str(tmp_path / name))
    assert result.exit_code != 0 and message in result.output, result.output
    assert nothing_written(conn)


def test_embeddings_file_rejections(conn: psycopg.Connection, tmp_path: Path) -> None:
    make_folder(tmp_path / "images", 2)
    np.save(tmp_path / "v.npy", np.ones((3, 8), np.float32))
    args = [str(tmp_path / "images"), "-d", "d", "--embeddings", str(tmp_path / "v.npy")]
    result = CliRunner().invoke(cli, ["load", *args, "--workers", "0"])
    assert result.exit_code != 0 and "v.npy: needs the filenames beside it in v.txt" in result.output
    (tmp_path / "v.txt").write_text("img_0000.png\nimg_0001.jpg\n")
    result = CliRunner().invoke(cli, ["load", *args, "--workers", "0"])
    assert result.exit_code != 0 and "v.npy: 2 filenames for 3 vectors" in result.output
    (tmp_path / "v.txt").write_text("img_0000.png\nimg_0001.jpg\nother.png\n")
    result = CliRunner().invoke(cli, ["load", *args, "--workers", "0"])
    assert result.exit_code != 0 and "v.npy: row 2: 'other.png' is not among" in result.output
    assert nothing_written(conn)


# --- values PostgreSQL would refuse (issue 15, items 5 and 9): found before anything is written ---

DEEP = "[" * 5000 + "]" * 5000  # beyond Python's recursion limit: json raises RecursionError

HOSTILE_METADATA_CASES = [
    (
        "nan",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "x": NaN}\n',
        "meta.jsonl: line 1.x: NaN is not allowed",
    ),
    (
        "infinity",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "x": [1, -Infinity]}\n',
        "meta.jsonl: line 1.x[1]: Infinity is not allowed",
    ),
    (
        "1e400",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "x": 1e400}\n',
        "line 1.x: Infinity is not allowed",
    ),
    (
        "nul in a value",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "note": "a\\u0000b"}\n',
        "meta.jsonl: line 1.note: NUL character",
    ),
    (
        "nul in a key",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "metadata": {"k\\u0000": 1}}\n',
        "meta.jsonl: line 1.metadata['k\\x00']: in the key: NUL character",
    ),
    (
        "lone surrogate",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "note": "\\ud800"}\n',
        "meta.jsonl: line 1.note: lone surrogate '\\ud800'",
    ),
    (
        "surrogate status",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "status": "\\udfff"}\n',
        "line 1.status: lone",
    ),
    (
        "nul group",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "groups": ["a\\u0000"]}\n',
        "line 1.groups[0]: NUL",
    ),
    (
        "long group",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "groups": ["' + b"g" * 1001 + b'"]}\n',
        "over the limit",
    ),
    (
        "deep json",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "x": ' + DEEP.encode() + b"}\n",
        "meta.jsonl: line 1: invalid JSON: nested too deeply to read",
    ),
    (
        "deep but parseable",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "x": ' + b"[" * 200 + b"]" * 200 + b"}\n",
        "nested more than 64 levels deep",
    ),
    (
        "a 5000-digit integer",
        "meta.jsonl",
        b'{"filename": "img_0000.png", "x": ' + b"9" * 5000 + b"}\n",
        "meta.jsonl: line 1: invalid JSON: a number too long to read",
    ),
    ("deep .json", "meta.json", DEEP.encode(), "meta.json: invalid JSON: nested too deeply to read"),
    (
        "nul in a csv cell",
        "meta.csv",
        b"filename,note\nimg_0000.png,ok\nimg_0001.jpg,a\x00b\n",
        'meta.csv: line 3, column "note": NUL character',
    ),
    (
        "nul in a csv header",
        "meta.csv",
        b"filename,no\x00te\nimg_0000.png,1\n",
        'meta.csv: line 1, column "no\\x00te": NUL',
    ),
    ("not utf-8 csv", "meta.csv", b"filename,note\nimg_0000.png,caf\xe9\n", "meta.csv: not UTF-8 text"),
]


@pytest.mark.parametrize(
    ("case", "name", "data", "message"), HOSTILE_METADATA_CASES, ids=[c[0] for c in HOSTILE_METADATA_CASES]
)
def test_metadata_values_postgres_refuses(
    conn: psycopg.Connection, tmp_path: Path, case: str, name: str, data: bytes, message: str
) -> None:
    make_folder(tmp_path / "images", 2)
    (tmp_path / name).write_bytes(data)
    result = run(str(tmp_path / "images"), "-d", "d", "--metadata", str(tmp_path / name))
    assert result.exit_code == 1 and message in result.output, result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert nothing_written(conn)


def test_many_rows_one_nan_writes_nothing(conn: psycopg.Connection, tmp_path: Path) -> None:
    """The issue's 2,976-of-3,000: a bad value in the last metadata row used to fail its batch's
    COPY after the earlier batches had committed, and every rerun the same."""
    folder = make_folder(tmp_path / "images", 40, sizes=((8, 6),), formats=("PNG",))
    lines = [json.dumps({"filename": f, "n": i}) for i, f in enumerate(folder.filenames)]
    lines[-1] = lines[-1][:-1] + ', "bad": NaN}'
    (tmp_path / "meta.jsonl").write_text("\n".join(lines) + "\n")
    args = [
        str(tmp_path / "images"),
        "-d",
        "d",
        "--metadata",
        str(tmp_path / "meta.jsonl"),
        "--batch-size",
        "4",
    ]
    result = run(*args)
    assert result.exit_code == 1 and "meta.jsonl: line 40.bad: NaN" in result.output, result.output
    assert nothing_written(conn)
    result = run(*args, "--skip-bad-annotations")  # drops that row, loads the rest
    assert result.exit_code == 0, result.output
    rows = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE metadata ? 'n') FROM pgsearch.assets"
    ).fetchone()
    assert rows == (40, 39)


def test_csv_numbers_that_do_not_fit_are_stored_as_text(conn: psycopg.Connection, tmp_path: Path) -> None:
    make_folder(tmp_path / "images", 2)
    big = "9" * 5000
    (tmp_path / "meta.csv").write_text(f"filename,a,b,c\nimg_0000.png,1e400,{big},\x01ctl\n")
    result = run(str(tmp_path / "images"), "-d", "d", "--metadata", str(tmp_path / "meta.csv"))
    assert result.exit_code == 0, result.output
    meta = conn.execute("SELECT metadata FROM pgsearch.assets WHERE filename = 'img_0000.png'").fetchone()[0]
    assert meta == {"a": "1e400", "b": big, "c": "\x01ctl"}


def test_coco_values_postgres_refuses(conn: psycopg.Connection, tmp_path: Path, coco: Any) -> None:
    _, doc = coco
    path = tmp_path / "coco.json"
    args = [str(tmp_path / "images"), "-d", "d", "-a", str(path), "--format", "coco"]
    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (_set(["categories", 0, "name"], "c\x00t"), "coco.json: categories[0].name: NUL character"),
        (
            _set(["categories", 0, "name"], "\ud83d"),
            "coco.json: categories[0].name: lone surrogate '\\ud83d'",
        ),
        (_set(["annotations", 1, "attributes"], {"a": float("nan")}), "annotations[1].attributes.a: NaN"),
        (_set(["annotations", 1, "attributes"], {"a": ["\x00"]}), "annotations[1].attributes.a[0]: NUL"),
        (_set(["annotations", 1, "score"], float("inf")), "annotations[1].score: expected a finite number"),
        (
            _set(["annotations", 0, "bbox"], [10**400, 0, 1, 1]),
            "annotations[0].bbox: coordinates must be numbers",
        ),
        (_set(["images", 0, "width"], 10**400), "images[0]: width and height must be positive numbers"),
        (_set(["images", 0, "width"], 1e300), "images[0]: width and height must be at most 2147483647"),
    ]
    for mutate, message in cases:
        bad = copy.deepcopy(doc)
        mutate(bad)
        path.write_text(json.dumps(bad))  # ensure_ascii: a lone surrogate is written as \ud83d
        result = run(*args)
        assert result.exit_code == 1 and message in result.output, (message, result.output)
        assert "Traceback" not in result.output
    path.write_text('{"images": ' + DEEP + "}")
    result = run(*args)
    assert result.exit_code == 1 and "coco.json: invalid JSON: nested too deeply to read" in result.output
    assert nothing_written(conn)


def test_yolo_names_postgres_refuses(conn: psycopg.Connection, tmp_path: Path) -> None:
    _yolo(tmp_path)
    labels = tmp_path / "labels"
    args = [str(tmp_path / "images"), "-d", "d", "-a", str(labels), "--format", "yolo"]
    (labels / "classes.txt").write_bytes(b"caf\xe9\ndog\n")
    result = run(*args)
    assert result.exit_code == 1 and "classes.txt: not UTF-8 text" in result.output, result.output
    (labels / "classes.txt").write_bytes(b"cat\nd\x00g\n")
    result = run(*args)
    assert result.exit_code == 1 and "classes.txt: line 2: NUL character" in result.output, result.output
    (labels / "classes.txt").unlink()
    (labels / "data.yaml").write_text('names: ["cat", "d\\0g"]\n')
    result = run(*args)
    assert result.exit_code == 1 and "data.yaml: names[1]: NUL character" in result.output, result.output
    (labels / "data.yaml").write_text("names: " + "[" * 3000 + "]" * 3000 + "\n")
    result = run(*args)
    assert result.exit_code == 1 and "data.yaml: " in result.output and "Traceback" not in result.output
    (labels / "data.yaml").write_text("names: [cat, dog]\n")
    (labels / "img_0000.txt").write_text("0 nan 0.5 0.1 0.1\n")
    result = run(*args)
    assert result.exit_code == 1 and "img_0000.txt: line 1: coordinates must be finite" in result.output
    assert nothing_written(conn)


def test_voc_values_postgres_refuses(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 2)
    make_voc(folder, tmp_path / "xml")
    args = [str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "xml"), "--format", "voc"]
    obj = "<object><name>{}</name><difficult>{}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>{}</xmax><ymax>5</ymax></bndbox></object>"
    head = "<annotation><filename>img_0000.png</filename>"
    for body, message in [
        (obj.format("a&#0;b", 0, 5), "img_0000.xml: line 1 column"),  # XML refuses NUL
        (obj.format("a", 0, "1e400"), "coordinates must be finite"),
        (obj.format("n" * 1001, 0, 5), "object[0].<name>: 1001 bytes long"),
    ]:
        (tmp_path / "xml" / "img_0000.xml").write_text(head + body + "</annotation>")
        result = run(*args)
        assert result.exit_code == 1 and message in result.output, (message, result.output)
    assert nothing_written(conn)
    # '²' passes str.isdigit() and fails int(): not a traceback, just not an attribute
    (tmp_path / "xml" / "img_0000.xml").write_text(head + obj.format("a", "²", 5) + "</annotation>")
    assert run(*args).exit_code == 0
