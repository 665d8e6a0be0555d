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
