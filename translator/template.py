"""The SQL templates of translator/templates/statements.sql: parsed once per process, filled by
copying the parsed tree and putting sqlglot expressions into its slots.

A template is PostgreSQL as the statement prints, with two kinds of names (see the file's head):
`%(name)s` is a bound parameter, `:name` a slot. fill() takes the slots' expressions and the
parameters' values by name, and refuses a template whose names and the caller's differ, so the
two cannot drift apart.

Parsing normalises what PostgreSQL's sqlglot parser reads differently from what the translator
generates (dialect.py): `<=>` is pgvector's cosine distance, not IS NOT DISTINCT FROM; `x::type`
stays a cast written `::type`; brackets are PostgreSQL's own 1-based subscripts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import sqlglot
from sqlglot import exp

from .dialect import ATOMIC, PG_DIALECT, CosineDistance, TypeCast
from .generate import Params

# The schema the templates name; fill() puts the catalog's in its place.
SCHEMA = "pgsearch"
# The cast whose dimension fill() sets: `halfvec(dim)` in a template.
HALFVEC = "halfvec(dim)"

_SECTION = re.compile(r"^-- name: (\w+)[ \t]*$", re.MULTILINE)


class Slot(exp.Expression):
    """`:name` in a template: where fill() puts an expression."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True}


@dataclass(frozen=True)
class Rows:
    """What a slot in table position (`FROM :rows`, `JOIN :rows ON ...`) stands for: a table and
    the joins that follow it. The template's own alias and TABLESAMPLE, where it writes them, stay."""

    table: exp.Table
    joins: Sequence[exp.Join] = ()


SlotValue = exp.Expr | Sequence[exp.Expr] | Rows
# A node's place in its tree: the (arg, index in a list or None) steps from the root.
_Path = tuple[tuple[str, int | None], ...]


@dataclass(frozen=True)
class _Template:
    tree: exp.Expr
    slots: tuple[tuple[str, _Path], ...]  # every slot, in order
    casts: tuple[_Path, ...]  # the halfvec(dim) casts
    slot_names: frozenset[str]
    params: tuple[str, ...]


def fill(
    name: str,
    slots: Mapping[str, SlotValue],
    params: Params,
    values: Mapping[str, Any],
    *,
    schema: str = SCHEMA,
    dim: int | None = None,
    leave_out: frozenset[str] = frozenset(),
) -> exp.Expr:
    """A copy of template `name` with `slots` filled and `values` bound (registered in `params`).

    leave_out: CTEs and slots this statement has none of (`route`, `predicate`); each is left
    out with every condition (AND operand) that reads it. dim: the space's, for halfvec(dim)."""
    template = _prepared(name, schema, leave_out)
    if set(slots) != template.slot_names or set(values) != set(template.params):
        raise ValueError(
            f"template {name}: slots {sorted(template.slot_names)} and parameters "
            f"{sorted(template.params)}, not {sorted(slots)} and {sorted(values)}"
        )
    tree = template.tree.copy()
    # Every place is found before any is filled: filling changes the lists that paths index.
    places = [(slot, _at(tree, path)) for slot, path in template.slots]
    if template.casts:
        assert dim is not None, f"template {name} casts to halfvec(dim)"
        for path in template.casts:
            _at(tree, path).set("to", f"halfvec({dim})")
    used: set[str] = set()
    for slot, node in places:
        value = slots[slot]
        if slot in used:  # a second use of an expression is a copy of it
            value = _copied(value)
        used.add(slot)
        _put(node, value)
    for param in template.params:
        params.named(param, values[param])
    return tree


def _put(slot: exp.Expr, value: SlotValue) -> None:
    parent = slot.parent
    assert parent is not None
    if isinstance(parent, exp.Table):  # table position
        table = value.table if isinstance(value, Rows) else value
        assert isinstance(table, exp.Table), f"slot :{slot.name} takes a table"
        parent.set("this", table.this)
        parent.set("db", table.args.get("db"))
        if not parent.args.get("alias"):
            parent.set("alias", table.args.get("alias"))
        if isinstance(value, Rows) and value.joins:
            holder = parent.parent  # From, or the Join the table is the target of
            assert holder is not None
            select = holder.parent
            assert isinstance(select, exp.Select)
            joins = list(select.args.get("joins") or [])
            at = holder.index + 1 if isinstance(holder, exp.Join) and holder.index is not None else 0
            select.set("joins", [*joins[:at], *value.joins, *joins[at:]])
        return
    assert not isinstance(value, Rows), f"slot :{slot.name} is no table"
    if isinstance(value, exp.Expr):
        # `(:predicate)`: parenthesised unless atomic, as generate.paren() writes it.
        target = parent if isinstance(parent, exp.Paren) and isinstance(value, ATOMIC) else slot
        target.replace(value)
        return
    # A list (the output columns) in a list (the select list).
    key, index = slot.arg_key, slot.index
    assert key is not None and index is not None, f"slot :{slot.name} takes one expression"
    items = list(parent.args[key])
    parent.set(key, [*items[:index], *value, *items[index + 1 :]])


def _copied(value: SlotValue) -> SlotValue:
    if isinstance(value, Rows):
        return Rows(value.table.copy(), [j.copy() for j in value.joins])
    if isinstance(value, exp.Expr):
        return value.copy()
    return [e.copy() for e in value]


def _at(tree: exp.Expr, path: _Path) -> exp.Expr:
    node: Any = tree
    for key, index in path:
        node = node.args[key] if index is None else node.args[key][index]
    assert isinstance(node, exp.Expr)
    return node


def _path(node: exp.Expr) -> _Path:
    steps: list[tuple[str, int | None]] = []
    while node.parent is not None:
        assert node.arg_key is not None
        steps.append((node.arg_key, node.index))
        node = node.parent
    return tuple(reversed(steps))


@functools.cache
def _prepared(name: str, schema: str, leave_out: frozenset[str]) -> _Template:
    tree = _parse(_sections()[name], schema)
    for part in sorted(leave_out):
        _leave_out(tree, part, name)
    slots = tuple((node.name, _path(node)) for node in tree.find_all(Slot))
    casts = tuple(_path(n) for n in tree.find_all(TypeCast) if n.args["to"] == HALFVEC)
    params = tuple(dict.fromkeys(p.name for p in tree.find_all(exp.Placeholder)))
    return _Template(tree, slots, casts, frozenset(s for s, _ in slots), params)


@functools.cache
def _sections() -> dict[str, str]:
    text = resources.files(__package__).joinpath("templates/statements.sql").read_text("utf-8")
    parts = _SECTION.split(text)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _parse(sql: str, schema: str) -> exp.Expr:
    tree = sqlglot.parse_one(sql, dialect=PG_DIALECT)
    for node in list(tree.walk()):
        # Comments stay in the template; the parser's positions and type guesses are read by
        # nothing, and copying them would double the cost of each copy.
        node.comments = None
        node.type = None
        node._meta = None
        replacement = _normalised(node, schema)
        if replacement is not node:
            node.replace(replacement)
    return tree


def _normalised(node: exp.Expr, schema: str) -> exp.Expr:
    if isinstance(node, exp.Placeholder):
        if isinstance(node.this, str):  # :name
            return Slot(this=node.this)
        return exp.Placeholder(this=node.name)  # %(name)s, named as Params names it
    if isinstance(node, exp.Cast):
        to = PG_DIALECT.generate(node.args["to"]).lower()
        return TypeCast(this=node.this, to="float8" if to == "double precision" else to)
    if isinstance(node, exp.NullSafeEQ):
        return CosineDistance(this=node.this, expression=node.expression)
    if isinstance(node, exp.Bracket):
        node.set("offset", 1)  # already 1-based: inline() must not shift a literal subscript
    elif isinstance(node, exp.Table) and node.db == SCHEMA and schema != SCHEMA:
        node.set("db", exp.to_identifier(schema))
    return node


def _leave_out(tree: exp.Expr, part: str, name: str) -> None:
    """Removes the CTE or slot `part`, and each AND operand that reads it."""
    with_ = tree.args.get("with_")
    ctes = [c for c in (with_.expressions if with_ else []) if c.alias == part]
    for cte in ctes:
        cte.pop()
    readers: list[exp.Expr] = [t for t in tree.find_all(exp.Table) if ctes and t.name == part and not t.db]
    readers += [s for s in tree.find_all(Slot) if s.name == part]
    assert ctes or readers, f"template {name} has no {part}"
    for reader in readers:
        node = reader
        while not isinstance(node.parent, exp.And):
            assert node.parent is not None, f"template {name}: {part} is read outside a condition"
            node = node.parent
        conjunction = node.parent
        other = conjunction.expression if node is conjunction.this else conjunction.this
        conjunction.replace(other)
