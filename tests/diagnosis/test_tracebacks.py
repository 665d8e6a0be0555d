"""Tracebacks: app frames shown, framework frames collapsed, groups flattened."""

from __future__ import annotations

import builtins
import json
import sys
import traceback

import pytest

from fastapi_e2e.diagnosis.tracebacks import format_exception, library_of


def _raise_in_library() -> None:
    json.loads("{not json")  # raised inside the stdlib's json package


def test_library_frames_are_collapsed_but_the_raising_frame_is_shown() -> None:
    try:
        _raise_in_library()
    except ValueError as exc:
        lines = format_exception(traceback.TracebackException.from_exception(exc))
    assert any("in _raise_in_library" in line for line in lines)
    assert any(line.strip().startswith("... ") and "json" in line for line in lines)
    assert lines[-1].startswith("json.decoder.JSONDecodeError")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups are 3.11+")
def test_exception_groups_are_flattened() -> None:
    group = builtins.ExceptionGroup  # type: ignore[attr-defined]
    try:
        raise group("two", [ValueError("first"), KeyError("second")])
    except group as exc:
        lines = format_exception(traceback.TracebackException.from_exception(exc))
    assert lines[0] == "ExceptionGroup: two (2 sub-exceptions) (flattened: 2 exceptions)"
    assert "ValueError: first" in lines
    assert "KeyError: 'second'" in lines


def test_app_code_is_not_a_library() -> None:
    assert library_of(__file__) is None
    assert library_of(json.__file__) == "json"
