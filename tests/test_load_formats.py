"""`pgsearch load` with every input format: the stored shapes, labels, counts and attributes are
compared with what the generators wrote (tests/imagegen.py), not with the loader's own parse."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from imagegen import TruthShape, make_coco, make_folder, make_metadata, make_voc, make_yolo

from pgsearch.cli import cli


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def load_json(*args: str) -> dict[str, Any]:
    result = run("load", *args, "--workers", "0", "--json")
    return json.loads(result.stdout)


def stored_shapes(conn: psycopg.Connection, dataset: str = "d") -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT a.filename, l.name, s.kind, s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height, s.area,"
        "       s.attributes, s.geometry"
        "  FROM pgsearch.shapes s JOIN pgsearch.assets a ON a.id = s.asset_id"
        "  JOIN pgsearch.labels l ON l.id = s.label_id JOIN pgsearch.datasets d ON d.id = s.dataset_id"
        " WHERE d.name = %s ORDER BY a.filename, s.id",
        (dataset,),
    ).fetchall()
    return [
        {
            "filename": r[0],
            "label": r[1],
            "kind": r[2],
            "bbox": None if r[3] is None else (r[3], r[4], r[5], r[6]),
            "area": r[7],
            "attributes": r[8],
            "geometry": r[9],
        }
        for r in rows
    ]


def assert_same_shapes(
    stored: list[dict[str, Any]], truth: list[TruthShape], tol: float = 1e-6, area_tol: float = 1e-6
) -> None:
    def key(filename: str, label: str, kind: str) -> tuple[str, str, str]:
        return (filename, label, kind)

    assert Counter(key(s["filename"], s["label"], s["kind"]) for s in stored) == Counter(
        key(t.filename, t.label, t.kind) for t in truth
    )
    remaining = list(truth)
    for s in stored:
        match = next(
            (
                t
                for t in remaining
                if key(t.filename, t.label, t.kind) == key(s["filename"], s["label"], s["kind"])
                and (t.bbox is None) == (s["bbox"] is None)
                and (
                    t.bbox is None
                    or all(math.isclose(a, b, abs_tol=tol) for a, b in zip(t.bbox, s["bbox"], strict=True))
                )
                and (t.area is None or math.isclose(t.area, s["area"], abs_tol=area_tol))
            ),
            None,
        )
        assert match is not None, f"no generated shape matches the stored {s}"
        remaining.remove(match)
        for k, v in match.attributes.items():
            assert s["attributes"][k] == v


def label_counts(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    return {r[0]: r[1] for r in conn.execute("SELECT filename, label_counts FROM pgsearch.assets")}


def test_coco_boxes_polygons_rle_and_iscrowd(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 6, subfolders=("a", "b"))
    _, truth = make_coco(folder, tmp_path / "coco.json", labels=("cat", "dog", "traffic light"))
    summary = load_json(
        str(tmp_path / "images"),
        "-d",
        "d",
        "--annotations",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--no-embed",
    )
    assert summary["assets"]["new"] == 6 and summary["shapes"]["inserted"] == len(truth)
    stored = stored_shapes(conn)
    assert_same_shapes(stored, truth)
    # masks keep their RLE as given; polygons their points
    for s in stored:
        if s["kind"] == "mask":
            assert set(s["geometry"]["rle"]) == {"size", "counts"}
        if s["kind"] == "polygon":
            assert len(s["geometry"]["points"]) == 3
    expected = Counter((t.filename, t.label) for t in truth)
    for filename, counts in label_counts(conn).items():
        assert counts == {label: n for (f, label), n in expected.items() if f == filename}
    labels = {r[0] for r in conn.execute("SELECT name FROM pgsearch.labels")}
    assert labels == {"cat", "dog", "traffic light"}


def test_coco_file_names_with_a_prefix_folder_resolve(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 3)
    _, truth = make_coco(folder, tmp_path / "coco.json", file_name_prefix="images/", kinds=("bbox",))
    load_json(
        str(tmp_path / "images"),
        "-d",
        "d",
        "-a",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--no-embed",
    )
    assert_same_shapes(stored_shapes(conn), truth)


@pytest.mark.parametrize("names_as", ["classes.txt", "data.yaml"])
def test_yolo_boxes_and_polygons(conn: psycopg.Connection, tmp_path: Path, names_as: str) -> None:
    folder = make_folder(tmp_path / "images", 5, subfolders=("train", "val"), sizes=((80, 60), (50, 70)))
    truth = make_yolo(folder, tmp_path / "labels", names_as=names_as)
    load_json(
        str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "labels"), "--format", "yolo", "--no-embed"
    )
    assert_same_shapes(stored_shapes(conn), truth, tol=1e-3, area_tol=1e-2)


def test_yolo_data_yaml_given_as_the_file(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 3)
    truth = make_yolo(folder, tmp_path / "ds" / "labels", names_as="classes.txt", polygons=False)
    (tmp_path / "ds" / "labels" / "classes.txt").unlink()
    (tmp_path / "ds" / "data.yaml").write_text("names: [cat, dog]\n")
    load_json(
        str(tmp_path / "images"),
        "-d",
        "d",
        "-a",
        str(tmp_path / "ds" / "data.yaml"),
        "--format",
        "yolo",
        "--no-embed",
    )
    assert_same_shapes(stored_shapes(conn), truth, tol=1e-3, area_tol=1e-2)


def test_voc_folder(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 4, subfolders=("x", "y"))
    truth = make_voc(folder, tmp_path / "xml")
    load_json(
        str(tmp_path / "images"), "-d", "d", "-a", str(tmp_path / "xml"), "--format", "voc", "--no-embed"
    )
    assert_same_shapes(stored_shapes(conn), truth)


def test_folders_become_tags(conn: psycopg.Connection, tmp_path: Path) -> None:
    make_folder(tmp_path / "root", 6, subfolders=("cat", "dog", "cat/siamese"))
    make_folder(tmp_path / "root", 1, seed=7)  # one image at the top: no tag
    load_json(str(tmp_path / "root"), "-d", "d", "--format", "folders", "--no-embed")
    stored = stored_shapes(conn)
    assert all(s["kind"] == "tag" and s["bbox"] is None for s in stored)
    assert Counter(s["label"] for s in stored) == {"cat": 4, "dog": 2}
    counts = label_counts(conn)
    assert counts["img_0000.png"] == {}
    assert counts["cat/siamese/img_0002.png"] == {"cat": 1}


def test_nested_equal_basenames_and_case_insensitive_extensions(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_folder(tmp_path / "root", 2, subfolders=("a",), uppercase_ext=True)
    make_folder(tmp_path / "root", 2, subfolders=("b",), seed=3)
    (tmp_path / "root" / "readme.txt").write_text("not an image")
    (tmp_path / "root" / ".hidden.png").write_bytes(b"")
    load_json(str(tmp_path / "root"), "-d", "d", "--no-embed")
    rows = conn.execute("SELECT filename, path FROM pgsearch.assets ORDER BY filename").fetchall()
    assert [r[0] for r in rows] == ["a/img_0000.PNG", "a/img_0001.JPG", "b/img_0000.png", "b/img_0001.jpg"]
    assert all(Path(p).is_absolute() and Path(p).is_file() and p.endswith(f) for f, p in rows)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_metadata_groups_and_status(conn: psycopg.Connection, tmp_path: Path, kind: str) -> None:
    folder = make_folder(tmp_path / "images", 5)
    meta = make_metadata(folder, tmp_path / f"meta.{kind}", kind=kind)
    load_json(
        str(tmp_path / "images"),
        "-d",
        "d",
        "--metadata",
        str(tmp_path / f"meta.{kind}"),
        "--group",
        "g1",
        "--group",
        "g2",
        "--status",
        "annotated",
        "--no-embed",
    )
    rows = conn.execute("SELECT filename, status, groups, metadata FROM pgsearch.assets").fetchall()
    for filename, status, groups, metadata in rows:
        m = meta[filename]
        assert status == m["status"]  # the file's status wins over --status
        assert groups == ["g1", "g2", *m["groups"]]
        assert metadata == {"score": m["score"], "camera": m["camera"]}
    # groups accumulate on a second load; unchanged files are not re-decoded
    summary = load_json(str(tmp_path / "images"), "-d", "d", "--group", "g3", "--no-embed")
    assert summary["assets"]["new"] == 0 and summary["assets"]["updated"] == 5
    assert all(r[0][-1] == "g3" for r in conn.execute("SELECT groups FROM pgsearch.assets"))


def test_text_summary_and_quiet(conn: psycopg.Connection, tmp_path: Path) -> None:
    make_folder(tmp_path / "images", 3)
    (tmp_path / "images" / "broken.png").write_bytes(b"")
    text = run("load", str(tmp_path / "images"), "-d", "d", "--model", "pixels", "--workers", "0").stdout
    assert "dataset d: 4 files in" in text and "model pixels" in text
    assert "assets: 4 new, 0 updated, 0 unchanged, 1 failed" in text
    assert "broken.png: empty file (0 bytes)" in text and "HNSW index built" in text
    quiet = run("load", str(tmp_path / "images"), "-d", "d", "--workers", "0", "--quiet")
    assert quiet.stdout == ""
