"""Reading audit events from NDJSON, JSON and CSV files, in bounded batches."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..errors import BadRequest

_INT_FIELDS = {"durationMs", "rowCount"}
_LIST_FIELDS = {"tablesAccessed", "columnsAccessed"}


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".ndjson", ".jsonl"):
        return "ndjson"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        with open(path, "rb") as handle:
            head = handle.read(4096).lstrip()
        return "json" if head.startswith(b"[") else "ndjson"
    raise BadRequest(f"cannot tell the format of {path.name}: use a .ndjson, .jsonl, .json or .csv file")


def _stable_event_id(path_key: str, line_no: int, raw: dict[str, Any]) -> str:
    """An id derived from the event's content and position, so re-importing a file stores nothing twice."""
    digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
    return f"file:{path_key}:{line_no}:{digest}"


def _csv_value(field: str, value: str) -> Any:
    if value == "":
        return None
    if field in _INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value
    if field == "success":
        low = value.strip().lower()
        return True if low in ("true", "t", "1", "yes") else False if low in ("false", "f", "0", "no") else value
    if field in _LIST_FIELDS:
        if value.lstrip().startswith("["):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
        return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
    if field == "columnsByTable":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def path_key(path: Path) -> str:
    """The file-name part of the stable event ids given to events without an eventId."""
    return hashlib.sha256(path.name.encode()).hexdigest()[:8]


def iter_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line/record number, record) pairs: NDJSON lines still encoded (bytes, decoded by
    :func:`decode_record`, possibly in a worker process), JSON and CSV records decoded."""
    fmt = detect_format(path)
    if fmt == "json":
        data = orjson.loads(path.read_bytes())
        if not isinstance(data, list):
            raise BadRequest(f"{path.name} must hold a JSON array of events")
        yield from enumerate(data, start=1)
    elif fmt == "ndjson":
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
    else:
        yield from _csv_records(path)


def decode_record(file_name: str, key: str, number: int, record: Any) -> Any:
    """The raw event of a record from :func:`iter_records`; one without an eventId gets a stable one."""
    if isinstance(record, bytes):
        try:
            record = orjson.loads(record)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"{file_name}, line {number}: not valid JSON ({exc})") from None
    if isinstance(record, dict) and not record.get("eventId"):
        record = {**record, "eventId": _stable_event_id(key, number, record)}
    return record


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "sql" not in reader.fieldnames:
            raise BadRequest(f"{path.name}: the CSV header must include a 'sql' column (camelCase field names)")
        for number, row in enumerate(reader, start=2):
            yield number, {k: _csv_value(k, v) for k, v in row.items() if k is not None}


def count_records(path: Path) -> int | None:
    fmt = detect_format(path)
    if fmt == "json":
        return None
    with open(path, "rb") as handle:
        lines = sum(buf.count(b"\n") for buf in iter(lambda: handle.read(1 << 20), b""))
    return max(0, lines - (1 if fmt == "csv" else 0))
