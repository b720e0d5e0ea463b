"""The loader's rows, typed: one dataclass per table it bulk-writes, fields in column order.

A row's fields *are* the table's column list: `columns(AssetRow)` names the COPY / SELECT /
UPDATE columns and `values(row)` gives the values in that order, so the list is written once,
here, and nothing indexes a row by position. Fields marked `JSON` are dicts sent as jsonb.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

JSON: dict[str, Any] = {"json": True}  # field metadata: the column is jsonb


@dataclass
class AssetRow:
    """One pgsearch.assets row as the loader writes it (created/updated times are the table's)."""

    id: int
    dataset_id: int
    filename: str
    path: str | None
    content_hash: str | None
    width: int | None
    height: int | None
    size: int | None
    format: str | None
    status: str
    groups: list[str]
    metadata: dict[str, Any] = field(metadata=JSON)
    load_error: str | None
    # What the asset's shapes count, written with the row by the loader for a new asset (no
    # second row version); for an existing one, refresh_label_counts after its shapes change.
    label_counts: dict[str, int] = field(default_factory=dict, metadata=JSON)
    annotation_count: int = 0


@dataclass
class ShapeRow:
    """One pgsearch.shapes row; the bbox columns are NULL for a tag."""

    id: int
    dataset_id: int
    asset_id: int
    label_id: int
    kind: str
    bbox_x: float | None
    bbox_y: float | None
    bbox_width: float | None
    bbox_height: float | None
    geometry: dict[str, Any] = field(metadata=JSON)
    area: float | None
    attributes: dict[str, Any] = field(metadata=JSON)


_COLUMNS: dict[type, tuple[str, ...]] = {}
_JSON_COLUMNS: dict[type, frozenset[str]] = {}


def columns(row_type: type) -> tuple[str, ...]:
    """The row type's column names, in order."""
    names = _COLUMNS.get(row_type)
    if names is None:
        names = _COLUMNS[row_type] = tuple(f.name for f in dataclasses.fields(row_type))
    return names


def _json_columns(row_type: type) -> frozenset[str]:
    names = _JSON_COLUMNS.get(row_type)
    if names is None:
        fields = dataclasses.fields(row_type)
        names = _JSON_COLUMNS[row_type] = frozenset(f.name for f in fields if f.metadata.get("json"))
    return names


def values(row: Any, names: tuple[str, ...] | None = None) -> tuple[Any, ...]:
    """The row's values for `names` (default: every column), jsonb fields wrapped for psycopg.

    Not dataclasses.astuple: that deep-copies every list and dict of every row."""
    json = _json_columns(type(row))
    return tuple(
        Jsonb(getattr(row, n)) if n in json else getattr(row, n) for n in names or columns(type(row))
    )
