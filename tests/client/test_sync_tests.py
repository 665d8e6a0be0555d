"""Sync tests in the FastAPI docs' style: ``def test_x(client)`` gets a sync client on
the same app, loop and transaction; asyncio-only fixtures and TestClient are refused."""

from __future__ import annotations

import pytest


def test_sync_tests_get_a_sync_client_in_the_transaction(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import httpx

        def test_create_and_read(client):
            assert isinstance(client, httpx.Client)
            response = client.post("/things", params={"name": "sync"})
            assert response.status_code == 201
            assert client.get("/things").json() == ["sync"]

        def test_starts_empty(client):
            assert client.get("/things").json() == []

        async def test_async_beside_them(client):
            assert isinstance(client, httpx.AsyncClient)
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess("--random-order").assert_outcomes(passed=3)


def test_db_session_in_a_sync_test_is_refused_with_the_fix(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        def test_sync(client, db_session):
            pass
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*is a sync test (def, not async def) and asks for db_session*make the test `async def`*"]
    )


def test_starlette_testclient_beside_the_harness_fails_naming_the_fix(
    shop: pytest.Pytester,
) -> None:
    shop.makepyfile(
        """
        from starlette.testclient import TestClient

        def test_own_testclient(app, client):
            TestClient(app).get("/things")
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*The app used its database from another event loop*TestClient*use the `client` fixture*"]
    )
