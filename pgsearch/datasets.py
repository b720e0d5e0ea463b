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
from pgsearch.translator.bounds import text_problem


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str


def check_dataset_name(name: str) -> None:
    """NotFound (no such dataset can exist) for a name PostgreSQL text cannot hold."""
    problem = text_problem(name)
    if problem is not None:
        raise NotFound(f"dataset name {name!r}: {problem}")


def find_dataset(conn: psycopg.Connection, name: str) -> Dataset | None:
    """The dataset called `name`, or None."""
    check_dataset_name(name)
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
    check_dataset_name(name)
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
    default: str | None = None,
    embed_model: str | None = None,
) -> S:
    """The space of `spaces` for `target` ("asset" or "shape") and `model` (None: the only one,
    or with several the `default` model's: the dataset's default_model).

    Every caller raises its own exception type (`error`) and says in its own words what to do:
    `to_embed` follows "run `pgsearch embed --dataset NAME --model M`" when there are no
    embeddings yet (M: `embed_model`, see embed_command), `name_one` follows "name one with"
    when there are several models and no default among them."""
    candidates = [s for s in spaces if s.target == target]
    if model is not None:
        chosen = [s for s in candidates if s.model == model]
        if not chosen:
            have = ", ".join(sorted(s.model for s in candidates)) or "none"
            raise error(f"dataset {dataset!r} has no {target} embeddings of model {model!r}; it has: {have}")
        return chosen[0]
    if not candidates:
        # A bare `pgsearch embed` answers "no embedding model yet" when the dataset has none:
        # the command names the model to activate.
        command = embed_command(dataset, embed_model or next((s.model for s in spaces), None))
        raise error(f"dataset {dataset!r} has no {target} embeddings yet; run `{command}`" + to_embed)
    if len(candidates) > 1:
        preferred = [s for s in candidates if s.model == default]
        if preferred:
            return preferred[0]
        models = ", ".join(sorted(s.model for s in candidates))
        first = sorted(s.model for s in candidates)[0]
        raise error(
            f"dataset {dataset!r} has {target} embeddings of several models ({models}); name one with "
            + name_one
            + f", or set a default: `pgsearch embed --dataset {_quoted(dataset)} --default-model {_quoted(first)}`"
        )
    return candidates[0]


# The model a hint names when the dataset has none to go by: it needs no weights and no torch, so
# the command works as printed on any machine.
FALLBACK_MODEL = "pixels"


def embed_command(dataset: str, model: str | None) -> str:
    """`pgsearch embed --dataset D --model M`, quoted for a POSIX shell: the command that gives
    the dataset embeddings of `model` (None: FALLBACK_MODEL)."""
    return f"pgsearch embed --dataset {_quoted(dataset)} --model {_quoted(model or FALLBACK_MODEL)}"


def _quoted(word: str) -> str:
    import shlex

    return shlex.quote(word)


def default_model(conn: psycopg.Connection, dataset_id: int) -> str | None:
    """The dataset's default embedding model (datasets.default_model_id), or None."""
    row = conn.execute(
        "SELECT m.name FROM pgsearch.datasets AS d JOIN pgsearch.embedding_models AS m"
        " ON m.id = d.default_model_id WHERE d.id = %s",
        (dataset_id,),
    ).fetchone()
    return str(row[0]) if row is not None else None


def dataset_model_names(conn: psycopg.Connection, dataset_id: int) -> list[str]:
    """The models with embeddings (a space) in the dataset, oldest first."""
    rows = conn.execute(
        "SELECT m.name FROM pgsearch.embedding_spaces AS s JOIN pgsearch.embedding_models AS m"
        " ON m.id = s.model_id WHERE s.dataset_id = %s GROUP BY m.name ORDER BY min(s.id)",
        (dataset_id,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def model_to_embed(conn: psycopg.Connection, dataset_id: int) -> str | None:
    """The model a hint to embed this dataset names: its default, else its first model."""
    found = default_model(conn, dataset_id)
    if found is None:
        names = dataset_model_names(conn, dataset_id)
        found = names[0] if names else None
    return found


def set_default_model(conn: psycopg.Connection, dataset: str, model: str | None) -> None:
    """Makes `model` the dataset's default (None: no default). The model must have embeddings
    in the dataset: a default nothing can be searched with would only move the error."""
    ds = get_dataset(conn, dataset)
    if model is None:
        conn.execute("UPDATE pgsearch.datasets SET default_model_id = NULL WHERE id = %s", (ds.id,))
        return
    names = dataset_model_names(conn, ds.id)
    if model not in names:
        have = ", ".join(names) or "none"
        raise NotFound(
            f"dataset {dataset!r} has no embeddings of model {model!r}, so it cannot be its default; "
            f"its models: {have}"
        )
    conn.execute(
        "UPDATE pgsearch.datasets SET default_model_id = m.id FROM pgsearch.embedding_models AS m"
        " WHERE pgsearch.datasets.id = %s AND m.name = %s",
        (ds.id, model),
    )


def remember_model(conn: psycopg.Connection, dataset: str, model: str) -> None:
    """Records `model` as the dataset's default when it has none: before a second model joins a
    dataset that had one (so what searched the first model without naming it keeps doing so),
    and when its only model's embeddings are dropped (so the dataset still knows what to embed
    with again). Does nothing for a dataset or model the database does not know."""
    conn.execute(
        "UPDATE pgsearch.datasets SET default_model_id = m.id FROM pgsearch.embedding_models AS m"
        " WHERE pgsearch.datasets.name = %s AND pgsearch.datasets.default_model_id IS NULL AND m.name = %s",
        (dataset, model),
    )


def shapes_not_embedded(conn: psycopg.Connection, dataset_id: int, dataset: str, model: str | None) -> str:
    """Why a dataset has no shape embeddings, and what to do about it: embedding helps only when
    it has shapes with a region (boxes, polygons, masks); whole-image tags are never embedded,
    so `pgsearch embed` would do nothing for them."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE kind <> 'tag'), count(*) FILTER (WHERE kind = 'tag')"
        " FROM pgsearch.shapes WHERE dataset_id = %s",
        (dataset_id,),
    ).fetchone()
    regions, tags = (int(row[0]), int(row[1])) if row else (0, 0)
    if regions:
        command = embed_command(dataset, model or model_to_embed(conn, dataset_id))
        return (
            f"dataset {dataset!r} has no shape embeddings yet ({regions:,} shapes to embed); "
            f"run `{command}` (it embeds the shapes' crops)"
        )
    if tags:
        return (
            f"the shapes of dataset {dataset!r} are all whole-image tags ({tags:,}: a classification "
            "dataset); tags are not embedded (a tag's crop is the whole image), so there is no shape "
            "to be similar to: search the assets instead (--similar-to with the asset's filename or id)"
        )
    return (
        f"dataset {dataset!r} has no shapes with a box, polygon or mask, so there are no shape "
        "embeddings: search the assets instead, or load annotations with boxes or polygons"
    )
