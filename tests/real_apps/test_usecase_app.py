"""The dependency yields an async_sessionmaker; use cases run ``maker.begin()``."""

from __future__ import annotations


def test_use_case_transactions_join_the_test(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("usecase_app", "usecase_app:app", "usecase_app:Base.metadata")
    tester.makepyfile(
        """
        from sqlalchemy import select
        from usecase_app import Customer, Order

        async def test_order_and_customer_are_committed_into_the_test(client, db_session):
            response = await client.post("/orders", params={"email": "a@x.io", "total": 5})
            assert response.status_code == 201
            order = await db_session.get(Order, response.json()["id"])
            assert order.total == 5
            assert (await db_session.scalars(select(Customer.email))).all() == ["a@x.io"]

        async def test_seeded_customer_is_reused(client, db_session):
            db_session.add(Customer(email="seed@x.io"))
            await db_session.flush()
            await client.post("/orders", params={"email": "seed@x.io", "total": 1})
            assert len((await db_session.scalars(select(Customer))).all()) == 1

        async def test_failed_use_case_rolls_back_alone(client, db_session):
            db_session.add(Customer(email="dup@x.io"))
            await db_session.flush()
            duplicate = await client.post("/customers", params={"email": "dup@x.io"})
            assert duplicate.status_code == 409
            assert (await client.post("/customers", params={"email": "b@x.io"})).status_code == 201
            emails = select(Customer.email).order_by(Customer.id)
            assert (await db_session.scalars(emails)).all() == ["dup@x.io", "b@x.io"]

        async def test_starts_empty(db_session):
            assert (await db_session.scalars(select(Order))).all() == []
            assert (await db_session.scalars(select(Customer))).all() == []
        """
    )
    tester.runpytest_subprocess("--random-order").assert_outcomes(passed=4)
