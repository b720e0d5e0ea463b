"""Writing curation results next to readers (pgsearch.curate.results.replace_partition): a session
with an open transaction that read the views does not hold write_results up, readers querying
during the write see the old results or the new ones (never none, never an error) and wait at
most a lock timeout, another writer's lock fails fast with a message naming the table, and the
partition swapped in is a proper one (attached without a scan, its indexes, nothing left over)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from pgsearch.cli import cli
from pgsearch.curate import results
from pgsearch.curate.results import latest_run, replace_partition, write_results
from pgsearch.curate.spaces import CurationError
from pgsearch.loader.spaces import Space, ensure_model, ensure_space

N = 120
# Seconds within which a write that a reader holds up must have ended (completed or failed).
PROMPT = 30.0


@pytest.fixture(autouse=True)
def _quick_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "LOCK_TIMEOUT_S", 0.4)
    monkeypatch.setattr(results, "RETRY_PAUSE_S", 0.05)


@pytest.fixture
def demo(conn: psycopg.Connection) -> tuple[Space, Space, list[int]]:
    """Dataset 'demo' with N assets and two asset spaces (models a and b)."""
    ds = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('demo') RETURNING id").fetchone()[0]
    ids = [
        r[0]
        for r in conn.execute(
            "INSERT INTO pgsearch.assets (dataset_id, filename)"
            " SELECT %s, 'img_' || g || '.png' FROM generate_series(1, %s) AS g RETURNING id",
            (ds, N),
        ).fetchall()
    ]
    a = ensure_space(conn, ds, ensure_model(conn, "model-a", 4, False, {}), "asset")
    b = ensure_space(conn, ds, ensure_model(conn, "model-b", 4, False, {}), "asset")
    conn.commit()
    return a, b, sorted(ids)


def write(conn: psycopg.Connection, space: Space, ids: list[int], value: float) -> int:
    """Every item's uniqueness `value`: a version of the results a reader can recognise."""
    rows = [(i, value, 0.1, None) for i in ids]
    return write_results(
        conn,
        space,
        "outliers",
        rows,
        items=len(rows),
        flagged=0,
        params={"v": value},
        started=time.monotonic(),
    )


READ = (
    "SELECT count(uniqueness), count(DISTINCT uniqueness), min(uniqueness)"
    "  FROM pgsearch.v_assets WHERE dataset = 'demo'"
)


@pytest.fixture
def holder(dsn: str) -> Iterator[psycopg.Connection]:
    """A session that reads v_assets in a transaction it keeps open (as `BEGIN; SELECT ... FROM
    pgsearch.v_assets; SELECT pg_sleep(...)` in psql)."""
    conn = psycopg.connect(dsn)
    conn.execute(READ).fetchone()
    yield conn
    conn.close()


def in_thread(target: Any, *args: Any) -> dict[str, Any]:
    """Runs target(*args) in a thread, waiting at most PROMPT seconds: {"result" or "error",
    "seconds", "alive"}."""
    out: dict[str, Any] = {}

    def body() -> None:
        started = time.monotonic()
        try:
            out["result"] = target(*args)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            out["error"] = exc
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(PROMPT)
    out["alive"] = thread.is_alive()
    return out


def partition_facts(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT c.oid, EXISTS (SELECT 1 FROM pg_inherits AS i WHERE i.inhrelid = c.oid"
        "                       AND i.inhparent = 'pgsearch.uniqueness_scores'::regclass),"
        "       (SELECT array_agg(x.relname ORDER BY x.relname) FROM pg_index AS ix"
        "          JOIN pg_class AS x ON x.oid = ix.indexrelid WHERE ix.indrelid = c.oid)"
        "  FROM pg_class AS c WHERE c.relname = %s AND c.relnamespace = 'pgsearch'::regnamespace",
        (name,),
    ).fetchone()
    leftovers = conn.execute(
        "SELECT array_agg(relname) FROM pg_class WHERE relname LIKE %s AND relnamespace = 'pgsearch'::regnamespace",
        (f"{name}_new_%",),
    ).fetchone()[0]
    assert row is not None, f"no table {name}"
    return {"oid": row[0], "attached": row[1], "indexes": row[2], "leftovers": leftovers}


def test_an_open_reader_does_not_hold_up_write_results(
    conn: psycopg.Connection, dsn: str, demo: tuple[Space, Space, list[int]], holder: psycopg.Connection
) -> None:
    a, b, ids = demo
    holder.rollback()
    first = write(conn, a, ids, 0.25)
    swapped = partition_facts(conn, f"uniqueness_{a.id}")["oid"]
    write(conn, a, ids, 0.5)  # nobody holds the table: a new partition swapped in
    assert partition_facts(conn, f"uniqueness_{a.id}")["oid"] != swapped
    swapped = partition_facts(conn, f"uniqueness_{a.id}")["oid"]
    conn.commit()
    holder.execute(READ).fetchone()  # holds every partition of the views' tables, as a reader would
    done = in_thread(write, conn, a, ids, 0.75)
    if done["alive"]:
        holder.close()  # let the writer go before failing
        pytest.fail("write_results waited for a reader's open transaction")
    assert "error" not in done, done.get("error")
    assert done["seconds"] < PROMPT
    second = done["result"]
    assert second > first
    # The reader's next statement (read committed) sees the new results, in the same transaction.
    assert holder.execute(READ).fetchone() == (N, 1, pytest.approx(0.75))
    holder.rollback()
    facts = partition_facts(conn, f"uniqueness_{a.id}")
    assert facts["attached"] and not facts["leftovers"]
    assert facts["oid"] == swapped  # the swap gave up: its rows were rewritten in place
    run = latest_run(conn, a, "outliers")
    assert run is not None and run.run_id == second and run.changed_since == 0
    conn.commit()
    # The first results of another space while the reader holds on: ATTACH takes no lock a
    # reader holds, so this goes straight through.
    holder.execute(READ).fetchone()
    done = in_thread(write, conn, b, ids, 0.5)
    assert not done["alive"] and "error" not in done, done
    assert done["seconds"] < results.LOCK_TIMEOUT_S * 3
    assert partition_facts(conn, f"uniqueness_{b.id}")["attached"]
    assert holder.execute(READ).fetchone() == (N, 1, pytest.approx(0.5))  # b's run is the latest


def test_readers_see_the_old_or_the_new_results_never_none_nor_an_error(
    conn: psycopg.Connection, dsn: str, demo: tuple[Space, Space, list[int]]
) -> None:
    a, _, ids = demo
    write(conn, a, ids, 0.1)
    written = {0.1}
    seen: list[tuple[Any, ...]] = []
    errors: list[BaseException] = []
    slowest = [0.0]
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(dsn, autocommit=True) as reader:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    seen.append(reader.execute(READ).fetchone())
                except Exception as exc:  # noqa: BLE001 - the test says which
                    errors.append(exc)
                slowest[0] = max(slowest[0], time.monotonic() - started)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        values = [0.2, 0.3, 0.4]  # swapped in: nobody holds the table
        for value in values:
            write(conn, a, ids, value)
            written.add(value)
        with psycopg.connect(dsn) as holding:  # rewritten in place: a reader holds the table
            holding.execute(READ).fetchone()
            for value in (0.6, 0.7):
                write(conn, a, ids, value)
                written.add(value)
        write(conn, a, ids, 0.8)
        written.add(0.8)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(PROMPT)
    assert not errors, errors[:3]
    assert len(seen) > 5
    for count, distinct, value in seen:
        assert count == N and distinct == 1, (count, distinct, value)  # all old or all new, never none
        assert min(abs(value - w) for w in written) < 1e-6
    # A reader waits at most a lock timeout or so (the swap queued behind the holding session).
    assert slowest[0] < results.LOCK_TIMEOUT_S * 4 + 2
    facts = partition_facts(conn, f"uniqueness_{a.id}")
    assert facts["attached"] and not facts["leftovers"]
    assert facts["indexes"] == [f"uniqueness_{a.id}_pkey"]


@pytest.mark.parametrize("mode", ["SHARE", "ACCESS EXCLUSIVE"])
def test_a_writers_lock_fails_fast_and_names_the_table(
    conn: psycopg.Connection, dsn: str, demo: tuple[Space, Space, list[int]], mode: str
) -> None:
    a, _, ids = demo
    before = write(conn, a, ids, 0.25)
    with psycopg.connect(dsn) as other:
        other.execute(f"LOCK TABLE pgsearch.uniqueness_{a.id} IN {mode} MODE")
        done = in_thread(write, conn, a, ids, 0.75)
        assert not done["alive"], "write_results waited for another writer's lock"
        error = done.get("error")
        assert isinstance(error, CurationError), done
        assert f"another session holds a lock on pgsearch.uniqueness_{a.id}" in str(error)
        assert "nothing was stored" in str(error) and "run the command again" in str(error)
        assert done["seconds"] < (results.SWAP_TRIES + results.LOCK_TRIES) * (results.LOCK_TIMEOUT_S + 1) + 5
    conn.rollback()
    # Nothing changed: the old results, the old run, no table left over.
    assert conn.execute(READ).fetchone() == (N, 1, pytest.approx(0.25))
    run = latest_run(conn, a, "outliers")
    assert run is not None and run.run_id == before
    facts = partition_facts(conn, f"uniqueness_{a.id}")
    assert facts["attached"] and not facts["leftovers"]
    assert conn.execute("SELECT current_setting('lock_timeout')").fetchone() == ("0",)


def test_a_lock_on_the_parent_before_the_first_results_names_the_parent(
    conn: psycopg.Connection, dsn: str, demo: tuple[Space, Space, list[int]]
) -> None:
    a, _, ids = demo
    with psycopg.connect(dsn) as other:
        other.execute("LOCK TABLE pgsearch.uniqueness_scores IN SHARE UPDATE EXCLUSIVE MODE")
        with pytest.raises(
            CurationError, match="another session holds a lock on pgsearch.uniqueness_scores "
        ):
            write(conn, a, ids, 0.5)
    conn.rollback()
    assert conn.execute("SELECT to_regclass(%s)", (f"pgsearch.uniqueness_{a.id}",)).fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM pgsearch.curation_runs").fetchone() == (0,)
    write(conn, a, ids, 0.5)  # and once it is gone, the write goes through
    assert conn.execute(READ).fetchone() == (N, 1, pytest.approx(0.5))


def test_the_new_partition_is_attached_without_a_scan_and_frozen(
    conn: psycopg.Connection, demo: tuple[Space, Space, list[int]]
) -> None:
    a, _, ids = demo
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    for value in (0.25, 0.5):  # the first results, then a replacement
        conn.execute("SET client_min_messages = debug1")
        conn.commit()
        write(conn, a, ids, value)
        assert any("is implied by existing constraints" in n for n in notices), notices
        notices.clear()
    conn.execute("RESET client_min_messages")
    # COPY FREEZE: the pages are all frozen as written (no later VACUUM rewrites them).
    pages = conn.execute(
        "SELECT relpages, relallfrozen FROM pg_class WHERE oid = %s::regclass",
        (f"pgsearch.uniqueness_{a.id}",),
    ).fetchone()
    assert pages is not None and pages[0] > 0 and pages[1] == pages[0]


def test_replace_partition_takes_binary_chunks_and_keeps_a_callers_transaction(
    conn: psycopg.Connection, demo: tuple[Space, Space, list[int]]
) -> None:
    """As graph.py's write_graph would call it: rows as binary COPY data, inside a transaction of
    the caller's that adds its own row and commits."""
    a, _, ids = demo
    write(conn, a, ids, 0.25)
    with conn.cursor() as cur:  # binary COPY data for two rows, made by psycopg itself
        cur.execute(
            "CREATE TEMP TABLE tmp_rows (space_id int8, item_id int8, uniqueness float4, knn_distance float4)"
        )
        cur.execute(
            "INSERT INTO tmp_rows VALUES (%s, %s, 0.9, 0.2), (%s, %s, 0.8, 0.2)", (a.id, ids[0], a.id, ids[1])
        )
        chunks = []
        with cur.copy("COPY tmp_rows TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                chunks.append(bytes(chunk))
    conn.commit()
    with pytest.raises(RuntimeError), conn.transaction():
        replace_partition(
            conn, "uniqueness_scores", f"uniqueness_{a.id}", a.id,
            ("space_id", "item_id", "uniqueness", "knn_distance"), chunks,
        )  # fmt: skip
        raise RuntimeError("the caller's transaction fails: nothing is replaced")
    assert conn.execute(READ).fetchone() == (N, 1, pytest.approx(0.25))
    with conn.transaction():
        replace_partition(
            conn, "uniqueness_scores", f"uniqueness_{a.id}", a.id,
            ("space_id", "item_id", "uniqueness", "knn_distance"), chunks,
        )  # fmt: skip
    got = conn.execute(
        f"SELECT item_id, uniqueness FROM pgsearch.uniqueness_{a.id} ORDER BY item_id"
    ).fetchall()
    assert got == [(ids[0], pytest.approx(0.9)), (ids[1], pytest.approx(0.8))]
    assert not partition_facts(conn, f"uniqueness_{a.id}")["leftovers"]


def test_without_the_rewrite_in_place_a_held_swap_fails_fast(
    conn: psycopg.Connection, demo: tuple[Space, Space, list[int]], holder: psycopg.Connection
) -> None:
    a, _, ids = demo
    holder.rollback()
    write(conn, a, ids, 0.25)
    holder.execute(READ).fetchone()
    rows = [(a.id, i, 0.5, 0.1, None) for i in ids]
    columns = ("space_id", "item_id", "uniqueness", "knn_distance", "cluster_size")
    started = time.monotonic()
    with pytest.raises(CurationError, match="another session holds a lock on pgsearch.uniqueness_scores "):
        replace_partition(
            conn, "uniqueness_scores", f"uniqueness_{a.id}", a.id, columns, rows,
            types=("int8", "int8", "float4", "float4", "int4"), in_place=False,
        )  # fmt: skip
    assert time.monotonic() - started < results.SWAP_TRIES * (results.LOCK_TIMEOUT_S + 1) + 5
    conn.rollback()
    assert holder.execute(READ).fetchone() == (N, 1, pytest.approx(0.25))


def test_mislabels_recompute_next_to_an_open_reader(dsn: str, tmp_path: Path) -> None:
    """The review's case: `pgsearch mislabels --recompute` while another session sits in a
    transaction that read v_assets completes, and the reader's views keep answering."""
    from test_mislabels import make_classification

    make_classification(tmp_path / "colours")
    runner = CliRunner()
    load = runner.invoke(
        cli, ["load", str(tmp_path / "colours"), "-d", "colours", "--format", "folders", "--model", "pixels",
              "--workers", "0", "--quiet"],
    )  # fmt: skip
    assert load.exit_code == 0, load.output
    first = runner.invoke(cli, ["mislabels", "-d", "colours", "-q", "-f", "json"])
    assert first.exit_code == 0, first.output
    with psycopg.connect(dsn) as reader:
        reader.execute("SELECT count(*) FROM pgsearch.v_assets WHERE dataset = 'colours'").fetchone()
        done = in_thread(
            runner.invoke, cli, ["mislabels", "-d", "colours", "--recompute", "-q", "-f", "json"]
        )
        assert not done["alive"], "pgsearch mislabels --recompute waited for the reader"
        result = done["result"]
        assert result.exit_code == 0, result.output
        with psycopg.connect(dsn, autocommit=True) as third:
            started = time.monotonic()
            third.execute("SELECT count(*) FROM pgsearch.v_shapes").fetchone()
            assert time.monotonic() - started < 5
        scored = reader.execute(
            "SELECT count(mislabel_score) FROM pgsearch.v_assets WHERE dataset = 'colours'"
        ).fetchone()[0]
        assert scored > 0
