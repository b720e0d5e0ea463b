"""`pgsearch translate` through click, and its output run by the real psql binary."""

from __future__ import annotations

import subprocess

import psycopg
from click.testing import CliRunner
from translator_reference import build_dataset, select_ids

from pgsearch.catalog import load_catalog
from pgsearch.cli import cli
from pgsearch.server import psql_executable


def _psql(dsn: str, statement: str) -> list[str]:
    done = subprocess.run(
        [psql_executable(), dsn, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\t"],
        input=statement,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def _translate(*args: str) -> str:
    result = CliRunner().invoke(cli, ["translate", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_translate_output_runs_in_psql(dsn: str, conn: psycopg.Connection) -> None:
    data = build_dataset(conn, n_assets=120)
    catalog = load_catalog(conn, "ref")
    for query in (
        '(squirrel > 2 or height > 200) and "dataset2" in groups',
        "wheels % 2 == 1",
        '"it\'s" in groups or contains(filename, "a\'b")',
        'metadata.camera == "Ärger" or metadata.iso > 150',
        "inside(x, y, [[-10, -10], [10, -10], [0, 10]]) and not cluster == -1",
    ):
        statement = _translate(query, "--dataset", "ref", "--limit", "1000")
        assert "%(" not in statement and statement.rstrip().endswith(";")
        ids = [int(line.split("\t")[0]) for line in _psql(dsn, statement)]
        assert ids == select_ids(query, catalog, data.assets, "asset")


def test_translate_shapes_and_similarity(dsn: str, conn: psycopg.Connection) -> None:
    build_dataset(conn, n_assets=60)
    ds = conn.execute("SELECT id FROM pgsearch.datasets WHERE name = 'ref'").fetchone()[0]
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('toy', 3) RETURNING id"
    ).fetchone()[0]
    space = conn.execute("SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (ds, model)).fetchone()[0]
    conn.execute(
        "INSERT INTO pgsearch.asset_embeddings (space_id, asset_id, embedding)"
        " SELECT %s, id, ARRAY[1, id %% 7, id %% 3]::real[]::halfvec FROM pgsearch.assets WHERE dataset_id = %s",
        (space, ds),
    )
    conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
    first = conn.execute(
        "SELECT filename FROM pgsearch.assets WHERE dataset_id = %s ORDER BY id LIMIT 1", (ds,)
    ).fetchone()[0]
    conn.commit()

    rows = _psql(dsn, _translate('label == "squirrel" and asset.width > 100', "-d", "ref", "--shapes"))
    assert rows and all(row.split("\t")[4] == "squirrel" for row in rows)

    statement = _translate("width > 0", "-d", "ref", "--similar-to", first, "--limit", "5")
    rows = _psql(dsn, statement)
    assert len(rows) == 5 and rows[0].split("\t")[1] == first
    distances = [float(row.split("\t")[-1]) for row in rows]
    assert distances == sorted(distances)

    rows = _psql(dsn, _translate("--dataset", "ref", "--similar-to", first, "--dissimilar", "--limit", "5"))
    distances = [float(row.split("\t")[-1]) for row in rows]
    assert len(rows) == 5 and distances == sorted(distances, reverse=True)


def test_translate_errors_are_one_line_messages(dsn: str, conn: psycopg.Connection) -> None:
    build_dataset(conn, n_assets=10)
    runner = CliRunner()
    result = runner.invoke(cli, ["translate", "squirel > 2", "--dataset", "ref"])
    assert (
        result.exit_code == 1
        and "did you mean squirrel?" in result.output
        and "Traceback" not in result.output
    )
    result = runner.invoke(cli, ["translate", "width > 1", "--dataset", "nope"])
    assert result.exit_code == 1 and "no dataset named 'nope'" in result.output
    result = runner.invoke(cli, ["translate", "", "--dataset", "ref"])
    assert result.exit_code == 1 and "empty query" in result.output
    result = runner.invoke(cli, ["translate", "--dataset", "ref", "--similar-to", "x.jpg"])
    assert result.exit_code == 1 and "no asset embeddings" in result.output
    result = runner.invoke(cli, ["translate", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
