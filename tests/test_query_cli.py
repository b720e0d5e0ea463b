"""`pgsearch query`, the Python API and `pgsearch demo` on a dataset loaded by the real loader."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

import pgsearch
from pgsearch.api import SearchError
from pgsearch.cli import cli
from pgsearch.demo_data import generate
from pgsearch.loader.pipeline import LoadOptions, load_folder
from pgsearch.server import psql_executable


@pytest.fixture
def loaded(dsn: str, tmp_path: Path) -> str:
    images, annotations, metadata = generate(tmp_path / "data", n=48, seed=3)
    with pgsearch.db.connect(dsn) as conn:
        load_folder(
            conn,
            LoadOptions(
                root=str(images),
                dataset="demo",
                annotations=str(annotations),
                format="coco",
                metadata=str(metadata),
                model="pixels",
                workers=0,
            ),
        )
    return dsn


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["query", *args])


def as_json(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_rows_match_a_plain_python_filter(loaded: str) -> None:
    rows = as_json(run('(squirrel > 2 or height > 200) and "dataset2" in groups', "-d", "demo", "-f", "json"))
    with psycopg.connect(loaded) as conn:
        everything = conn.execute("SELECT id, label_counts, height, groups FROM pgsearch.assets").fetchall()
    expected = sorted(
        i
        for i, counts, height, groups in everything
        if (counts.get("squirrel", 0) > 2 or (height or 0) > 200) and "dataset2" in groups
    )
    assert [r["id"] for r in rows] == expected and expected
    assert {"id", "filename", "width", "height", "status", "groups", "metadata"} <= set(rows[0])
    odd = as_json(run("wheels % 2 == 1", "-d", "demo", "-f", "json"))
    assert all(r["label_counts"].get("wheels", 0) % 2 == 1 for r in odd)


def test_similarity_json_has_distance_and_limit(loaded: str) -> None:
    first = as_json(run("-d", "demo", "-f", "json", "--limit", "1"))[0]["filename"]
    rows = as_json(run("-d", "demo", "--similar-to", first, "-f", "json", "--limit", "5"))
    assert (
        len(rows) == 5 and rows[0]["filename"] == first and rows[0]["distance"] == pytest.approx(0, abs=1e-3)
    )
    assert [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)
    far = as_json(run("-d", "demo", "--similar-to", first, "--dissimilar", "-f", "json", "--limit", "5"))
    assert [r["distance"] for r in far] == sorted((r["distance"] for r in far), reverse=True)
    assert far[0]["distance"] > rows[-1]["distance"]
    page2 = as_json(run("-d", "demo", "--similar-to", first, "-f", "json", "--limit", "3", "--offset", "2"))
    assert [r["id"] for r in page2] == [r["id"] for r in rows[2:5]]


def test_shapes_rows_and_shape_similarity(loaded: str) -> None:
    cars = as_json(run('label == "car"', "-d", "demo", "--shapes", "-f", "json"))
    assert cars and all(r["label"] == "car" and r["bbox_width"] > 0 for r in cars)
    near = as_json(run("-d", "demo", "--similar-to-shape", str(cars[0]["id"]), "-f", "json", "--limit", "4"))
    assert near[0]["id"] == cars[0]["id"] and "asset_id" in near[0]


def test_similar_to_file_outside_the_dataset(loaded: str, tmp_path: Path) -> None:
    from PIL import Image

    outside = tmp_path / "query.png"
    Image.new("RGB", (200, 150), (90, 150, 230)).save(outside)
    rows = as_json(run("-d", "demo", "--similar-to-file", str(outside), "-f", "json", "--limit", "3"))
    assert len(rows) == 3 and all(r["filename"].startswith("sky_") for r in rows)


def test_csv_and_table_formats(loaded: str) -> None:
    result = run("status == 'review'", "-d", "demo", "-f", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and all(r["status"] == "review" for r in rows)
    table = run("status == 'review'", "-d", "demo")
    assert table.exit_code == 0 and f"({len(rows)} row" in table.output


def test_sql_runs_as_is_in_psql(loaded: str) -> None:
    query = 'bird >= 1 and "train" in groups'
    statement = run(query, "-d", "demo", "--sql", "--limit", "1000")
    assert statement.exit_code == 0
    done = subprocess.run(
        [psql_executable(), loaded, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement.stdout],
        capture_output=True,
        text=True,
        check=True,
    )
    psql_ids = [int(line.split("|")[0]) for line in done.stdout.splitlines() if line]
    assert psql_ids == [r["id"] for r in as_json(run(query, "-d", "demo", "-f", "json", "--limit", "1000"))]


def test_explain(loaded: str) -> None:
    result = run("-d", "demo", "--similar-to", "1", "--explain")
    assert result.exit_code == 0 and "Limit" in result.output


def test_add_and_remove_group(loaded: str) -> None:
    added = run('"sky_"', "-d", "demo", "--add-to-group", "skies", "-f", "json")
    skies = [r["id"] for r in as_json(added)]
    assert skies
    in_group = as_json(run('"skies" in groups', "-d", "demo", "-f", "json"))
    assert [r["id"] for r in in_group] == skies
    assert run('"sky_"', "-d", "demo", "--remove-from-group", "skies").exit_code == 0
    assert as_json(run('"skies" in groups', "-d", "demo", "-f", "json")) == []


def test_one_statement_per_search(loaded: str) -> None:
    """The search itself is one statement (the only one with the paging parameters); around it
    the client reads the dataset's catalog (a few indexed look-ups, so a dataset dropped and
    loaded again is seen at once) and, for a stored anchor, checks that it exists."""

    class Counting(psycopg.Cursor):  # type: ignore[type-arg]
        searches = 0
        others = 0

        def execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
            if isinstance(params, dict) and "limit" in params:
                Counting.searches += 1
            else:
                Counting.others += 1
            return super().execute(query, params, **kwargs)

    def statements(client: pgsearch.api.Client, query: str | None, **kwargs: object) -> tuple[int, int]:
        searches, others = Counting.searches, Counting.others
        client.query(query, dataset="demo", **kwargs)
        return Counting.searches - searches, Counting.others - others

    with pgsearch.connect(loaded) as client:
        client.catalog("demo")  # metadata keys: read once per client, then remembered
        client.conn.cursor_factory = Counting
        dim = client.catalog("demo").spaces[0].dim
        for query, kwargs in [
            ("annotations >= 1", {}),
            (None, {"shapes": True}),
            ("annotations >= 1", {"vector": [0.1] * dim}),
            ("annotations >= 1", {"vector": [0.1] * dim, "dissimilar": True}),
            ("annotations >= 1", {"similar_to": 1}),
        ]:
            searches, others = statements(client, query, **kwargs)
            assert searches == 1, (query, kwargs)
            # catalog look-ups (dataset, labels, runs, spaces, field columns), plus the anchor
            # check for a stored asset
            assert others <= (6 if "similar_to" in kwargs else 5), (query, kwargs, others)


def test_api_rows_dataframe_and_errors(loaded: str) -> None:
    with pgsearch.connect(loaded) as client:
        rows = client.query("width >= 300", dataset="demo", limit=7)
        assert len(rows) == 7 and all(r["width"] >= 300 for r in rows)
        frame = rows.to_dataframe()
        assert list(frame["id"]) == [r["id"] for r in rows]
        assert "SELECT" in rows.sql
        with pytest.raises(SearchError, match="give one of"):
            client.query(dataset="demo", similar_to=1, text="x")
        with pytest.raises(SearchError, match="dissimilar needs"):
            client.query(dataset="demo", dissimilar=True)
        with pytest.raises(pgsearch.PgsearchError, match="no dataset named 'dmeo'; did you mean 'demo'"):
            client.query(dataset="dmeo")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("width >", "-d", "demo"), "line 1, column"),
        (("widht > 3", "-d", "demo"), "did you mean"),
        (("filename > 3", "-d", "demo"), "filename"),
        (("-d", "demo", "--text", "a squirrel"), "embeds images only"),
        (("-d", "demo", "--similar-to", "nope.jpg"), "no asset 'nope.jpg'"),
        (("-d", "demo", "--dissimilar"), "dissimilar needs"),
        (("-d", "nothing"), "no dataset named 'nothing'"),
        (("-d", "demo", "--similar-to", "1", "--model", "openclip:nope"), "no asset embeddings of model"),
    ],
)
def test_user_mistakes_are_one_clear_error(loaded: str, args: tuple[str, ...], needle: str) -> None:
    result = run(*args)
    assert result.exit_code != 0
    assert needle in result.output, result.output
    assert "Traceback" not in result.output


def test_demo_runs_and_writes_a_gallery(dsn: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--images", "30", "--dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "gallery.html"
    assert page.exists() and str(page.resolve()) in result.output
    assert "wheels % 2 == 1" in result.output and "least similar to" in result.output
    html = page.read_text()
    assert html.count("<figure") >= 10 and "data:image/jpeg;base64," in html
    again = CliRunner().invoke(cli, ["demo", "--images", "30", "--dir", str(tmp_path), "--quiet"])
    assert again.exit_code == 0 and "0 new" in again.output and "30 unchanged" in again.output
