"""pgsearch.group_members stays equal to what assets.groups and assets.sketches say, with no
trigger: pgsearch's writers (the loader's COPY, group edits through the API, the embedding
writer) write it themselves; a plain SQL write of groups followed by
pgsearch.sync_group_members() (what a writer going around pgsearch is told to do) does too;
deletes, moves between datasets, TRUNCATE and dropped datasets are carried by its foreign key.
And refresh_group_members() rebuilds it after writes that did none of that."""

from __future__ import annotations

import numpy as np
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgsearch.api import Client
from pgsearch.loader import vectors, writer
from pgsearch.loader.rows import AssetRow
from pgsearch.loader.spaces import Space

NAMES = ["g1", "G1", "a b", "é"]
SQL_NAMES = [*NAMES, "", None]  # plain SQL may write what the API refuses
DIM = 8

groups_lists = st.lists(st.sampled_from(SQL_NAMES), max_size=4)
operation = st.one_of(
    st.tuples(st.just("load"), st.lists(groups_lists, min_size=1, max_size=5), st.booleans(), st.booleans()),
    st.tuples(st.just("set_groups"), st.integers(0, 50), groups_lists),
    st.tuples(st.just("add"), st.integers(0, 50), st.sampled_from(NAMES)),
    st.tuples(st.just("remove"), st.integers(0, 50), st.sampled_from(NAMES)),
    st.tuples(st.just("status"), st.integers(0, 50)),
    st.tuples(st.just("embed"), st.integers(0, 50), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("unembed"), st.integers(0, 50)),
    st.tuples(st.just("move"), st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("truncate")),
    st.tuples(st.just("upsert"), st.integers(0, 50), groups_lists),
    st.tuples(st.just("half"), st.sampled_from(SQL_NAMES)),
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


def _sync(conn: psycopg.Connection, changed: list[tuple[int, int]]) -> None:
    """What a writer going around pgsearch does after changing groups: per dataset, one call."""
    by_dataset: dict[int, list[int]] = {}
    for asset_id, dataset_id in changed:
        by_dataset.setdefault(dataset_id, []).append(asset_id)
    for dataset_id, ids in by_dataset.items():
        conn.execute("SELECT pgsearch.sync_group_members(%s, %s)", (dataset_id, ids))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=12))
def test_members_follow_the_assets(conn: psycopg.Connection, operations: list[tuple]) -> None:
    conn.execute("TRUNCATE pgsearch.datasets, pgsearch.embedding_models CASCADE")
    names = ["one", "two"]
    datasets = [
        conn.execute("INSERT INTO pgsearch.datasets (name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]
        for name in names
    ]
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('m', %s) RETURNING id", (DIM,)
    ).fetchone()[0]
    space_id = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (datasets[0], model)
    ).fetchone()[0]
    space = Space(
        space_id, datasets[0], model, "m", "asset", DIM, f"asset_embeddings_{space_id}", False, False
    )
    client = Client(conn)
    serial = 0
    for op in operations:
        rows = conn.execute("SELECT id, dataset_id FROM pgsearch.assets ORDER BY id").fetchall()
        kind = op[0]
        if kind == "load":  # the loader's COPY of new rows, with vectors (and sketches) or not
            _, groups_per_row, first, embed = op
            dataset = datasets[0] if first else datasets[1]
            ids = writer.reserve_ids(conn, "assets", len(groups_per_row))
            new = []
            for asset_id, groups in zip(ids, groups_per_row, strict=True):
                serial += 1
                new.append(
                    AssetRow(
                        asset_id,
                        dataset,
                        f"f{serial}.jpg",
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        "new",
                        groups,
                        {},
                        None,
                    )
                )
            sketches = {}
            if embed and dataset == datasets[0]:
                vecs = np.random.default_rng(serial).normal(size=(len(ids), DIM)).astype(np.float32)
                sketches = vectors.new_asset_sketches(conn, space, ids, vecs)
            writer.insert_assets(conn, new, sketches)
            if sketches:
                items = [vectors.Embedding(i, 1, v) for i, v in zip(ids, vecs, strict=True)]
                vectors.write(conn, space, items, sketched=set(ids))
        elif kind == "truncate":
            conn.execute("TRUNCATE pgsearch.assets CASCADE")
        elif kind == "half":  # one UPDATE that changes some rows' groups and leaves the others
            _sync(
                conn,
                conn.execute(
                    "UPDATE pgsearch.assets SET groups = CASE WHEN id %% 2 = 0 THEN array_append(groups, %s)"
                    " ELSE groups END RETURNING id, dataset_id",
                    (op[1],),
                ).fetchall(),
            )
        elif kind == "drop_dataset":  # assets go with their dataset (ON DELETE CASCADE)
            conn.execute("DELETE FROM pgsearch.datasets WHERE id = %s", (datasets[1],))
            names[1] = f"two{serial}"
            datasets[1] = conn.execute(
                "INSERT INTO pgsearch.datasets (name) VALUES (%s) RETURNING id", (names[1],)
            ).fetchone()[0]
        elif not rows:
            continue
        else:
            asset, dataset = rows[op[1] % len(rows)]
            name = names[datasets.index(dataset)] if dataset in datasets else None
            if kind == "set_groups":
                conn.execute("UPDATE pgsearch.assets SET groups = %s::text[] WHERE id = %s", (op[2], asset))
                _sync(conn, [(asset, dataset)])
            elif kind == "add" and name is not None:
                client.edit_group(name, op[2], add=[asset], commit=False)
            elif kind == "remove" and name is not None:
                client.edit_group(name, op[2], remove=[asset], commit=False)
            elif kind == "status":
                conn.execute("UPDATE pgsearch.assets SET status = 'review' WHERE id = %s", (asset,))
            elif kind == "embed" and dataset == datasets[0]:
                vector = np.random.default_rng(op[2]).normal(size=DIM).astype(np.float32)
                vectors.write(conn, space, [vectors.Embedding(asset, 1, vector)])
            elif kind == "unembed":
                vectors.forget(conn, [space], [asset])
            elif kind == "move":
                conn.execute(
                    "UPDATE pgsearch.assets SET dataset_id = CASE WHEN dataset_id = %s THEN %s ELSE %s END"
                    " WHERE id = %s",
                    (datasets[0], datasets[1], datasets[0], asset),
                )
            elif kind == "upsert":
                _sync(
                    conn,
                    conn.execute(
                        "INSERT INTO pgsearch.assets (dataset_id, filename, groups)"
                        " SELECT dataset_id, filename, %s::text[] FROM pgsearch.assets WHERE id = %s"
                        " ON CONFLICT (dataset_id, filename) DO UPDATE SET groups = excluded.groups"
                        " RETURNING id, dataset_id",
                        (op[2], asset),
                    ).fetchall(),
                )
            elif kind == "delete":
                conn.execute("DELETE FROM pgsearch.assets WHERE id = %s", (asset,))
        assert _actual(conn) == _expected(conn), op
    conn.commit()


def test_refresh_repairs_writes_that_went_around_pgsearch(conn: psycopg.Connection) -> None:
    dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('r') RETURNING id").fetchone()[0]
    conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename, groups) VALUES (%s, 'a.jpg', '{x}'), (%s, 'b.jpg', '{y}')",
        (dataset, dataset),
    )
    conn.execute("UPDATE pgsearch.assets SET groups = '{z}' WHERE filename = 'a.jpg'")
    assert _actual(conn) != _expected(conn)
    assert conn.execute("SELECT pgsearch.refresh_group_members()").fetchone() == (2,)
    assert _actual(conn) == _expected(conn)
    # A group edit after that takes the rows over instead of failing on them.
    ids = [r[0] for r in conn.execute("SELECT id FROM pgsearch.assets ORDER BY id")]
    assert Client(conn).edit_group("r", "x", add=ids, commit=False) == (2, 0)
    assert _actual(conn) == _expected(conn)
