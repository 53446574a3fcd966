"""PII classification rules: listing, admin edits, bulk review, and sticky upserts of detections.

Sticky means: a classification an admin reviewed or dismissed is never overwritten or un-dismissed by
a later scan or upload; new detections arrive unreviewed; nothing is deleted because a scan stopped
detecting it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from ..audit.extraction import normalize_table_name
from ..errors import Conflict, NotFound
from . import repository as repo
from .rules import DEFAULT_MASKING
from .schemas import Classification, DetectionIn, ManualClassificationIn


def to_out(row: dict[str, Any]) -> Classification:
    return Classification(
        id=row["id"], tableName=row["table_name"], columnName=row["column_name"],
        connectionGroupId=row["connection_group_id"], category=row["category"], confidence=row["confidence"],
        maskingStrategy=row["masking_strategy"], reviewed=row["reviewed"], dismissed=row["dismissed"],
        method=row["method"], reason=row["reason"], evidence=row["evidence"], sourceId=row["source_id"],
        createdAt=row["created_at"], updatedAt=row["updated_at"])


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    active = [r for r in rows if not r["dismissed"]]
    return {"total": len(active), "highConfidence": sum(1 for r in active if r["confidence"] == "high"),
            "unreviewed": sum(1 for r in active if not r["reviewed"]),
            "tablesAffected": len({r["table_name"] for r in active}),
            "dismissed": sum(1 for r in rows if r["dismissed"])}


async def list_for_org(conn: AsyncConnection, org_id: str, *, table: str | None = None, category: str | None = None,
                       reviewed: bool | None = None, include_dismissed: bool = False) -> list[dict[str, Any]]:
    return await repo.list_classifications(
        conn, org_id, table=normalize_table_name(table) if table else None, category=category, reviewed=reviewed,
        include_dismissed=include_dismissed)


async def update(conn: AsyncConnection, org_id: str, cid: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply only the fields the admin sent; unknown id → 404."""
    row = await repo.update(conn, org_id, cid, changes)
    if row is None:
        raise NotFound(f"no PII classification with id {cid!r}", code="classification_not_found")
    return row


async def delete(conn: AsyncConnection, org_id: str, cid: str) -> None:
    if not await repo.delete(conn, org_id, cid):
        raise NotFound(f"no PII classification with id {cid!r}", code="classification_not_found")


async def review(conn: AsyncConnection, org_id: str, ids: list[str] | None) -> list[str]:
    return await repo.mark_reviewed(conn, org_id, ids)


async def add_manual(conn: AsyncConnection, org_id: str, body: ManualClassificationIn, *, actor: str) -> dict[str, Any]:
    """Classify a column the scanner missed: method ``manual``, reviewed, high confidence, the
    category's default masking unless one is given. A column that already has a classification
    (dismissed ones included) is a 409: edit or restore that one instead."""
    table, column = normalize_table_name(body.tableName), body.columnName.strip().lower()
    reason = f"added by {actor}" + (f": {body.note.strip()}" if body.note and body.note.strip() else "")
    row = await repo.insert_manual(conn, org_id, {
        "table": table, "column": column, "group": body.connectionGroupId, "category": body.category,
        "strategy": body.maskingStrategy or DEFAULT_MASKING[body.category], "reason": reason})
    if row is None:
        existing = await repo.find_classification(conn, org_id, table, column, body.connectionGroupId)
        state = "dismissed: restore it" if existing and existing["dismissed"] else "edit it"
        raise Conflict(f"{table}.{column} is already classified as {existing['category'] if existing else 'PII'} "
                       f"({state} instead)", code="classification_exists",
                       details={"id": existing["id"] if existing else None})
    return row


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_reviewed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "keptReviewed": self.kept_reviewed}


def detection_records(detections: Iterable[DetectionIn]) -> list[dict[str, Any]]:
    """Uploaded detections as rows for :func:`upsert_detections` (table names normalized, columns
    lowercased, the category's default masking where none was given)."""
    tables: dict[str, str] = {}  # an upload names the same few tables thousands of times
    records = []
    for d in detections:
        table = tables.get(d.tableName)
        if table is None:
            table = tables[d.tableName] = normalize_table_name(d.tableName)
        records.append({"table": table, "column": d.columnName.strip().lower(), "group": d.connectionGroupId,
                        "category": d.category, "confidence": d.confidence,
                        "strategy": d.maskingStrategy or DEFAULT_MASKING[d.category], "method": d.method,
                        "reason": d.reason, "evidence": d.evidence, "source_id": d.sourceId})
    return records


async def upsert_detections(conn: AsyncConnection, org_id: str, detections: Iterable[dict[str, Any]]) -> UpsertCounts:
    """Store detections with the sticky rules, in one set-based statement whatever their number.

    A column named twice in one batch counts once, and its last detection is the one stored.
    """
    latest: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for d in detections:
        key = (d["table"], d["column"], d.get("group"))
        latest.pop(key, None)  # keep the batch's order, with each column where it last appeared
        latest[key] = d
    if not latest:
        return UpsertCounts()
    row = await repo.upsert_detections(conn, org_id, list(latest.values()), DEFAULT_MASKING)
    return UpsertCounts(created=row["created"], updated=row["updated"], unchanged=row["unchanged"],
                        kept_reviewed=row["kept_reviewed"])
