"""API key authentication for write endpoints."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Header, Request

from example_app.errors import Unauthorized

API_KEY_HEADER = "X-API-Key"


async def require_api_key(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias=API_KEY_HEADER)] = None,
) -> str:
    """Dependency returning the caller's API key, or raising 401."""
    if not x_api_key:
        raise Unauthorized(
            f"Missing {API_KEY_HEADER} header", headers={"WWW-Authenticate": "ApiKey"}
        )
    valid_keys: frozenset[str] = request.app.state.settings.api_keys
    # Compare against every key in constant time so response timing does not
    # reveal how much of a guessed key was right.
    matched = False
    for key in valid_keys:
        matched |= secrets.compare_digest(x_api_key.encode(), key.encode())
    if not matched:
        raise Unauthorized("Invalid API key", headers={"WWW-Authenticate": "ApiKey"})
    return x_api_key
