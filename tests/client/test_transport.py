"""A request the app never answers fails with the client's timeout instead of hanging."""

from __future__ import annotations

import pytest


def test_route_that_never_answers_times_out(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        import httpx
        import pytest

        async def test_forever(app, client):
            @app.get("/forever")
            async def forever():
                await asyncio.Event().wait()

            expected = "did not answer GET http://testserver/forever within 0.3 s"
            with pytest.raises(httpx.ReadTimeout, match=expected):
                await client.get("/forever", timeout=0.3)
            assert (await client.get("/things")).status_code == 200
        """
    )
    shop.runpytest_subprocess(timeout=60).assert_outcomes(passed=1)


def test_slow_route_within_the_timeout_answers(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio

        async def test_slow(app, client):
            @app.get("/slow")
            async def slow():
                await asyncio.sleep(0.2)
                return {"ok": True}

            assert (await client.get("/slow", timeout=2)).json() == {"ok": True}
        """
    )
    shop.runpytest_subprocess(timeout=60).assert_outcomes(passed=1)


def test_timeout_names_the_session_a_request_waited_for(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        import httpx
        from fastapi import Depends
        from sqlalchemy import text
        import shop

        async def test_waits_for_a_stuck_request(app, client):
            @app.get("/hold")
            async def hold(s=Depends(shop.get_session)):
                await s.execute(text("SELECT 1"))
                await asyncio.Event().wait()

            async def waiter():
                await asyncio.sleep(0.05)
                return await client.get("/things", timeout=0.3)

            results = await asyncio.gather(
                client.get("/hold", timeout=0.6), waiter(), return_exceptions=True
            )
            assert all(isinstance(r, httpx.ReadTimeout) for r in results)
            message = str(results[1])
            assert "waiting for its turn on the test's shared connection" in message
            assert "in hold" in message
        """
    )
    shop.runpytest_subprocess(timeout=60).assert_outcomes(passed=1)
