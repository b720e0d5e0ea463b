"""Bulk transfer between PostgreSQL and numpy with binary COPY: a space's vectors out, the
neighbour graph in, the map's points in.

Every row of these transfers has a fixed size (a bigint id and a halfvec of the space's dimension;
an id with two arrays of k elements), so a whole chunk of COPY data is read or written as one numpy
structured array instead of row by row in Python: 1,000,000 x 512-d vectors come out in about the
time the server takes to send them. Chunks are parsed as they arrive into arrays allocated once,
so the peak memory is the result plus one chunk.

Binary COPY layout (PostgreSQL docs, "COPY: Binary Format"): a 19-byte header, then per row an
int16 field count and per field an int32 length and the value in the type's binary send format,
then an int16 -1. pgvector sends a halfvec as int16 dim, int16 unused, dim big-endian halves; an
array is int32 ndim, int32 has-nulls, int32 element type oid, then per dimension int32 length and
int32 lower bound, then each element as int32 length and value. Everything is big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from pgsearch.errors import PgsearchError

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
INT8_OID = 20
FLOAT4_OID = 700
FLOAT8_OID = 701
INT4_OID = 23

# Rows parsed or written per numpy call.
CHUNK_ROWS = 65_536


class CopyFormatError(PgsearchError):
    """The server sent rows of another shape than the space's (a vector of another dimension)."""


@dataclass
class SpaceVectors:
    """The vectors of one space: ids[i] (asset or shape ids, ascending) has vectors[i]."""

    ids: np.ndarray  # int64 (n,)
    vectors: np.ndarray  # float32 (n, dim), as stored (the loader stores unit vectors)


def _vector_row_dtype(dim: int) -> np.dtype:
    return np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("x", ">f2", (dim,)),
        ]
    )


def read_space_vectors(
    conn: psycopg.Connection,
    table: str,
    key: str,
    dim: int,
    *,
    count: int | None = None,
    progress: object | None = None,
) -> SpaceVectors:
    """All vectors of one embedding partition (`pgsearch.<table>`, id column `key`: asset_id or
    shape_id), ordered by id. count: the number of rows if known (read otherwise); progress: a tqdm
    bar to advance by rows read. Run inside a REPEATABLE READ transaction when the count must match
    the COPY exactly; rows beyond the count are appended, a shortfall is trimmed."""
    relation = sql.Identifier("pgsearch", table)
    column = sql.Identifier(key)
    if count is None:
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()
        count = int(found[0]) if found else 0
    row_dtype = _vector_row_dtype(dim)
    ids = np.empty(count, dtype=np.int64)
    vectors = np.empty((count, dim), dtype=np.float32)
    statement = sql.SQL(
        "COPY (SELECT {key}, embedding FROM {table} ORDER BY {key}) TO STDOUT (FORMAT binary)"
    )
    filled = 0
    pending = bytearray()
    header_seen = False
    with conn.cursor() as cur, cur.copy(statement.format(key=column, table=relation)) as copy:
        for data in copy:
            pending += data
            if not header_seen:
                if len(pending) < len(HEADER):
                    continue
                if bytes(pending[:11]) != HEADER[:11]:
                    raise CopyFormatError("unexpected COPY header from the server")
                extension = struct.unpack(">i", pending[15:19])[0]
                del pending[: 19 + extension]
                header_seen = True
            rows = len(pending) // row_dtype.itemsize
            if rows == 0:
                continue
            block = np.frombuffer(bytes(pending[: rows * row_dtype.itemsize]), dtype=row_dtype)
            # A trailer (int16 -1) shorter than a row may sit at the end: never part of `rows`
            # unless another row follows, which _check rejects as a malformed row.
            _check(block, dim)
            del pending[: rows * row_dtype.itemsize]
            if filled + rows > len(ids):
                grow = max(filled + rows, 2 * len(ids))
                ids = np.resize(ids, grow)
                vectors = np.resize(vectors, (grow, dim))
            ids[filled : filled + rows] = block["id"]
            vectors[filled : filled + rows] = block["x"]
            filled += rows
            if progress is not None:
                progress.update(rows)  # type: ignore[attr-defined]
    if bytes(pending) not in (TRAILER, b""):
        raise CopyFormatError(
            f"vectors of {table} are not all {dim}-dimensional (or a vector is NULL): "
            "re-embed the space (pgsearch embed --drop, then pgsearch embed)"
        )
    return SpaceVectors(ids=ids[:filled].copy() if filled < len(ids) else ids, vectors=vectors[:filled])


def _check(block: np.ndarray, dim: int) -> None:
    if not (
        (block["fields"] == 2).all()
        and (block["id_len"] == 8).all()
        and (block["vec_len"] == 4 + 2 * dim).all()
        and (block["dim"] == dim).all()
    ):
        raise CopyFormatError(
            f"vectors are not all {dim}-dimensional (or a vector is NULL): re-embed the space "
            "(pgsearch embed --drop, then pgsearch embed)"
        )


def _array_dtype(name: str, k: int, element: str) -> list[tuple[str, str] | tuple[str, str, tuple[int]]]:
    """Fields of a one-dimensional array of k non-null elements in binary COPY."""
    return [
        (f"{name}_len", ">i4"),
        (f"{name}_ndim", ">i4"),
        (f"{name}_nulls", ">i4"),
        (f"{name}_oid", ">i4"),
        (f"{name}_size", ">i4"),
        (f"{name}_lower", ">i4"),
        (f"{name}", [("len", ">i4"), ("v", element)], (k,)),  # type: ignore[list-item]
    ]


def neighbor_rows(
    space_id: int, ids: np.ndarray, neighbor_ids: np.ndarray, distances: np.ndarray
) -> Iterator[bytes]:
    """Binary COPY data for pgsearch.neighbors (space_id, item_id, neighbor_ids, distances), in
    chunks: ids (n,), neighbor_ids (n, k) int64, distances (n, k) float32."""
    n, k = neighbor_ids.shape
    dtype = np.dtype(
        [
            ("fields", ">i2"),
            ("space_len", ">i4"),
            ("space", ">i8"),
            ("item_len", ">i4"),
            ("item", ">i8"),
            *_array_dtype("nbr", k, ">i8"),
            *_array_dtype("dist", k, ">f4"),
        ]
    )
    yield HEADER
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        block = np.zeros(stop - start, dtype=dtype)
        block["fields"] = 4
        block["space_len"] = 8
        block["space"] = space_id
        block["item_len"] = 8
        block["item"] = ids[start:stop]
        _fill_array(block, "nbr", k, INT8_OID, 8, neighbor_ids[start:stop])
        _fill_array(block, "dist", k, FLOAT4_OID, 4, distances[start:stop])
        yield block.tobytes()
    yield TRAILER


def point_rows(
    run_id: int, ids: np.ndarray, x: np.ndarray, y: np.ndarray, cluster: np.ndarray
) -> Iterator[bytes]:
    """Binary COPY data for pgsearch.projection_points (run_id, item_id, x, y, cluster)."""
    dtype = np.dtype(
        [
            ("fields", ">i2"),
            ("run_len", ">i4"),
            ("run", ">i8"),
            ("item_len", ">i4"),
            ("item", ">i8"),
            ("x_len", ">i4"),
            ("x", ">f8"),
            ("y_len", ">i4"),
            ("y", ">f8"),
            ("c_len", ">i4"),
            ("c", ">i4"),
        ]
    )
    yield HEADER
    for start in range(0, len(ids), CHUNK_ROWS):
        stop = min(len(ids), start + CHUNK_ROWS)
        block = np.zeros(stop - start, dtype=dtype)
        block["fields"] = 5
        block["run_len"] = 8
        block["run"] = run_id
        block["item_len"] = 8
        block["item"] = ids[start:stop]
        block["x_len"] = 8
        block["x"] = x[start:stop]
        block["y_len"] = 8
        block["y"] = y[start:stop]
        block["c_len"] = 4
        block["c"] = cluster[start:stop]
        yield block.tobytes()
    yield TRAILER


def _fill_array(block: np.ndarray, name: str, k: int, oid: int, size: int, values: np.ndarray) -> None:
    block[f"{name}_len"] = 20 + k * (4 + size)
    block[f"{name}_ndim"] = 1
    block[f"{name}_nulls"] = 0
    block[f"{name}_oid"] = oid
    block[f"{name}_size"] = k
    block[f"{name}_lower"] = 1
    block[name]["len"] = size
    block[name]["v"] = values


def copy_in(conn: psycopg.Connection, statement: sql.Composed, chunks: Iterable[bytes]) -> None:
    """Runs `COPY ... FROM STDIN (FORMAT binary)` with the given data chunks."""
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)
