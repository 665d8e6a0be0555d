from myapp import User
from sqlalchemy import func, select


async def test_create_user(client, db_session):
    db_session.add(User(email="seed@example.com"))  # seeded: visible to the app
    response = await client.post("/users", json={"email": "new@example.com"})
    assert response.status_code == 201
    assert await db_session.scalar(select(func.count(User.id))) == 2  # and vice versa


def test_sync_style(client):  # FastAPI's docs' style: a sync client, same transaction
    assert client.post("/users", json={"email": "a@example.com"}).status_code == 201
