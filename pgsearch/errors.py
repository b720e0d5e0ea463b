"""Exceptions a user can act on. The library raises these; only the CLI turns them into
click exceptions.

Every one of them, the query translator's QueryError included, derives from PgsearchError. The
class itself is defined in translator.errors, because the translator depends on nothing of ours;
this module re-exports it as the package's root."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # mypy checks the source tree, where the translator is the top-level `translator` package
    # (installed, it is pgsearch.translator, which mypy cannot follow through the package-dir
    # mapping and would type as Any). Same file, same class.
    from translator.errors import PgsearchError
else:
    from pgsearch.translator.errors import PgsearchError

__all__ = [
    "ConfigError",
    "DatabaseUnavailable",
    "NotFound",
    "PgsearchError",
    "SchemaError",
    "ServerError",
    "WriterRequired",
]


class ConfigError(PgsearchError):
    """A setting is malformed or points somewhere unusable (DSN, PGSEARCH_HOME)."""


class DatabaseUnavailable(PgsearchError):
    """The database cannot be reached or refuses the connection."""


class ServerError(PgsearchError):
    """The embedded PostgreSQL server could not be initialised, started or stopped."""


class SchemaError(PgsearchError):
    """The database lacks what pgsearch needs: pgvector, or a schema at the current version."""


class NotFound(PgsearchError):
    """A named thing (dataset, asset, model) does not exist."""


class WriterRequired(PgsearchError):
    """A write (load, embed, group edits, curation) under a role that may only read."""
