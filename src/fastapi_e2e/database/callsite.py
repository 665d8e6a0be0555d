"""Name the line of app code that caused something, skipping library frames."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import greenlet

_LIBRARY_PARTS = (
    "/sqlalchemy/",
    "/asyncpg/",
    "/psycopg/",
    "/sqlmodel/",
    "/asyncio/",
    "/fastapi_e2e/",
    "/greenlet/",
    "/starlette/",
    "/fastapi/",
    "/anyio/",
    "/httpx/",
    "/contextlib.py",
    "/concurrent/",
    "/threading.py",
)


def _frames() -> list[traceback.FrameSummary]:
    """The current stack, innermost last, continued into the awaiting coroutine.

    SQLAlchemy's asyncio layer runs sync code in a child greenlet whose stack stops
    at the greenlet; the code that awaited it is on the parent greenlet's stack.
    """
    frames: list[traceback.FrameSummary] = list(traceback.extract_stack())
    parent = greenlet.getcurrent().parent
    if parent is not None and parent.gr_frame is not None:
        frames = traceback.extract_stack(parent.gr_frame) + frames
    return frames


def _first_app_frame(frames: list[traceback.FrameSummary]) -> str | None:
    for frame in reversed(frames):
        name = frame.filename.replace("\\", "/")
        # "<...>" names code generated at run time (SQLAlchemy's decorators), not the app's.
        if not name.startswith("<") and not any(part in name for part in _LIBRARY_PARTS):
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return None


def call_site() -> str:
    """Where app code started what is running now: innermost frame outside libraries."""
    return _first_app_frame(_frames()) or "(unknown call site)"


def task_site(task: asyncio.Task[Any] | None) -> str:
    """Where ``task`` is suspended now, in app code if possible.

    ``Task.get_stack()`` shows only the outermost coroutine of a suspended task, so
    this follows the chain of awaits down to the innermost one.
    """
    if task is None:
        return "(no task)"
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            frames.append(
                traceback.FrameSummary(
                    frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
                )
            )
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return _first_app_frame(frames) or f"task {task.get_name()}"
