"""A plain-Python evaluator of the query language, independent of the SQL generator, and a
generated dataset loaded into PostgreSQL with COPY, for the translator's differential tests.

The evaluator walks the tree the translator's front end (parse, allow-list, resolve, type-check)
produces and applies the documented semantics: a comparison with a missing value is false,
`!=` is `not ==`, exact decimal arithmetic, `/` truncated to 12 places, `%` with the sign of the
dividend, division by zero missing, double precision columns read as 15 significant digits (real
columns, the curation scores, too: through the double they widen to), `v == null` true when v is
missing.
inside() is PostgreSQL's point-in-polygon test (point_inside() of src/backend/utils/adt/geo_ops.c)
redone in Python floats, which are the same IEEE doubles: fuzzy comparisons within 1e-6, the
boundary inside, and the crossings summed with their direction (nonzero winding, not even-odd).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import numpy as np
import psycopg
from sqlglot import exp

from pgsearch.curate.results import write_results
from pgsearch.loader.spaces import Space, ensure_model, ensure_space
from pgsearch.translator import Catalog
from pgsearch.translator.allow import check_allowed
from pgsearch.translator.nodes import (
    FieldRef,
    FilenameSearch,
    JsonRef,
    Kind,
    LabelCount,
    Missing,
    Polygon,
    qtype,
)
from pgsearch.translator.parse import parse
from pgsearch.translator.resolve import Resolver
from pgsearch.translator.typecheck import TypeChecker

LABELS = ["squirrel", "wheels", "butterfly", "traffic light", "car", "select"]
GROUPS = ["dataset1", "dataset2", "train", "val", "it's"]
STATUSES = ["none", "annotated", "review", "to_fix", "completed", "Custom"]
FORMATS = ["jpeg", "png", None]
# Reasons in the loader's words (loader/images.py), and an empty one, which is still a failure.
LOAD_ERRORS = [
    "corrupt image (cannot identify image file)",
    "corrupt image (image file is truncated)",
    "cannot read file (Permission denied)",
    "image too large (20000x20000 px = 400 MP, limit 100 MP; decompression bomb guard)",
    "",
]


# -- the dataset -------------------------------------------------------------------------------
@dataclass
class Dataset:
    id: int
    assets: list[dict[str, Any]] = field(default_factory=list)
    shapes: list[dict[str, Any]] = field(default_factory=list)
    catalog: Catalog | None = None


def _metadata(rng: random.Random) -> dict[str, Any]:
    m: dict[str, Any] = {}
    choice = rng.random()
    if choice < 0.3:
        m["iso"] = rng.choice([100, 200, 400, 800, 1600, 3200])
    elif choice < 0.45:
        m["iso"] = rng.choice([0.5, 1.25, 2.0, 100.75, -3.5])
    elif choice < 0.55:
        m["iso"] = rng.choice(["high", "400", ""])
    elif choice < 0.6:
        m["iso"] = rng.choice([True, None, 1e150, [1, 2]])
    if rng.random() < 0.6:
        m["camera"] = rng.choice(["Canon", "nikon", "Sony A7", "canon", 7, "Ärger"])
    if rng.random() < 0.5:
        m["flag"] = rng.choice([True, False, "true", 1])
    if rng.random() < 0.3:
        m["gps"] = {"lat": rng.choice([1.5, -20.25, 47]), "alt": rng.choice(["x", 3])}
    return m


def build_dataset(
    conn: psycopg.Connection, n_assets: int = 520, seed: int = 3, *, curation: bool = False
) -> Dataset:
    """Labels, assets (COPY), shapes (COPY; triggers keep label counts) and a projection run of
    half the assets and shapes, all in one dataset; curation=True adds the results of every
    curation tool on both targets (write_curation_results)."""
    rng = random.Random(seed)
    ds_id = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('ref') RETURNING id").fetchone()[0]
    label_ids = {}
    for name in LABELS:
        label_ids[name] = conn.execute(
            "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, %s) RETURNING id", (ds_id, name)
        ).fetchone()[0]
    rows = []
    for i in range(n_assets):
        stem = rng.choice(["IMG_", "img_", "DSC", "Ärger_", "photo-", "a'b_"])
        rows.append(
            {
                "filename": f"{stem}{i:04d}.{rng.choice(['jpg', 'png', 'JPG'])}",
                "path": None if rng.random() < 0.1 else f"/data/{rng.choice(['a', 'b'])}/{i}.jpg",
                "width": None if rng.random() < 0.1 else rng.choice([64, 100, 200, 201, 640, 1024, 4000]),
                "height": None if rng.random() < 0.1 else rng.choice([48, 100, 150, 200, 480, 768, 3000]),
                "size": None
                if rng.random() < 0.05
                else rng.choice([0, 1000, 1024, 2048, 2 * 1024**2, 5 * 10**6]),
                "format": rng.choice(FORMATS),
                "status": rng.choice(STATUSES),
                "groups": sorted(set(rng.sample(GROUPS, rng.randint(0, 3)))),
                "metadata": _metadata(rng),
            }
        )
    # Failed files (load_error set, as the loader records them), drawn from their own generator so
    # that every other value stays what the seed gave before the field existed.
    failures = random.Random(seed + 1)
    for r in rows:
        r["load_error"] = failures.choice(LOAD_ERRORS) if failures.random() < 0.15 else None
    columns = [
        "dataset_id",
        "filename",
        "path",
        "width",
        "height",
        "size",
        "format",
        "status",
        "groups",
        "metadata",
        "load_error",
    ]
    with conn.cursor() as cur:
        with cur.copy(
            "COPY pgsearch.assets (dataset_id, filename, path, width, height, size, format, status, groups,"
            " metadata, load_error) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row([ds_id, *(json.dumps(r[c]) if c == "metadata" else r[c] for c in columns[1:])])
        ids = [
            r[0]
            for r in cur.execute("SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY id", (ds_id,))
        ]
    for r, asset_id in zip(rows, ids, strict=True):
        r["id"] = asset_id
        r["label_counts"] = {}
    shapes = []
    for r in rows:
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            label = rng.choice(LABELS)
            kind = rng.choice(["bbox", "bbox", "polygon", "tag"])
            box = (
                None
                if kind == "tag"
                else [
                    float(rng.randint(0, 500)),
                    rng.choice([0.5, 10.25, 99.0]),
                    float(rng.randint(1, 300)),
                    rng.choice([1.5, 40.0, 250.0]),
                ]
            )
            shapes.append(
                {
                    "asset_id": r["id"],
                    "label": label,
                    "kind": kind,
                    "bbox": box,
                    "area": None if box is None else box[2] * box[3],
                    "attributes": rng.choice(
                        [
                            {},
                            {"occluded": True},
                            {"occluded": False, "score": 0.75},
                            {"score": 3},
                            {"color": "red"},
                        ]
                    ),
                }
            )
            r["label_counts"][label] = r["label_counts"].get(label, 0) + 1
    with conn.cursor() as cur:
        with cur.copy(
            "COPY pgsearch.shapes (dataset_id, asset_id, label_id, kind, bbox_x, bbox_y, bbox_width, bbox_height,"
            " area, attributes) FROM STDIN"
        ) as copy:
            for s in shapes:
                box = s["bbox"] or [None] * 4
                copy.write_row(
                    [
                        ds_id,
                        s["asset_id"],
                        label_ids[s["label"]],
                        s["kind"],
                        *box,
                        s["area"],
                        json.dumps(s["attributes"]),
                    ]
                )
        # Shapes written around pgsearch's loader: their label counts, as such a writer adds them.
        cur.execute(
            "SELECT pgsearch.refresh_label_counts(ARRAY(SELECT id FROM pgsearch.assets WHERE dataset_id = %s))",
            (ds_id,),
        )
        shape_ids = [
            r[0]
            for r in cur.execute("SELECT id FROM pgsearch.shapes WHERE dataset_id = %s ORDER BY id", (ds_id,))
        ]
    for s, shape_id in zip(shapes, shape_ids, strict=True):
        s["id"] = shape_id
    by_id = {r["id"]: r for r in rows}
    runs = {}
    for target, items in (("asset", rows), ("shape", shapes)):
        # An older run first: the catalog must pick the latest.
        for _ in range(2):
            runs[target] = conn.execute(
                "INSERT INTO pgsearch.projection_runs (dataset_id, target, method) VALUES (%s, %s, 'umap') RETURNING id",
                (ds_id, target),
            ).fetchone()[0]
        with conn.cursor().copy(
            "COPY pgsearch.projection_points (run_id, item_id, x, y, cluster) FROM STDIN"
        ) as copy:
            for item in items:
                if rng.random() < 0.5:
                    # A few points on a grid (exact comparisons, polygon vertices and edges), the
                    # rest anywhere in [-10, 10)^2 with full double precision; cluster -1 is noise.
                    if rng.random() < 0.3:
                        xy = (rng.choice([-1.5, 0.25, 3.0, 7.75]), rng.choice([0.5, 2.0, -1.25]))
                    else:
                        xy = (rng.uniform(-10, 10), rng.uniform(-10, 10))
                    point = (*xy, rng.choice([None, -1, -1, 0, 1, 2, 3]))
                    item["point"] = point
                    copy.write_row([runs[target], item["id"], *point])
    for s in shapes:
        s["asset"] = by_id[s["asset_id"]]
    conn.commit()
    data = Dataset(ds_id, rows, shapes)
    if curation:
        write_curation_results(conn, data, seed)
    return data


# -- curation results --------------------------------------------------------------------------
CURATION_FIELDS = ("uniqueness", "mislabel_score", "suggested_label", "duplicate_group")
SUGGESTIONS = [*LABELS, "cat"]


def _real(value: float) -> float:
    """The value a real column stores (as the double PostgreSQL widens it to)."""
    return float(np.float32(value))


def _score(rng: random.Random) -> float:
    """Mostly anywhere in [0, 1); some exactly on thresholds queries use."""
    if rng.random() < 0.15:
        return _real(rng.choice([0.0, 0.25, 0.5, 0.9, 1.0]))
    return _real(rng.random())


@dataclass
class CurationSpaces:
    asset: Space  # the space of the latest outliers run on assets (and of every other asset run)
    older_asset: Space  # another model's asset space: an earlier outliers run, superseded
    shape: Space


def write_curation_results(conn: psycopg.Connection, data: Dataset, seed: int = 3) -> CurationSpaces:
    """Results of every curation tool for both targets, written with write_results, and the same
    values in the rows (keys CURATION_FIELDS; None when missing). Each target gets an earlier run
    whose results the latest replaces: uniqueness of assets first in another model's space."""
    rng = random.Random(seed + 1)
    first = ensure_model(conn, "ref-clip", 8, False, {})
    second = ensure_model(conn, "ref-dino", 8, False, {})
    spaces = CurationSpaces(
        asset=ensure_space(conn, data.id, first, "asset"),
        older_asset=ensure_space(conn, data.id, second, "asset"),
        shape=ensure_space(conn, data.id, first, "shape"),
    )
    conn.commit()
    for items, space, earlier in (
        (data.assets, spaces.asset, spaces.older_asset),
        (data.shapes, spaces.shape, spaces.shape),
    ):
        for item in items:
            for name in CURATION_FIELDS:
                item[name] = None
        # outliers: an earlier run (another space for assets), then the latest on 90% of the items.
        stale: list[tuple[Any, ...]] = [(i["id"], _score(rng), 0.5, None) for i in items]
        write_results(conn, earlier, "outliers", stale, items=len(stale), flagged=0, params={}, started=0.0)
        rows: list[tuple[Any, ...]] = []
        for item in items:
            if rng.random() < 0.9:
                item["uniqueness"] = _score(rng)
                rows.append((item["id"], item["uniqueness"], _real(rng.random()), rng.choice([None, 3])))
        write_results(
            conn, space, "outliers", rows, items=len(rows), flagged=1, params={"k": 10}, started=0.0
        )
        # mislabels: twice in the same space, the second run on 80% of the items.
        stale = [(i["id"], "car", _real(0.123), "cat") for i in items]
        write_results(conn, space, "mislabels", stale, items=len(stale), flagged=0, params={}, started=0.0)
        rows = []
        for item in items:
            if rng.random() < 0.8:
                item["mislabel_score"] = _score(rng)
                item["suggested_label"] = None if rng.random() < 0.3 else rng.choice(SUGGESTIONS)
                label = item.get("label") or rng.choice(LABELS)
                rows.append((item["id"], label, item["mislabel_score"], item["suggested_label"]))
        write_results(conn, space, "mislabels", rows, items=len(rows), flagged=2, params={}, started=0.0)
        # duplicates: groups of 2 to 4 of about a sixth of the items; the first is the representative.
        order = [i for i in items if rng.random() < 0.17]
        rng.shuffle(order)
        rows = []
        while len(order) >= 2:
            size = min(len(order), rng.randint(2, 4))
            group, order = order[:size], order[size:]
            kind = rng.choice(["exact", "near"])
            for n, item in enumerate(group):
                item["duplicate_group"] = group[0]["id"]
                rows.append(
                    (item["id"], group[0]["id"], n == 0, kind, 0.0 if n == 0 else _real(rng.random() / 10))
                )
        write_results(
            conn, space, "duplicates", rows, items=len(items), flagged=len(rows), params={}, started=0.0
        )
    conn.commit()
    return spaces


# -- the evaluator -----------------------------------------------------------------------------
def front_end(text: str, catalog: Catalog, target: str) -> exp.Expr:
    tree = parse(text)
    check_allowed(text, tree)
    tree = Resolver(text, catalog, target).resolve(tree)  # type: ignore[arg-type]
    return TypeChecker(text).check(tree)


def select_ids(text: str | None, catalog: Catalog, rows: list[dict[str, Any]], target: str) -> list[int]:
    if text is None:
        return sorted(r["id"] for r in rows)
    tree = front_end(text, catalog, target)
    ev = Evaluator(catalog, target)
    return sorted(r["id"] for r in rows if ev.condition(tree, r))


def _float8(v: float | None) -> Decimal | None:
    return None if v is None else Decimal(format(v, ".15g"))


def _ascii_lower(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


class Evaluator:
    def __init__(self, catalog: Catalog, target: str) -> None:
        self.catalog = catalog
        self.target = target

    def condition(self, node: exp.Expr, row: dict[str, Any]) -> bool:
        if isinstance(node, exp.Paren):
            return self.condition(node.this, row)
        if isinstance(node, exp.And):
            return self.condition(node.this, row) and self.condition(node.expression, row)
        if isinstance(node, exp.Or):
            return self.condition(node.this, row) or self.condition(node.expression, row)
        if isinstance(node, exp.Not):
            return not self.condition(node.this, row)
        if isinstance(node, FilenameSearch):
            return _ascii_lower(node.this.this) in _ascii_lower(self._asset(row)["filename"])
        if isinstance(node, (exp.EQ, exp.NEQ)) and (
            isinstance(node.this, Missing) or isinstance(node.expression, Missing)
        ):
            other = node.expression if isinstance(node.this, Missing) else node.this
            missing = self.value(other, row) is None
            return missing if isinstance(node, exp.EQ) else not missing
        if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            left, right = self.value(node.this, row), self.value(node.expression, row)
            if isinstance(node, exp.NEQ):
                return not (left is not None and right is not None and left == right)
            if left is None or right is None:
                return False
            return {
                exp.EQ: left == right,
                exp.GT: left > right,
                exp.GTE: left >= right,
                exp.LT: left < right,
                exp.LTE: left <= right,
            }[type(node)]
        if isinstance(node, exp.In):
            needle = self.value(node.this, row)
            if needle is None:
                return False
            hay = node.args.get("field")
            if hay is not None:
                values = self.value(hay, row)
                return values is not None and needle in values
            return any((v := self.value(item, row)) is not None and v == needle for item in node.expressions)
        if isinstance(node, exp.Anonymous) and node.name == "inside":
            x_node, y_node, polygon = node.expressions
            assert isinstance(polygon, Polygon)
            x, y = self._float(x_node, row), self._float(y_node, row)
            if x is None or y is None:
                return False
            return point_in_polygon(x, y, [(float(vx), float(vy)) for vx, vy in polygon.vertices])
        if isinstance(node, exp.Anonymous):
            s, arg = (self.value(a, row) for a in node.expressions)
            if s is None or arg is None:
                return False
            if node.name == "contains":
                return arg in s
            if node.name == "startswith":
                return s.startswith(arg)
            if node.name == "endswith":
                return s.endswith(arg)
            return re.search(arg, s, re.DOTALL) is not None
        return self.value(node, row) is True

    def _asset(self, row: dict[str, Any]) -> dict[str, Any]:
        return row["asset"] if self.target == "shape" else row

    def value(self, node: exp.Expr, row: dict[str, Any]) -> Any:
        if isinstance(node, exp.Paren):
            return self.value(node.this, row)
        if isinstance(node, exp.Literal):
            return node.this if node.is_string else node.meta["value"]
        if isinstance(node, exp.Boolean):
            return node.this
        if isinstance(node, FieldRef):
            return self._field(node, row)
        if isinstance(node, LabelCount):
            return Decimal(self._asset(row)["label_counts"].get(node.this.this, 0))
        if isinstance(node, JsonRef):
            return self._json(node, row)
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)):
            left, right = self.value(node.this, row), self.value(node.expression, row)
            if left is None or right is None:
                return None
            with localcontext() as ctx:
                ctx.prec = 100_000
                ctx.Emax = 10**6
                ctx.Emin = -(10**6)
                if isinstance(node, exp.Add):
                    return left + right
                if isinstance(node, exp.Sub):
                    return left - right
                if isinstance(node, exp.Mul):
                    return left * right
                if right == 0:
                    return None
                if isinstance(node, exp.Mod):
                    return left % right
                return (left * 10**12 // right) * Decimal("1e-12")
        if isinstance(node, exp.Neg):
            v = self.value(node.this, row)
            return None if v is None else -v
        return self.condition(node, row)

    def _float(self, node: exp.Expr, row: dict[str, Any]) -> float | None:
        """inside()'s x or y as the double PostgreSQL computes with: a double precision field as
        stored; any other value converted from its exact decimal, rounded to 300 places, missing
        beyond 1e300 (the generator guards products and quotients so; for everything else the
        rounding and the bound change nothing)."""
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, FieldRef) and node.field.float8:
            raw: float | None = self._field(node, row, raw=True)
            return raw
        v = self.value(node, row)
        if v is None or abs(v) > Decimal("1e300"):
            return None
        with localcontext() as ctx:
            ctx.prec = 2000
            return float(v.quantize(Decimal("1e-300"), rounding=ROUND_HALF_UP))

    def _field(self, node: FieldRef, row: dict[str, Any], raw: bool = False) -> Any:
        """The field's value; raw: a double precision field as the float stored, not as the
        15-digit decimal it is compared as."""
        name = node.field.name
        owner = row
        convert = (lambda v: v) if raw else _float8
        if node.this.startswith("asset.") or (self.target == "asset"):
            owner = self._asset(row)
            point_run = self.catalog.asset_run
        else:
            point_run = self.catalog.shape_run
        if name in ("cluster", "x", "y"):
            point = owner.get("point")
            if point_run is None or point is None:
                return None
            v = point[("x", "y", "cluster").index(name)]
            if v is None:
                return None
            return Decimal(v) if name == "cluster" else convert(v)
        if name in ("uniqueness", "mislabel_score"):  # real, read through float8: 15 digits of its double
            score: float | None = owner[name]
            return score if raw or score is None else convert(score)
        if name == "suggested_label":
            return owner[name]
        if name == "duplicate_group":
            return None if owner[name] is None else Decimal(owner[name])
        if name == "groups":
            return set(owner["groups"])
        if name == "labels":
            return set(owner["label_counts"])
        if name == "annotations":
            return Decimal(sum(owner["label_counts"].values()))
        if name.startswith("bbox_"):
            box = owner["bbox"]
            return (
                None
                if box is None
                else convert(box[["bbox_x", "bbox_y", "bbox_width", "bbox_height"].index(name)])
            )
        if name == "area":
            return None if owner["area"] is None else convert(owner["area"])
        v = owner[name]
        if isinstance(v, int) and not isinstance(v, bool):
            return Decimal(v)
        return v

    def _json(self, node: JsonRef, row: dict[str, Any]) -> Any:
        kind = qtype(node).kind
        v: Any = self._asset(row)["metadata"] if node.this == "metadata" else row["attributes"]
        for key in node.keys:
            if not isinstance(v, dict) or key not in v:
                return None
            v = v[key]
        if kind == Kind.STRING:
            return v if isinstance(v, str) else None
        if kind == Kind.BOOL:
            return v if isinstance(v, bool) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        scale = max(0, -d.as_tuple().exponent)  # type: ignore[operator]
        if abs(d) > Decimal("1e100") or scale > 100:
            return None
        return d


# -- PostgreSQL's point <@ polygon --------------------------------------------------------------
# geo_decls.h: every geometric comparison allows EPSILON.
EPSILON = 1.0e-06
_ON_POLYGON = object()


def _fp_zero(a: float) -> bool:
    return abs(a) <= EPSILON


def _fp_lt(a: float, b: float) -> bool:
    return a + EPSILON < b


def _fp_le(a: float, b: float) -> bool:
    return a <= b + EPSILON


def _fp_gt(a: float, b: float) -> bool:
    return a > b + EPSILON


def _fp_ge(a: float, b: float) -> bool:
    return a + EPSILON >= b


def _crossing(x: float, y: float, prev_x: float, prev_y: float) -> int | object:
    """How the edge from (prev_x, prev_y) to (x, y), relative to the point, crosses the positive
    x axis: +-2 across it, +-1 one end on it, 0 not at all; _ON_POLYGON when it holds the point."""
    if _fp_zero(y):
        if _fp_zero(x):
            return _ON_POLYGON
        if _fp_gt(x, 0.0):
            if _fp_zero(prev_y):
                return 0 if _fp_gt(prev_x, 0.0) else _ON_POLYGON
            return 1 if _fp_lt(prev_y, 0.0) else -1
        if _fp_zero(prev_y):
            return 0 if _fp_lt(prev_x, 0.0) else _ON_POLYGON
        return 0
    y_sign = 1 if _fp_gt(y, 0.0) else -1
    if _fp_zero(prev_y):
        return 0 if _fp_lt(prev_x, 0.0) else y_sign
    if (y_sign < 0 and _fp_lt(prev_y, 0.0)) or (y_sign > 0 and _fp_gt(prev_y, 0.0)):
        return 0
    if _fp_ge(x, 0.0) and _fp_gt(prev_x, 0.0):
        return 2 * y_sign
    if _fp_lt(x, 0.0) and _fp_le(prev_x, 0.0):
        return 0
    z = (x - prev_x) * y - (y - prev_y) * x
    if _fp_zero(z):
        return _ON_POLYGON
    if (y_sign < 0 and _fp_lt(z, 0.0)) or (y_sign > 0 and _fp_gt(z, 0.0)):
        return 0
    return 2 * y_sign


def point_in_polygon(px: float, py: float, vertices: Sequence[tuple[float, float]]) -> bool:
    """point(px, py) <@ polygon: on the boundary or crossed a nonzero number of times (net)."""
    total = 0
    prev_x, prev_y = vertices[-1][0] - px, vertices[-1][1] - py
    # PostgreSQL walks edges 0-1, 1-2, ..., then n-1 -> 0; the sum does not depend on the order.
    for vx, vy in vertices:
        x, y = vx - px, vy - py
        cross = _crossing(x, y, prev_x, prev_y)
        if cross is _ON_POLYGON:
            return True
        assert isinstance(cross, int)
        total += cross
        prev_x, prev_y = x, y
    return total != 0
