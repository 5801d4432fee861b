"""Syslog framing and timestamps of vendor log lines, read by a compiled (numba) kernel.

Firewalls reach a log file through many hands: the device's own syslog client, a relay
(rsyslog, syslog-ng, a SIEM forwarder) that may add its own header in front, or a file
export.  What comes before the vendor's own text (``%ASA-6-302013:``, ``RT_FLOW_``,
``NetScreen device_id=``, ``CEF:0|`` ...) is therefore some mix of ``<PRI>``, the
RFC 5424 version digit, one or two timestamps and host names.  :func:`with_header`
reads that prefix and keeps the **last** timestamp in it (the one nearest the message,
written by the device itself when a relay added a second one), the token right after
it as the host, and the token right before the vendor text (ScreenOS' device name).

Timestamps understood, at the start of any token:

* RFC 3164 ``Jun  2 14:53:31`` (no year: resolved like every syslog reader, see
  :mod:`portradar.ingest.syslog_time`), with optional year ``Jun 21 2023 10:00:00``
  (Cisco ``logging timestamp``) and fraction ``Jan 24 11:28:30.407``;
* ISO 8601 / RFC 5424 ``2023-03-18T20:35:05.734637+01:00`` (``Z``, ``+0100``, ``+01``,
  or no offset: local time), with a space for ``T``, and ``2023/07/06 08:11:40``
  (PAN-OS).

A date or time out of range (month 13, hour 25) is a *bad* timestamp, reported as such.
Times without an offset are local time of the zone ``--tz`` names (default: this
machine's); the conversion is :func:`portradar.ingest.syslog_time.resolve`, shared with
the iptables reader, so every text format resolves years and zones the same way.

Why a kernel: the same work as Polars expressions (a search for the last timestamp,
a split, four ``strptime`` formats) costs several passes over every line, each copying
strings; the kernel reads each header byte once.

>>> frame = pl.DataFrame({"line": ["Jun 21 10:00:01 relay Jun 21 2023 10:00:00 fw1 : %X",
...                                "<14>1 2023-06-21T10:00:00.5+02:00 srx1 RT_FLOW - %X"]})
>>> frame = with_header(frame, "%X")
>>> frame.select("host", "ts_kind", "year", "sod_us", "tz_s").rows()
[('fw1', 3, 2023, 36000000000, 0), ('srx1', 2, 2023, 36000500000, 7200)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np
import pyarrow as pa

from portradar.ingest import iptables_kernel as k
from portradar.ingest.reader import ReadOptions
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone
from portradar.ingest.text_fields import span_strings, string_buffers

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_CODES = np.array([(ord(m[0]) << 16) | (ord(m[1]) << 8) | ord(m[2]) for m in MONTHS],
                        np.int64)

#: Columns of the kernel's output matrix.
_KIND, _YEAR, _MON, _DAY, _SOD, _TZ, _BAD, _HS, _HE, _LS, _LE = range(11)
_NOUT = 11

#: Time columns :func:`with_header` and :func:`with_time` add to a frame.
TIME_COLUMNS = ("ts_kind", "year", "month", "day", "sod_us", "tz_s", "ts_bad")


@numba.njit(cache=True, inline="always")
def _num(data, p, e, width):  # pragma: no cover - jit
    """Exactly ``width`` digits at p: (value, p + width), or (-1, p)."""
    if p + width > e:
        return -1, p
    v = 0
    for i in range(p, p + width):
        c = data[i]
        if c < 48 or c > 57:
            return -1, p
        v = v * 10 + c - 48
    return v, p + width


@numba.njit(cache=True)
def _clock(data, p, e, out):  # pragma: no cover - jit
    """``[H]H:MM:SS[.frac]`` at p into out[_SOD]; return the end or -1."""
    h, q = _num(data, p, e, 2)
    if h < 0:
        h, q = _num(data, p, e, 1)
    if h < 0 or q >= e or data[q] != 58:
        return -1
    m, q = _num(data, q + 1, e, 2)
    if m < 0 or q >= e or data[q] != 58:
        return -1
    s, q = _num(data, q + 1, e, 2)
    if s < 0:
        return -1
    us = 0
    if q + 1 < e and (data[q] == 46 or data[q] == 44) and 48 <= data[q + 1] <= 57:
        q += 1
        nd = 0
        while q < e and 48 <= data[q] <= 57:
            if nd < 6:
                us = us * 10 + data[q] - 48
            nd += 1
            q += 1
        while nd < 6:
            us *= 10
            nd += 1
    if h > 23 or m > 59 or s > 60:
        out[_BAD] = 1
    out[_SOD] = ((h * 60 + m) * 60 + s) * 1_000_000 + us
    return q


@numba.njit(cache=True)
def _offset(data, p, e, out):  # pragma: no cover - jit
    """``Z``, ``+HH:MM``, ``+HHMM`` or ``+HH`` at p into out[_TZ]; the end, or -1."""
    if p >= e:
        return -1
    c = data[p]
    if c == 90:
        out[_TZ] = 0
        return p + 1
    if c != 43 and c != 45:
        return -1
    hh, q = _num(data, p + 1, e, 2)
    if hh < 0:
        return -1
    mm = 0
    if q < e and data[q] == 58:
        mm, q = _num(data, q + 1, e, 2)
        if mm < 0:
            return -1
    else:
        v, r = _num(data, q, e, 2)
        if v >= 0:
            mm, q = v, r
    out[_TZ] = (hh * 3600 + mm * 60) * (1 if c == 43 else -1)
    return q


@numba.njit(cache=True)
def _timestamp(data, p, e, out, tmp):  # pragma: no cover - jit
    """A timestamp starting at p into ``out``; return its end, or -1 (``out`` untouched).

    ``tmp`` is scratch space of ``_NOUT`` integers.
    """
    tmp[:] = 0
    c = data[p]
    if 48 <= c <= 57:  # YYYY-MM-DD or YYYY/MM/DD
        y, q = _num(data, p, e, 4)
        if y < 0 or q >= e or (data[q] != 45 and data[q] != 47):
            return -1
        sep = data[q]
        mo, q = _num(data, q + 1, e, 2)
        if mo < 0 or q >= e or data[q] != sep:
            return -1
        d, q = _num(data, q + 1, e, 2)
        if d < 0 or q >= e or (data[q] != 84 and data[q] != 32):
            return -1
        q = _clock(data, q + 1, e, tmp)
        if q < 0:
            return -1
        tmp[_KIND] = k.TS_LOCAL
        z = _offset(data, q, e, tmp)
        if z >= 0:
            tmp[_KIND] = k.TS_ABSOLUTE
            q = z
    elif 65 <= c <= 90:  # Mmm [D]D [YYYY] HH:MM:SS
        if p + 4 > e or data[p + 3] != 32:
            return -1
        code = (np.int64(data[p]) << 16) | (np.int64(data[p + 1]) << 8) | np.int64(data[p + 2])
        mo = 0
        for i in range(12):
            if _MONTH_CODES[i] == code:
                mo = i + 1
        if mo == 0:
            return -1
        q = p + 4
        while q < e and data[q] == 32:
            q += 1
        d, r = _num(data, q, e, 2)
        if d < 0:
            d, r = _num(data, q, e, 1)
        if d < 0 or r >= e or data[r] != 32:
            return -1
        q = r + 1
        y, r = _num(data, q, e, 4)
        if y >= 0 and r < e and data[r] == 32:
            q = r + 1
            tmp[_KIND] = k.TS_LOCAL
        else:
            y = 0
            tmp[_KIND] = k.TS_NO_YEAR
        q = _clock(data, q, e, tmp)
        if q < 0:
            return -1
    else:
        return -1
    if mo < 1 or mo > 12 or d < 1 or d > 31:
        tmp[_BAD] = 1
    for i in range(_HS):
        out[i] = tmp[i]
    out[_YEAR] = y
    out[_MON] = mo
    out[_DAY] = d
    return q


@numba.njit(cache=True, inline="always")
def _separator(c):  # pragma: no cover - jit
    return c == 32 or c == 124 or c == 62 or c == 42 or c == 91 or c == 9


@numba.njit(cache=True, parallel=True, nogil=True)
def _headers(data, offsets, marker):  # pragma: no cover - jit
    """Per line: last timestamp before ``marker`` (-1: the whole line), host, last token."""
    n = offsets.shape[0] - 1
    out = np.zeros((n, _NOUT), np.int64)
    for row in numba.prange(n):
        o = out[row]
        tmp = np.zeros(_NOUT, np.int64)
        o[_HS] = -1
        o[_HE] = -1
        o[_LS] = -1
        o[_LE] = -1
        s = offsets[row]
        e = offsets[row + 1] if marker[row] < 0 else s + marker[row]
        p = s
        ts_end = -1
        while p < e:
            if p == s or _separator(data[p - 1]):
                q = _timestamp(data, p, e, o, tmp)
                if q >= 0:
                    ts_end = q
                    p = q
                    continue
            p += 1
        # the host: the token after the last timestamp
        if ts_end >= 0:
            p = ts_end
            while p < e and (data[p] == 32 or data[p] == 58 or data[p] == 124):
                p += 1
            q = p
            while q < e and data[q] != 32 and data[q] != 58 and data[q] != 124:
                q += 1
            if q > p and not (q == p + 1 and data[p] == 45):
                o[_HS] = p
                o[_HE] = q
        # the token just before the marker, without a trailing colon
        if marker[row] >= 0:
            q = e
            while q > s and (data[q - 1] == 32 or data[q - 1] == 58):
                q -= 1
            p = q
            while p > s and data[p - 1] != 32:
                p -= 1
            if q > p:
                o[_LS] = p
                o[_LE] = q
    return out


def _parse(values: pa.Array | pa.ChunkedArray,
           marker: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    arr, offsets, data = string_buffers(values)
    return _headers(data, offsets, np.asarray(marker, np.int64)), arr


def _time_frame(out: np.ndarray) -> dict[str, np.ndarray]:
    return {"ts_kind": out[:, _KIND].astype(np.int8), "year": out[:, _YEAR],
            "month": out[:, _MON], "day": out[:, _DAY], "sod_us": out[:, _SOD],
            "tz_s": out[:, _TZ], "ts_bad": out[:, _BAD].astype(bool)}


def with_header(frame: pl.DataFrame, marker: str, column: str = "line") -> pl.DataFrame:
    """Add the time columns, ``host``, ``before_marker`` and ``marker_pos`` (bytes, null
    when the marker is absent), reading the header before the first match of ``marker``.
    """
    pos = frame[column].str.find(marker)
    marker_pos = pos.fill_null(-1).to_numpy().astype(np.int64)
    out, arr = _parse(frame[column].to_arrow(), marker_pos)
    columns = _time_frame(out)
    host = pl.Series("host", span_strings(arr, out[:, _HS], out[:, _HE])).cast(pl.String)
    last = pl.Series("before_marker", span_strings(arr, out[:, _LS], out[:, _LE]))
    return frame.with_columns(
        [pl.Series(name, values) for name, values in columns.items()]
        + [host, last.cast(pl.String), pos.alias("marker_pos")])


def with_time(frame: pl.DataFrame, column: str, tz_column: str | None = None) -> pl.DataFrame:
    """Add (replace) the time columns from the timestamp text in ``column``.

    ``tz_column`` names an offset given apart from the time (FortiGate's ``tz="+0200"``);
    an offset inside the timestamp wins over it.
    """
    text = frame[column]
    if tz_column is not None:
        text = frame.select(pl.concat_str(pl.col(column), pl.col(tz_column).str.strip_chars(),
                                          ignore_nulls=True)).to_series()
    out, _ = _parse(text.to_arrow(), np.full(len(text), -1, np.int64))
    return frame.with_columns([pl.Series(n, v) for n, v in _time_frame(out).items()])


def resolve_times(frame: pl.DataFrame, options: ReadOptions,
                  state: YearState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UTC microseconds of every row, and masks of rows with no time and a bad time.

    Uses the columns :func:`with_time` adds; a non-null ``epoch_us`` column (a reader
    that found an epoch time, such as FortiGate's ``eventtime``) wins over them.
    """
    n = frame.height
    fields = np.zeros((n, k.NCOL), np.int64)
    fields[:, k.TK] = frame["ts_kind"].to_numpy()
    fields[:, k.YR] = frame["year"].to_numpy()
    fields[:, k.MO] = frame["month"].to_numpy()
    fields[:, k.DY] = frame["day"].to_numpy()
    fields[:, k.SOD] = frame["sod_us"].to_numpy()
    fields[:, k.TZ] = frame["tz_s"].to_numpy()
    ts, bad = resolve(fields, tz=zone(options.tz),
                      reference=reference_time(None, options.reference_time), state=state)
    missing = fields[:, k.TK] == k.TS_NONE
    bad = bad | frame["ts_bad"].to_numpy()
    if "epoch_us" in frame.columns:
        epoch = frame["epoch_us"]
        has = epoch.is_not_null().to_numpy()
        ts = np.where(has, epoch.fill_null(0).to_numpy(), ts)
        missing &= ~has
        bad &= ~has
    return ts.astype(np.int64), missing, bad & ~missing
