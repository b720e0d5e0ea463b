"""`pgsearch db upgrade` on a database made by pgsearch 0.1 and on a fresh one: the same schema, the
same answers; the objects of sql/ applied again idempotently, grants kept, user views respected;
every object documented truly, and each in exactly one file."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgsearch import db as database
from pgsearch import indexes, migrate, roles
from pgsearch import sql as objects
from pgsearch.errors import SchemaError
from pgsearch.server import bin_dir

FIXTURES = Path(__file__).parent / "fixtures"

# Per-space partitions and what hangs on them (their keys, HNSW indexes, sketch triggers) are data
# that functions create: a fresh database has none.
PER_SPACE = re.compile(
    r"\b(?:asset_embeddings|shape_embeddings|neighbors|uniqueness|mislabels|duplicates)_\d+(?!\d)"
)


def _with_dbname(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def v01_dsn(server_url: str) -> Iterator[str]:
    """A database restored from pgsearch 0.1's dump (revision 0007, the demo dataset with curation
    results), not yet upgraded by this pgsearch."""
    name = f"v01_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_dbname(server_url, name)
    subprocess.run(
        [
            str(bin_dir() / "psql"),
            url,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            str(FIXTURES / "v0_1_home.sql"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def schema_dump(dsn: str) -> list[str]:
    """pg_dump --schema-only as a list of its entries, per-space partitions left out."""
    text = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges", dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    text = re.sub(r"^\\(un)?restrict .*$", "", text, flags=re.M)
    entries = re.split(r"^--\n-- (?=Name: )", text, flags=re.M)
    kept = [e.strip() for e in entries[1:] if not PER_SPACE.search(e.splitlines()[0])]
    return kept


def assert_same_schema(a: list[str], b: list[str]) -> None:
    if a != b:
        diff = "\n".join(
            difflib.unified_diff("\n\n".join(a).splitlines(), "\n\n".join(b).splitlines(), lineterm="")
        )
        pytest.fail(f"schemas differ:\n{diff[:6000]}")


def _upgrade(dsn: str) -> tuple[str | None, str]:
    return database.upgrade(database.Target(dsn, embedded=False))


def _forget_objects(dsn: str) -> None:
    """As if the object files had changed since the last upgrade."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM pgsearch.sql_objects")


def _one(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


# -- a 0.1 database -----------------------------------------------------------------------------


def test_a_v01_database_upgrades_to_the_schema_of_a_fresh_one(v01_dsn: str, dsn: str) -> None:
    assert _upgrade(v01_dsn) == ("0007", migrate.head_revision())
    with database.connect(v01_dsn) as old, database.connect(dsn) as fresh:
        # `pgsearch index add` columns and indexes are the user's: made the same way in both.
        for index in indexes.list_indexes(old, sizes=False):
            indexes.add_index(fresh, index.field, index.kind)
        assert len(indexes.list_indexes(fresh, sizes=False)) >= 1
        # 0.1's sketch triggers on the partitions are gone (the embedding writer writes sketches).
        sketch_triggers = _one(
            old,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'pgsearch.asset_embeddings_1'::regclass"
            " AND tgname LIKE 'sketch_%%'",
        )
        assert sketch_triggers == 0
    assert_same_schema(schema_dump(v01_dsn), schema_dump(dsn))


def _answer_rows(result: Any) -> list[dict[str, Any]]:
    rows = []
    for row in result:
        row = dict(row)
        if "distance" in row:
            row["distance"] = round(float(row["distance"]), 4)
        rows.append(
            {
                k: (v if isinstance(v, int | float | str | list | dict | type(None)) else str(v))
                for k, v in row.items()
            }
        )
    return json.loads(json.dumps(rows, sort_keys=True, default=str))


def test_a_v01_database_answers_as_before(v01_dsn: str) -> None:
    import pgsearch

    expected = json.loads((FIXTURES / "v0_1_answers.json").read_text())
    assert len(expected) == 13
    _upgrade(v01_dsn)
    with pgsearch.connect(v01_dsn) as client:
        for case in expected:
            got = _answer_rows(client.query(case["query"], dataset="demo", **case["options"]))
            assert got == case["rows"], (case["query"], case["options"])


# -- applying the objects again -----------------------------------------------------------------


def test_applying_the_objects_again_is_idempotent_and_cheap(dsn: str) -> None:
    before = schema_dump(dsn)
    with psycopg.connect(dsn) as conn:
        assert migrate.is_current(migrate.schema_state(conn))
        applied = _one(conn, "SELECT applied_at FROM pgsearch.sql_objects")
    _upgrade(dsn)  # nothing to do: the files are the ones applied
    with psycopg.connect(dsn) as conn:
        assert _one(conn, "SELECT applied_at FROM pgsearch.sql_objects") == applied
    _forget_objects(dsn)
    with pytest.raises(
        SchemaError, match=r"views and functions of another pgsearch version.*pgsearch db upgrade"
    ):
        database.open_database(dsn)
    _upgrade(dsn)
    _forget_objects(dsn)
    _upgrade(dsn)
    assert_same_schema(before, schema_dump(dsn))
    database.open_database(dsn).close()


def _reshape_label_counts(conn: psycopg.Connection) -> None:
    """Makes v_label_counts what an older release might have had: another column list, which
    CREATE OR REPLACE VIEW cannot turn into this release's."""
    conn.execute("DROP VIEW pgsearch.v_label_counts")
    conn.execute(
        "CREATE VIEW pgsearch.v_label_counts AS"
        " SELECT a.id AS asset_id, a.filename, 0 AS old_column FROM pgsearch.assets AS a"
    )
    conn.execute("DELETE FROM pgsearch.sql_objects")


def _columns(conn: psycopg.Connection, view: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
            (view,),
        )
    ]


def test_a_reader_keeps_its_grants_when_objects_are_dropped_and_made_again(dsn: str, server_url: str) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as conn:
        roles.grant_reader(conn, role)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            _reshape_label_counts(conn)
            conn.execute(
                sql.SQL("GRANT SELECT ON pgsearch.v_label_counts TO {}").format(sql.Identifier(role))
            )
        _upgrade(dsn)
        with psycopg.connect(dsn) as conn:
            assert "old_column" not in _columns(conn, "pgsearch.v_label_counts")
            for view in objects.view_names():
                assert _one(
                    conn, "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, f"pgsearch.{view}")
                ), view
            for name in roles.READER_FUNCTIONS:
                oid = _one(conn, "SELECT %s::regproc::oid", (f"pgsearch.{name}",))
                assert _one(conn, "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, oid)), name
                assert not _one(conn, "SELECT has_function_privilege('public', %s, 'EXECUTE')", (oid,)), name
            # Readers reach the tables behind the security_invoker views, filtered by row-level
            # security (tests/test_reader_isolation.py checks what they see).
            assert _one(conn, "SELECT relrowsecurity FROM pg_class WHERE oid = 'pgsearch.assets'::regclass")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_user_view_on_an_unchanged_view_survives(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.my_assets AS SELECT asset_id, filename FROM pgsearch.v_assets")
    _forget_objects(dsn)
    _upgrade(dsn)
    with psycopg.connect(dsn) as conn:
        assert _one(conn, "SELECT count(*) FROM public.my_assets") == 0
        assert migrate.is_current(migrate.schema_state(conn))


def test_a_user_view_on_a_reshaped_view_stops_the_upgrade_and_nothing_changes(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _reshape_label_counts(conn)
        conn.execute(
            "CREATE VIEW public.my_counts AS SELECT asset_id, old_column FROM pgsearch.v_label_counts"
        )
    before = schema_dump(dsn)
    with pytest.raises(SchemaError) as caught:
        _upgrade(dsn)
    message = str(caught.value)
    assert "view public.my_counts depends on view pgsearch.v_label_counts" in message
    assert "Nothing was changed" in message
    assert schema_dump(dsn) == before
    with psycopg.connect(dsn) as conn:
        assert _one(conn, "SELECT count(*) FROM pgsearch.sql_objects") == 0
        assert "old_column" in _columns(conn, "pgsearch.v_label_counts")
        conn.execute("DROP VIEW public.my_counts")
        conn.commit()
    _upgrade(dsn)
    with psycopg.connect(dsn) as conn:
        assert _columns(conn, "pgsearch.v_label_counts") == [
            "dataset",
            "asset_id",
            "filename",
            "label",
            "count",
            "dataset_id",
        ]


def test_objects_a_release_removed_are_dropped(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION pgsearch.gone() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("CREATE VIEW pgsearch.v_gone AS SELECT 1 AS one")
    _forget_objects(dsn)
    _upgrade(dsn)
    with psycopg.connect(dsn) as conn:
        assert _one(conn, "SELECT to_regprocedure('pgsearch.gone()')") is None
        assert _one(conn, "SELECT to_regclass('pgsearch.v_gone')") is None


def test_downgrade_says_what_it_supports(dsn: str) -> None:
    with pytest.raises(SchemaError, match=r"0001.*squashed.*base"):
        migrate.downgrade(dsn, "0001")
    with psycopg.connect(dsn) as conn:
        assert migrate.is_current(migrate.schema_state(conn))


# -- one file per object, every COMMENT there and true ------------------------------------------


def test_every_object_has_one_file_and_every_file_one_object(conn: psycopg.Connection) -> None:
    on_disk = sorted(str(p.relative_to(objects.HERE)) for p in objects.HERE.glob("*/*.sql"))
    assert sorted(objects.OBJECT_FILES) == on_disk
    assert len(set(objects.OBJECT_FILES)) == len(objects.OBJECT_FILES)
    functions = [
        r[0]
        for r in conn.execute("SELECT proname FROM pg_proc WHERE pronamespace = 'pgsearch'::regnamespace")
    ]
    assert len(functions) == len(set(functions)), "overloaded pgsearch functions"
    assert set(functions) == objects.function_names()
    views = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'pgsearch'")}
    assert views == objects.view_names()
    for path in objects.OBJECT_FILES:
        kind, name = Path(path).parent.name, Path(path).stem
        text = objects.object_text(path)
        made = re.findall(r"CREATE OR REPLACE (FUNCTION|VIEW) pgsearch\.(\w+)", text)
        assert made == [("VIEW" if kind == "views" else "FUNCTION", name)], path
        assert not re.search(r"^CREATE (FUNCTION|VIEW|TRIGGER)", text, re.M), f"{path}: not CREATE OR REPLACE"
    # Each trigger runs the function of its file; each trigger file's function runs a trigger.
    triggers = conn.execute(
        "SELECT t.tgname, c.relname, p.proname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE c.relnamespace = 'pgsearch'::regnamespace AND NOT t.tgisinternal"
    ).fetchall()
    trigger_files = {Path(p).stem for p in objects.OBJECT_FILES if p.startswith("triggers/")}
    assert {function for _, _, function in triggers} == trigger_files
    for trigger, _, function in triggers:
        assert f"TRIGGER {trigger} " in objects.object_text(f"triggers/{function}.sql"), trigger


def test_every_view_and_function_has_a_comment(conn: psycopg.Connection) -> None:
    undocumented = conn.execute(
        """SELECT 'view ' || c.relname FROM pg_class AS c
            WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'v'
              AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''
           UNION ALL
           SELECT 'function ' || p.proname FROM pg_proc AS p
            WHERE p.pronamespace = 'pgsearch'::regnamespace
              AND coalesce(obj_description(p.oid, 'pg_proc'), '') = ''"""
    ).fetchall()
    assert undocumented == []


DIM = 16


@pytest.fixture
def loaded(conn: psycopg.Connection) -> dict[str, int]:
    """2,000 assets and 2,000 shapes with random vectors behind HNSW indexes, analysed: enough rows
    that the planner takes the index for a k-nearest query."""
    dataset = _one(conn, "INSERT INTO pgsearch.datasets (name) VALUES ('big') RETURNING id")
    model = _one(
        conn, "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('m', %s) RETURNING id", (DIM,)
    )
    label = _one(
        conn, "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, 'thing') RETURNING id", (dataset,)
    )
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename) SELECT %s, 'a' || i || '.jpg' FROM generate_series(1, 2000) i",
        (dataset,),
    )
    conn.execute(
        "INSERT INTO pgsearch.shapes (dataset_id, asset_id, label_id, kind)"
        " SELECT %s, a.id, %s, 'tag' FROM pgsearch.assets a WHERE a.dataset_id = %s",
        (dataset, label, dataset),
    )
    out = {"dataset": dataset}
    for target, table in (("asset", "assets"), ("shape", "shapes")):
        space = _one(conn, "SELECT pgsearch.ensure_embedding_space(%s, %s, %s)", (dataset, model, target))
        conn.execute(
            sql.SQL(
                "INSERT INTO pgsearch.{} (space_id, {}, embedding)"
                " SELECT %s, t.id, ARRAY(SELECT random() - 0.5 FROM generate_series(1, %s) WHERE t.id > 0)::halfvec"
                " FROM pgsearch.{} t WHERE t.dataset_id = %s"
            ).format(
                sql.Identifier(f"{target}_embeddings"), sql.Identifier(f"{target}_id"), sql.Identifier(table)
            ),
            (space, DIM, dataset),
        )
        conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
        conn.execute(sql.SQL("ANALYZE pgsearch.{}").format(sql.Identifier(f"{target}_embeddings_{space}")))
        out[target] = space
        out[f"{target}_item"] = _one(
            conn, sql.SQL("SELECT min(id) FROM pgsearch.{}").format(sql.Identifier(table))
        )
    conn.commit()
    return out


def test_search_function_comments_say_what_the_plan_does(
    conn: psycopg.Connection, loaded: dict[str, int]
) -> None:
    """A search function whose COMMENT says HNSW scans the space's HNSW index; one that says exact
    reads the partition without it."""
    query = "[" + ",".join(["0.1"] * DIM) + "]"
    calls = {
        "similar_assets": ("asset", "SELECT * FROM pgsearch.similar_assets(%s, 10)", loaded["asset_item"]),
        "dissimilar_assets": (
            "asset",
            "SELECT * FROM pgsearch.dissimilar_assets(%s, 10)",
            loaded["asset_item"],
        ),
        "similar_shapes": ("shape", "SELECT * FROM pgsearch.similar_shapes(%s, 10)", loaded["shape_item"]),
        "dissimilar_shapes": (
            "shape",
            "SELECT * FROM pgsearch.dissimilar_shapes(%s, 10)",
            loaded["shape_item"],
        ),
        "search_assets": ("asset", "SELECT * FROM pgsearch.search_assets('big', %s::vector, 10)", query),
        "search_shapes": ("shape", "SELECT * FROM pgsearch.search_shapes('big', %s::vector, 10)", query),
    }
    assert set(calls) == set(roles.READER_FUNCTIONS)
    for name, (target, call, argument) in calls.items():
        comment = _one(conn, "SELECT obj_description(%s::regproc::oid, 'pg_proc')", (f"pgsearch.{name}",))
        says_hnsw, says_exact = "HNSW" in comment, "exact scan" in comment
        assert says_hnsw != says_exact, f"{name}: the COMMENT must say HNSW index or exact scan: {comment}"
        partition = f"pgsearch.{target}_embeddings_{loaded[target]}"
        counters = "SELECT pg_stat_get_xact_numscans(%s::regclass), pg_stat_get_xact_numscans(%s::regclass)"
        with conn.transaction():
            index_before, table_before = conn.execute(counters, (partition + "_hnsw", partition)).fetchone()  # type: ignore[misc]
            assert len(conn.execute(call, (argument,)).fetchall()) == 10
            index_after, table_after = conn.execute(counters, (partition + "_hnsw", partition)).fetchone()  # type: ignore[misc]
        if says_hnsw:
            assert index_after > index_before, f"{name} says HNSW but did not scan {partition}_hnsw"
        else:
            assert index_after == index_before, f"{name} says exact but scanned {partition}_hnsw"
            assert table_after > table_before, f"{name} says exact but did not read {partition}"
