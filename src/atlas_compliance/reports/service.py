"""The two compliance reports (DESIGN §5): exact, reproducible, one organization at a time.

Services receive the :class:`Database` because a report runs independent queries concurrently
(main rows and summary on one connection; PII and last logins on others). Reports only read.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ..audit import admin_actions
from ..audit.names import short_table_name
from ..auth.schemas import Principal
from ..db.pool import Database
from ..errors import BadRequest
from . import columns, volume
from . import repository as repo
from .columns import ColumnDictionary
from .window import ReportFilters, ReportWindow, iso_utc, parse_filters, parse_window
from .writers import CSV_FORMATS, csv_chunk, json_bytes, report_filename

ReportType = Literal["data-access", "user-activity"]
ROW_CAPS: dict[str, int] = {"data-access": 10_000, "user-activity": 5_000}


@dataclass(frozen=True)
class ReportRequest:
    report: ReportType
    org_id: str
    window: ReportWindow
    filters: ReportFilters
    start_input: str
    end_input: str

    @classmethod
    def parse(cls, report: ReportType, org_id: str, *, start: str, end: str, tz: str | None = "UTC",
              user_id: str | None = None, role: str | None = None, table: str | None = None) -> ReportRequest:
        """A request from what a person typed (API query, CLI options): the window's and filters' rules
        answer ``BadRequest`` (``invalid_date``, ``invalid_range``, ``invalid_tz``, ``invalid_role`` …)."""
        return cls(report=report, org_id=org_id, window=parse_window(start, end, tz),
                   filters=parse_filters(user_id, role, table), start_input=start, end_input=end)

    def filters_dict(self) -> dict[str, Any]:
        return {"startDate": self.start_input, "endDate": self.end_input, **self.filters.to_dict(),
                "tz": self.window.tz}

    def labels(self) -> tuple[str, str]:
        zone = ZoneInfo(self.window.tz)
        start = self.window.start.astimezone(zone).date().isoformat()
        end = (self.window.end - timedelta(microseconds=1)).astimezone(zone).date().isoformat()
        return start, end


async def _fetch_rows(db: Database, sql: str, params: dict[str, Any]) -> Any:
    """(column names, row tuples) of a report query, on its own connection with the reports' memory."""
    async with db.connection() as conn, conn.transaction():
        await repo.set_report_memory(conn)
        return await repo.fetch_tuples(conn, sql, params)


async def _fetch_one(db: Database, sql: str, params: dict[str, Any]) -> Any:
    """The one row of a summary query, likewise."""
    async with db.connection() as conn, conn.transaction():
        await repo.set_report_memory(conn)
        return await repo.fetch_one(conn, sql, params)


# What rows are decorated with: PII columns, last logins (User Activity), the column dictionary, the labels
# of ids that never were members. Emails and roles come from the report query itself, as of the window's end.
Decorations = tuple[dict[str, set[str]], dict[str, datetime], ColumnDictionary, dict[str, str]]


async def _decorations(db: Database, org_id: str, before: datetime | None, *, with_columns: bool,
                params: dict[str, Any]) -> Decorations:
    async def pii():
        async with db.connection() as conn:
            return await repo.pii_columns(conn, org_id)

    async def logins():
        if before is None:
            return {}
        async with db.connection() as conn:
            return await repo.last_logins(conn, org_id, before)

    async def dictionary():
        if not with_columns:  # the User Activity Report names no column
            return ColumnDictionary([])
        return await column_dictionary(db, org_id)

    async def labels():
        async with db.connection() as conn:
            return await repo.stranger_labels(conn, params)

    return await asyncio.gather(pii(), logins(), dictionary(), labels())


async def column_dictionary(db: Database, org_id: str, *, conn=None, fresh: bool = False) -> ColumnDictionary:
    """The org's column dictionary: the one kept from an earlier report while it is whole, else (or
    ``fresh``) read, on ``conn`` when given (in its snapshot)."""
    async def read(conn) -> ColumnDictionary:
        found = None if fresh else columns.kept(org_id, await repo.column_dictionary_size(conn, org_id))
        if found is None:
            found = columns.keep(org_id, ColumnDictionary(await repo.column_dictionary(conn, org_id)))
        return found.for_report()

    if conn is not None:
        return await read(conn)
    async with db.connection() as own:
        return await read(own)


def _classified(table: str, pii: dict[str, set[str]]) -> set[str] | None:
    """The PII columns of ``table``: classified under its name, or, for a name with its database
    (``prod.public.patients``), under its short form (``patients``), as scans name tables."""
    found = pii.get(table)
    if found is None and table.count(".") == 2:
        found = pii.get(short_table_name(table))
    return found


def _pii_for(table: str, columns: list[str], pii: dict[str, set[str]]) -> list[str]:
    classified = _classified(table, pii)
    if not classified:
        return []
    if "*" in columns:
        return sorted(classified)
    return sorted(classified.intersection(columns))


RowBuilder = Callable[[tuple], dict[str, Any]]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a page of rows is built (no await inside, no cycles made):
    10,000 fresh dicts otherwise trigger collections that double the building time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def data_access_rows(columns: list[str], pii: dict[str, set[str]], dictionary: ColumnDictionary,
                     memo: dict, labels: dict[str, str]) -> RowBuilder:
    """A function turning one tuple of the data access query into its API row.

    Timestamps stay ``datetime`` objects (UTC): the JSON writer renders them as ISO 8601 with ``Z``
    and the CSV writer through :func:`iso_utc`, identically."""
    at = {name: i for i, name in enumerate(columns)}
    i_table, i_user, i_email, i_count = at["table_name"], at["user_id"], at["user_email"], at["query_count"]
    i_role = at["user_role"]
    i_mask, i_extra, i_first, i_last = at["col_mask"], at["extra_columns"], at["first_access"], at["last_access"]
    i_edge = at.get("edge_extra")

    def build(r: tuple) -> dict[str, Any]:
        table, user = r[i_table], r[i_user]
        extra = r[i_extra]
        if i_edge is not None and r[i_edge]:
            extra = f"{extra}{chr(31)}{r[i_edge]}" if extra else r[i_edge]
        key = (table, r[i_mask], extra)
        names = memo.get(key)
        if names is None:
            names = memo[key] = dictionary.decode(table, int(r[i_mask] or 0), extra)
        return {
            "tableName": table, "userId": user, "userEmail": r[i_email],
            "userLabel": labels.get(user) if user is not None else None, "userRole": r[i_role],
            "queryCount": int(r[i_count]), "uniqueColumns": names,
            "hasPII": bool(_classified(table, pii)), "piiColumns": _pii_for(table, names, pii),
            "firstAccess": r[i_first], "lastAccess": r[i_last],
        }

    return build


def user_activity_rows(columns: list[str], logins: dict[str, datetime], labels: dict[str, str]) -> RowBuilder:
    """A function turning one tuple of the user activity query into its API row (timestamps as above)."""
    at = {name: i for i, name in enumerate(columns)}
    i_user, i_email, i_role, i_total, i_tables, i_last = (at["user_id"], at["user_email"], at["user_role"],
                                                          at["total_queries"], at["tables"], at["last_active_at"])

    def build(r: tuple) -> dict[str, Any]:
        uid = r[i_user]
        return {
            "userId": uid, "userEmail": r[i_email], "userLabel": labels.get(uid) if uid is not None else None,
            "role": r[i_role],
            "totalQueries": int(r[i_total]), "tablesAccessed": list(r[i_tables] or []),
            "lastActiveAt": r[i_last], "lastLoginAt": logins.get(uid) if uid else None,
        }

    return build


async def generate(db: Database, request: ReportRequest, *, limit: int, offset: int) -> dict[str, Any]:
    """The JSON report: one page of rows (≤ the cap), the summary of the full result, paging facts."""
    params = {**repo.window_params(request.org_id, request.window, request.filters), "limit": limit,
              "offset": offset}
    if request.report == "data-access":
        sql = repo.data_access_sql(request.filters, paged=True)
    else:
        sql = repo.user_activity_sql(request.filters, paged=True)
    rows_task = _fetch_rows(db, sql, params)
    decorations_task = _decorations_for(db, request)
    (columns, raw_rows), (pii, logins, dictionary, labels) = await asyncio.gather(rows_task, decorations_task)
    if raw_rows:
        head = dict(zip(columns, raw_rows[0], strict=True))
    else:
        head = await _fetch_one(db, _summary_sql(request), params)
    build = _row_builder(request, columns, (pii, logins, dictionary, labels), {})
    with _gc_paused():
        rows = [build(r) for r in raw_rows]
    if dictionary.stale:  # a rollup row newer than the dictionary read: read it again
        dictionary = await column_dictionary(db, request.org_id, fresh=True)
        build = _row_builder(request, columns, (pii, logins, dictionary, labels), {})
        with _gc_paused():
            rows = [build(r) for r in raw_rows]
    summary = _summary(request, head)
    total_rows = int(head["total_rows"])
    return {
        "rows": rows, "summary": summary, "filters": request.filters_dict(), "window": request.window.to_dict(),
        "totalRows": total_rows, "truncated": offset + len(rows) < total_rows, "limit": limit, "offset": offset,
        "generatedAt": iso_utc(datetime.now(UTC)),
    }


def _summary_sql(request: ReportRequest) -> str:
    if request.report == "data-access":
        return repo.data_access_summary_sql(request.filters)
    return repo.user_activity_summary_sql(request.filters)


def _summary(request: ReportRequest, head: dict[str, Any]) -> dict[str, int]:
    """The report's summary from the summary columns of its query (paged rows or summary statement)."""
    if request.report == "data-access":
        return {"totalQueries": int(head["total_queries"]), "allQueries": int(head["all_queries"]),
                "uniqueUsers": int(head["unique_users"]), "uniqueTables": int(head["unique_tables"]),
                "piiTablesAccessed": int(head["pii_tables"])}
    return {"totalUsers": int(head["total_users"]), "activeUsers": int(head["active_users"]),
            "totalQueries": int(head["summary_total_queries"]), "tableQueries": int(head["summary_table_queries"])}


def _row_builder(request: ReportRequest, columns: list[str], maps: Decorations,
                 memo: dict) -> RowBuilder:
    pii, logins, dictionary, labels = maps
    if request.report == "data-access":
        return data_access_rows(columns, pii, dictionary, memo, labels)
    return user_activity_rows(columns, logins, labels)


async def _stream_rows(db: Database, conn, request: ReportRequest, params: dict[str, Any], maps: Decorations
                       ) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of the report on ``conn`` (inside its transaction), in order, in chunks."""
    if request.report == "data-access":
        sql = repo.data_access_sql(request.filters, paged=False)
    else:
        sql = repo.user_activity_sql(request.filters, paged=False)
    memo: dict = {}
    build: RowBuilder | None = None
    async for names, chunk in repo.stream(conn, sql, params):
        if len(memo) > 50_000:
            memo.clear()
        if build is None:
            build = _row_builder(request, names, maps, memo)
        with _gc_paused():
            built = [build(r) for r in chunk]
        if maps[2].stale:  # a rollup row newer than the dictionary: read it again, in this snapshot
            maps = (maps[0], maps[1], await column_dictionary(db, request.org_id, conn=conn, fresh=True), maps[3])
            memo.clear()
            build = _row_builder(request, names, maps, memo)
            with _gc_paused():
                built = [build(r) for r in chunk]
        yield built


def _decorations_for(db: Database, request: ReportRequest):
    return _decorations(db, request.org_id, request.window.end if request.report == "user-activity" else None,
                 with_columns=request.report == "data-access",
                 params=repo.window_params(request.org_id, request.window, request.filters))


async def iter_rows(db: Database, request: ReportRequest) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of the report, in order, in chunks (constant memory), for CSV and full exports."""
    params = repo.window_params(request.org_id, request.window, request.filters)
    maps = await _decorations_for(db, request)
    async with db.connection() as conn, conn.transaction():
        await repo.set_report_memory(conn)
        async for built in _stream_rows(db, conn, request, params, maps):
            yield built


async def rows_in_one_snapshot(db: Database, requests: list[ReportRequest]) -> list[list[dict[str, Any]]]:
    """Every row of each report, all read in one repeatable-read snapshot, so the reports agree with
    each other (an access review freezes its population from them)."""
    maps = [await _decorations_for(db, request) for request in requests]
    found: list[list[dict[str, Any]]] = []
    async with db.connection() as conn, conn.transaction():
        await repo.begin_snapshot(conn)
        await repo.set_report_memory(conn)
        for request, request_maps in zip(requests, maps, strict=True):
            params = repo.window_params(request.org_id, request.window, request.filters)
            rows: list[dict[str, Any]] = []
            async for built in _stream_rows(db, conn, request, params, request_maps):
                rows.extend(built)
            found.append(rows)
    return found


async def json_stream(db: Database, request: ReportRequest, counter: list[int]) -> AsyncIterator[bytes]:
    """The whole report as one JSON document, every row, streamed chunk by chunk in constant memory.

    The document has the shape of a JSON page (``rows``, ``summary``, ``filters``, ``window``,
    ``totalRows``, ``truncated``, ``limit``, ``offset``, ``generatedAt``) holding all rows:
    ``truncated`` is false, ``offset`` 0 and ``limit`` the number of rows. Summary and rows are read
    in one repeatable-read snapshot, so they agree even while events arrive. ``counter[0]`` counts
    the rows written."""
    params = repo.window_params(request.org_id, request.window, request.filters)
    maps = await _decorations_for(db, request)
    async with db.connection() as conn, conn.transaction():
        await repo.begin_snapshot(conn)
        await repo.set_report_memory(conn)
        summary = _summary(request, await repo.fetch_one(conn, _summary_sql(request), params))
        yield b'{"rows":['
        separator = b""
        async for built in _stream_rows(db, conn, request, params, maps):
            counter[0] += len(built)
            yield separator + json_bytes(built)[1:-1]  # the chunk's rows without the list's brackets
            separator = b","
    rest = {"summary": summary, "filters": request.filters_dict(), "window": request.window.to_dict(),
            "totalRows": counter[0], "truncated": False, "limit": counter[0], "offset": 0,
            "generatedAt": iso_utc(datetime.now(UTC))}
    yield b"]," + json_bytes(rest)[1:]  # the rest of the document, after the rows


def filename(request: ReportRequest, org_slug: str, ext: str) -> str:
    start, end = request.labels()
    return report_filename(request.report, org_slug, start, end, ext, tz=request.window.tz, filters=request.filters)


async def csv_stream(db: Database, request: ReportRequest, counter: list[int]) -> AsyncIterator[str]:
    """The CSV export, header first, streamed chunk by chunk; ``counter[0]`` counts data rows."""
    header, to_cells = CSV_FORMATS[request.report]
    yield csv_chunk([header])
    async for chunk in iter_rows(db, request):
        counter[0] += len(chunk)
        yield csv_chunk(to_cells(r) for r in chunk)


async def org_slug(db: Database, org_id: str) -> str:
    async with db.connection() as conn:
        return await repo.org_slug(conn, org_id)


async def record_report_action(db: Database, principal: Principal | None, request: ReportRequest, *,
                               fmt: str, row_count: int, request_id: str, ip: str | None,
                               status: str = "success", actor: str | None = None) -> None:
    """Every report generation and export is itself evidence: who, which report, filters, format, rows."""
    action = "compliance.report_export" if fmt in ("csv", "json-download") else "compliance.report_generate"
    async with db.transaction() as conn:
        who = (admin_actions.Actor(user_id=principal.user_id, email=principal.email, request_id=request_id, ip=ip)
               if principal else admin_actions.Actor(user_id=actor, email=actor, request_id=request_id, ip=ip,
                                                     scope="platform"))
        await admin_actions.record(
            conn, who, org_id=request.org_id, action_type=action, target_type="compliance_report",
            target_id=request.report, status=status,
            details={"reportType": request.report, "filters": request.filters_dict(),
                     "window": request.window.to_dict(), "format": fmt, "rowCount": row_count})


async def daily_volume(db: Database, org_id: str, window: ReportWindow) -> dict[str, Any]:
    """Successful, not deleted queries per calendar day of the window's time zone (the console's chart);
    at most :data:`volume.MAX_DAYS` days (``window_too_long`` beyond)."""
    if volume.day_count(window) > volume.MAX_DAYS:
        raise BadRequest(f"the daily chart covers at most {volume.MAX_DAYS} days: narrow startDate..endDate",
                         code="window_too_long")
    async with db.transaction() as conn:
        days = await volume.daily_query_volume(conn, org_id, window)
    return {"window": window.to_dict(), "days": [d.to_dict() for d in days],
            "totalQueries": sum(d.queries for d in days)}


# A repeatable-read snapshot for a view read in several statements (the Failed access view).
begin_snapshot = repo.begin_snapshot
