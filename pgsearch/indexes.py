"""Indexes on user metadata fields (metadata.KEY on assets, attributes.KEY on shapes).

A filter on such a field compiles to `<the value as a number|string|boolean> op literal`
(translator.indexing). Without an index PostgreSQL reads every row of the table to answer it and
cannot estimate how many rows match; with one, narrow filters come from the index, and ANALYZE
keeps statistics on the value, so the planner picks the right plan and the similarity search's
exact path stays fast.

Each field gets a stored generated column holding that expression's value, and a btree on
(dataset_id, column) over the whole table; on assets the btree also carries (INCLUDE) the id and
the sketches, so the exact path of a similarity search filtered on the field reads the index
alone (translator/covering.py). The translator reads the column in place of the expression (the
catalog lists the columns). Index and column share a name derived from the field and kind; the
index is commented `pgsearch field index: {"field": ..., "kind": ..., "column": ...}` so that
`list` finds it.
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
    # The generated column the index is on; None for an index on the expression (made before the
    # columns; `add` replaces it).
    column: str | None = None


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


# The column type per kind. Strings are collated "C": the translator compares strings byte-wise
# (`value COLLATE "C" < $1`), so an index on a "C" column serves ranges as well as equality.
COLUMN_TYPES = {"number": "numeric", "string": 'text COLLATE "C"', "boolean": "boolean"}


def add_index(conn: psycopg.Connection, field: str, kind: str | None = None) -> FieldIndex:
    """Creates (if missing) the generated column and the index for `field` compared as `kind`
    (guessed from the data when None), then VACUUMs and ANALYZEs the table: the visibility map
    lets the index answer without the rows, and the statistics estimate the filter.

    Adding a stored column rewrites the table (about 7 s per million assets here), holding an
    exclusive lock on it meanwhile. An index made by an earlier version (on the expression, no
    column) is replaced."""
    chosen = kind or guess_kind(conn, field)
    target = field_for(field, chosen)
    name = index_name(target)
    table = sql.Identifier(target.table)
    # The lock ALTER TABLE needs, taken first: concurrent `add`s queue here instead of
    # deadlocking on the locks list_indexes takes.
    conn.execute(sql.SQL("LOCK TABLE pgsearch.{} IN ACCESS EXCLUSIVE MODE").format(table))
    existing = {i.name: i for i in list_indexes(conn, sizes=False)}.get(name)
    if existing is not None and existing.column is None:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS pgsearch.{}").format(sql.Identifier(name)))
    column = sql.Identifier(name)
    conn.execute(
        sql.SQL(
            "ALTER TABLE pgsearch.{} ADD COLUMN IF NOT EXISTS {} {} GENERATED ALWAYS AS ({}) STORED"
        ).format(table, column, sql.SQL(COLUMN_TYPES[chosen]), sql.SQL(target.expression))
    )
    # On assets the index also carries what the exact path of a similarity search reads (the id
    # and the sketches), so a filter on the field is answered by an index-only scan.
    carried = sql.SQL(" INCLUDE (id, sketches)") if target.table == "assets" else sql.SQL("")
    try:
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON pgsearch.{} (dataset_id, {}){}").format(
                sql.Identifier(name), table, column, carried
            )
        )
    except psycopg.errors.ProgramLimitExceeded:
        # A btree entry holds at most about 2,700 bytes: a long text value cannot be indexed.
        conn.rollback()
        longest = _longest_value(conn, target)
        raise FieldIndexError(
            f"cannot index {target.field} as a {chosen}: {longest} is too long for an index entry "
            "(at most about 2,700 bytes); nothing was changed"
        ) from None
    info = json.dumps({"field": target.field, "kind": chosen, "column": name})
    conn.execute(
        sql.SQL("COMMENT ON INDEX pgsearch.{} IS {}").format(
            sql.Identifier(name), sql.Literal(COMMENT_PREFIX + info)
        )
    )
    conn.execute(
        sql.SQL("COMMENT ON COLUMN pgsearch.{}.{} IS {}").format(
            table,
            column,
            sql.Literal(f"{target.field} as a {chosen} (pgsearch index add); NULL when not one"),
        )
    )
    conn.commit()
    _vacuum(conn, target.table)
    return next(i for i in list_indexes(conn) if i.name == name)


def _longest_value(conn: psycopg.Connection, target: IndexableField) -> str:
    if target.kind != "string":
        return "a value"
    row = conn.execute(
        sql.SQL(
            "SELECT {}, octet_length(v) FROM (SELECT {} AS v, {} FROM pgsearch.{}) AS t"
            " ORDER BY octet_length(v) DESC NULLS LAST LIMIT 1"
        ).format(
            sql.SQL("filename") if target.table == "assets" else sql.SQL("id"),
            sql.SQL(target.expression),
            sql.SQL("filename") if target.table == "assets" else sql.SQL("id"),
            sql.Identifier(target.table),
        )
    ).fetchone()
    if row is None:
        return "a value"
    what = f"the value of {row[0]}" if target.table == "assets" else f"the value of shape {row[0]}"
    return f"{what} ({row[1]:,} bytes)"


def _vacuum(conn: psycopg.Connection, table: str) -> None:
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute(sql.SQL("VACUUM (ANALYZE) pgsearch.{}").format(sql.Identifier(table)))
    finally:
        conn.autocommit = autocommit


def list_indexes(conn: psycopg.Connection, *, sizes: bool = True) -> list[FieldIndex]:
    """The field indexes, from their comments (size_bytes 0 unless `sizes`: reading a size takes a
    lock on the index). A comment that does not parse is skipped."""
    rows = conn.execute(
        "SELECT c.relname, t.relname, obj_description(c.oid, 'pg_class'),"
        " CASE WHEN %s THEN pg_relation_size(c.oid) ELSE 0 END"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
        " WHERE t.relnamespace = 'pgsearch'::regnamespace"
        " AND starts_with(coalesce(obj_description(c.oid, 'pg_class'), ''), %s) ORDER BY c.relname",
        (sizes, COMMENT_PREFIX),
    ).fetchall()
    found = []
    for name, table, comment, size in rows:
        try:
            info = json.loads(comment[len(COMMENT_PREFIX) :])
            field, kind, column = info["field"], info["kind"], info.get("column")
        except (ValueError, TypeError, KeyError):
            continue  # someone else's comment, or edited by hand: not an index of ours
        if (
            not isinstance(field, str)
            or kind not in INDEXABLE_KINDS
            or not isinstance(column, (str, type(None)))
        ):
            continue
        found.append(FieldIndex(name, field, kind, table, size, column))
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
        if index.column is not None:
            conn.execute(
                sql.SQL("ALTER TABLE pgsearch.{} DROP COLUMN IF EXISTS {}").format(
                    sql.Identifier(index.table), sql.Identifier(index.column)
                )
            )
    conn.commit()
    return doomed
