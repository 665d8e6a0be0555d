"""Runtime configuration read from environment variables.

Settings are loaded by the app factory, never at import time, so that tests
(or a process manager) can set the environment before the app is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_API_KEYS = "dev-key"
DEFAULT_RATE_LIMIT_PER_MINUTE = 60


class SettingsError(ValueError):
    """Raised when the environment does not describe a usable configuration."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated application settings."""

    database_url: str
    api_keys: frozenset[str] = frozenset({DEFAULT_API_KEYS})
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (defaults to ``os.environ``)."""
        env = os.environ if environ is None else environ

        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            raise SettingsError(
                "DATABASE_URL is required, e.g. postgresql+asyncpg://user:pass@host/db"
            )

        api_keys = frozenset(
            key.strip() for key in env.get("API_KEYS", DEFAULT_API_KEYS).split(",") if key.strip()
        )
        if not api_keys:
            # An empty key list would silently lock every write endpoint.
            raise SettingsError("API_KEYS must contain at least one non-empty key")

        raw_limit = env.get("RATE_LIMIT_PER_MINUTE", str(DEFAULT_RATE_LIMIT_PER_MINUTE))
        try:
            rate_limit = int(raw_limit)
        except ValueError:
            raise SettingsError(
                f"RATE_LIMIT_PER_MINUTE must be an integer, got {raw_limit!r}"
            ) from None
        if rate_limit < 1:
            raise SettingsError("RATE_LIMIT_PER_MINUTE must be at least 1")

        return cls(database_url=database_url, api_keys=api_keys, rate_limit_per_minute=rate_limit)
