"""Datasets by name: the unit every command is scoped to."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import psycopg

from pgsearch.errors import NotFound


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str


def get_dataset(conn: psycopg.Connection, name: str) -> Dataset:
    """The dataset called `name`, or NotFound naming the closest existing ones."""
    row = conn.execute("SELECT id, name FROM pgsearch.datasets WHERE name = %s", (name,)).fetchone()
    if row is not None:
        return Dataset(row[0], row[1])
    names = [r[0] for r in conn.execute("SELECT name FROM pgsearch.datasets ORDER BY name")]
    close = difflib.get_close_matches(name, names, n=3)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif names:
        hint = "existing datasets: " + ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    else:
        hint = "there are no datasets yet; create one with `pgsearch load PATH --dataset NAME`"
    raise NotFound(f"no dataset named {name!r}; {hint}")


def ensure_dataset(conn: psycopg.Connection, name: str) -> Dataset:
    """The dataset called `name`, created if missing (safe under concurrent callers)."""
    if not name or not name.strip():
        raise NotFound("a dataset name must not be empty")
    conn.execute("INSERT INTO pgsearch.datasets (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
    row = conn.execute("SELECT id, name FROM pgsearch.datasets WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return Dataset(row[0], row[1])


def list_datasets(conn: psycopg.Connection) -> list[Dataset]:
    return [Dataset(r[0], r[1]) for r in conn.execute("SELECT id, name FROM pgsearch.datasets ORDER BY name")]
