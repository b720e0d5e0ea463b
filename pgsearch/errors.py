"""Exceptions a user can act on. The library raises these; only the CLI turns them into
click exceptions. The query translator has its own root (translator.errors.QueryError) because
it depends on nothing of ours."""


class PgsearchError(Exception):
    """Root of every error that is the user's to fix: bad input, configuration, environment."""


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
