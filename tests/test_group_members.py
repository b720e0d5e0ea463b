"""pgsearch.group_members (sql/covering.sql) stays equal to what assets.groups and assets.sketches
say, whatever is done to the assets: COPY, group edits (duplicates and NULLs included), status
edits, vector writes that change the sketches, moves between datasets, deletes, TRUNCATE; and a
"""

from __future__ import annotations

import numpy as np
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgvector import HalfVector

NAMES = ["g1", "G1", "a b", "", "é", None]
DIM = 8

groups_lists = st.lists(st.sampled_from(NAMES), max_size=4)
operation = st.one_of(
    st.tuples(st.just("insert"), st.lists(groups_lists, min_size=1, max_size=5), st.booleans()),
    st.tuples(st.just("set_groups"), st.integers(0, 50), groups_lists),
    st.tuples(st.just("append"), st.integers(0, 50), st.sampled_from(NAMES)),
    st.tuples(st.just("remove"), st.integers(0, 50), st.sampled_from(NAMES)),
    st.tuples(st.just("status"), st.integers(0, 50)),
    st.tuples(st.just("embed"), st.integers(0, 50), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("unembed"), st.integers(0, 50)),
    st.tuples(st.just("move"), st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("truncate")),
    st.tuples(st.just("upsert"), st.integers(0, 50), groups_lists),
    st.tuples(st.just("half"), st.sampled_from(NAMES)),
    st.tuples(st.just("drop_dataset")),
)


def _expected(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT DISTINCT a.dataset_id, g, a.id, a.sketches::text FROM pgsearch.assets AS a, unnest(a.groups) AS g"
        " WHERE g IS NOT NULL ORDER BY 1, 2, 3"
    ).fetchall()


def _actual(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT dataset_id, name, asset_id, sketches::text FROM pgsearch.group_members ORDER BY 1, 2, 3"
    ).fetchall()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=12))
def test_members_follow_the_assets(conn: psycopg.Connection, operations: list[tuple]) -> None:
    conn.execute("TRUNCATE pgsearch.datasets, pgsearch.embedding_models CASCADE")
    datasets = [
        conn.execute("INSERT INTO pgsearch.datasets (name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]
        for name in ("one", "two")
    ]
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('m', %s) RETURNING id", (DIM,)
    ).fetchone()[0]
    space = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (datasets[0], model)
    ).fetchone()[0]
    serial = 0
    for op in operations:
        ids = [r[0] for r in conn.execute("SELECT id FROM pgsearch.assets ORDER BY id")]
        kind = op[0]
        if kind == "insert":
            with conn.cursor().copy("COPY pgsearch.assets (dataset_id, filename, groups) FROM STDIN") as copy:
                for groups in op[1]:
                    serial += 1
                    copy.write_row((datasets[0] if op[2] else datasets[1], f"f{serial}.jpg", groups))
        elif kind == "truncate":
            conn.execute("TRUNCATE pgsearch.assets CASCADE")
        elif kind == "half":  # one UPDATE that changes some rows' groups and leaves the others
            conn.execute(
                "UPDATE pgsearch.assets SET groups = CASE WHEN id %% 2 = 0 THEN array_append(groups, %s)"
                " ELSE groups END",
                (op[1],),
            )
        elif kind == "drop_dataset":  # assets go with their dataset (ON DELETE CASCADE)
            conn.execute("DELETE FROM pgsearch.datasets WHERE id = %s", (datasets[1],))
            datasets[1] = conn.execute(
                "INSERT INTO pgsearch.datasets (name) VALUES (%s) RETURNING id", (f"two{serial}",)
            ).fetchone()[0]
        elif not ids:
            continue
        else:
            asset = ids[op[1] % len(ids)]
            if kind == "set_groups":
                conn.execute("UPDATE pgsearch.assets SET groups = %s::text[] WHERE id = %s", (op[2], asset))
            elif kind == "append":
                conn.execute(
                    "UPDATE pgsearch.assets SET groups = array_append(groups, %s) WHERE id = %s",
                    (op[2], asset),
                )
            elif kind == "remove":
                conn.execute(
                    "UPDATE pgsearch.assets SET groups = array_remove(groups, %s) WHERE id = %s",
                    (op[2], asset),
                )
            elif kind == "status":
                conn.execute("UPDATE pgsearch.assets SET status = 'review' WHERE id = %s", (asset,))
            elif kind == "embed":
                vector = np.random.default_rng(op[2]).normal(size=DIM).astype(np.float32)
                conn.execute(
                    "INSERT INTO pgsearch.asset_embeddings (space_id, asset_id, embedding) VALUES (%s, %s, %s)"
                    " ON CONFLICT (space_id, asset_id) DO UPDATE SET embedding = excluded.embedding",
                    (space, asset, HalfVector(vector)),
                )
            elif kind == "unembed":
                conn.execute("DELETE FROM pgsearch.asset_embeddings WHERE asset_id = %s", (asset,))
            elif kind == "move":
                conn.execute(
                    "UPDATE pgsearch.assets SET dataset_id = CASE WHEN dataset_id = %s THEN %s ELSE %s END"
                    " WHERE id = %s",
                    (datasets[0], datasets[1], datasets[0], asset),
                )
            elif kind == "upsert":
                conn.execute(
                    "INSERT INTO pgsearch.assets (dataset_id, filename, groups)"
                    " SELECT dataset_id, filename, %s::text[] FROM pgsearch.assets WHERE id = %s"
                    " ON CONFLICT (dataset_id, filename) DO UPDATE SET groups = excluded.groups",
                    (op[2], asset),
                )
            elif kind == "delete":
                conn.execute("DELETE FROM pgsearch.assets WHERE id = %s", (asset,))
        assert _actual(conn) == _expected(conn), op
    conn.commit()


def test_refresh_repairs_writes_that_bypassed_the_triggers(conn: psycopg.Connection) -> None:
    dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('r') RETURNING id").fetchone()[0]
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename, groups) VALUES (%s, 'a.jpg', '{x}'), (%s, 'b.jpg', '{y}')",
        (dataset, dataset),
    )
    conn.execute("SET session_replication_role = replica")  # no triggers fire
    conn.execute("UPDATE pgsearch.assets SET groups = '{z}' WHERE filename = 'a.jpg'")
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename, groups) VALUES (%s, 'c.jpg', '{x}')", (dataset,)
    )
    conn.execute("SET session_replication_role = DEFAULT")
    assert _actual(conn) != _expected(conn)
    # A later write through the triggers takes over a row left behind instead of failing.
    conn.execute("UPDATE pgsearch.assets SET groups = '{x}' WHERE filename = 'a.jpg'")
    assert conn.execute("SELECT pgsearch.refresh_group_members()").fetchone() == (3,)
    assert _actual(conn) == _expected(conn)
