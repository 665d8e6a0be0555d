"""Databases of their own for commits-mode tests: clones of the schema template, made ahead.

``async with DatabasePool(admin_url, template, prefix, warm) as pool:`` starts a
background task on the running (session) loop that keeps up to ``pool.target`` clones
ready, with the connections the next test will use already open (``warm``).
``await pool.acquire()`` hands out the oldest ready one (waiting only when none is);
``pool.release(name)`` gives it back: its connections are closed at once, and the
task drops it later, when nothing more urgent is left. The target starts at one and
grows by one, up to ``MAX_READY``, each time a test had to wait. On exit every
database the pool made is dropped (unless ``drop_on_exit`` is false: a throw-away
cluster), except those ``keep()`` was told to keep.

Why a task on the session loop rather than a thread: the work is the server's
(``CREATE DATABASE`` and ``DROP DATABASE`` on admin connections); the loop only sends
the statements, a few hundred microseconds of Python per database. A test waiting
for a database awaits on that same loop, so the refill always progresses when
someone needs it, with no second loop, no locks across threads and nothing to join
on Ctrl-C. Between tests the loop is idle, but the server keeps working on the
statement already sent.

Two clones are made at once when more than one is missing: concurrent
``CREATE DATABASE ... STRATEGY FILE_COPY`` statements share the checkpoints each one
needs, which nearly doubles how many the server makes per second.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from types import TracebackType

import asyncpg
from sqlalchemy.engine import URL

from fastapi_e2e.database.provision import (
    COMMENT_PREFIX,
    comment_database,
    connect_admin,
    create_database,
    drop_database,
    kept_comment,
    stamp,
)
from fastapi_e2e.database.warm import WarmConnections
from fastapi_e2e.errors import POOL_CREATE_FAILED, POOL_WAIT_TIMEOUT, DatabaseSetupError

MAX_READY = 3
"""Never more ready clones than this per process (xdist worker)."""
MAKERS = 2
"""Clones made at once, each on an admin connection of its own."""
PREPARED = 2
"""Ready databases that get their connections ahead (the next ones in line)."""
MAX_UNDROPPED = 8
"""Used databases left to drop later while clones are wanted; past this, drop first
(the embedded cluster lives in memory, and a long burst must not fill it)."""
WAIT_TIMEOUT = 120.0
"""Seconds a test waits for a database before failing (a stuck server, a lock)."""
CLOSE_TIMEOUT = 10.0


class _Admin:
    """An admin connection, one statement at a time (the task's and ``keep()``'s)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.lock = asyncio.Lock()


class DatabasePool:
    """Ready clones of ``template``, named ``<prefix>_c<n>``, handed out in order."""

    def __init__(
        self,
        admin_url: URL,
        template: str,
        prefix: str,
        warm: WarmConnections | None = None,
        *,
        drop_on_exit: bool = True,
    ) -> None:
        self.admin_url = admin_url
        self.template = template
        self.prefix = prefix
        self.warm = warm
        """Opens each ready database's connections ahead and closes a used one's."""
        self.drop_on_exit = drop_on_exit
        self.target = 1
        self._ready: collections.deque[str] = collections.deque()
        self._used: collections.deque[str] = collections.deque()
        self._disconnecting: dict[str, asyncio.Task[None]] = {}
        """Per used database: the task closing its connections, started at release."""
        self._owned: set[str] = set()
        """Every database this pool made (or is making) and has not dropped or kept."""
        self._kept: list[str] = []
        self._made = 0
        self._waiting = 0
        self._work = asyncio.Event()
        """Set when the task may have something to do."""
        self._readied = asyncio.Event()
        """Set when a database became ready (or the task failed)."""
        self._failure: BaseException | None = None
        self._closing = False
        self._admins: list[_Admin] = []
        if warm is not None:
            warm.demand_grew = self._work.set
        # What the run summary reports.
        self.handed_out = 0
        self.waits = 0
        """Acquires after the first that found no ready database."""
        self.waited_seconds = 0.0
        self.most_ready = 0

    async def __aenter__(self) -> DatabasePool:
        self._admins.append(_Admin(await connect_admin(self.admin_url)))
        self._task = asyncio.get_running_loop().create_task(
            self._refill(), name="fastapi-e2e database pool"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        self._work.set()
        # Let the statements in flight finish (a cancelled CREATE DATABASE may or may
        # not have happened); cancel only a task that does not stop in time.
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
        if not done:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        admin: asyncpg.Connection | None = None
        try:
            for disconnecting in list(self._disconnecting.values()):
                with contextlib.suppress(Exception):
                    await disconnecting
            if self.warm is not None:
                for name in self.warm.databases:
                    await self.warm.close(name)
            if self.drop_on_exit and self._owned:
                admin = self._admins[0].connection
                if admin.is_closed() or not done:
                    admin = await connect_admin(self.admin_url)
                for name in sorted(self._owned):
                    await drop_database(admin, name, template=False)
                    self._owned.discard(name)
        finally:
            for connection in {admin, *(a.connection for a in self._admins)}:
                if connection is not None and not connection.is_closed():
                    await connection.close()

    async def acquire(self) -> str:
        """The oldest ready database, waiting for one if none is (and growing the pool)."""
        first = self.handed_out == 0
        if not self._ready:
            started = time.perf_counter()
            if not first:
                self.waits += 1
                self.target = min(self.target + 1, MAX_READY)
            self._waiting += 1
            try:
                await asyncio.wait_for(self._wait_ready(), WAIT_TIMEOUT)
            except (asyncio.TimeoutError, TimeoutError):
                raise DatabaseSetupError(
                    POOL_WAIT_TIMEOUT.format(timeout=WAIT_TIMEOUT, template=self.template)
                ) from None
            finally:
                self._waiting -= 1
            if not first:
                self.waited_seconds += time.perf_counter() - started
        name = self._ready.popleft()
        self.handed_out += 1
        self._work.set()  # one fewer ready: make the next
        return name

    async def _wait_ready(self) -> None:
        self._work.set()
        while not self._ready:
            if self._failure is not None:
                raise DatabaseSetupError(
                    POOL_CREATE_FAILED.format(template=self.template, cause=self._failure)
                ) from self._failure
            self._readied.clear()
            await self._readied.wait()

    def release(self, name: str) -> None:
        """The test is over and nothing uses ``name`` any more: close its connections now
        (each waits for its server process to end, so they go in a task of their own)
        and drop it when nothing more urgent is left."""
        if self.warm is not None:
            self._disconnecting[name] = asyncio.get_running_loop().create_task(
                self.warm.close(name), name=f"fastapi-e2e closing connections to {name}"
            )
        self._used.append(name)
        self._work.set()

    async def keep(self, name: str, run_id: str, nodeid: str) -> None:
        """Keep ``name`` after the run, for inspection: its COMMENT says why."""
        admin = self._admins[0]
        async with admin.lock:
            await comment_database(admin.connection, name, kept_comment(run_id, nodeid))
        if self.warm is not None:
            await self.warm.close(name)
        self._owned.discard(name)
        self._kept.append(name)

    @property
    def kept(self) -> list[str]:
        return list(self._kept)

    @property
    def made(self) -> int:
        return self._made

    def _missing(self) -> int:
        """How many more clones are wanted now: for the tests waiting, or the target."""
        return max(self.target, self._waiting) - len(self._ready)

    async def _refill(self) -> None:
        """Make databases for waiting tests, open ready ones' connections, make more up
        to the target, drop used ones: in that order, one step at a time (a step may
        make two databases at once). Drops come first only past ``MAX_UNDROPPED``."""
        try:
            while not self._closing:
                missing = self._missing()
                if len(self._used) > MAX_UNDROPPED:
                    await self._drop_one()
                elif self._waiting and missing > 0:
                    await self._make(missing)
                elif self.warm is not None and (name := self._lacking(self.warm)):
                    await self.warm.prepare(name, functools.partial(self._is_ready, name))
                elif missing > 0:
                    await self._make(missing)
                elif self._used:
                    await self._drop_one()
                else:
                    self._work.clear()
                    await self._work.wait()
        except (Exception, asyncio.CancelledError) as exc:
            self._failure = exc
            self._readied.set()  # waiters see the failure
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _is_ready(self, name: str) -> bool:
        return name in self._ready

    def _lacking(self, warm: WarmConnections) -> str | None:
        """The next ready database to open connections to (the last test may have used
        more than there are: the demand is known only once a test ended). Only the two
        next in line: idle connections count against the server's limit, which xdist
        workers share."""
        return next((name for name in list(self._ready)[:PREPARED] if warm.lacks(name)), None)

    async def _make(self, missing: int) -> None:
        """Make ``missing`` clones, up to ``MAKERS`` at once; the first failure raises
        once every statement sent has finished."""
        count = min(missing, MAKERS)
        while len(self._admins) < count:
            self._admins.append(_Admin(await connect_admin(self.admin_url)))
        outcomes = await asyncio.gather(
            *(self._make_one(admin) for admin in self._admins[:count]), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _make_one(self, admin: _Admin) -> None:
        self._made += 1
        name = f"{self.prefix}_c{self._made}"
        self._owned.add(name)
        comment = (
            f"{COMMENT_PREFIX} commits-mode test database of {stamp()}; dropped after its test"
        )
        async with admin.lock:
            await create_database(admin.connection, self.admin_url, name, self.template)
            await comment_database(admin.connection, name, comment)
        self._ready.append(name)
        self.most_ready = max(self.most_ready, len(self._ready))
        self._readied.set()

    async def _drop_one(self) -> None:
        name = self._used.popleft()
        disconnecting = self._disconnecting.pop(name, None)
        if disconnecting is not None:
            await disconnecting
        admin = self._admins[0]
        async with admin.lock:
            await drop_database(admin.connection, name, template=False)
        self._owned.discard(name)
