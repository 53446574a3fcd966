"""Route: /api/v1/admin/catalog (the organization's schema catalog, read-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, Field

from ..audit.names import normalize_table_name
from ..catalog import service as catalog_service
from .deps import DB, AdminPrincipal
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin/catalog", tags=["catalog"])
MAX_LIMIT = 10_000


class CatalogColumn(BaseModel):
    datasource: str = Field(description="The datasource's name in the catalog; '' for facts learned from the "
                                        "audit trail.")
    schemaName: str | None = Field(description="The schema the source named (PostgreSQL schema, MySQL database), "
                                               "when known.")
    tableName: str = Field(description="Normalized like audit rows (docs/audit-trail.md, Table names).")
    columnName: str
    dataType: str | None
    ordinal: int = Field(description="Position in the table (0 when unknown).")
    origin: Literal["introspected", "ddl", "learned"]
    recordedAt: datetime = Field(description="When the fact was recorded (a learned fact: when first seen).")


class CatalogList(BaseModel):
    columns: list[CatalogColumn]
    total: int = Field(description="Facts matching the filters, over all pages.")
    limit: int
    offset: int


@router.get("", response_model=CatalogList, responses=responses(400, 401, 403, 422), summary="List the schema catalog")
async def list_catalog(
    principal: AdminPrincipal, db: DB,
    datasource: Annotated[str | None, Query(max_length=200, description="Only this datasource ('' = learned).")] = None,
    table: Annotated[str | None, Query(max_length=500, description="Only this table (normalized).")] = None,
    origin: Annotated[Literal["introspected", "ddl", "learned"] | None, Query(description="Only this origin.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Columns per page (1–{MAX_LIMIT:,}).")] = MAX_LIMIT,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="Columns to skip.")] = 0,
) -> CatalogList:
    """The organization's known schema, one entry per (datasource, table, column), with where each fact
    came from: `introspected` (`catalog sync`, `pii scan`), `ddl` (`catalog import`) or `learned` (seen
    qualified in the audit trail). Ordered by datasource, schema, table, ordinal, column. Ingest credits
    columns with the introspected and DDL facts; learned facts are listed but not used for that yet, and
    never override the others (docs/catalog.md)."""
    table_name = normalize_table_name(table) if table and table.strip() else None
    async with db.transaction() as conn:
        rows, total = await catalog_service.list_facts(conn, principal.org_id, source=datasource, table=table_name,
                                                       origin=origin, limit=limit, offset=offset)
    return CatalogList(
        columns=[CatalogColumn(datasource=r["source_id"], schemaName=r["schema_name"], tableName=r["table_name"],
                               columnName=r["column_name"], dataType=r["data_type"], ordinal=r["ordinal"],
                               origin=r["origin"], recordedAt=r["scanned_at"]) for r in rows],
        total=total, limit=limit, offset=offset)
