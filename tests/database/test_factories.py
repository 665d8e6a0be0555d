"""Factories write through the test's session with no wiring: polyfactory's
SQLAlchemyFactory bound by the run, factory_boy through the documented recipe."""

from __future__ import annotations

import pytest

POLYFACTORY = """
import decimal
from polyfactory import Use
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from fastapi_e2e import seed
from catalogue_app import Category, Product, Status

class CategoryFactory(SQLAlchemyFactory[Category]):
    __set_relationships__ = False

class ProductFactory(SQLAlchemyFactory[Product]):
    __set_relationships__ = False
    price = Use(lambda: decimal.Decimal("5.00"))
    status = Status.active
    attributes = Use(dict)
    sku = Use(lambda: ProductFactory.__faker__.unique.bothify("SKU-########"))

@seed(scope="module")
async def shelf():
    category = await CategoryFactory.create_async(slug="tea")
    await ProductFactory.create_batch_async(3, category_id=category.id)
    return category.id

async def test_rows_made_by_a_factory_reach_the_app(client):
    category = await CategoryFactory.create_async(slug="cups")
    await ProductFactory.create_batch_async(2, category_id=category.id)
    assert len((await client.get("/products?category=cups")).json()) == 2

async def test_factories_work_inside_scoped_seeds(shelf, client):
    assert len((await client.get("/products?category=tea")).json()) == 3
    assert (await client.get("/categories")).json() == ["tea"]
"""

FACTORY_BOY = """
import decimal
import factory
from factory.alchemy import SQLAlchemyModelFactory
from fastapi_e2e import current_session
from catalogue_app import Category, Product, Status

class Model(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        # The recipe: the running test's session; rows are flushed before each request.
        sqlalchemy_session_factory = lambda: current_session().sync_session
        sqlalchemy_session_persistence = None

class CategoryFactory(Model):
    class Meta:
        model = Category
    slug = factory.Sequence(lambda n: f"category-{n}")
    name = "Category"

class ProductFactory(Model):
    class Meta:
        model = Product
    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Faker("word")
    category = factory.SubFactory(CategoryFactory)
    price = decimal.Decimal("2.50")
    status = Status.active

async def test_factory_boy_rows_reach_the_app(client, db_session):
    ProductFactory.create_batch(3)
    assert (await client.get("/products/count")).json() == {"count": 3}

async def test_and_are_rolled_back(client):
    assert (await client.get("/products/count")).json() == {"count": 0}
"""


@pytest.fixture
def catalogue(
    pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    pytester.copy_example("catalogue")
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return pytester


def test_polyfactory_persists_through_the_tests_session(catalogue: pytest.Pytester) -> None:
    catalogue.makepyfile(test_poly=POLYFACTORY)
    result = catalogue.runpytest_subprocess("-p", "no:randomly", "-p", "random_order")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*polyfactory's SQLAlchemyFactory persists through db_session*"])


def test_factory_boy_recipe(catalogue: pytest.Pytester) -> None:
    catalogue.makepyfile(test_boy=FACTORY_BOY)
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_current_session_outside_a_test_says_why(catalogue: pytest.Pytester) -> None:
    catalogue.makepyfile(
        test_outside="""
        import pytest
        from fastapi_e2e import current_session

        @pytest.fixture(scope="module")
        def early(e2e_database_url):
            return current_session()

        async def test_it(early, client):
            pass
        """
    )
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*current_session() was called while no test*between tests*"])
