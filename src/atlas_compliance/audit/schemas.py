"""Audit events as clients send them (camelCase), and the ingest answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

ActorKind = Literal["human", "agent", "mcp", "scheduler", "api_key"]
AuthMode = Literal["none", "simple-key", "managed", "byot"]
TransactionOutcome = Literal["committed", "rolled_back", "unknown"]

MAX_SQL_BYTES = 1024 * 1024
MAX_EVENTS_PER_REQUEST = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_USER_ID_BYTES = 1000  # in UTF-8; with a table name (≤ 512 bytes) it fits a rollup index key

Short = Field(default=None, max_length=1000)


class AuditEventIn(BaseModel):
    """One executed (or refused) query. Only `sql` is required."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    eventId: StrictStr | None = Field(default=None, min_length=1, max_length=200,
                                      description="Client idempotency key, unique per organization.")
    timestamp: StrictStr | None = Field(default=None, description="ISO 8601 with offset; default: now.",
                                        examples=["2026-03-01T09:15:00Z"])
    userId: StrictStr | None = Field(default=None, max_length=1000,
                                     description="Who ran the query: at most 1,000 characters and 1,000 bytes of UTF-8.")
    userLabel: StrictStr | None = Short
    authMode: AuthMode | None = None
    sql: StrictStr = Field(description="The SQL text as executed (up to 1 MB).")
    durationMs: StrictInt = Field(default=0, ge=0, le=2_147_483_647)
    rowCount: StrictInt | None = Field(default=None, ge=0, le=2_147_483_647)
    success: StrictBool = True
    error: StrictStr | None = Field(default=None, max_length=20_000)
    sourceId: StrictStr | None = Short
    sourceType: StrictStr | None = Field(default=None, max_length=100,
                                         description="SQL dialect: postgres, mysql, snowflake, bigquery, …")
    targetHost: StrictStr | None = Short
    actorKind: ActorKind | None = None
    clientId: StrictStr | None = Short
    toolName: StrictStr | None = Short
    tablesAccessed: list[StrictStr] | None = Field(default=None, max_length=10_000)
    columnsAccessed: list[StrictStr] | None = Field(default=None, max_length=100_000)
    columnsByTable: dict[StrictStr, list[StrictStr]] | None = None
    transactionOutcome: TransactionOutcome | None = Field(
        default=None,
        description="How the statement's transaction ended: committed, rolled_back (its changes were undone; "
                    "what it read was still read), or unknown (the connection was lost while committing). "
                    "Absent: the writer did not say.")


class RejectedEvent(BaseModel):
    index: int
    error: str


class IngestResult(BaseModel):
    inserted: int
    duplicates: int
    rejected: list[RejectedEvent]
