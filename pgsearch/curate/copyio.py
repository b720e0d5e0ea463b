"""Bulk transfer between PostgreSQL and numpy with binary COPY: a space's vectors out, the
neighbour graph in and out, the map's points in.

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
from typing import Any

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

# Rows written per numpy call.
CHUNK_ROWS = 65_536
# COPY TO data arrives one row per message: rows are parsed in batches of about this many bytes.
READ_BATCH_BYTES = 8 << 20


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
    ordered: bool = True,
) -> SpaceVectors:
    """All vectors of one embedding partition (`pgsearch.<table>`, id column `key`: asset_id or
    shape_id), ordered by id (ordered=False: in the order the server reads them, which spares it
    a sort or an index walk). count: the number of rows if known (read otherwise); progress: a
    tqdm bar to advance by rows read. Run inside a REPEATABLE READ transaction when the count must
    match the COPY exactly; rows beyond the count are appended, a shortfall is trimmed."""
    relation = sql.Identifier("pgsearch", table)
    column = sql.Identifier(key)
    if count is None:
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()
        count = int(found[0]) if found else 0
    row_dtype = _vector_row_dtype(dim)
    ids = np.empty(count, dtype=np.int64)
    vectors = np.empty((count, dim), dtype=np.float32)
    order = sql.SQL(" ORDER BY {key}").format(key=column) if ordered else sql.SQL("")
    statement = sql.SQL("COPY (SELECT {key}, embedding FROM {table}{order}) TO STDOUT (FORMAT binary)")
    filled = 0
    rest = b""
    for data in _copy_out(conn, statement.format(key=column, table=relation, order=order)):
        buf = rest + data if rest else data
        rows = len(buf) // row_dtype.itemsize
        rest = buf[rows * row_dtype.itemsize :]
        if rows == 0:
            continue
        block = np.frombuffer(buf, dtype=row_dtype, count=rows)
        # A trailer (int16 -1) shorter than a row may sit at the end: never part of `rows`
        # unless another row follows, which _check rejects as a malformed row.
        _check(block, dim)
        if filled + rows > len(ids):
            grow = max(filled + rows, 2 * len(ids))
            ids = np.resize(ids, grow)
            vectors = np.resize(vectors, (grow, dim))
        ids[filled : filled + rows] = block["id"]
        vectors[filled : filled + rows] = block["x"]
        filled += rows
        if progress is not None:
            progress.update(rows)  # type: ignore[attr-defined]
    if rest not in (TRAILER, b""):
        raise CopyFormatError(
            f"vectors of {table} are not all {dim}-dimensional (or a vector is NULL): "
            "re-embed the space (pgsearch embed --drop, then pgsearch embed)"
        )
    return SpaceVectors(ids=ids[:filled].copy() if filled < len(ids) else ids, vectors=vectors[:filled])


def _copy_out(conn: psycopg.Connection, statement: sql.Composed | sql.SQL) -> Iterator[bytes]:
    """The data of `COPY ... TO STDOUT (FORMAT binary)` after its header, in batches of at
    least READ_BATCH_BYTES (the last one shorter); a batch may end in the middle of a row."""
    parts: list[bytes] = []
    size = 0
    header_seen = False
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for data in copy:
            parts.append(bytes(data))
            size += len(data)
            if not header_seen:
                if size < len(HEADER):
                    continue
                joined = b"".join(parts)
                if joined[:11] != HEADER[:11]:
                    raise CopyFormatError("unexpected COPY header from the server")
                extension = struct.unpack(">i", joined[15:19])[0]
                if len(joined) < 19 + extension:
                    continue
                parts, size = [joined[19 + extension :]], len(joined) - 19 - extension
                header_seen = True
            if size >= READ_BATCH_BYTES:
                yield b"".join(parts)
                parts, size = [], 0
    if parts:
        yield b"".join(parts)


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
    space_id: int,
    ids: np.ndarray,
    neighbor_ids: np.ndarray,
    distances: np.ndarray,
    *,
    computed_at: int | None = None,
    progress: object | None = None,
) -> Iterator[bytes]:
    """Binary COPY data for pgsearch.neighbors (space_id, item_id, neighbor_ids, distances[,
    computed_at]), in chunks: ids (n,), neighbor_ids (n, k) int64, distances (n, k) float32.
    computed_at: a timestamptz for every row, as binary COPY carries it (microseconds since
    2000-01-01 UTC, see postgres_epoch_us); the column is then part of the COPY's column list.
    progress: a tqdm bar to advance by rows written."""
    n, k = neighbor_ids.shape
    fields = [
        ("fields", ">i2"),
        ("space_len", ">i4"),
        ("space", ">i8"),
        ("item_len", ">i4"),
        ("item", ">i8"),
        *_array_dtype("nbr", k, ">i8"),
        *_array_dtype("dist", k, ">f4"),
    ]
    if computed_at is not None:
        fields += [("at_len", ">i4"), ("at", ">i8")]
    dtype = np.dtype(fields)
    yield HEADER
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        block = np.zeros(stop - start, dtype=dtype)
        block["fields"] = 4 if computed_at is None else 5
        block["space_len"] = 8
        block["space"] = space_id
        block["item_len"] = 8
        block["item"] = ids[start:stop]
        _fill_array(block, "nbr", k, INT8_OID, 8, neighbor_ids[start:stop])
        _fill_array(block, "dist", k, FLOAT4_OID, 4, distances[start:stop])
        if computed_at is not None:
            block["at_len"] = 8
            block["at"] = computed_at
        yield block.tobytes()
        if progress is not None:
            progress.update(stop - start)  # type: ignore[attr-defined]
    yield TRAILER


# Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC), the origin of binary timestamps.
POSTGRES_EPOCH_S = 946_684_800


def postgres_epoch_us(unix_seconds: float) -> int:
    """A Unix time as binary COPY carries a timestamptz: microseconds since 2000-01-01 UTC."""
    return int(round((unix_seconds - POSTGRES_EPOCH_S) * 1_000_000))


@dataclass
class NeighborRows:
    """Rows of a neighbour partition: ids[i] (ascending) has neighbor_ids[i] (nearest first,
    padded with -1 where a row holds fewer than k) and distances[i] (padded with inf)."""

    ids: np.ndarray  # int64 (n,)
    neighbor_ids: np.ndarray  # int64 (n, k)
    distances: np.ndarray  # float32 (n, k)


def _graph_row_dtype(k: int) -> np.dtype:
    return np.dtype(
        [
            ("fields", ">i2"),
            ("item_len", ">i4"),
            ("item", ">i8"),
            *_array_dtype("nbr", k, ">i8"),
            *_array_dtype("dist", k, ">f4"),
        ]
    )


def _graph_rows_ok(block: np.ndarray, k: int) -> np.ndarray:
    """Per row: does it have the fixed layout of two k-element arrays without NULLs?"""
    ok = (block["fields"] == 3) & (block["item_len"] == 8)
    for name, oid, size in (("nbr", INT8_OID, 8), ("dist", FLOAT4_OID, 4)):
        ok &= (
            (block[f"{name}_len"] == 20 + k * (4 + size))
            & (block[f"{name}_ndim"] == 1)
            & (block[f"{name}_oid"] == oid)
            & (block[f"{name}_size"] == k)
            & (block[name]["len"] == size).all(axis=1)
        )
    return np.asarray(ok, dtype=bool)


def _parse_graph_row(buf: memoryview, at: int, k: int) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """One row of any shape at buf[at:] (arrays of other lengths, empty, with NULLs): (bytes
    used, item id, neighbour ids padded to k, distances padded to k); None when the row is not
    complete in buf."""
    end = len(buf)

    def take(fmt: str, pos: int) -> tuple[tuple[Any, ...], int]:
        size = struct.calcsize(fmt)
        if pos + size > end:
            raise IndexError
        return struct.unpack_from(fmt, buf, pos), pos + size

    try:
        (fields,), pos = take(">h", at)
        if fields != 3:
            raise CopyFormatError(f"unexpected row of {fields} fields in a neighbour partition")
        (length,), pos = take(">i", pos)
        if length != 8:
            raise CopyFormatError("a neighbour row without an item id")
        (item,), pos = take(">q", pos)
        arrays: list[np.ndarray] = []
        for fmt, fill, dtype in ((">q", -1, np.int64), (">f", np.inf, np.float32)):
            out = np.full(k, fill, dtype=dtype)
            (length,), pos = take(">i", pos)
            if length < 0:  # a NULL array: nothing
                arrays.append(out)
                continue
            stop = pos + length
            if stop > end:
                raise IndexError
            (ndim, _nulls, _oid), p = take(">iii", pos)
            count = 0
            if ndim == 1:
                (count, _lower), p = take(">ii", p)
            elif ndim > 1:
                raise CopyFormatError("a neighbour row holds a multi-dimensional array")
            for j in range(count):
                (elen,), p = take(">i", p)
                if elen < 0:
                    continue  # a NULL element stays padding
                (value,), p = take(fmt, p)
                if j < k:
                    out[j] = value
            arrays.append(out)
            pos = stop
        return pos - at, int(item), arrays[0], arrays[1]
    except IndexError:
        return None


def read_neighbor_rows(
    conn: psycopg.Connection,
    table: str,
    k: int,
    *,
    count: int | None = None,
    progress: object | None = None,
) -> NeighborRows:
    """All rows (item_id, neighbor_ids, distances) of one neighbour partition
    (`pgsearch.<table>`), sorted by item id. Rows of exactly k neighbours (all of them, as
    pgsearch writes the graph) are parsed as numpy blocks; any other row is parsed on its own and
    padded. count: rows expected, if known; progress: a tqdm bar to advance by rows read."""
    relation = sql.Identifier("pgsearch", table)
    if count is None:
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()
        count = int(found[0]) if found else 0
    row_dtype = _graph_row_dtype(k)
    size = row_dtype.itemsize
    ids = np.empty(count, dtype=np.int64)
    nbr = np.empty((count, k), dtype=np.int64)
    dist = np.empty((count, k), dtype=np.float32)
    filled = 0

    def room(extra: int) -> None:
        nonlocal ids, nbr, dist
        if filled + extra > len(ids):
            grow = max(filled + extra, 2 * len(ids))
            ids = np.resize(ids, grow)
            nbr = np.resize(nbr, (grow, k))
            dist = np.resize(dist, (grow, k))

    statement = sql.SQL(
        "COPY (SELECT item_id, neighbor_ids, distances FROM {}) TO STDOUT (FORMAT binary)"
    ).format(relation)
    rest = b""
    for data in _copy_out(conn, statement):
        buf = rest + data if rest else data
        used = 0
        while True:
            rows = (len(buf) - used) // size
            if rows:
                block = np.frombuffer(buf, dtype=row_dtype, count=rows, offset=used)
                ok = _graph_rows_ok(block, k)
                good = rows if ok.all() else int(np.argmin(ok))
                if good:
                    room(good)
                    ids[filled : filled + good] = block["item"][:good]
                    nbr[filled : filled + good] = block["nbr"]["v"][:good]
                    dist[filled : filled + good] = block["dist"]["v"][:good]
                    filled += good
                    used += good * size
                    if progress is not None:
                        progress.update(good)  # type: ignore[attr-defined]
                if good == rows:
                    continue
            # A row of another shape, the trailer, or a row cut by the end of the batch.
            if len(buf) - used <= 2:
                break
            parsed = _parse_graph_row(memoryview(buf), used, k)
            if parsed is None:
                break
            length, item, row_nbr, row_dist = parsed
            room(1)
            ids[filled], nbr[filled], dist[filled] = item, row_nbr, row_dist
            filled += 1
            used += length
            if progress is not None:
                progress.update(1)  # type: ignore[attr-defined]
        rest = buf[used:]
    if rest not in (TRAILER, b""):
        raise CopyFormatError(f"the rows of {table} ended in the middle of a row")
    ids, nbr, dist = ids[:filled], nbr[:filled], dist[:filled]
    if filled and not (ids[1:] > ids[:-1]).all():
        order = np.argsort(ids, kind="stable")
        ids, nbr, dist = ids[order], nbr[order], dist[order]
    return NeighborRows(ids=ids, neighbor_ids=nbr, distances=dist)


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


def copy_in(conn: psycopg.Connection, statement: sql.Composed | sql.SQL, chunks: Iterable[bytes]) -> None:
    """Runs `COPY ... FROM STDIN (FORMAT binary)` with the given data chunks."""
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)
