"""Lines that replay an exchange: a curl command and the ``client`` call a test would make."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

LOCAL_SERVER = "http://localhost:8000"
"""Where the curl line sends the request: uvicorn's default address."""

# Headers httpx sets on every request; shown in a replay only when they differ.
_HTTPX_DEFAULTS = {
    "host": None,
    "accept": "*/*",
    "accept-encoding": None,
    "connection": "keep-alive",
    "user-agent": None,
    "content-length": None,
}


def is_default_header(name: str, value: str) -> bool:
    """Whether httpx would send this header anyway."""
    lowered = name.lower()
    if lowered not in _HTTPX_DEFAULTS:
        return False
    expected = _HTTPX_DEFAULTS[lowered]
    if lowered == "user-agent":
        return value.startswith("python-httpx/")
    return expected is None or value == expected


def _own_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if not is_default_header(name, value)]


def curl_line(
    method: str, target: str, headers: Sequence[tuple[str, str]], body: str | None
) -> str:
    """A curl command for the request, against a local server (secrets as given: masked)."""
    words = ["curl"]
    if method != "GET" or body is not None:
        words += ["-X", method]
    words.append(LOCAL_SERVER + target)
    for name, value in _own_headers(headers):
        words += ["-H", f"{name}: {value}"]
    if body is not None:
        words += ["--data-raw", body]
    return shlex.join(words)


def client_line(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    *,
    json_body: Any = None,
    form: list[tuple[str, str]] | None = None,
    content: str | None = None,
) -> str:
    """The ``await client.<method>(...)`` call that makes the same request in a test."""
    arguments = [repr(target)]
    skip = {"content-type"} if json_body is not None or form is not None else set()
    own = {name: value for name, value in _own_headers(headers) if name.lower() not in skip}
    if json_body is not None:
        arguments.append(f"json={json_body!r}")
    elif form is not None:
        arguments.append(f"data={dict(form)!r}")
    elif content is not None:
        arguments.append(f"content={content!r}")
    if own:
        arguments.append(f"headers={own!r}")
    verb = method.lower()
    has_body = json_body is not None or form is not None or content is not None
    # httpx's get/head/options/delete take no body; request() does.
    if verb in ("post", "put", "patch") or (
        verb in ("get", "head", "options", "delete") and not has_body
    ):
        return f"await client.{verb}({', '.join(arguments)})"
    return f"await client.request({method!r}, {', '.join(arguments)})"
