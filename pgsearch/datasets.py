"""Datasets by name: the unit every command is scoped to; and which of a dataset's embedding
spaces a request means (the one rule the search API and the curation tools share)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import psycopg

from pgsearch.errors import NotFound, PgsearchError


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str


def find_dataset(conn: psycopg.Connection, name: str) -> Dataset | None:
    """The dataset called `name`, or None."""
    row = conn.execute("SELECT id, name FROM pgsearch.datasets WHERE name = %s", (name,)).fetchone()
    return Dataset(row[0], row[1]) if row is not None else None


def get_dataset(conn: psycopg.Connection, name: str) -> Dataset:
    """The dataset called `name`, or NotFound naming the closest existing ones."""
    found = find_dataset(conn, name)
    if found is not None:
        return found
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


def assets_outside(conn: psycopg.Connection, dataset_id: int, folder: Path) -> tuple[int, str | None]:
    """(how many, one of them): the dataset's assets whose file is not under `folder` (or that
    have no path at all): what `pgsearch demo` checks before it loads into an existing dataset."""
    prefix = str(folder.absolute()) + os.sep
    found = conn.execute(
        "SELECT count(*), min(coalesce(path, filename)) FROM pgsearch.assets"
        " WHERE dataset_id = %s AND (path IS NULL OR NOT starts_with(path, %s))",
        (dataset_id, prefix),
    ).fetchone()
    assert found is not None
    return int(found[0]), found[1]


class _Space(Protocol):
    """What choosing needs of a space: the translator's EmbeddingSpace and the loader's Space
    both have it."""

    @property
    def model(self) -> str: ...

    @property
    def target(self) -> str: ...


S = TypeVar("S", bound=_Space)


def choose_space(
    spaces: Sequence[S],
    *,
    dataset: str,
    target: str,
    model: str | None,
    error: type[PgsearchError],
    to_embed: str,
    name_one: str,
) -> S:
    """The space of `spaces` for `target` ("asset" or "shape") and `model` (None: the only one).

    Every caller raises its own exception type (`error`) and says in its own words what to do:
    `to_embed` follows "run `pgsearch embed --dataset NAME`" when there are no embeddings yet,
    `name_one` follows "name one with" when there are several models."""
    candidates = [s for s in spaces if s.target == target]
    if model is not None:
        chosen = [s for s in candidates if s.model == model]
        if not chosen:
            have = ", ".join(sorted(s.model for s in candidates)) or "none"
            raise error(f"dataset {dataset!r} has no {target} embeddings of model {model!r}; it has: {have}")
        return chosen[0]
    if not candidates:
        raise error(
            f"dataset {dataset!r} has no {target} embeddings yet; run `pgsearch embed --dataset {dataset}`"
            + to_embed
        )
    if len(candidates) > 1:
        models = ", ".join(sorted(s.model for s in candidates))
        raise error(
            f"dataset {dataset!r} has {target} embeddings of several models ({models}); name one with "
            + name_one
        )
    return candidates[0]
