import pytest

from fastapi_e2e import E2EConfig


@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="catalogue_app:create_app",
        metadata="catalogue_app:Base.metadata",
        database_url_env="DATABASE_URL",
    )
