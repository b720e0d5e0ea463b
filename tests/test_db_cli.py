"""`pgsearch db ...` against the session's embedded server and against databases given by DSN."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from pgsearch import db as database
from pgsearch import migrate
from pgsearch.cli import cli
from pgsearch.errors import SchemaError
from pgsearch.server import EmbeddedServer, psql_executable


def run(*args: str) -> CliRunner:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_status_and_url_of_embedded_server(server_url: str) -> None:
    result = run("db", "status", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["kind"] == "embedded" and info["running"] is True
    # status shows a URL without the password (libpq reads it from the passfile); it works as is
    secret = server_url.split("@")[0].rsplit(":", 1)[1]
    assert secret not in result.output and "passfile=" in info["url"]
    with psycopg.connect(info["url"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
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


def test_unprivileged_role_without_vector_gets_one_line(
    empty_dsn: str, server_url: str, role_dsn: Callable[[str, str, str], str]
) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pgsearch_weak")
        conn.execute("CREATE ROLE pgsearch_weak LOGIN PASSWORD 'weak-but-given'")
    weak = role_dsn(empty_dsn, "pgsearch_weak", "weak-but-given")
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


def test_restarts_keep_the_port_and_recover_from_kill_9(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Stop/start, a port in TIME_WAIT and a kill -9 of the postmaster (stale postmaster.pid,
    and a zombie where nothing reaps it) all end with the same port, written once; readiness
    probes leave no FATAL in the log; as root, the directories opened above the home are named."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    home = closed / "home"
    server = EmbeddedServer(home)
    try:
        first = server.start()
        port = first.port
        err = capfd.readouterr().err
        if os.geteuid() == 0:
            line = next(line for line in err.splitlines() if "added o+x (enter, not list) to" in line)
            opened = line.split("not list) to ", 1)[1].split(". Put", 1)[0].split(", ")
            assert str(closed) in opened
            assert os.stat(closed).st_mode & 0o777 == 0o701
        for _ in range(2):
            with psycopg.connect(first.url or "") as conn:  # a client leaves the port in TIME_WAIT
                conn.execute("SELECT 1")
            assert EmbeddedServer(home).stop()
            assert EmbeddedServer(home).start().port == port
        pid = EmbeddedServer(home).status().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        again = EmbeddedServer(home)
        assert again.start().port == port and again.started
        with psycopg.connect(again.status().url or "") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        for _ in range(5):
            assert EmbeddedServer(home).status().running
        conf = (home / "pgdata" / "postgresql.conf").read_text()
        assert [line for line in conf.splitlines() if line.startswith("port")] == [
            f"port = {port}  # pgsearch: kept across restarts"
        ]
        log = (home / "postgres.log").read_text()
        assert "FATAL" not in log, [line for line in log.splitlines() if "FATAL" in line]
    finally:
        EmbeddedServer(home).stop()


def test_a_taken_port_moves_once_and_says_so(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    try:
        port = EmbeddedServer(home).start().port
        assert port is not None
        EmbeddedServer(home).stop()
        with socket.socket() as squatter:
            # (SO_REUSEADDR: the stopped server's connections may leave the port in TIME_WAIT.)
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            capfd.readouterr()
            moved = EmbeddedServer(home).start().port
            assert moved != port
            assert f"port {port} of the embedded server is taken" in capfd.readouterr().err
        conf = (home / "pgdata" / "postgresql.conf").read_text()
        assert sum(line.startswith("port") for line in conf.splitlines()) == 1
    finally:
        EmbeddedServer(home).stop()
