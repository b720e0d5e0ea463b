"""Hostile input: every string either raises QueryError or compiles to a statement that runs
without error and keeps its shape (one SELECT over the dataset's rows; a literal never escapes
into SQL syntax)."""

from __future__ import annotations

import psycopg
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from pgsearch.translator import Catalog, QueryError, compile_query

INJECTIONS = [
    "'; DROP TABLE pgsearch.assets; --",
    '"; DROP TABLE pgsearch.assets; --',
    'filename == "x\'; DROP TABLE pgsearch.assets; --"',
    "filename == 'x\\'; DROP TABLE pgsearch.assets; --'",
    'filename == "\\\\"',
    'filename == "a\\"b"',
    "status == $$review$$",
    "status == $tag$x$tag$",
    'status == "$$; SELECT 1; $$"',
    "width > 1 /* comment */",
    "width > 1 -- comment",
    "width > 1 # comment",
    'filename == "/* x */ -- y"',
    "`a``b` > 1",
    "`; DROP TABLE x; --` > 1",
    "metadata.`'; DROP TABLE x; --` == 1",
    'metadata.iso == "\\u0000"',
    "filename == 'null\x00byte'",
    "\x00",
    'filename == "\U0001f600 emoji ü é 中文"',
    "filename == '\ud800'",
    "ｗｉｄｔｈ > 1",
    "width > 1e400",
    "width > 99999999999999999999999999",
    "width > 0.0000000000000000000000001",
    "wheels % 0 == 1",
    "1 / 0 == 1",
    "width * width * width * width * width * width > 1",
    "metadata.iso * metadata.iso * metadata.iso > 1",
    'matches(filename, "(a+)+$")',
    'matches(filename, "(((a{255}){255}){255})")',
    'matches(filename, "[z-a]")',
    'matches(filename, "\\\\")',
    'matches(filename, "(?i)x")',
    'matches(filename, "\\\\1")',
    "width > %(p1)s",
    "width > %s",
    "width > ?",
    "width > :x",
    "width > @x",
    "select * from pgsearch.assets",
    "width in (select id from pgsearch.assets)",
    "(width > 1",
    ")" * 5,
    "(" * 200,
    "not " * 2000 + "width > 1",
    "-" * 3000 + "1 > 0",
    "width > 1 or " * 800 + "width > 1",
    " + ".join(["1"] * 3000) + " > 0",
    "a" * 10_000,
    '"' + "x" * 9_000 + '"',
    "width > 1\n;\nDROP TABLE x",
    "E'\\x41' == filename",
    "U&'\\0041' == filename",
    "filename == E'a'",
    "width == 1::int",
    "width[1] > 0",
    "{width} > 1",
    "width > 1 limit 1",
    "width > 1 union select 1",
    "count(*) > 1",
    "count(filename) > 1",
    "contains(filename)",
    'contains(filename, "a", "b")',
    "filename.contains('a')",
    "asset.asset.width > 1",
    "metadata.a.b.c.d.e.f == 1",
    "TRUE and FALSE or True",
    # inside(): the polygon travels as one parameter; values beyond double precision are missing.
    "inside(x, y, [[0,0],[1,0],[1,1]])",
    "inside(x, y, [[0,0],[1,0],[1,1]]); DROP TABLE pgsearch.assets",
    'inside(width, width, [[0,0],[1,0],[1,"1)\'; DROP TABLE x; --"]])',
    "inside(width, width, [['0', 0], [1,0], [1,1]])",
    "inside(width, width, [[0,0],[1,0],[1,1)]])",
    "inside(width, width, [[1e18,1e18],[-1e18,1e18],[0,-1e18]])",
    "inside(width, width, [[1e-18,-1e-18],[-1e18,1e18],[0,-1e18]])",
    "inside(metadata.iso * metadata.iso * metadata.iso * metadata.iso, width, [[0,0],[1,0],[1,1]])",
    "not inside(metadata.iso / 1e-18 / 1e-18, 0, [[0,0],[1,0],[1,1]])",
    "not inside(width" + " * 1e-18" * 20 + ", 0, [[-1,-1],[1,-1],[1,1]])",
    "inside(width" + " * 1e18" * 20 + ", width" + " * 1e18" * 12 + ", [[-1,-1],[1,-1],[1,1]])",
    "inside(x, y, [[0,0],[1,0],[1,1]])[1]",
    "inside(x, y, [[0,0],[1,0],[1,1][0]])",
    "inside(x, y, [[0,0],[1,0],[1,1]:2])",
    "inside(x, y, [[0,0],[1,0],{1,1}])",
    "inside(x, y, [[0,0],[1,0],[1,1]]) == [1]",
    "inside(x, y, [" + ",".join(["[0,0]"] * 1200) + "])",
    "[1, 2]",
    "[" * 3000,
    "]" * 5,
    "{" * 3000,
    "([)]",
    "\\",
    "`",
    "'",
    '"',
    "",
    " \t\n ",
]


@pytest.fixture
def catalog(conn: psycopg.Connection) -> Catalog:
    ds = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('fuzz') RETURNING id").fetchone()[0]
    label = conn.execute(
        "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, 'wheels') RETURNING id", (ds,)
    ).fetchone()[0]
    for i, meta in enumerate(['{"iso": 1e99}', '{"iso": "x"}', "{}", '{"iso": 0.5}']):
        asset = conn.execute(
            "INSERT INTO pgsearch.assets (dataset_id, filename, width, metadata) VALUES (%s, %s, %s, %s) RETURNING id",
            (ds, f"f{i}.jpg", [None, 1, 2000000000, 3][i], meta),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO pgsearch.shapes (dataset_id, asset_id, label_id, kind) VALUES (%s, %s, %s, 'tag')",
            (ds, asset, label),
        )
    conn.execute("SELECT pgsearch.refresh_label_counts(ARRAY(SELECT id FROM pgsearch.assets))")
    conn.commit()
    # metadata_keys=None: any key is accepted, so hostile keys reach the SQL generator.
    return Catalog(dataset_id=ds, dataset_name="fuzz", labels=frozenset({"wheels"}), metadata_keys=None)


def _shape_ok(sql: str) -> None:
    trees = sqlglot.parse(sql, dialect="postgres")
    assert len(trees) == 1
    tree = trees[0]
    assert isinstance(tree, exp.Select)
    assert [t.name for t in tree.find_all(exp.Table)] == ["assets"]
    assert not list(tree.find_all(exp.Command, exp.Drop, exp.Insert, exp.Delete, exp.Update, exp.Union))
    assert tree.args["limit"] is not None and len(tree.args["order"].expressions) == 1


def _try(conn: psycopg.Connection, catalog: Catalog, text: str) -> None:
    try:
        compiled = compile_query(text, catalog)
    except QueryError as error:
        assert str(error)
        return
    _shape_ok(compiled.sql)
    _shape_ok(compiled.inline())
    conn.execute(compiled.sql, compiled.params).fetchall()
    with conn.cursor() as cur:  # the inlined form runs too (no parameters: no % interpretation)
        cur.execute(compiled.inline().encode())
        cur.fetchall()
    conn.rollback()


def test_injection_corpus(conn: psycopg.Connection, catalog: Catalog) -> None:
    for text in INJECTIONS:
        _try(conn, catalog, text)
    assert conn.execute("SELECT count(*) FROM pgsearch.assets").fetchone()[0] == 4


ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzAND OR NOT IN()\"'`\\;%$#-+*/<>=!.,:[]{}@?0123456789\n\t")
    + [
        "width",
        "wheels",
        "metadata.iso",
        "filename",
        "groups",
        " and ",
        " or ",
        " not ",
        " in ",
        "==",
        "2MB",
        "1e9",
        "count(",
        "matches(filename, ",
        "contains(",
        "inside(",
        "[[0,0],[1,0],[1,1]]",
        "[1, -2e3]",
        "ü",
        "\U0001f600",
        "\x00",
        "$$",
        "/*",
        "--",
        "::",
    ]
)


def test_arbitrary_text(conn: psycopg.Connection, catalog: Catalog) -> None:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(st.one_of(st.text(max_size=80), st.lists(ALPHABET, max_size=30).map("".join)))
    def run(text: str) -> None:
        _try(conn, catalog, text)

    run()
