"""Output formats, defined once and shared by the API, console and CLI: CSV (RFC 4180) and JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from .window import iso_utc

DATA_ACCESS_CSV_HEADER = ("table_name", "user_id", "user_email", "user_role", "query_count", "unique_columns",
                          "has_pii", "first_access", "last_access", "pii_columns")
USER_ACTIVITY_CSV_HEADER = ("user_id", "user_email", "role", "total_queries", "tables_accessed", "last_active_at",
                            "last_login_at")
LIST_JOINER = "; "
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(value: str) -> str:
    """Prefix a quote to cells a spreadsheet would run as a formula (leading spaces do not hide them).

    >>> guard_formula("  =HYPERLINK(1)")
    "'  =HYPERLINK(1)"
    """
    if value.lstrip(" ").startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, list):
        return guard_formula(LIST_JOINER.join(value))
    return guard_formula(str(value))


def data_access_csv_row(row: dict[str, Any]) -> list[str]:
    return [_text(row["tableName"]), _text(row["userId"]), _text(row["userEmail"]), _text(row["userRole"]),
            str(row["queryCount"]), _text(row["uniqueColumns"]), "true" if row["hasPII"] else "false",
            _text(row["firstAccess"]), _text(row["lastAccess"]), _text(row["piiColumns"])]


def user_activity_csv_row(row: dict[str, Any]) -> list[str]:
    return [_text(row["userId"]), _text(row["userEmail"]), _text(row["role"]), str(row["totalQueries"]),
            _text(row["tablesAccessed"]), _text(row["lastActiveAt"]), _text(row["lastLoginAt"])]


CSV_FORMATS = {
    "data-access": (DATA_ACCESS_CSV_HEADER, data_access_csv_row),
    "user-activity": (USER_ACTIVITY_CSV_HEADER, user_activity_csv_row),
}


def csv_chunk(rows: Iterable[Iterable[str]]) -> str:
    """RFC 4180: CRLF line ends, quotes only where needed (comma, quote, CR or LF), quotes doubled."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return buffer.getvalue()


def json_bytes(document: Any) -> bytes:
    """UTF-8 JSON; datetimes (always UTC here) as ISO 8601 with ``Z``, microseconds only when present,
    exactly as :func:`iso_utc` writes them."""
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)


def report_filename(report: str, org_slug: str, start_label: str, end_label: str, ext: str) -> str:
    safe = "".join(ch for ch in org_slug if ch.isalnum() or ch in "-_") or "org"
    return f"{report}-report-{safe}-{start_label}_{end_label}.{ext}"
