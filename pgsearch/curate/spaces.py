"""Which embedding space a curation command works on: (dataset, target, model) -> one Space, or an
error that says what to run."""

from __future__ import annotations

import psycopg

from pgsearch.datasets import get_dataset
from pgsearch.errors import PgsearchError
from pgsearch.loader.spaces import Space, dataset_spaces


class CurationError(PgsearchError):
    """A curation request that cannot be answered as asked (no embeddings, bad parameters)."""


def resolve_space(conn: psycopg.Connection, dataset: str, target: str, model: str | None) -> Space:
    """The dataset's space for `target` ("asset" or "shape") and `model` (None: the only one)."""
    ds = get_dataset(conn, dataset)
    spaces = dataset_spaces(conn, ds.id, target=target)
    flag = " --shapes" if target == "shape" else ""
    if model is not None:
        chosen = [s for s in spaces if s.model == model]
        if not chosen:
            have = ", ".join(sorted(s.model for s in spaces)) or "none"
            raise CurationError(
                f"dataset {dataset!r} has no {target} embeddings of model {model!r}; it has: {have}"
            )
        return chosen[0]
    if not spaces:
        raise CurationError(
            f"dataset {dataset!r} has no {target} embeddings yet; run "
            f"`pgsearch embed --dataset {dataset}` first (or load it with a --model)"
        )
    if len(spaces) > 1:
        models = ", ".join(sorted(s.model for s in spaces))
        raise CurationError(
            f"dataset {dataset!r} has {target} embeddings of several models ({models}); "
            f"name one with --model{flag}"
        )
    return spaces[0]
