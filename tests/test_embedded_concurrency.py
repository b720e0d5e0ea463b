"""Commands started at the same moment against a fresh embedded default: one server, no damage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pgsearch.server import EmbeddedServer


def _command_lines() -> list[str]:
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines


def test_concurrent_first_use_starts_one_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("PGSEARCH_DSN", "DATABASE_URL")}
    env["PGSEARCH_HOME"] = str(home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pgsearch", "db", command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in ("url", "url", "start", "upgrade")
    ]
    try:
        outputs = [p.communicate(timeout=180) for p in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
        urls = {outputs[0][0].strip(), outputs[1][0].strip()}
        assert len(urls) == 1
        url = urls.pop()
        assert url.startswith("postgresql://postgres:") and "@127.0.0.1:" in url
        # `db start` names the server but not its password (only `db url` prints that).
        assert url.split("@", 1)[1] in outputs[2][0]
        assert url.split("@", 1)[0].rsplit(":", 1)[1] not in outputs[2][0]
        # exactly one postmaster for this data directory, and it answers
        server = EmbeddedServer(home)
        status = server.status()
        assert status.running and status.url == url
        postmasters = [
            cmd for cmd in _command_lines() if str(home / "pgdata") in cmd and "bin/postgres" in cmd
        ]
        assert len(postmasters) == 1, postmasters
        # a second start is a no-op that keeps the same port
        assert server.start().url == url
    finally:
        EmbeddedServer(home).stop()
    assert not EmbeddedServer(home).status().running
