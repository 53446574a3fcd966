"""Report rows and envelopes (camelCase, as in the spec) — used for the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..auth.schemas import Role


class DataAccessRow(BaseModel):
    tableName: str = Field(description="Normalized table name (lowercase; `public.` dropped, other schemas kept).")
    userId: str | None = Field(description="The user who ran the queries; null for queries with no user.")
    userEmail: str | None = Field(description="The user's email at the window's end (members and former members "
                                  "of the organization only; see docs/reports.md).")
    userLabel: str | None = Field(default=None, description="For an id that never was a member of the organization "
                                  "(a service account, an agent, a database role): the label its latest labelled "
                                  "query before the window's end carried; null otherwise.")
    userRole: Role | None = Field(description="The user's role in the organization at the window's end (a former "
                                  "member: the role they last held); null for ids that never were members.")
    queryCount: int = Field(description="Queries in the window that touched this table.")
    uniqueColumns: list[str] = Field(description="Sorted distinct columns of this table those queries read "
                                     "(`*` for SELECT * when the schema is unknown).")
    hasPII: bool = Field(description="The table has a non-dismissed PII classification.")
    piiColumns: list[str] = Field(description="Accessed columns that are classified PII.")
    firstAccess: str = Field(description="Earliest query in the window, ISO 8601 UTC.")
    lastAccess: str = Field(description="Latest query in the window, ISO 8601 UTC.")


class DataAccessSummary(BaseModel):
    totalQueries: int = Field(description="Queries that touched at least one table, each counted once (a "
                              "three-table join counts once): the population of this report. Equals the User "
                              "Activity report's `tableQueries` for the same filters.")
    allQueries: int = Field(description="Every query matching the window and the user/role filters, including "
                            "those that touched no table (`SELECT 1`, `SET`, `BEGIN`): the User Activity "
                            "report's `totalQueries`. With a table filter, equal to `totalQueries`.")
    uniqueUsers: int = Field(description="Distinct non-null users.")
    uniqueTables: int
    piiTablesAccessed: int


class UserActivityRow(BaseModel):
    userId: str | None
    userEmail: str | None
    userLabel: str | None = Field(default=None, description="For an id that never was a member of the organization "
                                  "(a service account, an agent, a database role): the label its latest labelled "
                                  "query before the window's end carried; null otherwise.")
    role: Role | None = Field(description="Role in the organization at the window's end (a former member: the "
                              "role they last held; null: never a member).")
    totalQueries: int = Field(description="Queries in the window, each counted once.")
    tablesAccessed: list[str]
    lastActiveAt: str | None
    lastLoginAt: str | None = Field(description="Latest login into this organization at or before the window's end.")


class UserActivitySummary(BaseModel):
    totalUsers: int = Field(description="Users listed (members and users with activity; null user excluded).")
    activeUsers: int = Field(description="Users with at least one query in the window.")
    totalQueries: int = Field(description="Every query in the window, each counted once, whether or not it "
                              "touched a table: the Data Access report's `allQueries`.")
    tableQueries: int = Field(description="Of those, the queries that touched at least one table: the Data "
                              "Access report's `totalQueries`.")


class ReportWindowOut(BaseModel):
    start: str = Field(description="Inclusive start, ISO 8601 UTC.")
    end: str = Field(description="Exclusive end, ISO 8601 UTC.")
    tz: str


class ReportFiltersOut(BaseModel):
    startDate: str
    endDate: str
    userId: str | None
    role: str | None
    table: str | None
    tz: str


class _ReportBase(BaseModel):
    filters: ReportFiltersOut
    window: ReportWindowOut
    totalRows: int = Field(description="Rows in the full result.")
    truncated: bool = Field(description="True when this page does not hold every row (use limit/offset).")
    limit: int
    offset: int
    generatedAt: str


class DataAccessReport(_ReportBase):
    rows: list[DataAccessRow]
    summary: DataAccessSummary


class UserActivityReport(_ReportBase):
    rows: list[UserActivityRow]
    summary: UserActivitySummary


class DayVolume(BaseModel):
    date: str = Field(description="A calendar day of the window's time zone, YYYY-MM-DD.")
    queries: int = Field(description="Successful, not deleted queries on that day.")


class DailyVolumeOut(BaseModel):
    window: ReportWindowOut
    days: list[DayVolume] = Field(description="Every day of the window, oldest first (days without a query: 0).")
    totalQueries: int = Field(description="Their sum: every query of the window, as the User Activity report's "
                              "`totalQueries` without filters.")
