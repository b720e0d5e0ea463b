"""One embedded PostgreSQL server per test session; a fresh database per test, cloned from a
template that already holds the schema (CREATE DATABASE ... TEMPLATE takes milliseconds)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgsearch import db as database
from pgsearch import migrate
from pgsearch.server import EmbeddedServer

TEMPLATE = "pgsearch_template"


def _with_dbname(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pgsearch-home")


@pytest.fixture(scope="session")
def pg_server(pg_home: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(pg_home)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_url(pg_server: EmbeddedServer) -> str:
    return pg_server.url()


@pytest.fixture(scope="session")
def template_dsn(server_url: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    dsn = _with_dbname(server_url, TEMPLATE)
    migrate.upgrade(dsn)
    return dsn


@pytest.fixture
def empty_dsn(server_url: str) -> Iterator[str]:
    """A database with nothing in it: no schema, no extension."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_dbname(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def dsn(server_url: str, template_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database at the current schema; PGSEARCH_DSN points at it for CLI calls."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE))
        )
    url = _with_dbname(server_url, name)
    monkeypatch.setenv("PGSEARCH_DSN", url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with database.connect(dsn) as connection:
        yield connection


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, pg_home: Path) -> None:
    """No test reaches the user's own database or home by accident."""
    for name in ("PGSEARCH_DSN", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGSEARCH_HOME", str(pg_home))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
