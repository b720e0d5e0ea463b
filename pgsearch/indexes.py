"""Indexes on user metadata fields (metadata.KEY on assets, attributes.KEY on shapes).

A filter on such a field compiles to `<the value as a number|string|boolean> op literal`
(translator.indexing). Without an index PostgreSQL reads every row of the table to answer it and
cannot estimate how many rows match; an index on exactly that expression answers narrow filters
from the index, and ANALYZE then keeps statistics on the expression, so the planner picks the
right plan and the similarity search's exact path stays fast.

Each index is a btree on (dataset_id, value) over the whole table, named after the field and
commented `pgsearch field index: {"field": ..., "kind": ...}` so that `list` finds it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgsearch.errors import NotFound, PgsearchError
from pgsearch.translator.errors import QueryError
from pgsearch.translator.indexing import INDEXABLE_KINDS, IndexableField, indexable_field

COMMENT_PREFIX = "pgsearch field index: "
# Rows carrying the field that `add` reads to guess the kind of its values.
KIND_SAMPLE_ROWS = 10_000


class FieldIndexError(PgsearchError):
    """The field cannot be indexed as asked."""


@dataclass(frozen=True)
class FieldIndex:
    name: str
    field: str
    kind: str
    table: str
    size_bytes: int


def field_for(field: str, kind: str) -> IndexableField:
    if not field.strip():
        raise FieldIndexError("name a field to index: metadata.KEY (assets) or attributes.KEY (shapes)")
    try:
        return indexable_field(field, kind)
    except QueryError as exc:
        raise FieldIndexError(f"cannot index {field!r}: {exc}") from None


def guess_kind(conn: psycopg.Connection, field: str) -> str:
    """The kind most of the field's values have, from up to KIND_SAMPLE_ROWS rows that carry it."""
    candidates = {kind: field_for(field, kind) for kind in INDEXABLE_KINDS}
    any_field = next(iter(candidates.values()))
    counts = sql.SQL(", ").join(
        sql.SQL("count({})").format(sql.SQL(candidate.expression)) for candidate in candidates.values()
    )
    present = sql.SQL(" OR ").join(
        sql.SQL("({}) IS NOT NULL").format(sql.SQL(c.expression)) for c in candidates.values()
    )
    row = conn.execute(
        sql.SQL("SELECT {} FROM (SELECT * FROM pgsearch.{} WHERE {} LIMIT {}) AS carrying").format(
            counts, sql.Identifier(any_field.table), present, sql.Literal(KIND_SAMPLE_ROWS)
        )
    ).fetchone()
    assert row is not None
    best = max(zip(candidates, row, strict=True), key=lambda pair: pair[1])
    if best[1] == 0:
        raise NotFound(
            f"no row has a number, string or boolean at {any_field.field}; "
            "check the name, or name the kind with --as to index it before loading"
        )
    return str(best[0])


def index_name(field: IndexableField) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", field.field.lower()).strip("_")[:32]
    digest = hashlib.sha1(f"{field.field}\x00{field.kind}".encode()).hexdigest()[:8]
    return f"{field.table}_{slug}_{field.kind}_{digest}"


def add_index(conn: psycopg.Connection, field: str, kind: str | None = None) -> FieldIndex:
    """Creates (if missing) the index for `field` compared as `kind` (guessed from the data when
    None), then ANALYZEs the table so the planner has the expression's statistics."""
    chosen = kind or guess_kind(conn, field)
    target = field_for(field, chosen)
    name = index_name(target)
    expression = sql.SQL(target.expression)
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON pgsearch.{} (dataset_id, ({}))").format(
            sql.Identifier(name), sql.Identifier(target.table), expression
        )
    )
    comment = COMMENT_PREFIX + json.dumps({"field": target.field, "kind": chosen})
    conn.execute(
        sql.SQL("COMMENT ON INDEX pgsearch.{} IS {}").format(sql.Identifier(name), sql.Literal(comment))
    )
    conn.execute(sql.SQL("ANALYZE pgsearch.{}").format(sql.Identifier(target.table)))
    conn.commit()
    return next(i for i in list_indexes(conn) if i.name == name)


def list_indexes(conn: psycopg.Connection) -> list[FieldIndex]:
    rows = conn.execute(
        "SELECT c.relname, t.relname, obj_description(c.oid, 'pg_class'), pg_relation_size(c.oid)"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
        " WHERE t.relnamespace = 'pgsearch'::regnamespace"
        " AND starts_with(coalesce(obj_description(c.oid, 'pg_class'), ''), %s) ORDER BY c.relname",
        (COMMENT_PREFIX,),
    ).fetchall()
    found = []
    for name, table, comment, size in rows:
        info = json.loads(comment[len(COMMENT_PREFIX) :])
        found.append(FieldIndex(name, info["field"], info["kind"], table, size))
    return found


def drop_index(conn: psycopg.Connection, field: str, kind: str | None = None) -> list[FieldIndex]:
    """Drops the field's indexes (of `kind`, or of every kind); NotFound when there is none."""
    normalised = field_for(field, kind or "number").field
    doomed = [i for i in list_indexes(conn) if i.field == normalised and kind in (None, i.kind)]
    if not doomed:
        known = ", ".join(sorted({i.field for i in list_indexes(conn)})) or "none"
        raise NotFound(f"no index on {normalised}{' as ' + kind if kind else ''} (indexed fields: {known})")
    for index in doomed:
        conn.execute(sql.SQL("DROP INDEX pgsearch.{}").format(sql.Identifier(index.name)))
    conn.commit()
    return doomed
