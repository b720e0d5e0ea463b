"""The embedded server admits only whoever holds a password: the owner through the 0600 secret
in the home, a reader through its own; no other OS user gets in, and no role pgsearch makes can
run programs or read files on the server."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from pgsearch.cli import cli
from pgsearch.server import HBA, EmbeddedServer, psql_executable

INTRUDER = "pgsearch_intruder"
READER_PASSWORD = 'reader\'s "secret"'


@pytest.fixture(autouse=True)
def _no_ambient_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test passes reaches libpq: no PGPASSWORD, no ~/.pgpass."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-passfile"))


def _refused(**params: object) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(host="127.0.0.1", connect_timeout=5, **params).close()  # type: ignore[arg-type]
    return str(caught.value)


def test_hba_asks_every_role_for_a_password(pg_server: EmbeddedServer) -> None:
    hba = (pg_server.pgdata / "pg_hba.conf").read_text()
    assert hba == HBA
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(rule[0] == "host" and rule[-1] == "scram-sha-256" for rule in rules)
    assert "trust" not in [rule[-1] for rule in rules]
    secret = pg_server.passfile.stat()
    assert stat.S_IMODE(secret.st_mode) == 0o600 and secret.st_uid == os.geteuid()


def test_a_connection_without_the_password_is_refused(pg_server: EmbeddedServer) -> None:
    port = pg_server.status().port
    for dbname in ("pgsearch", "postgres", "template1"):
        assert "password" in _refused(port=port, user="postgres", dbname=dbname)
    assert "password authentication failed" in _refused(
        port=port, user="postgres", dbname="pgsearch", password="guess"
    )
    # No replication line at all: refused even before a password is asked for.
    assert "no pg_hba.conf entry for replication" in _refused(
        port=port, user="postgres", dbname="replication", replication="true"
    )


def test_the_url_of_db_url_works_as_is(pg_server: EmbeddedServer, server_url: str) -> None:
    url = CliRunner().invoke(cli, ["db", "url"]).output.strip()
    assert url == server_url
    for target in (url, CliRunner().invoke(cli, ["db", "url", "--passfile"]).output.strip()):
        done = subprocess.run(
            [psql_executable(), target, "-XAtc", "SELECT current_user"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode == 0 and done.stdout.strip() == "postgres", (target, done.stderr)
    assert "passfile=" in target and pg_server.status().password not in target  # type: ignore[operator]


@pytest.fixture
def reader(dsn: str, server_url: str) -> Iterator[str]:
    role = "auth_reader"
    result = CliRunner().invoke(cli, ["db", "grant-reader", role, "--password", READER_PASSWORD])
    assert result.exit_code == 0, result.output
    yield role
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_reader_logs_in_with_its_password_and_nothing_else(
    dsn: str, reader: str, role_dsn: Callable[[str, str, str], str]
) -> None:
    port = int(psycopg.conninfo.conninfo_to_dict(dsn)["port"] or 0)
    dbname = dsn.rsplit("/", 1)[1]
    assert "password" in _refused(port=port, user=reader, dbname=dbname)
    assert "password authentication failed" in _refused(port=port, user=reader, dbname=dbname, password="x")
    with psycopg.connect(role_dsn(dsn, reader, READER_PASSWORD), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (reader,)
        # Nothing on the server's side of the machine: no programs, no files.
        for statement in (
            "COPY (SELECT 1) TO PROGRAM 'id'",
            "COPY (SELECT 1) TO '/tmp/pgsearch-reader-was-here'",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_ls_dir('.')",
            "CREATE TEMP TABLE t (x text); COPY t FROM PROGRAM 'id'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)  # type: ignore[arg-type]


def test_a_trust_home_is_converted_on_start(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A home from before (trust, no secret): the next start sets the password and rewrites
    pg_hba.conf; connecting without it is refused from then on."""
    home = tmp_path / "home"
    try:
        EmbeddedServer(home).start()
        EmbeddedServer(home).stop()
        (home / "pgdata" / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
        (home / "superuser.pgpass").unlink()
        capfd.readouterr()
        status = EmbeddedServer(home).start()
        assert "now asks every role for its password" in capfd.readouterr().err
        assert (home / "pgdata" / "pg_hba.conf").read_text() == HBA
        assert "password" in _refused(port=status.port, user="postgres", dbname="pgsearch")
        with psycopg.connect(status.url or "") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    finally:
        EmbeddedServer(home).stop()


_INTRUDER_SCRIPT = r"""
import json, sys
import psycopg
port, passfile, roles = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
out = {"connected": [], "refused": [], "secret": None}
for role in roles:
    for password in (None, "", "postgres", role):
        try:
            psycopg.connect(host="127.0.0.1", port=port, user=role, dbname="pgsearch",
                            password=password, connect_timeout=5).close()
            out["connected"].append(role)
        except psycopg.OperationalError as exc:
            out["refused"].append(str(exc).strip().splitlines()[-1])
try:
    open(passfile).read()
    out["secret"] = "read"
except OSError as exc:
    out["secret"] = type(exc).__name__
print(json.dumps(out))
"""


@pytest.fixture
def intruder() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creating a second OS user (useradd) to attack from")
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd to create a second OS user")
    try:
        user = pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "-s", "/usr/sbin/nologin", INTRUDER], check=True)
        user = pwd.getpwnam(INTRUDER)
    yield user


def test_another_os_user_cannot_get_in(
    pg_server: EmbeddedServer, reader: str, intruder: pwd.struct_passwd, tmp_path: Path
) -> None:
    status = pg_server.status()
    roles = ["postgres", reader, "pgsearch", INTRUDER]
    done = subprocess.run(
        [sys.executable, "-c", _INTRUDER_SCRIPT, str(status.port), str(pg_server.passfile), ",".join(roles)],
        capture_output=True,
        text=True,
        check=False,
        user=intruder.pw_uid,
        group=intruder.pw_gid,
        extra_groups=[],
        cwd="/",
        env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent", "PGPASSFILE": "/nonexistent"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["connected"] == []
    assert len(result["refused"]) == 4 * len(roles)
    assert result["secret"] == "PermissionError"
