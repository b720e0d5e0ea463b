"""Where things are: the pgsearch home directory and the database DSN."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import psycopg.conninfo

from pgsearch.errors import ConfigError

HOME_ENV = "PGSEARCH_HOME"
DSN_ENVS = ("PGSEARCH_DSN", "DATABASE_URL")


def home_dir() -> Path:
    """The directory holding the embedded server's data, logs and lock."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().absolute()
    return platformdirs.user_data_path("pgsearch")


def resolve_dsn(option: str | None = None) -> str | None:
    """The DSN from --dsn, else PGSEARCH_DSN, else DATABASE_URL; None means the embedded server."""
    for value, source in ((option, "--dsn"), *((os.environ.get(env), env) for env in DSN_ENVS)):
        if value is not None and value.strip():
            return normalize_dsn(value.strip(), source)
    return None


def normalize_dsn(dsn: str, source: str = "--dsn") -> str:
    """Accepts libpq key=value strings and URLs, including SQLAlchemy's postgresql+driver:// form."""
    scheme, sep, rest = dsn.partition("://")
    if sep and "+" in scheme and scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        dsn = "postgresql://" + rest
    elif sep and scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{source}: malformed DSN: unknown scheme {scheme!r} (expected postgresql://...)")
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "cannot be parsed"
        raise ConfigError(f"{source}: malformed DSN: {reason}") from None
    return dsn


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<malformed DSN>"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or params.get("user") or ""
    return f"{host}:{port}/{dbname}"
