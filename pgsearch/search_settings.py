"""The session settings the query layer sets on its connection before a similarity search.

pgvector's defaults answer a filtered `ORDER BY distance LIMIT k` with fewer than k rows, silently
(ef_search 40 and no iterative scan: about 4 rows of 100 under a 10% filter). These settings, with
the statement shape below, give exactly k rows; bench/query.py measures them and bench/README.md
has the numbers (1,000,000 x 512-d halfvec, m 16, 2 cores).

The statement shape they are chosen for (one statement, exactly k rows whenever k match):

    WITH ann AS MATERIALIZED (                    -- index path
        SELECT a.id, ..., (e.embedding::halfvec(512) <=> $q) AS distance
          FROM pgsearch.asset_embeddings_<space> AS e
          JOIN pgsearch.assets AS a ON a.id = e.asset_id AND e.space_id = $space
         WHERE a.dataset_id = $d AND <filter>
         ORDER BY e.embedding::halfvec(512) <=> $q      -- the indexed expression, verbatim
         LIMIT $k)
    SELECT * FROM (
        SELECT * FROM ann WHERE (SELECT count(*) FROM ann) >= $k
        UNION ALL
        (SELECT ..., (e.embedding <=> $q) AS distance  -- exact path: no cast, the index cannot serve it
           FROM ... same joins ... WHERE <same filter> AND (SELECT count(*) FROM ann) < $k
          ORDER BY (e.embedding <=> $q) + 0 LIMIT $k)
    ) AS hits ORDER BY distance LIMIT $k

- The partition's primary key leads with the item id, so each exact-path lookup from a filtered
  asset is one index descent. (The benchmark ran on the earlier (space_id, asset_id) key with
  `e.space_id = $space` in the join; without that condition PostgreSQL 18 needed a skip scan, three
  descents per asset, and 15-17 would scan the whole key. The condition is harmless either way.)
- The `count(*) < $k` conditions are one-time filters: the exact branch only runs when the index
  path came up short (a narrow filter after max_scan_tuples, or fewer than k items).
- The planner still picks the plan inside `ann`: for a narrow filter it can estimate (status =,
  groups @>, label_counts ?) it sorts the filtered rows exactly, which is right; predicates it
  cannot estimate ((metadata ->> 'key')::numeric < x) get a default selectivity, so it walks the
  graph. Filters the planner can estimate and an index can serve are what keep this fast.
- `-$q` (the negated vector) in both ORDER BYs gives "least similar" through the same index; report
  `e.embedding <=> $q` as the distance.
"""

from __future__ import annotations

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
