"""RFC 9457 problem details: exception types and handlers rendering them.

Every error the API returns uses ``application/problem+json`` with at least
``type``, ``title``, ``status`` and ``detail`` so clients need one parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:example-app:problem:"


class ProblemResponse(JSONResponse):
    """JSON response advertising the problem+json media type."""

    media_type = PROBLEM_CONTENT_TYPE


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> ProblemResponse:
    """Render a problem details response."""
    body: dict[str, Any] = {
        "type": type_,
        # RFC 9457 recommends the status phrase as title for "about:blank".
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if extensions:
        body.update(extensions)
    return ProblemResponse(body, status_code=status, headers=dict(headers) if headers else None)


class ProblemError(Exception):
    """An application error that maps directly onto a problem details response."""

    status: int = 500
    title: str = "Internal Server Error"
    type_: str = "about:blank"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers) if headers else {}


class NotFound(ProblemError):
    status = 404
    title = "Not Found"
    type_ = PROBLEM_TYPE_PREFIX + "not-found"


class Conflict(ProblemError):
    status = 409
    title = "Conflict"
    type_ = PROBLEM_TYPE_PREFIX + "conflict"


class Unauthorized(ProblemError):
    status = 401
    title = "Unauthorized"
    type_ = PROBLEM_TYPE_PREFIX + "unauthorized"


class RateLimited(ProblemError):
    status = 429
    title = "Too Many Requests"
    type_ = PROBLEM_TYPE_PREFIX + "rate-limited"


class ServiceUnavailable(ProblemError):
    status = 503
    title = "Service Unavailable"
    type_ = PROBLEM_TYPE_PREFIX + "service-unavailable"


async def _handle_problem(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status, exc.detail, title=exc.title, type_=exc.type_, headers=exc.headers
    )


async def _handle_http_exception(request: Request, exc: Exception) -> ProblemResponse:
    # Registered for Starlette's base class so routing errors (404/405) raised
    # by the framework itself are rendered as problems too.
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _handle_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    return problem_response(
        422,
        "The request is invalid; see 'errors' for details.",
        title="Validation Error",
        type_=PROBLEM_TYPE_PREFIX + "validation-error",
        extensions={"errors": errors},
    )


async def _handle_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    # Clients get a problem document without internals; the exception is not logged
    # here, as in many apps, which is exactly what makes such 500s hard to debug.
    return problem_response(500, "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error type, expected or not, through the problem renderer."""
    app.add_exception_handler(Exception, _handle_unexpected)
    app.add_exception_handler(ProblemError, _handle_problem)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
