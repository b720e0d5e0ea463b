"""Two writers of one dataset at once (issue: concurrent loads crashed with UniqueViolation):
`pgsearch load` and `pgsearch embed` of the same dataset serialise on its advisory lock
(loader/locks.py). Both commands succeed, the second says it waited, and the dataset ends as one
load leaves it: every file once, every vector once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from imagegen import make_folder


def _pgsearch(dsn: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PGSEARCH_DSN": dsn}
    return subprocess.Popen(
        [sys.executable, "-m", "pgsearch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_loads_of_one_dataset_serialise(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_folder(root, 60)
    args = ("load", str(root), "--dataset", "race", "--model", "pixels", "--workers", "0", "--json")
    first, second = _pgsearch(dsn, *args), _pgsearch(dsn, *args)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    for process, (_out, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, err
        assert "Traceback" not in err
    with psycopg.connect(dsn) as conn:
        files = conn.execute(
            "SELECT count(*), count(DISTINCT filename) FROM pgsearch.assets a JOIN pgsearch.datasets d"
            " ON d.id = a.dataset_id WHERE d.name = 'race'"
        ).fetchone()
        vectors = conn.execute(
            "SELECT count(*), count(DISTINCT asset_id) FROM pgsearch.asset_embeddings"
        ).fetchone()
    assert files == (60, 60)
    assert vectors == (60, 60)


def test_embed_racing_embed(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_folder(root, 40)
    loaded = _pgsearch(dsn, "load", str(root), "--dataset", "race2", "--no-embed", "--workers", "0")
    _, err = loaded.communicate(timeout=300)
    assert loaded.returncode == 0, err
    args = ("embed", "--dataset", "race2", "--model", "pixels", "--workers", "0")
    procs = [_pgsearch(dsn, *args), _pgsearch(dsn, *args)]
    for process in procs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "Traceback" not in err
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT asset_id) FROM pgsearch.asset_embeddings"
        ).fetchone() == (40, 40)


def test_a_load_waits_while_another_writer_holds_the_dataset(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_folder(root, 5)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended('pgsearch: write dataset ' || 'held', 0))")
        load = _pgsearch(dsn, "load", str(root), "--dataset", "held", "--model", "pixels", "--workers", "0")
        try:
            load.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        assert load.poll() is None, "the load did not wait for the lock"
        holder.execute("SELECT pg_advisory_unlock_all()")
    _, err = load.communicate(timeout=300)
    assert load.returncode == 0, err
    assert "another load or embed of dataset 'held' is running; waiting for it to finish" in err


def test_killing_a_load_leaves_no_worker_behind(dsn: str, tmp_path: Path) -> None:
    """kill -9 of a load with decode workers: the workers go with it (PR_SET_PDEATHSIG)."""
    import signal
    import time

    root = tmp_path / "images"
    make_folder(root, 400, sizes=((640, 480),))
    load = _pgsearch(dsn, "load", str(root), "--dataset", "killed", "--model", "pixels", "--workers", "2")

    def children() -> set[int]:
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == load.pid:
                    found.add(int(entry.name))
        return found

    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:
        workers = children()
        time.sleep(0.2)
    assert len(workers) >= 2, "the load started no decode workers"
    load.send_signal(signal.SIGKILL)
    load.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = []
    for pid in workers:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie is dead, waiting for init to reap it
            alive.append(pid)
    assert not alive, f"decode workers still running after the load was killed: {alive}"
