"""Bulk writes: binary COPY of halfvec embeddings, COPY of assets / shapes / states with ids
reserved from their identity sequences (so one COPY inserts them and we still know the ids).

Callers wrap each batch in one transaction; every helper here is an idempotent replace for
the ids it is given (delete, then COPY), so a batch re-run after a crash writes the same rows.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
COPY_ROWS_PER_WRITE = 8192

_ITEM_COLUMN = {"asset": "asset_id", "shape": "shape_id"}


def halfvec_copy_rows(space_id: int, ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """COPY BINARY tuples (space_id int8, item_id int8, embedding halfvec), built in numpy.

    halfvec's binary form (pgvector's halfvec_recv) is int16 dim, int16 unused, then dim
    IEEE half floats, all big-endian.
    """
    n, dim = vectors.shape
    row = np.dtype(
        [
            ("nfields", ">i2"),
            ("len1", ">i4"),
            ("space", ">i8"),
            ("len2", ">i4"),
            ("item", ">i8"),
            ("len3", ">i4"),
            ("dim", ">u2"),
            ("unused", ">u2"),
            ("vec", ">f2", (dim,)),
        ]
    )
    rec = np.empty(n, dtype=row)
    rec["nfields"] = 3
    rec["len1"] = 8
    rec["space"] = space_id
    rec["len2"] = 8
    rec["item"] = ids
    rec["len3"] = 4 + 2 * dim
    rec["dim"] = dim
    rec["unused"] = 0
    rec["vec"] = vectors.astype(np.float16)
    return rec.tobytes()


def copy_vectors(
    conn: psycopg.Connection,
    target: str,
    table_name: str,
    space_id: int,
    ids: Sequence[int] | np.ndarray,
    vectors: np.ndarray,
) -> None:
    """Appends vectors to a space's partition (binary COPY). Rows must not exist yet."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    if len(ids_arr) == 0:
        return
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids_arr), -1)
    stmt = sql.SQL("COPY {} (space_id, {}, embedding) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier("pgsearch", table_name), sql.Identifier(_ITEM_COLUMN[target])
    )
    with conn.cursor().copy(stmt) as copy:
        copy.write(COPY_HEADER)
        for start in range(0, len(ids_arr), COPY_ROWS_PER_WRITE):
            end = start + COPY_ROWS_PER_WRITE
            copy.write(halfvec_copy_rows(space_id, ids_arr[start:end], vectors[start:end]))
        copy.write(COPY_TRAILER)


def delete_vectors(
    conn: psycopg.Connection, target: str, table_name: str, space_id: int, ids: Sequence[int]
) -> None:
    if not ids:
        return
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE space_id = %s AND {} = ANY(%s)").format(
            sql.Identifier("pgsearch", table_name), sql.Identifier(_ITEM_COLUMN[target])
        ),
        (space_id, list(ids)),
    )


def delete_states(conn: psycopg.Connection, target: str, space_id: int, ids: Sequence[int]) -> None:
    if not ids:
        return
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE space_id = %s AND {} = ANY(%s)").format(
            sql.Identifier("pgsearch", f"{target}_embedding_state"), sql.Identifier(_ITEM_COLUMN[target])
        ),
        (space_id, list(ids)),
    )


def write_states(
    conn: psycopg.Connection, target: str, space_id: int, rows: Sequence[tuple[int, str, str | None, int]]
) -> None:
    """Replaces the state rows (item id, state, reason, attempts) of one space."""
    if not rows:
        return
    delete_states(conn, target, space_id, [r[0] for r in rows])
    stmt = sql.SQL("COPY {} (space_id, {}, state, reason, attempts) FROM STDIN").format(
        sql.Identifier("pgsearch", f"{target}_embedding_state"), sql.Identifier(_ITEM_COLUMN[target])
    )
    with conn.cursor().copy(stmt) as copy:
        for item_id, state, reason, attempts in rows:
            copy.write_row((space_id, item_id, state, reason, attempts))


def reserve_ids(conn: psycopg.Connection, table: str, count: int) -> list[int]:
    """`count` fresh ids from the identity sequence of pgsearch.<table>."""
    if count <= 0:
        return []
    rows = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (f"pgsearch.{table}", count),
    ).fetchall()
    return [int(r[0]) for r in rows]


ASSET_COLUMNS = (
    "id",
    "dataset_id",
    "filename",
    "path",
    "content_hash",
    "width",
    "height",
    "size",
    "format",
    "status",
    "groups",
    "metadata",
    "load_error",
)
SHAPE_COLUMNS = (
    "id",
    "dataset_id",
    "asset_id",
    "label_id",
    "kind",
    "bbox_x",
    "bbox_y",
    "bbox_width",
    "bbox_height",
    "geometry",
    "area",
    "attributes",
)


def _copy_rows(
    conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    # COPY writes given values into GENERATED ALWAYS identity columns (like OVERRIDING SYSTEM VALUE).
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("pgsearch", table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor().copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)


def insert_assets(conn: psycopg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Rows in ASSET_COLUMNS order (groups a list, metadata a dict)."""
    _copy_rows(conn, "assets", ASSET_COLUMNS, [(*r[:11], Jsonb(r[11]), r[12]) for r in rows])


def update_assets(conn: psycopg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Rows in ASSET_COLUMNS order; every column but id and dataset_id is overwritten."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE pgsearch.assets SET filename = %s, path = %s, content_hash = %s, width = %s, height = %s,"
            " size = %s, format = %s, status = %s, groups = %s, metadata = %s, load_error = %s WHERE id = %s",
            [(*r[2:11], Jsonb(r[11]), r[12], r[0]) for r in rows],
        )


def insert_shapes(conn: psycopg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Rows in SHAPE_COLUMNS order (geometry and attributes dicts)."""
    _copy_rows(conn, "shapes", SHAPE_COLUMNS, [(*r[:9], Jsonb(r[9]), r[10], Jsonb(r[11])) for r in rows])


def delete_shapes(
    conn: psycopg.Connection, shape_ids: Sequence[int], shape_spaces: Sequence[tuple[int, str]]
) -> None:
    """Deletes shapes with their vectors and states in every given (space id, partition) first."""
    if not shape_ids:
        return
    for space_id, table_name in shape_spaces:
        delete_vectors(conn, "shape", table_name, space_id, shape_ids)
        delete_states(conn, "shape", space_id, shape_ids)
    conn.execute("DELETE FROM pgsearch.shapes WHERE id = ANY(%s)", (list(shape_ids),))
