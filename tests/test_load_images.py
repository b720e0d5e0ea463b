"""Per-asset facts and bad files: hash, size, format, oriented size; corrupt, truncated, empty,
non-image and decompression-bomb files recorded as failed with their reason while the load goes on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import psycopg
from click.testing import CliRunner
from imagegen import make_coco, make_folder, make_hostile, make_odd_modes, pattern, save
from PIL import Image

from pgsearch.cli import cli
from pgsearch.loader.images import decode, load_image


def load(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["load", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hostile_files_fail_with_reasons_and_the_load_goes_on(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    good = make_folder(root, 4)
    reasons = make_hostile(root / "bad")
    summary = load(str(root), "-d", "d", "--model", "pixels", "--workers", "1")
    assert summary["assets"] == {
        "new": 4 + len(reasons),
        "updated": 0,
        "unchanged": 0,
        "failed": len(reasons),
        "missing": 0,
        "pruned": 0,
    }
    listed = {f["filename"]: f["reason"] for f in summary["failed"]}
    assert set(listed) == {f"bad/{name}" for name in reasons}
    rows = conn.execute(
        "SELECT a.filename, a.load_error, a.width, st.state, st.reason, st.attempts"
        "  FROM pgsearch.assets a LEFT JOIN pgsearch.asset_embedding_state st ON st.asset_id = a.id"
    ).fetchall()
    for filename, load_error, width, state, reason, attempts in rows:
        if filename.startswith("bad/"):
            assert load_error.startswith(reasons[filename[4:]]), (filename, load_error)
            assert width is None and state == "failed" and reason == load_error and attempts == 1
        else:
            assert load_error is None and state == "done" and attempts == 1
    n_vectors = conn.execute("SELECT count(*) FROM pgsearch.asset_embeddings").fetchone()[0]
    assert n_vectors == len(good.images)
    # the bomb is refused from its header, not by decoding 1.6 GP
    assert "40000x40000" in listed["bad/bomb.png"]


def test_facts_of_odd_but_valid_images(conn: psycopg.Connection, tmp_path: Path) -> None:
    expected = make_odd_modes(tmp_path / "odd")
    summary = load(str(tmp_path / "odd"), "-d", "d", "--model", "pixels", "--workers", "0")
    assert summary["assets"]["failed"] == 0, summary["failed"]
    rows = conn.execute(
        "SELECT filename, width, height, size, content_hash, format, path FROM pgsearch.assets"
    ).fetchall()
    assert {r[0]: (r[1], r[2]) for r in rows} == expected
    for _, _, _, size, content_hash, fmt, path in rows:
        data = Path(path).read_bytes()
        assert size == len(data) and content_hash == hashlib.sha256(data).hexdigest()
        assert fmt == Image.open(path).format.lower()
    assert conn.execute("SELECT count(*) FROM pgsearch.asset_embeddings").fetchone()[0] == len(expected)


def test_decoding_converts_modes_to_rgb(tmp_path: Path) -> None:
    make_odd_modes(tmp_path)
    for path in tmp_path.iterdir():
        facts, img = load_image(str(path))
        assert img is not None and img.mode == "RGB", path
        assert (facts.width, facts.height) == img.size
    # alpha is composited on white: a fully transparent pixel becomes white
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    save(rgba, tmp_path / "clear.png")
    rgb, _ = decode((tmp_path / "clear.png").read_bytes())
    assert np.asarray(rgb)[0, 0].tolist() == [255, 255, 255]
    # 16-bit grey keeps its tones: 65535 -> 255, 257 * 100 -> 100
    arr = np.array([[65535, 25700]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    rgb, _ = decode((tmp_path / "g16.png").read_bytes())
    assert np.asarray(rgb)[0, :, 0].tolist() == [255, 100]


def test_shapes_of_an_undecodable_image_are_failed_not_lost(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 2, sizes=((64, 64),), formats=("JPEG",))
    _, truth = make_coco(folder, tmp_path / "coco.json", kinds=("bbox",), per_image=2)
    broken = tmp_path / "images" / folder.images[0].filename
    broken.write_bytes(broken.read_bytes()[:200])
    summary = load(
        str(tmp_path / "images"),
        "-d",
        "d",
        "-a",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--model",
        "pixels",
        "--workers",
        "0",
    )
    assert summary["shapes"]["inserted"] == 4 and summary["shapes"]["failed"] == 2
    reasons = [
        r[0] for r in conn.execute("SELECT reason FROM pgsearch.shape_embedding_state WHERE state = 'failed'")
    ]
    assert reasons and all(r.startswith("image could not be decoded: corrupt image") for r in reasons)


def test_degenerate_boxes_are_skipped_and_reported(conn: psycopg.Connection, tmp_path: Path) -> None:
    save(pattern(64, 64, 1), tmp_path / "images" / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
        "categories": [{"id": 1, "name": "dot"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 1, 30]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30]},
        ],
    }
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    summary = load(
        str(tmp_path / "images"),
        "-d",
        "d",
        "-a",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--model",
        "pixels",
        "--workers",
        "0",
    )
    assert summary["shapes"] == {"inserted": 2, "deleted": 0, "failed": 1, "skipped": 0}
    state = conn.execute(
        "SELECT s.bbox_width, st.state, st.reason FROM pgsearch.shape_embedding_state st"
        " JOIN pgsearch.shapes s ON s.id = st.shape_id ORDER BY s.bbox_width"
    ).fetchall()
    assert state[0][1] == "failed" and state[0][2].startswith("degenerate box (1x30 px")
    assert state[1][1] == "done"
