"""The README's quickstart is these files, and they pass as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "tests" / "examples" / "quickstart"


def _readme_blocks() -> dict[str, str]:
    """Fenced Python and TOML blocks of the README whose first line is ``# <file name>``."""
    text = (ROOT / "README.md").read_text()
    blocks = {}
    for body in re.findall(r"```(?:python|toml)\n(.*?)```", text, re.DOTALL):
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and first[2:].strip().endswith((".py", ".toml")):
            blocks[first[2:].strip()] = rest
    return blocks


@pytest.mark.parametrize("name", ["myapp.py", "pyproject.toml", "conftest.py", "test_users.py"])
def test_readme_shows_the_quickstart_files_as_they_are(name: str) -> None:
    assert _readme_blocks().get(name) == (QUICKSTART / name).read_text()


def test_readme_shows_the_browser_test_as_it_is() -> None:
    name = "example_app/tests/test_browser.py"
    assert _readme_blocks().get(name) == (ROOT / name).read_text()


@pytest.mark.parametrize("configured_by", ["pyproject.toml", "conftest.py"])
def test_quickstart_passes_on_the_embedded_cluster(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, configured_by: str
) -> None:
    monkeypatch.delenv("E2E_DATABASE_URL", raising=False)
    pytester.copy_example("quickstart")
    other = {"pyproject.toml": "conftest.py", "conftest.py": "pyproject.toml"}[configured_by]
    (pytester.path / other).unlink()
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_readme_shows_the_realtime_example_as_it_is() -> None:
    name = "tests/examples/realtime/test_realtime.py"
    assert _readme_blocks().get(name) == (ROOT / name).read_text()


def test_the_realtime_example_passes(pytester: pytest.Pytester, server_url: str) -> None:
    for example in ("shop.py", "notifications_app.py", "chat_app.py", "realtime/test_realtime.py"):
        pytester.copy_example(example)
    pytester.makeconftest(
        """
        import pytest
        from fastapi_e2e import E2EConfig
        import chat_app, notifications_app, shop

        def both_apps():
            app = notifications_app.create_app()
            app.router.routes.extend(
                route for route in chat_app.create_app().routes if "/rooms/" in route.path
            )
            return app

        @pytest.fixture(scope="session")
        def e2e_config():
            return E2EConfig(
                app=both_apps, metadata=shop.Base.metadata, database_url_env="DATABASE_URL"
            )
        """
    )
    result = pytester.runpytest_subprocess("--e2e-db-url", server_url, timeout=120)
    result.assert_outcomes(passed=2)
