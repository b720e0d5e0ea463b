"""Which filters an index answers alone, handing over each matching asset's id and sketch.

The exact path of a similarity search (paths.py) ranks every matching row by its sketch. Read
from the asset rows, that is one random heap page per matching row; these filters are
answered from consecutive index pages instead (an index-only scan), several times faster:

- `"NAME" in groups`: the primary key of pgsearch.group_members (sql/covering.sql), which the
  statement reads in place of assets;
- `status == "x"` / `status in ("x", "y")`: the (dataset_id, status) index carries id and sketches;
- a comparison of a metadata field that has a generated column (`pgsearch index add`) with
  literals: its (dataset_id, column) index carries them too. String columns are collated "C", as
  the translator compares strings, so ranges are served as well as equality.

A filter with anything else in it (two conditions, NOT, a label count) reads the asset rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from .fields import ASSET
from .generate import json_field_name
from .nodes import FieldRef, JsonRef, Kind, qtype

_RANGES = (exp.GT, exp.GTE, exp.LT, exp.LTE)


@dataclass(frozen=True)
class Covering:
    """group: the filter is membership of this group (rows come from group_members); None: an
    index on assets serves the filter as written."""

    group: str | None = None


def covering(tree: exp.Expr, field_columns: Mapping[tuple[str, Kind], str]) -> Covering | None:
    """The Covering of a type-checked predicate tree, or None when it needs the asset rows."""
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.In):
        field = tree.args.get("field")
        if field is not None:
            needle = tree.this
            while isinstance(needle, exp.Paren):
                needle = needle.this
            if _is_field(field, "groups") and isinstance(needle, exp.Literal) and needle.is_string:
                return Covering(group=needle.this)
            return None
        items = list(tree.expressions)
        if items and all(_is_literal(i) for i in items) and _indexed(tree.this, field_columns, ranges=False):
            return Covering()
        return None
    if isinstance(tree, (exp.EQ, *_RANGES)):
        left, right = tree.this, tree.expression
        if _is_literal(left):
            left, right = right, left
        ranges = isinstance(tree, _RANGES)
        if _is_literal(right) and _indexed(left, field_columns, ranges=ranges):
            return Covering()
    return None


def _indexed(node: exp.Expr, field_columns: Mapping[tuple[str, Kind], str], *, ranges: bool) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, JsonRef):
        return (json_field_name(node), qtype(node).kind) in field_columns and node.this == "metadata"
    # status is compared with COLLATE "C" for ranges, which its (default collation) index cannot serve.
    return _is_field(node, "status") and not ranges


def _is_field(node: exp.Expr, name: str) -> bool:
    return isinstance(node, FieldRef) and node.field.name == name and node.field.alias == ASSET


def _is_literal(node: exp.Expr) -> bool:
    while isinstance(node, (exp.Paren, exp.Neg)):
        node = node.this
    return isinstance(node, (exp.Literal, exp.Boolean))
