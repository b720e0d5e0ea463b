"""compile_query: the pipeline parse -> allow-list -> resolve -> type-check -> generate, and the
CompiledQuery it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlglot import exp

from .allow import check_allowed
from .catalog import AssetSource, Catalog, ShapeSource, Similarity, Target, VectorSource
from .covering import Covering, covering
from .dialect import PG_DIALECT
from .errors import QueryLimitError, QueryTypeError
from .fields import join_ids
from .generate import Params, PredicateGenerator, where_clause
from .nodes import Kind
from .parse import parse
from .resolve import Resolver
from .statement import StatementBuilder, column_names
from .typecheck import TypeChecker

MAX_LIMIT = 100_000
MAX_OFFSET = 1_000_000


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
        the exact path up front (see statement.py); None when it has no route to take (no
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
    _check_paging(limit, offset)
    params = Params()
    runs = join_ids(catalog)
    field_columns = {(f.field, Kind(f.kind)): f.column for f in catalog.field_columns}
    generator = PredicateGenerator(params, runs, field_columns)
    predicate: exp.Expr | None = None
    covered: Covering | None = None
    if text is not None:
        tree = parse(text)
        check_allowed(text, tree)
        tree = Resolver(text, catalog, target).resolve(tree)
        tree = TypeChecker(text).check(tree)
        if target == "asset":
            covered = covering(tree, field_columns)
        predicate = where_clause(generator.condition(tree))
    builder = StatementBuilder(catalog, target, params)
    if similarity is None:
        statement = builder.plain(predicate, generator.joined, limit, offset)
        columns = column_names(target)
    else:
        _check_similarity(similarity, target)
        statement = builder.similar(predicate, generator.joined, similarity, limit, offset, covered)
        columns = (*column_names(target), "distance")
    # No defensive copy: the tree is ours alone, and copying it would double the compile time.
    return CompiledQuery(PG_DIALECT.generate(statement, copy=False), params.values, columns, statement)


def _check_paging(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryLimitError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise QueryLimitError(f"offset must be a whole number from 0 to {MAX_OFFSET}, not {offset!r}")


def _check_similarity(sim: Similarity, target: Target) -> None:
    space = sim.space
    if space.target != target:
        raise QueryTypeError(
            f"embedding space {space.id} holds {space.target} vectors; the rows are {target}s"
        )
    source = sim.source
    if isinstance(source, VectorSource):
        if len(source.vector) != space.dim:
            raise QueryTypeError(
                f"query vector has {len(source.vector)} dimensions; the space has {space.dim}"
            )
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in source.vector):
            raise QueryTypeError("query vector values must be finite numbers")
        if not any(source.vector):
            raise QueryTypeError("query vector is all zeros: it has no direction to search along")
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
