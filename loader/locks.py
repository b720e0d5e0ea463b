"""One writer per dataset at a time: `pgsearch load` and `pgsearch embed` of the same dataset
serialise on a session-level advisory lock instead of racing into unique violations (two loads
inserting the same filenames, two embeds the same vectors).

The second one waits, saying so once on stderr, and then finds the first one's work done (a
load skips unchanged files, an embed has nothing pending), so the result equals one run. The
lock is the session's: it goes when the command ends or its connection dies (kill -9 included).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from pgsearch.datasets import check_dataset_name

# Namespaces the key, so another application's advisory locks on the same server do not collide.
_KEY = "SELECT hashtextextended('pgsearch: write dataset ' || %s, 0)"


@contextmanager
def dataset_writer(conn: psycopg.Connection, dataset: str, command: str) -> Iterator[None]:
    """Holds the dataset's write lock for the block; waits for another holder first."""
    check_dataset_name(dataset)  # before it reaches the server as part of the key
    key = conn.execute(_KEY, (dataset,)).fetchone()
    assert key is not None
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key[0],)).fetchone()
    if not (got and got[0]):
        print(
            f"pgsearch {command}: another load or embed of dataset {dataset!r} is running; waiting for it to finish",
            file=sys.stderr,
        )
        conn.execute("SELECT pg_advisory_lock(%s)", (key[0],))
    # A load or embed runs for as long as it needs: a session opened with the API's search
    # timeouts (pgsearch.connect) must not cancel a COPY or an index build half-way.
    bounds = conn.execute(
        "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')"
    ).fetchone()
    conn.execute("SET statement_timeout = 0")
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    conn.commit()  # the lock is the session's, not the transaction's
    try:
        yield
    finally:
        if not conn.closed:
            # Whatever the block left open is not committed here: a failed load or embed keeps
            # only what it committed itself (one transaction per batch).
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (key[0],))
            if bounds is not None:
                conn.execute("SELECT set_config('statement_timeout', %s, false)", (bounds[0],))
                conn.execute(
                    "SELECT set_config('idle_in_transaction_session_timeout', %s, false)", (bounds[1],)
                )
            conn.commit()
