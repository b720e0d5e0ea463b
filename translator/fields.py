"""The fields of each row kind, and where their values live in the statement's tables."""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Catalog, Target
from .nodes import FieldDef, Kind

N, S, B, SET = Kind.NUMBER, Kind.STRING, Kind.BOOL, Kind.SET

# Aliases the statement gives its tables.
ASSET, SHAPE, LABEL = "a", "s", "l"
ASSET_POINT, SHAPE_POINT = "pa", "ps"
# Results of the latest run of each curation tool (sql/curation_scores.sql), per row kind.
ASSET_UNIQUENESS, SHAPE_UNIQUENESS = "ua", "us"
ASSET_MISLABELS, SHAPE_MISLABELS = "ma", "ms"
ASSET_DUPLICATES, SHAPE_DUPLICATES = "da", "ds"
EMBEDDING = "e"
ASSET_TARGET: Target = "asset"
SHAPE_TARGET: Target = "shape"


@dataclass(frozen=True)
class Join:
    """A table the statement LEFT JOINs only when the query reads one of its fields: at most one
    row per item of the latest run, `<alias>.<scope> = %(<param>)s AND <alias>.item_id = <owner>.id`.

    scope/param: the projection run (run_id = the catalog's asset_run / shape_run), or the space
    of the latest run of curation `tool` (space_id: the tools keep one partition per space, which
    holds the results of that space's latest run).
    """

    alias: str
    table: str  # in the catalog's schema
    owner: str  # ASSET or SHAPE: the rows whose id is item_id
    target: Target
    scope: str  # run_id or space_id
    param: str
    tool: str | None = None  # None: the projection run


# The curation tools' tables (sql/curation_scores.sql), and the alias each row kind gives them.
_CURATION = (
    ("outliers", "uniqueness_scores", ASSET_UNIQUENESS, SHAPE_UNIQUENESS),
    ("mislabels", "mislabel_scores", ASSET_MISLABELS, SHAPE_MISLABELS),
    ("duplicates", "duplicate_members", ASSET_DUPLICATES, SHAPE_DUPLICATES),
)

JOINS: dict[str, Join] = {
    j.alias: j
    for j in (
        Join(ASSET_POINT, "projection_points", ASSET, ASSET_TARGET, "run_id", "asset_run"),
        Join(SHAPE_POINT, "projection_points", SHAPE, SHAPE_TARGET, "run_id", "shape_run"),
        *(
            Join(alias, table, owner, target, "space_id", f"{target}_{tool}_space", tool)
            for tool, table, asset_alias, shape_alias in _CURATION
            for alias, owner, target in (
                (asset_alias, ASSET, ASSET_TARGET),
                (shape_alias, SHAPE, SHAPE_TARGET),
            )
        ),
    )
}


def join_ids(catalog: Catalog) -> dict[str, int | None]:
    """The run or space id each table of JOINS is joined on (None: the dataset has no such run)."""
    ids: dict[str, int | None] = {}
    for alias, join in JOINS.items():
        if join.tool is None:
            ids[alias] = catalog.asset_run if join.target == "asset" else catalog.shape_run
        else:
            ids[alias] = catalog.score_space(join.target, join.tool)
    return ids


def _curation_fields(uniqueness: str, mislabels: str, duplicates: str) -> tuple[FieldDef, ...]:
    """The curation tools' fields, from the latest run of each tool; the scores are real columns,
    compared with every digit they have (float4=True: through float8), as the commands compare
    them against their thresholds."""
    return (
        FieldDef(
            "uniqueness", N, True, uniqueness, "uniqueness", True, "pgsearch outliers: 0 .. 1", float4=True
        ),
        FieldDef(
            "mislabel_score",
            N,
            True,
            mislabels,
            "mislabel_score",
            True,
            "pgsearch mislabels: 0 .. 1",
            float4=True,
        ),
        FieldDef("suggested_label", S, True, mislabels, "suggested_label", doc="pgsearch mislabels"),
        FieldDef("duplicate_group", N, True, duplicates, "duplicate_group", doc="pgsearch duplicates"),
    )


ASSET_FIELDS: dict[str, FieldDef] = {
    f.name: f
    for f in (
        FieldDef("filename", S, False, ASSET, "filename", doc="file name, unique in the dataset"),
        FieldDef("path", S, True, ASSET, "path", doc="source path or URI"),
        FieldDef("format", S, True, ASSET, "format", doc="image format, e.g. jpeg, png"),
        FieldDef("width", N, True, ASSET, "width", doc="pixels"),
        FieldDef("height", N, True, ASSET, "height", doc="pixels"),
        FieldDef("size", N, True, ASSET, "size", doc="file size in bytes"),
        FieldDef("status", S, False, ASSET, "status", doc="annotation status"),
        FieldDef("groups", SET, False, ASSET, "groups", doc="asset groups"),
        FieldDef("labels", SET, False, ASSET, "label_counts", doc="labels with at least one shape"),
        FieldDef("annotations", N, False, ASSET, "annotation_count", doc="number of shapes"),
        # Why the loader could not read or decode the file (missing for a good asset): the one way
        # the language finds failed assets, `load_error != null`. A string and not a `failed`
        # boolean, so that `matches(load_error, ...)` picks a reason, and because a new field
        # shadows a dataset label of that name, which `failed` could well be.
        FieldDef(
            "load_error",
            S,
            True,
            ASSET,
            "load_error",
            doc="why the file failed to load; missing if it loaded",
        ),
        FieldDef("cluster", N, True, ASSET_POINT, "cluster", doc="cluster id, latest projection run"),
        FieldDef("x", N, True, ASSET_POINT, "x", float8=True, doc="2-D projection, latest run"),
        FieldDef("y", N, True, ASSET_POINT, "y", float8=True, doc="2-D projection, latest run"),
        *_curation_fields(ASSET_UNIQUENESS, ASSET_MISLABELS, ASSET_DUPLICATES),
    )
}

SHAPE_FIELDS: dict[str, FieldDef] = {
    f.name: f
    for f in (
        FieldDef("label", S, False, LABEL, "name", doc="the shape's label"),
        FieldDef("kind", S, False, SHAPE, "kind", doc="bbox, polygon, mask or tag"),
        FieldDef("area", N, True, SHAPE, "area", float8=True, doc="pixels"),
        FieldDef("bbox_x", N, True, SHAPE, "bbox_x", float8=True, doc="pixels; missing for tags"),
        FieldDef("bbox_y", N, True, SHAPE, "bbox_y", float8=True, doc="pixels; missing for tags"),
        FieldDef("bbox_width", N, True, SHAPE, "bbox_width", float8=True, doc="pixels; missing for tags"),
        FieldDef("bbox_height", N, True, SHAPE, "bbox_height", float8=True, doc="pixels; missing for tags"),
        FieldDef("cluster", N, True, SHAPE_POINT, "cluster", doc="cluster id, latest shape projection run"),
        FieldDef("x", N, True, SHAPE_POINT, "x", float8=True, doc="2-D projection, latest shape run"),
        FieldDef("y", N, True, SHAPE_POINT, "y", float8=True, doc="2-D projection, latest shape run"),
        *_curation_fields(SHAPE_UNIQUENESS, SHAPE_MISLABELS, SHAPE_DUPLICATES),
    )
}

# jsonb columns reachable as `<root>.<key>`.
ASSET_JSON = {"metadata": (ASSET, "metadata")}
SHAPE_JSON = {"attributes": (SHAPE, "attributes")}
