"""Files that fail to load (issue 19): found with the query language (`load_error`), shown in the
view, and the load summary and `pgsearch status` print the command that lists them, which runs
as printed."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import psycopg
from click.testing import CliRunner, Result
from imagegen import make_folder

from pgsearch.cli import cli

# A name that needs quoting in a shell: the printed command must still run as it is.
DATASET = "pets 'n cats"


def pg(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result


def printed_command(output: str, lead: str) -> list[str]:
    """The argv after `pgsearch` of the command printed after `lead` on one line of `output`."""
    found = re.search(re.escape(lead) + r"\s*(pgsearch .+)$", output, re.MULTILINE)
    assert found, f"no {lead!r} line in:\n{output}"
    argv = shlex.split(found.group(1))
    assert argv[0] == "pgsearch"
    return argv[1:]


def filenames(*query_args: str) -> list[str]:
    rows = json.loads(pg("query", *query_args, "--dataset", DATASET, "--format", "json").output)
    return sorted(row["filename"] for row in rows)


def test_a_corrupt_image_is_found_by_the_query_the_summary_prints(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "images", 4, formats=("PNG",))
    (tmp_path / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    good = sorted(image.filename for image in folder.images)

    loaded = pg("load", str(tmp_path / "images"), "--dataset", DATASET, "--model", "pixels", "--workers", "0")
    assert "1 failed" in loaded.output and "corrupt.jpg: corrupt image" in loaded.output, loaded.output

    # The command the load summary prints lists the failed file, and only it.
    hint = printed_command(loaded.output, "every failed file of the dataset:")
    assert hint == ["query", "load_error != null", "--dataset", DATASET]
    listed = CliRunner().invoke(cli, hint, catch_exceptions=False)
    assert listed.exit_code == 0 and "corrupt.jpg" in listed.output, listed.output
    assert not any(name in listed.output for name in good), listed.output
    assert "(1 row)" in listed.output

    # `pgsearch status` counts it and prints the same command.
    status = pg("status", "--dataset", DATASET)
    assert "(1 unreadable)" in status.output, status.output
    assert printed_command(status.output, "list the unreadable ones:") == hint

    # The field in the language: missing for a good file, the loader's reason for the bad one.
    assert filenames("load_error != null") == ["corrupt.jpg"]
    assert filenames("load_error == null") == good
    assert filenames('matches(load_error, "^corrupt image")') == ["corrupt.jpg"]
    assert filenames('"corrupt" in load_error and width == null') == ["corrupt.jpg"]
    assert filenames("not load_error != null and width > 0") == good
    assert filenames('load_error == "no such reason"') == []

    # The view shows the reason, as docs/query-language.md says.
    rows = conn.execute(
        "SELECT filename, load_error FROM pgsearch.v_assets WHERE dataset = %s AND load_error IS NOT NULL",
        (DATASET,),
    ).fetchall()
    assert [r[0] for r in rows] == ["corrupt.jpg"] and rows[0][1].startswith("corrupt image")


def test_a_clean_load_prints_no_failed_files_hint(dsn: str, tmp_path: Path) -> None:
    make_folder(tmp_path / "images", 2, formats=("PNG",))
    loaded = pg("load", str(tmp_path / "images"), "--dataset", DATASET, "--no-embed", "--workers", "0")
    assert "0 failed" in loaded.output and "load_error" not in loaded.output, loaded.output
    status = pg("status", "--dataset", DATASET)
    assert "(0 unreadable)" in status.output and "load_error" not in status.output, status.output
