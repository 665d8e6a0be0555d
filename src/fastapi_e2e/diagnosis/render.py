"""Turn a Recording into what people read: plain data (for trace files) and the report text.

Everything shown passes through one Redactor, and the finished text is scrubbed of
every secret value it masked, so a secret never appears, wherever it was echoed.
"""

from __future__ import annotations

import http
import inspect
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi_e2e.diagnosis import notes, reproduce, tracebacks
from fastapi_e2e.diagnosis.queries import is_bookkeeping
from fastapi_e2e.diagnosis.record import (
    Body,
    CapturedError,
    Exchange,
    Frame,
    Recording,
    Statement,
)
from fastapi_e2e.diagnosis.redact import SECRET_NAME, Redactor

BODY_CHARS = 2048
"""Characters of each body shown without -vv."""
SQL_CHARS = 500
PARAMETER_CHARS = 200
PIECES_SHOWN = 20
"""Chunks of a stream, and frames of a WebSocket, shown without -vv (the first ones)."""
PIECE_CHARS = 200
"""Characters of each chunk or frame shown without -vv."""

ENDED_BY = {
    "app": "ended by the app (it sent the last chunk)",
    "client": "ended by the client: it closed the stream before the end, and the app was "
    "told (http.disconnect)",
    "raised": "ended by the app raising an exception (below) before the last chunk",
    "cancelled": "cancelled before its end (the client's read timeout, or the client left "
    "and the app did not stop)",
}

_JSON_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*')
# A key (group 2 set, kept) or a string or number (masked), in a secret field's value.
_JSON_LEAF = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?|-?\d[\d.eE+-]*')


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _short(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _header(headers: Sequence[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return ""


def _mask_json_text(text: str, redactor: Redactor) -> str:
    """Mask secret fields in JSON that could not be parsed (cut short by the size limit).

    A secret field's value is masked whatever it is: a string, a number, or every
    leaf of an array or object (``"refresh_tokens": [...]``), as when parsed.
    """
    pieces, done = [], 0
    for match in _JSON_KEY.finditer(text):
        if match.start() < done or not SECRET_NAME.search(match.group(1)):
            continue
        end = _json_value_end(text, match.end())

        def leaf(found: re.Match[str]) -> str:
            if found.group(2):
                return found.group(0)
            value = found.group(1) if found.group(0).startswith('"') else found.group(0)
            return f'"{redactor.mask(value)}"'

        pieces += [text[done : match.end()], _JSON_LEAF.sub(leaf, text[match.end() : end])]
        done = end
    return "".join([*pieces, text[done:]])


def _json_value_end(text: str, start: int) -> int:
    """Where the JSON value starting at ``start`` ends (the text's end if cut short)."""
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == '"':
            string = re.compile(r'"(?:[^"\\]|\\.)*"').match(text, index)
            index = string.end() if string else len(text)
            if depth == 0:
                return index
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth <= 0:
                return index + 1 if depth == 0 else index
        elif depth == 0 and char in ",":
            return index
        index += 1
    return index


def body_view(
    body: Body, headers: Sequence[tuple[str, str]], redactor: Redactor
) -> dict[str, Any] | None:
    """What to show of a body: its kind, size and (redacted) text."""
    if body.size == 0:
        return None
    content_type = _header(headers, "content-type")
    view: dict[str, Any] = {
        "content_type": content_type or None,
        "size": body.size,
        "kept": len(body.data),
    }
    raw = bytes(body.data)
    lowered = content_type.lower()
    if "multipart/" in lowered:
        return {**view, "kind": "multipart", "text": None}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if body.cut:  # cut inside a multi-byte character
            text = raw.decode("utf-8", errors="ignore")
        else:
            return {**view, "kind": "binary", "text": None}
    if "json" in lowered or (not lowered and text[:1] in "{["):
        if not body.cut:
            try:
                parsed = json.loads(text)
            except ValueError:
                pass
            else:
                shown = redactor.json(parsed)
                pretty = json.dumps(shown, indent=2, ensure_ascii=False)
                return {**view, "kind": "json", "text": pretty, "json": shown}
        return {**view, "kind": "text", "text": _mask_json_text(text, redactor)}
    if "application/x-www-form-urlencoded" in lowered:
        masked = redactor.query(text)
        pairs = [pair.partition("=") for pair in masked.split("&") if pair]
        return {**view, "kind": "form", "text": masked, "form": [(k, v) for k, _, v in pairs]}
    return {**view, "kind": "text", "text": text}


def _piece_text(data: bytes | str, redactor: Redactor) -> str | None:
    """A chunk's or frame's text, JSON (and SSE ``data:`` JSON) redacted; None if binary."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not all(char.isprintable() or char in "\r\n\t" for char in text):
            return None
    else:
        text = data
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            return json.dumps(redactor.json(json.loads(stripped)), ensure_ascii=False)
        except ValueError:
            return _mask_json_text(text, redactor)
    if "data:" in text:  # server-sent events: each data line may be JSON
        lines = []
        for line in text.split("\n"):
            field, colon, value = line.partition(":")
            if colon and field == "data" and value.strip()[:1] in "{[":
                line = f"data: {_piece_text(value.strip(), redactor)}"
            lines.append(line)
        return "\n".join(lines)
    return text


def stream_view(exchange: Exchange, redactor: Redactor) -> dict[str, Any] | None:
    """A streamed response's chunks (those kept) and how it ended; None for a plain body."""
    ended_by = exchange.ended_by
    content_type = ""
    for name, value in exchange.response_headers:
        if name.lower() == b"content-type":
            content_type = value.decode("latin-1")
    sent = sum(1 for _, size in exchange.chunks if size)
    if sent <= 1 and ended_by in ("app", None) and "text/event-stream" not in content_type:
        return None
    data, offset, chunks = bytes(exchange.response_body.data), 0, []
    for at, size in exchange.chunks:
        piece = data[offset : offset + size]
        kept = len(piece) == size
        offset += size
        if not size:
            continue
        chunks.append(
            {
                "at_ms": _ms(at - exchange.started),
                "size": size,
                "text": _piece_text(piece, redactor) if kept else None,
                "kept": kept,
            }
        )
    return {
        "chunks": chunks,
        "chunk_count": sent + max(0, exchange.chunk_count - len(exchange.chunks)),
        "size": exchange.response_body.size,
        "ended_by": ended_by,
    }


def frame_view(frame: Frame, started: float, redactor: Redactor) -> dict[str, Any]:
    text = _piece_text(frame.data, redactor)
    return {
        "from_client": frame.from_client,
        "at_ms": _ms(frame.at - started),
        "kind": "text" if isinstance(frame.data, str) else "bytes",
        "size": frame.size,
        "cut": frame.size > len(frame.data),
        "text": text,
        "hex": frame.data[:64].hex(" ") if text is None and isinstance(frame.data, bytes) else None,
    }


def websocket_view(exchange: Exchange, redactor: Redactor) -> dict[str, Any]:
    frames = exchange.frames or []
    close = exchange.close
    return {
        "frames": [frame_view(frame, exchange.started, redactor) for frame in frames],
        "frame_count": exchange.frame_count,
        "closed_by": None if close is None else close[0],
        "close_code": None if close is None else close[1],
        "close_reason": None if close is None else redactor.scrub(close[2]),
        "cancelled": exchange.cancelled,
    }


def endpoint_view(endpoint: Any) -> tuple[str | None, str | None]:
    """``module:qualname`` of a route's endpoint, and ``file:line`` of its definition."""
    if endpoint is None:
        return None, None
    function = inspect.unwrap(endpoint) if callable(endpoint) else endpoint
    name = f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', function)}"
    code = getattr(function, "__code__", None)
    if code is None:
        return name, None
    return name, f"{tracebacks.relative(code.co_filename)}:{code.co_firstlineno}"


def error_view(error: CapturedError) -> dict[str, Any]:
    te = error.trace
    return {
        "headline": tracebacks.headline(te),
        "escaped": error.escaped,
        "raised_at": tracebacks.app_site(te),
        "traceback": tracebacks.format_exception(te),
        "traceback_full": tracebacks.format_exception(te, full=True),
        "note": notes.explain(error.exception),
    }


def _parameters_text(statement: Statement, redactor: Redactor) -> str | None:
    parameters = statement.parameters
    if parameters is None or (isinstance(parameters, (tuple, list, dict)) and not parameters):
        return None
    names = statement.parameter_names
    if statement.executemany and isinstance(parameters, (list, tuple)):
        rows = [redactor.parameters(names, row) for row in parameters]
        return f"{len(rows)} rows, first {rows[0]!r}" if rows else "[]"
    return repr(redactor.parameters(names, parameters))


def statement_view(statement: Statement, redactor: Redactor, started: float) -> dict[str, Any]:
    error = statement.error
    return {
        "sql": statement.sql,
        "parameters": _parameters_text(statement, redactor),
        "rows": statement.rows,
        "duration_ms": _ms(statement.duration),
        "at_ms": _ms(statement.started - started),
        "savepoint": is_bookkeeping(statement.sql),
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "request": None if statement.exchange is None else statement.exchange.index,
    }


def exchange_view(exchange: Exchange, redactor: Redactor, started: float) -> dict[str, Any]:
    request_headers = redactor.headers(exchange.request_headers)
    response_headers = redactor.headers(exchange.response_headers)
    target = redactor.url(exchange.target)
    request_body = body_view(exchange.request_body, request_headers, redactor)
    response_body = body_view(exchange.response_body, response_headers, redactor)
    name, site = endpoint_view(exchange.endpoint)
    server = exchange.server_errors()
    status = exchange.status
    reason = None
    if status is not None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = None
    curl_body = None
    client: dict[str, Any] = {}
    if request_body is not None and request_body["text"] is not None:
        if request_body["kind"] == "json":
            curl_body = json.dumps(request_body["json"], ensure_ascii=False)
            client["json_body"] = request_body["json"]
        elif request_body["kind"] == "form":
            curl_body = request_body["text"]
            client["form"] = request_body["form"]
        else:
            curl_body = client["content"] = request_body["text"]
    return {
        "index": exchange.index,
        "method": exchange.method,
        "url": redactor.url(exchange.url),
        "target": target,
        "status": status,
        "reason": reason,
        "duration_ms": _ms(exchange.duration),
        "at_ms": _ms(exchange.started - started),
        "route": exchange.route,
        "endpoint": name,
        "endpoint_site": site,
        "request_headers": request_headers,
        "request_body": request_body,
        "response_headers": response_headers,
        "response_body": response_body,
        "server_errors": [error_view(error) for error in server],
        "handled_errors": [
            {
                "headline": tracebacks.headline(error.trace),
                "raised_at": tracebacks.app_site(error.trace),
            }
            for error in exchange.errors
            if error not in server and not _is_http_exception(error)
        ],
        "curl": reproduce.curl_line(exchange.method, target, request_headers, curl_body),
        "client": reproduce.client_line(exchange.method, target, request_headers, **client),
        "stream": None if exchange.frames is not None else stream_view(exchange, redactor),
        "websocket": None if exchange.frames is None else websocket_view(exchange, redactor),
    }


def _is_http_exception(error: CapturedError) -> bool:
    # Raised on purpose to answer 4xx; the response already says everything.
    return any(cls.__name__ == "HTTPException" for cls in type(error.exception).__mro__)


def recording_view(recording: Recording, redactor: Redactor) -> dict[str, Any]:
    """The recording as plain, redacted data: exchanges with their SQL, and the rest."""
    started = recording.started
    exchanges = [exchange_view(ex, redactor, started) for ex in recording.exchanges]
    statements = [statement_view(st, redactor, started) for st in recording.statements]
    return {
        "exchanges": exchanges,
        "statements": statements,
        "exchange_count": recording.exchange_count,
        "dropped_exchanges": recording.dropped_exchanges,
        "statement_count": recording.statement_count,
        "dropped_statements": recording.dropped_statements,
        "harness_notes": [redactor.scrub(note) for note in recording.notes],
    }


# --- text ------------------------------------------------------------------------


def _indent(lines: Iterator[str] | list[str], prefix: str) -> Iterator[str]:
    for line in lines:
        yield prefix + line if line else ""


def _body_lines(title: str, body: dict[str, Any] | None, full: bool) -> Iterator[str]:
    if body is None:
        return
    size = f"{body['size']} bytes"
    if body["kept"] < body["size"]:
        size += f", first {body['kept']} kept"
    kind = body["content_type"] or body["kind"]
    yield f"{title} ({kind}, {size}):"
    text = body["text"]
    if text is None:
        yield f"  ({body['kind']} body not shown)"
        return
    limit = None if full else BODY_CHARS
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}\n... {len(text) - limit} more characters (-vv shows the whole body)"
    yield from _indent(text.splitlines(), "  ")


def _one_line(text: str, limit: int | None) -> str:
    shown = text.replace("\r", "\\r").replace("\n", "\\n")
    return _short(shown, limit)


def _stream_lines(stream: dict[str, Any], content_type: str | None, full: bool) -> Iterator[str]:
    count, chunks = stream["chunk_count"], stream["chunks"]
    kind = f"{content_type}, " if content_type else ""
    yield f"response stream ({kind}{count} chunk(s), {stream['size']} bytes):"
    yield f"  {ENDED_BY.get(stream['ended_by'], 'still running, or the app returned early')}"
    limit = None if full else PIECE_CHARS
    shown = chunks if full else chunks[:PIECES_SHOWN]
    for number, chunk in enumerate(shown, 1):
        if chunk["text"] is None:
            what = "(not kept)" if not chunk["kept"] else "(binary)"
        else:
            what = _one_line(chunk["text"], limit)
        yield f"  #{number} +{chunk['at_ms']} ms, {chunk['size']} bytes: {what}"
    if count > len(shown):
        more = count - len(shown)
        yield f"  ... {more} more chunk(s)" + ("" if full else " (-vv shows every one kept)")


def _websocket_lines(socket: dict[str, Any], full: bool) -> Iterator[str]:
    count, frames = socket["frame_count"], socket["frames"]
    yield f"frames ({count}; > client to app, < app to client):" if count else "frames: none"
    limit = None if full else PIECE_CHARS
    shown = frames if full else frames[:PIECES_SHOWN]
    for frame in shown:
        arrow = ">" if frame["from_client"] else "<"
        text = frame["text"]
        what = frame["hex"] or "" if text is None else _one_line(text, limit)
        cut = ", first bytes kept" if frame["cut"] else ""
        yield f"  {arrow} +{frame['at_ms']} ms {frame['kind']} ({frame['size']}{cut}): {what}"
    if count > len(shown):
        more = count - len(shown)
        yield f"  ... {more} more frame(s)" + ("" if full else " (-vv shows every one kept)")
    if socket["closed_by"] is not None:
        reason = f" {socket['close_reason']!r}" if socket["close_reason"] else ""
        yield f"closed by the {socket['closed_by']}: code {socket['close_code']}{reason}"
    elif socket["cancelled"]:
        yield "cancelled before it closed (the client left and the app did not return)"


def _statement_line(view: dict[str, Any], number: int, full: bool) -> Iterator[str]:
    sql = " ".join(view["sql"].split())
    facts = []
    if view["savepoint"]:
        facts.append("savepoint")
    if view["rows"] is not None:
        facts.append(f"{view['rows']} row{'s' if view['rows'] != 1 else ''}")
    if view["duration_ms"] is not None:
        facts.append(f"{view['duration_ms']} ms")
    yield f"{number}. {_short(sql, None if full else SQL_CHARS)}  [{', '.join(facts)}]"
    if view["parameters"] is not None:
        yield f"     parameters: {_short(view['parameters'], None if full else PARAMETER_CHARS)}"
    if view["error"] is not None:
        yield f"     failed: {view['error']}"


def _statements_lines(statements: list[dict[str, Any]], full: bool) -> Iterator[str]:
    total = sum(view["duration_ms"] or 0 for view in statements)
    count = len(statements)
    yield f"SQL ({count} statement{'s' if count != 1 else ''}, {total:.1f} ms):"
    for number, view in enumerate(statements, 1):
        yield from _indent(_statement_line(view, number, full), "  ")


def _exchange_lines(
    view: dict[str, Any], statements: list[dict[str, Any]], full: bool, reproduce_it: bool
) -> Iterator[str]:
    status = (
        "no response (cancelled or failed before answering)"
        if view["status"] is None
        else f"{view['status']} {view['reason'] or ''}".rstrip()
    )
    took = f" in {view['duration_ms']} ms" if view["duration_ms"] is not None else ""
    yield f"[{view['index']}] {view['method']} {view['url']} -> {status}{took}"
    details: list[str] = []
    if view["endpoint"] is not None:
        where = f" ({view['endpoint_site']})" if view["endpoint_site"] else ""
        details.append(f"route: {view['route'] or '?'} -> {view['endpoint']}{where}")
    else:
        details.append("route: none matched")
    shown = [
        (n, v) for n, v in view["request_headers"] if full or not reproduce.is_default_header(n, v)
    ]
    hidden = len(view["request_headers"]) - len(shown)
    note = f" (+{hidden} httpx defaults, -vv shows them)" if hidden else ""
    details.append(f"request headers{note}:" if shown else f"request headers: none{note}")
    details.extend(f"  {name}: {value}" for name, value in shown)
    details.extend(_body_lines("request body", view["request_body"], full))
    details.append("response headers:")
    details.extend(f"  {name}: {value}" for name, value in view["response_headers"])
    if view.get("websocket") is not None:
        details.extend(_websocket_lines(view["websocket"], full))
    elif view.get("stream") is not None:
        content_type = _header(view["response_headers"], "content-type") or None
        details.extend(_stream_lines(view["stream"], content_type, full))
    else:
        details.extend(_body_lines("response body", view["response_body"], full))
    for error in view["server_errors"]:
        how = (
            "unhandled: it propagated out of the app"
            if error["escaped"]
            else "handled: an exception handler or middleware turned it into this response"
        )
        details.append(f"server exception ({how}):")
        details.append(f"  {error['headline']}")
        if error["raised_at"]:
            details.append(f"  raised at {error['raised_at']}")
        trace = error["traceback_full"] if full else error["traceback"]
        details.extend(_indent(trace, "  "))
        if error["note"]:
            details.extend(_indent(error["note"].splitlines(), "  note: "))
    for error in view["handled_errors"]:
        at = f" (raised at {error['raised_at']})" if error["raised_at"] else ""
        details.append(f"handled exception: {error['headline']}{at}")
    if statements:
        details.extend(_statements_lines(statements, full))
    if reproduce_it and view.get("websocket") is None:
        details.append("reproduce:")
        details.append(f"  {view['curl']}")
        details.append(f"  {view['client']}")
    yield from _indent(details, "    ")


def render_text(data: dict[str, Any], *, full: bool = False) -> str:
    """The report section: exchanges and test-body SQL in the order they happened."""
    exchanges: list[dict[str, Any]] = data["exchanges"]
    statements: list[dict[str, Any]] = data["statements"]
    by_request: dict[int, list[dict[str, Any]]] = {}
    for view in statements:
        if view["request"] is not None:
            by_request.setdefault(view["request"], []).append(view)
    server_errors = sum(len(view["server_errors"]) for view in exchanges)
    lines = [
        f"{data['exchange_count']} request(s), {server_errors} server exception(s), "
        f"{data['statement_count']} SQL statement(s); newest last"
        + ("" if full else "; -vv shows whole bodies, SQL and tracebacks")
    ]
    if data["dropped_exchanges"]:
        lines.append(f"... {data['dropped_exchanges']} earlier request(s) not kept")
    if data["dropped_statements"]:
        lines.append(f"... {data['dropped_statements']} earlier SQL statement(s) not kept")
    lines.extend(f"harness: {note}" for note in data.get("harness_notes", ()))
    # Test-body statements, grouped by the stretch between requests they ran in.
    events: list[tuple[float, int, Any]] = [(view["at_ms"], 0, view) for view in exchanges]
    body_group: list[dict[str, Any]] = []
    groups: list[list[dict[str, Any]]] = []
    starts = sorted(view["at_ms"] for view in exchanges)
    for view in statements:
        if view["request"] is not None:
            continue
        if body_group and any(body_group[-1]["at_ms"] < s <= view["at_ms"] for s in starts):
            groups.append(body_group)
            body_group = []
        body_group.append(view)
    if body_group:
        groups.append(body_group)
    events.extend((group[0]["at_ms"], 1, group) for group in groups)
    events.sort(key=lambda event: (event[0], event[1]))
    last = exchanges[-1]["index"] if exchanges else None
    for _, kind, item in events:
        lines.append("")
        if kind == 0:
            failing = item["status"] is None or item["status"] >= 400 or bool(item["server_errors"])
            lines.extend(
                _exchange_lines(
                    item, by_request.get(item["index"], []), full, failing or item["index"] == last
                )
            )
        else:
            lines.append("[test body]")
            lines.extend(_indent(_statements_lines(item, full), "    "))
    return "\n".join(lines)
