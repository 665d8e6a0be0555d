"""Trace files: one JSON document and one self-contained HTML page per test."""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any

from fastapi_e2e.diagnosis.render import render_text

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def trace_stem(directory: Path, nodeid: str, worker: str | None) -> Path:
    """Where a test's trace files go (without suffix): readable, unique, short."""
    readable = _UNSAFE.sub("_", nodeid).strip("_")[:120]
    digest = hashlib.sha1(nodeid.encode(), usedforsecurity=False).hexdigest()[:8]
    folder = directory / worker if worker else directory
    return folder / f"{readable}-{digest}"


def write_trace(stem: Path, data: dict[str, Any], scrub: Any) -> list[Path]:
    """Write ``stem``.json and ``stem``.html; ``scrub`` removes secrets from the text."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    # Not with_suffix(): node ids contain dots ("test_x.py_test_y").
    json_path = stem.parent / f"{stem.name}.json"
    html_path = stem.parent / f"{stem.name}.html"
    json_path.write_text(scrub(json.dumps(data, indent=2, default=str)), encoding="utf-8")
    html_path.write_text(scrub(render_html(data)), encoding="utf-8")
    return [json_path, html_path]


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _timeline(data: dict[str, Any]) -> str:
    events = []
    for view in data["exchanges"]:
        status = view["status"] if view["status"] is not None else "no response"
        events.append(
            (view["at_ms"], f"request [{view['index']}] {view['method']} {view['target']}", status)
        )
        for error in view["server_errors"]:
            events.append(
                (view["at_ms"], f"  server exception in [{view['index']}]", error["headline"])
            )
    for statement in data["statements"]:
        owner = f"[{statement['request']}]" if statement["request"] else "test body"
        sql = " ".join(statement["sql"].split())[:160]
        events.append((statement["at_ms"], f"  SQL ({owner})", sql))
    events.sort(key=lambda event: event[0] or 0)
    rows = "".join(
        f"<tr><td>{at}</td><td>{html.escape(what)}</td><td>{html.escape(str(detail))}</td></tr>"
        for at, what, detail in events
    )
    return f"<table><tr><th>ms</th><th>event</th><th>detail</th></tr>{rows}</table>"


def render_html(data: dict[str, Any]) -> str:
    """A readable page: summary, the report text, timeline, and captured output."""
    title = html.escape(f"{data['nodeid']}: {data['outcome']}")
    logs = "".join(f"<h3>{html.escape(name)}</h3>{_pre(text)}" for name, text in data["captured"])
    database = data.get("database")
    where = (
        f"<p>database: {html.escape(str(database['name']))} ({html.escape(str(database['mode']))}"
        f"{', kept' if database['kept'] else ''})</p>"
        if database
        else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
        "pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:13px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;"
        "padding:2px 6px;text-align:left;vertical-align:top}"
        "</style></head><body>"
        f"<h1>{title}</h1>"
        f"<p>duration {data['duration_s']} s; {len(data['exchanges'])} request(s), "
        f"{data['statement_count']} SQL statement(s)</p>{where}"
        f"<h2>Failure</h2>{_pre(data['failure'] or '(passed)')}"
        f"<h2>Requests, server exceptions and SQL</h2>{_pre(render_text(data, full=True))}"
        f"<h2>Timeline</h2>{_timeline(data)}"
        f"<h2>Captured output and logs</h2>{logs or '<p>(none)</p>'}"
        "</body></html>"
    )
