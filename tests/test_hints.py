"""What a new user trips over (issue 19): every "run `X`" in an error message is a command that,
run as printed, fixes the situation; constant conditions are errors; several models behave; the
query image comes first among identical copies; the embedded server says it started; the
`models` part of the suite is skipped with its reason without torch."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import pgsearch
from pgsearch.cli import cli
from pgsearch.demo_data import generate
from pgsearch.loader.pipeline import LoadOptions, load_folder
from pgsearch.server import EmbeddedServer

TINY = "openclip:pgsearch-tiny:random"  # has a text tower; needs torch (the `models` part)


def pg(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> Result:
    result = pg(*args)
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result


def fails(*args: str) -> str:
    result = pg(*args)
    assert result.exit_code != 0, f"{args} succeeded: {result.output}"
    assert "Traceback" not in result.output
    return result.output


def hinted(message: str) -> list[str]:
    """The command in the message's first "run `...`" (the argv after `pgsearch`)."""
    found = re.search(r"run `(pgsearch [^`]+)`", message)
    assert found, f"no `run ...` hint in: {message}"
    argv = shlex.split(found.group(1))
    assert argv[0] == "pgsearch"
    return argv[1:]


def follow(*args: str) -> str:
    """Runs `args` (which fails), then the command its message says to run, then `args` again,
    which must now succeed. Returns the message."""
    message = fails(*args)
    ok(*hinted(message))
    ok(*args)
    return message


def _load(dsn: str, root: Path, dataset: str, *, model: str | None = "pixels", **extra: object) -> None:
    with pgsearch.db.connect(dsn) as conn:
        load_folder(conn, LoadOptions(root=str(root), dataset=dataset, model=model, workers=0, **extra))  # type: ignore[arg-type]


@pytest.fixture
def boxes(dsn: str, tmp_path: Path) -> str:
    images, annotations, metadata = generate(tmp_path / "data", n=24, seed=5)
    _load(dsn, images, "boxes", annotations=str(annotations), format="coco", metadata=str(metadata))
    return dsn


@pytest.fixture
def tags(dsn: str, tmp_path: Path) -> str:
    for label, colour in (("red", (200, 20, 20)), ("blue", (20, 20, 200))):
        (tmp_path / "flowers" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 24), (colour[0], colour[1] + 10 * i, colour[2])).save(
                tmp_path / "flowers" / label / f"{i}.png"
            )
    _load(dsn, tmp_path / "flowers", "flowers", format="folders")
    return dsn


# -- 1. no silent nonsense ------------------------------------------------------------------------


def test_constant_conditions_and_bare_numbers_are_errors(boxes: str) -> None:
    for query in ("3 >= 1", "1 == 1", '"a" == "a"', "not 0 > 1"):
        out = fails("query", query, "-d", "boxes")
        assert "compares constants only" in out and "line 1, column" in out and "^" in out
    out = fails("query", "3 and bird", "-d", "boxes")
    assert "is a number, not a condition" in out and "`3`" in out and 'count("3")' in out
    # Each spelling the message suggests is accepted by the language.
    with psycopg.connect(boxes) as conn:
        conn.execute(
            "INSERT INTO pgsearch.labels (dataset_id, name) SELECT id, '3' FROM pgsearch.datasets"
            " WHERE name = 'boxes'"
        )
    out = fails("query", "3", "-d", "boxes")
    assert '"3" in labels' in out
    for spelling in ("`3`", 'count("3")', '"3" in labels', "`3` >= 1"):
        ok("query", spelling, "-d", "boxes")


def test_an_unknown_name_that_is_a_metadata_key_suggests_it(boxes: str) -> None:
    with psycopg.connect(boxes) as conn:
        keys = conn.execute(
            "SELECT DISTINCT jsonb_object_keys(metadata) FROM pgsearch.assets ORDER BY 1"
        ).fetchall()
    key = keys[0][0]
    out = fails("query", f"{key} == 1", "-d", "boxes")
    assert f"did you mean metadata.{key}?" in out
    out = fails("query", f"{key} == 1", "-d", "boxes", "--shapes")
    assert f"asset.metadata.{key}" in out


# -- 2. hints that work ---------------------------------------------------------------------------


def test_after_embed_drop_the_hints_name_the_model(boxes: str) -> None:
    out = ok("embed", "-d", "boxes", "--drop", "--model", "pixels").output
    assert "`pgsearch embed --dataset boxes --model pixels`" in out
    status = ok("status", "-d", "boxes").output
    assert "no embedding model yet: `pgsearch embed --dataset boxes --model pixels`" in status
    message = follow("query", "-d", "boxes", "--similar-to", "1")
    assert "--model pixels" in message
    # A plain `pgsearch embed` knows the model too once it was dropped.
    ok("embed", "-d", "boxes", "--drop", "--model", "pixels")
    ok("embed", "-d", "boxes", "--quiet")
    ok("query", "-d", "boxes", "--similar-to", "1")


def test_a_dataset_loaded_without_embeddings_gets_a_runnable_hint(dsn: str, tmp_path: Path) -> None:
    images, _, _ = generate(tmp_path / "data", n=12, seed=2)
    _load(dsn, images, "raw", model=None, embed=False)
    message = follow("query", "-d", "raw", "--similar-to", "1")
    assert "pgsearch embed --dataset raw --model " in message


def test_shape_similarity_on_tags_says_tags_are_not_embedded(tags: str) -> None:
    with psycopg.connect(tags) as conn:
        shape = conn.execute("SELECT min(id) FROM pgsearch.shapes").fetchone()
    assert shape is not None and shape[0] is not None
    out = fails("query", "-d", "flowers", "--similar-to-shape", str(shape[0]))
    assert "whole-image tags" in out and "not embedded" in out and "pgsearch embed" not in out
    ok("query", "-d", "flowers", "--similar-to", "1")  # what the message proposes instead


def test_several_models_without_a_default_hint_at_setting_one(boxes: str) -> None:
    with psycopg.connect(boxes, autocommit=True) as conn:
        model = conn.execute(
            "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('second', 8) RETURNING id"
        ).fetchone()
        assert model is not None
        conn.execute(
            "SELECT pgsearch.ensure_embedding_space(d.id, %s, 'asset') FROM pgsearch.datasets d"
            " WHERE d.name = 'boxes'",
            (model[0],),
        )
    status = ok("status", "-d", "boxes").output
    assert "no default model" in status
    message = fails("query", "-d", "boxes", "--similar-to", "1")
    assert "several models" in message
    argv = shlex.split(re.search(r"`(pgsearch embed [^`]+--default-model [^`]+)`", message).group(1))  # type: ignore[union-attr]
    ok(*argv[1:])
    ok("query", "-d", "boxes", "--similar-to", "1")
    assert "pixels (256 dims, the default)" in ok("status", "-d", "boxes").output
    # The SQL search functions follow the default too.
    with psycopg.connect(boxes) as conn:
        rows = conn.execute("SELECT * FROM pgsearch.similar_assets(1, 3)").fetchall()
    assert len(rows) == 3
    assert "has no embeddings of model 'nope'" in fails("embed", "-d", "boxes", "--default-model", "nope")


# -- 3. several models without surprises ----------------------------------------------------------


def test_demo_try_lines_keep_working_after_a_second_model(dsn: str, tmp_path: Path) -> None:
    demo = ok("demo", "--images", "20", "--dir", str(tmp_path), "--quiet").output
    added = pg("embed", "-d", "demo", "--model", TINY, "--workers", "0")
    assert added.exit_code == 0, added.output
    assert "pixels stays the default model of demo" in added.stderr
    tries = [line.split("Try:", 1)[-1].strip() for line in demo.splitlines()]
    commands = [t for t in tries if t.startswith("pgsearch ") and "db psql" not in t]
    assert any("--similar-to" in c for c in commands)
    for command in commands:
        argv = shlex.split(command.split("   (", 1)[0])[1:]
        if argv[0] in ("outliers", "duplicates", "mislabels", "neighbors", "map", "curate"):
            continue  # test_demo_curation_try_lines_after_a_second_model
        ok(*argv)
    psql = next(line for line in demo.splitlines() if "db psql" in line)
    statement = re.search(r"then: (SELECT .*?;)\)", psql).group(1)  # type: ignore[union-attr]
    with psycopg.connect(dsn) as conn:
        assert len(conn.execute(statement).fetchall()) == 5
    assert "pgsearch db stop" not in demo  # --dsn: not the embedded server
    # The README's search functions, without naming a model.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### From psql and BI tools", 1)[1].split("\n### ", 1)[0]
    for statement in re.findall(r"^SELECT .*(?:similar|dissimilar)_(?:assets|shapes)\(.*$", section, re.M):
        with psycopg.connect(dsn) as conn:
            assert conn.execute(statement).fetchall(), statement
    status = ok("status", "-d", "demo").output
    assert "pixels (256 dims, the default)" in status


def test_demo_curation_try_lines_after_a_second_model(dsn: str, tmp_path: Path) -> None:
    ok("demo", "--images", "20", "--dir", str(tmp_path), "--quiet")
    ok("embed", "-d", "demo", "--model", TINY, "--workers", "0", "--quiet")
    ok("outliers", "--dataset", "demo", "-n", "10")


def test_text_search_picks_the_model_with_a_text_tower(boxes: str) -> None:
    ok("embed", "-d", "boxes", "--model", TINY, "--workers", "0", "--quiet")
    ok("embed", "-d", "boxes", "--default-model", "pixels")
    rows = ok("query", "-d", "boxes", "--text", "a squirrel", "-f", "json", "--limit", "3").output
    assert rows.count('"distance"') == 3
    # Image similarity keeps the default model.
    ok("query", "-d", "boxes", "--similar-to", "1")


# -- 5. the query item comes first among identical copies -----------------------------------------


def test_the_query_image_comes_before_its_identical_copy(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(folder / "a.png")
    (folder / "b.png").write_bytes((folder / "a.png").read_bytes())
    for i in range(6):
        Image.new("RGB", (40, 30), (30 * i, 200 - 20 * i, 40)).save(folder / f"other{i}.png")
    _load(dsn, folder, "same")
    with pgsearch.connect(dsn) as db:
        for name in ("a.png", "b.png"):
            rows = db.query(dataset="same", similar_to=name, limit=3)
            assert rows[0]["filename"] == name and rows[0]["distance"] == rows[1]["distance"]
            by_id = db.query(dataset="same", similar_to=rows[0]["id"], limit=3)
            assert by_id[0]["id"] == rows[0]["id"]
            narrow = db.query(f'filename in ("a.png", "b.png", "{name}")', dataset="same", similar_to=name)
            assert narrow[0]["filename"] == name


# -- 6. the embedded server says that it started --------------------------------------------------


def test_an_already_running_server_is_not_announced(
    pg_server: EmbeddedServer, pg_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = EmbeddedServer(pg_home)
    again.url()
    assert not again.started and "started the embedded" not in capsys.readouterr().err


# -- 7. the suite without torch -------------------------------------------------------------------

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "open_clip", "timm"):
            raise ImportError(f"{name} hidden for this test")
        return None
sys.meta_path.insert(0, Block())
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_without_torch_model_tests_skip_with_a_reason(tmp_path: Path) -> None:
    tests = Path(__file__).parent
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_TORCH,
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",
            str(tests / "test_models.py"),
            str(tests / "test_hints.py::test_text_search_picks_the_model_with_a_text_tower"),
            str(tests / "test_translator_golden.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tests.parent,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "needs torch" in out and "skipped" in out and "error" not in out.lower().split("short test")[0]
    assert re.search(r"\d+ passed", out)
