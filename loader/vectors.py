"""The one embedding writer: every vector the loader stores or drops goes through here.

`pgsearch load` (pipeline.py) and `pgsearch embed` (embed.py) both end a batch with, per
embedding space, a list of `Embedding`s (an item's vector, or why it has none) and call
`write(conn, space, items)`; items whose file changed or that go away are dropped from every
space with `forget(conn, spaces, ids)`. The checks that turn a model's output into a vector or a
failure reason live here too (`asset_embedding`, `shape_embedding`), so both commands store
the same states with the same messages.

Callers wrap each batch in one transaction. `write` is an idempotent replace for the ids it is
given (delete, then COPY), so a batch re-run after a crash writes the same rows.

Derived per-vector data: the asset sketches (`assets.sketches[space_id]`, the sign bits of
v - the space's sketch_center, and their copies in group_members; see
sql/functions/write_asset_sketches.sql) are written here, with the vectors, in the same
transaction, by `_derived` after every write or delete of asset vectors. No trigger does it.
The loader writes the sketches of brand-new assets into their row's COPY instead (it knows the
vectors before it writes the rows) and passes those ids as `sketched`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from pgsearch.loader import sketches
from pgsearch.loader.spaces import Space

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
COPY_ROWS_PER_WRITE = 8192

ITEM_COLUMN = {"asset": "asset_id", "shape": "shape_id"}

ZERO_OR_NON_FINITE = "the model returned a zero or non-finite vector"
NOT_COMPUTED = "no embedding computed"


@dataclass
class Embedding:
    """One item's outcome in one space: a vector ('done') or the reason there is none ('failed')."""

    item_id: int
    attempts: int  # counting this one
    vector: np.ndarray | None = None
    reason: str | None = None

    @property
    def state(self) -> str:
        return "done" if self.vector is not None else "failed"


# --- the checks ------------------------------------------------------------------------------


def asset_embedding(
    item_id: int, attempts: int, vector: np.ndarray | None, decode_error: str | None
) -> Embedding:
    """An image's vector, unless the image failed to decode or the model gave nothing usable
    (a zero vector has no cosine direction and HNSW does not index it)."""
    if decode_error:
        return Embedding(item_id, attempts, reason=decode_error)
    if vector is None:
        return Embedding(item_id, attempts, reason=NOT_COMPUTED)
    if not np.all(np.isfinite(vector)) or not np.any(vector):
        return Embedding(item_id, attempts, reason=ZERO_OR_NON_FINITE)
    return Embedding(item_id, attempts, vector)


def shape_embedding(
    item_id: int,
    attempts: int,
    vector: np.ndarray | None,
    decode_error: str | None,
    crop: object,
) -> Embedding:
    """A shape crop's vector; else why: the image, the crop (`crop` is the worker's reason
    string when it could not cut one, e.g. a box outside the image), or nothing computed.
    Only non-finite vectors are refused here (as the loader always has for crops)."""
    if decode_error is None and vector is not None and np.all(np.isfinite(vector)):
        return Embedding(item_id, attempts, vector)
    if decode_error:
        reason = f"image could not be decoded: {decode_error}"
    else:
        reason = crop if isinstance(crop, str) else NOT_COMPUTED
    return Embedding(item_id, attempts, reason=reason)


# --- writing ---------------------------------------------------------------------------------


def write(
    conn: psycopg.Connection, space: Space, items: Sequence[Embedding], *, sketched: Collection[int] = ()
) -> int:
    """Replaces the vectors and embedding states of `items` in `space`; returns how many vectors
    were written. An item's old vector goes even when it now failed: a state says 'failed' only
    where there is no vector. sketched: assets whose sketch is already written (see above)."""
    if not items:
        return 0
    ids = [e.item_id for e in items]
    _delete_vectors(conn, space, ids)
    done = [e for e in items if e.vector is not None]
    if done:
        done_ids = np.fromiter((e.item_id for e in done), dtype=np.int64, count=len(done))
        vectors = np.stack([np.asarray(e.vector, dtype=np.float32) for e in done])
        _copy_vectors(conn, space, done_ids, vectors)
    skip = set(sketched)
    _derived(conn, space, [i for i in ids if i not in skip])
    _delete_states(conn, space, ids)
    _copy_states(conn, space, items)
    return len(done)


def forget(conn: psycopg.Connection, spaces: Sequence[Space], ids: Sequence[int]) -> None:
    """Drops vectors and states of these items in every given space (their image changed, so
    every model must embed them again; or the items themselves are about to be deleted)."""
    if not ids:
        return
    for space in spaces:
        _delete_vectors(conn, space, ids)
        _derived(conn, space, ids)
        _delete_states(conn, space, ids)


def _copy_vectors(conn: psycopg.Connection, space: Space, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Appends vectors to the space's partition with a binary COPY (rows must not exist yet).
    Straight into the partition: one space's rows, no routing through the parent."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
    stmt = sql.SQL("COPY {} (space_id, {}, embedding) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier("pgsearch", space.table_name), sql.Identifier(ITEM_COLUMN[space.target])
    )
    with conn.cursor().copy(stmt) as copy:
        copy.write(COPY_HEADER)
        for start in range(0, len(ids), COPY_ROWS_PER_WRITE):
            end = start + COPY_ROWS_PER_WRITE
            copy.write(halfvec_copy_rows(space.id, ids[start:end], vectors[start:end]))
        copy.write(COPY_TRAILER)


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


def _delete_vectors(conn: psycopg.Connection, space: Space, ids: Sequence[int]) -> None:
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE space_id = %s AND {} = ANY(%s)").format(
            sql.Identifier("pgsearch", space.table_name), sql.Identifier(ITEM_COLUMN[space.target])
        ),
        (space.id, list(ids)),
    )


def _state_table(space: Space) -> sql.Identifier:
    return sql.Identifier("pgsearch", f"{space.target}_embedding_state")


def _delete_states(conn: psycopg.Connection, space: Space, ids: Sequence[int]) -> None:
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE space_id = %s AND {} = ANY(%s)").format(
            _state_table(space), sql.Identifier(ITEM_COLUMN[space.target])
        ),
        (space.id, list(ids)),
    )


def _copy_states(conn: psycopg.Connection, space: Space, items: Sequence[Embedding]) -> None:
    stmt = sql.SQL("COPY {} (space_id, {}, state, reason, attempts) FROM STDIN").format(
        _state_table(space), sql.Identifier(ITEM_COLUMN[space.target])
    )
    with conn.cursor().copy(stmt) as copy:
        for e in items:
            copy.write_row((space.id, e.item_id, e.state, e.reason, e.attempts))


# --- derived per-vector data ----------------------------------------------------------------


def _derived(conn: psycopg.Connection, space: Space, ids: Sequence[int]) -> None:
    """The asset sketches of `ids` after their vectors in `space` were written or deleted: set
    from the vector, cleared where there is none (and the space's centre set from these vectors
    when it has none yet)."""
    if space.target == "asset" and ids:
        conn.execute("SELECT pgsearch.write_asset_sketches(%s, %s)", (space.id, list(ids)))


def sketch_center(conn: psycopg.Connection, space: Space, vectors: np.ndarray) -> np.ndarray:
    """The space's sketch centre, set from `vectors` when it has none (the first writer wins; a
    concurrent one waits on the row and then reads the winner's)."""
    select = "SELECT sketch_center::text FROM pgsearch.embedding_spaces WHERE id = %s"
    row = conn.execute(select, (space.id,)).fetchone()
    if row is None or row[0] is None:
        conn.execute(
            "UPDATE pgsearch.embedding_spaces SET sketch_center = %s::halfvec WHERE id = %s AND sketch_center IS NULL",
            ("[" + ",".join(repr(float(x)) for x in sketches.center_of(vectors)) + "]", space.id),
        )
        row = conn.execute(select, (space.id,)).fetchone()
    assert row is not None and row[0] is not None
    return np.array(json.loads(row[0]), dtype=np.float16)


def new_asset_sketches(
    conn: psycopg.Connection, space: Space, ids: Sequence[int], vectors: np.ndarray
) -> dict[int, str]:
    """assets.sketches array text by asset id, for new asset rows whose vectors are `vectors`."""
    if not ids:
        return {}
    center = sketch_center(conn, space, vectors)
    texts = sketches.sketch_texts(vectors, center)
    return {i: sketches.sketches_array_text(space.id, t) for i, t in zip(ids, texts, strict=True)}
