"""Golden files: query -> the exact SQL, parameters and inlined SQL (or the exact error message).

The expected outputs live in tests/golden/<group>.json. After an intended change, regenerate
them with `PGSEARCH_UPDATE_GOLDEN=1 pytest tests/test_translator_golden.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from pgsearch.translator import (
    AssetSource,
    Catalog,
    EmbeddingSpace,
    FieldColumn,
    QueryError,
    ShapeSource,
    Similarity,
    VectorSource,
    compile_query,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PGSEARCH_UPDATE_GOLDEN") == "1"

ASSET_SPACE = EmbeddingSpace(
    id=7, model="openclip:ViT-B-16", target="asset", dim=4, table="asset_embeddings_7"
)
SHAPE_SPACE = EmbeddingSpace(
    id=8, model="openclip:ViT-B-16", target="shape", dim=4, table="shape_embeddings_8"
)
# 512 dimensions: the exact path pre-ranks by sketch (translator/paths.py SKETCH_MIN_DIM).
WIDE_SPACE = EmbeddingSpace(
    id=9, model="openclip:ViT-B-32", target="asset", dim=512, table="asset_embeddings_9"
)
CATALOG = Catalog(
    dataset_id=42,
    dataset_name="zoo",
    labels=frozenset({"squirrel", "wheels", "butterfly", "traffic light", "width", "person", "7"}),
    metadata_keys=frozenset({"camera", "iso", "gps", "night"}),
    attribute_keys=frozenset({"occluded", "score"}),
    asset_run=3,
    shape_run=None,
    spaces=(ASSET_SPACE, SHAPE_SPACE, WIDE_SPACE),
    # generated columns of `pgsearch index add` (metadata.iso and .camera stay computed from jsonb)
    field_columns=(
        FieldColumn("metadata.gps.lat", "number", "assets_metadata_gps_lat_number_0a1b2c3d"),
        FieldColumn("attributes.score", "number", "shapes_attributes_score_number_4e5f6a7b"),
    ),
    # latest curation runs: every tool on assets, no outliers run on shapes yet
    score_spaces=(
        ("asset", "duplicates", 9),
        ("asset", "mislabels", 7),
        ("asset", "outliers", 9),
        ("shape", "duplicates", 8),
        ("shape", "mislabels", 8),
    ),
)

SIMILARITIES: dict[str, Similarity] = {
    "vector": Similarity(ASSET_SPACE, VectorSource([0.5, -1.0, 0.25, 2.0])),
    "asset_id": Similarity(ASSET_SPACE, AssetSource(asset_id=11)),
    "filename": Similarity(ASSET_SPACE, AssetSource(filename="IMG_0042.jpg")),
    "dissimilar_filename": Similarity(ASSET_SPACE, AssetSource(filename="IMG_0042.jpg"), dissimilar=True),
    "dissimilar_vector": Similarity(ASSET_SPACE, VectorSource([1.0, 0.0, 0.0, 0.0]), dissimilar=True),
    "wide": Similarity(WIDE_SPACE, AssetSource(filename="IMG_0042.jpg")),
    "dissimilar_wide": Similarity(WIDE_SPACE, AssetSource(asset_id=11), dissimilar=True),
    "shape": Similarity(SHAPE_SPACE, ShapeSource(shape_id=5)),
    "dissimilar_shape": Similarity(SHAPE_SPACE, ShapeSource(shape_id=5), dissimilar=True),
}

# group -> [(query, options)]; options: target, similarity (a key above), limit, offset.
CASES: dict[str, list[tuple[str | None, dict[str, Any]]]] = {
    "assets": [
        ('(squirrel > 2 or height > 200) and "dataset2" in groups', {}),
        ("wheels % 2 == 1", {}),
        ('status == "review" and size > 2MB and not "train" in groups', {}),
        ('filename == "IMG_0042.jpg"', {}),
        ('filename == "C:\\new\\table" or filename == "say \\"hi\\" \\\\"', {}),
        ('"IMG_00"', {}),
        ("width > 100 AND height < 50 Or NOT annotations = 0", {}),
        ("size < 1.5GB and size >= 10kb", {}),
        ('status in ("review", "to_fix")', {}),
        ('status not in ("review", "to_fix")', {}),
        ('"person" in labels', {}),
        ('"val" not in groups', {}),
        ("`traffic light` >= 1", {}),
        ('count("width") > 0 and width > 640', {}),
        ('count("zebra") == 0', {}),
        ("squirrel and not butterfly", {}),
        ("metadata.camera == 'Canon'", {}),
        ("metadata.iso >= 800", {}),
        ("metadata.iso / 100 > 4", {}),
        ("metadata.night", {}),
        ("metadata.night == false", {}),
        ("metadata.gps.lat > 47.5", {}),
        ('metadata.`camera` in ("Canon", "Nikon")', {}),
        ("cluster == 2 and x > 0.5 and y < -1", {}),
        ("inside(x, y, [[0, 0], [4, 0], [4, 3]])", {}),
        ("not inside(x, y, [[-1.5, 2e3], [+1, -0.25], [1KB, 1]]) or cluster == -1", {}),
        ("inside(width / 100, metadata.iso, [[0, 0], [10, 0], [10, 10], [0, 10]])", {}),
        ("INSIDE(x * 2, y - 1, [[0, 0], [4, 0], [4, 3]]) and inside(y, x, [[0, 0], [4, 0], [4, 3]])", {}),
        ("width / height > 1.5", {}),
        ("width * height > 1000000", {}),
        ("-width < -100", {}),
        ("wheels % 0 == 1", {}),
        ("annotations != squirrel + wheels", {}),
        ('contains(filename, "cat")', {}),
        ('startswith(path, "/data/")', {}),
        ('endswith(filename, ".png")', {}),
        ('matches(filename, "^IMG_[0-9]{4}\\\\.jpg$")', {}),
        ('"cat" in filename', {}),
        ('filename > "M"', {}),
        ('format != "png"', {}),
        ("status in groups", {}),
        ("(width > 100) == (height > 100)", {}),
        ("true", {}),
        ('"it\'s" in groups or "say \\"hi\\"" in groups', {}),
        ("asset.width > 10", {}),
        (None, {}),
        ("width > 10", {"limit": 20, "offset": 40}),
        # curation results (latest run of each tool) and null
        ("uniqueness > 0.9", {}),
        ("duplicate_group != null and not (uniqueness > 0.5)", {}),
        ('suggested_label == "cat" or mislabel_score >= 0.75', {}),
        ("duplicate_group == NULL", {}),
        ("inside(uniqueness, mislabel_score, [[0, 0], [1, 0], [1, 1]])", {}),
        ("width == null or null != format", {}),
        # failed files: the loader's reason, missing for an asset that loaded
        ("load_error != null", {}),
        ('matches(load_error, "^corrupt image") and not "train" in groups', {}),
        ('"truncated" in load_error or load_error == ""', {}),
    ],
    "shapes": [
        ('label == "squirrel" and area > 400', {"target": "shape"}),
        ('kind in ("bbox", "polygon") and bbox_width > 2 * bbox_height', {"target": "shape"}),
        ("attributes.occluded", {"target": "shape"}),
        ("attributes.score >= 0.5", {"target": "shape"}),
        ('asset.status == "review" and "train" in asset.groups', {"target": "shape"}),
        ("asset.squirrel > 1 and asset.width > 100", {"target": "shape"}),
        ("cluster == 1", {"target": "shape"}),
        ("asset.cluster == 1", {"target": "shape"}),
        ("inside(bbox_x, bbox_y, [[0, 0], [100, 0], [100, 100]])", {"target": "shape"}),
        (
            "inside(asset.x, asset.y, [[0, 0], [4, 0], [4, 3]]) or not inside(x, y, [[0, 0], [4, 0], [4, 3]])",
            {"target": "shape"},
        ),
        ('"IMG"', {"target": "shape"}),
        (None, {"target": "shape"}),
        ('mislabel_score > 0.5 and label == "person"', {"target": "shape"}),
        ("asset.uniqueness > 0.9 and duplicate_group != null", {"target": "shape"}),
        ("suggested_label != label", {"target": "shape"}),
        ('asset.load_error == null and label == "person"', {"target": "shape"}),
    ],
    "similarity": [
        (None, {"similarity": "vector"}),
        (None, {"similarity": "asset_id"}),
        ('"dataset2" in groups', {"similarity": "filename"}),
        ("width > 100", {"similarity": "dissimilar_filename", "limit": 10, "offset": 5}),
        (None, {"similarity": "dissimilar_vector"}),
        ('label == "person"', {"target": "shape", "similarity": "shape"}),
        (None, {"target": "shape", "similarity": "dissimilar_shape"}),
        ('"dataset2" in groups and squirrel >= 1', {"similarity": "wide"}),
        ("status == 'review'", {"similarity": "dissimilar_wide", "limit": 200}),
        (None, {"similarity": "wide", "limit": 5}),
        # filters an index answers alone (translator/covering.py), and one it does not
        ('"dataset2" in groups', {"similarity": "wide"}),
        ('status in ("review", "to_fix")', {"similarity": "wide"}),
        ("metadata.gps.lat <= -3", {"similarity": "wide"}),
        ('metadata.gps.lat > 47.5 and status == "review"', {"similarity": "wide"}),
        ("inside(x, y, [[0, 0], [4, 0], [4, 3]])", {"similarity": "wide"}),
        ("uniqueness > 0.9", {"similarity": "wide"}),
        ("duplicate_group != null", {"similarity": "vector"}),
        ("not (uniqueness > 0.5)", {"similarity": "dissimilar_wide"}),
        ("mislabel_score > 0.5 and asset.uniqueness < 0.2", {"target": "shape", "similarity": "shape"}),
        # an asset field of a shape joins the shape's asset in every path
        ("asset.cluster == 1", {"target": "shape", "similarity": "shape"}),
    ],
    "errors": [
        ("width in ()", {}),
        ('"a" not in ( )', {}),
        ('"zebra" in labels', {}),
        ('"Person" in labels', {}),
        ("", {}),
        ("   ", {}),
        ("filename > 3", {}),
        ('"a" + 1 > 2', {}),
        ("groups > 2", {}),
        ("labels == 3", {}),
        ("squirel > 2", {}),
        ('label == "x"', {}),
        ("squirrel > 2", {"target": "shape"}),
        ("metadata.camra == 1", {}),
        ("metadata == 1", {}),
        ("(width > 2", {}),
        ("width > 2)", {}),
        ("width >", {}),
        ("width > > 2", {}),
        ('"abc', {}),
        ("width > 2; DROP TABLE pgsearch.assets", {}),
        ("width::int > 2", {}),
        ("upper(filename) == 'A'", {}),
        ("width > 2 MB height", {}),
        ("1e400 > width", {}),
        ('matches(filename, "(a")', {}),
        ('matches(filename, "[[:alpha:]]")', {}),
        ("width\n  and\n  heigth > 2", {}),
        ("metadata.iso == metadata.camera", {}),
        ('status in ("a", 1)', {}),
        ("width", {}),
        ("not " * 40 + "squirrel", {}),
        ("(" * 40 + "squirrel" + ")" * 40, {}),
        ("squirrel " + "+ squirrel " * 120 + "> 0", {}),
        ("x" * 10_001, {}),
        ("width > 1 + " + " + ".join(["1"] * 40), {}),
        ("true < false", {}),
        ("width $ 2", {}),
        ("inside(x, y, [[0, 0], [4, 0]])", {}),
        ("inside(x, y, [[0, 0], [4, 0], [4]])", {}),
        ("inside(x, y, [[0, 0], [4, 0], [4, 3, 1]])", {}),
        ("inside(x, y, [0, 0, 4, 0, 4, 3])", {}),
        ("inside(x, y, [[0, 0], [4, 0], [4, width]])", {}),
        ('inside(x, y, [[0, 0], [4, 0], ["4", 3]])', {}),
        ("inside(x, y, [[0, 0], [4, 0], [inf, 3]])", {}),
        ("inside(x, y, [[0, 0], [4, 0], [4, -NaN]])", {}),
        ("inside(x, y, [[0, 0], [4, 0], [1e400, 3]])", {}),
        ("inside(x, y, [" + ", ".join(["[0,0]"] * 1001) + "])", {}),
        ("inside(filename, y, [[0, 0], [4, 0], [4, 3]])", {}),
        ("inside(x, groups, [[0, 0], [4, 0], [4, 3]])", {}),
        ("inside(x, y)", {}),
        ("inside(x, y, [[0, 0], [4, 0], [4, 3]], 1)", {}),
        ("inside(x, y, 3)", {}),
        ("inside(x, y, [[0, 0], [4, 0], [4, 3])", {}),
        ("x == [1, 2]", {}),
        ("inside([1, 2], y, [[0, 0], [4, 0], [4, 3]])", {}),
        ("[" * 40 + "]" * 40, {}),
        ("uniqueness > 0.5", {"target": "shape"}),
        ("asset.uniqueness > 0.5 and uniqueness < 0.1", {"target": "shape"}),
        ("null > 1", {}),
        ("metadata.iso == null", {}),
        ("groups != null", {}),
        ("null == null", {}),
        ("width in (1, null)", {}),
        ("not null", {}),
        # constant conditions: the same for every row, an error rather than all rows or none
        ("3 >= 1", {}),
        ("1 == 1", {}),
        ('"a" == "a"', {}),
        ("not 0 > 1", {}),
        ("squirrel > 2 or 1 == 1", {}),
        ('"a" in "abc"', {}),
        ("7 > 0", {}),
        ("7 > 0", {"target": "shape"}),
        # a bare number where a label was meant: how to write a label that is a number
        ("3", {}),
        ("3 and squirrel", {}),
        ("7", {}),
        ("7", {"target": "shape"}),
        # an unknown name that is a metadata key (or a shape attribute)
        ('camera == "x"', {}),
        ("gps.lat > 1", {}),
        ("occluded", {"target": "shape"}),
        ('camera == "x"', {"target": "shape"}),
        # load_error is a string: no condition alone, and an asset field for shapes
        ("load_error", {}),
        ("load_error != null", {"target": "shape"}),
    ],
}


def _compile(query: str | None, options: dict[str, Any]) -> dict[str, Any]:
    sim = SIMILARITIES[options["similarity"]] if "similarity" in options else None
    try:
        compiled = compile_query(
            query,
            CATALOG,
            target=options.get("target", "asset"),
            similarity=sim,
            limit=options.get("limit", 100),
            offset=options.get("offset", 0),
        )
    except QueryError as error:
        return {"query": query, "options": options, "error": str(error), "class": type(error).__name__}
    params = {k: str(v) if isinstance(v, Decimal) else v for k, v in compiled.params.items()}
    return {
        "query": query,
        "options": options,
        "sql": compiled.sql,
        "params": params,
        "inline": compiled.inline(),
    }


def _cases() -> list[tuple[str, int]]:
    return [(group, i) for group, cases in CASES.items() for i in range(len(cases))]


def test_enough_golden_pairs() -> None:
    assert sum(len(c) for c in CASES.values()) >= 60


@pytest.mark.parametrize("group", list(CASES))
def test_golden(group: str) -> None:
    path = GOLDEN / f"{group}.json"
    actual = [_compile(q, o) for q, o in CASES[group]]
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(path.read_text())
    assert len(expected) == len(actual), f"{path} is stale: set PGSEARCH_UPDATE_GOLDEN=1 to regenerate"
    for want, got in zip(expected, actual, strict=True):
        assert got == want


@pytest.mark.parametrize("group", ["assets", "shapes", "similarity"])
def test_inlined_statements_are_one_select(group: str) -> None:
    """The inlined SQL parses back (sqlglot, postgres) as exactly one SELECT."""
    for query, options in CASES[group]:
        inline = _compile(query, options)["inline"]
        trees = sqlglot.parse(inline, dialect="postgres")
        assert len(trees) == 1 and isinstance(trees[0], exp.Select), inline
