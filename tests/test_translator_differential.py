"""Differential: for generated queries over a generated dataset, the ids PostgreSQL returns for
the compiled statement equal the ids the plain-Python evaluator selects."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from translator_reference import (
    GROUPS,
    LABELS,
    STATUSES,
    SUGGESTIONS,
    Dataset,
    build_dataset,
    point_in_polygon,
    select_ids,
)

from pgsearch.catalog import load_catalog
from pgsearch.translator import QueryTypeError, compile_query

ALL = 100_000


def kw(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize()])


def quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


LABEL_NAMES = [f"`{name}`" if " " in name or name == "select" else name for name in LABELS]

numbers = st.one_of(
    st.integers(0, 5000).map(str),
    st.sampled_from(["0.5", "1.25", "2KB", "1MB", "0.001", "1e3", "100.75"]),
)


def asset_numeric_atoms() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["width", "height", "size", "annotations", "cluster", "x", "y", "asset.width"]),
        st.sampled_from(["uniqueness", "mislabel_score", "duplicate_group", "asset.uniqueness"]),
        st.sampled_from(LABEL_NAMES),
        st.sampled_from(
            ['count("wheels")', 'count("nope")', "metadata.iso", "metadata.gps.lat", "metadata.camera"]
        ),
        numbers,
    )


def shape_numeric_atoms() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["area", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "cluster", "x", "y"]),
        st.sampled_from(
            ["asset.width", "asset.height", "asset.cluster", "asset.squirrel", "attributes.score"]
        ),
        st.sampled_from(["uniqueness", "mislabel_score", "duplicate_group", "asset.uniqueness"]),
        numbers,
    )


def numeric(atoms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            inner.map(lambda s: f"-{s}"),
        )

    return st.recursive(atoms, extend, max_leaves=4)


strings = st.sampled_from(
    ["IMG", "img_", "jpg", ".JPG", "Ärger", "a'b", "", "review", "Canon", "canon", "%", "_", "corrupt"]
)
string_lists = st.lists(st.sampled_from([*STATUSES, "jpeg", "png", "Canon", "x"]), min_size=1, max_size=3)
regexes = st.sampled_from(
    ["^IMG_[0-9]+", "[0-9]{4}\\.jpg$", "^(a|i)", "\\.png$", ".*", "^[^I]", "^corrupt", "truncated|too large"]
)


# -- polygons for inside() ----------------------------------------------------------------------
def _number_text(rng: random.Random, value: float) -> str:
    """A coordinate in one of the spellings the language reads."""
    style = rng.random()
    if style < 0.6:
        return f"{value:.3f}"
    if style < 0.75:
        return f"{value:.2e}"
    if style < 0.85:
        return f"+{abs(value):.1f}" if value >= 0 else f"{value:.1f}"
    return str(round(value))


def random_polygon(seed: int, scale: float = 10.0) -> list[tuple[str, str]]:
    """A convex polygon, a star-shaped (concave) one, or one in random vertex order (its edges
    cross), centred anywhere around the points, as the coordinates' text."""
    rng = random.Random(seed)
    kind = rng.choice(["convex", "star", "star", "tangle"])
    n = rng.randint(3, 40 if kind == "star" else 12)
    cx, cy = rng.uniform(-0.6, 0.6) * scale, rng.uniform(-0.6, 0.6) * scale
    radius = rng.uniform(0.1, 0.9) * scale
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(n))
    if kind == "tangle":
        rng.shuffle(angles)
    out = []
    for angle in angles:
        r = radius if kind == "convex" else radius * rng.uniform(0.2, 1.0)
        out.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    if rng.random() < 0.5:
        out.reverse()  # either orientation
    return [(_number_text(rng, x), _number_text(rng, y)) for x, y in out]


def polygon_text(vertices: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"[{x}, {y}]" for x, y in vertices) + "]"


def insides(pairs: st.SearchStrategy[tuple[str, str]], scale: float = 10.0) -> st.SearchStrategy[str]:
    polygons = st.integers(0, 2**32).map(lambda seed: polygon_text(random_polygon(seed, scale)))
    return st.tuples(pairs, polygons).map(lambda t: f"inside({t[0][0]}, {t[0][1]}, {t[1]})")


ASSET_XY = [
    ("x", "y"),
    ("x", "y"),
    ("x", "y"),
    ("asset.x", "asset.y"),
    ("y", "x"),
    ("(x + 1)", "y * 2"),
    ("-x", "(y)"),
    ("width / 100", "height / 100"),
    ("metadata.gps.lat / 3", "metadata.iso / 100"),
    ("cluster", "x"),
    ("uniqueness", "mislabel_score"),
]
SHAPE_XY = [
    ("x", "y"),
    ("x", "y"),
    ("asset.x", "asset.y"),
    ("asset.x", "y"),
    ("bbox_x / 50", "bbox_y / 10"),
    ("area / 1000", "attributes.score"),
    ("mislabel_score * 10", "asset.uniqueness"),
]


NULL_SPELLINGS = ["null", "NULL", "Null"]
NULLABLE_ASSET = [
    "duplicate_group",
    "suggested_label",
    "uniqueness",
    "mislabel_score",
    "width",
    "format",
    "cluster",
    "width / height",
    "(x + 1)",
    "load_error",
]
NULLABLE_SHAPE = [
    "duplicate_group",
    "asset.duplicate_group",
    "suggested_label",
    "mislabel_score",
    "uniqueness",
    "area",
    "asset.format",
    "asset.load_error",
]


def asset_conditions() -> st.SearchStrategy[str]:
    num = numeric(asset_numeric_atoms())
    string_fields = st.sampled_from(
        [
            "filename",
            "path",
            "format",
            "status",
            "metadata.camera",
            "metadata.iso",
            "suggested_label",
            "load_error",
        ]
    )
    atoms = st.one_of(
        st.tuples(num, st.sampled_from(["<", ">", "<=", ">=", "==", "=", "!="]), num).map(" ".join),
        st.tuples(string_fields, st.sampled_from(["==", "!=", "<", ">="]), strings.map(quoted)).map(" ".join),
        st.tuples(string_fields, kw("in") | st.just("not in"), string_lists).map(
            lambda t: f"{t[0]} {t[1]} ({', '.join(quoted(s) for s in t[2])})"
        ),
        st.tuples(num, kw("in"), st.lists(numbers, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])})"
        ),
        st.tuples(st.sampled_from([*GROUPS, "nope"]), st.sampled_from(["in", "not in"])).map(
            lambda t: f"{quoted(t[0])} {t[1]} groups"
        ),
        st.tuples(st.sampled_from(LABELS), st.sampled_from(["in", "not in"])).map(
            lambda t: f"{quoted(t[0])} {t[1]} labels"
        ),
        st.tuples(strings, st.sampled_from(["filename", "path", "load_error"])).map(
            lambda t: f"{quoted(t[0])} in {t[1]}"
        ),
        st.tuples(st.sampled_from(["contains", "startswith", "endswith"]), string_fields, strings).map(
            lambda t: f"{t[0]}({t[1]}, {quoted(t[2])})"
        ),
        st.tuples(st.sampled_from(["filename", "path", "metadata.camera", "load_error"]), regexes).map(
            lambda t: f"matches({t[0]}, {quoted(t[1])})"
        ),
        strings.map(quoted),
        st.sampled_from(
            ["metadata.flag", "metadata.flag == true", "metadata.flag != false", *LABEL_NAMES, "true"]
        ),
        st.sampled_from(["(width > 100) == (height > 100)", "status in groups", "metadata.camera in groups"]),
        insides(st.sampled_from(ASSET_XY)),
        insides(st.sampled_from(ASSET_XY)),
        insides(st.tuples(num, num)),
        st.tuples(st.sampled_from(NULLABLE_ASSET), st.sampled_from(["==", "!=", "=", "<>"])).map(
            lambda t: f"{t[0]} {t[1]} {NULL_SPELLINGS[len(t[0]) % 3]}"
        ),
        st.tuples(st.sampled_from(SUGGESTIONS), st.sampled_from(["==", "!="])).map(
            lambda t: f"suggested_label {t[1]} {quoted(t[0])}"
        ),
    )
    return _logic(atoms)


def shape_conditions() -> st.SearchStrategy[str]:
    num = numeric(shape_numeric_atoms())
    atoms = st.one_of(
        st.tuples(num, st.sampled_from(["<", ">", "<=", ">=", "==", "!="]), num).map(" ".join),
        st.tuples(
            st.sampled_from(["label", "kind", "attributes.color", "asset.status", "asset.filename"]),
            st.sampled_from(["==", "!=", ">"]),
            st.sampled_from([*LABELS, "bbox", "tag", "red", "review"]).map(quoted),
        ).map(" ".join),
        st.tuples(
            st.sampled_from(["label", "kind"]),
            st.lists(st.sampled_from([*LABELS, "bbox", "tag", "polygon"]), min_size=1, max_size=3),
        ).map(lambda t: f"{t[0]} in ({', '.join(quoted(s) for s in t[1])})"),
        st.sampled_from(
            [
                '"train" in asset.groups',
                "attributes.occluded",
                "not attributes.occluded",
                "asset.wheels",
                '"IMG"',
            ]
        ),
        insides(st.sampled_from(SHAPE_XY)),
        insides(st.just(("bbox_x", "bbox_y")), scale=500.0),
        st.tuples(st.sampled_from(NULLABLE_SHAPE), st.sampled_from(["==", "!="])).map(
            lambda t: f"{t[0]} {t[1]} null"
        ),
        st.tuples(
            st.sampled_from(["suggested_label", "asset.suggested_label", "label"]),
            st.sampled_from(["==", "!="]),
            st.sampled_from([*SUGGESTIONS, "red"]).map(quoted),
        ).map(" ".join),
    )
    return _logic(atoms)


def _logic(atoms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, kw("and") | kw("or"), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            st.tuples(inner, kw("and") | kw("or"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(kw("not"), inner).map(lambda t: f"{t[0]} {t[1]}"),
        )

    return st.recursive(atoms, extend, max_leaves=5)


@pytest.fixture
def dataset(conn: psycopg.Connection) -> Dataset:
    data = build_dataset(conn, curation=True)
    data.catalog = load_catalog(conn, "ref")
    return data


def _check(conn: psycopg.Connection, data: Dataset, text: str, target: str) -> None:
    assert data.catalog is not None
    rows = data.assets if target == "asset" else data.shapes
    try:
        compiled = compile_query(text, data.catalog, target=target, limit=ALL)  # type: ignore[arg-type]
    except QueryTypeError as error:
        # The grammar above can pair two metadata values, or write a comparison of constants
        # (`3 > 1`), both of which the language rejects by design.
        assert "cannot tell what kind" in str(error) or "compares constants only" in str(error)
        reject()
    expected = select_ids(text, data.catalog, rows, target)
    got = [r[0] for r in conn.execute(compiled.sql, compiled.params)]
    assert got == expected, (
        f"{text!r}: {len(got)} rows from PostgreSQL, {len(expected)} from Python\n{compiled.inline()}"
    )


def test_catalog_reads_the_dataset(dataset: Dataset) -> None:
    cat = dataset.catalog
    assert cat is not None
    assert cat.labels == frozenset(LABELS)
    assert {"iso", "camera", "flag", "gps"} <= (cat.metadata_keys or set())
    assert cat.asset_run is not None and cat.shape_run is not None and cat.asset_run != cat.shape_run
    assert len(dataset.assets) >= 500


FIXED = [
    '(squirrel > 2 or height > 200) and "dataset2" in groups',
    "wheels % 2 == 1",
    'status == "review" and size > 2MB and not "train" in groups',
    '"IMG_00"',
    "not width > 100",
    "width != height",
    "width / 0 == 1 or not (width * 0 + 1 / 0 == 1)",
    "wheels % 0 == 1",
    "metadata.iso > 150",
    "not metadata.iso > 150",
    'metadata.iso == "high"',
    "metadata.iso * 2 >= 400",
    "metadata.gps.lat < 0",
    "metadata.flag",
    "not metadata.flag",
    "cluster == 1 or x > 1",
    "not cluster == 1",
    'filename > "a"',
    'format != "png"',
    'format in ("jpeg", "png")',
    'format not in ("jpeg")',
    "-7 % 3 == width * 0 - 1 and width % 7 == 3",
    "width / 3 * 3 == width",
    "size >= 1KB and size < 2.5MB",
    'matches(filename, "^(a|i)") or endswith(path, "1.jpg")',
    # Long flat chains (rebuilt as balanced trees: only real nesting counts against the depth).
    " or ".join(f"width == {w}" for w in range(100, 400, 2)),
    " and ".join(f"width != {w}" for w in range(100, 400, 3)) + " and height > 10",
    # The map: projection points, clusters (-1 is noise) and lasso polygons.
    "cluster == 3",
    "cluster == -1",
    "not cluster == -1",
    "x > 2 and y < -1",
    "inside(x, y, [[0, 0], [5, 0], [5, 5], [0, 5]])",
    "not inside(x, y, [[0, 0], [5, 0], [5, 5], [0, 5]])",
    "inside(x, y, [[-10, -10], [10, -10], [10, 10], [-10, 10]]) and cluster == -1",
    # A pentagram: its centre is inside (PostgreSQL counts crossings with their direction).
    "inside(x, y, [[0, 9], [5.29, -7.28], [-8.56, 2.78], [8.56, 2.78], [-5.29, -7.28]])",
    # Grid points on these vertices and edges: the boundary is inside.
    "inside(x, y, [[-1.5, 0.5], [3, 0.5], [3, 2], [-1.5, 2]])",
    "inside(x, y, [[0.25, -1.25], [7.75, 2], [0.25, 2]]) or not inside(x, y, [[-1.5, -1.25], [3, 2], [3, -1.25]])",
    "inside(width / 100, height / 100, [[0, 0], [10, 0], [0, 10]])",
    "inside(x, y, [[0, 0], [5, 0], [5, 5]]) == (cluster == -1)",
    "inside(x, y, [[0, 0], [5, 0], [5, 5]]) != true",
    "inside(metadata.gps.lat, metadata.iso / 100, [[-30, -1], [50, -1], [50, 40], [-30, 40]])",
    # Beyond double precision: too large is missing, too small rounds to 0 (no PostgreSQL error).
    "not inside(x" + " * 1e18" * 17 + ", y, [[-1e18, -1e18], [1e18, -1e18], [0, 1e18]])",
    "inside(x" + " * 1e-18" * 17 + ", y, [[-1, -20], [1, -20], [1, 20], [-1, 20]])",
    # Curation results (latest run of each tool) and null.
    "uniqueness > 0.9",
    "uniqueness >= 0.9 and uniqueness <= 1",
    "not (uniqueness > 0.5)",
    "uniqueness == 0.25 or uniqueness == 1",
    "uniqueness == null",
    "duplicate_group != null",
    "duplicate_group == null or not duplicate_group > 0",
    "duplicate_group == asset.duplicate_group and duplicate_group % 2 == 1",
    'suggested_label == "cat"',
    "suggested_label != null and not suggested_label == 'cat'",
    "mislabel_score > 0.5 and squirrel",
    "mislabel_score * 2 - uniqueness > 0.75",
    "inside(uniqueness, mislabel_score, [[0, 0], [0.5, 0], [0.5, 0.9], [0, 0.9]])",
    "width == null or format = NULL",
    "`select` == null",
    # Failed files: the reason is missing for a good asset; an empty reason is still a failure.
    "load_error != null",
    "load_error == null",
    "not load_error != null and width > 100",
    'load_error == ""',
    'matches(load_error, "^corrupt image") or "Permission" in load_error',
    'not startswith(load_error, "corrupt")',
    'load_error in ("", "cannot read file (Permission denied)")',
]

FIXED_SHAPES = [
    "inside(bbox_x, bbox_y, [[0, 0], [100, 0], [100, 100]])",
    "not inside(bbox_x, bbox_y, [[0, 0], [100, 0], [100, 100]])",
    "inside(asset.x, asset.y, [[0, 0], [5, 0], [5, 5]]) and not inside(x, y, [[0, 0], [5, 0], [5, 5]])",
    "cluster == -1 or asset.cluster == 3",
    "x < asset.x",
    'mislabel_score > 0.5 and label == "car"',
    "not (mislabel_score > 0.5) and suggested_label != null",
    'suggested_label == label or suggested_label == "cat"',
    "asset.uniqueness > 0.9 or uniqueness < 0.1",
    "asset.duplicate_group != null and duplicate_group == null",
    "duplicate_group != null",
    "asset.load_error != null or asset.load_error == null",
    'matches(asset.load_error, "truncated") and label == "car"',
]


@pytest.mark.parametrize("target", ["asset", "shape"])
def test_fixed_queries(conn: psycopg.Connection, dataset: Dataset, target: str) -> None:
    for text in FIXED if target == "asset" else FIXED_SHAPES:
        _check(conn, dataset, text, target)


def test_point_in_polygon_matches_postgresql(conn: psycopg.Connection) -> None:
    """The reference's point-in-polygon test against PostgreSQL's `point <@ polygon` itself, on
    random polygons and points, the polygons' own vertices and edge points, points within and just
    beyond the 1e-6 tolerance of them, and degenerate polygons."""
    rng = random.Random(11)
    cases: list[tuple[float, float, list[tuple[float, float]]]] = []
    polygons = [
        [(float(Decimal(x)), float(Decimal(y))) for x, y in random_polygon(seed)] for seed in range(300)
    ]
    polygons += [
        [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)],
        [(0.0, 9.0), (5.29, -7.28), (-8.56, 2.78), (8.56, 2.78), (-5.29, -7.28)],  # pentagram
        [(0.0, 0.0), (4.0, 4.0), (0.0, 4.0), (4.0, 0.0)],  # bow tie
        [(0.0, 0.0), (2.0, 2.0), (4.0, 4.0)],  # a segment
        [(1.0, 1.0), (1.0, 1.0), (3.0, 1.0), (3.0, 1.0), (2.0, 3.0)],  # repeated vertices
        [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)],  # closed explicitly
    ]
    for vertices in polygons:
        for _ in range(20):
            cases.append((rng.uniform(-10, 10), rng.uniform(-10, 10), vertices))
        for i, (vx, vy) in enumerate(vertices):
            nx, ny = vertices[(i + 1) % len(vertices)]
            t = rng.random()
            for px, py in ((vx, vy), (vx + t * (nx - vx), vy + t * (ny - vy))):
                cases.append((px, py, vertices))
                for d in (5e-7, -5e-7, 2e-6, -2e-6, 1e-3):
                    cases.append((px + d, py, vertices))
                    cases.append((px, py + d, vertices))
    for x, y in ((2.0, 2.0), (2.0, 0.0), (0.0, 0.0), (4.0, 2.0), (2.0, -1e-7), (2.0, -1e-5), (5.0, 5.0)):
        cases.append((x, y, polygons[-6]))
    texts = ["(" + ",".join(f"({vx!r},{vy!r})" for vx, vy in v) + ")" for _, _, v in cases]
    got = [
        r[0]
        for r in conn.execute(
            "SELECT point(x, y) <@ p::polygon FROM unnest(%s::float8[], %s::float8[], %s::text[])"
            " WITH ORDINALITY AS t(x, y, p, i) ORDER BY i",
            ([c[0] for c in cases], [c[1] for c in cases], texts),
        )
    ]
    expected = [point_in_polygon(x, y, v) for x, y, v in cases]
    wrong = [(cases[i][:2], texts[i]) for i in range(len(cases)) if got[i] != expected[i]]
    assert not wrong, f"{len(wrong)} of {len(cases)} disagree, e.g. {wrong[:3]}"
    assert len(cases) > 10_000 and 0.1 < sum(expected) / len(expected) < 0.9
    square, pentagram, bow_tie = polygons[-6], polygons[-5], polygons[-4]
    assert point_in_polygon(2.0, 0.0, square) and point_in_polygon(0.0, 0.0, square)  # the boundary
    assert point_in_polygon(2.0, -1e-7, square) and not point_in_polygon(2.0, -1e-5, square)
    assert point_in_polygon(0.0, 0.0, pentagram)  # wound twice: inside, where even-odd says outside
    assert point_in_polygon(2.0, 1.0, bow_tie) and not point_in_polygon(1.0, 2.0, bow_tie)


def test_generated_asset_queries(conn: psycopg.Connection, dataset: Dataset) -> None:
    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(asset_conditions())
    def run(text: str) -> None:
        _check(conn, dataset, text, "asset")

    run()


def test_generated_shape_queries(conn: psycopg.Connection, dataset: Dataset) -> None:
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(shape_conditions())
    def run(text: str) -> None:
        _check(conn, dataset, text, "shape")

    run()


def test_no_query_selects_everything(conn: psycopg.Connection, dataset: Dataset) -> None:
    _check_none = compile_query(None, dataset.catalog, limit=ALL)  # type: ignore[arg-type]
    got = [r[0] for r in conn.execute(_check_none.sql, _check_none.params)]
    assert got == sorted(a["id"] for a in dataset.assets)
