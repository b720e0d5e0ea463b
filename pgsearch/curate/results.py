"""Where the curation tools keep their per-item results (sql/curation_scores.sql): each tool
replaces its results for a space as a fresh partition filled by binary COPY (replace_partition:
readers are not held up and see the old results or the new ones), and records the run in
pgsearch.curation_runs. The query language and the views read the latest run per (dataset, target,
tool); a tool that reuses an older run records it again (record_again) so that it is the latest.

    TOOLS["outliers"]   -> pgsearch.uniqueness_scores, partition uniqueness_<space>
    TOOLS["mislabels"]  -> pgsearch.mislabel_scores,   partition mislabels_<space>
    TOOLS["duplicates"] -> pgsearch.duplicate_members, partition duplicates_<space>
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgsearch.curate.spaces import CurationError
from pgsearch.loader.spaces import Space


@dataclass(frozen=True)
class ToolTable:
    parent: str  # the partitioned table in schema pgsearch
    prefix: str  # its partitions are <prefix><space id>
    columns: tuple[str, ...]  # after space_id, in COPY order
    types: tuple[str, ...]  # PostgreSQL types of `columns`, for binary COPY


TOOLS: dict[str, ToolTable] = {
    "outliers": ToolTable(
        "uniqueness_scores",
        "uniqueness_",
        ("item_id", "uniqueness", "knn_distance", "cluster_size"),
        ("int8", "float4", "float4", "int4"),
    ),
    "mislabels": ToolTable(
        "mislabel_scores",
        "mislabels_",
        ("item_id", "label", "mislabel_score", "suggested_label"),
        ("int8", "text", "float4", "text"),
    ),
    "duplicates": ToolTable(
        "duplicate_members",
        "duplicates_",
        ("item_id", "duplicate_group", "representative", "kind", "distance"),
        ("int8", "int8", "bool", "text", "float4"),
    ),
}


@dataclass(frozen=True)
class RunInfo:
    """A recorded run of a tool, with how far the space has moved on since."""

    run_id: int
    tool: str
    items: int
    flagged: int | None
    seconds: float | None
    params: dict[str, Any]
    created_at: str
    changed_since: int  # items of the space added or changed after the run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Replacing a partition (replace_partition): the new rows go into a table of their own first; the
# swap at the end waits at most LOCK_TIMEOUT_S per try for the locks it needs (every new reader of
# the table queues behind a waiting lock request, so it must not wait long), SWAP_TRIES tries. A
# session with an open transaction that read the table holds the swap up for as long as that
# transaction lasts: then the rows are rewritten in place instead, which no reader's lock blocks
# (LOCK_TRIES tries against other writers). RETRY_PAUSE_S between tries.
LOCK_TIMEOUT_S = 2.0
SWAP_TRIES = 2
LOCK_TRIES = 3
RETRY_PAUSE_S = 0.5

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN c.collname END
  FROM pg_attribute AS a
  JOIN pg_type AS t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN pg_collation AS c ON c.oid = a.attcollation
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""

# CHECK constraints (a partition must have all of its parent's), primary key and unique constraints.
_CONSTRAINTS_SQL = """
SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = %s::regclass AND contype IN ('c', 'p', 'u') ORDER BY contype, conname
"""

# Indexes that back no constraint (the parents have none today).
_INDEXES_SQL = """
SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
 WHERE i.indrelid = %s::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
 ORDER BY c.relname
"""

_ATTACHED_SQL = """
SELECT c.oid IS NOT NULL, EXISTS (SELECT 1 FROM pg_inherits AS i WHERE i.inhrelid = c.oid AND i.inhparent = %s::regclass)
  FROM (SELECT to_regclass(%s) AS oid) AS c
"""


@dataclass(frozen=True)
class _Index:
    suffix: str  # of its name: <table>_<suffix>
    constraint: str | None  # ADD CONSTRAINT ... <constraint> (PRIMARY KEY (...), UNIQUE (...))
    using: str | None  # CREATE [UNIQUE] INDEX ... ON <table> <using> (USING btree (...) ...)
    unique: bool = False

    def statement(self, table: sql.Identifier, name: str) -> sql.Composed:
        if self.constraint is not None:
            return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                table, sql.Identifier(name)
            ) + sql.SQL(self.constraint)  # fmt: skip
        kind = "CREATE UNIQUE INDEX {} ON {} " if self.unique else "CREATE INDEX {} ON {} "
        return sql.SQL(kind).format(sql.Identifier(name), table) + sql.SQL(self.using or "")


def _suffix(name: str, parent: str) -> str:
    return name[len(parent) + 1 :] if name.startswith(f"{parent}_") else name


def _definition(conn: psycopg.Connection, parent: str) -> tuple[list[sql.Composable], list[_Index]]:
    """The columns (with defaults, NOT NULL and collations) and CHECK constraints of a table like
    pgsearch.`parent`, and its indexes. Read from the catalog: unlike CREATE TABLE (LIKE parent),
    this takes no lock on the parent, which a long COPY would then hold up to its end, holding up
    the swap of every other writer of the same parent (another space's results)."""
    qualified = f"pgsearch.{parent}"
    items: list[sql.Composable] = []
    for name, type_name, not_null, default, collation in conn.execute(_COLUMNS_SQL, (qualified,)):
        column: sql.Composable = sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_name))
        if collation is not None:
            column += sql.SQL(" COLLATE {}").format(sql.Identifier(collation))
        if default is not None:
            column += sql.SQL(" DEFAULT ") + sql.SQL(default)
        if not_null:
            column += sql.SQL(" NOT NULL")
        items.append(column)
    indexes: list[_Index] = []
    for name, kind, definition in conn.execute(_CONSTRAINTS_SQL, (qualified,)):
        if kind == "c":
            items.append(sql.SQL("CONSTRAINT {} ").format(sql.Identifier(name)) + sql.SQL(definition))
        else:
            indexes.append(_Index(_suffix(name, parent), definition, None))
    for name, definition in conn.execute(_INDEXES_SQL, (qualified,)):
        # "CREATE [UNIQUE] INDEX name ON ONLY pgsearch.parent USING ..."
        head, _, rest = definition.partition(" ON ONLY ")
        using = rest.split(" ", 1)[1] if " " in rest else ""
        indexes.append(_Index(_suffix(name, parent), None, using, unique=head.startswith("CREATE UNIQUE")))
    return items, indexes


def replace_partition(
    conn: psycopg.Connection,
    parent: str,
    partition: str,
    space_id: int,
    columns: Sequence[str],
    rows: Iterable[Any],
    *,
    types: Sequence[str] | None = None,
    freeze: bool = False,
    in_place: bool = True,
    lock_timeout_s: float | None = None,
) -> None:
    """Replaces partition pgsearch.`partition` (FOR VALUES IN (space_id)) of pgsearch.`parent` with
    `rows`, so that readers see the old rows or the new ones, never none nor an error.

    `columns`: the COPY column list (space_id included, as in each row); `rows`: tuples in that
    order with `types` their PostgreSQL types, or with types None chunks of binary COPY data
    (pgsearch.curate.copyio's writers). freeze: COPY FREEZE (the rows are then never rewritten by
    a later VACUUM); only where the caller's transaction holds no older snapshot nor open cursor,
    e.g. one it has just begun.

    The rows go by binary COPY into a new table (the parent's columns and constraints, read from
    the catalog, plus CHECK (space_id = N) so that ATTACH skips its scan); its indexes are built
    once it is full. Then the swap, under lock_timeout: DETACH the old partition (this takes the
    parent's ACCESS EXCLUSIVE lock, for the moment the swap takes), DROP it, ATTACH the new one
    (SHARE UPDATE EXCLUSIVE on the parent, which readers do not conflict with). When a session
    holds the table (an open transaction that read it, or the views over it), the swap gives up
    after SWAP_TRIES tries and the old partition's rows are replaced in place instead (DELETE and
    INSERT, which readers' locks do not block); when even that cannot get its lock (another
    writer's), CurationError naming the table. in_place=False: no rewrite in place (it leaves as
    many dead rows as it writes, for VACUUM), CurationError as soon as the swap gives up.
    lock_timeout_s: the wait per try (default LOCK_TIMEOUT_S).

    Runs inside a transaction (a savepoint of the caller's when one is open): the lock the swap
    took is held until that transaction ends, so the caller should commit right after."""
    timeout = LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s
    qualified = sql.Identifier("pgsearch", partition)
    staged_name = f"{partition}_new_{uuid.uuid4().hex[:8]}"
    staged = sql.Identifier("pgsearch", staged_name)
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    with conn.transaction():
        previous = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
        items, indexes = _definition(conn, parent)
        check = sql.SQL("CONSTRAINT {} CHECK (space_id = {})").format(
            sql.Identifier(f"{partition}_space"[:63]), sql.Literal(space_id)
        )
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(staged, sql.SQL(", ").join([*items, check])))
        options = sql.SQL("FORMAT binary, FREEZE" if freeze else "FORMAT binary")
        with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN ({})").format(staged, names, options)) as copy,
        ):
            if types is None:
                for chunk in rows:
                    copy.write(chunk)
            else:
                copy.set_types(list(types))
                for row in rows:
                    copy.write_row(row)
        for index in indexes:
            conn.execute(index.statement(staged, f"{staged_name}_{index.suffix}"[:63]))
        conn.execute(sql.SQL("ANALYZE {}").format(staged))

        def wait_at_most(seconds: float) -> None:
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(seconds * 1000)}ms",))

        def swap() -> None:
            wait_at_most(timeout)
            # One swap of this parent at a time (SHARE UPDATE EXCLUSIVE conflicts with itself, not
            # with readers), so that the old partition found is the one detached.
            conn.execute(
                sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(
                    sql.Identifier("pgsearch", parent)
                )
            )
            exists, attached = _state(conn, parent, partition)
            if attached:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier("pgsearch", parent), qualified
                    )
                )
            if exists:
                conn.execute(sql.SQL("DROP TABLE {}").format(qualified))
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(staged, sql.Identifier(partition)))
            for index in indexes:
                wanted = f"{partition}_{index.suffix}"[:63]
                taken = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL", (f'pgsearch."{wanted}"',)
                ).fetchone()
                if taken and not taken[0]:
                    conn.execute(
                        sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                            sql.Identifier("pgsearch", f"{staged_name}_{index.suffix}"[:63]),
                            sql.Identifier(wanted),
                        )
                    )
            conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
                    sql.Identifier("pgsearch", parent), qualified, sql.Literal(space_id)
                )
            )

        rewritten: list[bool] = []

        def rewrite() -> bool:
            """The old partition's rows replaced in place; False when there is none to rewrite."""
            wait_at_most(timeout)
            _, attached = _state(conn, parent, partition)
            if not attached:
                return False
            rewritten.append(True)
            # One writer at a time (SHARE ROW EXCLUSIVE conflicts with itself and with a swap's
            # ACCESS EXCLUSIVE, not with readers).
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(qualified))
            conn.execute(sql.SQL("DELETE FROM {}").format(qualified))
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(qualified, names, names, staged)
            )
            conn.execute(sql.SQL("DROP TABLE {}").format(staged))
            conn.execute(sql.SQL("ANALYZE {}").format(qualified))
            return True

        if not _tries(conn, swap, SWAP_TRIES) and not (in_place and _tries(conn, rewrite, LOCK_TRIES)):
            blocked = partition if rewritten else parent
            raise CurationError(
                f"another session holds a lock on pgsearch.{blocked} (an open transaction that uses "
                "it, or another tool writing the same results) and kept it for longer than this "
                f"waits ({timeout:g} s a try): nothing was stored; run the command again when it is "
                "done (pg_stat_activity and pg_locks show who holds it)"
            )
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (previous[0] if previous else "0",))


def _state(conn: psycopg.Connection, parent: str, partition: str) -> tuple[bool, bool]:
    """(a table pgsearch.`partition` exists, it is a partition of pgsearch.`parent`)."""
    row = conn.execute(_ATTACHED_SQL, (f"pgsearch.{parent}", f'pgsearch."{partition}"')).fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)


def _tries(conn: psycopg.Connection, step: Callable[[], bool | None], tries: int) -> bool:
    """Runs `step` in a savepoint up to `tries` times while it fails for a lock it did not get;
    True when it went through (and did not return False)."""
    for attempt in range(tries):
        if attempt:
            time.sleep(RETRY_PAUSE_S * attempt)
        try:
            with conn.transaction():
                went = step()
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            continue
        return went is not False
    return False


def write_results(
    conn: psycopg.Connection,
    space: Space,
    tool: str,
    rows: Iterable[Sequence[Any]],
    *,
    items: int,
    flagged: int | None,
    params: dict[str, Any],
    started: float,
) -> int:
    """Replaces `tool`'s results for `space` with `rows` (tuples in TOOLS[tool].columns order)
    and records the run, in one transaction (replace_partition: readers of the old results are
    not held up, and see the old results or the new ones); returns the run id. started:
    time.monotonic() at the start of the run, for its recorded duration. Commits: the
    connection's open transaction first, then the results with the run."""
    table = TOOLS[tool]
    conn.commit()
    with conn.transaction():
        replace_partition(
            conn,
            table.parent,
            f"{table.prefix}{space.id}",
            space.id,
            ("space_id", *table.columns),
            ((space.id, *row) for row in rows),
            types=("int8", *table.types),
            freeze=True,
        )
        found = conn.execute(
            "INSERT INTO pgsearch.curation_runs (dataset_id, space_id, target, tool, params, items, flagged, seconds)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                space.dataset_id,
                space.id,
                space.target,
                tool,
                Jsonb(params),
                items,
                flagged,
                time.monotonic() - started,
            ),
        ).fetchone()
    assert found is not None
    return int(found[0])


def record_again(conn: psycopg.Connection, space: Space, tool: str, run_id: int) -> int:
    """Makes run `run_id` (of `tool` on `space`, whose results are reused) the latest of its
    (dataset, target, tool), the one the query language and the views read: when another space's
    run is newer (another model's), the run is recorded again, a new curation_runs row with the
    same space, parameters, counts and created_at (so that what changed since is still counted
    from when the results were computed; params.recorded_from names the run computed). Returns
    the run id the fields now read (run_id itself when it already was the latest). Commits."""
    latest = conn.execute(
        "SELECT max(id) FROM pgsearch.curation_runs WHERE dataset_id = %s AND target = %s AND tool = %s",
        (space.dataset_id, space.target, tool),
    ).fetchone()
    if latest is None or latest[0] is None or int(latest[0]) == run_id:
        conn.commit()
        return run_id
    found = conn.execute(
        "INSERT INTO pgsearch.curation_runs"
        " (dataset_id, space_id, target, tool, params, items, flagged, seconds, created_at)"
        " SELECT dataset_id, space_id, target, tool,"
        "        params || jsonb_build_object('recorded_from', coalesce(params -> 'recorded_from', to_jsonb(id))),"
        "        items, flagged, seconds, created_at"
        "   FROM pgsearch.curation_runs WHERE id = %s AND space_id = %s AND tool = %s RETURNING id",
        (run_id, space.id, tool),
    ).fetchone()
    conn.commit()
    return run_id if found is None else int(found[0])


def latest_run(conn: psycopg.Connection, space: Space, tool: str) -> RunInfo | None:
    """The latest run of `tool` on `space`, with the number of the space's items added or changed
    after it (new vectors, reloaded files): its results are stale for those."""
    row = conn.execute(
        "SELECT id, items, flagged, seconds, params, created_at FROM pgsearch.curation_runs"
        " WHERE space_id = %s AND tool = %s ORDER BY id DESC LIMIT 1",
        (space.id, tool),
    ).fetchone()
    if row is None:
        return None
    key = sql.Identifier("asset_id" if space.target == "asset" else "shape_id")
    states = sql.Identifier("pgsearch", f"{space.target}_embedding_state")
    table = TOOLS[tool]
    # Changed: the item's vector was written after the run (its embedding state row is rewritten
    # with every vector: a new or reloaded file). A group or status edit of the asset row is not a
    # change of what the tools compute from. Tools that score every item (all but duplicates,
    # which stores only the items that have a duplicate) also count items with no result row.
    changed = sql.SQL(
        "EXISTS (SELECT 1 FROM {states} AS st WHERE st.space_id = %(space)s AND st.{key} = e.{key}"
        " AND st.updated_at > %(at)s)"
    ).format(states=states, key=key)
    if tool != "duplicates":
        changed = sql.SQL("({} OR NOT EXISTS (SELECT 1 FROM {} AS r WHERE r.item_id = e.{}))").format(
            changed, sql.Identifier("pgsearch", f"{table.prefix}{space.id}"), key
        )
    count = conn.execute(
        sql.SQL("SELECT count(*) FROM {vectors} AS e WHERE {changed}").format(
            vectors=sql.Identifier("pgsearch", space.table_name), changed=changed
        ),
        {"space": space.id, "at": row[5]},
    ).fetchone()
    return RunInfo(
        run_id=int(row[0]),
        tool=tool,
        items=int(row[1] or 0),
        flagged=None if row[2] is None else int(row[2]),
        seconds=row[3],
        params=dict(row[4]),
        created_at=row[5].isoformat(),
        changed_since=int(count[0]) if count else 0,
    )
