"""Syslog framing and timestamps as Polars expressions, for the vendor log readers.

Firewalls reach a log file through many hands: the device's own syslog client, a relay
(rsyslog, syslog-ng, a SIEM forwarder) that may add its own header in front, or a file
export.  What comes before the vendor's own text (``%ASA-6-302013:``, ``RT_FLOW_``,
``NetScreen device_id=``, ``CEF:0|`` ...) is therefore some mix of ``<PRI>``, the
RFC 5424 version digit, one or two timestamps and host names.  :func:`with_header`
reads that prefix and keeps the **last** timestamp in it (the one nearest the message,
written by the device itself when a relay added a second one) and the token right
after it as the host.

Timestamps understood (:data:`TIMESTAMP`):

* RFC 3164 ``Jun  2 14:53:31`` (no year: resolved like every syslog reader, see
  :mod:`portradar.ingest.syslog_time`), with optional year ``Jun 21 2023 10:00:00``
  (Cisco ``logging timestamp``) and fraction ``Jan 24 11:28:30.407``;
* ISO 8601 / RFC 5424 ``2023-03-18T20:35:05.734637+01:00`` (``Z``, ``+0100``, or no
  offset: local time), also with a space for ``T``;
* ``2023/07/06 08:11:40`` (PAN-OS) through :func:`with_time` only.

Times without an offset are local time of the zone ``--tz`` names (default: this
machine's); the conversion itself is :func:`portradar.ingest.syslog_time.resolve`, shared
with the iptables reader so every text format resolves years and zones the same way.

>>> frame = pl.DataFrame({"head": ["Jun 21 10:00:01 relay Jun 21 2023 10:00:00 fw1 : ",
...                                "<14>1 2023-06-21T10:00:00.5+02:00 srx1 RT_FLOW - "]})
>>> frame = with_time(with_header(frame, "head"), "ts_text")
>>> frame.select("host", "ts_kind", "year", "sod_us", "tz_s").rows()
[('fw1', 3, 2023, 36000000000, 0), ('srx1', 2, 2023, 36000500000, 7200)]
"""

from __future__ import annotations

import numpy as np
import polars as pl

from portradar.ingest import iptables_kernel as k
from portradar.ingest.reader import ReadOptions
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = "(?:" + "|".join(MONTHS) + ")"

#: A timestamp as it appears in a syslog header (ISO 8601 or RFC 3164, optional year).
TIMESTAMP = (
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
    rf"|{_MONTH} {{1,2}}\d{{1,2}}(?: \d{{4}})? \d{{2}}:\d{{2}}:\d{{2}}(?:\.\d{{1,6}})?"
)

#: The last timestamp of a header and the token after it (the host), if any.
HEADER = rf"^(?:.*[\s>|*])?(?P<ts_text>{TIMESTAMP})(?:[\s:|]+(?P<host>[^\s:|\[\]]+))?"

_PARTS = (
    r"^\s*(?:(?P<y>\d{4})[-/](?P<mo>\d{1,2})[-/](?P<d>\d{1,2})"
    rf"|(?P<mon>{_MONTH}) {{1,2}}(?P<d2>\d{{1,2}})(?: (?P<y2>\d{{4}}))?)"
    r"[T ]+(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}:?\d{2})?\s*$"
)

_TZ = r"^(?:(?P<z>Z|UTC|GMT)|(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2}))$"


def with_header(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Add ``ts_text`` and ``host`` read from the syslog header text in ``column``."""
    parts = pl.col(column).str.extract_groups(HEADER)
    frame = frame.with_columns(_hdr=parts)
    host = pl.col("_hdr").struct.field("host")
    return frame.with_columns(
        ts_text=pl.col("_hdr").struct.field("ts_text"),
        host=pl.when(host == "-").then(None).otherwise(host),
    ).drop("_hdr")


def tz_seconds(text: pl.Expr) -> pl.Expr:
    """Seconds east of UTC of ``Z``, ``UTC``, ``+02:00`` or ``-0430``; null otherwise."""
    g = text.str.strip_chars().str.extract_groups(_TZ)
    hh = g.struct.field("hh").cast(pl.Int64, strict=False)
    mm = g.struct.field("mm").cast(pl.Int64, strict=False)
    sign = pl.when(g.struct.field("sign") == "-").then(-1).otherwise(1)
    return (
        pl.when(g.struct.field("z").is_not_null()).then(pl.lit(0, pl.Int64))
        .otherwise(sign * (hh * 3600 + mm * 60))
    )


def with_time(frame: pl.DataFrame, column: str, tz_column: str | None = None) -> pl.DataFrame:
    """Add the time parts :func:`resolve_times` needs, read from the text in ``column``.

    ``tz_column`` names an offset given apart from the time (FortiGate's ``tz="+0200"``);
    an offset inside the timestamp wins over it.  Adds ``ts_kind`` (the
    ``iptables_kernel.TS_*`` codes), ``year``, ``month``, ``day``, ``sod_us``,
    ``tz_s`` and ``clock_ok``.
    """
    frame = frame.with_columns(_tp=pl.col(column).str.extract_groups(_PARTS))
    f = pl.col("_tp").struct.field
    i64 = pl.Int64
    month_names = {m: i + 1 for i, m in enumerate(MONTHS)}
    frame = frame.with_columns(
        _y=pl.coalesce(f("y"), f("y2")).cast(i64, strict=False),
        _mo=pl.coalesce(
            f("mo").cast(i64, strict=False),
            f("mon").replace_strict(month_names, default=None, return_dtype=i64),
        ),
        _d=pl.coalesce(f("d"), f("d2")).cast(i64, strict=False),
        _h=f("H").cast(i64, strict=False),
        _mi=f("M").cast(i64, strict=False),
        _s=f("S").cast(i64, strict=False),
        _f=f("f").str.slice(0, 6).str.pad_end(6, "0").cast(i64, strict=False).fill_null(0),
        _tz=tz_seconds(f("tz")),
    )
    if tz_column is not None:
        frame = frame.with_columns(_tz=pl.coalesce(pl.col("_tz"), tz_seconds(pl.col(tz_column))))
    matched = pl.col("_h").is_not_null()
    kind = (
        pl.when(~matched).then(k.TS_NONE)
        .when(pl.col("_y").is_null()).then(k.TS_NO_YEAR)
        .when(pl.col("_tz").is_not_null()).then(k.TS_ABSOLUTE)
        .otherwise(k.TS_LOCAL)
    )
    return frame.with_columns(
        ts_kind=kind.cast(pl.Int8),
        year=pl.col("_y").fill_null(0),
        month=pl.col("_mo").fill_null(0),
        day=pl.col("_d").fill_null(0),
        sod_us=((pl.col("_h") * 3600 + pl.col("_mi") * 60 + pl.col("_s")) * 1_000_000
                + pl.col("_f")).fill_null(0),
        tz_s=pl.col("_tz").fill_null(0),
        clock_ok=~matched | ((pl.col("_h") < 24) & (pl.col("_mi") < 60) & (pl.col("_s") < 61)),
    ).drop("_tp", "_y", "_mo", "_d", "_h", "_mi", "_s", "_f", "_tz")


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
    bad = bad | ~frame["clock_ok"].to_numpy()
    if "epoch_us" in frame.columns:
        epoch = frame["epoch_us"]
        has = epoch.is_not_null().to_numpy()
        ts = np.where(has, epoch.fill_null(0).to_numpy(), ts)
        missing &= ~has
        bad &= ~has
    return ts.astype(np.int64), missing, bad & ~missing
