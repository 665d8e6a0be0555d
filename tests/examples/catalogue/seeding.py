"""Seed helpers the inner test modules share: a catalogue of categories and products."""

from __future__ import annotations

import decimal
from pathlib import Path

from catalogue_app import Category, Product, Status


def note(what: str) -> None:
    """One line per seed run, for the outer test to count."""
    with Path("seeded.log").open("a") as log:
        log.write(what + "\n")


async def add_catalogue(session, products: int = 50) -> list[str]:
    tea = Category(slug="tea", name="Tea")
    cups = Category(slug="cups", name="Cups")
    session.add_all([tea, cups])
    await session.flush()
    skus = []
    for i in range(products):
        sku = f"SKU-{i:04d}"
        session.add(
            Product(
                sku=sku,
                name=f"Product {i}",
                category=tea if i % 2 else cups,
                price=decimal.Decimal("9.99"),
                status=Status.active,
            )
        )
        skus.append(sku)
    return skus
