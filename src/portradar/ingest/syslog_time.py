"""Turning log timestamps into UTC microseconds, vectorised.

Syslog's classic ``Nov 26 10:00:00`` has neither year nor zone.  The rules:

* **Zone.**  Times without an offset are local time of the logging host: ``--tz`` names
  its IANA zone; by default the zone of this machine (``TZ``, then ``/etc/localtime``).
  Daylight-saving gaps and overlaps resolve to the earlier instant.
* **Year, by default.**  Each line gets the year that puts it in the twelve months
  before the file's reference time (its modification time, or now for standard input),
  with one day of slack for clock skew.  This handles the December → January rollover
  without any state and works on any chunk alone.  It is wrong only for a log longer
  than a year: give ``--year`` then.
* **Year, explicit.**  ``--year Y`` is the year of the *first* line; the year
  increments every time the month falls back by more than six (December → January),
  carried across chunks.
* **Uptime only** (raw ``dmesg``): boot time is ``--boot-time`` or, by default, the
  reference time minus the largest uptime seen in the first chunk that has one.

>>> import numpy as np
>>> int(days_from_civil(np.array([1970, 2000]), np.array([1, 3]), np.array([1, 1]))[1])
11017
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.errors import InputError
from portradar.ingest import iptables_kernel as k

US_PER_DAY = 86_400_000_000
#: Slack for a reference time slightly behind the log (clock skew, late mtime).
YEAR_SLACK_US = US_PER_DAY


def days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = np.asarray(y, np.int64) - (np.asarray(m) <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    m = np.asarray(m, np.int64)
    mp = np.where(m > 2, m - 3, m + 9)
    doy = (153 * mp + 2) // 5 + np.asarray(d, np.int64) - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def local_zone_name() -> str:
    """IANA name of this machine's zone (``TZ``, ``/etc/timezone``, ``/etc/localtime``)."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        marker = "zoneinfo/"
        if marker in target:
            return target.split(marker, 1)[1]
    except OSError:
        pass
    return "UTC"


def zone(name: str | None) -> ZoneInfo:
    text = name or local_zone_name()
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {text!r}; use an IANA name like Europe/Berlin"
        ) from exc


def local_to_utc(naive_us: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """Convert wall-clock microseconds in ``tz`` to UTC microseconds."""
    if tz.key in ("UTC", "Etc/UTC", "GMT", "Etc/GMT") or naive_us.size == 0:
        return naive_us
    arr = pa.array(naive_us, pa.int64()).view(pa.timestamp("us"))
    aware = pc.assume_timezone(arr, timezone=tz.key, ambiguous="earliest",
                               nonexistent="earliest")
    return np.asarray(aware.view(pa.int64()).to_numpy(zero_copy_only=False), np.int64)


@dataclass
class YearState:
    """What year resolution carries from one chunk to the next."""

    year: int | None = None  # explicit --year: current year
    last_month: int = 0
    boot_us: int | None = None  # raw dmesg boot time, UTC microseconds


@numba.njit(cache=True, nogil=True)
def _days(y, m, d):  # pragma: no cover - jit
    y = y - (1 if m <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@numba.njit(cache=True, nogil=True)
def _month_days(y, m):  # pragma: no cover - jit
    if m == 2:
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        return 29 if leap else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


@numba.njit(cache=True, nogil=True)
def _epochs(fields, ref_year, ref_local_us, explicit, year, last_month):  # pragma: no cover
    """Microseconds for every row: UTC for zoned kinds, wall clock for local ones."""
    n = fields.shape[0]
    ts = np.zeros(n, np.int64)
    bad = np.zeros(n, np.bool_)
    local = np.zeros(n, np.bool_)
    for i in range(n):
        kind = fields[i, k.TK]
        if kind == k.TS_NONE:
            bad[i] = True
            continue
        if kind == k.TS_UPTIME:
            continue
        mo = fields[i, k.MO]
        d = fields[i, k.DY]
        y = fields[i, k.YR]
        if mo < 1 or mo > 12 or d < 1:
            bad[i] = True
            continue
        if kind == k.TS_NO_YEAR:
            if explicit:
                if last_month and mo < last_month - 6:
                    year += 1
                last_month = mo
                y = year
            else:
                y = ref_year
                guess = _days(y, mo, min(d, 28)) * US_PER_DAY + fields[i, k.SOD]
                if guess > ref_local_us + YEAR_SLACK_US:
                    y -= 1
        if d > _month_days(y, mo):
            bad[i] = True
            continue
        base = _days(y, mo, d) * US_PER_DAY + fields[i, k.SOD]
        if kind == k.TS_ABSOLUTE:
            ts[i] = base - fields[i, k.TZ] * 1_000_000
        else:
            ts[i] = base
            local[i] = True
    return ts, bad, local, year, last_month


def resolve(
    fields: np.ndarray,
    *,
    tz: ZoneInfo,
    reference: datetime,
    state: YearState,
    boot_time: datetime | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """UTC microseconds for every row of the kernel's field matrix, and a mask of bad ones."""
    ref_local = reference.astimezone(tz).replace(tzinfo=None)
    ref_us = int((ref_local - datetime(1970, 1, 1)).total_seconds()) * 1_000_000
    explicit = state.year is not None
    ts, bad, local, year, last_month = _epochs(
        fields, ref_local.year, ref_us, explicit, state.year or 0, state.last_month)
    if explicit:
        state.year, state.last_month = int(year), int(last_month)
    if local.any():
        ts[local] = local_to_utc(ts[local], tz)
    uptime = fields[:, k.TK] == k.TS_UPTIME
    if uptime.any():
        up = fields[uptime, k.UP]
        if state.boot_us is None:
            if boot_time is not None:
                state.boot_us = int(boot_time.timestamp() * 1_000_000)
            else:
                state.boot_us = int(reference.timestamp() * 1_000_000) - int(up.max())
        ts[uptime] = state.boot_us + up
    return ts, bad


def reference_time(mtime: datetime | None, given: datetime | None) -> datetime:
    """The "now" of an input: given explicitly, else its mtime, else the wall clock."""
    if given is not None:
        return given if given.tzinfo else given.replace(tzinfo=UTC)
    if mtime is not None:
        return mtime
    return datetime.now(tz=UTC)
