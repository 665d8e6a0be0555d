"""The statements parity.py builds, and what it reads from the app's statements."""

from __future__ import annotations

from fastapi_e2e.database import parity


def test_setting_names_from_text_and_bound_parameters() -> None:
    assert parity.setting_names("SET LOCAL app.tenant = '1'", None) == ["app.tenant"]
    assert parity.setting_names('set local "App.X" to 1', None) == ["App.X"]
    assert parity.setting_names("SET LOCAL TRANSACTION READ ONLY", None) == []
    assert parity.setting_names("SELECT set_config('a.b', '1', true)", None) == ["a.b"]
    asyncpg = "SELECT set_config($1::VARCHAR, $2::VARCHAR, $3::BOOLEAN) AS set_config_1"
    assert parity.setting_names(asyncpg, ("app.tenant", "1", True)) == ["app.tenant"]
    psycopg = "SELECT set_config(%(set_config_1)s::VARCHAR, %(set_config_2)s::VARCHAR)"
    assert parity.setting_names(psycopg, {"set_config_1": "app.t"}) == ["app.t"]


def test_restore_quotes_values_and_puts_the_role_last() -> None:
    statement = parity.restore({"app.tenant": "o'k", "app.new": None}, "none")
    assert statement == (
        "/* e2e */ SELECT set_config('app.tenant', 'o''k', true), "
        "set_config('app.new', NULL, true), set_config('role', 'none', true)"
    )
    assert parity.restore({}, None) is None
