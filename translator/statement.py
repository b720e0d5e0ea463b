"""Stage 6: the predicate -> one SELECT over the dataset's assets or shapes, ordered by id or by
cosine distance to a query vector, with LIMIT/OFFSET as parameters.

A similarity search picks, inside its one statement, between two ways of finding the top k:

    WITH query_vector AS (SELECT <q> AS v),
    route AS MATERIALIZED (                       -- only with a filter
        SELECT <estimated matching rows> < ... AS exact
          FROM assets AS a TABLESAMPLE SYSTEM (<~4,000 rows>) REPEATABLE (0) WHERE ...),
    ann AS MATERIALIZED (                         -- the HNSW index path
        SELECT a.id, cosine_distance(emb, q) AS distance FROM <partition> JOIN assets ...
         WHERE <filter> AND NOT (SELECT exact FROM route) ORDER BY emb <=> q LIMIT k),
    hits AS (
        SELECT id, distance FROM ann WHERE (SELECT count(*) FROM ann) >= k
        UNION ALL
        (SELECT e.asset_id, cosine_distance(emb, q) AS distance FROM <partition> AS e   -- exact path
          WHERE e.asset_id = ANY (ARRAY(SELECT a.id FROM assets AS a WHERE <filter>
                    AND (SELECT count(*) FROM ann) < k
                  ORDER BY hamming_distance(a.sketches[space], <query sketch>), a.id LIMIT rerank))
          ORDER BY distance, id LIMIT k))
    SELECT <columns>, hits.distance FROM hits JOIN assets AS a ON a.id = hits.id
     ORDER BY distance, id LIMIT <limit> OFFSET <offset>

- A graph walk under a filter that keeps a fraction f of the rows visits about k / f rows; at
  f = 1% of 1M that is 10,000 visits, slower than the exact path and with recall near 0.8
  (bench/README.md). `route` estimates the matching rows from a page sample of the table (about
  4,000 rows, the same pages every time) and sends narrow filters straight to the exact path, whose
  cost is proportional to the matching rows. It reads the table's own row count from pg_class.
- The count conditions are one-time filters: PostgreSQL runs the exact branch only when `ann`
  came up short (routed there, a narrow filter after hnsw.max_scan_tuples, fewer than k rows, or a
  session without hnsw.iterative_scan), so k rows come back whenever k rows match.
- `emb` is `e.embedding::halfvec(dim)`, the partition's index expression, so the index serves
  the ann ORDER BY. The exact path orders by the function cosine_distance(), which no index
  answers, so it is a true top-k over every matching row.
- The exact path of an asset space (of at least SKETCH_MIN_DIM dimensions) reads no vector for
  most matching rows: it ranks them by the Hamming distance between their sketch, kept in the
  asset row by sql/sketches.sql, and the query's (binary_quantize(q - the space's centre)), and
  computes the true distance of the best `rerank` only. The asset row is read for the filter
  anyway; a vector lookup per matching row cost twice that (bench/README.md). With no centre yet
  (no vector written through the triggers) the query sketch is NULL and LIMIT NULL ranks every
  matching row. Shape spaces and small vectors read every matching row's vector.
- Some filters hand the exact path the matching ids and sketches from an index alone (see
  covering.py): `"NAME" in groups` reads group_members instead of assets; status and indexed
  metadata fields read a btree that carries them. The route keeps those exact for wider filters
  (COVERED_EXACT_*).
- A dissimilar search (least similar first) is the exact path alone, reading every matching
  row's vector, with no route, walk or sketch: a walk towards -q starts among data that lies
  nowhere near -q and stops early (recall near 0.3 on embeddings sharing a common direction), and
  sketches rank the farthest rows poorly (see _sketched). About 0.85 s over a whole 1M dataset.
- Both paths produce ids and distances only; the output columns are read for the k winners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from sqlglot import exp

from .catalog import AssetSource, Catalog, ShapeSource, Similarity, Target, VectorSource
from .covering import Covering
from .dialect import CosineDistance
from .fields import ASSET, EMBEDDING, JOINS, LABEL, SHAPE, join_ids
from .generate import Params, cast, col, func, paren

# The alias of pgsearch.group_members in the exact path of a group filter.
MEMBER = "gm"

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


# The route (see the module docstring): the exact path when the sample says fewer than EXACT_ROWS
# rows match, or fewer than EXACT_ROWS_MAX and under EXACT_SHARE of the dataset. The exact path
# costs about 3 us per matching row on 2 cores (1M rows, bench/README.md); the graph walk grows
# with 1 / share and loses recall below a few percent (0.94 at 5%, 0.90 at 2%, 0.80 at 1%).
SAMPLE_ROWS = 4000
EXACT_ROWS = 2000
EXACT_ROWS_MAX = 40_000
EXACT_SHARE = Decimal("0.04")
# The same when an index hands over the matching ids and sketches (covering.py): reading them costs
# about a tenth as much, and the exact path stays under the walk's cost up to about 7% of 1M rows.
COVERED_EXACT_ROWS_MAX = 80_000
COVERED_EXACT_SHARE = Decimal("0.07")
# The exact path for assets ranks the matching rows by sketch (sql/sketches.sql) and looks up the
# true distance of the best max(RERANK_MIN, RERANK_FACTOR * k): sign bits of 512-d vectors put
# the true top 100 inside the best 1,000 of 10,000 (recall 0.97-1.0 on clustered data, lower
# without the centring), and each lookup costs about 3 us. Fewer bits rank more coarsely (256 bits
# held 94 of the top 100 in the best 1,000 of 2,000, tests/test_exact_answers.py), so spaces under
# RERANK_BITS dimensions look up proportionally more: twice as many at 256.
RERANK_MIN = 1000
RERANK_FACTOR = 10
RERANK_BITS = 512
# Fewer sign bits than this rank too coarsely to pre-rank by (and small vectors are cheap to read):
# the exact path of such spaces reads every matching row's vector.
SKETCH_MIN_DIM = 256


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

    def _from(
        self, select: exp.Select, points: set[str], embedding: str | None, needed: set[str] | None = None
    ) -> exp.Select:
        """FROM (embedding partition,) rows and their joins. needed: the aliases a shape row must
        join (labels, assets); None means all of them."""
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
            select = self._shape_joins(select, {LABEL, ASSET} if needed is None else needed)
        return self._point_joins(select, points)

    def _shape_joins(self, select: exp.Select, needed: set[str]) -> exp.Select:
        if LABEL in needed:
            select = select.join(
                self.table("labels", LABEL), on=_eq(col(LABEL, "id"), col(SHAPE, "label_id")), copy=False
            )
        if ASSET in needed:
            select = select.join(
                self.table("assets", ASSET), on=_eq(col(ASSET, "id"), col(SHAPE, "asset_id")), copy=False
            )
        return select

    def _point_joins(self, select: exp.Select, points: set[str]) -> exp.Select:
        """LEFT JOINs of the on-demand tables (fields.JOINS) the predicate reads: projection
        points of the latest map run, results of the latest curation runs."""
        ids = join_ids(self.catalog)
        for alias in sorted(points):
            join = JOINS[alias]
            on = exp.And(
                this=_eq(col(alias, join.scope), self.params.named(join.param, ids[alias])),
                expression=_eq(col(alias, "item_id"), col(join.owner, "id")),
            )
            select = select.join(self.table(join.table, alias), on=on, join_type="left", copy=False)
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
        self,
        predicate: exp.Expr | None,
        points: set[str],
        sim: Similarity,
        limit: int,
        offset: int,
        covered: Covering | None = None,
    ) -> exp.Expr:
        halfvec = f"halfvec({sim.space.dim})"
        embedding = cast(col(EMBEDDING, "embedding"), halfvec)
        query = _scalar(_select([exp.column("v")]).from_(_cte("query_vector"), copy=False))
        k = self.params.named("k", limit + offset)
        direction = sim.dissimilar
        needed = _aliases(predicate)
        if any(JOINS[a].owner == ASSET for a in needed & points):
            needed.add(ASSET)  # asset.x, asset.uniqueness ... of a shape: joined on the shape's asset
        row_id = exp.alias_(col(self.row, "id"), "id")

        def distance() -> exp.Expr:
            return exp.alias_(func("cosine_distance", embedding.copy(), query.copy()), "distance")

        def filtered(columns: list[exp.Expr]) -> exp.Select:
            select = self._from(_select(columns), points, sim.space.table, needed)
            return select.where(self._where(predicate.copy() if predicate else None), copy=False)

        # The walk (nearest first only): its own CTE, and the exact path runs when it came up short.
        walk = not sim.dissimilar
        short: exp.Expr | None = None
        if walk:
            ann = filtered([row_id, distance()])
            if predicate is not None:
                exact_first = _scalar(_select([exp.column("exact")]).from_(_cte("route"), copy=False))
                ann = ann.where(exp.Not(this=exact_first), copy=False)
            ann = ann.order_by(
                CosineDistance(this=paren(embedding.copy()), expression=query.copy()), copy=False
            )
            ann = ann.limit(k, copy=False)
            count = _scalar(_select([exp.Count(this=exp.Star())]).from_(_cte("ann"), copy=False))
            from_ann = _select([exp.column("id"), exp.column("distance")]).from_(_cte("ann"), copy=False)
            from_ann = from_ann.where(exp.GTE(this=count, expression=k.copy()), copy=False)
            short = exp.LT(this=count.copy(), expression=k.copy())

        if _sketched(sim):
            exact = self._sketched_exact(predicate, points, sim, short, limit + offset, distance(), covered)
            tiebreak = col(EMBEDDING, "asset_id")
        else:
            exact = filtered([row_id.copy(), distance()])
            if short is not None:
                exact = exact.where(short, copy=False)
            tiebreak = col(self.row, "id")
        exact = exact.order_by(_ordered(exp.column("distance"), direction), tiebreak, copy=False)
        exact = exact.limit(k.copy(), copy=False)

        hits: exp.Expr = exact
        if walk:
            hits = exp.Union(this=from_ann, expression=exp.Subquery(this=exact), distinct=False)
        outer = self._outer(hits)
        outer = outer.order_by(
            _ordered(exp.column("distance", table="hits"), direction),
            exp.column("id", table="hits"),
            copy=False,
        )
        outer = outer.limit(self.params.named("limit", limit), copy=False).offset(
            self.params.named("offset", offset), copy=False
        )
        outer = outer.with_(
            "query_vector", _select([exp.alias_(self._query_vector(sim, halfvec), "v")]), copy=False
        )
        if _sketched(sim):
            outer = outer.with_("query_sketch", self._query_sketch(sim), copy=False)
        if walk and predicate is not None:
            route = self._route(predicate, points, needed, covered is not None and _sketched(sim))
            outer = outer.with_("route", route, materialized=True, copy=False)
        if walk:
            outer = outer.with_("ann", ann, materialized=True, copy=False)
        return outer

    def _sketched_exact(
        self,
        predicate: exp.Expr | None,
        points: set[str],
        sim: Similarity,
        short: exp.Expr | None,
        k: int,
        distance: exp.Expr,
        covered: Covering | None,
    ) -> exp.Select:
        """The exact path for assets: the matching rows ranked by the Hamming distance of their
        sketch (read with the filter: from the asset rows, or from an index that carries them, see
        covering.py) to the query's, then the best `rerank` of them by their true cosine distance.
        With no query sketch (a space without a centre yet) every matching row is ranked."""
        if covered is not None and covered.group is not None:
            # `"NAME" in groups`: the group's members, read from group_members' primary key.
            rows = MEMBER
            candidates = _select([exp.alias_(col(MEMBER, "asset_id"), "id")])
            candidates = candidates.from_(self.table("group_members", MEMBER), copy=False)
            candidates = candidates.where(
                exp.And(
                    this=_eq(
                        col(MEMBER, "dataset_id"), self.params.named("dataset_id", self.catalog.dataset_id)
                    ),
                    expression=_eq(col(MEMBER, "name"), self.params.named("group", covered.group)),
                ),
                copy=False,
            )
            row_id = col(MEMBER, "asset_id")
        else:
            rows = ASSET
            candidates = self._from(_select([exp.alias_(col(ASSET, "id"), "id")]), points, None)
            candidates = candidates.where(self._where(predicate.copy() if predicate else None), copy=False)
            row_id = col(ASSET, "id")
        # offset=1: the index is already 1-based; sqlglot shifts a 0-based literal one up when
        # --sql inlines the parameter.
        sketch = exp.Bracket(
            this=col(rows, "sketches"), expressions=[self.params.named("space_id", sim.space.id)], offset=1
        )
        query_sketch = _scalar(_select([exp.column("b")]).from_(_cte("query_sketch"), copy=False))
        if short is not None:
            candidates = candidates.where(short, copy=False)
        candidates = candidates.order_by(
            _ordered(func("hamming_distance", sketch, query_sketch), sim.dissimilar), row_id, copy=False
        )
        every_row_without_sketch = exp.Case(
            ifs=[exp.If(this=exp.Is(this=query_sketch.copy(), expression=exp.Null()), true=exp.Null())],
            default=self.params.named("rerank", rerank_count(k, sim.space.dim)),
        )
        candidates = candidates.limit(every_row_without_sketch, copy=False)
        # One index scan for all the candidates' vectors (= ANY of an array): it visits the keys
        # in order, half the cost of a descent per candidate in Hamming order.
        wanted = exp.Any(this=exp.Paren(this=exp.Array(expressions=[candidates])))
        select = _select([exp.alias_(col(EMBEDDING, "asset_id"), "id"), distance])
        select = select.from_(self.table(sim.space.table, EMBEDDING), copy=False)
        return select.where(exp.EQ(this=col(EMBEDDING, "asset_id"), expression=wanted), copy=False)

    def _query_sketch(self, sim: Similarity) -> exp.Select:
        """binary_quantize(query vector - the space's sketch_center): compared with
        assets.sketches[space id], which the triggers of sql/sketches.sql keep."""
        spaces = self.table("embedding_spaces", "s")
        center = _scalar(
            _select([col("s", "sketch_center")])
            .from_(spaces, copy=False)
            .where(_eq(col("s", "id"), self.params.named("space_id", sim.space.id)), copy=False)
        )
        sketch = func("binary_quantize", exp.Sub(this=exp.column("v"), expression=center))
        return _select([exp.alias_(sketch, "b")]).from_(_cte("query_vector"), copy=False)

    def _outer(self, hits: exp.Expr) -> exp.Select:
        """The k winners' columns: hits joined back to their rows."""
        select = _select([*self._columns(), exp.alias_(exp.column("distance", table="hits"), "distance")])
        select = select.from_(
            exp.Subquery(this=hits, alias=exp.TableAlias(this=exp.to_identifier("hits"))), copy=False
        )
        select = select.join(
            self.table(self._base(), self.row),
            on=_eq(col(self.row, "id"), exp.column("id", table="hits")),
            copy=False,
        )
        if self.target == "shape":
            select = self._shape_joins(select, {LABEL, ASSET})
        return select

    def _route(self, predicate: exp.Expr, points: set[str], needed: set[str], covered: bool) -> exp.Select:
        """One row, one column `exact`: whether the filter is narrow enough for the exact path,
        from a page sample of the rows' table (the same pages every time: REPEATABLE). covered:
        an index hands the exact path the matching ids and sketches (covering.py), which makes it
        worth taking for wider filters."""
        relation = cast(
            self.params.named("sample_table", f"{self.catalog.schema}.{self._base()}"), "regclass"
        )
        pg_class = exp.Table(this=exp.to_identifier("pg_class"), db=exp.to_identifier("pg_catalog"))
        reltuples = _scalar(
            _select([exp.column("reltuples")])
            .from_(pg_class, copy=False)
            .where(_eq(exp.column("oid"), relation), copy=False)
        )
        # reltuples is -1 before the first ANALYZE: the sample is then the whole table.
        share_of_table = exp.Div(
            this=exp.Mul(
                this=self.params.named("sample_rows", SAMPLE_ROWS), expression=exp.Literal.number("100.0")
            ),
            expression=func("greatest", reltuples.copy(), exp.Literal.number(1)),
            typed=True,
        )
        percent = _select([func("least", exp.Literal.number(100), share_of_table)])
        base = self.table(self._base(), self.row)
        base.set(
            "sample",
            exp.TableSample(method=exp.var("SYSTEM"), percent=_scalar(percent), seed=exp.Literal.number(0)),
        )
        rows = exp.Count(this=exp.Star())
        counts = _select(
            [
                exp.alias_(
                    exp.Filter(this=rows.copy(), expression=exp.Where(this=self._where(predicate))), "hits"
                ),
                exp.alias_(
                    exp.Filter(this=rows.copy(), expression=exp.Where(this=self._where(None))), "scoped"
                ),
                exp.alias_(rows, "seen"),
                exp.alias_(reltuples, "tuples"),
            ]
        ).from_(base, copy=False)
        if self.target == "shape":
            counts = self._shape_joins(counts, needed)
        counts = self._point_joins(counts, points)

        # Matching rows in the table: each sampled row stands for tuples / seen rows.
        estimate = exp.Div(
            this=exp.Mul(
                this=exp.column("hits"),
                expression=func("greatest", exp.column("tuples"), exp.column("seen")),
            ),
            expression=func("greatest", exp.column("seen"), exp.Literal.number(1)),
            typed=True,
        )
        share = exp.Div(
            this=cast(exp.column("hits"), "float8"),
            expression=func("greatest", exp.column("scoped"), exp.Literal.number(1)),
            typed=True,
        )
        exact = exp.Or(
            this=exp.LT(this=estimate, expression=self.params.named("exact_rows", EXACT_ROWS)),
            expression=exp.And(
                this=exp.LT(
                    this=estimate.copy(),
                    expression=self.params.named(
                        "exact_rows_max", COVERED_EXACT_ROWS_MAX if covered else EXACT_ROWS_MAX
                    ),
                ),
                expression=exp.LT(
                    this=share,
                    expression=self.params.named(
                        "exact_share", COVERED_EXACT_SHARE if covered else EXACT_SHARE
                    ),
                ),
            ),
        )
        sample = exp.Subquery(this=counts, alias=exp.TableAlias(this=exp.to_identifier("sample")))
        return _select([exp.alias_(exact, "exact")]).from_(sample, copy=False)

    def _query_vector(self, sim: Similarity, halfvec: str) -> exp.Expr:
        source = sim.source
        stored = cast(col("q", "embedding"), halfvec)
        if isinstance(source, VectorSource):
            text = "[" + ",".join(repr(x) for x in _unit(source.vector)) + "]"
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


def rerank_count(k: int, dim: int) -> int:
    """How many sketch-ranked rows the exact path looks up for a top k in a space of dim."""
    return max(RERANK_MIN, RERANK_FACTOR * k) * math.ceil(RERANK_BITS / dim)


def _unit(vector: Sequence[float]) -> list[float]:
    """The vector scaled to length 1: cosine distance ignores scale, and halfvec's range (65504)
    and precision (a 1e-9 component rounds to 0) would not. Scaled by the largest component first
    so that squaring neither overflows nor underflows."""
    largest = max(abs(float(x)) for x in vector)
    scaled = [float(x) / largest for x in vector]
    norm = math.sqrt(math.fsum(x * x for x in scaled))
    return [x / norm for x in scaled]


def _sketched(sim: Similarity) -> bool:
    """Whether the exact path pre-ranks by sketch: nearest-first searches of asset spaces
    (sql/sketches.sql keeps their sketches) of at least SKETCH_MIN_DIM dimensions. Sign bits of the
    centred vectors keep angles, not distances from the centre, and the farthest rows are mostly
    the ones far from the centre: ranked by sketch, the farthest 1,000 of 4,000 held as few as 40%
    of the true farthest 25 (tests/test_dissimilar.py)."""
    return sim.space.target == "asset" and sim.space.dim >= SKETCH_MIN_DIM and not sim.dissimilar


def _aliases(predicate: exp.Expr | None) -> set[str]:
    """The table aliases a predicate reads."""
    if predicate is None:
        return set()
    return {c.table for c in predicate.find_all(exp.Column) if c.table}


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
