"""Configuration mistakes end in one line naming the problem and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV_KEYS_TO_DROP = ("PGSEARCH_DSN", "DATABASE_URL")


def pgsearch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS_TO_DROP}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pgsearch", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("host=localhost port", "malformed DSN"),
        ("mysql://root@localhost/db", "unknown scheme 'mysql'"),
        ("postgresql://me@localhost:5432/db?sslmode=bogus", "sslmode"),
    ],
)
def test_malformed_dsn(dsn: str, needle: str) -> None:
    done = pgsearch("db", "upgrade", "--dsn", dsn)
    assert_one_line_error(done, needle)


def test_malformed_dsn_from_environment() -> None:
    done = pgsearch("db", "upgrade", env={"PGSEARCH_DSN": "host=localhost port"})
    assert_one_line_error(done, "PGSEARCH_DSN", "malformed DSN")


def test_unreachable_server() -> None:
    done = pgsearch("db", "upgrade", "--dsn", "postgresql://postgres@127.0.0.1:1/nowhere")
    assert_one_line_error(done, "cannot connect to 127.0.0.1:1/nowhere")


def test_password_is_not_echoed() -> None:
    done = pgsearch("db", "upgrade", "--dsn", "postgresql://postgres:s3cret@127.0.0.1:1/nowhere")
    assert_one_line_error(done, "cannot connect")
    assert "s3cret" not in done.stderr


def test_pgsearch_home_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = pgsearch("db", "start", env={"PGSEARCH_HOME": str(blocker / "home")})
    assert_one_line_error(done, "PGSEARCH_HOME", str(blocker / "home"), "not usable")


def test_pgsearch_home_on_a_read_only_filesystem() -> None:
    done = pgsearch("db", "url", env={"PGSEARCH_HOME": "/proc/pgsearch-home"})
    assert_one_line_error(done, "PGSEARCH_HOME", "/proc/pgsearch-home", "not usable")


def test_unknown_command_suggests_the_close_one() -> None:
    done = pgsearch("dbb", "status")
    assert done.returncode != 0 and "Did you mean 'db'?" in done.stderr
