"""A real browser against live_server: sign in, add an item through the page, check the row."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import Item
from example_app.tests.conftest import MakeUser
from fastapi_e2e import LiveServer

async_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed: pip install playwright"
)
# Playwright's own browser download, or the system's (Debian: apt-get install chromium).
CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[async_api.Browser]:
    if CHROMIUM is None:
        pytest.skip("no Chromium: apt-get install chromium, or set CHROMIUM to its path")
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        await browser.close()


async def test_sign_in_and_add_an_item(
    browser: async_api.Browser,
    live_server: LiveServer,
    make_user: MakeUser,
    db_session: AsyncSession,
    app: FastAPI,
) -> None:
    owner = await make_user(email="ada@example.com", name="Ada")
    page = await browser.new_page(base_url=live_server.url)
    try:
        await page.goto("/login")
        await page.get_by_label("Email").fill("ada@example.com")
        await page.get_by_label("API key").fill(sorted(app.state.settings.api_keys)[0])
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/my/items")
        await page.get_by_label("Title").fill("Lamp")
        await page.get_by_label("Price (cents)").fill("1999")
        await page.get_by_role("button", name="Add item").click()
        await async_api.expect(page.locator("#items li")).to_have_text(["Lamp (1999 cents)"])
    finally:
        await page.close()

    item = await db_session.scalar(select(Item).where(Item.owner_id == owner.id))
    assert item is not None
    assert (item.title, item.price_cents) == ("Lamp", 1999)
