"""Stage 2: only these node kinds may appear in a parsed query; anything else sqlglot can parse
(casts, indexing, placeholders, bit operators, aliases, subqueries ...) is an error that points
at the spot, before any later stage looks at it. `[...]` lists are allowed as inside()'s polygon
only."""

from __future__ import annotations

from sqlglot import exp

from .errors import QuerySyntaxError, UnknownNameError
from .nodes import span

FUNCTIONS: dict[str, int] = {
    "count": 1,  # count("label"): shapes with that label on the asset
    "contains": 2,
    "startswith": 2,
    "endswith": 2,
    "matches": 2,  # POSIX regular expression (PostgreSQL `~`)
    "inside": 3,  # inside(x, y, [[x1, y1], [x2, y2], ...]): point in polygon
}

INSIDE_USAGE = "inside(x, y, [[x1, y1], [x2, y2], [x3, y3], ...])"

ALLOWED: tuple[type[exp.Expr], ...] = (
    exp.And,
    exp.Or,
    exp.Not,
    exp.Paren,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.Neg,
    exp.In,
    exp.Column,
    exp.Dot,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Anonymous,
    exp.Array,  # only as inside()'s polygon (_check_list)
)

# What the user most likely typed, for the nodes sqlglot builds from SQL-isms.
_WHAT: dict[type[exp.Expr], str] = {
    exp.Alias: "two values in a row (is an operator missing?)",
    exp.Concat: "two strings in a row (is an operator missing?)",
    exp.Bracket: "'[...]' indexing",
    exp.Placeholder: "'?' placeholders",
    exp.Parameter: "'@' parameters",
    exp.Star: "'*' on its own",
    exp.BitwiseAnd: "'&'",
    exp.BitwiseOr: "'|'",
    exp.BitwiseXor: "'^'",
    exp.BitwiseNot: "'~'",
    exp.BitwiseLeftShift: "'<<'",
    exp.BitwiseRightShift: "'>>'",
    exp.DPipe: "'||'",
    exp.NullSafeEQ: "'<=>'",
    exp.Struct: "'{...}'",
    exp.Tuple: "a parenthesised list outside `in (...)`",
}


def check_allowed(text: str, tree: exp.Expr) -> None:
    """Raises QuerySyntaxError (or UnknownNameError for functions) at the first node outside
    the language."""
    for node in tree.walk():
        if not isinstance(node, ALLOWED):
            what = _WHAT.get(type(node), f"{type(node).__name__.lower()} expressions")
            where = span(node)
            if isinstance(node, exp.Alias):
                alias = node.args.get("alias")
                where = span(alias) if alias is not None else where
                shown = text[where[0] : where[1]] if where else ""
                raise QuerySyntaxError(f"unexpected {shown!r}: {what}", text, where)
            raise QuerySyntaxError(f"{what} is not part of the query language", text, where)
        if isinstance(node, exp.In) and any(node.args.get(k) for k in ("query", "unnest")):
            raise QuerySyntaxError("`in` takes a set field or a list of values", text, span(node))
        if isinstance(node, exp.Anonymous):
            _check_call(text, node)
        elif isinstance(node, exp.Array):
            _check_list(text, node)
        elif isinstance(node, (exp.Column, exp.Dot)):
            for part in node.iter_expressions():
                if not isinstance(part, (exp.Identifier, exp.Column, exp.Dot)):
                    raise QuerySyntaxError("a name is expected after '.'", text, span(part))


def _check_call(text: str, node: exp.Anonymous) -> None:
    name = node.name.lower()
    where = span(node)
    arity = FUNCTIONS.get(name)
    if arity is None:
        import difflib

        close = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
        hint = f"; did you mean {close[0]}()?" if close else f"; functions: {', '.join(FUNCTIONS)}"
        raise UnknownNameError(f"unknown function {node.name}(){hint}", text, where)
    if len(node.expressions) != arity:
        plural = "s" if arity > 1 else ""
        usage = f": {INSIDE_USAGE}" if name == "inside" else ""
        raise QuerySyntaxError(
            f"{name}() takes {arity} argument{plural}, got {len(node.expressions)}{usage}", text, where
        )


def _check_list(text: str, node: exp.Array) -> None:
    """`[...]` belongs in inside()'s third argument (the polygon, its vertices and whatever the
    resolve stage finds wrong in them) and nowhere else."""
    top: exp.Expr = node
    while isinstance(top.parent, exp.Array):
        top = top.parent
    call = top.parent
    if (
        isinstance(call, exp.Anonymous)
        and call.name.lower() == "inside"
        and len(call.expressions) == 3
        and call.expressions[2] is top
    ):
        return
    raise QuerySyntaxError(
        f"'[...]' lists are only for the polygon of inside(): {INSIDE_USAGE}", text, span(top)
    )
