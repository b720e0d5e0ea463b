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


def connect(dsn: str | None = None) -> Client:
    """A Client on `dsn`, else $PGSEARCH_DSN / $DATABASE_URL, else the embedded server."""
    from pgsearch.api import connect as _connect

    return _connect(dsn)
