"""Incremental and resumable loads: a reload adds nothing, a changed file is replaced with its
shapes and embeddings, and a load killed with SIGKILL at random moments then run again ends with
exactly the rows an uninterrupted load writes (ids and timestamps aside)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner
from imagegen import make_coco, make_folder, make_hostile, pattern, save

from pgsearch import db as database
from pgsearch.cli import cli


def load(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["load", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def snapshot(conn: psycopg.Connection, dataset: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the loader writes for a dataset, keyed by names instead of ids, sorted."""
    p = {"d": dataset}
    q = lambda text: sorted(conn.execute(text, p).fetchall(), key=repr)  # noqa: E731
    shape_key = (
        "a.filename, l.name, s.kind, s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height, s.geometry::text,"
        " s.area, s.attributes::text"
    )
    spaces = (
        "pgsearch.embedding_spaces sp JOIN pgsearch.embedding_models m ON m.id = sp.model_id"
        " JOIN pgsearch.datasets d ON d.id = sp.dataset_id"
    )
    out = {
        "assets": q(
            "SELECT filename, path, content_hash, width, height, size, format, status, groups, metadata::text,"
            " label_counts::text, annotation_count, load_error FROM pgsearch.assets a"
            " JOIN pgsearch.datasets d ON d.id = a.dataset_id WHERE d.name = %(d)s"
        ),
        "labels": q(
            "SELECT l.name FROM pgsearch.labels l JOIN pgsearch.datasets d ON d.id = l.dataset_id"
            " WHERE d.name = %(d)s"
        ),
        "shapes": q(
            f"SELECT {shape_key} FROM pgsearch.shapes s JOIN pgsearch.assets a ON a.id = s.asset_id"
            " JOIN pgsearch.labels l ON l.id = s.label_id JOIN pgsearch.datasets d ON d.id = s.dataset_id"
            " WHERE d.name = %(d)s"
        ),
        "spaces": q(f"SELECT m.name, sp.target, sp.dim, sp.indexed FROM {spaces} WHERE d.name = %(d)s"),
        "asset_vectors": q(
            f"SELECT m.name, a.filename, e.embedding::text FROM pgsearch.asset_embeddings e"
            f" JOIN {spaces} ON sp.id = e.space_id JOIN pgsearch.assets a ON a.id = e.asset_id"
            " WHERE d.name = %(d)s"
        ),
        "asset_states": q(
            f"SELECT m.name, a.filename, st.state, st.reason, st.attempts"
            f" FROM pgsearch.asset_embedding_state st JOIN {spaces} ON sp.id = st.space_id"
            " JOIN pgsearch.assets a ON a.id = st.asset_id WHERE d.name = %(d)s"
        ),
        "shape_vectors": q(
            f"SELECT m.name, {shape_key}, e.embedding::text FROM pgsearch.shape_embeddings e"
            f" JOIN {spaces} ON sp.id = e.space_id JOIN pgsearch.shapes s ON s.id = e.shape_id"
            " JOIN pgsearch.assets a ON a.id = s.asset_id JOIN pgsearch.labels l ON l.id = s.label_id"
            " WHERE d.name = %(d)s"
        ),
        "shape_states": q(
            f"SELECT m.name, {shape_key}, st.state, st.reason, st.attempts"
            f" FROM pgsearch.shape_embedding_state st JOIN {spaces} ON sp.id = st.space_id"
            " JOIN pgsearch.shapes s ON s.id = st.shape_id JOIN pgsearch.assets a ON a.id = s.asset_id"
            " JOIN pgsearch.labels l ON l.id = s.label_id WHERE d.name = %(d)s"
        ),
    }
    conn.commit()
    return out


def test_reload_adds_nothing(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 6, subfolders=("a", "b"))
    make_hostile(tmp_path / "images" / "bad")
    make_coco(folder, tmp_path / "coco.json")
    args = [
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
    ]
    first = load(*args)
    before = snapshot(conn, "d")
    second = load(*args)
    assert second["assets"] == {
        "new": 0,
        "updated": 0,
        "unchanged": first["files"],
        "failed": 0,
        "missing": 0,
        "pruned": 0,
    }
    assert second["shapes"] == {"inserted": 0, "deleted": 0, "failed": 0, "skipped": 0}
    assert second["embeddings"] == {"assets": 0, "shapes": 0} and second["index_built"] == []
    assert snapshot(conn, "d") == before


def test_changed_file_replaces_row_shapes_and_embeddings(conn: psycopg.Connection, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 3, sizes=((64, 64),), formats=("PNG",))
    make_coco(folder, tmp_path / "coco.json", kinds=("bbox",), per_image=2)
    base = [str(tmp_path / "images"), "-d", "d", "--workers", "0"]
    load(*base, "-a", str(tmp_path / "coco.json"), "--format", "coco", "--model", "pixels")
    load(*base, "--model", "openclip:pgsearch-tiny:random", "--no-embed-shapes")
    old = snapshot(conn, "d")
    target = folder.images[1].filename
    save(pattern(64, 64, 999), tmp_path / "images" / target)  # same name, new content
    # the annotations change too: one box for the changed image
    doc = json.loads((tmp_path / "coco.json").read_text())
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != 2] + [
        {"id": 99, "image_id": 2, "category_id": 1, "bbox": [1, 2, 30, 40]}
    ]
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    summary = load(*base, "-a", str(tmp_path / "coco.json"), "--format", "coco", "--model", "pixels")
    assert summary["assets"] == {
        "new": 0,
        "updated": 1,
        "unchanged": 2,
        "failed": 0,
        "missing": 0,
        "pruned": 0,
    }
    assert summary["shapes"]["inserted"] == 1 and summary["shapes"]["deleted"] == 2
    assert summary["embeddings"] == {"assets": 1, "shapes": 1}
    # the other model's vector of the changed file is gone: it waits for `pgsearch embed`
    assert summary["pending_other_models"] == {"openclip:pgsearch-tiny:random": 1}
    new = snapshot(conn, "d")
    changed_old = [r for r in old["assets"] if r[0] == target][0]
    changed_new = [r for r in new["assets"] if r[0] == target][0]
    assert changed_old[2] != changed_new[2]  # content hash
    assert [r for r in new["shapes"] if r[0] == target] == [
        (target, "cat", "bbox", 1.0, 2.0, 30.0, 40.0, "{}", 1200.0, '{"iscrowd": 0}')
    ]
    assert [r for r in new["asset_vectors"] if r[1] == target and r[0] == "pixels"] != [
        r for r in old["asset_vectors"] if r[1] == target and r[0] == "pixels"
    ]
    assert not [r for r in new["asset_vectors"] if r[1] == target and r[0] != "pixels"]
    # the untouched files kept everything
    for key in ("asset_vectors", "shape_vectors"):
        assert [r for r in new[key] if target not in r] == [r for r in old[key] if target not in r]


def test_changed_annotations_of_unchanged_images_replace_shapes(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "images", 2, sizes=((64, 64),))
    _, truth = make_coco(folder, tmp_path / "a.json", kinds=("bbox",), per_image=2, seed=1)
    make_coco(folder, tmp_path / "b.json", kinds=("bbox",), per_image=1, seed=2)
    base = [str(tmp_path / "images"), "-d", "d", "--format", "coco", "--model", "pixels", "--workers", "0"]
    load(*base, "-a", str(tmp_path / "a.json"))
    summary = load(*base, "-a", str(tmp_path / "b.json"))
    assert summary["shapes"]["deleted"] == 4 and summary["shapes"]["inserted"] == 2
    assert summary["embeddings"] == {"assets": 0, "shapes": 2}
    counts = conn.execute("SELECT sum(annotation_count) FROM pgsearch.assets").fetchone()[0]
    assert counts == 2
    assert conn.execute("SELECT count(*) FROM pgsearch.shape_embeddings").fetchone()[0] == 2


def _dataset_rows(dsn: str, dataset: str) -> int:
    with database.connect(dsn) as c:
        row = c.execute(
            "SELECT count(*) FROM pgsearch.asset_embedding_state st JOIN pgsearch.embedding_spaces sp"
            " ON sp.id = st.space_id JOIN pgsearch.datasets d ON d.id = sp.dataset_id"
            " WHERE d.name = %s",
            (dataset,),
        ).fetchone()
        return int(row[0]) if row else 0


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(
    conn: psycopg.Connection, dsn: str, tmp_path: Path
) -> None:
    folder = make_folder(
        tmp_path / "images", 150, sizes=((48, 40), (40, 56), (64, 64)), subfolders=("a", "b", "c")
    )
    make_hostile(tmp_path / "images" / "bad")
    make_coco(folder, tmp_path / "coco.json", per_image=2)
    common = [
        str(tmp_path / "images"),
        "-a",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--model",
        "pixels",
        "--group",
        "g",
        "--batch-size",
        "4",
        "--quiet",
    ]
    load(*common, "-d", "reference", "--workers", "0")

    env = {**os.environ, "PGSEARCH_DSN": dsn}
    rng = random.Random(4)
    cmd = [
        sys.executable,
        "-c",
        "from pgsearch.cli import main; main()",
        "load",
        *common,
        "-d",
        "killed",
        "--workers",
        "1",
    ]
    kills = 0
    at_kill: list[int] = []
    for attempt in range(6):
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        # kill once the load has written a random number of further batches (or at once, now and then)
        threshold = _dataset_rows(dsn, "killed") + rng.choice([0, 4, 12, 30])
        deadline = time.monotonic() + 60
        while (
            proc.poll() is None and time.monotonic() < deadline and _dataset_rows(dsn, "killed") < threshold
        ):
            time.sleep(0.005)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
            proc.wait()
            at_kill.append(_dataset_rows(dsn, "killed"))
        proc.wait()
        if attempt >= 3 and _dataset_rows(dsn, "killed") >= 100:
            break
    assert kills >= 3
    assert any(0 < n < 155 for n in at_kill), at_kill  # some kills landed in the middle of the load
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    killed, reference = snapshot(conn, "killed"), snapshot(conn, "reference")
    for key in reference:
        assert killed[key] == reference[key], key
    assert len(reference["asset_vectors"]) == 150 and reference["spaces"][0][3] is True
