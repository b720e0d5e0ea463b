"""translator/covering.py: which filters an index hands over alone (ids and sketches), seen from
the statements compile_query writes. Covered filters get the wider route (COVERED_EXACT_SHARE) and,
for one group, the group_members source; everything else reads the asset rows as before."""

from __future__ import annotations

import pytest

from pgsearch.translator import Catalog, EmbeddingSpace, FieldColumn, Similarity, VectorSource, compile_query
from pgsearch.translator.paths import COVERED_EXACT_SHARE, EXACT_SHARE

WIDE = EmbeddingSpace(id=3, model="m", target="asset", dim=512, table="asset_embeddings_3")
NARROW = EmbeddingSpace(id=4, model="n", target="asset", dim=64, table="asset_embeddings_4")
CATALOG = Catalog(
    dataset_id=1,
    dataset_name="d",
    labels=frozenset({"car"}),
    spaces=(WIDE, NARROW),
    field_columns=(
        FieldColumn("metadata.bucket", "number", "col_bucket"),
        FieldColumn("metadata.camera", "string", "col_camera"),
        FieldColumn("metadata.night", "boolean", "col_night"),
        FieldColumn("metadata.gps.lat", "number", "col_lat"),
    ),
)
VECTOR = VectorSource([1.0] + [0.0] * 511)

# query -> "group" (group_members), "index" (an index on assets), None (the asset rows)
CASES = {
    '"g1" in groups': "group",
    '("g 1")  in groups': "group",
    'status == "to_fix"': "index",
    '"to_fix" == status': "index",
    'status in ("a", "b")': "index",
    "metadata.bucket < 10": "index",
    "10 > metadata.bucket": "index",
    "metadata.bucket >= -3": "index",
    "metadata.bucket in (1, 2, 3)": "index",
    'metadata.camera >= "cam5"': "index",
    "metadata.night == true": "index",
    "metadata.gps.lat < 47.5": "index",
    # not covered
    'status > "a"': None,  # compared with COLLATE "C"; the status index is not
    'status != "to_fix"': None,
    'not "g1" in groups': None,
    '"g1" not in groups': None,
    '"g1" in groups and "g2" in groups': None,
    '"g1" in groups or status == "x"': None,
    "metadata.iso < 10": None,  # no column
    'metadata.bucket == "7"': None,  # the column holds numbers; the string comparison has none
    "metadata.bucket + 1 < 10": None,
    "metadata.bucket < width": None,
    "metadata.bucket < 10 and metadata.bucket > 2": None,
    "car > 2": None,
    "width > 100": None,
}


@pytest.mark.parametrize(("query", "expected"), CASES.items(), ids=list(CASES))
def test_which_filters_are_covered(query: str, expected: str | None) -> None:
    compiled = compile_query(query, CATALOG, similarity=Similarity(WIDE, VECTOR), limit=10)
    covered = compiled.params["exact_share"] == COVERED_EXACT_SHARE
    assert covered == (expected is not None), compiled.sql
    assert ("group_members" in compiled.sql) == (expected == "group"), compiled.sql
    if expected != "group":
        assert "gm." not in compiled.sql
    else:
        assert compiled.params["exact_share"] != EXACT_SHARE


def test_spaces_without_sketches_and_shapes_keep_the_rows() -> None:
    """Under 256 dimensions the exact path reads every vector anyway: no covered route; shape
    rows and least-similar searches never use group_members."""
    narrow = compile_query(
        '"g1" in groups', CATALOG, similarity=Similarity(NARROW, VectorSource([1.0] * 64)), limit=10
    )
    assert narrow.params["exact_share"] == EXACT_SHARE and "group_members" not in narrow.sql
    far = compile_query(
        '"g1" in groups', CATALOG, similarity=Similarity(WIDE, VECTOR, dissimilar=True), limit=10
    )
    assert "group_members" not in far.sql and "exact_share" not in far.params
    shapes = compile_query('"g1" in asset.groups', CATALOG, target="shape", limit=10)
    assert "group_members" not in shapes.sql


def test_columns_replace_the_jsonb_value_everywhere() -> None:
    """A field with a column is read from it in conditions and values alike; other kinds of the
    same field, and other fields, still come from the jsonb."""
    compiled = compile_query("metadata.bucket * 2 > 7 or not metadata.bucket in (1, 2)", CATALOG, limit=10)
    assert "col_bucket" in compiled.sql and "jsonb_typeof" not in compiled.sql.lower()
    mixed = compile_query('metadata.bucket == "x" or metadata.iso > 3', CATALOG, limit=10)
    assert "col_bucket" not in mixed.sql and mixed.sql.lower().count("jsonb_typeof") == 2
