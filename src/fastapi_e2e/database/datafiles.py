"""Seed data files (JSON, YAML, CSV) read into rows typed by the tables' columns, and inserted.

JSON and YAML files map table names to lists of rows (``{"products": [{...}, ...]}``);
a CSV file holds one table, named by the file's stem (``products.csv``,
``shop.products.csv``), its header naming the columns. Values are converted by
each column's type, so a CSV's text or a JSON number becomes the date, Decimal,
boolean, JSON document or enum member the column holds; a bad value is reported
with the file, the row and the column.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import enum
import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, Table, insert, text, types
from sqlalchemy.engine import Connection

from fastapi_e2e.errors import (
    DATA_FILE_BAD_VALUE,
    DATA_FILE_UNKNOWN_COLUMN,
    DATA_FILE_UNKNOWN_TABLE,
    DATA_FILE_UNREADABLE,
    DATA_FILE_YAML_MISSING,
    DatabaseSetupError,
)

SUFFIXES = (".json", ".yaml", ".yml", ".csv")
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


@dataclass
class Rows:
    """One table's rows from one file, each with the place it came from."""

    path: Path
    table: Table
    rows: list[dict[str, Any]]
    places: list[str]
    """For each row, how to find it: ``row 3`` (JSON/YAML, 1-based) or ``line 4`` (CSV)."""


def digest(paths: Sequence[Path]) -> str:
    """A key of the files' names and contents (the schema template's key includes it)."""
    hashed = hashlib.sha256()
    for path in paths:
        hashed.update(str(path).encode() + b"\0")
        try:
            hashed.update(path.read_bytes())
        except OSError as exc:  # loading reports it properly
            hashed.update(f"unreadable: {exc}".encode())
    return hashed.hexdigest()


def read(path: Path, metadata: MetaData) -> list[Rows]:
    """The typed rows of a data file, per table, in the file's order."""
    raw = _parse(path)
    found: list[Rows] = []
    for name, (rows, places) in raw.items():
        table = _table(metadata, name, path)
        found.append(Rows(path, table, [], places))
        for row, place in zip(rows, places, strict=True):
            found[-1].rows.append(_typed_row(table, row, path, place))
    return found


def insert_rows(connection: Connection, batches: Iterable[Rows]) -> None:
    """Insert the rows (parents before children), then move each serial or identity
    column's sequence past the ids the files gave, so the app's next insert does not
    collide with a seeded row. Sequences are not transactional: that move outlives a
    rollback, which only makes later ids larger."""
    batches = list(batches)
    order = {table: i for i, table in enumerate(_sorted_tables(batches))}
    for batch in sorted(batches, key=lambda b: order[b.table]):
        for start, end in _runs_of_same_keys(batch.rows):
            chunk = batch.rows[start:end]
            try:
                connection.execute(insert(batch.table), chunk)
            except Exception as exc:
                cause = str(getattr(exc, "orig", exc)).splitlines()[0]
                place = batch.places[start]
                if len(chunk) > 1:
                    place = f"{place} to {batch.places[end - 1]}"
                raise DatabaseSetupError(
                    DATA_FILE_BAD_VALUE.format(
                        path=batch.path,
                        place=place,
                        column="(the row as a whole)",
                        table=batch.table.fullname,
                        why=f"PostgreSQL refused the insert: {cause}",
                    )
                ) from exc
        given = {key for row in batch.rows for key in row}
        for column in batch.table.primary_key.columns:
            if column.name in given and isinstance(column.type, types.Integer):
                _advance_sequence(connection, batch.table, column)


def _advance_sequence(connection: Connection, table: Table, column: Column[Any]) -> None:
    quoted = connection.dialect.identifier_preparer.format_table(table)
    connection.execute(
        text(
            "SELECT setval(pg_get_serial_sequence(:table, :column), max_id) FROM "
            f"(SELECT max({connection.dialect.identifier_preparer.quote(column.name)}) AS "
            f"max_id FROM {quoted}) AS m "
            "WHERE max_id IS NOT NULL AND pg_get_serial_sequence(:table, :column) IS NOT NULL"
        ),
        {"table": quoted, "column": column.name},
    )


def _sorted_tables(batches: list[Rows]) -> list[Table]:
    tables = {id(b.table): b.table for b in batches}
    metadata = next(iter(tables.values())).metadata if tables else MetaData()
    ordered = [t for t in metadata.sorted_tables if id(t) in tables]
    return ordered + [t for t in tables.values() if t not in ordered]


def _runs_of_same_keys(rows: list[dict[str, Any]]) -> Iterable[tuple[int, int]]:
    """Consecutive rows naming the same columns (start, end): one executemany each;
    a column a row leaves out takes its default."""
    start = 0
    while start < len(rows):
        keys = tuple(rows[start])
        end = start + 1
        while end < len(rows) and tuple(rows[end]) == keys:
            end += 1
        yield start, end
        start = end


# --- reading ----------------------------------------------------------------------


def _unreadable(path: Path, why: str) -> DatabaseSetupError:
    return DatabaseSetupError(DATA_FILE_UNREADABLE.format(path=path, why=why))


def _parse(path: Path) -> dict[str, tuple[list[Mapping[str, Any]], list[str]]]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _unreadable(path, f"its suffix is not one of {', '.join(SUFFIXES)}")
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _unreadable(path, str(exc)) from exc
    if suffix == ".csv":
        return {path.name[: -len(path.suffix)]: _parse_csv(content)}
    if suffix == ".json":
        try:
            document = json.loads(content, parse_float=decimal.Decimal)
        except json.JSONDecodeError as exc:
            raise _unreadable(path, f"it is not valid JSON: {exc}") from exc
    else:
        document = _load_yaml(path, content)
    if not isinstance(document, Mapping) or not all(
        isinstance(rows, list) for rows in document.values()
    ):
        raise _unreadable(
            path,
            "its top level must map table names to lists of rows, e.g. "
            '{"categories": [{"id": 1, "name": "Tea"}]}',
        )
    parsed: dict[str, tuple[list[Mapping[str, Any]], list[str]]] = {}
    for name, rows in document.items():
        places = [f"row {i} of {name!r}" for i in range(1, len(rows) + 1)]
        for row, place in zip(rows, places, strict=True):
            if not isinstance(row, Mapping):
                raise _unreadable(path, f"{place} is {row!r}, not a mapping of column to value")
        parsed[str(name)] = (rows, places)
    return parsed


def _parse_csv(content: str) -> tuple[list[Mapping[str, Any]], list[str]]:
    reader = csv.DictReader(io.StringIO(content))
    rows: list[Mapping[str, Any]] = []
    places: list[str] = []
    for row in reader:
        # An empty cell is NULL: a CSV cannot tell it from an empty string.
        rows.append({k: (None if v == "" else v) for k, v in row.items()})
        places.append(f"line {reader.line_num}")
    return rows, places


def _load_yaml(path: Path, content: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise DatabaseSetupError(DATA_FILE_YAML_MISSING.format(path=path)) from None
    try:
        return yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise _unreadable(path, f"it is not valid YAML: {exc}") from exc


def _table(metadata: MetaData, name: str, path: Path) -> Table:
    table = metadata.tables.get(name)
    if table is None:
        known = ", ".join(sorted(metadata.tables)) or "none"
        raise DatabaseSetupError(DATA_FILE_UNKNOWN_TABLE.format(path=path, table=name, known=known))
    return table


def _typed_row(table: Table, row: Mapping[str, Any], path: Path, place: str) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for key, value in row.items():
        column = table.columns.get(str(key))
        if column is None:
            raise DatabaseSetupError(
                DATA_FILE_UNKNOWN_COLUMN.format(
                    path=path,
                    place=place,
                    column=key,
                    table=table.fullname,
                    known=", ".join(c.name for c in table.columns),
                )
            )
        try:
            typed[column.key] = convert(value, column.type)
        except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
            raise DatabaseSetupError(
                DATA_FILE_BAD_VALUE.format(
                    path=path,
                    place=place,
                    column=column.name,
                    table=table.fullname,
                    why=f"{value!r} is not a {_type_name(column.type)}: {exc}",
                )
            ) from exc
    return typed


def _type_name(column_type: types.TypeEngine[Any]) -> str:
    try:
        return str(column_type)  # its own dialect's DDL: NUMERIC(10, 2), JSONB
    except Exception:
        return type(column_type).__name__


# --- conversion by column type ----------------------------------------------------


def convert(value: Any, column_type: types.TypeEngine[Any]) -> Any:
    """``value`` (from JSON, YAML or a CSV's text) as the column's Python type."""
    if value is None:
        return None
    if isinstance(column_type, types.TypeDecorator):
        return convert(value, column_type.impl_instance)
    if isinstance(column_type, types.Enum):
        return _enum(value, column_type)
    if isinstance(column_type, types.Boolean):
        return _boolean(value)
    if isinstance(column_type, types.Integer):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("expected a whole number")
        return int(value)
    if isinstance(column_type, types.Numeric):
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number = decimal.Decimal(str(value))
        if not number.is_finite() and not isinstance(column_type, types.Float):
            raise ValueError("expected a finite number")
        return number if column_type.asdecimal else float(number)
    if isinstance(column_type, types.DateTime):
        return _datetime(value)
    if isinstance(column_type, types.Date):
        if isinstance(value, dt.datetime):
            raise ValueError("expected a date without a time")
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    if isinstance(column_type, types.Time):
        return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))
    if isinstance(column_type, types.Interval):
        if isinstance(value, dt.timedelta):
            return value
        return dt.timedelta(seconds=float(value))
    if isinstance(column_type, types.JSON):
        return json.loads(value) if isinstance(value, str) else _plain_json(value)
    if isinstance(column_type, types.ARRAY):
        items = json.loads(value) if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError("expected a list (in a CSV cell, a JSON list)")
        return [convert(item, column_type.item_type) for item in items]
    if isinstance(column_type, types.Uuid):
        parsed = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        return parsed if column_type.as_uuid else str(parsed)
    if isinstance(column_type, types.LargeBinary):
        return bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    if isinstance(column_type, types.String):
        if isinstance(value, (dict, list)):
            raise ValueError("expected text")
        text_value = value if isinstance(value, str) else str(value)
        if column_type.length is not None and len(text_value) > column_type.length:
            raise ValueError(f"longer than {column_type.length} characters")
        return text_value
    return value  # a type of its own: the driver decides


def _plain_json(value: Any) -> Any:
    """JSON numbers were read as Decimal (exact for Numeric columns): back to int/float."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("expected true/false (or yes/no, 1/0)")


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        raise ValueError("expected a date with a time")
    textual = str(value).strip()
    if textual.endswith(("Z", "z")):  # fromisoformat reads no "Z" before Python 3.11
        textual = textual[:-1] + "+00:00"
    return dt.datetime.fromisoformat(textual)


def _enum(value: Any, column_type: types.Enum) -> Any:
    enum_class = column_type.enum_class
    if enum_class is not None:
        if isinstance(value, enum_class):
            return value
        if isinstance(value, str) and value in enum_class.__members__:
            return enum_class.__members__[value]
        try:
            return enum_class(value)
        except ValueError:
            names = ", ".join(enum_class.__members__)
            raise ValueError(f"not a member of {enum_class.__name__} ({names})") from None
    if isinstance(value, enum.Enum):
        value = value.name
    if value not in column_type.enums:
        raise ValueError(f"not one of {', '.join(column_type.enums)}")
    return value
