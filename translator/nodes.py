"""Node kinds the resolve stage puts into the sqlglot tree in place of bare names, and the types
the type-check stage attaches to every node (in node.meta["qtype"])."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from sqlglot import exp


class Kind(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    BOOL = "boolean"
    SET = "set of strings"
    DYNAMIC = "metadata value"  # a jsonb value whose kind its use decides
    LIST = "list"


@dataclass(frozen=True)
class QType:
    kind: Kind
    nullable: bool = False
    element: Kind | None = None  # for LIST


@dataclass(frozen=True)
class FieldDef:
    """A field the language exposes: where its column lives and what kind of value it holds.

    `alias` is the table alias in the statement (a: assets, s: shapes, l: labels, and the tables
    fields.JOINS joins only when a field reads them: pa/ps projection points of the latest
    asset/shape run, ua/us, ma/ms, da/ds the latest curation results); `float8` marks floating-point
    columns (double precision; real for the curation scores, also marked `float4`), which are
    compared and computed as numeric, as PostgreSQL converts a double (15 significant digits).
    """

    name: str
    kind: Kind
    nullable: bool
    alias: str
    column: str
    float8: bool = False
    doc: str = ""
    # A real (float4) column: read through float8 so that it compares with all its digits, as the
    # curation commands compare it (real -> numeric keeps only 6 significant digits).
    float4: bool = False


class FieldRef(exp.Expression):
    """A resolved field; `this` is the name the query used (e.g. "width", "asset.width")."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True}

    @property
    def field(self) -> FieldDef:
        field: FieldDef = self.meta["field"]
        return field


class Missing(exp.Expression):
    """`null`: the missing value, only ever one side of `==` / `!=` (`duplicate_group != null`)."""

    arg_types: ClassVar[dict[str, bool]] = {}


class LabelCount(exp.Expression):
    """Number of shapes with label `this` on the asset (0 when none)."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True}


class JsonRef(exp.Expression):
    """A value in a jsonb column: `this` is "metadata" or "attributes", `path` the keys."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "path": True}

    @property
    def keys(self) -> list[str]:
        path: list[str] = self.args["path"]
        return path


class FilenameSearch(exp.Expression):
    """A bare string where a condition belongs: filename contains it (ASCII case-insensitive)."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True}


class Polygon(exp.Expression):
    """inside()'s polygon: `this` is its vertices, a tuple of (x, y) Decimal pairs as written."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True}

    @property
    def vertices(self) -> tuple[tuple[Decimal, Decimal], ...]:
        vertices: tuple[tuple[Decimal, Decimal], ...] = self.args["this"]
        return vertices


def qtype(node: exp.Expr) -> QType:
    """The type the type-check stage attached to `node`."""
    found: QType = node.meta["qtype"]
    return found


def span(node: exp.Expr) -> tuple[int, int] | None:
    """[start, end) of the text `node` came from: the union over its subtree's positions."""
    start: int | None = None
    end: int | None = None
    for sub in node.walk():
        s = sub.meta_get("start")
        if s is None:
            continue
        e = sub.meta_get("end") + 1
        start = s if start is None else min(start, s)
        end = e if end is None else max(end, e)
    if start is None or end is None:
        return None
    return start, end


def set_span(node: exp.Expr, where: tuple[int, int] | None) -> exp.Expr:
    if where is not None:
        node.meta["start"], node.meta["end"] = where[0], where[1] - 1
    return node
