"""Databases of their own for commits-mode tests: clones of the schema template, made ahead.

``async with DatabasePool(admin_url, template, prefix) as pool:`` starts a background
task on the running (session) loop that keeps up to ``pool.target`` clones ready.
``await pool.acquire()`` hands out the oldest ready one (waiting only when none is);
``pool.release(name)`` gives it back, and the task drops it and makes a replacement
off the test's critical path. The target starts at one and grows by one, up to
``MAX_READY``, each time a test had to wait. On exit every database the pool made
is dropped, except those ``keep()`` was told to keep.

Why a task on the session loop rather than a thread: the work is the server's
(``CREATE DATABASE`` and ``DROP DATABASE`` on one admin connection); the loop only
sends the statements, a few hundred microseconds of Python per database. A test
waiting for a database awaits on that same loop, so the refill always progresses
when someone needs it, with no second loop, no locks across threads and nothing to
join on Ctrl-C. Between tests the loop is idle, but the server keeps working on the
statement already sent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from types import TracebackType

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
WAIT_TIMEOUT = 120.0
"""Seconds a test waits for a database before failing (a stuck server, a lock)."""
CLOSE_TIMEOUT = 10.0


class DatabasePool:
    """Ready clones of ``template``, named ``<prefix>_c<n>``, handed out in order."""

    def __init__(
        self, admin_url: URL, template: str, prefix: str, warm: WarmConnections | None = None
    ) -> None:
        self.admin_url = admin_url
        self.template = template
        self.prefix = prefix
        self.warm = warm
        """Opens each ready database's connections ahead and closes a used one's."""
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
        if warm is not None:
            warm.demand_grew = self._work.set
        self._lock = asyncio.Lock()
        """One statement at a time on the admin connection (the task's and keep()'s)."""
        # What the run summary reports.
        self.handed_out = 0
        self.waits = 0
        """Acquires after the first that found no ready database."""
        self.waited_seconds = 0.0
        self.most_ready = 0

    async def __aenter__(self) -> DatabasePool:
        self._admin = await connect_admin(self.admin_url)
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
        # Let the statement in flight finish (a cancelled CREATE DATABASE may or may not
        # have happened); cancel only a task that does not stop in time.
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
        if not done:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        leftovers = sorted(self._owned)
        admin = self._admin
        try:
            if admin.is_closed() or not done:
                admin = await connect_admin(self.admin_url)
            for disconnecting in self._disconnecting.values():
                with contextlib.suppress(Exception):
                    await disconnecting
            if self.warm is not None:
                for name in self.warm.databases:
                    await self.warm.close(name)
            for name in leftovers:
                await drop_database(admin, name, template=False)
                self._owned.discard(name)
        finally:
            for connection in {admin, self._admin}:
                if not connection.is_closed():
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
        async with self._lock:
            await comment_database(self._admin, name, kept_comment(run_id, nodeid))
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

    async def _refill(self) -> None:
        """Make databases, open their connections, close and drop used ones: in that
        order of need, one step at a time."""
        try:
            while not self._closing:
                if self._waiting:
                    await self._make_one()
                elif self.warm is not None and (name := self._lacking(self.warm)):
                    await self.warm.prepare(name)
                elif len(self._ready) < self.target:
                    await self._make_one()
                elif self._used:
                    name = self._used.popleft()
                    disconnecting = self._disconnecting.pop(name, None)
                    if disconnecting is not None:
                        await disconnecting
                    async with self._lock:
                        await drop_database(self._admin, name, template=False)
                    self._owned.discard(name)
                else:
                    self._work.clear()
                    await self._work.wait()
        except (Exception, asyncio.CancelledError) as exc:
            self._failure = exc
            self._readied.set()  # waiters see the failure
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _lacking(self, warm: WarmConnections) -> str | None:
        """The next ready database to open connections to (the last test may have used
        more than there are: the demand is known only once a test ended)."""
        return next((name for name in self._ready if warm.lacks(name)), None)

    async def _make_one(self) -> None:
        self._made += 1
        name = f"{self.prefix}_c{self._made}"
        self._owned.add(name)
        comment = (
            f"{COMMENT_PREFIX} commits-mode test database of {stamp()}; dropped after its test"
        )
        async with self._lock:
            await create_database(self._admin, self.admin_url, name, self.template)
            await comment_database(self._admin, name, comment)
        self._ready.append(name)
        self.most_ready = max(self.most_ready, len(self._ready))
        self._readied.set()
