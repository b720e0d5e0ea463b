"""The output columns of the translator's statements, in order: the one list every reader of
query results (the CLI's tables, the Python API, the loader's checks) takes them from.

Depends on nothing, so a caller can import it without loading sqlglot. A similarity-ordered
statement adds "distance" last."""

from __future__ import annotations

from .catalog import Target

ASSET_COLUMNS: tuple[str, ...] = (
    "id",
    "filename",
    "path",
    "width",
    "height",
    "size",
    "format",
    "status",
    "groups",
    "metadata",
    "label_counts",
    "annotation_count",
)
# "filename" and "path" are the shape's asset's; "label" is its label's name.
SHAPE_COLUMNS: tuple[str, ...] = (
    "id",
    "asset_id",
    "filename",
    "path",
    "label",
    "kind",
    "bbox_x",
    "bbox_y",
    "bbox_width",
    "bbox_height",
    "area",
    "attributes",
)
DISTANCE = "distance"


def column_names(target: Target, *, similarity: bool = False) -> tuple[str, ...]:
    """The statement's output columns, in order ("distance" last when similarity-ordered)."""
    columns = ASSET_COLUMNS if target == "asset" else SHAPE_COLUMNS
    return (*columns, DISTANCE) if similarity else columns
