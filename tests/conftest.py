"""Shared fixtures for the harness's own tests.

Most behaviour tests run inner pytest sessions against one PostgreSQL cluster that
this outer session starts with the harness's own cluster code (E2E_DATABASE_URL);
tests of the embedded default let the inner session start its own.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from fastapi_e2e.database.binaries import find_binaries
from fastapi_e2e.database.cluster import EmbeddedCluster
from fastapi_e2e.database.urls import asyncpg_connect_kwargs

# Files that inner runs copy (tests/examples/quickstart has a conftest and tests of its
# own): never collected by this session.
collect_ignore = ["examples"]

CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="shop:create_app",
        session_dependency="shop:get_session",
        metadata="shop:Base.metadata",
        sessionmakers=["shop:SessionLocal"],
        database_url_env="DATABASE_URL",
        {extra}
    )
"""


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster]:
    """One real PostgreSQL cluster for the inner runs of this session."""
    loop = asyncio.new_event_loop()  # not asyncio.Runner: Python 3.10 has none
    try:
        cluster = EmbeddedCluster(find_binaries())
        loop.run_until_complete(cluster.__aenter__())
        try:
            yield cluster
        finally:
            loop.run_until_complete(cluster.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture
def server_url(pg_cluster: EmbeddedCluster) -> str:
    """The outer cluster as an existing server, the way users give one: over TCP with
    a password."""
    return f"postgresql://postgres:{pg_cluster.password}@127.0.0.1:{pg_cluster.port}/postgres"


@pytest.fixture
def socket_server_url(pg_cluster: EmbeddedCluster) -> str:
    """The outer cluster through its socket, where any role logs in without a password."""
    return pg_cluster.url.render_as_string(hide_password=False)


class Admin:
    """Runs SQL on the outer cluster, to check what inner runs left behind."""

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.kwargs = asyncpg_connect_kwargs(cluster.url)

    def fetch(self, query: str, *args: object, database: str = "postgres") -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(**{**self.kwargs, "database": database})
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return asyncio.run(go())

    def execute(self, script: str, database: str = "postgres") -> None:
        """Run one or more statements (no parameters)."""

        async def go() -> None:
            conn = await asyncpg.connect(**{**self.kwargs, "database": database})
            try:
                await conn.execute(script)
            finally:
                await conn.close()

        asyncio.run(go())

    def e2e_databases(self) -> list[str]:
        """The harness's databases other than finished schema templates (its cache):
        test databases, and templates whose build did not finish."""
        rows = self.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'e2e\\_%' AND NOT datistemplate"
        )
        return [r["datname"] for r in rows]

    def e2e_templates(self) -> list[str]:
        rows = self.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'e2e\\_tpl\\_%' AND datistemplate"
        )
        return [r["datname"] for r in rows]


def dead_pid() -> int:
    """A pid that no process on this host has now (a finished child's)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def admin(pg_cluster: EmbeddedCluster) -> Admin:
    return Admin(pg_cluster)


@pytest.fixture
def shop(
    pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester dir with the example shop app and a conftest using the outer cluster."""
    pytester.copy_example("shop.py")
    pytester.makeconftest(CONFTEST.format(extra=""))
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return pytester


@pytest.fixture(autouse=True, scope="session")
def _private_cluster_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Inner runs cache their embedded cluster here, not in the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("E2E_CACHE_DIR", str(tmp_path_factory.mktemp("cluster-cache")))
        yield


@pytest.fixture
def cold_embedded(
    shop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> pytest.Pytester:
    """The shop app on the embedded default, with an empty cluster cache of its own."""
    monkeypatch.delenv("E2E_DATABASE_URL")
    monkeypatch.setenv("E2E_CACHE_DIR", str(tmp_path / "cache"))
    return shop
