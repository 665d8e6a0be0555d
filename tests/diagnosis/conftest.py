"""The report app: the shop app plus routes that fail in the ways reports must explain."""

from __future__ import annotations

import pytest

from tests.conftest import CONFTEST

# Inner-run timeout: a harness that hangs fails the outer test instead of the suite.
NO_HANG = 60


@pytest.fixture
def report(shop: pytest.Pytester) -> pytest.Pytester:
    """The shop dir with report_app (shop plus failing routes) as the app under test."""
    shop.copy_example("report_app.py")
    shop.makeconftest(
        "import report_app\n"
        + CONFTEST.format(extra="").replace('"shop:create_app"', '"report_app:create_app"')
    )
    return shop
