"""`pgsearch db ...` against the session's embedded server and against databases given by DSN."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from pgsearch import db as database
from pgsearch import migrate
from pgsearch.cli import cli
from pgsearch.errors import SchemaError
from pgsearch.server import psql_executable


def run(*args: str) -> CliRunner:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_status_and_url_of_embedded_server(server_url: str) -> None:
    result = run("db", "status", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["kind"] == "embedded" and info["running"] is True
    assert info["url"] == server_url
    assert info["pgvector"] is not None and info["server_version"].startswith("18")
    assert run("db", "url").output.strip() == server_url


def test_psql_reaches_the_server_over_tcp(server_url: str) -> None:
    assert "127.0.0.1" in server_url
    out = subprocess.run(
        [psql_executable(), server_url, "-XAtc", "SELECT inet_server_addr()"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "127.0.0.1"


def test_upgrade_is_idempotent_and_round_trips(empty_dsn: str) -> None:
    first = run("db", "upgrade", "--dsn", empty_dsn)
    assert first.exit_code == 0 and f"-> {migrate.head_revision()}" in first.output
    second = run("db", "upgrade", "--dsn", empty_dsn)
    assert second.exit_code == 0 and "already at" in second.output

    def tables() -> list[str]:
        with psycopg.connect(empty_dsn) as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pgsearch' ORDER BY 1"
                )
            ]

    at_head = tables()
    assert "assets" in at_head and "shapes" in at_head
    migrate.downgrade(empty_dsn, "base")
    assert tables() == ["alembic_version"]
    migrate.upgrade(empty_dsn)
    assert tables() == at_head


def test_a_database_behind_is_refused_with_the_way_out(dsn: str) -> None:
    migrate.downgrade(dsn, "base")
    with pytest.raises(SchemaError, match=r"no pgsearch schema.*pgsearch db upgrade"):
        database.open_database(dsn)
    database.upgrade(database.Target(dsn, embedded=False))
    database.open_database(dsn).close()


def test_a_database_one_revision_behind_names_both_revisions(dsn: str) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._config(dsn))
    head = script.get_revision(migrate.head_revision())
    if not head.down_revision:
        pytest.skip("only one schema revision exists")
    migrate.downgrade(dsn, str(head.down_revision))
    with pytest.raises(SchemaError, match=rf"revision {head.down_revision}.*needs {head.revision}"):
        database.open_database(dsn)


def test_start_and_stop_refuse_a_dsn(dsn: str) -> None:
    result = CliRunner().invoke(cli, ["db", "stop", "--dsn", dsn])
    assert result.exit_code != 0 and "embedded server" in result.output


def test_cli_subprocess_reports_schema_state(dsn: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pgsearch", "db", "status", "--dsn", dsn, "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schema_revision"] == migrate.head_revision()


def test_unprivileged_role_without_vector_gets_one_line(empty_dsn: str, server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pgsearch_weak")
        conn.execute("CREATE ROLE pgsearch_weak LOGIN")
    weak = empty_dsn.replace("postgres@", "pgsearch_weak@")
    try:
        result = CliRunner().invoke(cli, ["db", "upgrade", "--dsn", weak])
        assert result.exit_code != 0
        assert "vector extension is not installed" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            dbname = empty_dsn.rsplit("/", 1)[1]
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM pgsearch_weak").format(sql.Identifier(dbname))
            )
            conn.execute("DROP ROLE pgsearch_weak")
