"""Every SQL example of the README's "From psql and BI tools" section runs through the real psql
binary against a loaded demo dataset and returns rows; SQLAlchemy's inspector sees the views."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgsearch.cli import cli
from pgsearch.server import psql_executable

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section_sql() -> list[str]:
    section = README.split("### From psql and BI tools", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    statements = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert len(statements) >= 6
    return statements


@pytest.fixture
def demo_dsn(dsn: str, tmp_path: Path) -> str:
    result = CliRunner().invoke(cli, ["demo", "--images", "40", "--dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    # The curation examples read these tools' latest runs (the demo itself only maps).
    for args in (["duplicates", "-d", "demo", "--quiet"], ["mislabels", "-d", "demo", "--shapes", "--quiet"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    return dsn


@pytest.mark.parametrize("statement", _section_sql())
def test_readme_sql_example_runs_in_psql(demo_dsn: str, statement: str) -> None:
    done = subprocess.run(
        [psql_executable(), demo_dsn, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.strip()]
    assert rows, f"no rows from: {statement}"


def test_sqlalchemy_inspector_sees_views_and_comments(demo_dsn: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(demo_dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    inspector = sqlalchemy.inspect(engine)
    views = set(inspector.get_view_names(schema="pgsearch"))
    assert {
        "v_assets",
        "v_shapes",
        "v_label_counts",
        "v_asset_groups",
        "v_projections",
        "v_neighbors",
    } <= views
    for view in views:
        assert inspector.get_table_comment(view, schema="pgsearch")["text"]
        assert all(column.get("comment") for column in inspector.get_columns(view, schema="pgsearch"))
    engine.dispose()
