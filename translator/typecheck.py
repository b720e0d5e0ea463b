"""Stage 4: every node gets a QType (node.meta["qtype"]); mismatches are QueryTypeErrors.

Metadata values (Kind.DYNAMIC) take the kind their use asks for: compared with a number they
are numbers, with a string strings, in arithmetic numbers, where a condition belongs booleans.
A label count where a condition belongs means "count > 0". `null` (Missing) is one side of
`==` / `!=` and nowhere else, the other side a value of a known kind.
"""

from __future__ import annotations

from decimal import Decimal

from sqlglot import exp

from .catalog import Target
from .errors import QueryLimitError, QueryTypeError
from .nodes import FieldRef, FilenameSearch, JsonRef, Kind, LabelCount, Missing, QType, qtype, set_span, span
from .regex import check_regex

MAX_ARITHMETIC = 32  # operators per query; bounds how far numeric values can grow

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
_SYMBOL: dict[type[exp.Expr], str] = {
    exp.EQ: "==",
    exp.NEQ: "!=",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
}
BOOL = QType(Kind.BOOL)
NULL_USAGE = (
    "null stands for a missing value and is only compared with == or !=: "
    "duplicate_group != null (has a value), width == null (has none)"
)


# What makes a condition depend on the row: without one of these it is the same for every row.
_ROW_VALUES = (FieldRef, LabelCount, JsonRef, FilenameSearch)


class TypeChecker:
    """labels / target: the dataset's labels and the rows asked for, so that a number written
    where a label was meant (`3`, `3 >= 1`) gets a message saying how to write that label."""

    def __init__(self, text: str, labels: frozenset[str] = frozenset(), target: Target = "asset") -> None:
        self.text = text
        self.labels = labels
        self.target = target
        self.arithmetic = 0

    def check(self, tree: exp.Expr) -> exp.Expr:
        return self._condition(tree)

    def _error(self, message: str, node: exp.Expr) -> QueryTypeError:
        return QueryTypeError(message, self.text, span(node) or (0, len(self.text)))

    def _show(self, node: exp.Expr) -> str:
        where = span(node)
        return self.text[where[0] : where[1]] if where else node.sql()

    # -- conditions -----------------------------------------------------------------------
    def _condition(self, node: exp.Expr) -> exp.Expr:
        """`node` where a condition belongs; returns it (or its rewrite) typed BOOL."""
        if isinstance(node, (exp.And, exp.Or)):
            node.set("this", self._condition(node.this))
            node.set("expression", self._condition(node.expression))
        elif isinstance(node, (exp.Not, exp.Paren)):
            node.set("this", self._condition(node.this))
        elif isinstance(node, FilenameSearch):
            pass
        else:
            t = self._value(node)
            if t.kind == Kind.BOOL:
                self._check_constant(node)
                return node
            if isinstance(node, LabelCount):
                return self._typed(set_span(exp.GT(this=node, expression=_zero()), span(node)), BOOL)
            if t.kind == Kind.DYNAMIC:
                self._settle(node, Kind.BOOL)
                return node
            example = "area > 100" if self.target == "shape" else "width > 100"
            message = f"{self._show(node)!r} is a {t.kind.value}, not a condition; compare it, e.g. " + (
                example if t.kind == Kind.NUMBER else 'status == "review"'
            )
            if isinstance(node, exp.Literal) and not node.is_string:
                message += self._number_label_hint(node, bare=True)
            raise self._error(message, node)
        return self._typed(node, BOOL)

    def _check_constant(self, node: exp.Expr) -> None:
        """A comparison, `in` or function call with no field, label or metadata value in it is
        the same for every row: `3 >= 1` would silently select every asset (usually a label that
        is a number, written bare), `1 == 2` none. That is an error, not a query. `true` and
        `false` written alone are allowed: nobody writes them by mistake."""
        if isinstance(node, exp.Boolean) or isinstance(node, _ROW_VALUES) or node.find(*_ROW_VALUES):
            return
        rows = f"{self.target}s"
        message = (
            f"{self._show(node)!r} compares constants only (no field or label in it), so it is the same "
            f"for every {self.target}: it would select all {rows} or none; compare a field or a label, "
            f"e.g. {'area' if self.target == 'shape' else 'width'} >= 1"
        )
        for literal in node.find_all(exp.Literal):
            if not literal.is_string:
                message += self._number_label_hint(literal, bare=False)
                break
        raise self._error(message, node)

    def _number_label_hint(self, literal: exp.Literal, bare: bool) -> str:
        """How to write a label that is a number, in spellings the language accepts: a
        backquoted name (a label count), count("3"), and membership in labels. A number that is
        not a label of the dataset gets the general rule only when written bare."""
        name = self._show(literal)
        if name in self.labels:
            if self.target == "shape":
                return f'; for shapes labelled {name} write label == "{name}", for the asset\'s count asset.`{name}`'
            return f'; the label {name} is written `{name}` or count("{name}"), e.g. `{name}` >= 1 or "{name}" in labels'
        if bare:
            return f'; a label that is a number is written in backquotes, `{name}`, or count("{name}")'
        return ""

    # -- values ---------------------------------------------------------------------------
    def _value(self, node: exp.Expr) -> QType:
        if "qtype" not in node.meta:
            node.meta["qtype"] = self._infer(node)
        return qtype(node)

    def _typed(self, node: exp.Expr, t: QType) -> exp.Expr:
        node.meta["qtype"] = t
        return node

    def _infer(self, node: exp.Expr) -> QType:
        if isinstance(node, Missing):
            raise self._error(NULL_USAGE, node)
        if isinstance(node, exp.Literal):
            return QType(Kind.STRING if node.is_string else Kind.NUMBER)
        if isinstance(node, exp.Boolean):
            return BOOL
        if isinstance(node, FieldRef):
            return QType(node.field.kind, node.field.nullable)
        if isinstance(node, LabelCount):
            return QType(Kind.NUMBER)
        if isinstance(node, JsonRef):
            return QType(Kind.DYNAMIC, True)
        if isinstance(node, exp.Paren):
            inner = node.this
            if isinstance(inner, (exp.And, exp.Or, exp.Not, FilenameSearch)):
                node.set("this", self._condition(inner))
            t = self._value(node.this)
            return t
        if isinstance(node, (exp.And, exp.Or, exp.Not, FilenameSearch)):
            self._condition(node)
            return BOOL
        if isinstance(node, _COMPARISONS):
            return self._comparison(node)
        if isinstance(node, _ARITHMETIC):
            return self._arithmetic(node)
        if isinstance(node, exp.Neg):
            self._number(node.this, "-")
            return QType(Kind.NUMBER, qtype(node.this).nullable)
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, exp.Anonymous):
            return self._call(node)
        raise self._error(f"{self._show(node)!r} is not a value", node)

    def _settle(self, node: exp.Expr, kind: Kind) -> None:
        """Fixes the kind of a metadata value (through parentheses)."""
        while isinstance(node, exp.Paren):
            node.meta["qtype"] = QType(kind, True)
            node = node.this
        node.meta["qtype"] = QType(kind, True)

    def _number(self, node: exp.Expr, op: str) -> QType:
        t = self._value(node)
        if t.kind == Kind.DYNAMIC:
            self._settle(node, Kind.NUMBER)
            return qtype(node)
        if t.kind != Kind.NUMBER:
            raise self._error(f"{op!r} needs numbers, and {self._show(node)!r} is a {t.kind.value}", node)
        return t

    def _arithmetic(self, node: exp.Expr) -> QType:
        self.arithmetic += 1
        if self.arithmetic > MAX_ARITHMETIC:
            raise QueryLimitError(f"more than {MAX_ARITHMETIC} arithmetic operators", self.text, span(node))
        op = _SYMBOL[type(node)]
        left = self._number(node.this, op)
        right = self._number(node.expression, op)
        # Division and modulo by zero give a missing value, never an error.
        nullable = left.nullable or right.nullable or isinstance(node, (exp.Div, exp.Mod))
        return QType(Kind.NUMBER, nullable)

    def _comparison(self, node: exp.Expr) -> QType:
        op = _SYMBOL[type(node)]
        if isinstance(node.this, Missing) or isinstance(node.expression, Missing):
            return self._null_comparison(node, op)
        left, right = self._value(node.this), self._value(node.expression)
        if left.kind == Kind.DYNAMIC and right.kind == Kind.DYNAMIC:
            raise self._error(
                f"cannot tell what kind of values {op!r} compares here: compare a metadata value with a "
                "number, string or true/false",
                node,
            )
        if left.kind == Kind.DYNAMIC:
            self._settle(node.this, right.kind)
            left = qtype(node.this)
        elif right.kind == Kind.DYNAMIC:
            self._settle(node.expression, left.kind)
            right = qtype(node.expression)
        for side, t in ((node.this, left), (node.expression, right)):
            if t.kind == Kind.SET:
                raise self._error(
                    f"{self._show(side)!r} is a set of strings and cannot be compared with {op!r}; "
                    f'test membership instead: "value" in {self._show(side)}',
                    node,
                )
        if left.kind != right.kind:
            raise self._error(
                f"cannot compare {self._show(node.this)!r} (a {left.kind.value}) "
                f"with {self._show(node.expression)!r} (a {right.kind.value})",
                node,
            )
        if left.kind == Kind.BOOL and op not in ("==", "!="):
            raise self._error(f"true/false values have no order; {op!r} needs numbers or strings", node)
        if left.kind == Kind.SET:
            raise self._error("sets cannot be compared", node)
        return BOOL

    def _null_comparison(self, node: exp.Expr, op: str) -> QType:
        """`value == null` (the value is missing) and `value != null`."""
        null, other = (
            (node.this, node.expression) if isinstance(node.this, Missing) else (node.expression, node.this)
        )
        if op not in ("==", "!=") or isinstance(other, Missing):
            raise self._error(NULL_USAGE, node)
        t = self._value(other)
        if t.kind == Kind.DYNAMIC:
            raise self._error(
                f"{self._show(other)!r} takes the kind its use asks for, and null has none: compare it with "
                "a number, string or true/false (a key that is absent or of another kind makes any "
                "comparison false)",
                node,
            )
        if t.kind == Kind.SET:
            raise self._error(
                f"{self._show(other)!r} is a set of strings and is never missing (it may be empty); "
                f'test membership instead: "value" in {self._show(other)}',
                node,
            )
        null.meta["qtype"] = QType(t.kind, True)
        return BOOL

    def _in(self, node: exp.In) -> QType:
        field = node.args.get("field")
        items: list[exp.Expr] = list(node.expressions)
        needle = self._value(node.this)
        if field is not None:
            haystack = self._value(field)
            if haystack.kind in (Kind.SET, Kind.STRING):
                if needle.kind == Kind.DYNAMIC:
                    self._settle(node.this, Kind.STRING)
                elif needle.kind != Kind.STRING:
                    raise self._error(
                        f"{self._show(field)!r} holds strings; {self._show(node.this)!r} is a {needle.kind.value}",
                        node,
                    )
                return BOOL
            raise self._error(
                f"`in` needs a set field (groups, labels), a string, or a list such as (1, 2); "
                f"{self._show(field)!r} is a {haystack.kind.value}",
                field,
            )
        kinds = {self._value(item).kind for item in items} - {Kind.DYNAMIC}
        if needle.kind != Kind.DYNAMIC:
            kinds.add(needle.kind)
        if len(kinds) > 1 or Kind.SET in kinds:
            raise self._error(
                "`in (...)` needs values of one kind: " + ", ".join(sorted(k.value for k in kinds)),
                node,
            )
        if not kinds:
            raise self._error("cannot tell what kind of values this list holds", node)
        kind = kinds.pop()
        for part in (node.this, *items):
            if qtype(part).kind == Kind.DYNAMIC:
                self._settle(part, kind)
        return BOOL

    def _call(self, node: exp.Anonymous) -> QType:
        name = node.name
        if name == "inside":
            return self._inside(node)
        subject, argument = node.expressions
        for arg in (subject, argument):
            t = self._value(arg)
            if t.kind == Kind.DYNAMIC:
                self._settle(arg, Kind.STRING)
            elif t.kind != Kind.STRING:
                raise self._error(f"{name}() takes strings; {self._show(arg)!r} is a {t.kind.value}", arg)
        if name == "matches":
            if not (isinstance(argument, exp.Literal) and argument.is_string):
                raise self._error(
                    'matches() takes its pattern as a string: matches(filename, "^IMG_[0-9]+")', argument
                )
            problem = check_regex(argument.this)
            if problem is not None:
                where = span(argument)
                shift = (where[0] + 1 + problem[1]) if where else None
                raise QueryTypeError(
                    f"matches(): {problem[0]}", self.text, (shift, shift + 1) if shift is not None else where
                )
        return BOOL

    def _inside(self, node: exp.Anonymous) -> QType:
        """inside(x, y, polygon): x and y any numbers (metadata values become numbers); the
        polygon was checked when resolved."""
        for arg in node.expressions[:2]:
            t = self._value(arg)
            if t.kind == Kind.DYNAMIC:
                self._settle(arg, Kind.NUMBER)
            elif t.kind != Kind.NUMBER:
                raise self._error(
                    f"inside() takes numbers for x and y; {self._show(arg)!r} is a {t.kind.value}", arg
                )
        return BOOL


def _zero() -> exp.Expr:
    zero = exp.Literal.number(0)
    zero.meta["value"] = Decimal(0)
    zero.meta["qtype"] = QType(Kind.NUMBER)
    return zero
