"""The fields of each row kind, and where their values live in the statement's tables."""

from __future__ import annotations

from .nodes import FieldDef, Kind

N, S, B, SET = Kind.NUMBER, Kind.STRING, Kind.BOOL, Kind.SET

# Aliases the statement gives its tables.
ASSET, SHAPE, LABEL = "a", "s", "l"
ASSET_POINT, SHAPE_POINT = "pa", "ps"
EMBEDDING = "e"

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
        FieldDef("cluster", N, True, ASSET_POINT, "cluster", doc="cluster id, latest projection run"),
        FieldDef("x", N, True, ASSET_POINT, "x", float8=True, doc="2-D projection, latest run"),
        FieldDef("y", N, True, ASSET_POINT, "y", float8=True, doc="2-D projection, latest run"),
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
    )
}

# jsonb columns reachable as `<root>.<key>`.
ASSET_JSON = {"metadata": (ASSET, "metadata")}
SHAPE_JSON = {"attributes": (SHAPE, "attributes")}
