"""What the translator knows about a dataset, handed in by the caller (it reads no database):
its id, label names, metadata keys, latest projection runs, embedding spaces, and the spaces of
the latest curation runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Target = Literal["asset", "shape"]

# The curation tools whose results are fields (sql/curation_scores.sql), and the fields each fills.
CURATION_TOOLS: dict[str, tuple[str, ...]] = {
    "outliers": ("uniqueness",),
    "mislabels": ("mislabel_score", "suggested_label"),
    "duplicates": ("duplicate_group",),
}


@dataclass(frozen=True)
class EmbeddingSpace:
    """One (dataset, model, target) space: its partition table in the pgsearch schema and the
    dimension its HNSW index casts to (`(embedding::halfvec(dim)) halfvec_cosine_ops`)."""

    id: int
    model: str
    target: Target
    dim: int
    table: str
    has_text: bool = False  # the model has a text tower (a text prompt can be searched with)


@dataclass(frozen=True)
class FieldColumn:
    """A stored generated column holding a metadata (or attributes) field's value compared as
    `kind`, which `pgsearch index add` creates with its index: the translator reads the column
    instead of computing the value, so an index carrying the column answers the filter alone."""

    field: str  # normalised: metadata.KEY[.KEY...] or attributes.KEY[...]
    kind: str  # number, string or boolean
    column: str  # on assets (metadata) or shapes (attributes)


@dataclass(frozen=True)
class Catalog:
    """A dataset as the query language sees it.

    metadata_keys / attribute_keys: the keys seen in assets.metadata / shapes.attributes; a key
    outside them is an unknown name. None means "not known": every key is accepted.
    asset_run / shape_run: the latest projection run per target (None: cluster, x, y are missing).
    field_columns: the fields with a generated column (FieldColumn); the others are computed from
    the jsonb column.
    default_model: the dataset's default embedding model (`pgsearch embed --default-model`), which
    the caller uses when the dataset has several and a request names none.
    score_spaces: (target, tool, space id) of the latest run of each curation tool (CURATION_TOOLS)
    per target: its results are the space's partition of the tool's table. A tool without an entry
    has never run on that target, and a query naming one of its fields is an UnknownNameError
    that says which command to run.
    """

    dataset_id: int
    dataset_name: str = ""
    labels: frozenset[str] = frozenset()
    metadata_keys: frozenset[str] | None = None
    attribute_keys: frozenset[str] | None = None
    asset_run: int | None = None
    shape_run: int | None = None
    spaces: tuple[EmbeddingSpace, ...] = ()
    field_columns: tuple[FieldColumn, ...] = ()
    score_spaces: tuple[tuple[Target, str, int], ...] = ()
    schema: str = "pgsearch"
    default_model: str | None = None  # the model a request naming none uses when there are several

    def space(self, target: Target, model: str | None = None) -> EmbeddingSpace | None:
        """The space for `target` (and `model` when given); None when there is none or several
        and no model says which."""
        found = [s for s in self.spaces if s.target == target and (model is None or s.model == model)]
        return found[0] if len(found) == 1 else None

    def score_space(self, target: Target, tool: str) -> int | None:
        """The space of the latest run of curation `tool` on `target` rows; None: never run."""
        for t, name, space_id in self.score_spaces:
            if t == target and name == tool:
                return space_id
        return None


@dataclass(frozen=True)
class VectorSource:
    """A query vector the caller computed (text tower, an image outside the dataset)."""

    vector: Sequence[float]


@dataclass(frozen=True)
class AssetSource:
    """The stored embedding of an asset of the dataset, by id or by filename."""

    asset_id: int | None = None
    filename: str | None = None


@dataclass(frozen=True)
class ShapeSource:
    """The stored embedding of a shape of the dataset."""

    shape_id: int


Source = VectorSource | AssetSource | ShapeSource


@dataclass(frozen=True)
class Similarity:
    """Order rows by cosine distance to a query vector in `space`.

    dissimilar=True returns the least similar rows first, always through the exact path: an HNSW
    walk towards the negated query vector starts far from it and stops early (recall near 0.3 on
    embeddings that share a common direction, as image embeddings do). `distance` is always the
    true cosine distance to the query vector (so it descends for dissimilar searches).
    """

    space: EmbeddingSpace
    source: Source
    dissimilar: bool = False
