"""End-to-end HTTP tests for example_app, run through the pytest-fastapi-e2e harness."""
