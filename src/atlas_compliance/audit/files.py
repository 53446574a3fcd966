"""Reading audit events from NDJSON, JSON and CSV files, in bounded batches."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
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


def chain_seed(label: str = "") -> bytes:
    """Where the content digests of a file's records start: a ``--label`` gives other ids to the
    same content."""
    return hashlib.sha256(b"atlas-compliance file records\0" + label.encode()).digest()


def _record_bytes(record: Any) -> bytes:
    if isinstance(record, bytes):  # an NDJSON line as written
        return record.strip()
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)  # a JSON array element or a CSV row


def chained(records: Iterable[tuple[int, Any]], label: str = "") -> Iterator[tuple[int, Any, str]]:
    """(number, record, digest): each record's digest covers the label and every record up to and
    including it (SHA-256 of the previous digest and the record), so it names both the content and
    its place in the file."""
    digest = chain_seed(label)
    for number, record in records:
        digest = hashlib.sha256(digest + _record_bytes(record)).digest()
        yield number, record, digest.hex()


def derived_event_id(number: int, digest: str) -> str:
    """The event id of a record without ``eventId``: its line (or record) number and content digest.
    The same content gets the same ids whatever the file is called; a log that grew keeps the ids of
    its earlier lines; a record repeated in a file gets another id at each place."""
    return f"file:{number}:{digest[:32]}"


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


def decode_record(file_name: str, number: int, record: Any, digest: str) -> tuple[Any, bool]:
    """The raw event of a record from :func:`chained`, and whether its id was derived (a record
    without an eventId gets :func:`derived_event_id`)."""
    if isinstance(record, bytes):
        try:
            record = orjson.loads(record)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"{file_name}, line {number}: not valid JSON ({exc})") from None
    if isinstance(record, dict) and not record.get("eventId"):
        return {**record, "eventId": derived_event_id(number, digest)}, True
    return record, False


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "sql" not in reader.fieldnames:
            raise BadRequest(f"{path.name}: the CSV header must include a 'sql' column (camelCase field names)")
        for number, row in enumerate(reader, start=2):
            yield number, {k: _csv_value(k, v) for k, v in row.items() if k is not None}


@dataclass
class Scan:
    """One pass over a file before its import: how many records, the content digest after the last,
    and which of the ``known`` digests (the import ledger's) it met, with the records up to each."""

    records: int
    digest: str
    met: dict[str, int]


def scan(path: Path, label: str, known: Collection[str]) -> Scan:
    count, digest, met = 0, chain_seed(label).hex(), {}
    for _, _, digest in chained(iter_records(path), label):
        count += 1
        if digest in known:
            met[digest] = count
    return Scan(count, digest, met)


def refusal(found: Scan, imports: Sequence[dict[str, Any]], path: str) -> str | None:
    """Why an import of ``path`` must not go on without ``--rerun`` or ``--label``, or None.

    It stops when the file holds content already imported (``imports``: the org's ledger) that
    had records without an eventId, whose derived ids this file's would repeat: the whole of a
    finished import's content (from any path), or the beginning of an import made from another path.
    The beginning of one from the same path is that log grown since, or an interrupted import being
    resumed: it goes on, and only the rest is stored."""
    for entry in reversed(imports):  # the newest first
        records = entry["records"]
        if not records or not entry["derived_ids"] or found.met.get(entry["digest"]) != records:
            continue
        when = entry["started_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
        if records == found.records and entry["finished_at"] is not None:
            return (f"this exact content was already imported from {entry['path']} at {when} "
                    f"({entry['inserted']} events stored then)")
        if not any(e["path"] == path and e["digest"] == entry["digest"] for e in imports):
            return (f"its first {records} records are the content imported from {entry['path']} at {when} "
                    f"({entry['inserted']} events stored then)")
    return None
