"""Stage 6: the predicate -> one SELECT over the dataset's assets or shapes, ordered by id or by
cosine distance to a query vector, with LIMIT/OFFSET as parameters.

The statements are the templates of translator/templates/statements.sql, which read as the SQL
that runs; this module fills their slots (template.py): the output columns, the rows' table and
the joins the filter reads, the filter, the partition, the query vector, and the parameters.
Which template and which parts a similarity search takes is paths.choose_path's decision.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from .bounds import unit_vector
from .catalog import AssetSource, Catalog, ShapeSource, Similarity, Target, VectorSource
from .columns import ASSET_COLUMNS, SHAPE_COLUMNS
from .fields import ASSET, EMBEDDING, JOINS, LABEL, SHAPE, join_ids
from .generate import Params, cast, col, paren
from .paths import SearchPath
from .template import Rows, SlotValue, fill

# Where a shape's output columns other than its own are read: its asset's, its label's.
_SHAPE_COLUMN_SOURCES = {"filename": (ASSET, "filename"), "path": (ASSET, "path"), "label": (LABEL, "name")}


class StatementBuilder:
    def __init__(self, catalog: Catalog, target: Target, params: Params) -> None:
        self.catalog = catalog
        self.target = target
        self.params = params
        self.row = ASSET if target == "asset" else SHAPE
        self.base = "assets" if target == "asset" else "shapes"

    def plain(self, predicate: exp.Expr | None, points: set[str], limit: int, offset: int) -> exp.Expr:
        slots: dict[str, SlotValue] = {
            "columns": self._columns(),
            "rows": self._rows(None, points),
            "scope": self._scope(),
            "row_id": col(self.row, "id"),
        }
        return self._fill("plain", slots, predicate, {"limit": limit, "offset": offset})

    def similar(
        self,
        predicate: exp.Expr | None,
        points: set[str],
        sim: Similarity,
        limit: int,
        offset: int,
        path: SearchPath,
    ) -> exp.Expr:
        k = limit + offset
        needed = _aliases(predicate)
        if any(JOINS[a].owner == ASSET for a in needed & points):
            needed.add(ASSET)  # asset.x, asset.uniqueness ... of a shape: joined on the shape's asset
        slots: dict[str, SlotValue] = {
            "query_vector": self._query_vector(sim),
            "columns": self._columns(),
            "partition": self._table(sim.space.table, EMBEDDING),
            "rows": self._rows(needed, points),
        }
        values: dict[str, Any] = {"k": k, "limit": limit, "offset": offset}
        if path.sketched:
            copy = predicate.copy() if predicate is not None else None
            slots["candidates"] = self._candidates(copy, points, sim, path, k)
            values |= {"dataset_id": self.catalog.dataset_id, "space_id": sim.space.id}
        else:
            slots |= {
                "scope": self._scope(),
                "row_id": col(self.row, "id"),
                "embedded_id": col(EMBEDDING, "asset_id" if self.target == "asset" else "shape_id"),
                "output_rows": self._rows(None, set()),
            }
        if path.route is not None:
            assert predicate is not None
            route = path.route
            slots["route"] = fill(
                "route",
                {"scope": self._scope(), "predicate": predicate.copy(), "rows": self._rows(needed, points)},
                self.params,
                {
                    "sample_rows": route.sample_rows,
                    "sample_table": f"{self.catalog.schema}.{self.base}",
                    "exact_rows": route.exact_rows,
                    "exact_rows_max": route.exact_rows_max,
                    "exact_share": route.exact_share,
                },
                schema=self.catalog.schema,
            )
        # A walk without a route (no filter): its template's route CTE is left out.
        leave_out = frozenset({"route"}) if path.walk and path.route is None else frozenset()
        statement = self._fill(path.template, slots, predicate, values, sim.space.dim, leave_out)
        if not sim.dissimilar:
            self._source_first(statement, sim)
        return statement

    def _source_first(self, statement: exp.Expr, sim: Similarity) -> None:
        """On equal distance the query item itself comes first: an identical copy of the image
        (distance 0 as well) with a smaller id would otherwise head the results. The outer ORDER
        BY gets `<the row is not the source>` (false first) between distance and id."""
        source = sim.source
        if isinstance(source, AssetSource) and source.asset_id is not None:
            other = exp.NEQ(
                this=col("hits", "id"), expression=self.params.named("source_asset", source.asset_id)
            )
        elif isinstance(source, AssetSource) and self.target == "asset":
            name = self.params.named("source_filename", source.filename)
            other = exp.NEQ(this=col(ASSET, "filename"), expression=name)
        elif isinstance(source, ShapeSource):
            other = exp.NEQ(
                this=col("hits", "id"), expression=self.params.named("source_shape", source.shape_id)
            )
        else:
            return  # a vector: no item of the dataset is the query
        order = statement.args["order"]
        keys = list(order.expressions)
        order.set(
            "expressions", [keys[0], exp.Ordered(this=paren(other), desc=False, nulls_first=False), *keys[1:]]
        )

    def _candidates(
        self, predicate: exp.Expr | None, points: set[str], sim: Similarity, path: SearchPath, k: int
    ) -> exp.Expr:
        """The sketch-ranked candidates of the exact path: the group's members, or the matching
        asset rows."""
        values: dict[str, Any] = {
            "dataset_id": self.catalog.dataset_id,
            "k": k,
            "space_id": sim.space.id,
            "rerank": path.rerank,
        }
        if path.group is not None:
            values["group"] = path.group
            return fill("group_candidates", {}, self.params, values, schema=self.catalog.schema)
        rows = self._rows(None, points)
        return self._fill("sketch_candidates", {"rows": rows}, predicate, values)

    def _fill(
        self,
        name: str,
        slots: dict[str, SlotValue],
        predicate: exp.Expr | None,
        values: dict[str, Any],
        dim: int | None = None,
        leave_out: frozenset[str] = frozenset(),
    ) -> exp.Expr:
        """fill() with the predicate, or without one (left out of the template with its AND)."""
        if predicate is None:
            leave_out |= {"predicate"}
        else:
            slots["predicate"] = predicate
        return fill(
            name, slots, self.params, values, schema=self.catalog.schema, dim=dim, leave_out=leave_out
        )

    def _table(self, name: str, alias: str) -> exp.Table:
        return exp.Table(
            this=exp.to_identifier(name),
            db=exp.to_identifier(self.catalog.schema),
            alias=exp.TableAlias(this=exp.to_identifier(alias)),
        )

    def _columns(self) -> list[exp.Expr]:
        if self.target == "asset":
            return [col(ASSET, c) for c in ASSET_COLUMNS]
        columns: list[exp.Expr] = []
        for name in SHAPE_COLUMNS:
            alias, column = _SHAPE_COLUMN_SOURCES.get(name, (SHAPE, name))
            columns.append(col(alias, column) if column == name else exp.alias_(col(alias, column), name))
        return columns

    def _scope(self) -> exp.Expr:
        dataset = self.params.named("dataset_id", self.catalog.dataset_id)
        return exp.EQ(this=col(self.row, "dataset_id"), expression=dataset)

    def _rows(self, needed: set[str] | None, points: set[str]) -> Rows:
        """The rows' table and its joins: a shape's label and asset (those in `needed`; None: both),
        then the LEFT JOINs of the on-demand tables (fields.JOINS) the predicate reads: projection
        points of the latest map run, results of the latest curation runs."""
        joins: list[exp.Join] = []
        if self.target == "shape":
            shape_rows = fill("shape_rows", {}, self.params, {}, schema=self.catalog.schema)
            joins = [j for j in shape_rows.args["joins"] if needed is None or j.alias_or_name in needed]
        ids = join_ids(self.catalog)
        for alias in sorted(points):
            join = JOINS[alias]
            on = exp.And(
                this=exp.EQ(
                    this=col(alias, join.scope), expression=self.params.named(join.param, ids[alias])
                ),
                expression=exp.EQ(this=col(alias, "item_id"), expression=col(join.owner, "id")),
            )
            joins.append(exp.Join(this=self._table(join.table, alias), on=on, side="LEFT"))
        return Rows(self._table(self.base, self.row), joins)

    def _query_vector(self, sim: Similarity) -> exp.Expr:
        source = sim.source
        halfvec = f"halfvec({sim.space.dim})"
        if isinstance(source, VectorSource):
            text = "[" + ",".join(repr(x) for x in unit_vector(source.vector)) + "]"
            return cast(self.params.named("query_vector", text), halfvec)
        slots: dict[str, SlotValue] = {"partition": self._table(sim.space.table, "q")}
        values: dict[str, Any]
        if isinstance(source, AssetSource) and source.asset_id is not None:
            name, values = "vector_of_asset", {"source_asset": source.asset_id}
        elif isinstance(source, AssetSource):
            values = {"dataset_id": self.catalog.dataset_id, "source_filename": source.filename}
            name = "vector_of_filename"
        else:
            assert isinstance(source, ShapeSource)
            name, values = "vector_of_shape", {"source_shape": source.shape_id}
        select = fill(name, slots, self.params, values, schema=self.catalog.schema, dim=sim.space.dim)
        return exp.Subquery(this=select)


def _aliases(predicate: exp.Expr | None) -> set[str]:
    """The table aliases a predicate reads."""
    if predicate is None:
        return set()
    return {c.table for c in predicate.find_all(exp.Column) if c.table}
