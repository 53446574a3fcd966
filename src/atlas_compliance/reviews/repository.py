"""All access-review SQL (migration 0020). Every statement names the organization: a campaign of another
organization is never found."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection

Row = dict[str, Any]

# A campaign with its progress: user items (each must be decided before sign-off), access items
# (optional, except PII ones when the campaign requires a second reviewer), how many of each have a
# decision, PII access items confirmed by two reviewers, and whether it is past its due date (in its zone).
_CAMPAIGN = """
SELECT c.*,
       (SELECT count(*) FROM review_item i WHERE i.campaign_id = c.id AND i.kind = 'user') AS user_items,
       (SELECT count(*) FROM review_item i WHERE i.campaign_id = c.id AND i.kind = 'access') AS access_items,
       (SELECT count(DISTINCT d.item_id) FROM review_decision d JOIN review_item i ON i.id = d.item_id
        WHERE d.campaign_id = c.id AND i.kind = 'user') AS user_decided,
       (SELECT count(DISTINCT d.item_id) FROM review_decision d JOIN review_item i ON i.id = d.item_id
        WHERE d.campaign_id = c.id AND i.kind = 'access') AS access_decided,
       (SELECT count(*) FROM review_item i WHERE i.campaign_id = c.id AND i.kind = 'access' AND i.has_pii)
           AS pii_items,
       (SELECT count(*) FROM review_item i WHERE i.campaign_id = c.id AND i.kind = 'access' AND i.has_pii
           AND atlas_review_confirmed(i.id)) AS pii_confirmed,
       (c.status = 'open' AND (now() AT TIME ZONE c.tz)::date > c.due_date) AS overdue
FROM review_campaign c
"""


async def insert_campaign(conn: AsyncConnection, *, org_id: str, title: str, period_start: date, period_end: date,
                          tz: str, window_start: datetime, window_end: datetime, scope: str, due_date: date,
                          opened_by_id: str | None, opened_by_email: str | None,
                          schedule_id: str | None = None, pii_second_reviewer: bool = False) -> Row | None:
    """The new campaign, or None when its schedule already has one for this period."""
    cur = await conn.execute(
        """INSERT INTO review_campaign (org_id, title, period_start, period_end, tz, window_start, window_end, scope,
                                        due_date, opened_by_id, opened_by_email, schedule_id, pii_second_reviewer)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)
           ON CONFLICT (org_id, schedule_id, period_start) WHERE schedule_id IS NOT NULL DO NOTHING
           RETURNING id""",
        (org_id, title, period_start, period_end, tz, window_start, window_end, scope, due_date, opened_by_id,
         opened_by_email, schedule_id, pii_second_reviewer))
    return await cur.fetchone()


async def insert_items(conn: AsyncConnection, campaign_id: str, items: list[tuple]) -> None:
    """``items``: (seq, kind, user_id, user_email, user_role, table_name, has_pii, figures JSON text)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO review_item (campaign_id, seq, kind, user_id, user_email, user_role, table_name, has_pii,
                                        figures)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)""",
            [(campaign_id, *item) for item in items])


async def campaigns(conn: AsyncConnection, org_id: str, *, overdue_only: bool = False) -> list[Row]:
    extra = " AND c.status = 'open' AND (now() AT TIME ZONE c.tz)::date > c.due_date" if overdue_only else ""
    cur = await conn.execute(_CAMPAIGN + " WHERE c.org_id = %s" + extra + " ORDER BY c.opened_at DESC, c.id",
                             (org_id,))
    return await cur.fetchall()


async def campaign(conn: AsyncConnection, org_id: str, campaign_id: str, *, lock: bool = False) -> Row | None:
    if lock:  # serializes decisions and sign-off of one campaign
        await conn.execute("SELECT 1 FROM review_campaign WHERE org_id = %s AND id = %s FOR UPDATE",
                           (org_id, campaign_id))
    cur = await conn.execute(_CAMPAIGN + " WHERE c.org_id = %s AND c.id = %s", (org_id, campaign_id))
    return await cur.fetchone()


async def items(conn: AsyncConnection, campaign_id: str) -> list[Row]:
    """Every item with its current (latest) decision and its follow-up, in order."""
    cur = await conn.execute(
        """SELECT i.id, i.seq, i.kind, i.user_id, i.user_email, i.user_role, i.table_name, i.has_pii, i.figures,
                  d.decision, d.note, d.decided_by_id, d.decided_by_email, d.decided_at,
                  f.done_by_id AS followup_by_id, f.done_by_email AS followup_by_email,
                  f.done_at AS followup_at, f.note AS followup_note,
                  atlas_review_confirmed(i.id) AS confirmed
           FROM review_item i
           LEFT JOIN LATERAL (SELECT * FROM review_decision x WHERE x.item_id = i.id ORDER BY x.id DESC LIMIT 1) d
               ON true
           LEFT JOIN review_followup f ON f.item_id = i.id
           WHERE i.campaign_id = %s ORDER BY i.seq""", (campaign_id,))
    return await cur.fetchall()


async def items_by_seq(conn: AsyncConnection, campaign_id: str, seqs: list[int]) -> list[Row]:
    cur = await conn.execute(
        """SELECT i.id, i.seq, i.kind, i.user_id, i.user_email,
                  (SELECT x.decision FROM review_decision x WHERE x.item_id = i.id ORDER BY x.id DESC LIMIT 1)
                      AS decision
           FROM review_item i WHERE i.campaign_id = %s AND i.seq = ANY(%s) ORDER BY i.seq""",
        (campaign_id, seqs))
    return await cur.fetchall()


async def decisions(conn: AsyncConnection, campaign_id: str) -> list[Row]:
    """Every decision ever recorded in the campaign (earlier ones included), oldest first."""
    cur = await conn.execute(
        """SELECT d.id, i.seq, d.decision, d.note, d.decided_by_id, d.decided_by_email, d.decided_at
           FROM review_decision d JOIN review_item i ON i.id = d.item_id
           WHERE d.campaign_id = %s ORDER BY d.id""", (campaign_id,))
    return await cur.fetchall()


async def insert_decisions(conn: AsyncConnection, campaign_id: str, item_ids: list[int], decision: str,
                           note: str | None, by_id: str, by_email: str | None) -> None:
    await conn.execute(
        """INSERT INTO review_decision (campaign_id, item_id, decision, note, decided_by_id, decided_by_email)
           SELECT %s, unnest(%s::bigint[]), %s, %s, %s, %s""",
        (campaign_id, item_ids, decision, note, by_id, by_email))


async def undecided_user_items(conn: AsyncConnection, campaign_id: str) -> list[int]:
    cur = await conn.execute(
        """SELECT i.seq FROM review_item i WHERE i.campaign_id = %s AND i.kind = 'user'
           AND NOT EXISTS (SELECT 1 FROM review_decision d WHERE d.item_id = i.id) ORDER BY i.seq""",
        (campaign_id,))
    return [r["seq"] for r in await cur.fetchall()]


async def unconfirmed_pii_items(conn: AsyncConnection, campaign_id: str) -> list[int]:
    cur = await conn.execute(
        """SELECT i.seq FROM review_item i WHERE i.campaign_id = %s AND i.kind = 'access' AND i.has_pii
           AND NOT atlas_review_confirmed(i.id) ORDER BY i.seq""", (campaign_id,))
    return [r["seq"] for r in await cur.fetchall()]


async def setting(conn: AsyncConnection, org_id: str) -> Row:
    cur = await conn.execute("SELECT pii_second_reviewer, updated_by, updated_at FROM review_org_setting "
                             "WHERE org_id = %s", (org_id,))
    return await cur.fetchone() or {"pii_second_reviewer": False, "updated_by": None, "updated_at": None}


async def set_setting(conn: AsyncConnection, org_id: str, *, pii_second_reviewer: bool, by: str | None) -> Row:
    cur = await conn.execute(
        """INSERT INTO review_org_setting (org_id, pii_second_reviewer, updated_by) VALUES (%s, %s, %s)
           ON CONFLICT (org_id) DO UPDATE SET pii_second_reviewer = EXCLUDED.pii_second_reviewer,
               updated_by = EXCLUDED.updated_by, updated_at = now()
           RETURNING pii_second_reviewer, updated_by, updated_at""", (org_id, pii_second_reviewer, by))
    return await cur.fetchone()


async def sign_off(conn: AsyncConnection, campaign_id: str, *, by_id: str | None, by_email: str | None,
                   at: datetime, statement: str, content_sha256: str, signature: str | None,
                   key_id: str | None) -> None:
    await conn.execute(
        """UPDATE review_campaign SET status = 'signed_off', signed_off_by_id = %s, signed_off_by_email = %s,
                  signed_off_at = %s, statement = %s, content_sha256 = %s, signature = %s, signature_key_id = %s
           WHERE id = %s AND status = 'open'""",
        (by_id, by_email, at, statement, content_sha256, signature, key_id, campaign_id))


async def insert_followup(conn: AsyncConnection, campaign_id: str, item_id: int, *, by_id: str | None,
                          by_email: str | None, note: str) -> bool:
    cur = await conn.execute(
        """INSERT INTO review_followup (campaign_id, item_id, done_by_id, done_by_email, note)
           VALUES (%s, %s, %s, %s, %s) ON CONFLICT (item_id) DO NOTHING""",
        (campaign_id, item_id, by_id, by_email, note))
    return cur.rowcount == 1


async def member(conn: AsyncConnection, org_id: str, email: str) -> Row | None:
    """A current member of the organization by email (case-insensitive), with their role."""
    cur = await conn.execute(
        """SELECT u.id, u.email, m.role FROM member m JOIN "user" u ON u.id = m."userId"
           WHERE m."organizationId" = %s AND lower(u.email) = lower(%s)""", (org_id, email.strip()))
    return await cur.fetchone()
