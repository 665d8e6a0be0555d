"""E2EConfig(base_url=..., headers=...): the client's host, path prefix and default headers."""

from __future__ import annotations

import pytest

from fastapi_e2e import E2EConfig
from fastapi_e2e.errors import ConfigError

CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="trusted_host_app:app",
        metadata="trusted_host_app:Base.metadata",
        {options}
    )
"""


@pytest.fixture
def trusted(pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pytester.copy_example("real_apps/trusted_host_app.py")
    return pytester


def test_default_host_is_refused_by_the_apps_middleware(trusted: pytest.Pytester) -> None:
    trusted.makeconftest(CONFTEST.format(options=""))
    trusted.makepyfile(
        """
        async def test_default(client):
            response = await client.get("/v1/projects")
            assert response.status_code == 400
            assert response.text == "Invalid host header"
        """
    )
    trusted.runpytest_subprocess().assert_outcomes(passed=1)


def test_base_url_sets_host_and_prefix_and_headers_are_sent(trusted: pytest.Pytester) -> None:
    trusted.makeconftest(
        CONFTEST.format(
            options='base_url="http://localhost/v1", headers={"content-type": "application/json"},'
        )
    )
    trusted.makepyfile(
        """
        async def test_prefixed(client):
            # a JSON body sent as content, relying on the default content type
            created = await client.post("projects", content='{"name": "apollo"}')
            assert created.status_code == 201
            listing = (await client.get("/projects")).json()
            assert listing == {"host": "localhost", "names": ["apollo"]}
            assert str(client.base_url) == "http://localhost/v1/"
        """
    )
    trusted.runpytest_subprocess().assert_outcomes(passed=1)


@pytest.mark.parametrize("bad", ["localhost/v1", "ftp://host", "http:///path", 42])
def test_bad_base_url_is_refused_with_an_example(bad: object) -> None:
    with pytest.raises(ConfigError, match="must be an absolute http or https URL"):
        E2EConfig(app="x:app", base_url=bad)  # type: ignore[arg-type]


def test_headers_must_be_strings() -> None:
    with pytest.raises(ConfigError, match="must map header names to string values"):
        E2EConfig(app="x:app", headers={"x-retries": 3})  # type: ignore[dict-item]
