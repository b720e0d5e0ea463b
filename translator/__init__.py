"""The metadata query language: text -> one PostgreSQL statement, through sqlglot.

Depends on the standard library and sqlglot only; it reads no database. The caller hands in a
Catalog describing the dataset (see pgsearch.catalog.load_catalog) and runs the result.

Public API::

    compile_query(text: str | None, catalog: Catalog, *, target: Literal["asset", "shape"] = "asset",
                  similarity: Similarity | None = None, limit: int = 100, offset: int = 0) -> CompiledQuery

    q = compile_query('(squirrel > 2 or height > 200) and "dataset2" in groups', catalog)
    cursor.execute(q.sql, q.params)   # psycopg named placeholders: %(p1)s, %(dataset_id)s, ...
    print(q.inline())                 # literals inlined and quoted, runnable in psql
    q.columns                         # output column names ("distance" last when similarity-ordered)

Similarity(space, source, dissimilar=False) orders by cosine distance to a query vector:
source is VectorSource(vector) (a bound parameter), AssetSource(asset_id=... | filename=...) or
ShapeSource(shape_id) (a scalar subquery on the stored embedding in the same space).

Sessions that run similarity statements should carry pgsearch.search_settings (libpq
`options`, as pgsearch.connect() does) so the HNSW index path returns k rows without falling back
to the exact path; without them the statement is still exact-k, only slower.

Without sqlglot (cheap to import, for callers that check or lay out before compiling):
ASSET_COLUMNS / SHAPE_COLUMNS / column_names(target, similarity=...) (the output columns),
MAX_LIMIT / MAX_OFFSET / check_paging(limit, offset), check_query_vector(vector, dim).

Errors: every user mistake raises a subclass of QueryError (QuerySyntaxError,
UnknownNameError, QueryTypeError, QueryLimitError) carrying line, column and a caret rendering.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .bounds import MAX_LIMIT, MAX_OFFSET, check_paging, check_query_vector
from .catalog import (
    AssetSource,
    Catalog,
    EmbeddingSpace,
    FieldColumn,
    ShapeSource,
    Similarity,
    Source,
    Target,
    VectorSource,
)
from .columns import ASSET_COLUMNS, SHAPE_COLUMNS, column_names
from .errors import QueryError, QueryLimitError, QuerySyntaxError, QueryTypeError, UnknownNameError

if TYPE_CHECKING:
    from .compiler import CompiledQuery, compile_query
    from .parse import MAX_NESTING, MAX_QUERY_LENGTH, SIZE_UNITS

# sqlglot (about 100 ms to import) loads with the first use of these, not with the package: the
# errors and the catalog types are imported by every pgsearch command, most of which compile nothing.
_LAZY = {
    "CompiledQuery": "compiler",
    "compile_query": "compiler",
    "MAX_NESTING": "parse",
    "MAX_QUERY_LENGTH": "parse",
    "SIZE_UNITS": "parse",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "ASSET_COLUMNS",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "SHAPE_COLUMNS",
    "MAX_NESTING",
    "MAX_QUERY_LENGTH",
    "SIZE_UNITS",
    "AssetSource",
    "Catalog",
    "CompiledQuery",
    "EmbeddingSpace",
    "FieldColumn",
    "QueryError",
    "QueryLimitError",
    "QuerySyntaxError",
    "QueryTypeError",
    "ShapeSource",
    "Similarity",
    "Source",
    "Target",
    "UnknownNameError",
    "VectorSource",
    "check_paging",
    "check_query_vector",
    "column_names",
    "compile_query",
]
