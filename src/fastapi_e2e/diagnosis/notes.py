"""Explain errors that have a known cause in this harness, as PEP 678 notes."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi_e2e import errors


def _related(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what caused it (cause, context, a DBAPI error it wraps) and group members."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, getattr(current, "orig", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)
        pending.extend(getattr(current, "exceptions", ()))


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def explain(exc: BaseException) -> str | None:
    """A note on the known cause of ``exc`` in this harness and its fix, if it has one."""
    for current in _related(exc):
        names = _names(current)
        message = str(current)
        if "MissingGreenlet" in names:
            return errors.NOTE_MISSING_GREENLET
        if "another operation is in progress" in message:
            return errors.NOTE_ANOTHER_OPERATION
        if isinstance(current, RuntimeError) and (
            "attached to a different loop" in message or "Event loop is closed" in message
        ):
            return errors.NOTE_LOOP_MISMATCH
        if "lifespan" in message and "did not finish within" in message:
            return errors.NOTE_LIFESPAN_TIMEOUT
        if "Rolling back the test's transaction failed" in message:
            return errors.NOTE_TEARDOWN_ROLLBACK
    return None


def add_note(exc: BaseException, note: str) -> None:
    """Add ``note`` to ``exc`` unless it carries it already (hooks may run twice)."""
    notes = list(getattr(exc, "__notes__", ()))
    if note not in notes:
        # BaseException.add_note() is 3.11+; the attribute is what it sets.
        exc.__notes__ = [*notes, note]  # type: ignore[attr-defined]
