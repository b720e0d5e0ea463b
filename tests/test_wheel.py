"""A wheel built from the tree, installed into a fresh virtualenv, migrates a database from
outside the source tree: sql/ and migrations/ ship inside the package."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import psycopg
import pytest

from pgsearch import migrate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (found,) = out.glob("pgsearch-*.whl")
    return found


def test_wheel_carries_sql_and_migrations(wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "pgsearch/sql/views/v_assets.sql" in names
    assert "pgsearch/sql/functions/nearest_in_space.sql" in names
    assert "pgsearch/migrations/env.py" in names
    assert "pgsearch/migrations/script.py.mako" in names
    assert any(n.startswith("pgsearch/migrations/versions/0007") for n in names)
    assert any(n.startswith("pgsearch/translator/") for n in names)
    assert any(n.startswith("pgsearch/loader/") for n in names)
    # nothing lands at the top level of site-packages but pgsearch itself
    assert {n.split("/")[0] for n in names if not n.startswith("pgsearch-")} == {"pgsearch"}


def test_installed_wheel_upgrades_a_database(wheel: Path, empty_dsn: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    # The dependencies come from this environment's site-packages, appended as a plain path, so
    # its .pth files (the editable install's finder) are not processed and cannot shadow the wheel.
    deps = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if p != str(target)]
    (target / "zz_test_deps.pth").write_text("\n".join(deps) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PGSEARCH_DSN", "DATABASE_URL")}
    where = subprocess.run(
        [str(python), "-c", "import pgsearch, pgsearch.migrations; print(pgsearch.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    ).stdout.strip()
    assert where.startswith(str(target)), where
    done = subprocess.run(
        [str(python), "-m", "pgsearch", "db", "upgrade", "--dsn", empty_dsn],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(empty_dsn) as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
        assert conn.execute("SELECT to_regclass('pgsearch.assets') IS NOT NULL").fetchone() == (True,)
