"""Access reviews (issue 20): open a campaign over a period and scope, decide each item, sign off, export.

Opening a campaign freezes its population: the User Activity rows (one `user` item per person, named as
of the period's end, members without activity included) and the Data Access rows (one `access` item per
(table, user)) are read by the report code itself, in one snapshot, and copied into the campaign. Every
open, decision, sign-off and follow-up is written to the chained admin action log in the transaction that
makes it. The API and the CLI both call these functions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from psycopg import AsyncConnection

from ..audit import admin_actions, signing
from ..audit.admin_actions import Actor
from ..audit.signing import SigningKey, VerifyingKey
from ..config import Settings
from ..db.pool import Database
from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..reports import service as reports
from ..reports.window import DATE_RE, iso_utc, parse_filters, parse_window
from ..reports.writers import LIST_JOINER, csv_chunk, guard_formula, json_bytes
from . import repository as repo

DECISIONS = ("keep", "revoke", "flag")
MAX_ITEMS = 50_000  # a population larger than this is refused: narrow the scope
MAX_NOTE = 2_000
MAX_STATEMENT = 5_000
MAX_TITLE = 200
DEFAULT_DUE_DAYS = 30


@dataclass(frozen=True)
class OpenRequest:
    org_id: str
    start: str
    end: str
    tz: str = "UTC"
    user_id: str | None = None
    role: str | None = None
    table: str | None = None
    title: str | None = None
    due_date: str | None = None
    schedule_id: str | None = None


def _day(name: str, value: str) -> date:
    if not DATE_RE.match((value or "").strip()):
        raise BadRequest(f"invalid {name} {value!r}: a review period is whole days, use YYYY-MM-DD "
                         "(e.g. 2026-01-01)", code="invalid_date")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(f"invalid {name} {value!r}: not a calendar date, use YYYY-MM-DD",
                         code="invalid_date") from None


def _text(name: str, value: str | None, limit: int, *, required: bool, code: str) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise BadRequest(f"{name} is required", code=code)
        return None
    if len(text) > limit:
        raise BadRequest(f"{name} is too long: at most {limit:,} characters", code=code)
    return text


async def open_campaign(db: Database, request: OpenRequest, actor: Actor) -> dict[str, Any] | None:
    """Open a campaign and freeze its population; None when its schedule already has this period's."""
    start, end = _day("startDate", request.start), _day("endDate", request.end)
    window = parse_window(request.start.strip(), request.end.strip(), request.tz)
    filters = parse_filters(request.user_id, request.role, request.table)
    due = _day("dueDate", request.due_date) if request.due_date else end + timedelta(days=DEFAULT_DUE_DAYS)
    if due < end:
        raise BadRequest(f"invalid dueDate {due}: it must not be before the period's end ({end})",
                         code="invalid_date")
    title = _text("title", request.title, MAX_TITLE, required=False, code="invalid_title") \
        or f"Access review {start} to {end}"
    asked = [reports.ReportRequest(report=kind, org_id=request.org_id, window=window, filters=filters,
                                   start_input=request.start, end_input=request.end)
             for kind in ("user-activity", "data-access")]
    people, accesses = await reports.rows_in_one_snapshot(db, asked)
    if len(people) + len(accesses) > MAX_ITEMS:
        raise BadRequest(f"the scope holds {len(people) + len(accesses):,} items, more than {MAX_ITEMS:,}: "
                         "narrow it with a role, user or table filter, or a shorter period",
                         code="population_too_large")
    items = [(n, "user", r["userId"], r["userEmail"], r["role"], None, False, json_bytes(r).decode())
             for n, r in enumerate(people, start=1)]
    items += [(n, "access", r["userId"], r["userEmail"], r["userRole"], r["tableName"], r["hasPII"],
               json_bytes(r).decode()) for n, r in enumerate(accesses, start=len(items) + 1)]
    scope = filters.to_dict()
    async with db.transaction() as conn:
        second = bool((await repo.setting(conn, request.org_id))["pii_second_reviewer"])
        row = await repo.insert_campaign(
            conn, org_id=request.org_id, title=title, period_start=start, period_end=end, tz=window.tz,
            window_start=window.start, window_end=window.end, scope=orjson.dumps(scope).decode(), due_date=due,
            opened_by_id=actor.user_id, opened_by_email=actor.email, schedule_id=request.schedule_id,
            pii_second_reviewer=second)
        if row is None:
            return None
        await repo.insert_items(conn, row["id"], items)
        await admin_actions.record(
            conn, actor, org_id=request.org_id, action_type="review.open", target_type="review_campaign",
            target_id=row["id"], details={"title": title, "periodStart": str(start), "periodEnd": str(end),
                                          "tz": window.tz, "scope": scope, "dueDate": str(due),
                                          "userItems": len(people), "accessItems": len(accesses),
                                          "scheduleId": request.schedule_id, "piiSecondReviewer": second})
        return await get(conn, request.org_id, row["id"])


async def _locked(conn: AsyncConnection, org_id: str, campaign_id: str) -> dict[str, Any]:
    found = await repo.campaign(conn, org_id, campaign_id, lock=True)
    if found is None:
        raise NotFound(f"no access review {campaign_id!r} in this organization", code="review_not_found")
    return found


def _refuse_if_signed(campaign: dict[str, Any], what: str) -> None:
    if campaign["status"] != "open":
        raise Conflict(f"access review {campaign['id']} was signed off at {iso_utc(campaign['signed_off_at'])}: "
                       f"it is read-only, {what} is refused", code="review_signed_off")


def _reviewer(actor: Actor) -> str:
    if not actor.user_id or actor.user_id.startswith("system:"):
        raise BadRequest("a decision or sign-off needs a person: name the reviewer", code="reviewer_required")
    return actor.user_id


async def decide(conn: AsyncConnection, org_id: str, campaign_id: str, seqs: list[int], decision: str,
                 note: str | None, actor: Actor) -> dict[str, Any]:
    """Record ``decision`` on the items numbered ``seqs``: all of them, or (on any refusal) none."""
    reviewer = _reviewer(actor)
    if decision not in DECISIONS:
        raise BadRequest(f"invalid decision {decision!r}: use keep, revoke or flag", code="invalid_decision")
    text = _text("note", note, MAX_NOTE, required=decision != "keep", code="note_required")
    wanted = sorted(set(seqs))
    if not wanted:
        raise BadRequest("name at least one item", code="invalid_items")
    campaign = await _locked(conn, org_id, campaign_id)
    _refuse_if_signed(campaign, "a new decision")
    found = await repo.items_by_seq(conn, campaign_id, wanted)
    missing = sorted(set(wanted) - {r["seq"] for r in found})
    if missing:
        raise NotFound(f"access review {campaign_id} has no item {', '.join(map(str, missing[:10]))}",
                       code="item_not_found")
    own = [r for r in found if r["user_id"] == reviewer]
    if own:
        raise Forbidden(f"you cannot decide on your own access: item {', '.join(str(r['seq']) for r in own[:10])} "
                        f"is about you ({own[0]['user_email'] or reviewer}); another reviewer must decide it",
                        code="self_review")
    await repo.insert_decisions(conn, campaign_id, [r["id"] for r in found], decision, text, reviewer, actor.email)
    await admin_actions.record(conn, actor, org_id=org_id, action_type="review.decide",
                               target_type="review_campaign", target_id=campaign_id,
                               details={"items": wanted, "decision": decision, "note": text})
    return {"campaignId": campaign_id, "items": wanted, "decision": decision, "note": text}


def content_digest(campaign: dict[str, Any], items: list[dict[str, Any]], history: list[dict[str, Any]]) -> str:
    """SHA-256 over the frozen population and every decision, as the export writes them."""
    body = {"campaign": {k: campaign[k] for k in ("id", "orgId", "periodStart", "periodEnd", "tz", "window",
                                                  "scope")},
            "items": [{k: v for k, v in item.items() if k != "followUp"} for item in items], "decisions": history}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)).hexdigest()


def signoff_message(campaign_id: str, org_id: str, by_id: str, at: datetime, statement: str, digest: str) -> bytes:
    """The bytes the installation key signs at sign-off (canonical JSON, keys sorted)."""
    return orjson.dumps({"campaignId": campaign_id, "orgId": org_id, "signedOffBy": by_id,
                         "signedOffAt": iso_utc(at), "statement": statement, "contentSha256": digest},
                        option=orjson.OPT_SORT_KEYS)


async def sign_off(conn: AsyncConnection, org_id: str, campaign_id: str, statement: str | None, actor: Actor,
                   key: SigningKey | None) -> dict[str, Any]:
    """Sign the campaign off (every user item decided, a statement given); it is read-only afterwards."""
    reviewer = _reviewer(actor)
    text = _text("statement", statement, MAX_STATEMENT, required=True, code="statement_required")
    assert text is not None
    campaign = await _locked(conn, org_id, campaign_id)
    _refuse_if_signed(campaign, "a second sign-off")
    undecided = await repo.undecided_user_items(conn, campaign_id)
    if undecided:
        raise Conflict(f"{len(undecided)} user item(s) have no decision yet (item "
                       f"{', '.join(map(str, undecided[:10]))}{' …' if len(undecided) > 10 else ''}): decide every "
                       "user item before signing off", code="review_incomplete")
    if campaign["pii_second_reviewer"]:
        pending = await repo.unconfirmed_pii_items(conn, campaign_id)
        if pending:
            raise Conflict(f"{len(pending)} PII access item(s) need a second reviewer who agrees (item "
                           f"{', '.join(map(str, pending[:10]))}{' …' if len(pending) > 10 else ''}): this review "
                           "requires two reviewers on PII accesses", code="review_incomplete")
    document = await get(conn, org_id, campaign_id, history=True)
    digest = content_digest(document["campaign"], document["items"], document["decisions"])
    at = datetime.now(UTC)
    signature = key.sign(signoff_message(campaign_id, org_id, reviewer, at, text, digest)) if key else None
    await repo.sign_off(conn, campaign_id, by_id=reviewer, by_email=actor.email, at=at, statement=text,
                        content_sha256=digest,
                        signature=base64.b64encode(signature).decode("ascii") if signature else None,
                        key_id=key.key_id if key else None)
    await admin_actions.record(conn, actor, org_id=org_id, action_type="review.signoff",
                               target_type="review_campaign", target_id=campaign_id,
                               details={"statement": text, "contentSha256": digest,
                                        "signatureKeyId": key.key_id if key else None})
    return await get(conn, org_id, campaign_id)


async def verify(conn: AsyncConnection, org_id: str, campaign_id: str, key: VerifyingKey | None) -> dict[str, Any]:
    """Recompute a signed-off campaign's digest from what is stored now and check its signature with ``key``:
    a population or decision changed after the sign-off (even by a superuser past the triggers) no longer
    matches; a statement, signer or time changed no longer verifies."""
    document = await get(conn, org_id, campaign_id, history=True)
    c = document["campaign"]
    signed = c["signOff"]
    if signed is None:
        raise Conflict(f"access review {campaign_id} is not signed off: there is nothing to verify", code="review_open")
    digest = content_digest(c, document["items"], document["decisions"])
    matches = hmac.compare_digest(digest, signed["contentSha256"] or "")
    valid = None
    if signed["signature"] and key is not None:
        message = signoff_message(campaign_id, org_id, (signed["by"] or {}).get("userId") or "",
                                  datetime.fromisoformat(signed["at"].replace("Z", "+00:00")), signed["statement"],
                                  signed["contentSha256"])
        valid = hmac.compare_digest(signed["signatureKeyId"] or "", key.key_id) and \
            key.verify(base64.b64decode(signed["signature"]), message)
    return {"campaignId": campaign_id, "contentSha256": signed["contentSha256"], "recomputedSha256": digest,
            "digestMatches": matches, "signed": bool(signed["signature"]),
            "signatureKeyId": signed["signatureKeyId"], "signatureValid": valid, "ok": matches and valid is not False}


async def followup_done(conn: AsyncConnection, org_id: str, campaign_id: str, seq: int, note: str | None,
                        actor: Actor) -> dict[str, Any]:
    """Mark a signed-off revocation done (the access was removed), once, with a note."""
    text = _text("note", note, MAX_NOTE, required=True, code="note_required")
    campaign = await _locked(conn, org_id, campaign_id)
    if campaign["status"] != "signed_off":
        raise Conflict(f"access review {campaign_id} is not signed off yet: follow-ups start after sign-off",
                       code="review_open")
    found = await repo.items_by_seq(conn, campaign_id, [seq])
    if not found:
        raise NotFound(f"access review {campaign_id} has no item {seq}", code="item_not_found")
    if found[0]["decision"] != "revoke":
        raise Conflict(f"item {seq} was not revoked (decision: {found[0]['decision'] or 'none'}): only revocations "
                       "have a follow-up", code="not_a_revocation")
    if not await repo.insert_followup(conn, campaign_id, found[0]["id"], by_id=actor.user_id, by_email=actor.email,
                                      note=text or ""):
        raise Conflict(f"the follow-up of item {seq} is already marked done", code="followup_done")
    await admin_actions.record(conn, actor, org_id=org_id, action_type="review.followup_done",
                               target_type="review_campaign", target_id=campaign_id,
                               details={"item": seq, "note": text})
    return {"campaignId": campaign_id, "item": seq, "note": text}


# --- reading ---------------------------------------------------------------------------------------------

def _person(user_id: str | None, email: str | None) -> dict[str, str | None] | None:
    return {"userId": user_id, "email": email} if user_id or email else None


def campaign_out(r: dict[str, Any]) -> dict[str, Any]:
    signed = r["status"] == "signed_off"
    return {
        "id": r["id"], "orgId": r["org_id"], "title": r["title"], "periodStart": str(r["period_start"]),
        "periodEnd": str(r["period_end"]), "tz": r["tz"],
        "window": {"start": iso_utc(r["window_start"]), "end": iso_utc(r["window_end"])},
        "scope": r["scope"], "dueDate": str(r["due_date"]), "scheduleId": r["schedule_id"], "status": r["status"],
        "piiSecondReviewer": r["pii_second_reviewer"],
        "overdue": bool(r["overdue"]), "openedBy": _person(r["opened_by_id"], r["opened_by_email"]),
        "openedAt": iso_utc(r["opened_at"]),
        "progress": {"userItems": r["user_items"], "userDecided": r["user_decided"],
                     "accessItems": r["access_items"], "accessDecided": r["access_decided"],
                     "piiAccessItems": r["pii_items"], "piiConfirmedByTwo": r["pii_confirmed"]},
        "signOff": {"by": _person(r["signed_off_by_id"], r["signed_off_by_email"]),
                    "at": iso_utc(r["signed_off_at"]), "statement": r["statement"],
                    "contentSha256": r["content_sha256"], "signature": r["signature"],
                    "signatureKeyId": r["signature_key_id"]} if signed else None,
    }


def item_out(r: dict[str, Any]) -> dict[str, Any]:
    decision = None
    if r["decision"] is not None:
        decision = {"decision": r["decision"], "note": r["note"],
                    "decidedBy": _person(r["decided_by_id"], r["decided_by_email"]),
                    "decidedAt": iso_utc(r["decided_at"])}
    followup = None
    if r["followup_at"] is not None:
        followup = {"doneBy": _person(r["followup_by_id"], r["followup_by_email"]),
                    "doneAt": iso_utc(r["followup_at"]), "note": r["followup_note"]}
    return {"item": r["seq"], "kind": r["kind"], "userId": r["user_id"], "userEmail": r["user_email"],
            "userRole": r["user_role"], "tableName": r["table_name"], "hasPII": r["has_pii"],
            "figures": r["figures"], "decision": decision, "confirmedByTwo": bool(r["confirmed"]),
            "followUp": followup}


def decision_out(r: dict[str, Any]) -> dict[str, Any]:
    return {"item": r["seq"], "decision": r["decision"], "note": r["note"],
            "decidedBy": _person(r["decided_by_id"], r["decided_by_email"]), "decidedAt": iso_utc(r["decided_at"])}


async def list_campaigns(conn: AsyncConnection, org_id: str, *, overdue_only: bool = False) -> list[dict[str, Any]]:
    return [campaign_out(r) for r in await repo.campaigns(conn, org_id, overdue_only=overdue_only)]


async def get(conn: AsyncConnection, org_id: str, campaign_id: str, *, history: bool = False) -> dict[str, Any]:
    """The campaign with its items (current decisions, follow-ups); with ``history``, every decision too."""
    found = await repo.campaign(conn, org_id, campaign_id)
    if found is None:
        raise NotFound(f"no access review {campaign_id!r} in this organization", code="review_not_found")
    document: dict[str, Any] = {"campaign": campaign_out(found),
                                "items": [item_out(r) for r in await repo.items(conn, campaign_id)]}
    if history:
        document["decisions"] = [decision_out(r) for r in await repo.decisions(conn, campaign_id)]
    return document


async def export(conn: AsyncConnection, org_id: str, campaign_id: str, *, followups_only: bool = False
                 ) -> dict[str, Any]:
    """The evidence document: campaign and sign-off, frozen population, every decision, reviewers; with
    ``followups_only``, only the revoked items (who must lose which access) and their decisions."""
    document = await get(conn, org_id, campaign_id, history=True)
    if followups_only:
        document["items"] = [i for i in document["items"] if (i["decision"] or {}).get("decision") == "revoke"]
        kept = {i["item"] for i in document["items"]}
        document["decisions"] = [d for d in document["decisions"] if d["item"] in kept]
    reviewers: dict[str, dict[str, Any]] = {}
    for d in document["decisions"]:
        who = d["decidedBy"] or {}
        entry = reviewers.setdefault(who.get("userId") or "", {**who, "decisions": 0})
        entry["decisions"] += 1
    document["reviewers"] = list(reviewers.values())
    document["exportedAt"] = iso_utc(datetime.now(UTC))
    return document


async def signed_off_covering(conn: AsyncConnection, org_id: str, start: datetime, end: datetime
                              ) -> list[dict[str, Any]]:
    """The export document of every signed-off campaign whose window overlaps [start, end), oldest period
    first: what an evidence bundle of that window carries."""
    found = [r for r in await repo.campaigns(conn, org_id)
             if r["status"] == "signed_off" and r["window_start"] < end and r["window_end"] > start]
    found.sort(key=lambda r: (r["window_start"], r["id"]))
    return [await export(conn, org_id, r["id"]) for r in found]


def setting_out(r: dict[str, Any]) -> dict[str, Any]:
    return {"piiSecondReviewer": r["pii_second_reviewer"], "updatedBy": r["updated_by"],
            "updatedAt": iso_utc(r["updated_at"])}


async def get_setting(conn: AsyncConnection, org_id: str) -> dict[str, Any]:
    return setting_out(await repo.setting(conn, org_id))


async def set_setting(conn: AsyncConnection, org_id: str, *, pii_second_reviewer: bool, actor: Actor
                      ) -> dict[str, Any]:
    """Require (or not) a second, agreeing reviewer on PII accesses in campaigns opened from now on."""
    before = await repo.setting(conn, org_id)
    row = await repo.set_setting(conn, org_id, pii_second_reviewer=pii_second_reviewer, by=actor.email)
    await admin_actions.record(conn, actor, org_id=org_id, action_type="review.settings_update",
                               target_type="review_settings", target_id=org_id,
                               details={"previous": {"piiSecondReviewer": before["pii_second_reviewer"]},
                                        "new": {"piiSecondReviewer": pii_second_reviewer}})
    return setting_out(row)


async def reviewer_actor(conn: AsyncConnection, org_id: str, email: str | None, request_id: str = "cli") -> Actor:
    """The admin or owner named by ``email`` (the CLI's ``--reviewer``), as the actor of a decision."""
    if not email:
        raise BadRequest("name the reviewer with --reviewer EMAIL (an admin or owner of the organization)",
                         code="reviewer_required")
    found = await repo.member(conn, org_id, email)
    if found is None or found["role"] not in ("admin", "owner"):
        raise Forbidden(f"{email} is not an admin or owner of this organization: only they review access",
                        code="not_a_reviewer")
    return Actor(user_id=found["id"], email=found["email"], request_id=request_id)


CSV_HEADER = ("campaign_id", "period_start", "period_end", "item", "kind", "user_id", "user_email", "user_label",
              "user_role",
              "table_name", "has_pii", "query_count", "columns", "pii_columns", "total_queries", "tables_accessed",
              "last_active_at", "last_login_at", "decision", "note", "decided_by", "decided_at", "followup_done_by",
              "followup_done_at", "followup_note", "status", "signed_off_by", "signed_off_at", "statement")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return guard_formula(LIST_JOINER.join(value))
    return guard_formula(str(value))


def csv_text(document: dict[str, Any]) -> str:
    """The export as CSV (RFC 4180, formula-guarded): one line per item with its current decision and
    follow-up, each line naming the campaign and its sign-off."""
    c = document["campaign"]
    signed = c["signOff"] or {}
    tail = [c["status"], (signed.get("by") or {}).get("email"), signed.get("at"), signed.get("statement")]
    lines: list[list[str]] = [list(CSV_HEADER)]
    for i in document["items"]:
        f, d, u = i["figures"], i["decision"] or {}, i["followUp"] or {}
        cells = [c["id"], c["periodStart"], c["periodEnd"], i["item"], i["kind"], i["userId"], i["userEmail"],
                 f.get("userLabel"), i["userRole"], i["tableName"], i["hasPII"], f.get("queryCount"),
                 f.get("uniqueColumns"), f.get("piiColumns"), f.get("totalQueries"), f.get("tablesAccessed"), f.get("lastActiveAt"),
                 f.get("lastLoginAt"), d.get("decision"), d.get("note"), (d.get("decidedBy") or {}).get("email"),
                 d.get("decidedAt"), (u.get("doneBy") or {}).get("email"), u.get("doneAt"), u.get("note"), *tail]
        lines.append([_cell(v) for v in cells])
    return csv_chunk(lines)


def export_filename(document: dict[str, Any], org_slug: str, ext: str, *, followups_only: bool = False) -> str:
    c = document["campaign"]
    safe = "".join(ch for ch in org_slug if ch.isalnum() or ch in "-_") or "org"
    kind = "access-review-followups" if followups_only else "access-review"
    return f"{kind}-{safe}-{c['periodStart']}_{c['periodEnd']}-{c['id'][:8]}.{ext}"


async def record_export(conn: AsyncConnection, org_id: str, campaign_id: str, actor: Actor, fmt: str,
                        items: int) -> None:
    await admin_actions.record(conn, actor, org_id=org_id, action_type="review.export",
                               target_type="review_campaign", target_id=campaign_id,
                               details={"format": fmt, "items": items})


def installation_key(settings: Settings) -> SigningKey | None:
    """The installation's signing key when it exists (a sign-off never creates one); a key that exists
    but cannot be read is an error, not a silent unsigned sign-off."""
    if settings.signing_key is None and not (Path(settings.data_dir).expanduser() / signing.KEY_FILE).exists():
        return None
    return signing.load_signing_key(settings, create=False)
