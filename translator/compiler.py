"""compile_query: the pipeline parse -> allow-list -> resolve -> type-check -> generate, and the
CompiledQuery it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlglot import exp

from .allow import check_allowed
from .bounds import MAX_LIMIT as MAX_LIMIT  # importable here too (pgsearch/api.py, tests)
from .bounds import MAX_OFFSET as MAX_OFFSET
from .bounds import check_paging, check_query_vector
from .catalog import AssetSource, Catalog, ShapeSource, Similarity, Target, VectorSource
from .columns import column_names
from .dialect import PG_DIALECT
from .errors import QueryTypeError
from .fields import join_ids
from .generate import Params, PredicateGenerator, where_clause
from .nodes import Kind
from .parse import parse
from .paths import choose_path
from .resolve import Resolver
from .statement import StatementBuilder
from .typecheck import TypeChecker


@dataclass(frozen=True)
class CompiledQuery:
    """One PostgreSQL statement.

    sql: the statement with psycopg named placeholders (`%(p1)s`, `%(dataset_id)s`, ...);
      run it as `cursor.execute(q.sql, q.params)`.
    params: the placeholder values (str, int, Decimal, bool; the query vector as pgvector text).
    columns: the output column names, in order.
    inline(): the same statement with every value written as a quoted SQL literal, for psql.
    """

    sql: str
    params: dict[str, Any]
    columns: tuple[str, ...]
    statement: exp.Expr = field(repr=False, compare=False)

    def route_statement(self) -> str | None:
        """A statement (same params) whose one value says whether this similarity search takes
        the exact path up front (see paths.py); None when it has no route to take (no
        filter, or no similarity ordering)."""
        with_ = self.statement.args.get("with_")
        ctes = {cte.alias: cte.this for cte in with_.expressions} if with_ else {}
        if "route" not in ctes:
            return None
        probe = exp.select("exact").from_("route").with_("route", ctes["route"].copy())
        return PG_DIALECT.generate(probe, copy=False)

    def inline(self) -> str:
        tree = self.statement.copy()
        for placeholder in list(tree.find_all(exp.Placeholder)):
            placeholder.replace(_literal(self.params[placeholder.name]))
        return PG_DIALECT.generate(tree, copy=False)


def compile_query(
    text: str | None,
    catalog: Catalog,
    *,
    target: Target = "asset",
    similarity: Similarity | None = None,
    limit: int = 100,
    offset: int = 0,
) -> CompiledQuery:
    """Compiles a metadata query into one SELECT over `catalog`'s dataset.

    text: the query; None means no condition (every row), "" or blanks are an error.
    target: "asset" rows or "shape" rows.
    similarity: order by cosine distance to a query vector (see Similarity) instead of by id.
    Raises QueryError (a subclass) for anything the user can fix.
    """
    if target not in ("asset", "shape"):
        raise QueryTypeError(f"target must be 'asset' or 'shape', not {target!r}")
    check_paging(limit, offset)
    params = Params()
    runs = join_ids(catalog)
    field_columns = {(f.field, Kind(f.kind)): f.column for f in catalog.field_columns}
    generator = PredicateGenerator(params, runs, field_columns)
    tree: exp.Expr | None = None
    predicate: exp.Expr | None = None
    if text is not None:
        tree = parse(text)
        check_allowed(text, tree)
        tree = Resolver(text, catalog, target).resolve(tree)
        tree = TypeChecker(text, catalog.labels, target).check(tree)
        predicate = where_clause(generator.condition(tree))
    builder = StatementBuilder(catalog, target, params)
    if similarity is None:
        statement = builder.plain(predicate, generator.joined, limit, offset)
    else:
        _check_similarity(similarity, target)
        path = choose_path(similarity, limit + offset, tree, field_columns)
        statement = builder.similar(predicate, generator.joined, similarity, limit, offset, path)
    columns = column_names(target, similarity=similarity is not None)
    # No defensive copy: the tree is ours alone, and copying it would double the compile time.
    return CompiledQuery(PG_DIALECT.generate(statement, copy=False), params.values, columns, statement)


def _check_similarity(sim: Similarity, target: Target) -> None:
    space = sim.space
    if space.target != target:
        raise QueryTypeError(
            f"embedding space {space.id} holds {space.target} vectors; the rows are {target}s"
        )
    source = sim.source
    if isinstance(source, VectorSource):
        check_query_vector(source.vector, space.dim)
    elif isinstance(source, AssetSource):
        if target != "asset" or (source.asset_id is None) == (source.filename is None):
            raise QueryTypeError("an asset source names an asset by id or by filename, for asset rows")
    elif isinstance(source, ShapeSource):
        if target != "shape":
            raise QueryTypeError("a shape source orders shape rows")


def _literal(value: Any) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, Decimal)):
        return exp.Literal.number(format(value, "f") if isinstance(value, Decimal) else str(value))
    if value is None:
        return exp.Null()
    return exp.Literal.string(str(value))
