"""Set-up problems end in one clear paragraph: pytest-asyncio missing or too old, an app
whose import raises."""

from __future__ import annotations

import pytest

from tests.conftest import CONFTEST


def test_disabled_pytest_asyncio_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:asyncio")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pytest-asyncio is not active in this run*-p no:asyncio*-p no:fastapi_e2e*"]
    )


def test_too_old_pytest_asyncio_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    real_version = metadata.version
    monkeypatch.setattr(
        metadata,
        "version",
        lambda name: "1.0.0" if name == "pytest-asyncio" else real_version(name),
    )
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*needs pytest-asyncio 1.1 or newer*has 1.0.0*"])


def test_app_raising_at_import_shows_its_traceback_once(
    shop: pytest.Pytester,
) -> None:
    shop.makepyfile(
        badapp="""
        import os

        SETTINGS = {"url": os.environ["PAYMENTS_API_URL"]}  # not set in tests

        def create_app():
            raise AssertionError("never reached")
        """
    )
    shop.makeconftest(CONFTEST.format(extra="").replace('"shop:create_app"', '"badapp:create_app"'))
    shop.makepyfile(
        """
        async def test_one(client):
            pass

        async def test_two(client):
            pass
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*Importing 'badapp' for E2EConfig.app*raised KeyError: 'PAYMENTS_API_URL'*",
            "Caused by:",
            "*badapp.py*line 3, in <module>*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*Importing 'badapp'*(the same error as at the first test that needed the harness*"]
    )
    # In the errors' reports (the summary below them repeats messages, at full length
    # when no terminal width cuts them, as in CI).
    reports = result.stdout.str().split("short test summary info")[0]
    assert reports.count("Caused by:") == 1
    assert "importlib" not in reports  # only the app's frames
