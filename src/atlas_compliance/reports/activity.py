"""Failed, denied and privileged activity (issue 19, part 3): what the success-only reports leave out.

Two views, each a plain function of a connection, an organization and a report window, so that the API,
the CLI, the console and a later evidence bundle read the same rows:

- :func:`failed_access`: failed and refused queries (``audit_log`` rows with ``success = false`` that are
  not purged) per (table, user) with a count per error class (:data:`ERROR_CLASSES`), and failed logins
  per (email, client address) of the organization's members.
- :func:`privileged_actions_page` / :func:`stream_privileged_actions` / :func:`privileged_actions`: the
  organization's ``admin_action_log`` rows, newest first (by their position in the organization's chain
  of admin actions), filterable by action type and actor.

CSV rows for both are built by ``reports.writers`` (``FAILED_ACCESS_CSV_HEADER``, ``failed_access_csv_rows``,
``PRIVILEGED_ACTIONS_CSV_HEADER``, ``privileged_action_csv_row``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ..errors import BadRequest
from .repository import IDENTITY_AT_WINDOW_END
from .window import ReportWindow

MAX_PAGE = 1_000
DEFAULT_PAGE = 100


@dataclass(frozen=True)
class ErrorClass:
    """One error class: matched on the SQLSTATE when the error text carries one (``… (SQLSTATE 42501)``,
    as the PostgreSQL log sources write it), else on the error text (case-insensitive)."""

    key: str
    label: str
    sqlstate: str  # regular expression, anchored at the start of the five-character code
    text: str  # regular expression searched in the error text


# First match wins, in this order; a failure matching none (or with no error text) is "other". The
# patterns use only what PostgreSQL's and Python's regular expressions read alike.
ERROR_CLASSES = (
    ErrorClass("permission_denied", "Permission denied", sqlstate=r"^(42501|28)",
               text=r"permission denied|access denied|insufficient privilege|must be owner|row-level security"
                    r"|not authori[sz]ed|unauthori[sz]ed|forbidden"
                    r"|mariadb error (1044|1045|1142|1143|1227|1370)([^0-9]|$)"),
    ErrorClass("syntax", "Syntax / parse", sqlstate=r"^(42|26|34|3D|3F)",
               text=r"syntax|parse error|could not parse|does not exist|doesn.t exist"
                    r"|unknown (column|table|database|function)|is ambiguous"
                    r"|mariadb error (1049|1054|1064|1146|1149)([^0-9]|$)"),
    ErrorClass("timeout", "Timeout / cancelled", sqlstate=r"^(57|55P03|25P03)",
               text=r"time ?out|timed out|cancel|lock wait|interrupted|max_execution_time"
                    r"|mariadb error (1205|1317|1969|3024)([^0-9]|$)"),
)
OTHER = ErrorClass("other", "Other", sqlstate="", text="")
CLASS_KEYS = tuple(c.key for c in ERROR_CLASSES) + (OTHER.key,)
SQLSTATE_PATTERN = r"(?i)sqlstate[^0-9a-z]{0,3}([0-9a-z]{5})"
_SQLSTATE_RE = re.compile(SQLSTATE_PATTERN)


def classify(error: str | None) -> str:
    """The error class of a failure's error text (the same rules as the SQL of :func:`failed_access`).

    >>> classify("permission denied for table orders (SQLSTATE 42501)"), classify("MariaDB error 1064")
    ('permission_denied', 'syntax')
    >>> classify("canceling statement due to statement timeout"), classify("duplicate key (SQLSTATE 23505)")
    ('timeout', 'other')
    """
    if not error:
        return OTHER.key
    found = _SQLSTATE_RE.search(error)
    if found:
        state = found.group(1).upper()
        return next((c.key for c in ERROR_CLASSES if re.match(c.sqlstate, state)), OTHER.key)
    return next((c.key for c in ERROR_CLASSES if re.search(c.text, error, re.IGNORECASE)), OTHER.key)


def _literal(text: str) -> str:
    assert "%" not in text  # the statements take %(name)s parameters
    return "'" + text.replace("'", "''") + "'"


def classify_sql(error: str) -> str:
    """The SQL expression of :func:`classify` for the error text expression ``error``."""
    state = f"upper(substring({error} from {_literal(SQLSTATE_PATTERN)}))"
    by_state = " ".join(f"WHEN {state} ~ {_literal(c.sqlstate)} THEN {_literal(c.key)}" for c in ERROR_CLASSES)
    by_text = " ".join(f"WHEN {error} ~* {_literal(c.text)} THEN {_literal(c.key)}" for c in ERROR_CLASSES)
    return (f"CASE WHEN {error} IS NULL OR {error} = '' THEN 'other' "
            f"WHEN {state} IS NOT NULL THEN CASE {by_state} ELSE 'other' END "
            f"{by_text} ELSE 'other' END")


# Failed, not purged rows of the window, with mapped database roles resolved to their member (as the
# reports do), each with its error class and its tables (one row per table; NULL when it named none).
_FAILED = f"""
WITH failed AS MATERIALIZED (  -- the error class computed once per row
    SELECT coalesce(rmap.user_id, a.user_id) AS user_id, a.user_label, a."timestamp", a.chain_seq,
           a.tables_accessed, {classify_sql("a.error")} AS cls
    FROM audit_log a
    LEFT JOIN db_role_mapping rmap ON rmap.org_id = a.org_id AND rmap.db_identity = a.user_id
    WHERE a.org_id = %(org)s AND NOT a.success AND a.deleted_at IS NULL
      AND a."timestamp" >= %(start)s AND a."timestamp" < %(end)s
)"""

_COUNTS = ", ".join(f"count(*) FILTER (WHERE f.cls = {_literal(k)}) AS {k}" for k in CLASS_KEYS)

FAILED_QUERIES_SQL = _FAILED + f"""
SELECT t.table_name, f.user_id, u.email AS user_email, u.role AS user_role,
       (array_agg(f.user_label ORDER BY f."timestamp" DESC, f.chain_seq DESC))[1] AS user_label,
       count(*) AS failures, {_COUNTS},
       min(f."timestamp") AS first_failure, max(f."timestamp") AS last_failure
FROM failed f
LEFT JOIN LATERAL (SELECT DISTINCT value AS table_name FROM jsonb_array_elements_text(
    CASE WHEN jsonb_typeof(f.tables_accessed) = 'array' THEN f.tables_accessed ELSE '[]'::jsonb END)) t ON true
LEFT JOIN {IDENTITY_AT_WINDOW_END} u ON u.user_id = f.user_id
GROUP BY t.table_name, f.user_id, u.email, u.role
ORDER BY t.table_name NULLS LAST, u.email NULLS LAST, f.user_id NULLS LAST"""

FAILED_SUMMARY_SQL = _FAILED + f"""
SELECT count(*) AS failures, {_COUNTS} FROM failed f"""

# A login attempt belongs to the organization when its email was a member's email at that moment
# (membership history, migration 0016). Attempts for an email that was no member of the organization
# (unknown addresses, other organizations' users) are shown to no organization.
FAILED_LOGINS_SQL = """
SELECT l.email, h.user_id, l.ip_address, count(*) AS failures,
       min(l.attempted_at) AS first_failure, max(l.attempted_at) AS last_failure
FROM member_history h
JOIN login_attempt l ON l.email = lower(h.email) AND l.attempted_at >= h.valid_from
     AND (h.valid_to IS NULL OR l.attempted_at < h.valid_to)
WHERE h.org_id = %(org)s AND NOT l.success AND l.attempted_at >= %(start)s AND l.attempted_at < %(end)s
GROUP BY l.email, h.user_id, l.ip_address
ORDER BY l.email, l.ip_address NULLS LAST, h.user_id"""


def _window_params(org_id: str, window: ReportWindow) -> dict[str, Any]:
    return {"org": org_id, "start": window.start, "end": window.end, "wend": window.end}


def _query_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"tableName": r["table_name"], "userId": r["user_id"], "userEmail": r["user_email"],
            "userRole": r["user_role"], "userLabel": r["user_label"], "failures": r["failures"],
            "byClass": {k: r[k] for k in CLASS_KEYS}, "firstFailure": r["first_failure"],
            "lastFailure": r["last_failure"]}


def _login_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"email": r["email"], "userId": r["user_id"], "ipAddress": r["ip_address"], "failures": r["failures"],
            "firstFailure": r["first_failure"], "lastFailure": r["last_failure"]}


async def failed_access(conn: AsyncConnection, org_id: str, window: ReportWindow) -> dict[str, Any]:
    """The Failed access view of ``window`` for ``org_id``: ``summary``, ``queries`` and ``logins``.

    ``queries``: one row per (table, user) (``tableName`` null for failures that named no table; a
    failure that named several tables counts once in each of their rows), with ``failures`` and
    ``byClass`` (a count per :data:`CLASS_KEYS`). ``summary.failedQueries``/``summary.byClass`` count each
    failed query once. ``logins``: failed login attempts per (email, user, client address). All read in
    one snapshot when the caller's transaction is REPEATABLE READ."""
    params = _window_params(org_id, window)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(FAILED_SUMMARY_SQL, params)
    total = await cur.fetchone()
    assert total is not None
    await cur.execute(FAILED_QUERIES_SQL, params)
    queries = [_query_row(r) for r in await cur.fetchall()]
    await cur.execute(FAILED_LOGINS_SQL, params)
    logins = [_login_row(r) for r in await cur.fetchall()]
    return {
        "window": window.to_dict(),
        "errorClasses": [{"key": c.key, "label": c.label} for c in (*ERROR_CLASSES, OTHER)],
        "summary": {"failedQueries": total["failures"], "byClass": {k: total[k] for k in CLASS_KEYS},
                    "failedLogins": sum(r["failures"] for r in logins),
                    "loginAddresses": len({r["ipAddress"] for r in logins})},
        "queries": queries,
        "logins": logins,
    }


# ---------- privileged actions ------------------------------------------------------------------------

@dataclass(frozen=True)
class ActionFilters:
    action_type: str | None = None  # exact, or a prefix when it ends with "*" (``member.*``)
    actor: str | None = None  # an actor id or email (email case-insensitive)

    def to_dict(self) -> dict[str, Any]:
        return {"actionType": self.action_type, "actor": self.actor}


def parse_action_filters(action_type: str | None, actor: str | None) -> ActionFilters:
    kind = (action_type or "").strip() or None
    if kind is not None and ("*" in kind[:-1] or kind == "*"):
        raise BadRequest(f"invalid actionType {action_type!r}: use an action type (member.remove) or a prefix "
                         "ending in * (member.*)", code="invalid_action_type")
    return ActionFilters(action_type=kind, actor=(actor or "").strip() or None)


def parse_limit(limit: int | None) -> int:
    value = DEFAULT_PAGE if limit is None else limit
    if not 1 <= value <= MAX_PAGE:
        raise BadRequest(f"invalid limit {limit}: use 1 to {MAX_PAGE:,} and page with cursor", code="invalid_limit")
    return value


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"a": seq})).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        seq = data["a"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError(text)
        return seq
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest("invalid cursor: pass the nextCursor of the previous page unchanged",
                         code="invalid_cursor") from None


_ACTIONS = """
SELECT id, "timestamp", actor_id, actor_email, scope, action_type, target_type, target_id, status, metadata,
       ip_address, request_id, chain_seq
FROM admin_action_log
WHERE coalesce(org_id, '') = %(org)s AND "timestamp" >= %(start)s AND "timestamp" < %(end)s"""


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _action_where(filters: ActionFilters) -> str:
    parts = []
    if filters.action_type is not None:
        parts.append("action_type LIKE %(kind)s" if filters.action_type.endswith("*") else "action_type = %(kind)s")
    if filters.actor is not None:
        parts.append("(actor_id = %(actor)s OR lower(actor_email) = lower(%(actor)s))")
    return "".join(f"\n  AND {p}" for p in parts)


def _action_params(org_id: str, window: ReportWindow, filters: ActionFilters) -> dict[str, Any]:
    kind = filters.action_type
    if kind is not None and kind.endswith("*"):
        kind = _like_prefix(kind[:-1])
    return {"org": org_id, "start": window.start, "end": window.end, "kind": kind, "actor": filters.actor}


def to_action(r: dict[str, Any]) -> dict[str, Any]:
    """The API shape of one admin action; ``details`` is what its writer recorded (old and new values
    where the action records them)."""
    return {"id": str(r["id"]), "timestamp": r["timestamp"], "actorId": r["actor_id"], "actorEmail": r["actor_email"],
            "scope": r["scope"], "actionType": r["action_type"], "targetType": r["target_type"],
            "targetId": r["target_id"], "status": r["status"], "details": r["metadata"],
            "ipAddress": r["ip_address"], "requestId": r["request_id"], "chainSeq": r["chain_seq"]}


async def privileged_actions_page(conn: AsyncConnection, org_id: str, window: ReportWindow,
                                  filters: ActionFilters, *, limit: int, cursor: int | None) -> dict[str, Any]:
    """One page, newest first, with ``nextCursor`` (null on the last page). Pages follow the chain
    position, which only grows: actions recorded meanwhile never shift or repeat later pages."""
    params = {**_action_params(org_id, window, filters), "limit": limit + 1}
    sql = _ACTIONS + _action_where(filters)
    if cursor is not None:
        sql += "\n  AND chain_seq < %(cseq)s"
        params["cseq"] = cursor
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql + "\nORDER BY chain_seq DESC LIMIT %(limit)s", params)
    rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"window": window.to_dict(), "filters": filters.to_dict(), "actions": [to_action(r) for r in rows],
            "limit": limit, "nextCursor": encode_cursor(int(rows[-1]["chain_seq"])) if more else None}


async def stream_privileged_actions(conn: AsyncConnection, org_id: str, window: ReportWindow,
                                    filters: ActionFilters, batch: int = 2_000
                                    ) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching action, newest first, in batches (server-side cursor). Must run in a transaction."""
    cur = conn.cursor("atlas_admin_actions", row_factory=dict_row)
    await cur.execute(_ACTIONS + _action_where(filters) + "\nORDER BY chain_seq DESC",
                      _action_params(org_id, window, filters))
    while rows := await cur.fetchmany(batch):
        yield [to_action(r) for r in rows]


async def privileged_actions(conn: AsyncConnection, org_id: str, window: ReportWindow,
                             filters: ActionFilters | None = None) -> list[dict[str, Any]]:
    """Every matching action of the window, newest first (for callers that want them all at once)."""
    out: list[dict[str, Any]] = []
    async for rows in stream_privileged_actions(conn, org_id, window, filters or ActionFilters()):
        out.extend(rows)
    return out
