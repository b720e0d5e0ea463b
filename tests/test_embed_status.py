"""`pgsearch status` and `pgsearch embed`: pending work (including rows inserted with plain SQL),
retrying failures, deactivating a model, bringing your own vectors, and the stored vectors being
exactly what the model returns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from imagegen import make_coco, make_folder, make_hostile, pattern, save

from pgsearch.cli import cli
from pgsearch.loader.crops import crop
from pgsearch.loader.images import open_image
from pgsearch.loader.models import get_embedder

TINY = "openclip:pgsearch-tiny:random"


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def status(dataset: str = "d") -> dict[str, Any]:
    return json.loads(run("status", "-d", dataset, "--json").stdout)


def vectors(conn: psycopg.Connection, target: str = "asset") -> dict[Any, np.ndarray]:
    if target == "asset":
        rows = conn.execute(
            "SELECT a.filename, e.embedding FROM pgsearch.asset_embeddings e"
            " JOIN pgsearch.assets a ON a.id = e.asset_id"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT s.id, e.embedding FROM pgsearch.shape_embeddings e"
            " JOIN pgsearch.shapes s ON s.id = e.shape_id"
        ).fetchall()
    conn.commit()
    return {k: np.asarray(v.to_numpy(), dtype=np.float32) for k, v in rows}


def test_status_embed_retry_and_drop(conn: psycopg.Connection, tmp_path: Path) -> None:
    root = tmp_path / "images"
    folder = make_folder(root, 4, sizes=((64, 64),))
    make_hostile(root / "bad")
    make_coco(folder, tmp_path / "coco.json", kinds=("bbox",), per_image=2)
    run(
        "load",
        str(root),
        "-d",
        "d",
        "-a",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--no-embed",
        "--workers",
        "0",
        "--quiet",
    )
    info = status()
    assert info["assets"] == 9 and info["unreadable_assets"] == 5 and info["models"] == []
    assert "no embedding model yet" in run("status", "-d", "d").stdout
    missing = run("embed", "-d", "d", ok=False)
    assert missing.exit_code != 0 and "has no embedding model yet" in missing.output

    # a row inserted with plain SQL: an image by path, and one with no path
    extra = save(pattern(50, 40, 77), tmp_path / "outside" / "extra.png")
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename, path) SELECT id, 'extra.png', %s"
        " FROM pgsearch.datasets WHERE name = 'd'",
        (str(extra),),
    )
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename) SELECT id, 'nopath.png'"
        " FROM pgsearch.datasets WHERE name = 'd'"
    )
    conn.commit()

    summary = json.loads(run("embed", "-d", "d", "--model", "pixels", "--workers", "1", "--json").stdout)
    m = summary["models"][0]
    assert (m["assets_done"], m["assets_failed"], m["shapes_done"], m["shapes_failed"]) == (5, 6, 8, 0)
    info = status()
    pixels = info["models"][0]
    assert pixels["model"] == "pixels" and pixels["dim"] == 256 and not pixels["has_text"]
    assert {k: pixels["assets"][k] for k in ("total", "done", "pending", "failed", "indexed")} == {
        "total": 11,
        "done": 5,
        "pending": 0,
        "failed": 6,
        "indexed": True,
    }
    reasons = {r["reason"]: r["count"] for r in pixels["assets"]["reasons"]}
    assert reasons == {
        "not an image": 2,
        "empty file": 1,
        "corrupt image": 1,
        "image too large": 1,
        "asset has no path to read the image from": 1,
    }
    assert pixels["shapes"]["done"] == 8 and pixels["shapes"]["pending"] == 0
    text = run("status", "-d", "d").stdout
    assert "assets: 5 done, 0 pending, 6 failed of 11 (indexed)" in text and "2 x not an image" in text
    # the SQL row got its facts filled in from the file
    row = conn.execute(
        "SELECT width, height, content_hash IS NOT NULL, load_error FROM pgsearch.assets"
        " WHERE filename = 'extra.png'"
    ).fetchone()
    assert row == (50, 40, True, None)

    # nothing pending: embed again does nothing; retry fixes a repaired file
    again = json.loads(run("embed", "-d", "d", "--json", "--workers", "0").stdout)["models"][0]
    assert again["assets_done"] == 0 and again["assets_failed"] == 0
    save(pattern(30, 30, 5), root / "bad" / "truncated.jpg", "JPEG")
    retried = json.loads(run("embed", "-d", "d", "--retry-failed", "--json", "--workers", "0").stdout)[
        "models"
    ][0]
    assert retried["assets_done"] == 1 and retried["assets_failed"] == 5
    row = conn.execute(
        "SELECT st.state, st.attempts, a.load_error, a.width FROM pgsearch.asset_embedding_state st"
        " JOIN pgsearch.assets a ON a.id = st.asset_id WHERE a.filename = 'bad/truncated.jpg'"
    ).fetchone()
    assert row == ("done", 2, None, 30)
    conn.commit()

    # a second model, then deactivate the first
    run("embed", "-d", "d", "--model", TINY, "--workers", "0", "--quiet")
    assert [m["model"] for m in status()["models"]] == ["pixels", TINY]
    tables = {r[0] for r in conn.execute("SELECT table_name FROM pgsearch.embedding_spaces")}
    dropped = json.loads(run("embed", "-d", "d", "--drop", "--model", "pixels", "--json").stdout)
    assert set(dropped["dropped"]) < tables
    assert [m["model"] for m in status()["models"]] == [TINY]
    left = {
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'pgsearch'"
            " AND tablename LIKE '%%embeddings_%%'"
        )
    }
    assert left == tables - set(dropped["dropped"])
    assert (
        conn.execute(
            "SELECT count(*) FROM pgsearch.asset_embedding_state st JOIN pgsearch.embedding_spaces sp"
            " ON sp.id = st.space_id JOIN pgsearch.embedding_models m ON m.id = sp.model_id"
            " WHERE m.name = 'pixels'"
        ).fetchone()[0]
        == 0
    )
    conn.commit()
    gone = run("embed", "-d", "d", "--drop", "--model", "pixels", ok=False)
    assert gone.exit_code != 0 and "has no embeddings of model 'pixels'" in gone.output
    assert run("embed", "-d", "d", "--drop", ok=False).exit_code != 0


def test_new_files_get_the_dataset_model_and_index_stays_current(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    root = tmp_path / "images"
    make_folder(root, 3)
    run("load", str(root), "-d", "d", "--model", "pixels", "--workers", "0", "--quiet")
    save(pattern(40, 40, 1234), root / "new.png")
    summary = json.loads(run("load", str(root), "-d", "d", "--workers", "0", "--json").stdout)  # no --model
    assert summary["model"] == "pixels" and summary["assets"]["new"] == 1 and summary["index_built"] == []
    assert len(vectors(conn)) == 4
    # the HNSW index answers for the new vector
    conn.execute("SET enable_seqscan = off")
    space = conn.execute(
        "SELECT table_name, dim FROM pgsearch.embedding_spaces WHERE target = 'asset'"
    ).fetchone()
    new_vec = vectors(conn)["new.png"]
    from psycopg import sql

    plan = conn.execute(
        sql.SQL(
            "EXPLAIN SELECT asset_id FROM {} ORDER BY embedding::halfvec({}) <=> %s::halfvec LIMIT 1"
        ).format(sql.Identifier("pgsearch", space[0]), sql.Literal(space[1])),
        (str(new_vec.tolist()),),
    ).fetchall()
    assert "hnsw" in " ".join(r[0] for r in plan).lower()


def test_stored_vectors_are_what_the_model_returns(conn: psycopg.Connection, tmp_path: Path) -> None:
    root = tmp_path / "images"
    folder = make_folder(root, 5, sizes=((64, 48), (40, 72)), subfolders=("a", "b"))
    make_coco(folder, tmp_path / "coco.json", kinds=("bbox", "polygon"), per_image=2)
    run(
        "load",
        str(root),
        "-d",
        "d",
        "-a",
        str(tmp_path / "coco.json"),
        "--format",
        "coco",
        "--model",
        TINY,
        "--workers",
        "1",
        "--batch-size",
        "3",
        "--quiet",
    )
    model = get_embedder(TINY)
    stored = vectors(conn)
    expected = model.embed_images([open_image(root / g.filename) for g in folder.images])
    for g, exp in zip(folder.images, expected, strict=True):
        got = stored[g.filename]
        assert abs(float(np.linalg.norm(got)) - 1) < 2e-3
        np.testing.assert_allclose(got, exp, atol=2e-3)
        assert np.abs(got - exp.astype(np.float16).astype(np.float32)).max() < 1e-3
    shape_vecs = vectors(conn, "shape")
    rows = conn.execute(
        "SELECT s.id, a.path, s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height FROM pgsearch.shapes s"
        " JOIN pgsearch.assets a ON a.id = s.asset_id"
    ).fetchall()
    assert len(rows) == 10 and set(shape_vecs) == {r[0] for r in rows}
    crops = [crop(open_image(path), (x, y, w, h)) for _, path, x, y, w, h in rows]
    expected = model.embed_images(crops)  # type: ignore[arg-type]
    for (sid, *_), exp in zip(rows, expected, strict=True):
        np.testing.assert_allclose(shape_vecs[sid], exp, atol=2e-3)


def _write_vectors(kind: str, path: Path, names: list[str], matrix: np.ndarray) -> Path:
    if kind == "npy":
        np.save(path.with_suffix(".npy"), matrix)
        path.with_suffix(".txt").write_text("\n".join(names) + "\n")
        return path.with_suffix(".npy")
    if kind == "npz":
        np.savez(path.with_suffix(".npz"), filenames=np.array(names), embeddings=matrix)
        return path.with_suffix(".npz")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"filename": names, "embedding": [list(map(float, r)) for r in matrix]}),
        path.with_suffix(".parquet"),
    )
    return path.with_suffix(".parquet")


@pytest.mark.parametrize("kind", ["npy", "npz", "parquet"])
def test_bring_your_own_embeddings(conn: psycopg.Connection, tmp_path: Path, kind: str) -> None:
    root = tmp_path / "images"
    folder = make_folder(root, 4)
    names = folder.filenames[:3]  # the fourth has no vector
    matrix = np.random.default_rng(1).standard_normal((3, 24)).astype(np.float32) * 5
    matrix[2] = 0  # a zero vector fails its asset
    file = _write_vectors(kind, tmp_path / "vecs", names, matrix)
    summary = json.loads(
        run("load", str(root), "-d", "d", "--embeddings", str(file), "--workers", "0", "--json").stdout
    )
    assert summary["model"] == f"external:{file.name}" and summary["embeddings"]["assets"] == 2
    stored = vectors(conn)
    for name, row in zip(names[:2], matrix[:2], strict=True):
        np.testing.assert_allclose(stored[name], row / np.linalg.norm(row), atol=1e-3)
    failed = {f["filename"]: f["reason"] for f in status()["models"][0]["assets"]["reasons"][0]["examples"]}
    reasons = {r["reason"] for r in status()["models"][0]["assets"]["reasons"]}
    assert reasons == {f"no vector for this file in {file.name}", f"zero or non-finite vector in {file.name}"}
    assert failed
    # such a model cannot embed anything new
    out = run("embed", "-d", "d", "--retry-failed", ok=False)
    assert out.exit_code != 0 and "brought with --embeddings" in out.output


def test_embeddings_named_after_a_model(conn: psycopg.Connection, tmp_path: Path) -> None:
    root = tmp_path / "images"
    folder = make_folder(root, 2)
    model = get_embedder("pixels")
    matrix = model.embed_images([open_image(root / f) for f in folder.filenames])
    file = _write_vectors("npy", tmp_path / "v", folder.filenames, matrix)
    shutil.copy(file, tmp_path / "copy.npy")
    run(
        "load",
        str(root),
        "-d",
        "d",
        "--embeddings",
        str(file),
        "--model",
        "pixels",
        "--workers",
        "0",
        "--quiet",
    )
    assert status()["models"][0]["model"] == "pixels"
    stored = vectors(conn)
    for name, row in zip(folder.filenames, matrix, strict=True):
        np.testing.assert_allclose(stored[name], row, atol=1e-3)
