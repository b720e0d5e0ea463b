"""pgsearch: search and curate computer-vision datasets inside PostgreSQL with pgvector.

import pgsearch
client = pgsearch.connect()          # see pgsearch.api

Every mistake of the user's (a bad query, argument, setting or file) raises a subclass of
pgsearch.PgsearchError, the query translator's QueryError included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgsearch.errors import PgsearchError

if TYPE_CHECKING:
    from pgsearch.api import Client

__version__ = "0.1.0"
__all__ = ["PgsearchError", "__version__", "connect"]


def connect(
    dsn: str | None = None,
    *,
    statement_timeout: float | None = 30.0,
    idle_in_transaction_timeout: float | None = 60.0,
) -> Client:
    """A Client on `dsn`, else $PGSEARCH_DSN / $DATABASE_URL, else the embedded server.

    The server cancels a statement after `statement_timeout` seconds and ends a session idle in
    an open transaction after `idle_in_transaction_timeout` (0 or None: no limit); the defaults
    are pgsearch.search_settings' (tests/test_timeouts.py checks that they agree)."""
    from pgsearch.api import connect as _connect

    return _connect(
        dsn, statement_timeout=statement_timeout, idle_in_transaction_timeout=idle_in_transaction_timeout
    )
