"""The dataset follows the disk (issue 19, item 4): a reload reports the files that disappeared
and keeps their assets; --prune deletes them with their shapes, vectors and memberships, and
only those that came from under the reloaded folder; a reload that only changes groups, status
or metadata reports the assets as updated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner
from imagegen import make_folder

from pgsearch.cli import cli


def _load(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["load", *args, "--model", "pixels", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(query).fetchone()[0])


def test_gone_files_are_reported_then_pruned(dsn: str, tmp_path: Path) -> None:
    root, other = tmp_path / "a", tmp_path / "b"
    folder = make_folder(root, 6)
    make_folder(other, 3, seed=9, subfolders=("extra",))  # other filenames: a dataset keys assets by filename
    _load(str(root), "--dataset", "disk", "--group", "g")
    _load(str(other), "--dataset", "disk")
    gone = sorted(folder.filenames)[:2]
    for name in gone:
        (root / name).unlink()

    kept = _load(str(root), "--dataset", "disk")
    assert kept["assets"]["missing"] == 2 and kept["assets"]["pruned"] == 0
    assert kept["missing"] == gone
    assert _count(dsn, "SELECT count(*) FROM pgsearch.assets") == 9
    text = CliRunner().invoke(
        cli, ["load", str(root), "--dataset", "disk", "--model", "pixels", "--workers", "0"]
    )
    assert "gone from the disk (2, kept; --prune deletes them)" in text.output
    assert all(name in text.output for name in gone)

    pruned = _load(str(root), "--dataset", "disk", "--prune")
    assert pruned["assets"]["pruned"] == 2 and pruned["assets"]["missing"] == 0
    # the other folder's assets stay; the pruned ones take their vectors and memberships along
    assert _count(dsn, "SELECT count(*) FROM pgsearch.assets") == 7
    assert _count(dsn, "SELECT count(*) FROM pgsearch.asset_embeddings") == 7
    assert _count(dsn, "SELECT count(*) FROM pgsearch.group_members") == 4
    assert _count(dsn, "SELECT count(*) FROM pgsearch.asset_embedding_state") == 7
    again = _load(str(root), "--dataset", "disk", "--prune")
    assert again["assets"]["pruned"] == 0 and again["assets"]["unchanged"] == 4


def test_a_reload_that_only_changes_groups_or_status_reports_updates(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    make_folder(root, 4)
    _load(str(root), "--dataset", "upd")
    same = _load(str(root), "--dataset", "upd")
    assert same["assets"]["unchanged"] == 4 and same["assets"]["updated"] == 0
    grouped = _load(str(root), "--dataset", "upd", "--group", "new", "--status", "review")
    assert grouped["assets"]["updated"] == 4 and grouped["assets"]["unchanged"] == 0
    assert _count(dsn, "SELECT count(*) FROM pgsearch.group_members WHERE name = 'new'") == 4
    assert _count(dsn, "SELECT count(*) FROM pgsearch.assets WHERE status = 'review'") == 4
