"""All SQL of the audit trail: batch insert, chain verification, retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from .schemas import EventIdentity

Row = dict[str, Any]

COPY_COLUMNS = (
    "event_id", "timestamp", "user_id", "user_label", "auth_mode", "sql", "duration_ms", "row_count",
    "success", "error", "source_id", "source_type", "target_host", "actor_kind", "client_id", "tool_name",
    "tables_accessed", "columns_accessed", "columns_by_table", "parse_error", "transaction_outcome", "org_id",
)


async def lock_org_chain(conn: AsyncConnection, org_id: str) -> None:
    """Serialize writers of one organization's chain for the rest of the transaction.

    Taken before the duplicate check, so a concurrent batch carrying the same event ids waits and
    then sees them as duplicates instead of failing on the unique index.
    """
    await conn.execute(
        "INSERT INTO audit_chain_head (chain_key, last_seq, last_hash) VALUES (%s, 0, NULL) "
        "ON CONFLICT (chain_key) DO NOTHING", (org_id,))
    await conn.execute("SELECT 1 FROM audit_chain_head WHERE chain_key = %s FOR UPDATE", (org_id,))


async def existing_event_ids(conn: AsyncConnection, org_id: str, event_ids: Sequence[str]) -> set[str]:
    """The ids among ``event_ids`` already stored for the org: one index probe per id. (With
    ``event_id = ANY(...)`` the planner may scan all of the org's index entries and filter them, which
    grows with the org and, during a bulk import, with every row of the open transaction.)"""
    if not event_ids:
        return set()
    cur = await conn.execute(
        "SELECT u.event_id FROM unnest(%s::text[]) AS u(event_id) CROSS JOIN LATERAL "
        "(SELECT 1 FROM audit_log a WHERE a.org_id = %s AND a.event_id = u.event_id LIMIT 1) found",
        (list(event_ids), org_id))
    return {row["event_id"] for row in await cur.fetchall()}


async def stored_identities(conn: AsyncConnection, org_id: str, event_ids: Sequence[str]) -> dict[str, EventIdentity]:
    """What defines each stored event among ``event_ids`` (:class:`EventIdentity`), one index probe per id; soft-deleted
    rows count, their ids stay taken."""
    if not event_ids:
        return {}
    cur = await conn.execute(
        "SELECT u.event_id, found.* FROM unnest(%s::text[]) AS u(event_id) CROSS JOIN LATERAL "
        "(SELECT sha256(convert_to(a.sql, 'UTF8')) AS sql_sha256, a.user_id, a.\"timestamp\", a.source_id, "
        "a.source_type, a.target_host, a.success FROM audit_log a "
        "WHERE a.org_id = %s AND a.event_id = u.event_id LIMIT 1) found", (list(event_ids), org_id))
    return {r["event_id"]: EventIdentity(r["sql_sha256"], r["user_id"], r["timestamp"], True, r["source_id"],
                                         r["source_type"], r["target_host"], r["success"])
            for r in await cur.fetchall()}


COPY_SQL = "COPY audit_log ({}) FROM STDIN".format(", ".join(f'"{c}"' for c in COPY_COLUMNS))

# COPY's text format: a backslash, newline, carriage return or tab inside a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # int


def copy_line(values: Sequence[Any]) -> bytes:
    """One row of values (str, int, bool, aware datetime or None) in COPY's text format, UTF-8.

    >>> copy_line(["a\\tb", None, 7, True])
    b'a\\\\tb\\t\\\\N\\t7\\tt\\n'
    """
    return ("\t".join(map(_copy_field, values)) + "\n").encode()


async def copy_events(conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> int:
    """COPY rows (in COPY_COLUMNS order) into audit_log; triggers chain and roll them up. The
    connection's client encoding must be UTF-8 (:class:`~atlas_compliance.db.pool.Database` sets it)."""
    if not rows:
        return 0
    async with conn.cursor() as cur:
        async with cur.copy(COPY_SQL) as copy:
            await copy.write(b"".join(map(copy_line, rows)))
    return len(rows)


async def catalog_version(conn: AsyncConnection, org_id: str, *, include_learned: bool) -> Any:
    """(latest recording time, number of facts) of the org's catalog: it changed when either did."""
    learned = "" if include_learned else " AND origin <> 'learned'"
    cur = await conn.execute(
        f"SELECT max(scanned_at) AS v, count(*) AS n FROM datasource_catalog WHERE org_id = %s{learned}",  # noqa: S608
        (org_id,))
    row = await cur.fetchone()
    return (row["v"], row["n"])


async def insert_admin_action(conn: AsyncConnection, *, org_id: str | None, actor_id: str | None,
                              actor_email: str | None, scope: str, action_type: str, target_type: str,
                              target_id: str, status: str, metadata: dict | None, request_id: str,
                              ip_address: str | None) -> None:
    """Only :func:`atlas_compliance.audit.admin_actions.record` calls this."""
    from psycopg.types.json import Jsonb

    await conn.execute(
        "INSERT INTO admin_action_log (actor_id, actor_email, scope, org_id, action_type, target_type, "
        "target_id, status, metadata, ip_address, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (actor_id, actor_email, scope, org_id, action_type, target_type, target_id, status,
         Jsonb(metadata) if metadata is not None else None, ip_address, request_id))


# --- verification -------------------------------------------------------------------------------

VERIFY_SQL = """
WITH chain AS (
    SELECT a.chain_seq AS seq, a.id, a.row_hash, a.prev_hash, atlas_audit_hash(a, a.prev_hash) AS calc,
           false AS purged
    FROM audit_log a
    WHERE coalesce(a.org_id, '') = %(key)s AND a.chain_seq > %(after)s AND a.chain_seq <= %(upto)s
    UNION ALL
    SELECT t.chain_seq, t.audit_id, t.row_hash, t.prev_hash, t.row_hash, true
    FROM audit_log_tombstone t
    WHERE t.chain_key = %(key)s AND t.chain_seq > %(after)s AND t.chain_seq <= %(upto)s
), ordered AS (
    SELECT c.*, lag(c.seq) OVER w AS before_seq, lag(c.row_hash) OVER w AS before_hash
    FROM chain c WINDOW w AS (ORDER BY c.seq, c.purged)
)
SELECT seq, id::text AS id, purged, row_hash IS DISTINCT FROM calc AS changed,
       before_seq, prev_hash IS DISTINCT FROM before_hash AS bad_link,
       row_hash, (SELECT count(*) FROM chain) AS checked,
       (SELECT count(*) FROM chain WHERE purged) AS purged_count
FROM ordered
WHERE row_hash IS DISTINCT FROM calc
   OR (before_seq IS NOT NULL AND (seq <> before_seq + 1 OR prev_hash IS DISTINCT FROM before_hash))
   OR (before_seq IS NULL AND seq <> %(after)s + 1)
   OR (before_seq IS NULL AND prev_hash IS DISTINCT FROM %(after_hash)s)
ORDER BY seq
LIMIT 1
"""


async def chain_head(conn: AsyncConnection, key: str) -> Row | None:
    cur = await conn.execute("SELECT last_seq, last_hash FROM audit_chain_head WHERE chain_key = %s", (key,))
    return await cur.fetchone()


async def first_break(conn: AsyncConnection, key: str, after: int, after_hash: bytes | None,
                      upto: int) -> Row | None:
    cur = await conn.execute(VERIFY_SQL, {"key": key, "after": after, "upto": upto, "after_hash": after_hash})
    return await cur.fetchone()


async def count_chain_rows(conn: AsyncConnection, key: str, after: int, upto: int) -> tuple[int, int]:
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM audit_log WHERE coalesce(org_id, '') = %(k)s AND chain_seq > %(a)s "
        "AND chain_seq <= %(u)s) AS live, (SELECT count(*) FROM audit_log_tombstone WHERE chain_key = %(k)s "
        "AND chain_seq > %(a)s AND chain_seq <= %(u)s) AS purged", {"k": key, "a": after, "u": upto})
    row = await cur.fetchone()
    return int(row["live"]), int(row["purged"])


async def row_at(conn: AsyncConnection, key: str, seq: int) -> Row | None:
    cur = await conn.execute(
        "SELECT id::text AS id, row_hash FROM audit_log WHERE coalesce(org_id, '') = %s AND chain_seq = %s "
        "UNION ALL SELECT audit_id::text, row_hash FROM audit_log_tombstone WHERE chain_key = %s AND chain_seq = %s",
        (key, seq, key, seq))
    return await cur.fetchone()


# --- retention ----------------------------------------------------------------------------------

async def get_retention(conn: AsyncConnection, org_id: str) -> Row | None:
    cur = await conn.execute(
        "SELECT org_id, retention_days, hard_delete_delay_days, updated_at, updated_by, last_purge_at, "
        "last_purge_count FROM audit_retention_config WHERE org_id = %s", (org_id,))
    return await cur.fetchone()


async def set_retention(conn: AsyncConnection, org_id: str, retention_days: int | None, hard_delete_delay_days: int,
                        *, actor_id: str | None, actor_email: str | None, scope: str, request_id: str,
                        ip_address: str | None) -> Row:
    """Store a policy through the schema owner's `atlas_set_retention_policy` (migration 0013), which also
    records the change (previous and new values) in the admin action log, in one statement."""
    cur = await conn.execute(
        "SELECT org_id, retention_days, hard_delete_delay_days, updated_at, updated_by, last_purge_at, "
        "last_purge_count FROM atlas_set_retention_policy(%s, %s, %s, %s, %s, %s, %s, %s)",
        (org_id, retention_days, hard_delete_delay_days, actor_id, actor_email, scope, request_id, ip_address))
    return await cur.fetchone()


async def retention_floor(conn: AsyncConnection) -> Row:
    cur = await conn.execute(
        "SELECT min_retention_days, min_hard_delete_delay_days FROM atlas_retention_floor WHERE id")
    row = await cur.fetchone()
    return row or {"min_retention_days": 365, "min_hard_delete_delay_days": 30}


async def purge(conn: AsyncConnection, org_id: str, *, actor_id: str | None, actor_email: str | None,
                scope: str, request_id: str, ip_address: str | None) -> Row:
    """The retention purge, by the schema owner's `atlas_retention_purge` (migration 0013): it applies the
    policy and the installation floor, tombstones removed rows and records the purge, in one statement."""
    cur = await conn.execute(
        "SELECT soft_deleted, hard_deleted FROM atlas_retention_purge(%s, %s, %s, %s, %s, %s)",
        (org_id, actor_id, actor_email, scope, request_id, ip_address))
    return await cur.fetchone()


async def orgs_with_policy(conn: AsyncConnection) -> list[Row]:
    cur = await conn.execute(
        "SELECT c.org_id, o.slug, c.retention_days, c.hard_delete_delay_days FROM audit_retention_config c "
        "JOIN organization o ON o.id = c.org_id ORDER BY o.slug")
    return await cur.fetchall()


async def rows_outside_chain(conn: AsyncConnection, key: str, head_seq: int) -> Row | None:
    """A row with no chain position, or one beyond the head: written with the chain trigger disabled."""
    cur = await conn.execute(
        "SELECT id::text AS id, chain_seq AS seq FROM audit_log WHERE coalesce(org_id, '') = %s "
        "AND (chain_seq IS NULL OR row_hash IS NULL OR chain_seq > %s) ORDER BY chain_seq NULLS FIRST LIMIT 1",
        (key, head_seq))
    return await cur.fetchone()


# --- the import ledger of the ingest command ------------------------------------------------------

async def file_imports(conn: AsyncConnection, org_id: str) -> list[Row]:
    """Every import the ``ingest`` command made for the org, oldest first."""
    cur = await conn.execute(
        "SELECT id, label, path, records, digest, derived_ids, inserted, started_at, finished_at "
        "FROM audit_file_import WHERE org_id = %s ORDER BY id", (org_id,))
    return await cur.fetchall()


async def start_file_import(conn: AsyncConnection, org_id: str, label: str, path: str, digest: str) -> int:
    cur = await conn.execute(
        "INSERT INTO audit_file_import (org_id, label, path, digest) VALUES (%s, %s, %s, %s) RETURNING id",
        (org_id, label, path, digest))
    row = await cur.fetchone()
    return int(row["id"])


async def update_file_import(conn: AsyncConnection, import_id: int, totals: Any) -> None:
    """How far an import got (a :class:`~atlas_compliance.audit.bulk.ImportTotals`): written in the
    transaction of the events it counts."""
    await conn.execute(
        "UPDATE audit_file_import SET records = %s, digest = coalesce(%s, digest), derived_ids = %s, inserted = %s, "
        "duplicates = %s, rejected = %s, conflicts = %s WHERE id = %s",
        (totals.records, totals.digest, totals.derived, totals.inserted, totals.duplicates, len(totals.rejected),
         len(totals.conflicts), import_id))


async def finish_file_import(conn: AsyncConnection, import_id: int) -> None:
    await conn.execute("UPDATE audit_file_import SET finished_at = now() WHERE id = %s", (import_id,))

# --- the chains of tombstones and admin actions (migration 0013) -----------------------------------

# Per chain: its table, the org key expression, the sequence, link and hash columns, the hash function.
RECORD_CHAINS = {
    "tombstone": ("audit_log_tombstone", "t.chain_key", "t.record_seq", "t.record_prev", "t.record_hash",
                  "atlas_tombstone_hash", "t.audit_id::text"),
    "admin_action": ("admin_action_log", "coalesce(t.org_id, '')", "t.chain_seq", "t.prev_hash", "t.row_hash",
                     "atlas_admin_action_hash", "t.id::text"),
}


def _record_chain_sql(chain: str) -> str:
    table, key, seq, prev, row_hash, fn, rid = RECORD_CHAINS[chain]
    return f"""
WITH c AS (
    SELECT {seq} AS seq, {rid} AS id, {prev} AS prev, {row_hash} AS h, {fn}(t, {prev}) AS calc
    FROM {table} t WHERE {key} = %(key)s
), o AS (
    SELECT c.*, lag(c.seq) OVER w AS before_seq, lag(c.h) OVER w AS before_hash
    FROM c WINDOW w AS (ORDER BY c.seq NULLS FIRST)
)
SELECT seq, id, h IS DISTINCT FROM calc AS changed, before_seq
FROM o
WHERE seq IS NULL OR h IS DISTINCT FROM calc
   OR (before_seq IS NULL AND (seq <> 1 OR prev IS NOT NULL))
   OR (before_seq IS NOT NULL AND (seq <> before_seq + 1 OR prev IS DISTINCT FROM before_hash))
ORDER BY seq NULLS FIRST
LIMIT 1
"""  # noqa: S608 - identifiers from the fixed RECORD_CHAINS table


async def record_chain_first_break(conn: AsyncConnection, chain: str, key: str) -> Row | None:
    cur = await conn.execute(_record_chain_sql(chain), {"key": key})
    return await cur.fetchone()


async def record_chain_summary(conn: AsyncConnection, chain: str, key: str) -> Row:
    """Count and newest record of a chain, and its head (NULLs when there is none)."""
    table, key_expr, seq, _, row_hash, _, _ = RECORD_CHAINS[chain]
    cur = await conn.execute(
        f"SELECT (SELECT count(*) FROM {table} t WHERE {key_expr} = %(key)s) AS records, "  # noqa: S608 - fixed
        f"(SELECT {seq} FROM {table} t WHERE {key_expr} = %(key)s AND {seq} IS NOT NULL "
        f"ORDER BY {seq} DESC LIMIT 1) AS max_seq, "
        f"(SELECT {row_hash} FROM {table} t WHERE {key_expr} = %(key)s AND {seq} IS NOT NULL "
        f"ORDER BY {seq} DESC LIMIT 1) AS max_hash, "
        "(SELECT last_seq FROM evidence_chain_head WHERE chain = %(chain)s AND chain_key = %(key)s) AS head_seq, "
        "(SELECT last_hash FROM evidence_chain_head WHERE chain = %(chain)s AND chain_key = %(key)s) AS head_hash",
        {"key": key, "chain": chain})
    return await cur.fetchone()
