"""pytest-xdist: the controller owns the run's one embedded cluster, the workers use it.

The controller starts the cluster when the first worker is set up, in a thread of its
own, so the server starts while the workers import and collect. Each worker gets the
cluster's URL and a status file through ``workerinput`` and waits for that file to
say the server is ready (or why it failed) before its first database use; it sends
its summary line back through ``workeroutput``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi_e2e.config import Settings
from fastapi_e2e.errors import CONTROLLER_CLUSTER_TIMEOUT, ClusterStartError, E2EError

if TYPE_CHECKING:  # the cluster code (asyncpg, SQLAlchemy) loads when a cluster starts
    from sqlalchemy.engine import URL

    from fastapi_e2e.database.address import Address
    from fastapi_e2e.database.cluster import EmbeddedCluster

# Keys of xdist's workerinput (controller to worker) and workeroutput (back).
CLUSTER_URL = "fastapi_e2e_cluster_url"
CLUSTER_STATUS = "fastapi_e2e_cluster_status"
CLUSTER_ERROR = "fastapi_e2e_cluster_error"
RUN_ID = "fastapi_e2e_run_id"
SUMMARY = "fastapi_e2e_summary"

READY = "ready"
# initdb on a slow disk (its own limit is 120 s) plus the server's start-up limit.
WAIT_TIMEOUT = 180.0
_POLL_INTERVAL = 0.005


@dataclass(frozen=True)
class WorkerInfo:
    """What an xdist worker's run gets from the controller."""

    name: str
    """The worker's id (``gw0``), part of its test database's name."""
    run_id: str
    """Shared by the run's workers: ``--e2e-create-db`` rebuilds once per run."""
    cluster_url: str | None
    """The controller's embedded cluster's URL (None when an existing server is used)."""
    cluster_error: str | None = None
    """Why the controller could not start that cluster, reported by the first test."""
    cluster_status: Path | None = None
    """The file in which the controller says when that cluster is ready, or why not."""

    @property
    def uses_controller_cluster(self) -> bool:
        return self.cluster_url is not None or self.cluster_error is not None

    async def wait_for_cluster(self) -> URL:
        """The controller's cluster URL once the server accepts connections.

        Raises ClusterStartError with the controller's error if it could not start
        the cluster, or after WAIT_TIMEOUT if it never says.
        """
        if self.cluster_error is not None or self.cluster_url is None:
            raise ClusterStartError(self.cluster_error or "no cluster URL from the controller")
        from sqlalchemy.engine import make_url

        url = make_url(self.cluster_url)
        if self.cluster_status is None:
            return url
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            with contextlib.suppress(OSError):
                status = self.cluster_status.read_text()
                if status == READY:
                    return url
                if status:
                    raise ClusterStartError(status)
            if time.monotonic() > deadline:
                raise ClusterStartError(
                    CONTROLLER_CLUSTER_TIMEOUT.format(
                        timeout=WAIT_TIMEOUT, path=self.cluster_status
                    )
                )
            await asyncio.sleep(_POLL_INTERVAL)


def worker_info(workerinput: dict[str, Any]) -> WorkerInfo:
    """The WorkerInfo the controller sent this worker."""
    url = workerinput.get(CLUSTER_URL)
    status = workerinput.get(CLUSTER_STATUS)
    return WorkerInfo(
        name=str(workerinput.get("workerid", "gw")),
        run_id=str(workerinput.get(RUN_ID) or secrets.token_hex(4)),
        cluster_url=str(url) if url else None,
        cluster_error=workerinput.get(CLUSTER_ERROR),
        cluster_status=Path(status) if status else None,
    )


def _write_status(path: Path, status: str) -> None:
    """Replace the status file's content at once: a worker never reads half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(status)
    os.replace(partial, path)


class XdistController:
    """On the xdist controller: one embedded cluster for all workers, started when the
    first worker is set up and stopped (its cache saved) after the last one ends.

    Workers cannot own it: the first worker to finish would take it down with it.
    With an existing server (E2E_DATABASE_URL) there is nothing to share but the
    run id, with which the workers rebuild the template once for ``--e2e-create-db``.
    """

    def __init__(self, settings: Settings, address: Address) -> None:
        self.settings = settings
        self.address = address
        """The cluster's port and password, settled (and handed to the workers through
        their environment) before they started."""
        self.run_id = secrets.token_hex(4)
        self.cluster: EmbeddedCluster | None = None
        self.error: str | None = None
        """Why the cluster could not be started (found out now or in its thread)."""
        self.status_path: Path | None = None
        self.summaries: list[str] = []
        self._thread: threading.Thread | None = None
        self._start_ended = threading.Event()
        self._stop = threading.Event()

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[RUN_ID] = self.run_id
        if self.settings.server_url() is not None:
            return
        if self.cluster is None and self.error is None:
            self._start()
        if self.cluster is not None:
            node.workerinput[CLUSTER_URL] = self.cluster.url.render_as_string(hide_password=False)
            node.workerinput[CLUSTER_STATUS] = str(self.status_path)
        else:
            node.workerinput[CLUSTER_ERROR] = self.error

    def _start(self) -> None:
        """Settle the cluster's URL now; start the server in a thread that owns it."""
        from fastapi_e2e.database.cluster import status_file
        from fastapi_e2e.harness import start_cluster

        try:
            cluster = start_cluster(self.settings, self.address)
            cluster.prepare()
        except (E2EError, OSError) as exc:  # each worker's first harness test reports it
            self.error = str(exc)
            return
        assert cluster.run_dir is not None
        status = status_file(cluster.run_dir)
        thread = threading.Thread(
            target=self._own_cluster, args=(cluster, status), name="fastapi-e2e-cluster"
        )
        # Daemon: if pytest dies without its finish hooks, the thread must not keep the
        # process alive; its end then stops the server (the parent-death signal).
        thread.daemon = True
        try:
            status.write_text("")
            thread.start()
        except BaseException as exc:
            cluster.discard()
            status.unlink(missing_ok=True)
            if not isinstance(exc, Exception):
                raise
            self.error = f"could not start the cluster's thread: {exc!r}"
            return
        self.cluster, self.status_path, self._thread = cluster, status, thread

    def _own_cluster(self, cluster: EmbeddedCluster, status: Path) -> None:
        """Start the server, keep it while the workers run, then stop it: all in this
        thread, which must outlive the server, since the parent-death signal follows
        the thread that spawned it."""
        loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(cluster.start())
            except Exception as exc:  # whatever it is, the workers must hear of it
                self.error = str(exc) if isinstance(exc, E2EError) else repr(exc)
                _write_status(status, self.error)
                return
            finally:
                self._start_ended.set()
            _write_status(status, READY)
            self._stop.wait()
            loop.run_until_complete(cluster.__aexit__(None, None, None))
        finally:
            loop.close()

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        summary = getattr(node, "workeroutput", {}).get(SUMMARY)
        if summary is not None:
            self.summaries.append(f"{node.gateway.id}: {summary}")

    # After the workers are gone, before the terminal summary reports the cache.
    def pytest_sessionfinish(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        cluster = self.cluster
        if cluster is not None and not self._start_ended.is_set():
            cluster.abort()  # still starting (Ctrl-C early, or no test needed it): end it
        try:
            thread.join()
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, end what still runs
            if cluster is not None:
                cluster.abort()
            raise
        finally:
            if self.status_path is not None:
                self.status_path.unlink(missing_ok=True)
        if cluster is not None and self.error is None:
            self.summaries.append(
                f"embedded cluster in {cluster.run_dir} shared by the workers "
                f"({'restored from cache' if cluster.restored else 'initdb'}); "
                f"cluster cache: {cluster.cache_outcome}"
            )

    def pytest_unconfigure(self) -> None:
        self.pytest_sessionfinish()  # a session that ended before its finish hook
