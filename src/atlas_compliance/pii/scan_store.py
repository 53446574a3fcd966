"""Store a scan: its catalog (for SQL column attribution) and its detections (sticky upsert)."""

from __future__ import annotations

from psycopg import AsyncConnection

from ..audit import admin_actions
from . import repository as repo
from . import service
from .scanner import ScanResult, detection_records


async def store_scan(conn: AsyncConnection, org_id: str, result: ScanResult, *, actor: str,
                     request_id: str = "cli") -> service.UpsertCounts:
    seen: set[tuple[str, str]] = set()
    catalog = []
    for c in result.columns:
        if (c.table, c.column) not in seen:
            seen.add((c.table, c.column))
            catalog.append((c.table, c.column, c.data_type, c.ordinal))
    await repo.replace_catalog(conn, org_id, result.source_id, catalog)
    counts = await service.upsert_detections(conn, org_id, detection_records(result))
    await admin_actions.record(
        conn, admin_actions.Actor(user_id=actor, email=actor, request_id=request_id,
                                  scope="platform" if actor.startswith("system:") else "workspace"),
        org_id=org_id, action_type="compliance.pii_scan", target_type="datasource", target_id=result.source_id,
        details={"tables": result.tables, "columns": len(result.columns), "detections": len(result.detections),
                  **counts.to_dict()})
    return counts
