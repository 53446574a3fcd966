"""Report windows and filters: parsing and validation (DESIGN §5).

A window is half-open, ``[start, end)``, in UTC. Date-only values are read in ``tz``: a date-only
start is the start of that day, a date-only end includes that whole day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from ..audit.extraction import normalize_table_name
from ..errors import BadRequest

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$")
ROLES = ("owner", "admin", "member")
MICROSECOND = timedelta(microseconds=1)

# Reports read whole weeks around the window (a week past its end): a window ending in year 9999 would
# step past the last date Python can hold. No audit trail needs it.
LATEST_END = datetime(9999, 1, 1, tzinfo=UTC)

DATE_HELP = "use YYYY-MM-DD (e.g. 2026-01-01) or an ISO 8601 timestamp (e.g. 2026-01-01T09:00:00Z)"


@dataclass(frozen=True)
class ReportWindow:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    tz: str

    def to_dict(self) -> dict[str, str | None]:
        return {"start": iso_utc(self.start), "end": iso_utc(self.end), "tz": self.tz}

    def utc_day_split(self) -> tuple[date, date, tuple[datetime, datetime], tuple[datetime, datetime]]:
        """Whole UTC days inside the window, and the two partial edges around them.

        Returns ``(first_day, end_day, head, tail)``: days in ``[first_day, end_day)`` are whole
        (read from daily rollups); ``head`` and ``tail`` are half-open ranges read from raw rows
        (empty when ``start == end`` of the range).
        """
        first = self.start.date() if self.start.timetz() == time(0, tzinfo=UTC) else self.start.date() + timedelta(1)
        last = self.end.date()
        first_ts = datetime.combine(first, time(0), UTC)
        last_ts = datetime.combine(last, time(0), UTC)
        if first_ts < last_ts:
            return first, last, (self.start, first_ts), (last_ts, self.end)
        return first, first, (self.start, self.end), (self.end, self.end)


def week_split(first_day: date, end_day: date) -> tuple[date, date]:
    """Whole (Monday-based) weeks inside the days [first_day, end_day): (w0, w1), empty when w0 == w1."""
    w0 = first_day + timedelta(days=(7 - first_day.weekday()) % 7)
    w1 = end_day - timedelta(days=end_day.weekday())
    if w0 >= w1:
        return end_day, end_day
    return w0, w1


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (microseconds shown only when present)."""
    if value is None:
        return None
    text = value.isoformat()
    if text.endswith("+00:00"):  # already UTC (the service's sessions run in UTC): the cheap path
        return text[:-6] + "Z"
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


# Names that are not a place: their meaning depends on the server (``localtime`` is the server's own
# zone, ``posixrules`` the rules POSIX TZ strings fall back to, ``Factory`` a placeholder) or on its
# tzdata build (``posix/…`` and ``right/…`` copies, the latter counting leap seconds). A report must
# mean the same on every installation, so these are refused.
SERVER_DEPENDENT_ZONES = frozenset({"localtime", "posixrules", "factory"})
SERVER_DEPENDENT_PREFIXES = ("posix/", "right/", "systemv/")


@cache
def _zone_names() -> dict[str, str]:
    """IANA zone names by their lowercase form -> the canonical spelling."""
    return {name.lower(): name for name in available_timezones()
            if name.lower() not in SERVER_DEPENDENT_ZONES and not name.lower().startswith(SERVER_DEPENDENT_PREFIXES)}


def canonical_tz(tz: str | None) -> str:
    """The canonical IANA name for ``tz``, matched case-insensitively (``utc`` -> ``UTC``,
    ``europe/paris`` -> ``Europe/Paris``); a name that is not a place is refused with ``invalid_tz``.

    >>> canonical_tz("europe/paris"), canonical_tz(" utc "), canonical_tz(None)
    ('Europe/Paris', 'UTC', 'UTC')
    """
    name = (tz or "UTC").strip()
    canonical = _zone_names().get(name.lower()) if 0 < len(name) <= 64 else None
    if canonical is None:
        if name.lower() in SERVER_DEPENDENT_ZONES or name.lower().startswith(SERVER_DEPENDENT_PREFIXES):
            raise BadRequest(f"invalid tz {tz!r}: a name whose meaning depends on the server is not accepted; "
                             "use an IANA time zone name, e.g. UTC or America/New_York", code="invalid_tz")
        raise BadRequest(f"invalid tz {tz!r}: use an IANA time zone name, e.g. UTC or America/New_York",
                         code="invalid_tz")
    return canonical


def parse_tz(tz: str | None) -> ZoneInfo:
    name = canonical_tz(tz)
    try:
        return ZoneInfo(name)
    except Exception:
        raise BadRequest(f"invalid tz {tz!r}: use an IANA time zone name, e.g. UTC or America/New_York",
                         code="invalid_tz") from None


def _parse_point(name: str, value: str, zone: ZoneInfo, *, is_end: bool) -> datetime:
    text = (value or "").strip()
    try:
        if DATE_RE.match(text):
            day = date.fromisoformat(text)
            point = datetime.combine(day + timedelta(days=1) if is_end else day, time(0), zone)
            return point.astimezone(UTC)
        if TIMESTAMP_RE.match(text):
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            parsed = parsed.astimezone(UTC)
            # A timestamp end is inclusive (like the reference's `<=`): the bound is one microsecond later.
            return parsed + MICROSECOND if is_end else parsed
    except (ValueError, OverflowError):
        pass
    raise BadRequest(f"invalid {name} {value!r}: {DATE_HELP}", code="invalid_date")


def parse_window(start: str, end: str, tz: str | None = "UTC") -> ReportWindow:
    """Parse ``startDate``/``endDate`` in ``tz``.

    >>> w = parse_window("2026-03-01", "2026-03-01")
    >>> (iso_utc(w.start), iso_utc(w.end))
    ('2026-03-01T00:00:00Z', '2026-03-02T00:00:00Z')
    """
    zone = parse_tz(tz)
    lo = _parse_point("startDate", start, zone, is_end=False)
    hi = _parse_point("endDate", end, zone, is_end=True)
    if hi > LATEST_END:
        raise BadRequest(f"invalid endDate {end!r}: reports cover dates up to 9998-12-31", code="invalid_date")
    if lo >= hi:
        raise BadRequest(f"startDate {start!r} is after endDate {end!r}: the start must not be later than the "
                         "end, e.g. startDate=2026-01-01&endDate=2026-03-01", code="invalid_range")
    return ReportWindow(start=lo, end=hi, tz=str(zone.key))


@dataclass(frozen=True)
class ReportFilters:
    user_id: str | None = None
    role: str | None = None
    table: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"userId": self.user_id, "role": self.role, "table": self.table}


def parse_filters(user_id: str | None, role: str | None, table: str | None) -> ReportFilters:
    role_value = (role or "").strip().lower() or None
    if role_value is not None and role_value not in ROLES:
        raise BadRequest(f"invalid role {role!r}: use one of owner, admin, member (e.g. role=admin)",
                         code="invalid_role")
    table_value = normalize_table_name(table) if table and table.strip() else None
    user_value = user_id if user_id not in (None, "") else None
    return ReportFilters(user_id=user_value, role=role_value, table=table_value)


def parse_paging(limit: int | None, offset: int | None, cap: int) -> tuple[int, int]:
    lim = cap if limit is None else limit
    if lim < 1 or lim > cap:
        raise BadRequest(f"invalid limit {limit}: use 1 to {cap} (e.g. limit=100); page with offset",
                         code="invalid_limit")
    off = offset or 0
    if off < 0 or off > 1_000_000_000:
        raise BadRequest(f"invalid offset {offset}: use 0 or more (e.g. offset={cap})", code="invalid_offset")
    return lim, off
