"""The evidence bundle's format, shared by the builder and the offline verifier (which needs no database).

A bundle is a zip. ``manifest.json`` lists every other file with its SHA-256, size, row count and the
population it was drawn from; ``manifest.sig`` is the base64 Ed25519 signature of the exact bytes of
``manifest.json`` by the installation key (the key that signs checkpoints). See docs/evidence.md.
"""

from __future__ import annotations

import csv
import io
import json
from typing import IO

FORMAT = "atlas-compliance/evidence-bundle/v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


def count_csv_rows(handle: IO[bytes]) -> int:
    """Data records of a UTF-8 CSV file (the header line is not counted; quoted line breaks are part of a
    record)."""
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    records = sum(1 for _ in csv.reader(text))
    return max(records - 1, 0)


def count_json_rows(data: bytes, key: str) -> int:
    """Items of the list ``key`` of a JSON document."""
    items = json.loads(data)[key]
    if not isinstance(items, list):
        raise ValueError(f"{key!r} is not a list")
    return len(items)
