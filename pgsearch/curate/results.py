"""Where the curation tools keep their per-item results (sql/curation_scores.sql): each tool
replaces its results for a space as a fresh partition filled by binary COPY, and records the run in
pgsearch.curation_runs. The query language and the views read the latest run per (dataset, target,
tool).

    TOOLS["outliers"]   -> pgsearch.uniqueness_scores, partition uniqueness_<space>
    TOOLS["mislabels"]  -> pgsearch.mislabel_scores,   partition mislabels_<space>
    TOOLS["duplicates"] -> pgsearch.duplicate_members, partition duplicates_<space>
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

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
    and records the run, in one transaction; returns the run id. started: time.monotonic() at the
    start of the run, for its recorded duration."""
    table = TOOLS[tool]
    partition = sql.Identifier("pgsearch", f"{table.prefix}{space.id}")
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("space_id", *table.columns))
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(partition))
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN ({})").format(
                partition, sql.Identifier("pgsearch", table.parent), sql.Literal(space.id)
            )
        )
        with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(partition, columns)) as copy,
        ):
            copy.set_types(["int8", *table.types])
            for row in rows:
                copy.write_row((space.id, *row))
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
    conn.execute(sql.SQL("ANALYZE {}").format(partition))
    assert found is not None
    return int(found[0])


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
