"""A throwaway PostgreSQL cluster for one pytest run, on a private Unix socket and on
a loopback TCP port that takes only the run's password.

Hand-written rather than taken from pytest-postgresql or testing.postgresql because
neither can run as root (initdb refuses root; we drop to an unprivileged user), tie
the server's life to pytest's (a parent-death signal, so SIGKILL leaves nothing), or
spawn ``postgres`` directly instead of through ``pg_ctl``'s 100 ms polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from fastapi_e2e.database.address import LOOPBACK, free_loopback_port
from fastapi_e2e.database.binaries import PgBinaries
from fastapi_e2e.database.cache import SnapshotCache
from fastapi_e2e.database.provision import connect_admin, drop_database, pid_alive
from fastapi_e2e.errors import (
    BINARY_NOT_RUNNABLE,
    INITDB_FAILED,
    INITDB_TIMEOUT,
    NO_UNPRIVILEGED_USER,
    SERVER_START_FAILED,
    TCP_PORT_TAKEN,
    ClusterStartError,
    E2EError,
)

RUN_DIR_PREFIX = "pfe2e-"
OWNER_FILE = "owner.pid"
SUPERUSER = "postgres"
START_TIMEOUT = 30.0
INITDB_TIMEOUT_S = 120.0
STATUS_SUFFIX = ".status"
_STATUS_OWNER = re.compile(r"-(\d+)\.status(?:\.partial)?$")

# Durability buys nothing for a database that is thrown away after the run.
SERVER_SETTINGS = {
    "listen_addresses": LOOPBACK,
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "200",
}

_PR_SET_PDEATHSIG = 1

# Schema templates kept in a cached cluster (newest first): enough for switching
# between a few branches without rebuilding, few enough to keep snapshots small.
MAX_CACHED_TEMPLATES = 5
# In the data directory: the templates a snapshot holds (name, oid), written when it
# is saved, so a run can tell whether it built anything without asking at start-up.
TEMPLATES_FILE = "e2e_templates.json"

# The socket sits in a 0700 directory only the server's user and root can enter, so
# it needs no password; anyone on the machine can reach 127.0.0.1, so TCP takes only
# the run's own password, never trust.
HBA_FILE = "pg_hba.conf"
HBA_RULES = f"local all all trust\nhost all all {LOOPBACK}/32 scram-sha-256\n"


def runtime_base_dir() -> Path:
    """Where run directories go: tmpfs when the machine has one, else the temp dir."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ClusterStartError(NO_UNPRIVILEGED_USER)


def _user_name(user: pwd.struct_passwd | None) -> str:
    """Who runs PostgreSQL's binaries: ``user``, or (not root) whoever runs pytest."""
    return user.pw_name if user is not None else pwd.getpwuid(os.geteuid()).pw_name


def _die_with_parent(parent_pid: int) -> None:
    """Run in the child before exec: ask the kernel to stop it when pytest dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        # SIGQUIT is PostgreSQL's "immediate shutdown": it also ends the backends.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)
    if os.getppid() != parent_pid:  # pytest already died before prctl took effect
        os._exit(1)


def _postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def status_file(run_dir: Path) -> Path:
    """A file beside ``run_dir`` in which the xdist controller tells its workers how the
    server's start went. Named after the owning pid, so that once that pytest is gone
    the janitor removes it even if the run directory was already removed."""
    return run_dir.with_name(f"{run_dir.name}-{os.getpid()}{STATUS_SUFFIX}")


def remove_stale_run_dirs(base: Path) -> list[Path]:
    """Remove run directories (and status files) whose pytest process is gone,
    stopping their servers.

    A run killed with SIGKILL cannot clean up after itself; its server is stopped by
    the parent-death signal, and this removes what is left on the next start.
    """
    removed = []
    for entry in base.glob(RUN_DIR_PREFIX + "*"):
        status_owner = _STATUS_OWNER.search(entry.name)  # ".partial" ones too
        if status_owner is not None:
            if not pid_alive(int(status_owner.group(1))):
                entry.unlink(missing_ok=True)
            continue
        try:
            owner = int((entry / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if pid_alive(owner):
            continue
        server = _postmaster_pid(entry / "data")
        if server is not None and pid_alive(server):
            with contextlib.suppress(OSError):
                os.kill(server, signal.SIGQUIT)
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


class EmbeddedCluster:
    """Create, start and finally delete a private PostgreSQL cluster.

    ``async with EmbeddedCluster(binaries) as cluster:`` yields a running server whose
    superuser URL is ``cluster.url``. The server listens on a Unix socket in a fresh
    directory (no password) and on ``127.0.0.1:port`` (scram-sha-256 with ``password``;
    both settled before it starts, chosen here unless given), runs without
    durability, and is stopped and deleted on exit.
    """

    def __init__(
        self,
        binaries: PgBinaries,
        base_dir: Path | None = None,
        cache: SnapshotCache | None = None,
        *,
        port: int | None = None,
        password: str | None = None,
    ) -> None:
        self.binaries = binaries
        self.base_dir = base_dir or runtime_base_dir()
        self.cache = cache
        self.port = port
        self.password = password
        self.run_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stale_removed: list[Path] = []
        self.restored = False
        """Whether the data directory came from the cache (else from initdb)."""
        self.cache_outcome = "cache off"
        """What happened to the cache at exit, for the run's summary."""
        self._user: pwd.struct_passwd | None = None
        self._initdb_process: subprocess.Popen[str] | None = None

    @property
    def datadir(self) -> Path:
        assert self.run_dir is not None
        return self.run_dir / "data"

    @property
    def url(self) -> URL:
        """SQLAlchemy URL of the superuser's ``postgres`` database, on the socket."""
        assert self.run_dir is not None
        return URL.create(
            "postgresql+asyncpg",
            username=SUPERUSER,
            port=self.port,
            database="postgres",
            query={"host": str(self.run_dir)},
        )

    async def __aenter__(self) -> EmbeddedCluster:
        return await self.start()

    def prepare(self) -> None:
        """Create the run directory, which settles ``url`` before the server starts
        (the xdist controller hands it to the workers meanwhile)."""
        self.stale_removed = remove_stale_run_dirs(self.base_dir)
        self._user = _unprivileged_user()
        if self.port is None:
            self.port = free_loopback_port()
        if self.password is None:
            self.password = secrets.token_urlsafe(18)
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=self.base_dir))
        try:
            (self.run_dir / OWNER_FILE).write_text(str(os.getpid()))
            (self.run_dir / HBA_FILE).write_text(HBA_RULES)
            if self._user is not None:
                os.chown(self.run_dir, self._user.pw_uid, self._user.pw_gid)
                os.chown(self.run_dir / HBA_FILE, self._user.pw_uid, self._user.pw_gid)
        except BaseException:
            self.discard()
            raise

    async def start(self) -> EmbeddedCluster:
        """Restore or initdb the data directory and start the server (prepares first
        if ``prepare()`` was not called)."""
        if self.run_dir is None:
            self.prepare()
        try:
            self.restored = self.cache is not None and self.cache.restore(self.datadir)
            if not self.restored:
                self._initdb(self._user)
            await self._start(self._user)
        except BaseException:
            self.discard()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self.cache is not None and self.process is not None:
                await self._save_to_cache(self.cache)
        finally:
            self.discard()

    def _snapshot_templates(self) -> set[tuple[str, int]]:
        """The templates the restored snapshot held, as its save recorded them."""
        try:
            return {
                (name, oid) for name, oid in json.loads((self.datadir / TEMPLATES_FILE).read_text())
            }
        except (OSError, ValueError, TypeError):
            return set()  # initdb, or no record: whatever templates exist are new

    async def _save_to_cache(self, cache: SnapshotCache) -> None:
        """Snapshot the cluster when it holds templates the cache lacks.

        Templates are compared by name and oid (a rebuilt template keeps its name,
        not its oid). Test databases are dropped first, the oldest templates beyond
        MAX_CACHED_TEMPLATES too, and the server is stopped cleanly so the copy is
        consistent. Failing to save only costs the next run its warm start.
        """
        assert self.process is not None
        if self.process.poll() is not None:
            self.cache_outcome = "not saved: the server had stopped"
            return
        try:
            admin = await connect_admin(self.url)
            try:
                rows = await admin.fetch(
                    "SELECT datname, oid, datistemplate FROM pg_database "
                    "WHERE datname LIKE 'e2e\\_%' ORDER BY oid DESC"
                )
                templates = [(row["datname"], row["oid"]) for row in rows if row["datistemplate"]]
                if self.restored and set(templates) == self._snapshot_templates():
                    self.cache_outcome = "unchanged"
                    return
                doomed = [row["datname"] for row in rows if not row["datistemplate"]]
                doomed += [name for name, _ in templates[MAX_CACHED_TEMPLATES:]]
                for name in doomed:
                    await drop_database(admin, name)
            finally:
                await admin.close()
            kept = templates[:MAX_CACHED_TEMPLATES]
            (self.datadir / TEMPLATES_FILE).write_text(json.dumps(kept))
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: a clean checkpoint
            self.process.wait(timeout=30)
            if self.process.returncode != 0:
                self.cache_outcome = f"not saved: server exited with {self.process.returncode}"
                return
            cache.save(self.datadir)
            self.cache_outcome = "saved"
        except (OSError, subprocess.TimeoutExpired, E2EError, asyncpg.PostgresError) as exc:
            self.cache_outcome = f"not saved: {exc}"

    def _run_as(self, user: pwd.struct_passwd | None) -> dict[str, object]:
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        command = [
            str(self.binaries.initdb),
            "--pgdata",
            str(self.datadir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ]
        user_name = _user_name(user)
        try:
            self._initdb_process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self.run_dir,
                **self._run_as(user),  # type: ignore[call-overload]
            )
        except OSError as exc:
            raise ClusterStartError(
                BINARY_NOT_RUNNABLE.format(binary=self.binaries.initdb, user=user_name, cause=exc)
            ) from exc
        try:
            stdout, stderr = self._initdb_process.communicate(timeout=INITDB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._initdb_process.kill()
            self._initdb_process.communicate()
            raise ClusterStartError(
                INITDB_TIMEOUT.format(timeout=INITDB_TIMEOUT_S, datadir=self.datadir)
            ) from None
        if self._initdb_process.returncode != 0:
            output = (stderr or stdout).strip()[-2000:]
            raise ClusterStartError(
                INITDB_FAILED.format(
                    code=self._initdb_process.returncode,
                    datadir=self.datadir,
                    output=output,
                    user=user_name,
                )
            )

    async def _start(self, user: pwd.struct_passwd | None) -> None:
        assert self.run_dir is not None
        command = [str(self.binaries.postgres), "-D", str(self.datadir), "-k", str(self.run_dir)]
        settings = {
            **SERVER_SETTINGS,
            "port": str(self.port),
            "hba_file": str(self.run_dir / HBA_FILE),
        }
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        log = open(self.run_dir / "server.log", "wb")  # noqa: SIM115 - handed to the child
        parent = os.getpid()
        with log:
            # The parent-death signal fires when the spawning *thread* exits: this is the
            # main thread, or (xdist controller) a thread that lives as long as the server.
            try:
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.run_dir,
                    start_new_session=True,  # Ctrl-C in the terminal is pytest's to handle
                    preexec_fn=lambda: _die_with_parent(parent),
                    **self._run_as(user),  # type: ignore[call-overload]
                )
            except OSError as exc:
                raise ClusterStartError(
                    BINARY_NOT_RUNNABLE.format(
                        binary=self.binaries.postgres, user=_user_name(user), cause=exc
                    )
                ) from exc
        await self._wait_ready()
        await self._set_password()

    async def _set_password(self) -> None:
        """Give the superuser the run's password, for TCP (a restored snapshot holds
        the password of the run that saved it)."""
        admin = await connect_admin(self.url)
        try:
            # ALTER ROLE takes no parameters: a quoted literal (standard_conforming_strings
            # is on, so doubling quotes is the whole escaping).
            literal = "'" + str(self.password).replace("'", "''") + "'"
            await admin.execute(f"ALTER ROLE {SUPERUSER} PASSWORD {literal}")
        finally:
            await admin.close()

    async def _wait_ready(self) -> None:
        assert self.process is not None
        pid_file = self.datadir / "postmaster.pid"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"exited with code {self.process.returncode} while starting")
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 8 of postmaster.pid is the server's status since PostgreSQL 10.
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            await asyncio.sleep(0.005)
        self._fail(f"was not ready after {START_TIMEOUT:g} s")

    def _fail(self, reason: str) -> None:
        assert self.run_dir is not None
        try:
            log = (self.run_dir / "server.log").read_text(errors="replace").strip()[-1500:]
        except OSError:
            log = "(no log)"
        if "could not bind IPv4 address" in log:
            line = next(line for line in log.splitlines() if "could not bind" in line)
            raise ClusterStartError(TCP_PORT_TAKEN.format(port=self.port, cause=line.strip()))
        raise ClusterStartError(
            SERVER_START_FAILED.format(postgres=self.binaries.postgres, reason=reason, log=log)
        )

    def abort(self) -> None:
        """End a start in progress at once, from any thread: kill initdb, or stop the
        server immediately. The starting thread then fails and cleans up as usual."""
        if self._initdb_process is not None and self._initdb_process.poll() is None:
            with contextlib.suppress(OSError):
                self._initdb_process.kill()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.send_signal(signal.SIGQUIT)

    def discard(self) -> None:
        """Stop the server if it runs and delete the run directory, saving nothing."""
        if self.process is not None and self.process.poll() is None:
            # Immediate shutdown: the data is thrown away, so nothing needs flushing.
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
