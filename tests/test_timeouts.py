"""Bounded queries: the statement timeout of `pgsearch query` and the API, and its message."""

from __future__ import annotations

import dataclasses
import inspect
import time

import psycopg
import pytest
from click.testing import CliRunner

import pgsearch
from pgsearch import api, options, search_settings
from pgsearch.cli import cli


def test_defaults_agree() -> None:
    assert options.STATEMENT_TIMEOUT_S == search_settings.STATEMENT_TIMEOUT_S
    for function in (pgsearch.connect, api.connect):
        parameters = inspect.signature(function).parameters
        assert parameters["statement_timeout"].default == search_settings.STATEMENT_TIMEOUT_S
        assert (
            parameters["idle_in_transaction_timeout"].default == search_settings.IDLE_IN_TRANSACTION_TIMEOUT_S
        )


def test_the_session_carries_the_bounds(dsn: str) -> None:
    with pgsearch.connect(dsn) as client:
        assert client.conn.execute("SHOW statement_timeout").fetchone() == ("30s",)
        assert client.conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("1min",)
    with pgsearch.connect(dsn, statement_timeout=0, idle_in_transaction_timeout=None) as client:
        assert client.conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert client.conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("0",)


@pytest.mark.parametrize("bad", [-1, "30", True, float("nan"), float("inf")])
def test_a_bad_timeout_is_refused_by_name(dsn: str, bad: object) -> None:
    with pytest.raises(api.SearchError, match="statement_timeout="):
        pgsearch.connect(dsn, statement_timeout=bad)  # type: ignore[arg-type]


@pytest.fixture
def slow_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test-only path to a slow statement: the search compiles as usual, then runs a sleep."""
    real = api.compile_query

    def slow(*args: object, **kwargs: object) -> object:
        compiled = real(*args, **kwargs)  # type: ignore[arg-type]
        return dataclasses.replace(compiled, sql="SELECT pg_sleep(20) AS id", params={})

    monkeypatch.setattr(api, "compile_query", slow)


def _one_asset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('slow') RETURNING id").fetchone()
        assert dataset is not None
        conn.execute("INSERT INTO pgsearch.assets (dataset_id, filename) VALUES (%s, 'a.jpg')", dataset)


def _sleeping(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(20)%%' AND state = 'active'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_the_api_cancels_at_the_timeout_and_says_so(dsn: str, slow_search: None) -> None:
    _one_asset(dsn)
    with pgsearch.connect(dsn, statement_timeout=1) as client:
        started = time.monotonic()
        with pytest.raises(api.QueryTimeout, match=r"ran longer than 1 s and was cancelled") as caught:
            client.query(dataset="slow")
        assert time.monotonic() - started < 10
        assert caught.value.seconds == 1 and isinstance(caught.value, pgsearch.PgsearchError)
        assert _sleeping(dsn) == 0  # stopped on the server, not only in the client
        # The client stays usable after the cancellation.
        assert client.conn.execute("SELECT 1").fetchone() == (1,)


def test_the_cli_cancels_at_the_timeout_with_one_line(dsn: str, slow_search: None) -> None:
    _one_asset(dsn)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["query", "-d", "slow", "--timeout", "1"])
    assert time.monotonic() - started < 10
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "the query ran longer than 1 s and was cancelled; --timeout raises the limit" in result.output
    assert _sleeping(dsn) == 0


def test_timeout_option_is_checked() -> None:
    result = CliRunner().invoke(cli, ["query", "-d", "x", "--timeout", "-1"])
    assert result.exit_code == 2 and "--timeout" in result.output
