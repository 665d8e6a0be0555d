"""Example FastAPI service used to demonstrate and exercise the pytest-fastapi-e2e harness.

It is deliberately shaped like a production app (app factory, lifespan-managed
engine, module-level session factory, Alembic migrations, auth, rate limiting,
background tasks) because those are exactly the patterns that make end-to-end
database testing hard.

Run it with ``uvicorn --factory example_app.main:create_app``.
"""
