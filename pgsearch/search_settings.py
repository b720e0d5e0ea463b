"""The session settings the query layer sets on its connection before a similarity search.

pgvector's defaults answer a filtered `ORDER BY distance LIMIT k` with fewer than k rows, silently
(ef_search 40 and no iterative scan: about 4 rows of 100 under a 10% filter). These settings, with
the statement shape of translator/statement.py (a sampled route, an HNSW path in a CTE and an
exact path that runs when the route or a short walk asks for it), give exactly k rows quickly;
bench/query.py measures them and bench/README.md has the numbers (1,000,000 x 512-d halfvec,
m 16, ef_construction 128, 2 cores).

- The exact path ranks the filtered asset rows by the sketch they carry (sql/sketches.sql) and
  looks up the vectors of the best max(1,000, 10 k) only, in one scan of the partition's primary
  key (which leads with the item id).
- The planner still picks the plan inside each path: with a filter it can estimate (status =,
  groups @>, label_counts, an indexed metadata field: `pgsearch index add`) and an index serves,
  the exact path reads only the matching rows. A range on an unindexed metadata field cannot be
  estimated or served: the exact path then reads the whole assets table.
- `-$q` (the negated vector) in the walk's ORDER BY gives "least similar" through the same index;
  the reported distance is `e.embedding <=> $q`.
"""

from __future__ import annotations

import math

import psycopg

SEARCH_SETTINGS: dict[str, str] = {
    # Keep walking the graph until LIMIT rows pass the filter. relaxed_order may return rows
    # slightly out of order, so the statement re-sorts the CTE's rows by distance; strict_order
    # measured lower recall at the same ef_search (0.65 against 0.81 under a 10% filter, 100k).
    "hnsw.iterative_scan": "relaxed_order",
    # Candidate list of each graph walk. At 1M clustered vectors and k = 100, 100 gave recall@100
    # 0.94 unfiltered; 400 gave 0.97 unfiltered and 0.96 under a 10% filter; 1000 gained 0.02 for
    # 1.5-2x the time.
    "hnsw.ef_search": "400",
    # Give up the index walk after visiting this many tuples; under a narrow filter the exact path
    # answers instead. Every visit costs an assets lookup for the filter, so this bounds the
    # wasted walk (about 100-150 ms at 1M).
    "hnsw.max_scan_tuples": "20000",
    # Memory for the iterative walk's candidate queues, in multiples of work_mem.
    "hnsw.scan_mem_multiplier": "2",
    # Parameters (the filter's literals, k) decide between the index and the exact path; a cached
    # generic plan would choose once for all of them. psycopg prepares after 5 runs otherwise.
    "plan_cache_mode": "force_custom_plan",
    # The exact path's sort of one filter's rows must not spill to disk.
    "work_mem": "64MB",
}


# Bounds on the sessions of `pgsearch query` and the API (pgsearch.connect): a search that runs
# longer is cancelled by the server itself, so it stops even when its client is gone or stuck;
# `pgsearch query --timeout` and connect(statement_timeout=...) change it, 0 lifts it. Tens of
# seconds: an indexed search over 1M rows answers in well under a second (bench/README.md),
# while an unindexed regex over 500k rows ran 98 s.
STATEMENT_TIMEOUT_S = 30.0
# A session that leaves a transaction open holds its snapshot and locks, which makes
# `pgsearch index add` wait and every query queue behind it; the server ends such a session.
# The API commits after every call, so only plain SQL on Client.conn can leave one open.
IDLE_IN_TRANSACTION_TIMEOUT_S = 60.0


def session_limits(
    statement_timeout: float | None = STATEMENT_TIMEOUT_S,
    idle_in_transaction_timeout: float | None = IDLE_IN_TRANSACTION_TIMEOUT_S,
) -> dict[str, str]:
    """The timeouts as session settings (milliseconds; None or 0: no limit)."""
    return {
        "statement_timeout": _milliseconds(statement_timeout),
        "idle_in_transaction_session_timeout": _milliseconds(idle_in_transaction_timeout),
    }


def check_timeout(name: str, value: object) -> float | None:
    """`value` as seconds (None or 0: no limit); ValueError naming `name` when it is no
    non-negative finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}= must be a number of seconds >= 0 (0 or None: no limit), not {value!r}")
    return float(value)


def _milliseconds(seconds: float | None) -> str:
    if not seconds:
        return "0"
    # At least 1 ms: a positive timeout that rounds to 0 would mean none at all.
    return f"{max(1, round(seconds * 1000))}ms"


def libpq_options(settings: dict[str, str] | None = None) -> str:
    """The settings as a libpq `options` value: `-c name=value ...`, applied at connect time.

    Use as pgsearch.db.connect(dsn, options=libpq_options()); spaces and backslashes inside values
    are escaped as libpq requires.
    """
    chosen = SEARCH_SETTINGS if settings is None else settings
    parts = []
    for name, value in chosen.items():
        escaped = value.replace("\\", "\\\\").replace(" ", "\\ ")
        parts.append(f"-c {name}={escaped}")
    return " ".join(parts)


def apply_settings(
    conn: psycopg.Connection, settings: dict[str, str] | None = None, *, local: bool = False
) -> None:
    """Sets the settings on an open connection (for the session, or with local=True for the
    current transaction only)."""
    chosen = SEARCH_SETTINGS if settings is None else settings
    for name, value in chosen.items():
        conn.execute("SELECT set_config(%s, %s, %s)", (name, value, local))
