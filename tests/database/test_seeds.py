"""Scoped seed data: rows written once per module, class, package or run, seen by every
test of the group (and the app), each test's changes rolled back, the group's rows
gone after it."""

from __future__ import annotations

import pytest

MODULE_SEED = """
from fastapi_e2e import seed
from seeding import add_catalogue, note

@seed(scope="module")
async def catalogue(db_session):
    note("module")
    return await add_catalogue(db_session)

async def test_app_sees_the_seeded_rows(catalogue, client):
    assert len(catalogue) == 50
    response = await client.get("/products/count")
    assert response.json() == {"count": 50}

async def test_changes_are_rolled_back_after_the_test(catalogue, client):
    response = await client.put("/products/SKU-0001/price", json={"price": "1.50"})
    assert response.status_code == 200
    await client.delete("/products/SKU-0002")
    assert (await client.get("/products/count")).json() == {"count": 49}

async def test_neighbours_see_the_seed_unchanged(catalogue, client):
    product = (await client.get("/products/SKU-0001")).json()
    assert product["price"] == "9.99"
    assert (await client.get("/products/SKU-0002")).status_code == 200

async def test_db_session_sees_the_rows_too(catalogue, db_session):
    from sqlalchemy import func, select
    from catalogue_app import Product
    assert await db_session.scalar(select(func.count()).select_from(Product)) == 50
"""

NO_SEED = """
async def test_the_groups_rows_are_gone(client):
    assert (await client.get("/products/count")).json() == {"count": 0}
    assert (await client.get("/categories")).json() == []
"""


@pytest.fixture
def catalogue(
    pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester dir with the catalogue app, on the outer cluster."""
    pytester.copy_example("catalogue")
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return pytester


def seed_runs(pytester: pytest.Pytester) -> list[str]:
    log = pytester.path / "seeded.log"
    return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("order", ["1", "2", "3"])
def test_module_seed_runs_once_and_each_test_sees_it_whatever_the_order(
    catalogue: pytest.Pytester, order: str
) -> None:
    catalogue.makepyfile(test_seeded=MODULE_SEED, test_after=NO_SEED)
    result = catalogue.runpytest_subprocess(
        "-p", "no:randomly", "-p", "random_order", f"--random-order-seed={order}"
    )
    result.assert_outcomes(passed=5)
    assert seed_runs(catalogue) == ["module"]


def test_module_seed_in_two_modules_runs_once_in_each(catalogue: pytest.Pytester) -> None:
    catalogue.makepyfile(test_one=MODULE_SEED, test_two=MODULE_SEED, test_zero=NO_SEED)
    result = catalogue.runpytest_subprocess(
        "-p", "no:randomly", "-p", "random_order", "--random-order-bucket=global",
        "--random-order-seed=7",
    )  # fmt: skip
    # Modules interleaved: the seed runs again each time its module comes back.
    result.assert_outcomes(passed=9)
    assert set(seed_runs(catalogue)) == {"module"}


def test_class_seed_is_seen_inside_the_class_only(catalogue: pytest.Pytester) -> None:
    catalogue.makepyfile(
        test_classes="""
        from fastapi_e2e import seed
        from seeding import add_catalogue, note

        class TestCatalogue:
            @seed(scope="class")
            async def catalogue(self, db_session):
                note("class")
                return await add_catalogue(db_session, products=5)

            async def test_one(self, catalogue, client):
                assert (await client.get("/products/count")).json() == {"count": 5}
                await client.delete("/products/SKU-0000")

            async def test_two(self, catalogue, client):
                assert (await client.get("/products/count")).json() == {"count": 5}

        async def test_outside_the_class(client):
            assert (await client.get("/products/count")).json() == {"count": 0}
        """
    )
    result = catalogue.runpytest_subprocess("-p", "no:randomly", "-p", "random_order")
    result.assert_outcomes(passed=3)
    assert seed_runs(catalogue) == ["class"]


SESSION_CONFTEST = """
from fastapi_e2e import seed
from seeding import note
from catalogue_app import Category

@seed(scope="session", autouse=True)
async def reference(db_session):
    note("session")
    db_session.add_all([Category(slug="tea", name="Tea"), Category(slug="cups", name="Cups")])
"""

SESSION_TESTS = """
from sqlalchemy import select
from fastapi_e2e import seed
from seeding import note
from catalogue_app import Category, Product, Status

@seed(scope="module")
async def products(db_session):
    note("module")
    tea = await db_session.scalar(select(Category).where(Category.slug == "tea"))
    db_session.add(Product(sku="T-1", name="Sencha", category=tea, price=4, status=Status.active))

async def test_reference_data_is_there(client):
    assert (await client.get("/categories")).json() == ["cups", "tea"]

async def test_module_seed_nests_inside_the_session_seed(products, client):
    assert [p["sku"] for p in (await client.get("/products?category=tea")).json()] == ["T-1"]

async def test_a_test_may_change_reference_data(client, db_session):
    cups = await db_session.scalar(select(Category).where(Category.slug == "cups"))
    await db_session.delete(cups)
    assert (await client.get("/categories")).json() == ["tea"]
"""


def test_session_seed_runs_once_per_run_around_module_seeds(catalogue: pytest.Pytester) -> None:
    catalogue.makeconftest((catalogue.path / "conftest.py").read_text() + SESSION_CONFTEST)
    catalogue.makepyfile(test_a=SESSION_TESTS, test_b=SESSION_TESTS)
    result = catalogue.runpytest_subprocess("-p", "no:randomly", "-p", "random_order")
    result.assert_outcomes(passed=6)
    runs = seed_runs(catalogue)
    assert runs.count("session") == 1
    assert runs.count("module") == 2


def test_session_seed_runs_once_per_xdist_worker(catalogue: pytest.Pytester) -> None:
    catalogue.makeconftest((catalogue.path / "conftest.py").read_text() + SESSION_CONFTEST)
    catalogue.makepyfile(test_a=SESSION_TESTS, test_b=SESSION_TESTS, test_c=SESSION_TESTS)
    result = catalogue.runpytest_subprocess("-p", "no:randomly", "-n", "2")
    result.assert_outcomes(passed=9)
    runs = seed_runs(catalogue)
    assert 1 <= runs.count("session") <= 2  # once per worker that ran a test
    assert runs.count("module") == 3


def test_a_wider_seed_set_up_inside_a_narrower_one_is_refused(
    catalogue: pytest.Pytester,
) -> None:
    catalogue.makepyfile(
        test_order="""
        from fastapi_e2e import seed

        @seed(scope="session")
        async def reference(db_session):
            pass

        @seed(scope="module")
        async def products(db_session):
            pass

        async def test_first(products, client):
            pass

        async def test_second(reference, client):
            pass
        """
    )
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*The session-scoped seed 'reference' was set up while the narrower seed 'products'*"]
    )


def test_a_failing_seed_errors_its_tests_and_leaves_nothing_behind(
    catalogue: pytest.Pytester,
) -> None:
    catalogue.makepyfile(
        test_failing="""
        from fastapi_e2e import seed
        from seeding import add_catalogue

        @seed(scope="module")
        async def catalogue(db_session):
            await add_catalogue(db_session, products=3)
            await db_session.flush()
            raise RuntimeError("the seed broke")

        async def test_uses_it(catalogue):
            pass
        """,
        test_later=NO_SEED,
    )
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the seed broke*"])


def test_package_seed_is_seen_by_the_packages_modules_only(catalogue: pytest.Pytester) -> None:
    package = catalogue.mkpydir("tests_pkg")
    (package / "conftest.py").write_text(
        "from fastapi_e2e import seed\n"
        "from seeding import add_catalogue, note\n\n"
        '@seed(scope="package", autouse=True)\n'
        "async def catalogue(db_session):\n"
        '    note("package")\n'
        "    return await add_catalogue(db_session, products=4)\n"
    )
    for name in ("test_one.py", "test_two.py"):
        (package / name).write_text(
            "async def test_sees_the_package_seed(client):\n"
            '    assert (await client.get("/products/count")).json() == {"count": 4}\n'
            '    await client.delete("/products/SKU-0000")\n'
        )
    catalogue.makepyfile(test_zz_outside=NO_SEED)
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3)
    assert seed_runs(catalogue) == ["package"]


def test_a_seed_may_write_through_the_app(catalogue: pytest.Pytester) -> None:
    catalogue.makepyfile(
        test_through_app="""
        from fastapi_e2e import seed
        from seeding import add_catalogue

        @seed(scope="module")
        async def discounted(db_session, client):
            await add_catalogue(db_session, products=2)
            await db_session.flush()
            response = await client.put("/products/SKU-0001/price", json={"price": "0.99"})
            assert response.status_code == 200

        async def test_the_apps_write_is_part_of_the_seed(discounted, client):
            assert (await client.get("/products/SKU-0001")).json()["price"] == "0.99"

        async def test_and_stays_for_the_next_test(discounted, client):
            assert (await client.get("/products/SKU-0001")).json()["price"] == "0.99"
        """,
        test_zz_after=NO_SEED,
    )
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3)
