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


def test_sync_client_decodes_a_compressed_response_once(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import gzip, json
        from fastapi import Response

        def test_gzip(app, client):
            @app.get("/big")
            def big():  # what GZipMiddleware sends
                body = gzip.compress(json.dumps({"text": "x" * 5000}).encode())
                return Response(body, media_type="application/json",
                                headers={"content-encoding": "gzip"})

            response = client.get("/big")
            assert response.json() == {"text": "x" * 5000}

        def test_body_from_a_generator(app, client):
            @app.post("/echo")
            async def echo(request: __import__("fastapi").Request):
                chunked = "transfer-encoding" in request.headers
                return {"body": (await request.body()).decode(), "chunked": chunked}

            response = client.post("/echo", content=(part for part in [b"ab", b"cd"]))
            assert response.json() == {"body": "abcd", "chunked": False}
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=2)


def test_a_project_fixture_wrapping_client_keeps_the_harness(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        shop.path.joinpath("conftest.py").read_text()
        + """

@pytest.fixture
def client(client):
    client.headers["x-tenant"] = "acme"
    return client
"""
    )
    shop.makepyfile(
        """
        import httpx
        import pytest_asyncio
        import shop

        @pytest_asyncio.fixture
        async def seeded():
            await shop.write_audit("seeded")  # the app's sessionmaker, in the test

        def test_sync_gets_a_sync_client(client):
            assert isinstance(client, httpx.Client)
            assert client.headers["x-tenant"] == "acme"

        async def test_1_seed_is_inside(seeded, client):
            assert (await client.get("/things")).status_code == 200

        async def test_2_nothing_leaked(db_session):
            from sqlalchemy import func, select
            assert await db_session.scalar(select(func.count()).select_from(shop.Audit)) == 0
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=3)
