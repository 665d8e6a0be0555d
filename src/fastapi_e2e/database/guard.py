"""Fail statements that run outside the test's transaction.

A statement on any engine other than the harness's cannot see the test's data and
would persist after it: during a test (or, between tests, in a task a request left
running) it is stopped before it reaches the server, and remembered so the test
fails even if the app swallowed the error.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from fastapi_e2e.database.callsite import call_site
from fastapi_e2e.database.gate import REQUEST_TOKEN
from fastapi_e2e.database.urls import mask
from fastapi_e2e.errors import CONNECTION_ESCAPE, ConnectionEscapeError


class EscapeGuard:
    """While ``active``, refuse statements on any engine but ``allowed``."""

    def __init__(self, allowed: Engine, dependency: str) -> None:
        self.allowed = allowed
        self.dependency = dependency
        self.active = False
        self.in_test = False
        self.escapes: list[ConnectionEscapeError] = []

    def __enter__(self) -> EscapeGuard:
        event.listen(Engine, "before_cursor_execute", self._check)
        self.active = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.active = False
        event.remove(Engine, "before_cursor_execute", self._check)

    def _check(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.active or conn.engine is self.allowed:
            return
        # Between tests only work started by a request (a task it left running) is the
        # app's; a fixture of the user's may use its own engine then.
        if not self.in_test and REQUEST_TOKEN.get() is None:
            return
        error = ConnectionEscapeError(
            CONNECTION_ESCAPE.format(
                pool=f"engine {mask(conn.engine.url)}",
                site=call_site(),
                dependency=self.dependency,
            )
        )
        self.escapes.append(error)
        raise error

    def take_escapes(self) -> list[ConnectionEscapeError]:
        escapes, self.escapes = self.escapes, []
        return escapes
