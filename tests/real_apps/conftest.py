"""Apps shaped like real projects, each run by an inner pytest on the embedded cluster
with nothing in E2EConfig but the app and its schema."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(app={app!r}, metadata={metadata!r})
"""


@pytest.fixture
def real_app(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``real_app("settings_app", app=..., metadata=...)``: the app file and a conftest."""
    # The embedded default, as a new user has it; the cluster cache is the session's.
    monkeypatch.delenv("E2E_DATABASE_URL", raising=False)
    for name in ("DATABASE_URL", "DSN", "DB_DSN", "ACCOUNTS_DB"):
        monkeypatch.delenv(name, raising=False)

    def make(module: str, app: str, metadata: str) -> pytest.Pytester:
        pytester.copy_example(f"real_apps/{module}.py")
        pytester.makeconftest(CONFTEST.format(app=app, metadata=metadata))
        return pytester

    return make
