"""Which embedding space a curation command works on: (dataset, target, model) -> one Space, or an
error that says what to run. The choice itself is pgsearch.datasets.choose_space, the same rule
searches follow; this module adds what only curation needs (the loader's Space, shape hints)."""

from __future__ import annotations

import psycopg

from pgsearch.datasets import choose_space, default_model, get_dataset, model_to_embed
from pgsearch.errors import PgsearchError
from pgsearch.loader.spaces import Space, dataset_spaces


class CurationError(PgsearchError):
    """A curation request that cannot be answered as asked (no embeddings, bad parameters)."""


def resolve_space(conn: psycopg.Connection, dataset: str, target: str, model: str | None) -> Space:
    """The dataset's space for `target` ("asset" or "shape") and `model` (None: the only one),
    chosen by the rule every search follows (pgsearch.datasets.choose_space)."""
    ds = get_dataset(conn, dataset)
    spaces = dataset_spaces(conn, ds.id, target=target)
    if not spaces and target == "shape":
        raise _no_shape_space(conn, dataset, ds.id, model)
    flag = " --shapes" if target == "shape" else ""
    return choose_space(
        spaces,
        dataset=dataset,
        target=target,
        model=model,
        error=CurationError,
        to_embed=" first (or load it with a --model)",
        name_one=f"--model{flag}",
        default=default_model(conn, ds.id),
        embed_model=model_to_embed(conn, ds.id),
    )


def _no_shape_space(
    conn: psycopg.Connection, dataset: str, dataset_id: int, model: str | None
) -> CurationError:
    """Why a dataset has no shape embeddings, and what to do: embedding helps only when it has
    shapes with a region (boxes, polygons, masks); whole-image tags are never embedded."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE kind <> 'tag'), count(*) FILTER (WHERE kind = 'tag')"
        " FROM pgsearch.shapes WHERE dataset_id = %s",
        (dataset_id,),
    ).fetchone()
    regions, tags = (int(row[0]), int(row[1])) if row else (0, 0)
    if regions:
        which = f" --model {model}" if model is not None else ""
        return CurationError(
            f"dataset {dataset!r} has no shape embeddings yet ({regions:,} shapes to embed); run "
            f"`pgsearch embed --dataset {dataset}{which}` first (it embeds the shapes' crops)"
        )
    if tags:
        return CurationError(
            f"the shapes of dataset {dataset!r} are all whole-image tags ({tags:,}: a classification "
            "dataset); tags are whole-image labels and are not embedded, so there is nothing to run "
            "--shapes on: leave out --shapes to work on the assets, or load boxes or polygons"
        )
    return CurationError(
        f"dataset {dataset!r} has no shapes (annotations with a box, polygon or mask), so there is "
        "nothing to run --shapes on: leave out --shapes to work on the assets, or load annotations "
        "with boxes or polygons"
    )
