"""One embedded PostgreSQL server per test session; a fresh database per test, cloned from a
template that already holds the schema (CREATE DATABASE ... TEMPLATE takes milliseconds)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
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


def as_role(url: str, role: str, password: str) -> str:
    """`url` (the superuser's, with its password) for another role and its password: the
    embedded server asks every role for one (SCRAM)."""
    from urllib.parse import quote

    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(role, safe='')}:{quote(password, safe='')}@{rest.split('@', 1)[1]}"


@pytest.fixture(scope="session")
def role_dsn() -> Callable[[str, str, str], str]:
    """role_dsn(url, role, password): a test database's URL for a reader role and its password."""
    return as_role


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
    """The superuser's URL, its password in it (the server asks for one: tests/test_server_auth.py)."""
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


# -- the `models` part: tests that need torch (and open_clip / timm) ---------------------------
# `pip install -e '.[test]'` installs them and runs everything; `pip install -e '.[test-core]'`
# does not, and `pytest -m "not models"` runs the rest. Without torch these tests are skipped
# with the reason, so a torch-free run is never mistaken for a complete one. Modules listed with
# None import torch themselves (they cannot even be collected without it); the others name their
# tests that embed with an open_clip or timm model.
MODEL_TESTS: dict[str, frozenset[str] | None] = {
    "test_models.py": None,
    "test_embed_status.py": frozenset(
        {"test_status_embed_retry_and_drop", "test_stored_vectors_are_what_the_model_returns"}
    ),
    "test_load_incremental.py": frozenset({"test_changed_file_replaces_row_shapes_and_embeddings"}),
    "test_hints.py": frozenset(
        {
            "test_text_search_picks_the_model_with_a_text_tower",
            "test_demo_try_lines_keep_working_after_a_second_model",
            "test_demo_curation_try_lines_after_a_second_model",
        }
    ),
}
NO_TORCH = "needs torch (the `models` part: pip install -e '.[test]' or '.[models]')"


def torch_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


class _NeedsTorch(pytest.Module):
    """A test module that imports torch, collected without it: skipped whole, with the reason."""

    def collect(self) -> list[pytest.Item]:
        pytest.skip(NO_TORCH, allow_module_level=True)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if MODEL_TESTS.get(module_path.name, frozenset()) is None and not torch_available():
        return _NeedsTorch.from_parent(parent, path=module_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_torch = torch_available()
    for item in items:
        names = MODEL_TESTS.get(item.path.name, frozenset())
        base = getattr(item, "originalname", item.name)
        if names is None or base in names or item.get_closest_marker("models") is not None:
            item.add_marker(pytest.mark.models)
            if not has_torch:
                item.add_marker(pytest.mark.skip(reason=NO_TORCH))
