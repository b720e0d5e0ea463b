"""The expression an index must be built on to serve the translator's comparisons of a jsonb field.

A metadata comparison compiles to `<value of metadata.KEY as KIND> op $literal` (see
generate.PredicateGenerator.json_value); PostgreSQL uses an expression index, and its statistics,
only when the index expression is that same expression. This module produces it, from the same
generator, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from .allow import check_allowed
from .catalog import Catalog, Target
from .dialect import PG_DIALECT
from .errors import QueryTypeError
from .generate import Params, PredicateGenerator, json_field_name
from .nodes import JsonRef, Kind
from .parse import parse
from .resolve import Resolver

INDEXABLE_KINDS = {"number": Kind.NUMBER, "string": Kind.STRING, "boolean": Kind.BOOL}


@dataclass(frozen=True)
class IndexableField:
    """field: as the user wrote it, normalised (metadata.a.b); table: "assets" or "shapes";
    kind: number, string or boolean; expression: the SQL expression over unqualified columns."""

    field: str
    table: str
    kind: str
    expression: str


def indexable_field(field: str, kind: str) -> IndexableField:
    """The index expression for `field` (metadata.KEY... on assets, attributes.KEY... on shapes)
    compared as `kind`. Raises QueryError for anything else."""
    if kind not in INDEXABLE_KINDS:
        raise QueryTypeError(f"an index compares values as one of {', '.join(INDEXABLE_KINDS)}, not {kind!r}")
    tree = parse(field)
    check_allowed(field, tree)
    target: Target = "shape" if field.strip().lower().startswith("attributes") else "asset"
    node = Resolver(field, Catalog(dataset_id=0), target).resolve(tree)
    if not isinstance(node, JsonRef):
        raise QueryTypeError(
            f"{field.strip()!r} is not a metadata.KEY or attributes.KEY field; "
            "the built-in fields have their indexes already"
        )
    params = Params()
    value = PredicateGenerator(params, {}).json_value(node, INDEXABLE_KINDS[kind])

    def inline(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Placeholder):
            return exp.Literal.string(str(params.values[node.name]))
        if isinstance(node, exp.Column):
            return exp.column(node.name)
        return node

    value = value.transform(inline)
    name = json_field_name(node)
    table = "shapes" if node.this == "attributes" else "assets"
    return IndexableField(name, table, kind, PG_DIALECT.generate(value, copy=False))
