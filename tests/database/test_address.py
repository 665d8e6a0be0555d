"""The test database's address: settled before the server exists, rendered into the
variables the app's settings read, and served over TCP only with the run's password."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest

from fastapi_e2e.database import address
from fastapi_e2e.database.binaries import find_binaries
from fastapi_e2e.database.cluster import EmbeddedCluster
from fastapi_e2e.errors import ClusterStartError, ConfigError


def test_embedded_address_is_loopback_with_a_fresh_password_and_free_port() -> None:
    first, second = address.settle(None, None), address.settle(None, "gw1")
    assert first.host == "127.0.0.1"
    assert first.user == "postgres"
    assert first.password
    assert first.password != second.password
    assert second.database.startswith("e2e_")
    assert second.database.endswith("_gw1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", first.port))  # nothing listens there yet


def test_server_address_takes_the_servers_host_port_and_credentials() -> None:
    on_tcp = address.settle("postgresql://app:p%40ss@db.internal:6543/postgres", None)
    assert (on_tcp.host, on_tcp.port, on_tcp.user, on_tcp.password) == (
        "db.internal",
        6543,
        "app",
        "p@ss",
    )
    assert on_tcp.url() == f"postgresql+asyncpg://app:p%40ss@db.internal:6543/{on_tcp.database}"
    on_socket = address.settle("postgresql+asyncpg://postgres@/postgres?host=/run/pg", None)
    assert (on_socket.host, on_socket.port, on_socket.password) == ("/run/pg", 5432, None)
    assert on_socket.url().endswith(f"@/{on_socket.database}?host=/run/pg&port=5432")


def test_templates_render_every_field() -> None:
    where = address.Address("127.0.0.1", 5999, "postgres", "s3cret", "e2e_x")
    rendered = where.environment(
        {
            "DSN": "{url}",
            "SYNC_DSN": "postgresql+psycopg://{user}:{password}@{host}:{port}/{database}",
            "DRIVER": "{driver}",
            "LITERAL": "{{port}}",
        }
    )
    assert rendered == {
        "DSN": "postgresql+asyncpg://postgres:s3cret@127.0.0.1:5999/e2e_x",
        "SYNC_DSN": "postgresql+psycopg://postgres:s3cret@127.0.0.1:5999/e2e_x",
        "DRIVER": "postgresql+asyncpg",
        "LITERAL": "{port}",
    }


@pytest.mark.parametrize(
    ("templates", "why"),
    [
        ({"PORT": "{prot}"}, "{prot} is not a field of the address"),
        ({"": "{port}"}, "a variable name must be a non-empty string"),
        ({"PORT": 5432}, "the template must be a string"),
        ("PORT={port}", "it is not a mapping"),
        ({"PORT": "{port!r}"}, "{port} takes no format spec or conversion"),
    ],
)
def test_bad_templates_are_refused_naming_the_entry(templates: object, why: str) -> None:
    with pytest.raises(ConfigError, match=r"E2EConfig\.env") as caught:
        address.check_env_templates(templates, "E2EConfig.env")
    assert why in str(caught.value)
    assert "url, driver, host, port, user, password, database" in str(caught.value)


def test_a_handoff_is_taken_only_from_the_parent_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller = address.settle(None, None)
    monkeypatch.setattr(address.os, "getpid", lambda: 4242)
    handoff = address.hand_off(controller)
    monkeypatch.setenv(address.HANDOFF_ENV, handoff[address.HANDOFF_ENV])
    monkeypatch.setattr(address.os, "getppid", lambda: 4242)
    worker = address.settle(None, "gw0")
    assert (worker.port, worker.password) == (controller.port, controller.password)
    assert worker.database != controller.database
    monkeypatch.setattr(address.os, "getppid", lambda: 1)  # some other pytest's
    assert address.settle(None, "gw0").password != controller.password


def _tcp_connect(cluster: EmbeddedCluster, password: str | None) -> asyncpg.Connection:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(
            host="127.0.0.1",
            port=cluster.port,
            user="postgres",
            password=password,
            database="postgres",
            timeout=5,
        )

    return asyncio.run(connect())


def test_the_cluster_takes_tcp_only_with_the_runs_password(pg_cluster: EmbeddedCluster) -> None:
    async def check() -> None:
        connection = await asyncpg.connect(
            host="127.0.0.1",
            port=pg_cluster.port,
            user="postgres",
            password=pg_cluster.password,
            database="postgres",
            timeout=5,
        )
        try:
            assert await connection.fetchval("SHOW listen_addresses") == "127.0.0.1"
            rules = await connection.fetch(
                "SELECT type, auth_method FROM pg_hba_file_rules ORDER BY line_number"
            )
            assert [tuple(rule) for rule in rules] == [
                ("local", "trust"),
                ("host", "scram-sha-256"),
            ]
        finally:
            await connection.close()
        for wrong in ("wrong", None):
            with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.ClientCannotConnectError)):
                await asyncpg.connect(
                    host="127.0.0.1",
                    port=pg_cluster.port,
                    user="postgres",
                    password=wrong,
                    database="postgres",
                    timeout=5,
                )

    asyncio.run(check())


def test_a_port_taken_before_the_start_is_a_clear_error() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cluster = EmbeddedCluster(find_binaries(), port=port)
        with pytest.raises(ClusterStartError) as caught:
            asyncio.run(cluster.start())
    message = str(caught.value)
    assert f"could not listen on 127.0.0.1:{port}" in message
    assert "Run again" in message
    assert cluster.run_dir is not None
    assert not cluster.run_dir.exists()
