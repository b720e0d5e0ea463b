"""`pgsearch index`: indexes on metadata / attributes fields that the translator's filters use."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from pgsearch.catalog import load_catalog
from pgsearch.cli import cli
from pgsearch.errors import NotFound
from pgsearch.indexes import FieldIndexError, add_index, drop_index, list_indexes
from pgsearch.translator import compile_query

N = 3000


def _fill(conn: psycopg.Connection) -> int:
    dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('m') RETURNING id").fetchone()[0]
    with conn.cursor().copy("COPY pgsearch.assets (dataset_id, filename, metadata) FROM STDIN") as copy:
        for i in range(N):
            meta: dict[str, object] = {"bucket": i % 1000, "camera": f"cam{i % 7}", "nested": {"iso": i % 50}}
            if i % 100 == 0:
                meta["bucket"] = "unknown"  # a string among numbers: the kind is still "number"
            copy.write_row((dataset, f"{i:05d}.jpg", json.dumps(meta)))
    conn.commit()
    return int(dataset)


def _ids(conn: psycopg.Connection, text: str) -> list[int]:
    compiled = compile_query(text, load_catalog(conn, "m"), limit=N)
    return [r[0] for r in conn.execute(compiled.sql, compiled.params)]


def _plan(conn: psycopg.Connection, text: str) -> str:
    compiled = compile_query(text, load_catalog(conn, "m"), limit=10)
    # A small table: without these the planner may rightly walk the primary key instead.
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_indexscan = off")
    return "\n".join(r[0] for r in conn.execute("EXPLAIN " + compiled.sql, compiled.params))


@pytest.mark.parametrize(
    "query",
    ["metadata.bucket == 7", "metadata.bucket < 3", 'metadata.camera == "cam3" and metadata.bucket > 990'],
)
def test_index_serves_the_filter_and_changes_no_answer(conn, query) -> None:  # type: ignore[no-untyped-def]
    _fill(conn)
    before = _ids(conn, query)
    made = add_index(conn, "metadata.bucket")
    assert (made.field, made.kind, made.table) == ("metadata.bucket", "number", "assets")
    plan = _plan(conn, query)
    assert made.name in plan, plan
    assert _ids(conn, query) == before


def test_kinds_are_guessed_listed_and_dropped(conn) -> None:  # type: ignore[no-untyped-def]
    _fill(conn)
    assert add_index(conn, "metadata.camera").kind == "string"
    assert add_index(conn, "metadata.nested.iso").kind == "number"
    assert add_index(conn, "metadata.bucket", "string").kind == "string"  # as asked
    listed = {(i.field, i.kind) for i in list_indexes(conn)}
    assert listed == {
        ("metadata.camera", "string"),
        ("metadata.nested.iso", "number"),
        ("metadata.bucket", "string"),
    }
    assert [i for i in list_indexes(conn) if i.field == "metadata.nested.iso"][0].name in _plan(
        conn, "metadata.nested.iso >= 49"
    )
    again = add_index(conn, "metadata.camera")  # idempotent
    assert len(list_indexes(conn)) == 3 and again.kind == "string"
    assert [i.field for i in drop_index(conn, "metadata.camera")] == ["metadata.camera"]
    assert {i.field for i in list_indexes(conn)} == {"metadata.nested.iso", "metadata.bucket"}


def test_bad_fields_say_what_is_wrong(conn) -> None:  # type: ignore[no-untyped-def]
    _fill(conn)
    with pytest.raises(FieldIndexError, match="not a metadata.KEY or attributes.KEY"):
        add_index(conn, "width")
    with pytest.raises(FieldIndexError, match="name a field"):
        add_index(conn, "  ")
    with pytest.raises(FieldIndexError, match="cannot index"):
        add_index(conn, "metadata.bucket <")
    with pytest.raises(NotFound, match="no row has"):
        add_index(conn, "metadata.nowhere")
    with pytest.raises(NotFound, match="indexed fields: none"):
        drop_index(conn, "metadata.bucket")
    assert list_indexes(conn) == []


def test_cli_add_list_drop(dsn) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(dsn) as c:
        _fill(c)
    runner = CliRunner()
    added = runner.invoke(cli, ["index", "add", "metadata.bucket", "metadata.camera"])
    assert added.exit_code == 0, added.output
    assert "metadata.bucket (number)" in added.stdout and "metadata.camera (string)" in added.stdout
    listed = runner.invoke(cli, ["index", "list"])
    assert listed.exit_code == 0 and listed.stdout.count("metadata.") == 2
    bad = runner.invoke(cli, ["index", "add", "metadata.nowhere"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output and "metadata.nowhere" in bad.output
    dropped = runner.invoke(cli, ["index", "drop", "metadata.bucket", "--as", "number"])
    assert dropped.exit_code == 0 and "dropped" in dropped.stdout
    missing = runner.invoke(cli, ["index", "drop", "metadata.bucket"])
    assert missing.exit_code == 1 and "indexed fields: metadata.camera" in missing.output


# Each query with its answer computed in Python from _fill's rows.
def _meta(i: int) -> dict[str, object]:
    meta: dict[str, object] = {"bucket": i % 1000, "camera": f"cam{i % 7}", "nested": {"iso": i % 50}}
    if i % 100 == 0:
        meta["bucket"] = "unknown"
    return meta


def _num(value: object) -> float | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None  # type: ignore[return-value]


COLUMN_QUERIES = {
    "metadata.bucket == 7": lambda m: _num(m["bucket"]) == 7,
    "metadata.bucket in (1, 2, 995)": lambda m: _num(m["bucket"]) in (1, 2, 995),
    "metadata.bucket + 1 > 999": lambda m: (_num(m["bucket"]) or -10) + 1 > 999,
    "not metadata.bucket < 990": lambda m: not ((b := _num(m["bucket"])) is not None and b < 990),
    'metadata.camera >= "cam5"': lambda m: m["camera"] >= "cam5",
    'metadata.camera < "cam1" or metadata.nested.iso == 3': lambda m: (
        m["camera"] < "cam1" or m["nested"]["iso"] == 3
    ),
    'metadata.camera == "cam3" and metadata.bucket > 990': lambda m: (
        m["camera"] == "cam3" and (_num(m["bucket"]) or 0) > 990
    ),
}


def test_filters_read_the_generated_columns(conn) -> None:  # type: ignore[no-untyped-def]
    """After `add`, the translator reads each indexed field's column (no jsonb in the SQL), the
    answers stay those of a plain-Python evaluation, and string ranges are served by the index
    (the column is collated "C", as the translator compares strings)."""
    _fill(conn)
    made = {f: add_index(conn, f) for f in ("metadata.bucket", "metadata.camera", "metadata.nested.iso")}
    assert all(m.column == m.name for m in made.values())
    catalog = load_catalog(conn, "m")
    assert {(f.field, f.kind) for f in catalog.field_columns} == {
        ("metadata.bucket", "number"),
        ("metadata.camera", "string"),
        ("metadata.nested.iso", "number"),
    }
    rows = {i: _meta(i) for i in range(N)}
    by_name = {f"{i:05d}.jpg": i for i in rows}
    for query, expected in COLUMN_QUERIES.items():
        compiled = compile_query(query, catalog, limit=N)
        assert "jsonb_typeof" not in compiled.sql, (query, compiled.sql)
        got = sorted(by_name[r[1]] for r in conn.execute(compiled.sql, compiled.params))
        assert got == sorted(i for i, m in rows.items() if expected(m)), query
    assert made["metadata.camera"].name in _plan(conn, 'metadata.camera >= "cam5"')
    # Columns follow later writes: an edited row and a new row.
    conn.execute(
        "UPDATE pgsearch.assets SET metadata = metadata || '{\"bucket\": 7}' WHERE filename = '00001.jpg'"
    )
    dataset = catalog.dataset_id
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename, metadata) VALUES (%s, 'new.jpg', '{\"bucket\": 7.0}')",
        (dataset,),
    )
    names = {r[1] for r in conn.execute(*_compiled(conn, "metadata.bucket == 7"))}
    assert {"00001.jpg", "new.jpg", "00007.jpg"} <= names


def _compiled(conn: psycopg.Connection, text: str) -> tuple[str, dict[str, object]]:
    compiled = compile_query(text, load_catalog(conn, "m"), limit=N)
    return compiled.sql, compiled.params


def test_drop_removes_the_column_and_add_replaces_an_expression_index(conn) -> None:  # type: ignore[no-untyped-def]
    _fill(conn)
    made = add_index(conn, "metadata.bucket")
    drop_index(conn, "metadata.bucket")
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'assets'"
        )
    }
    assert made.name not in columns
    assert load_catalog(conn, "m").field_columns == ()
    # An index as earlier versions made it: on the expression, its comment naming no column.
    from pgsearch.indexes import COMMENT_PREFIX, field_for, index_name

    legacy = field_for("metadata.bucket", "number")
    conn.execute(
        sql.SQL("CREATE INDEX {} ON pgsearch.assets (dataset_id, ({}))").format(
            sql.Identifier(index_name(legacy)), sql.SQL(legacy.expression)
        )
    )
    conn.execute(
        sql.SQL("COMMENT ON INDEX pgsearch.{} IS {}").format(
            sql.Identifier(index_name(legacy)),
            sql.Literal(COMMENT_PREFIX + json.dumps({"field": "metadata.bucket", "kind": "number"})),
        )
    )
    conn.commit()
    [old] = list_indexes(conn)
    assert old.column is None and load_catalog(conn, "m").field_columns == ()
    before = _ids(conn, "metadata.bucket < 5")
    assert old.name in _plan(conn, "metadata.bucket < 5")  # the expression index still serves
    conn.execute("RESET ALL")
    [new] = [add_index(conn, "metadata.bucket")]
    assert new.column == new.name and len(list_indexes(conn)) == 1
    assert _ids(conn, "metadata.bucket < 5") == before


def test_a_value_too_long_to_index_is_a_clear_error_and_changes_nothing(conn) -> None:  # type: ignore[no-untyped-def]
    _fill(conn)
    random_text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000))  # incompressible
    conn.execute(
        "UPDATE pgsearch.assets SET metadata = metadata || jsonb_build_object('camera', %s::text)"
        " WHERE filename = '00042.jpg'",
        (random_text,),
    )
    conn.commit()
    with pytest.raises(FieldIndexError, match=r"metadata.camera.*00042.jpg.*bytes.*nothing was changed"):
        add_index(conn, "metadata.camera", "string")
    assert list_indexes(conn) == []
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'assets'"
        )
    }
    assert not any(c.startswith("assets_metadata_camera") for c in columns)
    assert _ids(conn, 'metadata.camera == "cam3"')  # filters still work, without the index


def test_loading_a_value_too_long_for_an_indexed_field_says_so(conn, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from imagegen import make_folder

    make_folder(tmp_path / "images", 3)
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    meta = tmp_path / "m.jsonl"
    meta.write_text(json.dumps({"filename": names[0], "metadata": {"camera": "short"}}) + "\n")
    runner = CliRunner()
    load = [
        "load",
        str(tmp_path / "images"),
        "-d",
        "d",
        "--metadata",
        str(meta),
        "--workers",
        "0",
        "--no-embed",
    ]
    first = runner.invoke(cli, load)
    assert first.exit_code == 0, first.output
    add_index(conn, "metadata.camera", "string")
    long_text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000))
    meta.write_text(json.dumps({"filename": names[1], "metadata": {"camera": long_text}}) + "\n")
    second = runner.invoke(cli, load)
    assert second.exit_code == 1 and "Traceback" not in second.output
    assert "too large" in second.output and "pgsearch index list" in second.output, second.output
    kept = conn.execute(
        "SELECT metadata->>'camera' FROM pgsearch.assets WHERE filename = %s", (names[0],)
    ).fetchone()
    assert kept == ("short",)


def test_a_dotted_key_and_a_nested_path_get_their_own_columns(conn) -> None:  # type: ignore[no-untyped-def]
    dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('m') RETURNING id").fetchone()[0]
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename, metadata) VALUES"
        ' (%s, \'flat.jpg\', \'{"a.b": 1, "a": {"b": 5}}\'), (%s, \'deep.jpg\', \'{"a": {"b": 1}}\')',
        (dataset, dataset),
    )
    conn.commit()
    flat = add_index(conn, "metadata.`a.b`", "number")
    deep = add_index(conn, "metadata.a.b", "number")
    assert flat.column != deep.column and (flat.field, deep.field) == ("metadata.`a.b`", "metadata.a.b")
    assert [r[1] for r in conn.execute(*_compiled(conn, "metadata.`a.b` == 1"))] == ["flat.jpg"]
    assert [r[1] for r in conn.execute(*_compiled(conn, "metadata.a.b == 1"))] == ["deep.jpg"]
