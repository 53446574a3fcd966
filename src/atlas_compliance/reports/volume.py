"""Daily query volume of an organization over a report window (the console's chart).

A query is one successful, not deleted ``audit_log`` row, as in both reports. Days are calendar
days of the window's time zone, so the bars line up with the dates the viewer picked. The SQL reads
``audit_log`` through its ``(org_id, "timestamp")`` index: the daily rollups are UTC days and cannot
answer for other time zones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from .window import ReportWindow

# A bar per day stays readable (and the answer small) up to about two years.
MAX_DAYS = 732

_DAILY_COUNTS = """
SELECT date_trunc('day', "timestamp" AT TIME ZONE %(tz)s)::date AS day, count(*) AS queries
FROM audit_log
WHERE org_id = %(org)s AND success AND deleted_at IS NULL
  AND "timestamp" >= %(start)s AND "timestamp" < %(end)s
GROUP BY 1
ORDER BY 1
"""


@dataclass(frozen=True)
class DailyVolume:
    day: date
    queries: int

    def to_dict(self) -> dict[str, object]:
        return {"date": self.day.isoformat(), "queries": self.queries}


def _first_last(window: ReportWindow) -> tuple[date, date]:
    zone = ZoneInfo(window.tz)
    return (window.start.astimezone(zone).date(),
            (window.end - timedelta(microseconds=1)).astimezone(zone).date())


def day_count(window: ReportWindow) -> int:
    """How many calendar days (in the window's time zone) the half-open window touches."""
    first, last = _first_last(window)
    return (last - first).days + 1


def window_days(window: ReportWindow) -> list[date]:
    """Every calendar day (in the window's time zone) that the half-open window touches.

    >>> from atlas_compliance.reports.window import parse_window
    >>> [d.isoformat() for d in window_days(parse_window("2026-03-01", "2026-03-03", "Europe/Paris"))]
    ['2026-03-01', '2026-03-02', '2026-03-03']
    """
    first, last = _first_last(window)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


async def daily_query_volume(conn: AsyncConnection, org_id: str, window: ReportWindow) -> list[DailyVolume]:
    """Queries per day of the window, days without queries included (as 0), oldest first."""
    cur = await conn.execute(_DAILY_COUNTS, {"tz": window.tz, "org": org_id, "start": window.start,
                                             "end": window.end})
    counts = {row["day"]: int(row["queries"]) for row in await cur.fetchall()}
    return [DailyVolume(day, counts.get(day, 0)) for day in window_days(window)]
