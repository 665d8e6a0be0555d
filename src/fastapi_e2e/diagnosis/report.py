"""What the plugin adds to a test's report: the section, notes, and the strict-mode failure."""

from __future__ import annotations

from pathlib import Path

from fastapi_e2e.diagnosis import tracebacks
from fastapi_e2e.diagnosis.artifact import write_trace
from fastapi_e2e.diagnosis.record import Recording
from fastapi_e2e.diagnosis.redact import Redactor
from fastapi_e2e.diagnosis.render import recording_view, render_text
from fastapi_e2e.errors import SERVER_ERROR_SEEN, STRICT_SERVER_ERRORS

SECTION = "fastapi-e2e: requests, server exceptions and SQL"


def section_text(recording: Recording, *, full: bool) -> str | None:
    """The report section for a failed test; None if the test made no request and ran no SQL."""
    if not recording.exchange_count and not recording.statement_count:
        return None
    redactor = Redactor()
    return redactor.scrub(render_text(recording_view(recording, redactor), full=full))


def _first_server_error(recording: Recording, template: str) -> str | None:
    found = recording.server_errors()
    if not found:
        return None
    exchange, error = found[0]
    redactor = Redactor()
    request = f"{exchange.method} {redactor.url(exchange.target)}"
    headline = tracebacks.headline(error.trace).splitlines()[0]
    return redactor.scrub(template.format(count=len(found), headline=headline, request=request))


def server_error_note(recording: Recording) -> str | None:
    """A note for a failing test's error: the app raised too, see the section."""
    return _first_server_error(recording, SERVER_ERROR_SEEN)


def strict_failure(recording: Recording) -> str | None:
    """Why a passing test fails under --e2e-strict-server-errors, if it does."""
    return _first_server_error(recording, STRICT_SERVER_ERRORS)


def write_trace_files(
    recording: Recording | None,
    stem: Path,
    *,
    nodeid: str,
    outcome: str,
    duration: float,
    failure: str | None,
    captured: list[tuple[str, str]],
    database: dict[str, object] | None = None,
) -> list[Path]:
    """Write the test's JSON and HTML trace; secrets masked as in the report."""
    redactor = Redactor()
    view = recording_view(recording or Recording(), redactor)
    data = {
        "nodeid": nodeid,
        "outcome": outcome,
        "duration_s": round(duration, 3),
        "failure": failure,
        "database": database,
        **view,
        "captured": captured,
    }
    return write_trace(stem, data, redactor.scrub)
