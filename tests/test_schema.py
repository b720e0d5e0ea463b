"""Schema behaviour: label counts written through refresh_label_counts and rename_label (no
trigger), embedding spaces, cascades."""

from __future__ import annotations

import psycopg
import pytest


def _dataset(conn: psycopg.Connection, name: str = "d") -> int:
    return conn.execute("INSERT INTO pgsearch.datasets (name) VALUES (%s) RETURNING id", (name,)).fetchone()[
        0
    ]


def _label(conn: psycopg.Connection, dataset: int, name: str) -> int:
    return conn.execute(
        "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, %s) RETURNING id", (dataset, name)
    ).fetchone()[0]


def _asset(conn: psycopg.Connection, dataset: int, filename: str) -> int:
    return conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename) VALUES (%s, %s) RETURNING id", (dataset, filename)
    ).fetchone()[0]


def _box(conn: psycopg.Connection, dataset: int, asset: int, label: int) -> int:
    return conn.execute(
        "INSERT INTO pgsearch.shapes (dataset_id, asset_id, label_id, kind, bbox_x, bbox_y, bbox_width, bbox_height)"
        " VALUES (%s, %s, %s, 'bbox', 0, 0, 10, 10) RETURNING id",
        (dataset, asset, label),
    ).fetchone()[0]


def _counts(conn: psycopg.Connection) -> dict[str, tuple[dict[str, int], int]]:
    rows = conn.execute("SELECT filename, label_counts, annotation_count FROM pgsearch.assets ORDER BY id")
    return {r[0]: (r[1], r[2]) for r in rows}


def _recount(conn: psycopg.Connection) -> dict[str, tuple[dict[str, int], int]]:
    """The same counts by aggregating shapes, as refresh_label_counts must write them."""
    out: dict[str, tuple[dict[str, int], int]] = {}
    for filename, asset_id in conn.execute("SELECT filename, id FROM pgsearch.assets ORDER BY id").fetchall():
        per = conn.execute(
            "SELECT l.name, count(*) FROM pgsearch.shapes s JOIN pgsearch.labels l ON l.id = s.label_id"
            " WHERE s.asset_id = %s GROUP BY l.name",
            (asset_id,),
        ).fetchall()
        out[filename] = ({name: n for name, n in per}, sum(n for _, n in per))
    return out


def _refresh(conn: psycopg.Connection) -> None:
    """What a writer going around pgsearch does after changing shapes: one call for the assets."""
    conn.execute("SELECT pgsearch.refresh_label_counts(ARRAY(SELECT id FROM pgsearch.assets))")


def test_label_counts_follow_refresh_and_rename(conn: psycopg.Connection) -> None:
    d = _dataset(conn)
    cat, dog = _label(conn, d, "cat"), _label(conn, d, "dog")
    a, b = _asset(conn, d, "a.jpg"), _asset(conn, d, "b.jpg")
    s1 = _box(conn, d, a, cat)
    _box(conn, d, a, cat)
    _box(conn, d, a, dog)
    _box(conn, d, b, dog)
    # No trigger: the counts change when the writer says so.
    assert _counts(conn) == {"a.jpg": ({}, 0), "b.jpg": ({}, 0)}
    _refresh(conn)
    assert _counts(conn) == {"a.jpg": ({"cat": 2, "dog": 1}, 3), "b.jpg": ({"dog": 1}, 1)}

    conn.execute("UPDATE pgsearch.shapes SET asset_id = %s WHERE id = %s", (b, s1))
    _refresh(conn)
    assert _counts(conn) == {"a.jpg": ({"cat": 1, "dog": 1}, 2), "b.jpg": ({"cat": 1, "dog": 1}, 2)}

    conn.execute("UPDATE pgsearch.shapes SET label_id = %s WHERE asset_id = %s", (dog, a))
    _refresh(conn)
    assert _counts(conn)["a.jpg"] == ({"dog": 2}, 2)

    # rename_label rewrites the counts of the assets carrying the label, and says how many.
    assert conn.execute("SELECT pgsearch.rename_label(%s, 'dog', 'hound')", (d,)).fetchone() == (2,)
    assert _counts(conn) == {"a.jpg": ({"hound": 2}, 2), "b.jpg": ({"cat": 1, "hound": 1}, 2)}
    with pytest.raises(psycopg.errors.NoDataFound, match="no label 'dog'"):
        conn.execute("SELECT pgsearch.rename_label(%s, 'dog', 'x')", (d,))
    conn.rollback()


def test_refresh_leaves_rows_that_are_right(conn: psycopg.Connection) -> None:
    """The loader COPYs a new asset's counts with its row; refreshing them writes nothing."""
    d = _dataset(conn)
    labels = [_label(conn, d, f"l{i}") for i in range(5)]
    assets = [_asset(conn, d, f"{i}.png") for i in range(50)]
    rows = [(d, assets[(i * 7) % 50], labels[i % 5], "tag") for i in range(1000)]
    with conn.cursor().copy("COPY pgsearch.shapes (dataset_id, asset_id, label_id, kind) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    _refresh(conn)
    assert _counts(conn) == _recount(conn)
    assert sum(total for _, total in _counts(conn).values()) == 1000
    conn.commit()
    before = conn.execute("SELECT array_agg(xmin::text ORDER BY id) FROM pgsearch.assets").fetchone()[0]
    _refresh(conn)
    assert (
        conn.execute("SELECT array_agg(xmin::text ORDER BY id) FROM pgsearch.assets").fetchone()[0] == before
    )


def test_embedding_space_partition_index_and_drop(conn: psycopg.Connection) -> None:
    d = _dataset(conn)
    a = _asset(conn, d, "a.jpg")
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('m', 3) RETURNING id"
    ).fetchone()[0]
    space = conn.execute("SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (d, model)).fetchone()[0]
    assert (
        conn.execute("SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (d, model)).fetchone()[0]
        == space
    )
    table = conn.execute(
        "SELECT table_name FROM pgsearch.embedding_spaces WHERE id = %s", (space,)
    ).fetchone()[0]
    conn.execute("INSERT INTO pgsearch.asset_embeddings VALUES (%s, %s, '[1,2,3]')", (space, a))
    conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
    indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,)).fetchall()
    assert any("hnsw" in i[0] and "halfvec(3)" in i[0] for i in indexes)

    conn.execute("SELECT pgsearch.drop_embedding_space(%s)", (space,))
    assert conn.execute("SELECT to_regclass(%s)", (f"pgsearch.{table}",)).fetchone()[0] is None
    assert conn.execute("SELECT count(*) FROM pgsearch.asset_embeddings").fetchone()[0] == 0
    # the assets themselves stay
    assert conn.execute("SELECT count(*) FROM pgsearch.assets").fetchone()[0] == 1


def test_drop_dataset_takes_everything_with_it(conn: psycopg.Connection) -> None:
    d = _dataset(conn, "gone")
    keep = _dataset(conn, "kept")
    cat = _label(conn, d, "cat")
    a = _asset(conn, d, "a.jpg")
    _asset(conn, keep, "a.jpg")
    _box(conn, d, a, cat)
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('m', 2) RETURNING id"
    ).fetchone()[0]
    conn.execute("SELECT pgsearch.ensure_embedding_space(%s, %s, 'shape')", (d, model))
    assert conn.execute("SELECT pgsearch.drop_dataset('gone')").fetchone()[0] is True
    assert conn.execute("SELECT count(*) FROM pgsearch.assets").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM pgsearch.shapes").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pgsearch.embedding_spaces").fetchone()[0] == 0
    assert conn.execute("SELECT pgsearch.drop_dataset('gone')").fetchone()[0] is False
