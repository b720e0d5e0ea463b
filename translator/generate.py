"""Stage 5: the typed query tree -> a PostgreSQL predicate (sqlglot expressions), with every
literal a bound parameter.

Semantics kept exactly (the tests' Python evaluator implements the same rules):
- a condition is never NULL: a comparison with a missing value (NULL column, metadata key
  absent or of another kind, division by zero) is false, so `not` of it is true, and `a != b`
  is `not (a == b)`. Comparisons whose operands can be missing are wrapped in coalesce(..., false).
- arithmetic is exact numeric: integer columns and literals are cast to numeric, double
  precision columns are converted as PostgreSQL does (15 significant digits); `/` truncates to
  12 decimal places (div(a * 10^12, b) * 10^-12), `%` has the sign of the dividend; dividing by
  zero gives a missing value (NULLIF).
- strings compare by code point (COLLATE "C"); a bare string is an ASCII case-insensitive
  filename search.
- inside(x, y, polygon) is `point(x, y) <@ polygon` in double precision: PostgreSQL's rule, the
  boundary (within 1e-6) inside, a point inside when the outline winds around it (nonzero
  crossings, so a loop drawn twice counts once); double precision fields are read as stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlglot import exp

from .dialect import ATOMIC, ContainedIn, JsonGet, JsonGetText, JsonHasKey, TypeCast
from .fields import ASSET, ASSET_JSON, SHAPE_JSON
from .nodes import FieldRef, FilenameSearch, JsonRef, Kind, LabelCount, Missing, Polygon, qtype

# jsonb numbers beyond these count as missing, so arithmetic stays within numeric's range.
JSON_NUMBER_LIMIT = "1e100"
JSON_NUMBER_MAX_SCALE = 100
DIVISION_SCALE = 12
# inside()'s x and y go to PostgreSQL's geometry as double precision. A product or quotient can
# leave that range (numeric -> float8 then fails, for tiny values too), so such a value beyond
# +-FLOAT8_LIMIT is missing and the rest is rounded to FLOAT8_SCALE decimal places first.
FLOAT8_LIMIT = "1e300"
FLOAT8_SCALE = 300

_TYPE_NAMES = {Kind.NUMBER: "number", Kind.STRING: "string", Kind.BOOL: "boolean"}
_COMPARE: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.EQ: exp.EQ,
    exp.GT: exp.GT,
    exp.GTE: exp.GTE,
    exp.LT: exp.LT,
    exp.LTE: exp.LTE,
}


class Params:
    """Bound parameters, named p1, p2, ...; the same value (and kind) reuses its name."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._seen: dict[tuple[type, Any], str] = {}

    def add(self, value: Any) -> exp.Placeholder:
        key = (type(value), value)
        name = self._seen.get(key)
        if name is None:
            name = f"p{len(self._seen) + 1}"
            self._seen[key] = name
            self.values[name] = value
        return exp.Placeholder(this=name)

    def named(self, name: str, value: Any) -> exp.Placeholder:
        self.values[name] = value
        return exp.Placeholder(this=name)


def cast(e: exp.Expr, to: str) -> exp.Expr:
    return TypeCast(this=e, to=to)


def paren(e: exp.Expr) -> exp.Expr:
    """Parenthesised unless atomic, so operator precedence never depends on the generator."""
    if isinstance(e, ATOMIC):
        return e
    return exp.Paren(this=e)


def col(alias: str, name: str) -> exp.Column:
    # Built directly: exp.column() re-validates both names on every call, and compile time counts.
    return exp.Column(
        this=exp.Identifier(this=name, quoted=False), table=exp.Identifier(this=alias, quoted=False)
    )


def func(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def coalesce_false(e: exp.Expr) -> exp.Expr:
    return exp.Coalesce(this=e, expressions=[exp.false()])


def where_clause(e: exp.Expr) -> exp.Expr:
    """`e` as a WHERE clause: COALESCE(c, FALSE) becomes c wherever NULL and FALSE already
    mean the same (under AND and OR, not under NOT), so a comparison stays `expression op value`,
    which an index on the expression serves and its statistics estimate."""
    if isinstance(e, exp.Coalesce) and len(e.expressions) == 1 and e.expressions[0] == exp.false():
        return where_clause(e.this)
    if isinstance(e, (exp.And, exp.Or)):
        e.set("this", where_clause(e.this))
        e.set("expression", where_clause(e.expression))
    elif isinstance(e, exp.Paren):
        e.set("this", where_clause(e.this))
    return e


class PredicateGenerator:
    """`runs` maps the aliases of the tables joined on demand (fields.JOINS: pa, ps, ua, ...) to
    the run or space id they are joined on, or None when the dataset has no such run (cluster, x,
    y are then missing; the resolve stage refuses curation fields without a run). `joined`
    collects the aliases the predicate reads. `field_columns` maps a jsonb field (normalised name,
    kind) to the generated column that stores its value as that kind."""

    def __init__(
        self,
        params: Params,
        runs: Mapping[str, int | None],
        field_columns: Mapping[tuple[str, Kind], str] | None = None,
    ) -> None:
        self.params = params
        self.runs = runs
        self.field_columns = field_columns or {}
        self.joined: set[str] = set()

    # -- conditions (never NULL) ----------------------------------------------------------
    def condition(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.And):
            return exp.And(
                this=paren(self.condition(node.this)), expression=paren(self.condition(node.expression))
            )
        if isinstance(node, exp.Or):
            return exp.Or(
                this=paren(self.condition(node.this)), expression=paren(self.condition(node.expression))
            )
        if isinstance(node, exp.Not):
            return exp.Not(this=paren(self.condition(node.this)))
        if isinstance(node, exp.Paren):
            return self.condition(node.this)
        if isinstance(node, FilenameSearch):
            needle = self.params.add(_ascii_lower(node.this.this))
            name = exp.Collate(this=col(ASSET, "filename"), expression=exp.Identifier(this="C", quoted=True))
            return exp.GT(this=func("strpos", func("lower", name), needle), expression=exp.Literal.number(0))
        if isinstance(node, (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            return self._compare(node)
        if isinstance(node, exp.NEQ):
            equal = self._compare(exp.EQ(this=node.this, expression=node.expression))
            return exp.Not(this=paren(equal))
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, exp.Anonymous):
            return self._call(node)
        if isinstance(node, exp.Boolean):
            return cast(self.params.add(node.this), "boolean")
        # A metadata value where a condition belongs: true when it is the boolean true.
        return coalesce_false(self.value(node))

    def _compare(self, node: exp.Expr) -> exp.Expr:
        left, right = node.this, node.expression
        if isinstance(left, Missing) or isinstance(right, Missing):  # `v == null`: never NULL itself
            value = right if isinstance(left, Missing) else left
            return exp.Is(this=paren(self.value(value)), expression=exp.Null())
        kind = qtype(left).kind
        lsql, rsql = self.value(left), self.value(right)
        if kind == Kind.STRING and not isinstance(node, exp.EQ):
            lsql = exp.Collate(this=paren(lsql), expression=exp.Identifier(this="C", quoted=True))
        out = _COMPARE[type(node)](this=paren(lsql), expression=paren(rsql))
        return self._maybe_missing(out, left, right)

    def _maybe_missing(self, e: exp.Expr, *operands: exp.Expr) -> exp.Expr:
        return coalesce_false(e) if any(qtype(o).nullable for o in operands) else e

    def _in(self, node: exp.In) -> exp.Expr:
        needle = node.this
        field = node.args.get("field")
        if field is None:
            items = list(node.expressions)
            out: exp.Expr = exp.In(this=paren(self.value(needle)), expressions=[self.value(i) for i in items])
            return self._maybe_missing(out, needle, *items)
        value = self.value(needle)
        kind = qtype(field).kind
        if kind == Kind.STRING:  # "abc" in filename: substring
            out = exp.GT(this=func("strpos", self.value(field), value), expression=exp.Literal.number(0))
            return self._maybe_missing(out, needle, field)
        assert isinstance(field, FieldRef)
        alias = field.field.alias
        if field.field.name == "labels":
            out = JsonHasKey(this=col(alias, "label_counts"), expression=value)
        else:
            out = exp.ArrayContainsAll(
                this=col(alias, field.field.column), expression=cast(exp.Array(expressions=[value]), "text[]")
            )
        return self._maybe_missing(out, needle)

    def _call(self, node: exp.Anonymous) -> exp.Expr:
        name = node.name
        if name == "inside":
            return self._inside(node)
        subject_node, arg_node = node.expressions
        subject, arg = self.value(subject_node), self.value(arg_node)
        out: exp.Expr
        if name == "contains":
            out = exp.GT(this=func("strpos", subject, arg), expression=exp.Literal.number(0))
        elif name == "startswith":
            out = func("starts_with", subject, arg)
        elif name == "endswith":
            out = exp.EQ(this=func("right", subject, func("length", arg)), expression=paren(arg))
        else:  # matches
            # The database's collation decides what \w or [[:alpha:]] match; an indexed field's
            # column is collated "C" (pgsearch/indexes.py), which would narrow them to ASCII.
            default = exp.Collate(this=paren(subject), expression=exp.Identifier(this="default", quoted=True))
            out = exp.RegexpLike(this=default, expression=arg)
        return self._maybe_missing(out, subject_node, arg_node)

    def _inside(self, node: exp.Anonymous) -> exp.Expr:
        x_node, y_node, polygon = node.expressions
        assert isinstance(polygon, Polygon)
        (x, x_missing), (y, y_missing) = self._float8(x_node), self._float8(y_node)
        shape = cast(self.params.add(polygon_text(polygon)), "polygon")
        out = ContainedIn(this=func("point", x, y), expression=shape)
        return coalesce_false(out) if x_missing or y_missing else out

    def _float8(self, node: exp.Expr) -> tuple[exp.Expr, bool]:
        """The value as double precision, and whether it can be missing. A double precision
        field is its column as stored; anything else is its numeric value converted."""
        while isinstance(node, exp.Paren):
            node = node.this
        nullable = qtype(node).nullable
        if isinstance(node, FieldRef) and node.field.float8:
            f = node.field
            if f.alias in self.runs:
                if self.runs[f.alias] is None:
                    return cast(exp.Null(), "float8"), True
                self.joined.add(f.alias)
            return col(f.alias, f.column), nullable
        value = self.value(node)
        if not any(isinstance(n, (exp.Mul, exp.Div)) for n in node.walk()):
            # Fields, counts, literals, metadata (within 1e100) and their sums stay in range.
            return cast(value, "float8"), nullable
        in_range = exp.LTE(this=func("abs", value), expression=exp.Literal.number(FLOAT8_LIMIT))
        rounded = func("round", value.copy(), exp.Literal.number(FLOAT8_SCALE))
        return exp.Case(ifs=[exp.If(this=in_range, true=cast(rounded, "float8"))]), True

    # -- values (may be NULL when their type says nullable) -------------------------------
    def value(self, node: exp.Expr) -> exp.Expr:
        t = qtype(node)
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return self.params.add(node.this)
            number: Decimal = node.meta["value"]
            return self.params.add(int(number) if number == number.to_integral_value() else number)
        if isinstance(node, exp.Boolean):
            return cast(self.params.add(node.this), "boolean")
        if isinstance(node, FieldRef):
            return self._field(node)
        if isinstance(node, LabelCount):
            key = self.params.add(node.this.this)
            count = cast(JsonGetText(this=col(ASSET, "label_counts"), expression=key), "integer")
            return exp.Coalesce(this=count, expressions=[exp.Literal.number(0)])
        if isinstance(node, JsonRef):
            return self._json(node, t.kind)
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)):
            return self._arithmetic(node)
        if isinstance(node, exp.Neg):
            return exp.Neg(this=paren(self._numeric(node.this)))
        # Conditions used as values: (a > 1) == (b > 2)
        return self.condition(node)

    def _field(self, node: FieldRef) -> exp.Expr:
        f = node.field
        alias = f.alias
        if alias in self.runs:
            if self.runs[alias] is None:
                return cast(exp.Null(), "text" if f.kind == Kind.STRING else "numeric")
            self.joined.add(alias)
        column = col(alias, f.column)
        if f.float4:
            return cast(cast(column, "float8"), "numeric")
        return cast(column, "numeric") if f.float8 else column

    def json_value(self, node: JsonRef, kind: Kind) -> exp.Expr:
        """The jsonb value as `kind`, NULL when missing or of another kind."""
        return self._json(node, kind)

    def _json(self, node: JsonRef, kind: Kind) -> exp.Expr:
        alias, column = {**ASSET_JSON, **SHAPE_JSON}[node.this]
        stored = self.field_columns.get((json_field_name(node), kind))
        if stored is not None:
            # The generated column holds exactly the expression below (pgsearch index add).
            return col(alias, stored)
        keys = [self.params.add(k) for k in node.keys]
        container: exp.Expr = col(alias, column)
        for key in keys[:-1]:
            container = JsonGet(this=container, expression=key)
        item = JsonGet(this=container, expression=keys[-1])
        text = JsonGetText(this=container, expression=keys[-1])
        is_kind = exp.EQ(this=func("jsonb_typeof", item), expression=exp.Literal.string(_TYPE_NAMES[kind]))
        if kind == Kind.STRING:
            return exp.Case(ifs=[exp.If(this=is_kind, true=text)])
        if kind == Kind.BOOL:
            return exp.Case(ifs=[exp.If(this=is_kind, true=cast(text, "boolean"))])
        number = cast(text, "numeric")
        in_range = exp.And(
            this=exp.LTE(this=func("abs", number), expression=exp.Literal.number(JSON_NUMBER_LIMIT)),
            expression=exp.LTE(
                this=func("scale", number), expression=exp.Literal.number(JSON_NUMBER_MAX_SCALE)
            ),
        )
        # Nested CASE: the cast to numeric runs only on values jsonb says are numbers.
        return exp.Case(ifs=[exp.If(this=is_kind, true=exp.Case(ifs=[exp.If(this=in_range, true=number)]))])

    def _numeric(self, node: exp.Expr) -> exp.Expr:
        """The value as numeric: arithmetic never runs in integer or double precision."""
        if isinstance(node, exp.Paren):
            return self._numeric(node.this)
        sql = self.value(node)
        already = isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, JsonRef)) or (
            isinstance(node, FieldRef) and node.field.float8
        )
        return sql if already else cast(sql, "numeric")

    def _arithmetic(self, node: exp.Expr) -> exp.Expr:
        left, right = self._numeric(node.this), self._numeric(node.expression)
        if isinstance(node, exp.Add):
            return exp.Add(this=paren(left), expression=paren(right))
        if isinstance(node, exp.Sub):
            return exp.Sub(this=paren(left), expression=paren(right))
        if isinstance(node, exp.Mul):
            return exp.Mul(this=paren(left), expression=paren(right))
        divisor = exp.Nullif(this=right, expression=exp.Literal.number(0))
        if isinstance(node, exp.Mod):
            return func("mod", left, divisor)
        scaled = exp.Mul(this=paren(left), expression=exp.Literal.number(10**DIVISION_SCALE))
        quotient = func("div", scaled, divisor)
        return exp.Mul(this=quotient, expression=exp.Literal.number("0." + "0" * (DIVISION_SCALE - 1) + "1"))


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_field_name(node: JsonRef) -> str:
    """metadata.KEY[.KEY...] / attributes.KEY[...]: how indexes and field columns name a field.
    Keys other than plain names are written as the query language quotes them (`a.b`, with ``
    for a backtick), so the key "a.b" and the path a -> b never share a name (or a column)."""
    return ".".join(
        [node.this, *(k if _PLAIN_KEY.fullmatch(k) else "`" + k.replace("`", "``") + "`" for k in node.keys)]
    )


def polygon_text(polygon: Polygon) -> str:
    """The polygon as PostgreSQL's polygon type reads it: ((x1,y1),(x2,y2),...)."""
    return "(" + ",".join(f"({x:f},{y:f})" for x, y in polygon.vertices) + ")"


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
