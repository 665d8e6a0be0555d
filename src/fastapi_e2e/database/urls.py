"""Parse and mask database URLs."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from fastapi_e2e.errors import BAD_DB_URL, ConfigError

_SECRET_QUERY_KEYS = ("password", "passfile", "sslpassword")


def mask(url: URL) -> str:
    """The URL as text with its password, and any password in its query, replaced by ***."""
    secrets = {key: "***" for key in url.query if key.lower() in _SECRET_QUERY_KEYS}
    if secrets:
        url = url.update_query_dict(secrets)
    return url.render_as_string(hide_password=True)


def parse_server_url(raw: str, source: str) -> URL:
    """Parse a user-given server URL into an asyncpg SQLAlchemy URL."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        # Never echo a URL we could not parse: it may hold a password in clear.
        raise ConfigError(
            BAD_DB_URL.format(source=source, url="(unparsable, not shown)", cause=exc)
        ) from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            BAD_DB_URL.format(
                source=source, url=mask(url), cause=f"backend {url.get_backend_name()!r}"
            )
        )
    if url.host is not None and "@" in url.host:
        # "user:p@ss@host" parses with part of the password as the host; showing the
        # "host" would show that part of the password.
        raise ConfigError(
            BAD_DB_URL.format(
                source=source,
                url="(not shown: it may contain a password)",
                cause="'@' in the host part; percent-encode '@' in the password as %40",
            )
        )
    return url.set(drivername="postgresql+asyncpg")


def asyncpg_connect_kwargs(url: URL) -> dict[str, Any]:
    """asyncpg.connect() keyword arguments for ``url``, as SQLAlchemy would pass them."""
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    args, kwargs = dialect.create_connect_args(url)  # type: ignore[no-untyped-call]
    assert not args
    return dict(kwargs)
