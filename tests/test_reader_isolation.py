"""Per-dataset readers (`pgsearch db grant-reader NAME --dataset D`): the database itself shows a
reader of dataset A none of dataset B, through every view, every function it may call, every table
and partition it may read, and every error message.

Nothing here is a list of pgsearch's objects: the views, functions, tables and partitions are read
from pg_catalog, so one added later is checked without touching this file. A function whose
argument type this file cannot make a value for fails the test, naming it.

Two datasets are loaded with the pixels model (COCO boxes, groups, shape embeddings), then given a
neighbour graph, outlier, mislabel and duplicate results and a map, so every table has rows of both.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import as_role
from imagegen import make_coco, make_folder
from psycopg import sql

from pgsearch import db as database
from pgsearch.cli import cli

A, B = "alpha_ds", "bravo_secret"
# Names only B's rows carry: none may reach a reader of A.
B_MARKERS = (B, "bravo_lbl_", "bravo_grp", "bravo_img")
PASSWORD = "reader-pass"


def _load(
    url: str, root: Path, dataset: str, prefix: str, labels: tuple[str, ...], group: str, seed: int
) -> None:
    from pgsearch.loader.pipeline import LoadOptions, load_folder

    images = root / dataset
    folder = make_folder(images, count=12, seed=seed, subfolders=(prefix,))
    first = folder.images[0].filename
    (images / first).with_name("copy_" + Path(first).name).write_bytes((images / first).read_bytes())
    coco = root / f"{dataset}.json"
    make_coco(folder, coco, labels=labels, per_image=2, kinds=("bbox",), seed=seed)
    with database.connect(url) as conn:
        load_folder(
            conn,
            LoadOptions(
                root=str(images),
                dataset=dataset,
                annotations=str(coco),
                format="coco",
                model="pixels",
                groups=[group],
                workers=0,
            ),
        )


@pytest.fixture(scope="module")
def world(
    server_url: str, template_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE pgsearch_template").format(sql.Identifier(name)))
    url = server_url.rsplit("/", 1)[0] + "/" + name
    root = tmp_path_factory.mktemp("isolation")
    _load(url, root, A, "alpha_img", ("alpha_cat", "alpha_dog"), "alpha_grp", seed=1)
    _load(url, root, B, "bravo_img", ("bravo_lbl_cat", "bravo_lbl_dog"), "bravo_grp", seed=2)
    runner = CliRunner()
    for dataset in (A, B):
        for args in (
            ["neighbors", "-d", dataset],
            ["outliers", "-d", dataset, "-f", "json"],
            ["mislabels", "-d", dataset, "-f", "json"],
            ["duplicates", "-d", dataset, "-f", "json"],
            ["outliers", "-d", dataset, "--shapes", "-f", "json"],
            ["map", "-d", dataset],
        ):
            result = runner.invoke(cli, [*args, "--dsn", url])
            assert result.exit_code == 0, (args, result.output)
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    everyone = f"reader_all_{uuid.uuid4().hex[:8]}"
    result = runner.invoke(
        cli, ["db", "grant-reader", reader, "--password", PASSWORD, "--dataset", A, "--dsn", url]
    )
    assert result.exit_code == 0, result.output
    assert f"sees only datasets: {A}" in result.output
    result = runner.invoke(cli, ["db", "grant-reader", everyone, "--password", PASSWORD, "--dsn", url])
    assert result.exit_code == 0, result.output
    assert "sees every dataset" in result.output
    with psycopg.connect(url, autocommit=True) as conn:
        ids = _ids(conn)
    yield {"url": url, "reader": reader, "everyone": everyone, "ids": ids, "root": root}
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        for role in (reader, everyone):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _ids(conn: psycopg.Connection) -> dict[str, dict[str, list[Any]]]:
    """Per dataset: its ids of each kind, as the superuser sees them."""
    out: dict[str, dict[str, list[Any]]] = {}
    for dataset in (A, B):
        (did,) = conn.execute("SELECT id FROM pgsearch.datasets WHERE name = %s", (dataset,)).fetchone()  # type: ignore[misc]
        q = {
            "dataset": "SELECT id FROM pgsearch.datasets WHERE id = %s",
            "asset": "SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY id",
            "shape": "SELECT id FROM pgsearch.shapes WHERE dataset_id = %s ORDER BY id",
            "label": "SELECT id FROM pgsearch.labels WHERE dataset_id = %s ORDER BY id",
            "space": "SELECT id FROM pgsearch.embedding_spaces WHERE dataset_id = %s ORDER BY target, id",
            "run": "SELECT id FROM pgsearch.projection_runs WHERE dataset_id = %s"
            " UNION ALL SELECT id FROM pgsearch.curation_runs WHERE dataset_id = %s ORDER BY 1",
            "space_row": "SELECT s::text FROM pgsearch.embedding_spaces AS s WHERE dataset_id = %s ORDER BY target",
            "dim": "SELECT dim FROM pgsearch.embedding_spaces WHERE dataset_id = %s ORDER BY target",
            "partition": "SELECT table_name FROM pgsearch.embedding_spaces WHERE dataset_id = %s",
        }
        out[dataset] = {
            kind: [row[0] for row in conn.execute(query, (did,) * query.count("%s"))]  # type: ignore[arg-type]
            for kind, query in q.items()
        }
        assert all(out[dataset][kind] for kind in ("asset", "shape", "space", "run")), out[dataset]
    return out


def _reader(world: dict[str, Any], role: str | None = None) -> psycopg.Connection:
    return psycopg.connect(as_role(world["url"], role or world["reader"], PASSWORD))


def _leaks(text: str, allow: tuple[str, ...] = ()) -> list[str]:
    return [m for m in B_MARKERS if m in text and m not in allow]


# -- views ----------------------------------------------------------------------------------------


def _views(conn: psycopg.Connection, role: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_class AS c WHERE c.relnamespace = 'pgsearch'::regnamespace"
            " AND c.relkind IN ('v', 'm') AND has_table_privilege(%s, c.oid, 'SELECT') ORDER BY 1",
            (role,),
        )
    ]


def _rows(conn: psycopg.Connection, relation: str) -> list[str]:
    cur = conn.execute(sql.SQL("SELECT * FROM pgsearch.{}").format(sql.Identifier(relation)))
    return sorted(repr(row) for row in cur.fetchall())


def test_every_view_shows_a_reader_what_it_shows_the_owner_without_the_other_dataset(
    world: dict[str, Any],
) -> None:
    """The oracle: the owner's rows of each view once B is dropped (in a transaction rolled back)."""
    with psycopg.connect(world["url"]) as owner, _reader(world) as reader:
        views = _views(owner, world["reader"])
        assert len(views) >= 10, views  # every pgsearch view is granted
        with_b = {view: _rows(owner, view) for view in views}
        owner.execute("SELECT pgsearch.drop_dataset(%s)", (B,))
        expected = {view: _rows(owner, view) for view in views}
        owner.rollback()
        for view in views:
            got = _rows(reader, view)
            assert got == expected[view], view
            assert not _leaks("".join(got)), view
            reader.rollback()
        # Not vacuous: B's rows are there for the owner, A's for the reader.
        assert any(len(with_b[v]) > len(expected[v]) for v in views)
        assert sum(len(expected[v]) for v in views) > 0
    with _reader(world, world["everyone"]) as everyone:
        for view in views:
            assert _rows(everyone, view) == with_b[view], view
            everyone.rollback()


# -- functions ------------------------------------------------------------------------------------


def _functions(conn: psycopg.Connection, role: str) -> list[tuple[str, str, list[str], list[str]]]:
    """(name, regprocedure, argument names, argument types) of every function `role` may run."""
    return [
        (row[0], row[1], list(row[2] or []), list(row[3]))
        for row in conn.execute(
            "SELECT p.proname, p.oid::regprocedure::text, p.proargnames[1:p.pronargs],"
            " ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i) ORDER BY i)"
            " FROM pg_proc AS p WHERE p.pronamespace = 'pgsearch'::regnamespace AND p.prokind = 'f'"
            " AND p.prorettype <> 'trigger'::regtype AND has_function_privilege(%s, p.oid, 'EXECUTE')"
            " AND NOT EXISTS (SELECT FROM pg_depend AS d WHERE d.classid = 'pg_proc'::regclass"
            "                  AND d.objid = p.oid AND d.deptype = 'e')"
            " ORDER BY 1",
            (role,),
        )
    ]


def _argument_sets(ids: dict[str, list[Any]], names: list[str], types: list[str]) -> list[list[Any]]:
    """Calls of a function with one dataset's ids and names: one call per kind of id for bigint
    arguments (an asset's, a shape's, a space's, ...), so each is tried with every kind of B's."""
    kinds = ["asset", "shape", "space", "dataset", "run", "label"]
    calls: list[list[Any]] = []
    for kind_index, kind in enumerate(kinds):
        args: list[Any] = []
        for position, (name, kind_of_type) in enumerate(zip(names or [""] * len(types), types, strict=True)):
            name = name.lower()
            if kind_of_type == "bigint":
                values = ids[kind] or ids["asset"]
                args.append(values[position % len(values)] if kind_index else values[0])
            elif kind_of_type == "bigint[]":
                args.append(ids[kind] or ids["asset"])
            elif kind_of_type == "text":
                if "target" in name:
                    args.append("shape" if kind == "shape" else "asset")
                elif "model" in name:
                    args.append(None)
                elif "label" in name or name in ("old", "new", "p_old", "p_new", "old_name", "new_name"):
                    args.append("bravo_lbl_cat" if B in ids["_name"] else "alpha_cat")
                else:
                    args.append(ids["_name"][0])
            elif kind_of_type == "text[]":
                args.append([ids["_name"][0]])
            elif kind_of_type == "integer":
                args.append(5)
            elif kind_of_type == "boolean":
                args.append(kind_index % 2 == 1)
            elif kind_of_type in ("vector", "halfvec"):
                dim = ids["dim"][1 if kind == "shape" and len(ids["dim"]) > 1 else 0]
                args.append(
                    sql.SQL("{}::{}").format(
                        sql.Literal("[" + ",".join(["0.5"] * dim) + "]"), sql.SQL(kind_of_type)
                    )
                )
            elif kind_of_type == "pgsearch.embedding_spaces":
                rows = ids["space_row"]
                args.append(
                    sql.SQL("{}::pgsearch.embedding_spaces").format(
                        sql.Literal(rows[min(kind_index % 2, len(rows) - 1)])
                    )
                )
            else:
                raise AssertionError(f"no value for an argument of type {kind_of_type}: teach _argument_sets")
        calls.append(args)
    return calls


def _call(
    conn: psycopg.Connection, name: str, args: list[Any]
) -> tuple[list[str], list[tuple[Any, ...]], str | None]:
    values = [a if isinstance(a, sql.Composable) else sql.Literal(a) for a in args]
    statement = sql.SQL("SELECT * FROM pgsearch.{}({})").format(
        sql.Identifier(name), sql.SQL(", ").join(values)
    )
    try:
        cur = conn.execute(statement)
        rows = cur.fetchall()
        columns = [c.name for c in cur.description or []]
        return columns, rows, None
    except psycopg.Error as exc:
        diag = exc.diag
        text = " | ".join(filter(None, [str(exc), diag.message_detail, diag.message_hint, diag.context]))
        return [], [], text
    finally:
        conn.rollback()


def test_every_function_a_reader_may_call_gives_nothing_of_the_other_dataset(world: dict[str, Any]) -> None:
    ids = world["ids"]
    b = {**ids[B], "_name": [B]}
    a = {**ids[A], "_name": [A]}
    b_items = {"asset_id": set(ids[B]["asset"]), "shape_id": set(ids[B]["shape"])}
    a_answered: set[str] = set()
    with psycopg.connect(world["url"], autocommit=True) as owner:
        functions = _functions(owner, world["reader"])
        counts = owner.execute("SELECT count(*) FROM pgsearch.assets").fetchone()
    names = {f[0] for f in functions}
    assert {"similar_assets", "search_assets", "similar_shapes", "search_shapes"} <= names, names
    with _reader(world) as reader:
        for name, signature, arg_names, types in functions:
            for args in _argument_sets(b, arg_names, types):
                columns, rows, error = _call(reader, name, args)
                given_name = (B,) if B in args else ()
                if error is not None:
                    assert not _leaks(error, allow=given_name), (signature, args, error)
                    # A distance is a number with a fraction; B's ids are numbers too, so only fractions.
                    assert not re.search(r"\d\.\d{4,}", error), (signature, error)
                for row in rows:
                    assert not _leaks(repr(row)), (signature, row)
                    for column, value in zip(columns, row, strict=True):
                        assert value not in b_items.get(column, ()), (signature, column, value)
                if name in (
                    "similar_assets",
                    "similar_shapes",
                    "dissimilar_assets",
                    "dissimilar_shapes",
                    "search_assets",
                    "search_shapes",
                    "nearest_in_space",
                    "item_embedding",
                ):
                    assert not rows or all(
                        v not in b_items.get(c, ()) for c, v in zip(columns, rows[0], strict=True)
                    ), signature
            # The same calls with A's ids answer: the checks above are not vacuous.
            for args in _argument_sets(a, arg_names, types):
                _, rows, error = _call(reader, name, args)
                if rows:
                    a_answered.add(name)
    assert {
        "similar_assets",
        "dissimilar_assets",
        "similar_shapes",
        "search_assets",
        "search_shapes",
    } <= a_answered
    with psycopg.connect(world["url"], autocommit=True) as owner:
        assert owner.execute("SELECT count(*) FROM pgsearch.assets").fetchone() == counts  # nothing written


# -- tables and partitions ------------------------------------------------------------------------


def test_every_table_and_partition_a_reader_may_read_holds_none_of_the_other_dataset(
    world: dict[str, Any],
) -> None:
    ids = world["ids"]
    b_ids = {
        "dataset_id": set(ids[B]["dataset"]),
        "space_id": set(ids[B]["space"]),
        "asset_id": set(ids[B]["asset"]),
        "shape_id": set(ids[B]["shape"]),
        "run_id": set(ids[B]["run"]),
        "label_id": set(ids[B]["label"]),
    }
    with psycopg.connect(world["url"], autocommit=True) as owner:
        relations = owner.execute(
            "SELECT c.relname, c.relkind, c.relispartition, c.relrowsecurity,"
            " has_table_privilege(%s, c.oid, 'SELECT')"
            " FROM pg_class AS c WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind IN ('r', 'p')"
            " ORDER BY 1",
            (world["reader"],),
        ).fetchall()
        with_dataset = {
            row[0]
            for row in owner.execute(
                "SELECT DISTINCT c.relname FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid"
                " WHERE c.relnamespace = 'pgsearch'::regnamespace AND a.attname IN ('dataset_id', 'space_id', 'run_id')"
                " AND NOT a.attisdropped"
            )
        }
    readable = [r for r in relations if r[4]]
    assert any(r[2] for r in readable), "an embedding partition is readable (the translator names them)"
    with _reader(world) as reader:
        for name, _kind, is_partition, secured, _ in readable:
            # Whatever holds a dataset's rows is behind row-level security.
            if name in with_dataset:
                assert secured, name
            assert not is_partition or secured, name
            cur = reader.execute(sql.SQL("SELECT * FROM pgsearch.{}").format(sql.Identifier(name)))
            columns = [c.name for c in cur.description or []]
            for row in cur.fetchall():
                assert not _leaks(repr(row)), (name, row)
                for column, value in zip(columns, row, strict=True):
                    assert value not in b_ids.get(column, ()), (name, column, value)
            reader.rollback()
        for partition in ids[B]["partition"]:
            rows = reader.execute(
                sql.SQL("SELECT count(*) FROM pgsearch.{}").format(sql.Identifier(partition))
            )
            assert rows.fetchone() == (0,), partition
            reader.rollback()
        for name, _kind, is_partition, _secured, may_read in relations:
            if is_partition and not may_read:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(sql.SQL("SELECT * FROM pgsearch.{}").format(sql.Identifier(name)))
                reader.rollback()


def test_a_space_made_after_the_grant_is_guarded_and_granted(world: dict[str, Any]) -> None:
    """ensure_embedding_space gives a new partition its policy and the readers' grant."""
    with psycopg.connect(world["url"]) as owner:
        model = owner.execute(
            "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('iso-test', 3) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        space = owner.execute(
            "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (world["ids"][B]["dataset"][0], model)
        ).fetchone()[0]  # type: ignore[index]
        owner.execute(
            "INSERT INTO pgsearch.asset_embeddings (space_id, asset_id, embedding) VALUES (%s, %s, '[1,2,3]')",
            (space, world["ids"][B]["asset"][0]),
        )
        owner.commit()
        try:
            with _reader(world) as reader:
                count = reader.execute(
                    sql.SQL("SELECT count(*) FROM pgsearch.{}").format(
                        sql.Identifier(f"asset_embeddings_{space}")
                    )
                ).fetchone()
                assert count == (0,)
            with _reader(world, world["everyone"]) as everyone:
                count = everyone.execute(
                    sql.SQL("SELECT count(*) FROM pgsearch.{}").format(
                        sql.Identifier(f"asset_embeddings_{space}")
                    )
                ).fetchone()
                assert count == (1,)
        finally:
            owner.execute("SELECT pgsearch.drop_embedding_space(%s)", (space,))
            owner.execute("DELETE FROM pgsearch.embedding_models WHERE id = %s", (model,))
            owner.commit()


def test_grant_reader_again_replaces_the_datasets_and_refuses_an_unknown_one(world: dict[str, Any]) -> None:
    runner = CliRunner()
    role = f"reader_x_{uuid.uuid4().hex[:6]}"
    try:
        result = runner.invoke(cli, ["db", "grant-reader", role, "--dataset", "nope", "--dsn", world["url"]])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "dataset 'nope' does not exist" in result.output
        for dataset, seen in ((B, B), (A, A)):
            result = runner.invoke(
                cli,
                [
                    "db",
                    "grant-reader",
                    role,
                    "--password",
                    PASSWORD,
                    "--dataset",
                    dataset,
                    "--dsn",
                    world["url"],
                ],
            )
            assert result.exit_code == 0, result.output
            with _reader(world, role) as reader:
                assert reader.execute("SELECT name FROM pgsearch.datasets").fetchall() == [(seen,)]
    finally:
        with psycopg.connect(world["url"], autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            owner.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- pgsearch under a reader's DSN ----------------------------------------------------------------


def test_pgsearch_reads_under_a_readers_dsn(world: dict[str, Any]) -> None:
    import json

    import pgsearch

    reader_dsn = as_role(world["url"], world["reader"], PASSWORD)
    runner = CliRunner()
    result = runner.invoke(cli, ["query", "-d", A, "-f", "json", "--limit", "100", "--dsn", reader_dsn])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 13
    result = runner.invoke(
        cli, ["query", "-d", A, "--similar-to", "alpha_img/img_0001.jpg", "-f", "json", "--dsn", reader_dsn]
    )
    assert result.exit_code == 0, result.output
    assert all(row["filename"].startswith(("alpha_img/", "copy_")) for row in json.loads(result.stdout))
    result = runner.invoke(cli, ["translate", '"alpha_grp" in groups', "-d", A, "--dsn", reader_dsn])
    assert result.exit_code == 0 and "SELECT" in result.output, result.output
    result = runner.invoke(cli, ["status", "-d", A, "--dsn", reader_dsn])
    assert result.exit_code == 0, result.output
    # B is not there for this reader: the message names no row of B.
    result = runner.invoke(cli, ["query", "-d", B, "--dsn", reader_dsn])
    assert result.exit_code == 1 and result.output.startswith("Error:"), result.output
    assert "Traceback" not in result.output and not _leaks(result.output, allow=(B,))
    assert A in result.output  # the datasets it may see are listed, B is not
    with pgsearch.connect(reader_dsn) as client:
        assert len(client.query(dataset=A, limit=100)) == 13
        with pytest.raises(pgsearch.errors.PgsearchError) as found:
            client.query(dataset=B)
        assert not _leaks(str(found.value), allow=(B,))


def test_a_write_under_a_readers_dsn_says_it_needs_a_writer(world: dict[str, Any]) -> None:
    import pgsearch
    from pgsearch.errors import WriterRequired

    reader_dsn = as_role(world["url"], world["reader"], PASSWORD)
    runner = CliRunner()
    for args in (
        ["load", str(world["root"] / A), "-d", A, "--model", "pixels", "--workers", "0", "-q"],
        ["load", str(world["root"] / A), "-d", "new_one", "--model", "pixels", "--workers", "0", "-q"],
        ["embed", "-d", A, "--model", "pixels", "--drop"],
        ["outliers", "-d", A, "--recompute", "-f", "json"],
    ):
        result = runner.invoke(cli, [*args, "--dsn", reader_dsn])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and "needs a writer role" in result.output, (
            args,
            result.output,
        )
        assert "Traceback" not in result.output
    with pgsearch.connect(reader_dsn) as client:
        asset = client.query(dataset=A, limit=1)[0]
        with pytest.raises(WriterRequired, match="needs a writer role"):
            client.add_to_group(A, [asset["id"]], "mine")
    with psycopg.connect(world["url"], autocommit=True) as owner:
        assert owner.execute("SELECT count(*) FROM pgsearch.datasets").fetchone() == (2,)
        assert owner.execute(
            "SELECT count(*) FROM pgsearch.group_members WHERE name = 'mine'"
        ).fetchone() == (0,)


def test_a_reader_made_before_0010_keeps_reading_every_dataset(dsn: str) -> None:
    """Upgrading from 0009: a reader grant-reader made then (the views and the search functions,
    which ran as their owner) still reads through the views, which now read as the caller."""
    import importlib

    from pgsearch import migrate, roles

    revision = importlib.import_module("pgsearch.migrations.versions.0010_reader_datasets")
    role = f"reader_old_{uuid.uuid4().hex[:6]}"
    ident = sql.Identifier(role)
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("INSERT INTO pgsearch.datasets (name) VALUES ('one'), ('two')")
        owner.execute(
            "INSERT INTO pgsearch.assets (dataset_id, filename) SELECT id, 'x.jpg' FROM pgsearch.datasets"
        )
        # The database at 0009 with this release's objects, and a reader as grant-reader made it.
        migrate.run_sql(owner, revision.DOWNGRADE)
        owner.execute("UPDATE pgsearch.alembic_version SET version_num = '0009'")
        owner.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(PASSWORD)))
        owner.execute(sql.SQL("GRANT USAGE ON SCHEMA pgsearch TO {}").format(ident))
        owner.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA pgsearch TO {}").format(ident))
        owner.execute(
            sql.SQL("REVOKE SELECT ON {} FROM {}").format(
                sql.SQL(", ").join(
                    sql.Identifier("pgsearch", r[0])
                    for r in owner.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'pgsearch'")
                ),
                ident,
            )
        )
        for name in roles.READER_FUNCTIONS:
            owner.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION pgsearch.{} TO {}").format(sql.Identifier(name), ident)
            )
    try:
        migrate.upgrade(dsn)
        with psycopg.connect(as_role(dsn, role, PASSWORD), autocommit=True) as reader:
            assert reader.execute("SELECT count(*) FROM pgsearch.v_assets").fetchone() == (2,)
            assert reader.execute("SELECT count(*) FROM pgsearch.datasets").fetchone() == (2,)
            assert reader.execute("SELECT dataset_id FROM pgsearch.reader_datasets").fetchall() == [(None,)]
    finally:
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            owner.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))


def test_a_member_of_a_reader_role_is_restricted_like_it(world: dict[str, Any]) -> None:
    """`GRANT reader_a TO alice` (a group role for a BI tool): alice inherits the reader's grants
    and its restriction; being unlisted herself does not make her see every dataset."""
    alice = f"member_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(world["url"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(alice), sql.Literal(PASSWORD), sql.Identifier(world["reader"])
            )
        )
    try:
        with psycopg.connect(as_role(world["url"], alice, PASSWORD)) as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM pgsearch.datasets")}
            assert names == {A}
            assert conn.execute("SELECT count(DISTINCT dataset) FROM pgsearch.v_assets").fetchone() == (1,)
            listed = {r[0] for r in conn.execute("SELECT role_name FROM pgsearch.reader_datasets")}
            assert listed == {world["reader"]}
    finally:
        with psycopg.connect(world["url"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(alice)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(alice)))
