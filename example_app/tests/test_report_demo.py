"""Two real bugs, kept as strict expected failures to demonstrate the failure report.

Run ``pytest example_app/tests/test_report_demo.py --runxfail`` to see the report:
the exception behind the problem+json 500 with its traceback, the SQL of each
request, the N+1 flagged by ``e2e_queries``, and curl/client lines to replay them.
"""

from __future__ import annotations

import httpx
import pytest

from example_app.tests.conftest import MakeItem, MakeUser
from fastapi_e2e import QueryCounter


@pytest.mark.xfail(
    strict=True, reason="demo bug: average of no prices divides by zero behind the 500 handler"
)
async def test_average_price_of_user_without_items(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()

    response = await client.get(f"/reports/users/{user.id}/average-price")

    assert response.status_code == 200


@pytest.mark.xfail(strict=True, reason="demo bug: item counts run one query per user (N+1)")
async def test_item_counts_take_one_query(
    client: httpx.AsyncClient, make_user: MakeUser, make_item: MakeItem, e2e_queries: QueryCounter
) -> None:
    for number in range(3):
        await make_item(await make_user(), title=f"Item {number}")

    with e2e_queries.at_most(2):
        response = await client.get("/reports/item-counts")

    assert response.status_code == 200
