"""Audit events as clients send them (camelCase), and the ingest answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

MAX_RETENTION_DAYS = 36_500  # 100 years: the longest retention policy (audit/retention.py checks it)

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
    index: int = Field(description="Position of the event in the batch, from 0.")
    code: Literal["invalid_event", "event_id_conflict"] = Field(
        description="invalid_event: the event itself is not valid; event_id_conflict: its eventId is "
                    "already stored (or earlier in the batch) for another event.")
    error: str


class IngestResult(BaseModel):
    inserted: int
    duplicates: int
    rejected: list[RejectedEvent]


class EventIdentity(NamedTuple):
    """What defines an event, compared when its ``eventId`` comes again: the SQL (its SHA-256), who
    ran it, when (compared only when the event gives a ``timestamp``: one without gets the time of
    ingest), the source, its dialect, the database host and whether it succeeded. Measurements and
    labels (``durationMs``, ``rowCount``, ``userLabel``, ``error``, …) are not compared."""

    sql_sha256: bytes
    user_id: str | None
    timestamp: datetime
    timestamp_given: bool
    source_id: str | None
    source_type: str | None
    target_host: str | None
    success: bool

    def same_event(self, other: EventIdentity) -> bool:
        """Whether ``other``, met again under this one's id, is the same event (a duplicate)."""
        return (self.sql_sha256 == other.sql_sha256 and self.user_id == other.user_id
                and (not other.timestamp_given or self.timestamp == other.timestamp)
                and (self.source_id, self.source_type, self.target_host, self.success)
                == (other.source_id, other.source_type, other.target_host, other.success))


# --- what the audit API answers: verification, retention, checkpoints -----------------------------------

class ChainBreakOut(BaseModel):
    seq: int | None
    auditId: str | None
    kind: str = Field(description="changed | removed | inserted_out_of_order | outside_chain")
    detail: str


class RecordChainOut(BaseModel):
    chain: str = Field(description="tombstone (rows removed by the retention purge) | admin_action")
    ok: bool
    records: int
    headSeq: int
    firstBreak: ChainBreakOut | None


class RollupDifferenceOut(BaseModel):
    rollup: str = Field(description="user_daily | access_daily | access_weekly")
    period: date = Field(description="The UTC day, or the Monday of the week.")
    table: str | None = Field(description="The table (access rollups); null for user_daily.")
    userId: str | None
    field: str = Field(description="row | query_count | table_query_count | first_ts | last_ts | columns. "
                                   "`row`: stored null = the rollup row is missing; expected null = it should "
                                   "not exist.")
    stored: str | None
    expected: str | None = Field(description="What the raw rows give.")


class RollupsOut(BaseModel):
    ok: bool = Field(description="True when every rollup row matches the raw rows.")
    since: date | None = Field(description="First day checked; null = the whole history.")
    differenceCount: int
    differences: list[RollupDifferenceOut] = Field(description="The first 100 differences.")


class VerifyOut(BaseModel):
    ok: bool = Field(description="True when the audit log's chain, every other evidence chain and the rollups "
                                 "verify.")
    rowsChecked: int
    purgedRows: int
    headSeq: int
    firstBreak: ChainBreakOut | None
    chains: list[RecordChainOut] = Field(
        default_factory=list, description="The org's chains of purge tombstones and of admin actions.")
    rollups: RollupsOut = Field(description="The rollups reports read, recomputed from the raw rows.")


class RetentionPolicy(BaseModel):
    orgId: str
    retentionDays: int | None = Field(description="Days kept before soft delete; null = unlimited.")
    hardDeleteDelayDays: int
    updatedAt: Any | None = None
    updatedBy: str | None = None
    lastPurgeAt: Any | None = None
    lastPurgeCount: int | None = None


class RetentionUpdate(BaseModel):
    model_config = {"extra": "forbid"}
    # Strict: `true` or "30" is a mistake to report (422), not a number of days to store. The bounds are
    # documented here and checked by `retention.set_policy` (for the CLI too), which answers 400.
    retentionDays: StrictInt | None = Field(
        description=f"At least the installation's minimum (ATLAS_MIN_RETENTION_DAYS, default 365; never below 7) "
                    f"and at most {MAX_RETENTION_DAYS:,}, or null for unlimited.", examples=[365],
        json_schema_extra={"minimum": 7, "maximum": MAX_RETENTION_DAYS})
    hardDeleteDelayDays: StrictInt | None = Field(
        default=None, description="Days between soft and hard delete: at least the installation's minimum "
                                  f"(ATLAS_MIN_HARD_DELETE_DELAY_DAYS, default 30), at most {MAX_RETENTION_DAYS:,}.",
        examples=[30], json_schema_extra={"minimum": 0, "maximum": MAX_RETENTION_DAYS})


class PurgeOut(BaseModel):
    orgId: str
    softDeleted: int
    hardDeleted: int


class CheckpointChainOut(BaseModel):
    lastSeq: int | None = Field(description="The chain's last position when the checkpoint was taken.")
    headHash: str | None = Field(description="Hex SHA-256 of the row at `lastSeq` (null for an empty chain).")
    rows: int | None = Field(description="Live rows up to `lastSeq`.")
    tombstones: int | None = Field(description="Rows up to `lastSeq` already removed by the retention purge.")


class CheckpointOut(BaseModel):
    file: str = Field(description="File name in ATLAS_CHECKPOINT_DIR.")
    createdAt: str
    keyId: str | None
    signatureValid: bool | None = Field(
        description="The signature checks with this installation's key (null: the key cannot be read).")
    signature: str = Field(description="Base64 Ed25519 signature of the statement's canonical JSON.")
    chains: dict[str, CheckpointChainOut]


class CheckpointList(BaseModel):
    checkpoints: list[CheckpointOut]
