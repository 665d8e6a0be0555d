"""Passwords never appear in what the harness prints about a database URL."""

from __future__ import annotations

import pytest

from fastapi_e2e.database.urls import mask, parse_server_url
from fastapi_e2e.errors import ConfigError


def test_password_is_masked() -> None:
    url = parse_server_url("postgresql://app:s3cret@db:5432/postgres", "test")
    assert mask(url) == "postgresql+asyncpg://app:***@db:5432/postgres"


def test_password_in_the_query_is_masked() -> None:
    url = parse_server_url("postgresql://app@db/postgres?password=TopSecret&sslmode=require", "t")
    shown = mask(url)
    assert "TopSecret" not in shown
    assert "sslmode=require" in shown


def test_unencoded_at_sign_in_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        parse_server_url("postgresql://postgres:hunter2@Secret@localhost:5432/postgres", "t")
    assert "Secret" not in str(info.value)
    assert "%40" in str(info.value)


def test_unparsable_url_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        parse_server_url("postgresql://user:pw@host:notaport/db", "the database URL")
    assert "pw" not in str(info.value).replace("password", "")
