"""Seed data files (JSON, YAML, CSV) loaded through the tables' columns: typed values,
errors naming the file, row and column, and files baked into the schema template."""

from __future__ import annotations

import uuid

import pytest

CATEGORIES_CSV = """id,slug,name
1,tea,Tea
2,cups,Cups
"""

PRODUCTS_JSON = """{
  "products": [
    {"id": 10, "sku": "T-1", "name": "Sencha", "category_id": 1, "price": 12.50,
     "status": "active", "in_stock": true, "attributes": {"origin": "Shizuoka", "grams": 100},
     "launched_on": "2024-03-01"},
    {"id": 11, "sku": "C-1", "name": "Mug", "category_id": 2, "price": "7.05",
     "status": "retired", "in_stock": false}
  ]
}
"""

PRODUCTS_YAML = """
products:
  - id: 20
    sku: T-2
    name: Assam
    category_id: 1
    price: 3.10
    status: draft
    in_stock: yes
    attributes: {origin: Assam}
    launched_on: 2023-11-30
    created_at: 2023-11-30T08:00:00Z
"""

PRODUCTS_CSV = """id,sku,name,category_id,price,status,in_stock,attributes,launched_on
30,C-2,Teapot,2,45.00,active,false,"{""litres"": 1.2}",
"""

TYPED = """
import datetime as dt
import decimal
from sqlalchemy import select
from fastapi_e2e import seed_files
from catalogue_app import Product, Status

catalogue = seed_files({files})

async def test_values_are_typed_by_the_columns(catalogue, db_session):
    products = {{p.sku: p for p in await db_session.scalars(select(Product))}}
    {checks}

async def test_the_app_sees_them(catalogue, client):
    assert (await client.get("/products/count")).json() == {{"count": {count}}}

async def test_the_sequence_moved_past_the_given_ids(catalogue, db_session):
    product = Product(sku="NEW", name="New", category_id=1, price=1, status=Status.draft)
    db_session.add(product)
    await db_session.flush()
    assert product.id > 10
"""

JSON_CHECKS = """
    sencha = products["T-1"]
    assert sencha.price == decimal.Decimal("12.50")
    assert sencha.status is Status.active and sencha.in_stock is True
    assert sencha.attributes == {"origin": "Shizuoka", "grams": 100}
    assert sencha.launched_on == dt.date(2024, 3, 1)
    assert isinstance(sencha.created_at, dt.datetime)  # the server default
    assert products["C-1"].price == decimal.Decimal("7.05")
    assert products["C-1"].status is Status.retired and products["C-1"].in_stock is False
"""

YAML_CHECKS = """
    assam = products["T-2"]
    assert assam.price == decimal.Decimal("3.10") and assam.status is Status.draft
    assert assam.in_stock is True and assam.attributes == {"origin": "Assam"}
    assert assam.launched_on == dt.date(2023, 11, 30)
    assert assam.created_at == dt.datetime(2023, 11, 30, 8, tzinfo=dt.timezone.utc)
"""

CSV_CHECKS = """
    teapot = products["C-2"]
    assert teapot.price == decimal.Decimal("45.00") and teapot.status is Status.active
    assert teapot.in_stock is False and teapot.attributes == {"litres": 1.2}
    assert teapot.launched_on is None
"""


@pytest.fixture
def catalogue(
    pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    pytester.copy_example("catalogue")
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "categories.csv").write_text(CATEGORIES_CSV)
    return pytester


@pytest.mark.parametrize(
    ("name", "content", "checks", "count"),
    [
        ("products.json", PRODUCTS_JSON, JSON_CHECKS, 2),
        ("products.yaml", PRODUCTS_YAML, YAML_CHECKS, 1),
        ("products.csv", PRODUCTS_CSV, CSV_CHECKS, 1),
    ],
)
def test_data_file_rows_are_typed_by_their_columns(
    catalogue: pytest.Pytester, name: str, content: str, checks: str, count: int
) -> None:
    (catalogue.path / "data" / name).write_text(content)
    files = repr("data/categories.csv") + ", " + repr(f"data/{name}")
    catalogue.makepyfile(test_files=TYPED.format(files=files, checks=checks, count=count))
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "products.csv",
            "sku,name,category_id,price,status\nA,a,1,1.00,active\nB,b,1,abc,active\n",
            "*The seed data file */data/products.csv, line 3, column price of products: "
            "'abc' is not a NUMERIC(10, 2)*",
        ),
        (
            "products.json",
            '{"products": [{"sku": "A", "name": "a", "category_id": 1, "price": 1,'
            ' "status": "sold"}]}',
            "*The seed data file */data/products.json, row 1 of 'products', column status "
            "of products: 'sold' is not a*not a member of Status (draft, active, retired)*",
        ),
        (
            "products.json",
            '{"products": [{"sku": "A", "colour": "red"}]}',
            "*The seed data file */data/products.json, row 1 of 'products': the column "
            "'colour' is not a column of the table products*",
        ),
        (
            "product.json",
            '{"product": []}',
            "*The seed data file */data/product.json names the table 'product', which is "
            "not in the schema's metadata (tables: categories, products)*",
        ),
    ],
)
def test_a_bad_row_names_the_file_row_and_column(
    catalogue: pytest.Pytester, name: str, content: str, expected: str
) -> None:
    (catalogue.path / "data" / name).write_text(content)
    catalogue.makepyfile(
        test_bad=f"""
        from fastapi_e2e import seed

        @seed(scope="module", files=["data/categories.csv", "data/{name}"])
        async def catalogue(db_session):
            raise AssertionError("the files are loaded first, and failed")

        async def test_it(catalogue):
            pass
        """
    )
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])


def test_a_yaml_file_without_pyyaml_says_how_to_install_it(catalogue: pytest.Pytester) -> None:
    (catalogue.path / "data" / "products.yaml").write_text(PRODUCTS_YAML)
    (catalogue.path / "yaml.py").write_text("raise ImportError('PyYAML is hidden')\n")
    catalogue.makepyfile(
        test_yaml="""
        from fastapi_e2e import seed_files

        catalogue = seed_files("data/categories.csv", "data/products.yaml")

        async def test_it(catalogue):
            pass
        """
    )
    result = catalogue.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ['*is YAML, and PyYAML is not installed*pip install "pytest-fastapi-e2e?yaml?"*']
    )


BAKED_CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="catalogue_app:create_app",
        metadata="catalogue_app:Base.metadata",
        database_url_env="DATABASE_URL",
        seed_files=["data/categories.csv"],
    )
"""

BAKED_TESTS = """
async def test_reference_rows_are_in_every_test(client):
    assert (await client.get("/categories")).json() == {expected!r}

async def test_changes_to_them_are_rolled_back(client, db_session):
    from sqlalchemy import delete
    from catalogue_app import Category
    await db_session.execute(delete(Category))
    assert (await client.get("/categories")).json() == []
"""


def test_template_seed_files_are_part_of_the_cache_key(catalogue: pytest.Pytester) -> None:
    # A category of a name no other run used: this test's template is new.
    unique = f"tea-{uuid.uuid4().hex[:8]}"
    (catalogue.path / "data" / "categories.csv").write_text(f"id,slug,name\n1,{unique},Tea\n")
    catalogue.makeconftest(BAKED_CONFTEST)
    catalogue.makepyfile(test_baked=BAKED_TESTS.format(expected=[unique]))
    first = catalogue.runpytest_subprocess("-p", "no:randomly", "--random-order")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["fastapi-e2e: *schema template e2e_tpl_* built;*"])

    again = catalogue.runpytest_subprocess("-p", "no:randomly")
    again.assert_outcomes(passed=2)
    again.stdout.fnmatch_lines(["fastapi-e2e: *schema template e2e_tpl_* reused;*"])

    (catalogue.path / "data" / "categories.csv").write_text(
        f"id,slug,name\n1,{unique},Tea\n2,cups,Cups\n"
    )
    catalogue.makepyfile(test_baked=BAKED_TESTS.format(expected=["cups", unique]))
    edited = catalogue.runpytest_subprocess("-p", "no:randomly")
    edited.assert_outcomes(passed=2)
    edited.stdout.fnmatch_lines(["fastapi-e2e: *schema template e2e_tpl_* built;*"])
