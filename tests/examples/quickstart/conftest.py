import pytest

from fastapi_e2e import E2EConfig


@pytest.fixture(scope="session")
def e2e_config() -> E2EConfig:
    return E2EConfig(app="myapp:app", metadata="myapp:Base.metadata")
