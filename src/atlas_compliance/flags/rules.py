"""The flag rules, as pure functions over one organization's per-day (user, table) reads of PII tables.

Every rule reads the rollups' figures (``audit_access_daily``: queries per UTC day, user and table, with
the columns read) and never the raw log, so a rule's numbers are the ones the reports show. A day here
is a UTC day, the rollups' day. The defaults below are the ones `access_flag_setting` starts from:

- ``volume``: on one day a user's queries of one PII table (a table with classified PII columns) exceed
  both ``volume_floor`` (50) and ``volume_k`` (5) × the median of that user's queries of that table on
  the same weekday over the previous ``baseline_days`` (28) days (4 values; a day without queries is 0).
- ``first_access``: a user already seen in the organization on an earlier day reads a PII column of a
  table that none of their earlier reads (in the rollups, so in the retention window) included.
- ``new_actor``: a user id never seen in the organization before (its first day in `audit_user_daily` is
  this day) reads PII columns.
- ``off_hours``: a user reads a PII table outside working hours (``work_start``..``work_end``, 7 to 19,
  in the organization's time zone ``tz``, UTC by default) while none of their PII reads of the previous
  ``baseline_days`` days was. From the rollups' first and last query time of the day: a flag names a time
  at which a query certainly ran (reads between the two are not seen, so some off-hours reads can pass).
- ``bulk_export``: a single query of a PII table returns more than ``bulk_rows`` (10,000) rows, where the
  source records row counts. The rollups hold no row counts: this rule alone reads the day's recorded
  queries, only those above the threshold, through the (org_id, timestamp) index.

Rows of unattributed queries (no user id) are not flagged. Given the same rows, the rules give the same
flags in the same order.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

RULES = ("volume", "first_access", "new_actor", "bulk_export", "off_hours")
_WEEKDAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


@dataclass(frozen=True)
class Thresholds:
    volume_floor: int = 50
    volume_k: Decimal = Decimal(5)
    baseline_days: int = 28
    bulk_rows: int = 10_000
    tz: str = "UTC"
    work_start: int = 7
    work_end: int = 19

    def off_hours(self, ts: datetime) -> datetime | None:
        """``ts`` in the org's time zone when it is outside working hours, else None."""
        local = ts.astimezone(ZoneInfo(self.tz))
        return None if self.work_start <= local.hour < self.work_end else local


@dataclass
class Reads:
    """One user's reads of one table on one day: queries and column names (PII or not)."""

    queries: int = 0
    columns: set[str] = field(default_factory=set)
    first_ts: datetime | None = None
    last_ts: datetime | None = None

    def add_times(self, first: datetime, last: datetime) -> None:
        self.first_ts = first if self.first_ts is None else min(self.first_ts, first)
        self.last_ts = last if self.last_ts is None else max(self.last_ts, last)

    def times(self) -> list[datetime]:
        return [t for t in dict.fromkeys((self.first_ts, self.last_ts)) if t is not None]


@dataclass(frozen=True)
class Flag:
    rule: str
    user_id: str
    table_name: str
    day: date
    columns: tuple[str, ...]
    observed: Decimal
    baseline: Decimal | None
    threshold: Decimal | None
    explanation: str

    @property
    def key(self) -> tuple[str, str, str, date]:
        return (self.rule, self.user_id, self.table_name, self.day)


# (day, user, table) -> reads
Activity = dict[tuple[date, str, str], Reads]
# (user, table) -> columns read before the first evaluated day
Earlier = dict[tuple[str, str], set[str]]


@dataclass
class Bulk:
    """One user's queries of one table on one day that returned more than the threshold's rows."""

    queries: int = 0
    max_rows: int = 0
    columns: set[str] = field(default_factory=set)


Bulks = dict[tuple[date, str, str], Bulk]


def number(value: Decimal) -> str:
    """A figure as a person writes it: 9, 4.5, 0.25 (no trailing zeros, no exponent)."""
    return format(value.normalize(), "f")


def median(values: Iterable[int]) -> Decimal:
    return Decimal(str(statistics.median(values)))


def _qualified(table: str, columns: Iterable[str]) -> str:
    return ", ".join(f"{table}.{c}" for c in columns)


Today = list[tuple[str, str, Reads]]  # one day's (user, table, reads), sorted


def volume(activity: Activity, today: Today, pii: dict[str, set[str]], day: date, t: Thresholds) -> Iterator[Flag]:
    """``volume`` flags of ``day``: see the module text."""
    back = [day - timedelta(days=7 * w) for w in range(1, t.baseline_days // 7 + 1)]
    for user, table, reads in today:
        if table not in pii:
            continue
        usual = median(activity[(b, user, table)].queries if (b, user, table) in activity else 0 for b in back)
        threshold = max(Decimal(t.volume_floor), t.volume_k * usual)
        if reads.queries <= threshold:
            continue
        columns = tuple(sorted(pii[table] & reads.columns))
        what = f"{_qualified(table, columns)} (table {table})" if columns else f"table {table}"
        yield Flag("volume", user, table, day, columns, Decimal(reads.queries), usual, threshold,
                   f"{user} read {what} in {reads.queries} queries on {day}; their {t.baseline_days}-day median "
                   f"for {_WEEKDAYS[day.weekday()]} is {number(usual)}; threshold {number(t.volume_k)}× and at "
                   f"least {t.volume_floor}")


def first_access(today: Today, earlier: Earlier, pii: dict[str, set[str]], first_seen: dict[str, date],
                 day: date) -> Iterator[Flag]:
    """``first_access`` flags of ``day``; ``earlier`` holds each (user, table)'s columns read before ``day``
    (the caller adds ``day``'s reads afterwards)."""
    for user, table, reads in today:
        seen = first_seen.get(user)
        if table not in pii or seen is None or seen >= day:
            continue
        new = sorted(pii[table] & reads.columns - earlier.get((user, table), set()))
        if not new:
            continue
        since = f"in the organization since {seen}"
        yield Flag("first_access", user, table, day, tuple(new), Decimal(reads.queries), None, None,
                   f"{user} read {_qualified(table, new)} on {day} (in {reads.queries} queries), a PII column "
                   f"they had never read before; they are {since}")


def new_actor(today: Today, pii: dict[str, set[str]], first_seen: dict[str, date], day: date) -> Iterator[Flag]:
    """``new_actor`` flags of ``day``: one per PII table the new user id read."""
    for user, table, reads in today:
        if table not in pii or first_seen.get(user) != day:
            continue
        columns = sorted(pii[table] & reads.columns)
        if not columns:
            continue
        yield Flag("new_actor", user, table, day, tuple(columns), Decimal(reads.queries), None, None,
                   f"{user}, never seen in this organization before {day}, read {_qualified(table, columns)} "
                   f"in {reads.queries} queries that day")


def bulk_export(bulks: Bulks, pii: dict[str, set[str]], day: date, t: Thresholds) -> Iterator[Flag]:
    """``bulk_export`` flags of ``day``: one per (user, PII table) with a query above ``bulk_rows`` rows."""
    for (d, user, table), bulk in sorted(bulks.items()):
        if d != day or table not in pii:
            continue
        columns = tuple(sorted(pii[table] & bulk.columns))
        what = f"{_qualified(table, columns)} (table {table})" if columns else f"table {table}"
        yield Flag("bulk_export", user, table, day, columns, Decimal(bulk.max_rows), None, Decimal(t.bulk_rows),
                   f"{user} read {bulk.max_rows:,} rows of {what} in one query on {day} ({bulk.queries} "
                   f"quer{'y' if bulk.queries == 1 else 'ies'} above the threshold that day); threshold "
                   f"{t.bulk_rows:,} rows")


def off_hours(activity: Activity, today: Today, pii: dict[str, set[str]], day: date, t: Thresholds
              ) -> Iterator[Flag]:
    """``off_hours`` flags of ``day``: see the module text."""
    start = day - timedelta(days=t.baseline_days)
    usual = {user for (d, user, table), reads in activity.items()
             if start <= d < day and table in pii and any(t.off_hours(ts) for ts in reads.times())}
    hours = f"{t.work_start:02d}:00–{t.work_end:02d}:00"
    for user, table, reads in today:
        if table not in pii or user in usual:
            continue
        off = [local for ts in reads.times() if (local := t.off_hours(ts)) is not None]
        if not off:
            continue
        columns = tuple(sorted(pii[table] & reads.columns))
        what = f"{_qualified(table, columns)} (table {table})" if columns else f"table {table}"
        at = " and ".join(f"{local:%Y-%m-%d %H:%M}" for local in off)
        yield Flag("off_hours", user, table, day, columns, Decimal(reads.queries), Decimal(0), None,
                   f"{user} read {what} at {at} ({t.tz}), outside working hours {hours} ({reads.queries} queries "
                   f"of the table on {day}); none of their PII reads in the previous {t.baseline_days} days was "
                   "outside working hours")


def evaluate(activity: Activity, earlier: Earlier, pii: dict[str, set[str]], first_seen: dict[str, date],
             first_day: date, last_day: date, t: Thresholds, bulks: Bulks | None = None) -> list[Flag]:
    """Every rule's flags for the days ``first_day``..``last_day`` (inclusive), in a fixed order.

    ``activity`` holds the reads of those days and of the ``baseline_days`` before them; ``earlier`` the
    columns each (user, table) read before ``first_day`` (updated here, day by day)."""
    earlier = {k: set(v) for k, v in earlier.items()}
    by_day: dict[date, Today] = {}
    for (d, user, table), reads in activity.items():
        if first_day <= d <= last_day:
            by_day.setdefault(d, []).append((user, table, reads))
    found: list[Flag] = []
    day = first_day
    while day <= last_day:
        today = sorted(by_day.get(day, []), key=lambda r: (r[0], r[1]))
        found += volume(activity, today, pii, day, t)
        found += first_access(today, earlier, pii, first_seen, day)
        found += new_actor(today, pii, first_seen, day)
        found += bulk_export(bulks or {}, pii, day, t)
        found += off_hours(activity, today, pii, day, t)
        for user, table, reads in today:
            earlier.setdefault((user, table), set()).update(reads.columns)
        day += timedelta(days=1)
    return found
