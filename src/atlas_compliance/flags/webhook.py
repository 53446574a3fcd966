"""Sending new flags to an organization's webhook: signed, retried with backoff, every attempt logged.

Each new flag of an org with a webhook gets a row in `access_flag_delivery` in the transaction that stores
it (the outbox). :func:`deliver_due` sends the due ones: a POST of the flag as JSON with

    X-Atlas-Timestamp: <unix seconds>
    X-Atlas-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the webhook's secret>

A 2xx answer delivers it; anything else (an error status, a refused connection, a timeout) is logged in
`access_flag_delivery_attempt` and retried after 1, 2, 4, … minutes (at most a day apart), up to
``MAX_ATTEMPTS`` attempts, after which the delivery is `failed`. `serve` runs it after each hourly pass;
`atlas-compliance flags deliver` runs it on demand.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from psycopg import AsyncConnection

from ..audit import admin_actions
from ..audit.admin_actions import Actor
from ..db.pool import Database
from ..errors import BadRequest
from ..reports.writers import json_bytes
from . import repository as repo
from .service import flag_document

MAX_ATTEMPTS = 8
TIMEOUT = 10.0
BATCH = 100


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``timestamp.body`` under ``secret`` (what receivers check)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed attempts: 1, 2, 4, … minutes, at most a day."""
    return timedelta(minutes=min(2 ** (attempts - 1), 24 * 60))


async def set_webhook(conn: AsyncConnection, org_id: str, url: str, secret: str | None, actor: Actor) -> str:
    """Set the org's webhook; returns its secret (a new random one unless given)."""
    url = url.strip()
    if not url.startswith(("https://", "http://")) or len(url) > 2000:
        raise BadRequest(f"invalid webhook URL {url!r}: use an http:// or https:// URL", code="invalid_webhook")
    secret = secret or secrets.token_hex(32)
    if len(secret) < 32:
        raise BadRequest("the webhook secret must be at least 32 characters", code="invalid_webhook")
    await conn.execute(
        "INSERT INTO access_flag_webhook (org_id, url, secret, updated_by) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (org_id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret, "
        "updated_by = EXCLUDED.updated_by, updated_at = now()", (org_id, url, secret, actor.user_id))
    await admin_actions.record(conn, actor, org_id=org_id, action_type="flag.webhook_set",
                               target_type="access_flag_webhook", target_id=org_id, details={"url": url})
    return secret


async def _due(conn: AsyncConnection, org_id: str | None, now: datetime) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT d.id, d.org_id, d.flag_id, d.attempts, w.url, w.secret FROM access_flag_delivery d "
        "JOIN access_flag_webhook w ON w.org_id = d.org_id "
        "WHERE d.status = 'pending' AND d.next_attempt_at <= %s AND (%s::text IS NULL OR d.org_id = %s) "
        "ORDER BY d.next_attempt_at, d.id LIMIT %s FOR UPDATE OF d SKIP LOCKED", (now, org_id, org_id, BATCH))
    return [dict(r) for r in await cur.fetchall()]


async def _send(client: httpx.AsyncClient, url: str, secret: str, body: bytes) -> tuple[int | None, str | None]:
    stamp = str(int(time.time()))
    try:
        resp = await client.post(url, content=body, headers={
            "Content-Type": "application/json", "X-Atlas-Timestamp": stamp,
            "X-Atlas-Signature": signature(secret, stamp, body), "User-Agent": "atlas-compliance-flags"})
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return resp.status_code, None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"


async def deliver_due(db: Database, *, org_id: str | None = None, now: datetime | None = None,
                      transport: httpx.AsyncBaseTransport | None = None) -> dict[str, int]:
    """Send every due delivery (of one org, or of all); returns how many were delivered, retried, failed."""
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    async with httpx.AsyncClient(timeout=TIMEOUT, transport=transport, follow_redirects=False) as client:
        async with db.transaction() as conn:
            when = now or (await (await conn.execute("SELECT now() AS t")).fetchone())["t"]
            for d in await _due(conn, org_id, when):
                rows = await repo.list_flag(conn, d["org_id"], d["flag_id"])
                body = json_bytes({"event": "access_flag.created", "flag": flag_document(rows)})
                status, error = await _send(client, d["url"], d["secret"], body)
                attempts = d["attempts"] + 1
                ok = error is None
                await conn.execute("INSERT INTO access_flag_delivery_attempt (delivery_id, url, status_code, error, ok) "
                                   "VALUES (%s, %s, %s, %s, %s)", (d["id"], d["url"], status, error, ok))
                state = "delivered" if ok else ("failed" if attempts >= MAX_ATTEMPTS else "pending")
                await conn.execute(
                    "UPDATE access_flag_delivery SET status = %s, attempts = %s, next_attempt_at = %s, "
                    "delivered_at = CASE WHEN %s THEN now() END WHERE id = %s",
                    (state, attempts, when + backoff(attempts), ok, d["id"]))
                counts[{"delivered": "delivered", "failed": "failed", "pending": "retrying"}[state]] += 1
    return counts
