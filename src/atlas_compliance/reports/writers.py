"""Output formats, defined once and shared by the API, console and CLI: CSV (RFC 4180) and JSON."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from .window import ReportFilters, iso_utc

# The reference's headers, with ours appended: pii_columns, then user_label (the label of an id that never
# was a member of the organization, as of the window's end).
DATA_ACCESS_CSV_HEADER = ("table_name", "user_id", "user_email", "user_role", "query_count", "unique_columns",
                          "has_pii", "first_access", "last_access", "pii_columns", "user_label")
USER_ACTIVITY_CSV_HEADER = ("user_id", "user_email", "role", "total_queries", "tables_accessed", "last_active_at",
                            "last_login_at", "user_label")
LIST_JOINER = "; "
# What a spreadsheet may run as a formula: a cell whose first visible character is one of these once
# compatibility forms are folded (NFKC: full-width ＝＋－＠, small and superscript forms), plus the Unicode
# minus sign (U+2212), which formula parsers accept as a minus.
_FORMULA_TRIGGERS = frozenset("=+-@\u2212")
# What spreadsheets strip or skip before they look at the first character: spaces of every kind (NBSP,
# U+3000 …), line and paragraph separators and invisible format characters (zero-width space, BOM,
# soft hyphen, direction marks). Excel, LibreOffice and Google Sheets differ; we skip all of them.
_SKIPPED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf"})


def _needs_guard(value: str) -> bool:
    for ch in value:
        if ch == " ":
            continue
        if ch < " " or "\x7f" <= ch <= "\x9f":
            return True  # a control character (TAB, CR, LF, VT, FF …) before any visible one
        if ch < "\x7f":
            return ch in _FORMULA_TRIGGERS  # ASCII: the usual case, no Unicode tables needed
        if unicodedata.category(ch) in _SKIPPED_CATEGORIES:
            continue
        return unicodedata.normalize("NFKC", ch)[:1] in _FORMULA_TRIGGERS
    return False


def guard_formula(value: str) -> str:
    """Prefix a quote to cells a spreadsheet would run as a formula.

    Guarded: a first visible character that is ``= + - @`` (or the Unicode minus, or a full-width,
    small or superscript form of one of them), whatever spaces or invisible characters come before it,
    and any control character (TAB, CR, LF, VT, FF …) before the first visible character. Defined
    here only; every CSV writer of the product goes through it.

    >>> guard_formula("  =HYPERLINK(1)")
    "'  =HYPERLINK(1)"
    >>> guard_formula("\u00a0\uff1dSUM(1)")
    "'\xa0＝SUM(1)"
    >>> guard_formula("a=b")
    'a=b'
    """
    if _needs_guard(value):
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


cell = _text  # one CSV cell: None empty, lists joined, formulas guarded


def data_access_csv_row(row: dict[str, Any]) -> list[str]:
    return [_text(row["tableName"]), _text(row["userId"]), _text(row["userEmail"]), _text(row["userRole"]),
            str(row["queryCount"]), _text(row["uniqueColumns"]), "true" if row["hasPII"] else "false",
            _text(row["firstAccess"]), _text(row["lastAccess"]), _text(row["piiColumns"]), _text(row["userLabel"])]


def user_activity_csv_row(row: dict[str, Any]) -> list[str]:
    return [_text(row["userId"]), _text(row["userEmail"]), _text(row["role"]), str(row["totalQueries"]),
            _text(row["tablesAccessed"]), _text(row["lastActiveAt"]), _text(row["lastLoginAt"]),
            _text(row["userLabel"])]


EVENTS_CSV_HEADER = ("timestamp", "event_id", "user_id", "user_email", "user_label", "success", "error",
                     "transaction_outcome", "duration_ms", "row_count", "source_id", "source_type", "target_host",
                     "tables", "columns", "pii_columns", "parse_error", "chain_seq", "audit_id", "sql")


def event_csv_row(event: dict[str, Any]) -> list[str]:
    """One explorer event (``reports.explorer.to_event``); columns and PII columns as ``table.column``."""
    by_table = event["columnsByTable"]
    columns = [f"{t}.{c}" for t, cols in by_table.items() for c in cols] if by_table is not None \
        else list(event["columns"])
    pii = [f"{t}.{c}" for t, cols in event["piiColumns"].items() for c in cols]
    return [_text(event["timestamp"]), _text(event["eventId"]), _text(event["userId"]), _text(event["userEmail"]),
            _text(event["userLabel"]), "true" if event["success"] else "false", _text(event["error"]),
            _text(event["transactionOutcome"]), str(event["durationMs"]), _text(event["rowCount"]),
            _text(event["sourceId"]), _text(event["sourceType"]), _text(event["targetHost"]),
            _text(event["tables"]), _text(columns), _text(pii), _text(event["parseError"]),
            _text(event["chainSeq"]), event["auditId"], _text(event["sql"])]


FAILED_ACCESS_CSV_HEADER = ("kind", "table_name", "user_id", "user_email", "user_role", "user_label", "ip_address",
                            "failures", "permission_denied", "syntax", "timeout", "other", "first_failure",
                            "last_failure")
NO_TABLE = "(no table)"


def failed_access_csv_rows(view: dict[str, Any]) -> Iterable[list[str]]:
    """The rows of a Failed access view (``reports.activity.failed_access``): ``kind`` ``query`` rows per
    (table, user) first (``(no table)`` for failures that named none), then ``login`` rows per (email,
    client address), whose error-class cells are empty."""
    for q in view["queries"]:
        yield ["query", _text(q["tableName"] if q["tableName"] is not None else NO_TABLE), _text(q["userId"]),
               _text(q["userEmail"]), _text(q["userRole"]), _text(q["userLabel"]), "", str(q["failures"]),
               *(str(q["byClass"][k]) for k in ("permission_denied", "syntax", "timeout", "other")),
               _text(q["firstFailure"]), _text(q["lastFailure"])]
    for login in view["logins"]:
        yield ["login", "", _text(login["userId"]), _text(login["email"]), "", "", _text(login["ipAddress"]),
               str(login["failures"]), "", "", "", "", _text(login["firstFailure"]), _text(login["lastFailure"])]


PRIVILEGED_ACTIONS_CSV_HEADER = ("timestamp", "actor_id", "actor_email", "scope", "action_type", "target_type",
                                 "target_id", "status", "details", "ip_address", "request_id", "chain_seq", "id")


def privileged_action_csv_row(action: dict[str, Any]) -> list[str]:
    """One admin action (``reports.activity.to_action``); ``details`` as compact JSON."""
    details = json_bytes(action["details"]).decode() if action["details"] is not None else None
    return [_text(action["timestamp"]), _text(action["actorId"]), _text(action["actorEmail"]), _text(action["scope"]),
            _text(action["actionType"]), _text(action["targetType"]), _text(action["targetId"]),
            _text(action["status"]), _text(details), _text(action["ipAddress"]), _text(action["requestId"]),
            _text(action["chainSeq"]), action["id"]]


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


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


def safe_slug(org_slug: str) -> str:
    return "".join(ch for ch in org_slug if ch.isalnum() or ch in "-_") or "org"


def filter_name_parts(filters: ReportFilters) -> list[str]:
    """The filters as parts of a file name: ``user-h<10 hex of the id's SHA-256>``, ``role-<role>``,
    ``table-<name>`` (a name that is not short and plain: ``table-h<10 hex>``), in that order."""
    def hashed(value: str) -> str:
        return "h" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:10]

    parts = []
    if filters.user_id:
        parts.append("user-" + hashed(filters.user_id))
    if filters.role:
        parts.append(f"role-{filters.role}")
    if filters.table:
        parts.append("table-" + (filters.table if _PLAIN_NAME.match(filters.table) else hashed(filters.table)))
    return parts


def report_filename(report: str, org_slug: str, start_label: str, end_label: str, ext: str, *,
                    tz: str = "UTC", filters: ReportFilters | None = None) -> str:
    """``<report>-report-<org>-<start>_<end>[-<tz>][-user-…][-role-…][-table-…].<ext>``: the time zone (``/``
    as ``.``) when it is not UTC, then the filters (:func:`filter_name_parts`), so that two exports of
    different windows or filters never share a name; the unfiltered UTC form is the reference's."""
    parts = [f"{report}-report-{safe_slug(org_slug)}-{start_label}_{end_label}"]
    if tz.upper() != "UTC":
        parts.append(tz.replace("/", "."))
    parts += filter_name_parts(filters) if filters is not None else []
    return "-".join(parts) + f".{ext}"
