"""Format the app's exceptions for the report: app frames in full, framework frames collapsed."""

from __future__ import annotations

import os
import sysconfig
import traceback
from collections.abc import Iterator

import fastapi_e2e

_LIBRARY_ROOTS = tuple(
    sorted(
        {
            os.path.normpath(path) + os.sep
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (path := sysconfig.get_paths().get(key))
        }
    )
)
# The harness itself, wherever it is installed from (an editable checkout, too).
_HARNESS_ROOT = os.path.dirname(os.path.abspath(fastapi_e2e.__file__)) + os.sep


def relative(filename: str) -> str:
    """``filename`` relative to the working directory when it is below it."""
    try:
        shown = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if shown.startswith("..") else shown


def library_of(filename: str) -> str | None:
    """The library (top package or stdlib module) a frame's file is in; None for app code."""
    if filename.startswith("<"):
        return "<frozen>"
    path = os.path.normpath(filename)
    if path.startswith(_HARNESS_ROOT):
        return "fastapi_e2e"
    for root in _LIBRARY_ROOTS:
        if path.startswith(root):
            first = path[len(root) :].split(os.sep, 1)[0]
            if first in ("site-packages", "dist-packages"):
                first = path[len(root) :].split(os.sep)[1]
            return first.removesuffix(".py")
    return None


def leaves(te: traceback.TracebackException) -> list[traceback.TracebackException]:
    """The exceptions inside an exception group, flattened; the exception itself otherwise."""
    inner = getattr(te, "exceptions", None)
    if not inner:
        return [te]
    return [leaf for child in inner for leaf in leaves(child)]


def headline(te: traceback.TracebackException) -> str:
    """``Type: message`` of an exception, one line per line of its message."""
    return "".join(te.format_exception_only()).rstrip("\n")


def app_site(te: traceback.TracebackException) -> str | None:
    """Where in app code the exception was raised (innermost app frame)."""
    for frame in reversed(te.stack):
        if library_of(frame.filename) is None:
            return f"{relative(frame.filename)}:{frame.lineno} in {frame.name}"
    return None


def _frames(stack: traceback.StackSummary) -> Iterator[str]:
    collapsed: list[str] = []
    last = len(stack) - 1
    for index, frame in enumerate(stack):
        library = library_of(frame.filename)
        if library is not None and index != last:  # the raising frame is always shown
            collapsed.append(library)
            continue
        if collapsed:
            yield _collapsed_line(collapsed)
            collapsed = []
        yield f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}'
        if frame.line:
            yield f"    {frame.line.strip()}"
    if collapsed:
        yield _collapsed_line(collapsed)


def _collapsed_line(libraries: list[str]) -> str:
    names = ", ".join(dict.fromkeys(libraries))
    frames = "frame" if len(libraries) == 1 else "frames"
    return f"  ... {len(libraries)} {frames} in {names} ..."


def _one(te: traceback.TracebackException) -> Iterator[str]:
    if te.stack:
        yield "Traceback (most recent call last; framework frames collapsed, -vv shows them):"
        yield from _frames(te.stack)
    yield headline(te)


def _chain(te: traceback.TracebackException) -> Iterator[str]:
    cause = te.__cause__
    context = te.__context__
    if cause is not None:
        yield from _chain(cause)
        yield ""
        yield "The above exception was the direct cause of the following exception:"
        yield ""
    elif context is not None and not te.__suppress_context__:
        yield from _chain(context)
        yield ""
        yield "During handling of the above exception, another exception occurred:"
        yield ""
    yield from _one(te)


def format_exception(te: traceback.TracebackException, *, full: bool = False) -> list[str]:
    """Lines showing the exception: collapsed, with groups flattened; or Python's own format."""
    if full:
        return "".join(te.format()).rstrip("\n").splitlines()
    found = leaves(te)
    if len(found) == 1:
        return list(_chain(found[0]))
    lines = [f"{headline(te)} (flattened: {len(found)} exceptions)"]
    for number, leaf in enumerate(found, 1):
        lines.append(f"[{number}/{len(found)}]")
        lines.extend(_chain(leaf))
    return lines
