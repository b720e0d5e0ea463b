"""Stage 6: the predicate -> one SELECT over the dataset's assets or shapes, ordered by id or by
cosine distance to a query vector, with LIMIT/OFFSET as parameters.

Similarity ordering keeps "exactly k rows whenever k rows match" in one statement:

    WITH query_vector AS (SELECT <q> AS v),
    ann AS (SELECT ..., cosine_distance(emb, q) AS distance FROM ... WHERE <filter>
            ORDER BY emb <=> q LIMIT k)                      -- the HNSW index path
    SELECT * FROM (
        SELECT ... FROM ann WHERE (SELECT count(*) FROM ann) >= k
        UNION ALL
        (SELECT ..., cosine_distance(emb, q) AS distance FROM ... WHERE <filter>
           AND (SELECT count(*) FROM ann) < k ORDER BY distance, id LIMIT k)   -- exact path
    ) AS result ORDER BY distance, id LIMIT <limit> OFFSET <offset>

`emb` is `e.embedding::halfvec(dim)`, the partition's index expression, so the index serves
the ann ORDER BY. The exact path orders by the function cosine_distance(), which no index
answers, so it is a true top-k over every matching row. PostgreSQL evaluates the count
conditions as one-time filters: the exact path runs only when the index path came up short
(a selective filter, or a session without hnsw.iterative_scan).
"""

from __future__ import annotations

from sqlglot import exp

from .catalog import AssetSource, Catalog, ShapeSource, Similarity, Target, VectorSource
from .dialect import CosineDistance
from .fields import ASSET, ASSET_POINT, EMBEDDING, LABEL, SHAPE, SHAPE_POINT
from .generate import Params, cast, col, func, paren

ASSET_COLUMNS = (
    "id",
    "filename",
    "path",
    "width",
    "height",
    "size",
    "format",
    "status",
    "groups",
    "metadata",
    "label_counts",
    "annotation_count",
)
SHAPE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (SHAPE, "id", "id"),
    (SHAPE, "asset_id", "asset_id"),
    (ASSET, "filename", "filename"),
    (ASSET, "path", "path"),
    (LABEL, "name", "label"),
    (SHAPE, "kind", "kind"),
    (SHAPE, "bbox_x", "bbox_x"),
    (SHAPE, "bbox_y", "bbox_y"),
    (SHAPE, "bbox_width", "bbox_width"),
    (SHAPE, "bbox_height", "bbox_height"),
    (SHAPE, "area", "area"),
    (SHAPE, "attributes", "attributes"),
)


def column_names(target: Target) -> tuple[str, ...]:
    """The statement's output columns, in order (plus "distance" when similarity-ordered)."""
    if target == "asset":
        return ASSET_COLUMNS
    return tuple(name for _, _, name in SHAPE_COLUMNS)


class StatementBuilder:
    def __init__(self, catalog: Catalog, target: Target, params: Params) -> None:
        self.catalog = catalog
        self.target = target
        self.params = params
        self.row = ASSET if target == "asset" else SHAPE

    def table(self, name: str, alias: str) -> exp.Expr:
        return exp.Table(
            this=exp.to_identifier(name),
            db=exp.to_identifier(self.catalog.schema),
            alias=exp.TableAlias(this=exp.to_identifier(alias)),
        )

    def _columns(self) -> list[exp.Expr]:
        if self.target == "asset":
            return [col(ASSET, c) for c in ASSET_COLUMNS]
        return [
            col(alias, column) if column == name else exp.alias_(col(alias, column), name)
            for alias, column, name in SHAPE_COLUMNS
        ]

    def _from(self, select: exp.Select, points: set[str], embedding: str | None) -> exp.Select:
        """FROM (embedding partition,) rows and their joins; WHERE dataset."""
        if embedding is not None:
            select = select.from_(self.table(embedding, EMBEDDING), copy=False)
            key = "asset_id" if self.target == "asset" else "shape_id"
            select = select.join(
                self.table(self._base(), self.row),
                on=_eq(col(self.row, "id"), col(EMBEDDING, key)),
                copy=False,
            )
        else:
            select = select.from_(self.table(self._base(), self.row), copy=False)
        if self.target == "shape":
            select = select.join(
                self.table("labels", LABEL), on=_eq(col(LABEL, "id"), col(SHAPE, "label_id")), copy=False
            )
            select = select.join(
                self.table("assets", ASSET), on=_eq(col(ASSET, "id"), col(SHAPE, "asset_id")), copy=False
            )
        runs = {
            ASSET_POINT: (self.catalog.asset_run, ASSET, "asset_run"),
            SHAPE_POINT: (self.catalog.shape_run, SHAPE, "shape_run"),
        }
        for alias in sorted(points):
            run, owner, name = runs[alias]
            on = exp.And(
                this=_eq(col(alias, "run_id"), self.params.named(name, run)),
                expression=_eq(col(alias, "item_id"), col(owner, "id")),
            )
            select = select.join(self.table("projection_points", alias), on=on, join_type="left", copy=False)
        return select

    def _base(self) -> str:
        return "assets" if self.target == "asset" else "shapes"

    def _where(self, predicate: exp.Expr | None) -> exp.Expr:
        scope = _eq(col(self.row, "dataset_id"), self.params.named("dataset_id", self.catalog.dataset_id))
        return scope if predicate is None else exp.And(this=scope, expression=paren(predicate))

    def plain(self, predicate: exp.Expr | None, points: set[str], limit: int, offset: int) -> exp.Expr:
        select = self._from(_select(self._columns()), points, None).where(self._where(predicate), copy=False)
        select = select.order_by(col(self.row, "id"), copy=False)
        return select.limit(self.params.named("limit", limit), copy=False).offset(
            self.params.named("offset", offset), copy=False
        )

    def similar(
        self, predicate: exp.Expr | None, points: set[str], sim: Similarity, limit: int, offset: int
    ) -> exp.Expr:
        dim = sim.space.dim
        halfvec = f"halfvec({dim})"
        embedding = cast(col(EMBEDDING, "embedding"), halfvec)
        query = _scalar(_select([exp.column("v")]).from_(_cte("query_vector"), copy=False))
        order_vector = query
        if sim.dissimilar:
            # halfvec has no scalar product; (q - q) - q is -q exactly, and cosine distance to
            # -q orders rows from least to most similar to q.
            v = exp.column("v")
            negated = exp.Sub(this=paren(exp.Sub(this=v, expression=v.copy())), expression=v.copy())
            order_vector = _scalar(_select([negated]).from_(_cte("query_vector"), copy=False))
        k = self.params.named("k", limit + offset)
        distance = exp.alias_(func("cosine_distance", embedding, query), "distance")
        direction = sim.dissimilar

        ann = self._from(_select([*self._columns(), distance]), points, sim.space.table)
        ann = ann.where(self._where(predicate), copy=False)
        ann = ann.order_by(
            CosineDistance(this=paren(embedding.copy()), expression=order_vector), copy=False
        ).limit(k, copy=False)

        count = _scalar(_select([exp.Count(this=exp.Star())]).from_(_cte("ann"), copy=False))
        from_ann = _select([exp.Star()]).from_(_cte("ann"), copy=False)
        from_ann = from_ann.where(exp.GTE(this=count, expression=k.copy()), copy=False)

        exact = self._from(_select([*self._columns(), distance.copy()]), points, sim.space.table)
        exact = exact.where(
            exp.And(this=self._where(predicate), expression=exp.LT(this=count.copy(), expression=k.copy())),
            copy=False,
        )
        exact = exact.order_by(
            _ordered(exp.column("distance"), direction), col(self.row, "id"), copy=False
        ).limit(k.copy(), copy=False)

        union = exp.Union(this=from_ann, expression=exp.Subquery(this=exact), distinct=False)
        outer = _select([exp.Star()]).from_(
            exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("result"))), copy=False
        )
        outer = outer.order_by(
            _ordered(exp.column("distance", table="result"), direction),
            exp.column("id", table="result"),
            copy=False,
        )
        outer = outer.limit(self.params.named("limit", limit), copy=False).offset(
            self.params.named("offset", offset), copy=False
        )
        outer = outer.with_(
            "query_vector", _select([exp.alias_(self._query_vector(sim, halfvec), "v")]), copy=False
        )
        return outer.with_("ann", ann, copy=False)

    def _query_vector(self, sim: Similarity, halfvec: str) -> exp.Expr:
        source = sim.source
        stored = cast(col("q", "embedding"), halfvec)
        if isinstance(source, VectorSource):
            text = "[" + ",".join(repr(float(x)) for x in source.vector) + "]"
            return cast(self.params.named("query_vector", text), halfvec)
        if isinstance(source, AssetSource):
            select = _select([stored]).from_(self.table(sim.space.table, "q"), copy=False)
            if source.asset_id is not None:
                return _scalar(
                    select.where(
                        _eq(col("q", "asset_id"), self.params.named("source_asset", source.asset_id)),
                        copy=False,
                    )
                )
            select = select.join(
                self.table("assets", "qa"), on=_eq(col("qa", "id"), col("q", "asset_id")), copy=False
            )
            where = exp.And(
                this=_eq(col("qa", "dataset_id"), self.params.named("dataset_id", self.catalog.dataset_id)),
                expression=_eq(col("qa", "filename"), self.params.named("source_filename", source.filename)),
            )
            return _scalar(select.where(where, copy=False))
        assert isinstance(source, ShapeSource)
        select = _select([stored]).from_(self.table(sim.space.table, "q"), copy=False)
        return _scalar(
            select.where(
                _eq(col("q", "shape_id"), self.params.named("source_shape", source.shape_id)), copy=False
            )
        )


def _cte(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name))


def _eq(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.EQ(this=left, expression=right)


def _scalar(select: exp.Select) -> exp.Expr:
    return exp.Subquery(this=select)


def _ordered(e: exp.Expr, descending: bool) -> exp.Expr:
    return exp.Ordered(this=e, desc=descending, nulls_first=False)


def _select(columns: list[exp.Expr]) -> exp.Select:
    # exp.select() deep-copies every column it is given; these are fresh, so build directly.
    return exp.Select(expressions=columns)
