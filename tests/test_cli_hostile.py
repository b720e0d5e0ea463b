"""`pgsearch query`, `translate` and `demo` against hostile or careless use: unwritable outputs,
empty names, unknown models, option combinations that make no sense, queries starting with '-',
hostile cell contents, and a demo pointed at someone's own dataset."""

from __future__ import annotations

import csv
import errno
import io
import json
import shutil
import subprocess
import unicodedata
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

import pgsearch
from pgsearch.cli import cli
from pgsearch.demo_data import generate
from pgsearch.loader.pipeline import LoadOptions, load_folder
from pgsearch.server import psql_executable

N_ASSETS = 30


@pytest.fixture
def loaded(dsn: str, tmp_path: Path) -> str:
    images, annotations, metadata = generate(tmp_path / "data", n=N_ASSETS, seed=3)
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


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["query", *args])


def translate(*args: str) -> Result:
    return CliRunner().invoke(cli, ["translate", *args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def fails(result: Result, needle: str, code: int = 1) -> Result:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.output
    return result


def rows_of(result: Result) -> list[dict]:
    return json.loads(ok(result).stdout)


def groups_count(dsn: str, group: str) -> int:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pgsearch.assets WHERE %s = ANY(groups)", (group,)
        ).fetchone()
    assert found is not None
    return int(found[0])


def set_filename(dsn: str, asset_id: int, name: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgsearch.assets SET filename = %s WHERE id = %s", (name, asset_id))


# 1. -o somewhere unwritable ------------------------------------------------------------------


def test_unwritable_output_is_one_line_and_changes_nothing(loaded: str, tmp_path: Path) -> None:
    fails(run("-d", "demo", "-o", "/proc/nope.json", "-f", "json"), "cannot write /proc/nope.json")
    missing = tmp_path / "no_such_dir" / "x.html"
    fails(
        run("-d", "demo", "-f", "html", "-o", str(missing), "--add-to-group", "g1"), f"cannot write {missing}"
    )
    assert groups_count(loaded, "g1") == 0
    fails(run("-d", "demo", "-o", str(tmp_path), "--add-to-group", "g1"), "is a directory")
    assert groups_count(loaded, "g1") == 0
    fails(run("-d", "demo", "--sql", "-o", str(missing)), f"cannot write {missing}")
    assert not missing.parent.exists()


def test_a_failed_write_is_one_line_naming_the_path(
    loaded: str, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    fails(run("-d", "demo", "-o", "out.json"), "cannot write out.json: No space left on device")


# 2. demo --dir unusable -----------------------------------------------------------------------


def test_demo_dir_that_cannot_be_created(dsn: str) -> None:
    result = fails(CliRunner().invoke(cli, ["demo", "--dir", "/proc/nope", "-q"]), "/proc/nope")
    assert len(result.stderr.strip().splitlines()) == 1


# 3. --model validated even without similarity -------------------------------------------------


@pytest.mark.parametrize("command", [run, translate])
def test_unknown_model_is_an_error_without_similarity_too(loaded: str, command: object) -> None:
    assert callable(command)
    fails(
        command("-d", "demo", "--model", "unknown"), "no asset embeddings of model 'unknown'; it has: pixels"
    )
    fails(command("-d", "demo", "--shapes", "--model", "unknown"), "no shape embeddings of model 'unknown'")
    ok(command("-d", "demo", "--model", "pixels", "-n", "2"))


# 4. empty group names -------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--add-to-group", "--remove-from-group"])
@pytest.mark.parametrize("name", ["", "   "])
def test_empty_group_name_is_a_usage_error(loaded: str, option: str, name: str) -> None:
    fails(run("-d", "demo", option, name), "must not be empty", code=2)


# 5. --sql / --explain and the other options ---------------------------------------------------


def test_sql_and_explain_write_to_output(loaded: str, in_tmp: Path) -> None:
    ok(run("bird >= 1", "-d", "demo", "--sql", "-o", "q.sql"))
    statement = (in_tmp / "q.sql").read_text()
    assert statement.startswith("SELECT") and statement.rstrip().endswith(";")
    assert statement == ok(run("bird >= 1", "-d", "demo", "--sql")).stdout
    ok(run("bird >= 1", "-d", "demo", "--explain", "-o", "plan.txt"))
    assert "Limit" in (in_tmp / "plan.txt").read_text()
    ok(run("bird >= 1", "-d", "demo", "--sql", "-o", "q.html"))  # text, whatever the extension
    assert (in_tmp / "q.html").read_text().startswith("SELECT")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--sql", "--explain"), "--sql and --explain exclude each other"),
        (("--sql", "--add-to-group", "g"), "changes no group"),
        (("--explain", "--remove-from-group", "g"), "changes no group"),
        (("--sql", "-f", "json"), "-f/--format does not apply"),
        (("--explain", "-f", "table"), "-f/--format does not apply"),
        (("--add-to-group", "a", "--remove-from-group", "b"), "exclude each other"),
    ],
)
def test_nonsense_combinations_are_usage_errors(loaded: str, args: tuple[str, ...], needle: str) -> None:
    fails(run("-d", "demo", *args), needle, code=2)
    assert groups_count(loaded, "g") == 0


# 6. limits: help and behaviour agree ----------------------------------------------------------


def test_limit_and_offset_ranges_agree_with_the_translator(loaded: str) -> None:
    from pgsearch.options import MAX_LIMIT, MAX_OFFSET
    from pgsearch.translator import compiler

    assert (MAX_LIMIT, MAX_OFFSET) == (compiler.MAX_LIMIT, compiler.MAX_OFFSET)
    for command in ("query", "translate"):
        shown = CliRunner().invoke(cli, [command, "--help"]).stdout
        assert "-n, --limit" in shown and "1<=x<=100000" in shown and "0<=x<=1000000" in shown
        for args in (("-n", "0"), ("--limit", "100001"), ("--offset", "1000001"), ("--offset", "-1")):
            fails(CliRunner().invoke(cli, [command, "-d", "demo", *args]), "Invalid value", code=2)
    assert "LIMIT 3" in ok(translate("-d", "demo", "-n", "3")).stdout
    assert len(rows_of(run("-d", "demo", "-f", "json", "-n", "1", "--offset", "1000000"))) == 0


# 7. -o - / -o '' / default html file / format from the extension ------------------------------


def test_output_dash_is_stdout_and_empty_is_an_error(loaded: str, in_tmp: Path) -> None:
    rows = rows_of(run("-d", "demo", "-f", "json", "-n", "2", "-o", "-"))
    assert len(rows) == 2 and not (in_tmp / "-").exists()
    fails(run("-d", "demo", "-o", ""), "must not be empty", code=2)
    assert list(in_tmp.iterdir()) == []


def test_default_html_file_is_named_and_never_overwritten(loaded: str, in_tmp: Path) -> None:
    page = in_tmp / "pgsearch-results.html"
    first = ok(run("-d", "demo", "-f", "html", "-n", "2"))
    assert str(page) in first.stderr and "<figure" in page.read_text()
    page.write_text("mine")
    fails(run("-d", "demo", "-f", "html", "-n", "2"), "does not overwrite")
    assert page.read_text() == "mine"
    ok(run("-d", "demo", "-f", "html", "-n", "2", "-o", "pgsearch-results.html"))  # asked for by name
    assert "<figure" in page.read_text()


def test_format_follows_the_output_extension(loaded: str, in_tmp: Path) -> None:
    ok(run("-d", "demo", "-n", "2", "-o", "r.html"))
    assert (in_tmp / "r.html").read_text().startswith("<!DOCTYPE html>")
    ok(run("-d", "demo", "-n", "2", "-o", "r.json"))
    assert len(json.loads((in_tmp / "r.json").read_text())) == 2
    ok(run("-d", "demo", "-n", "2", "-o", "r.csv"))
    assert len(list(csv.DictReader(io.StringIO((in_tmp / "r.csv").read_text())))) == 2
    ok(run("-d", "demo", "-n", "2", "-o", "r.txt"))
    assert "(2 rows)" in (in_tmp / "r.txt").read_text()
    ok(run("-d", "demo", "-n", "2", "-o", "forced.json", "-f", "csv"))  # an explicit -f wins
    assert (in_tmp / "forced.json").read_text().startswith("id,")


# 8. CSV: header without rows, formulas neutralised ---------------------------------------------


def test_csv_without_rows_prints_the_header(loaded: str) -> None:
    result = ok(run('filename == "nothing"', "-d", "demo", "-f", "csv"))
    assert result.stdout.splitlines() == [result.stdout.splitlines()[0]]
    assert result.stdout.startswith("id,filename,")
    shapes = ok(run('label == "nothing"', "-d", "demo", "--shapes", "-f", "csv"))
    assert shapes.stdout.startswith("id,asset_id,")


def test_csv_neutralises_formulas(loaded: str) -> None:
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    for asset_id, name in enumerate(hostile, start=1):
        set_filename(loaded, asset_id, name)
    rows = list(csv.DictReader(io.StringIO(ok(run("-d", "demo", "-f", "csv", "-n", "6")).stdout)))
    assert [r["filename"] for r in rows] == ["'" + name for name in hostile]
    assert all(not r["width"].startswith("'") for r in rows)
    # JSON keeps the exact values.
    assert [r["filename"] for r in rows_of(run("-d", "demo", "-f", "json", "-n", "6"))] == hostile


# 9. table: escapes and display width ----------------------------------------------------------


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_table_escapes_control_and_bidi_characters(loaded: str) -> None:
    set_filename(loaded, 1, "a\nb\x1b[31mc\u202ed\te\r\u2066f.jpg")
    table = ok(run("-d", "demo", "-n", "3")).stdout
    assert "a\\nb\\x1b[31mc\\u202ed\\te\\r\\u2066f.jpg" in table
    assert not any(c in table for c in "\x1b\u202e\t\r\u2066")
    assert len(table.splitlines()) == 3 + 3  # header, rule, 3 rows, count
    raw = rows_of(run("-d", "demo", "-f", "json", "-n", "1"))[0]["filename"]
    assert raw == "a\nb\x1b[31mc\u202ed\te\r\u2066f.jpg"


def test_table_pads_wide_characters_by_display_width(loaded: str) -> None:
    set_filename(loaded, 1, "猫猫猫.jpg")
    set_filename(loaded, 2, "🐱🐱 cat.jpg")
    set_filename(loaded, 3, "漢" * 60)  # cut to the 48-column limit
    lines = ok(run("-d", "demo", "-n", "4")).stdout.splitlines()[:6]
    header = lines[0]
    start = header.index("width")
    for line in lines[2:]:
        # the width column starts at the same screen column in every line
        cut = 0
        while _display_width(line[:cut]) < start:
            cut += 1
        assert _display_width(line[:cut]) == start, line
        assert line[cut].isdigit(), line
    assert "…" in lines[4]


# 10. groups: what was changed, and what the rows show -----------------------------------------


def test_add_to_group_says_how_many_match_and_rows_show_the_group(loaded: str) -> None:
    result = ok(run("-d", "demo", "-n", "5", "--add-to-group", "picked", "-f", "json"))
    assert "added 5 of the 5 assets found to group 'picked'" in result.stderr
    assert f"{N_ASSETS} assets match; only those of rows 1 to 5 were added" in result.stderr
    assert "-n/--limit" in result.stderr
    rows = json.loads(result.stdout)
    assert all("picked" in r["groups"] for r in rows) and groups_count(loaded, "picked") == 5
    everything = ok(run("-d", "demo", "--add-to-group", "picked"))
    assert "added 25 of the 30 assets found" in everything.stderr and "match; only" not in everything.stderr
    removed = ok(run("-d", "demo", "-n", "2", "--remove-from-group", "picked", "-f", "json"))
    assert "removed 2 of the 2 assets found" in removed.stderr
    assert all("picked" not in r["groups"] for r in json.loads(removed.stdout))


def test_remove_from_a_group_nobody_is_in(loaded: str) -> None:
    ok(run("-d", "demo", "-n", "2", "--add-to-group", "review-me"))
    result = ok(run("-d", "demo", "--remove-from-group", "review_me"))
    assert "no asset of dataset 'demo' is in group 'review_me'; nothing removed" in result.stderr
    assert "did you mean 'review-me'?" in result.stderr
    assert groups_count(loaded, "review-me") == 2


# 11. queries starting with '-' ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["query", "translate"])
@pytest.mark.parametrize("text", ["-width < -400", '-filename == "a"', "-output == 1", "-height>3"])
def test_query_starting_with_dash_points_at_double_dash(
    loaded: str, in_tmp: Path, command: str, text: str
) -> None:
    result = fails(CliRunner().invoke(cli, [command, text, "-d", "demo"]), "--", code=2)
    assert "-- " in result.stderr and "must come after" in result.stderr
    assert result.stdout == "" and list(in_tmp.iterdir()) == []


def test_unknown_dash_word_error_mentions_double_dash(loaded: str) -> None:
    fails(run("-bird", "-d", "demo"), "must come after `--`", code=2)
    assert "after `--`" in CliRunner().invoke(cli, ["query", "--help"]).stdout


def test_query_after_double_dash_runs(loaded: str) -> None:
    rows = rows_of(run("-d", "demo", "-f", "json", "--", "-width < -400"))
    assert rows and all(r["width"] > 400 for r in rows)
    assert "WHERE" in ok(translate("-d", "demo", "--", "-width < -400")).stdout


# 12. demo into an existing dataset ------------------------------------------------------------


def test_demo_refuses_someone_elses_dataset(dsn: str, tmp_path: Path) -> None:
    own = tmp_path / "own"
    images, _, _ = generate(tmp_path / "mine", n=10, seed=1)
    own.mkdir()
    for picture in sorted(images.iterdir())[:4]:
        shutil.copy(picture, own / picture.name)
    with pgsearch.db.connect(dsn) as conn:
        load_folder(conn, LoadOptions(root=str(own), dataset="mine", model="pixels", workers=0))
    demo_dir = tmp_path / "demo"
    result = fails(
        CliRunner().invoke(
            cli, ["demo", "--dataset", "mine", "--dir", str(demo_dir), "--images", "10", "-q"]
        ),
        "not demo images",
    )
    assert "--dataset" in result.stderr
    with psycopg.connect(dsn) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pgsearch.assets a JOIN pgsearch.datasets d ON d.id = a.dataset_id"
            " WHERE d.name = 'mine'"
        ).fetchone()
    assert count is not None and count[0] == 4
    assert not (demo_dir / "data" / "images").exists()


@pytest.mark.parametrize("name", ["", "  "])
def test_demo_rejects_an_empty_dataset_name_before_drawing(dsn: str, tmp_path: Path, name: str) -> None:
    fails(CliRunner().invoke(cli, ["demo", "--dataset", name, "--dir", str(tmp_path / "d")]), "empty", code=2)
    assert not (tmp_path / "d").exists()


# 13. translate mirrors query ------------------------------------------------------------------


def _psql_ids(dsn: str, statement: str) -> list[int]:
    done = subprocess.run(
        [psql_executable(), dsn, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(line.split("|")[0]) for line in done.stdout.splitlines() if line]


def test_translate_means_what_query_means(loaded: str) -> None:
    cases = [
        ("--shapes", "--similar-to", "1"),
        ("--similar-to", "2"),
        ("--similar-to", "2", "--dissimilar"),
    ]
    shape = rows_of(run("-d", "demo", "--shapes", "-f", "json", "-n", "1"))[0]["id"]
    cases.append(("--similar-to-shape", str(shape)))
    for args in cases:
        expected = [r["id"] for r in rows_of(run("-d", "demo", *args, "-f", "json", "-n", "8"))]
        statement = ok(translate("-d", "demo", *args, "-n", "8")).stdout
        assert _psql_ids(loaded, statement) == expected, args
        assert statement == ok(run("-d", "demo", *args, "-n", "8", "--sql")).stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--similar-to", "99999"), "has no asset 99999"),
        (("--similar-to", "nope.jpg"), "has no asset 'nope.jpg'"),
        (("--shapes", "--similar-to", "99999"), "has no asset 99999"),
        (("--similar-to-shape", "99999"), "has no shape 99999"),
    ],
)
def test_translate_checks_the_anchor_like_query(loaded: str, args: tuple[str, ...], needle: str) -> None:
    fails(translate("-d", "demo", *args), needle)
    fails(run("-d", "demo", *args), needle)


def test_translate_refuses_an_anchor_without_embedding(loaded: str) -> None:
    with psycopg.connect(loaded) as conn:
        conn.execute("DELETE FROM pgsearch.asset_embeddings WHERE asset_id = 3")
    fails(translate("-d", "demo", "--similar-to", "3"), "asset 3 has no asset embedding")
    fails(run("-d", "demo", "--similar-to", "3"), "asset 3 has no asset embedding")
