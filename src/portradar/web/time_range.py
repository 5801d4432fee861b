"""The ``since`` / ``until`` parameters: ISO dates and times or durations before the newest
event (``7d``, ``24h``, ``90m``, ``2w``), in event time, never the wall clock.

The default is the last :data:`DEFAULT_DAYS` days of data: a week shows a weekly cycle
whole, as DShield's port pages do.

>>> from datetime import datetime
>>> newest = datetime(2025, 2, 4, 23, 59)
>>> r = resolve("7d", None, newest)
>>> (str(r.since), str(r.until))
('2025-01-28 23:59:00', '2025-02-04 23:59:00.000001')
>>> resolve("2025-01-30", "2025-02-01T00:00:00Z", newest).days
2.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from portradar.web.errors import ApiError

DEFAULT_DAYS = 7
_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: Durations beyond a century are refused (nobody keeps events that long).
MAX_SECONDS = 100 * 366 * 86400
_LOW, _HIGH = datetime(1970, 1, 1), datetime(9999, 1, 1)

SINCE_DOC = "From (ISO date or time, or a duration before the newest event like 7d, 24h)."
UNTIL_DOC = "Up to, excluded (ISO date or time, or a duration before the newest event)."


@dataclass(frozen=True)
class TimeRange:
    """``[since, until)`` in naive UTC (the store's timestamps)."""

    since: datetime
    until: datetime

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    @property
    def first_day(self) -> date:
        return self.since.date()

    @property
    def last_day(self) -> date:
        """The day of the last instant inside the range."""
        return (self.until - timedelta(microseconds=1)).date()


def parse_point(text: str, newest: datetime, name: str) -> datetime:
    t = text.strip()
    m = _RELATIVE.match(t)
    if m:
        seconds = int(m.group(1)) * _UNIT[m.group(2)]
        if seconds > MAX_SECONDS:
            raise ApiError(422, "validation_error", f"{name}: duration too long",
                           {"parameter": name})
        return newest - timedelta(seconds=seconds)
    if len(t) > 40:
        raise ApiError(422, "validation_error", f"{name}: not a date, time or duration",
                       {"parameter": name})
    try:
        value = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"{name}: not an ISO date or time, nor a "
                       "duration like 7d or 24h", {"parameter": name}) from exc
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if not _LOW <= value <= _HIGH:
        raise ApiError(422, "validation_error", f"{name}: out of range (1970-9999)",
                       {"parameter": name})
    return value


def resolve(since: str | None, until: str | None, newest: datetime | None,
            default_days: int = DEFAULT_DAYS) -> TimeRange:
    """The range asked for; defaults end just after the newest event."""
    anchor = newest if newest is not None else _LOW
    end = anchor + timedelta(microseconds=1)
    hi = parse_point(until, anchor, "until") if until else end
    lo = parse_point(since, anchor, "since") if since else hi - timedelta(days=default_days)
    if lo >= hi:
        raise ApiError(422, "validation_error", "since must be before until",
                       {"parameter": "since"})
    return TimeRange(lo, hi)


def iso(value: datetime | date | None) -> str | None:
    """``2024-06-14T10:00:00Z`` (UTC) of a naive-UTC or aware time; a date as a date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.replace(microsecond=0).isoformat() + "Z"
    return value.isoformat()
