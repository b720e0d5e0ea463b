"""Bulk writes of asset and shape rows: COPY with ids reserved from the tables' identity sequences
(so one COPY inserts them and we still know the ids), typed rows from rows.py. Vectors and
embedding states are vectors.py's.

Callers wrap each batch in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgsearch.loader import vectors
from pgsearch.loader.images import ImageFacts
from pgsearch.loader.rows import AssetRow, ShapeRow, columns, values
from pgsearch.loader.spaces import Space

# What an update may change: everything but the row's identity, and the label counts, which are
# recomputed from the shapes (refresh_label_counts; a new row is COPYed with them already right).
_ASSET_UPDATE_COLUMNS = tuple(
    c for c in columns(AssetRow) if c not in ("id", "dataset_id", "label_counts", "annotation_count")
)


def reserve_ids(conn: psycopg.Connection, table: str, count: int) -> list[int]:
    """`count` fresh ids from the identity sequence of pgsearch.<table>."""
    if count <= 0:
        return []
    rows = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (f"pgsearch.{table}", count),
    ).fetchall()
    return [int(r[0]) for r in rows]


def _copy_rows(
    conn: psycopg.Connection,
    table: str,
    row_type: type,
    rows: Sequence[Any],
    extra: tuple[str, Sequence[Any]] | None = None,
) -> None:
    """COPY typed rows; `extra` is one more column (name, a value per row)."""
    if not rows:
        return
    names = [*columns(row_type), *([extra[0]] if extra else [])]
    # COPY writes given values into GENERATED ALWAYS identity columns (like OVERRIDING SYSTEM VALUE).
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("pgsearch", table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.cursor().copy(stmt) as copy:
        if extra is None:
            for row in rows:
                copy.write_row(values(row))
        else:
            for row, value in zip(rows, extra[1], strict=True):
                copy.write_row((*values(row), value))


def insert_assets(
    conn: psycopg.Connection, rows: Sequence[AssetRow], sketches: Mapping[int, str] | None = None
) -> None:
    """New asset rows with their group memberships. sketches: assets.sketches as array text
    (loader/sketches.py) by asset id, for the assets whose vector this batch writes: the row is
    written once, with its sketch, instead of rewritten when the vector lands."""
    sketches = sketches or {}
    arrays = [sketches.get(r.id) for r in rows]
    _copy_rows(conn, "assets", AssetRow, rows, ("sketches", arrays))
    # group_members is derived from assets.groups (sql/functions/sync_group_members.sql): for new
    # rows it is written here, in the same COPY pass, with the same sketches.
    members = [
        (r.dataset_id, name, r.id, array)
        for r, array in zip(rows, arrays, strict=True)
        for name in dict.fromkeys(g for g in r.groups if g is not None)
    ]
    if members:
        stmt = "COPY pgsearch.group_members (dataset_id, name, asset_id, sketches) FROM STDIN"
        with conn.cursor().copy(stmt) as copy:
            for member in members:
                copy.write_row(member)


def sync_group_members(conn: psycopg.Connection, dataset_id: int, asset_ids: Sequence[int]) -> None:
    """group_members of these (existing) assets made equal to their assets.groups again."""
    if asset_ids:
        conn.execute("SELECT pgsearch.sync_group_members(%s, %s)", (dataset_id, list(asset_ids)))


def update_assets(conn: psycopg.Connection, rows: Sequence[AssetRow]) -> None:
    """Overwrites every column but id and dataset_id of the rows (found by id)."""
    _update_by_id(conn, _ASSET_UPDATE_COLUMNS, [(values(r, _ASSET_UPDATE_COLUMNS), r.id) for r in rows])


def update_asset_facts(conn: psycopg.Connection, facts: Sequence[tuple[int, ImageFacts]]) -> None:
    """Overwrites what decoding found out about the files of these assets (by asset id)."""
    names = ("content_hash", "width", "height", "size", "format", "load_error")
    _update_by_id(
        conn,
        names,
        [((f.content_hash, f.width, f.height, f.size, f.format, f.error), aid) for aid, f in facts],
    )


def _update_by_id(
    conn: psycopg.Connection, names: Sequence[str], rows: Sequence[tuple[tuple[Any, ...], int]]
) -> None:
    if not rows:
        return
    stmt = sql.SQL("UPDATE pgsearch.assets SET {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in names)
    )
    with conn.cursor() as cur:
        cur.executemany(stmt, [(*vals, row_id) for vals, row_id in rows])


def insert_shapes(conn: psycopg.Connection, rows: Sequence[ShapeRow]) -> None:
    _copy_rows(conn, "shapes", ShapeRow, rows)


def delete_shapes(conn: psycopg.Connection, shape_ids: Sequence[int], shape_spaces: Sequence[Space]) -> None:
    """Deletes shapes, their vectors and states in every given space first. The assets' label
    counts are the caller's to refresh (refresh_label_counts)."""
    if not shape_ids:
        return
    vectors.forget(conn, shape_spaces, shape_ids)
    conn.execute("DELETE FROM pgsearch.shapes WHERE id = ANY(%s)", (list(shape_ids),))


def refresh_label_counts(conn: psycopg.Connection, asset_ids: Sequence[int]) -> None:
    """label_counts / annotation_count of these assets recomputed from their shapes (one UPDATE,
    rows already right untouched)."""
    if asset_ids:
        conn.execute("SELECT pgsearch.refresh_label_counts(%s)", (sorted(set(asset_ids)),))
