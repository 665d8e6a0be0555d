"""Assert how many SQL statements a block of a test ran (in the spirit of assertNumQueries)."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi_e2e.diagnosis.record import Recording, Statement
from fastapi_e2e.diagnosis.redact import Redactor
from fastapi_e2e.errors import QUERY_COUNT_FAILED, QUERY_REPEATED

# The harness's own statements (parity checks) start with /* e2e */.
_BOOKKEEPING = re.compile(r"\s*(SAVEPOINT|RELEASE\b|ROLLBACK\s+TO\b|/\* e2e \*/)", re.IGNORECASE)
LISTED = 50
"""Statements listed in a failure message; the rest are counted."""


def is_bookkeeping(sql: str) -> bool:
    """SAVEPOINT/RELEASE/ROLLBACK TO: how sessions share the test's transaction, not work."""
    return _BOOKKEEPING.match(sql) is not None


class CapturedQueries:
    """The statements a ``with e2e_queries.capture()`` block ran, bookkeeping excluded."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    @property
    def sql(self) -> list[str]:
        return [statement.sql for statement in self.statements]

    def __len__(self) -> int:
        return len(self.statements)


def _where(statement: Statement, redactor: Redactor) -> str:
    exchange = statement.exchange
    if exchange is None:
        return "the test body"
    return f"{exchange.method} {redactor.url(exchange.target)}"


def describe(statements: list[Statement]) -> list[str]:
    """The statements, one line each, then the ones that repeated (an N+1 sign)."""
    redactor = Redactor()
    lines = []
    for number, statement in enumerate(statements[:LISTED], 1):
        sql = " ".join(statement.sql.split())
        lines.append(f"  {number}. [{_where(statement, redactor)}] {sql}")
    if len(statements) > LISTED:
        lines.append(f"  ... {len(statements) - LISTED} more")
    repeats = collections.Counter(
        (" ".join(statement.sql.split()), _where(statement, redactor)) for statement in statements
    )
    for (sql, where), count in repeats.most_common():
        if count < 2:
            break
        lines.append(
            "Repeated: " + QUERY_REPEATED.format(count=count, where=f" in {where}", sql=sql)
        )
    return [redactor.scrub(line) for line in lines]


class QueryCounter:
    """``with e2e_queries.exactly(3):`` / ``at_most(5)`` / ``capture()`` around test code.

    Counts the statements run on the test's connection inside the block, by the test
    and by the requests it makes, leaving out SAVEPOINT, RELEASE and ROLLBACK TO.
    """

    def __init__(self, recording: Recording) -> None:
        self._recording = recording

    @contextmanager
    def capture(self) -> Iterator[CapturedQueries]:
        """Collect the block's statements; no assertion."""
        window: list[Statement] = []
        captured = CapturedQueries()
        self._recording.windows.append(window)
        try:
            yield captured
        finally:
            self._recording.windows.remove(window)
            captured.statements = [s for s in window if not is_bookkeeping(s.sql)]

    def exactly(self, count: int) -> _Expectation:
        """Fail unless the block runs exactly ``count`` statements."""
        return _Expectation(self, f"exactly {count}", lambda ran: ran == count)

    def at_most(self, count: int) -> _Expectation:
        """Fail if the block runs more than ``count`` statements."""
        return _Expectation(self, f"at most {count}", lambda ran: ran <= count)


class _Expectation:
    """A block whose statement count is checked on exit (a class, so pytest can hide it)."""

    def __init__(self, counter: QueryCounter, expectation: str, holds: Callable[[int], bool]):
        self._capture = counter.capture()
        self._expectation = expectation
        self._holds = holds

    def __enter__(self) -> CapturedQueries:
        self._captured = self._capture.__enter__()
        return self._captured

    def __exit__(self, *exc_info: Any) -> None:
        __tracebackhide__ = True
        self._capture.__exit__(*exc_info)
        captured = self._captured
        if exc_info[0] is None and not self._holds(len(captured)):
            header = QUERY_COUNT_FAILED.format(expectation=self._expectation, count=len(captured))
            raise AssertionError("\n".join([header, *describe(captured.statements)]))
