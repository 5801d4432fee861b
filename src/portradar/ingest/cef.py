"""Reader of ArcSight Common Event Format (CEF) lines, including Ubiquiti UniFi's.

A CEF record is seven ``|``-separated header fields and an extension of ``key=value``
pairs (Micro Focus, *Implementing ArcSight CEF*, revision 25)::

    CEF:0|Ubiquiti|UniFi Network|9.4.19|201|Threat Detected and Blocked|9|proto=TCP
    src=192.168.100.252 spt=65020 dst=192.168.1.100 dpt=80 ... msg=A network intrusion ...

Header fields escape ``|`` as ``\\|``; extension values run to the next `` key=`` and
escape ``=`` as ``\\=``.  Before ``CEF:`` there may be syslog framing; UniFi also writes
records with ``CEF: 0|`` (a space) and without the ``CEF:`` at all (``0|Ubiquiti|...``),
both read.

**Fields.**  ``src``/``dst`` (or ``sourceAddress``/``destinationAddress``, or the IPv6
``c6a2``/``c6a3``), ``spt``/``dpt``, ``proto`` (``transportProtocol``), ``act``
(``deviceAction``), ``deviceInboundInterface``/``deviceOutboundInterface``, ``in``+``out``
as ``bytes``, ``cnt`` as ``packets``.  The sensor is ``dvchost``, else UniFi's
``UNIFIdeviceName``/``UNIFIhost``, else the syslog host, else ``dvc``.  ``rule`` is the
IPS signature or policy (``UNIFIipsSignature``, ``UNIFIpolicyName``), else the CEF event
name.

**Time**, first found: ``UNIFIutcTime`` (ISO 8601 UTC), ``rt`` (``receiptTime``: epoch
milliseconds, or ``MMM dd yyyy HH:mm:ss``), ``start``, the syslog header.

**Outcome** from ``act`` (blocked, deny, drop ... blocked; reject, reset rejected; allow,
accept, permit, pass accepted), else from the event name (``Threat Detected and
Blocked`` is blocked).

**No destination.**  A record with a destination port but no destination address (UniFi
IPS records sometimes name only the client alias) is kept with the unspecified address
(``0.0.0.0``/``::``) as destination; a record with neither (admin logins, system events)
is skipped as "no destination address".

>>> line = (b"Sep  8 08:32:20 UDM-Gent CEF: 0|Ubiquiti|UniFi Network|9.4.19|201|Threat Detected"
...         b" and Blocked|9|proto=TCP src=192.168.100.252 spt=65020 dst=192.168.1.100 dpt=80 "
...         b"UNIFIhost=UDM-Gent UNIFIipsSignature=ET USER_AGENTS Suspicious User Agent "
...         b"(BlackSun) UNIFIutcTime=2025-09-08T06:32:20.613Z msg=A network intrusion\\n")
>>> row = CefReader().parse_bytes(line).to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["dport"], row["outcome"]
('2025-09-08T06:32:20.613000+00:00', 'UDM-Gent', 80, 'blocked')
>>> row["rule"]
'ET USER_AGENTS Suspicious User Agent (BlackSun)'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from portradar.ingest.polars_lines import (
    PolarsLineReader,
    first_present,
    outcome_from_words,
    proto_number,
    unspecified_like,
)
from portradar.ingest.reader import ReadOptions
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_header import TIME_COLUMNS, with_header, with_time
from portradar.ingest.text_fields import (
    KeyValueStyle,
    delimited_spans,
    key_values,
    relative,
    string_buffers,
    strings,
)

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

#: Where the record starts (the text before it is syslog framing); UniFi also writes
#: ``CEF: 0|`` and a bare ``0|`` at the start of the line.
TAG = r"CEF: ?\d+\||^\d+\|"

#: Extension keys read → column name; the first of several spellings found wins.
KEYS = {
    "src": ("src", "sourceAddress", "c6a2"),
    "dst": ("dst", "destinationAddress", "c6a3"),
    "spt": ("spt", "sourcePort"),
    "dpt": ("dpt", "destinationPort"),
    "proto": ("proto", "transportProtocol"),
    "act": ("act", "deviceAction"),
    "in_if": ("deviceInboundInterface",),
    "out_if": ("deviceOutboundInterface",),
    "bytes_in": ("in", "bytesIn"),
    "bytes_out": ("out", "bytesOut"),
    "cnt": ("cnt", "baseEventCount"),
    "dvchost": ("dvchost", "deviceHostName"),
    "dvc": ("dvc", "deviceAddress"),
    "unifi_device": ("UNIFIdeviceName",),
    "unifi_host": ("UNIFIhost",),
    "signature_name": ("UNIFIipsSignature",),
    "policy_name": ("UNIFIpolicyName",),
    "utc_time": ("UNIFIutcTime",),
    "rt": ("rt", "receiptTime"),
    "start": ("start", "startTime"),
}


def unescape(text: pl.Expr, escaped: bool = True) -> pl.Expr:
    """A CEF value with ``\\=``, ``\\|`` and ``\\\\`` unescaped; empty is null.

    ``escaped=False`` (no backslash anywhere in the chunk) skips the regex.
    """
    text = text.str.strip_chars()
    return first_present(text.str.replace_all(r"\\([=|\\])", "$1") if escaped else text)


@register_reader
class CefReader(PolarsLineReader):
    """ArcSight CEF records (any vendor; Ubiquiti UniFi firewall/IPS records included)."""

    name: ClassVar[str] = "cef"
    sniff_pattern: ClassVar[re.Pattern[bytes]] = re.compile(
        rb"(?:CEF: ?|^)\d+(?:\|(?:[^|\\]|\\.)*){6}\|")

    def parse_frame(self, lines: pl.Series, options: ReadOptions) -> pl.DataFrame:
        frame = with_header(lines.to_frame(), TAG).drop("line", "before_marker")
        arr = string_buffers(lines.to_arrow())[0]
        starts, ends = delimited_spans(arr, frame["marker_pos"].fill_null(-1).to_numpy(), 8,
                                       sep="|", quote=None, escape="\\")
        spellings = [key for keys in KEYS.values() for key in keys]
        escaped = bool(lines.str.contains("\\", literal=True).any())
        pairs = key_values(arr, spellings, KeyValueStyle(to_next_key=True),
                           start=relative(arr, starts[:, 7]))
        frame = frame.with_columns(
            [strings(arr, starts[:, 0], ends[:, 0]).alias("version"),
             unescape(pl.lit(strings(arr, starts[:, 5], ends[:, 5])), escaped)
             .alias("event_name"),
             pl.Series("has_ext", starts[:, 7] >= 0)]
            + [unescape(pl.coalesce([pl.Series(pairs[k]).cast(pl.String) for k in keys]),
                        escaped).alias(f"x_{col}") for col, keys in KEYS.items()])
        epoch = r"^\d{10,13}$"

        def epoch_us(col: str) -> pl.Expr:
            v = pl.col(col)
            n = v.cast(pl.Int64, strict=False)
            return pl.when(v.str.contains(epoch)).then(
                pl.when(n >= 10**11).then(n * 1000).otherwise(n * 1_000_000))

        frame = frame.with_columns(
            epoch_us=pl.when(pl.col("x_utc_time").is_not_null()).then(None)
            .when(pl.col("x_rt").is_not_null()).then(epoch_us("x_rt"))
            .otherwise(epoch_us("x_start")),
            _ts=pl.coalesce(
                "x_utc_time",
                pl.when(~pl.col("x_rt").str.contains(epoch)).then(pl.col("x_rt")),
                pl.when(~pl.col("x_start").str.contains(epoch)).then(pl.col("x_start"))),
        )
        timed = with_time(frame, "_ts").drop("_ts")
        # a time in the record wins over the syslog header's
        has = (timed["ts_kind"] != 0).to_numpy()
        frame = timed.with_columns([pl.Series(c, np.where(has, timed[c].to_numpy(),
                                                          frame[c].to_numpy()))
                                    for c in TIME_COLUMNS])
        return _events(frame)


def _events(frame: pl.DataFrame) -> pl.DataFrame:
    i64 = pl.Int64

    def x(col: str) -> pl.Expr:
        return pl.col(f"x_{col}")

    act = x("act")
    outcome = pl.when(act.is_not_null()).then(outcome_from_words(act)) \
        .otherwise(outcome_from_words(pl.col("event_name")))
    dport = x("dpt").cast(i64, strict=False)
    no_dst = x("dst").is_null() & dport.is_not_null() & x("src").is_not_null()
    reason = pl.when(~pl.col("version").str.contains(r"^(?:CEF: ?)?\d+$").fill_null(False)
                     | ~pl.col("has_ext")).then(pl.lit("not a CEF record"))
    nbytes = pl.when(x("bytes_in").is_not_null() | x("bytes_out").is_not_null()).then(
        x("bytes_in").cast(i64, strict=False).fill_null(0)
        + x("bytes_out").cast(i64, strict=False).fill_null(0))
    return frame.with_columns(
        reason=reason,
        host=first_present(x("dvchost"), x("unifi_device"), x("unifi_host"), pl.col("host"),
                           x("dvc")),
        src=x("src"),
        dst=pl.when(no_dst).then(unspecified_like(x("src"))).otherwise(x("dst")),
        proto=proto_number(x("proto")),
        sport=x("spt").cast(i64, strict=False),
        dport=dport,
        outcome=outcome,
        rule=first_present(x("signature_name"), x("policy_name"), pl.col("event_name")),
        in_iface=x("in_if"),
        out_iface=x("out_if"),
        bytes=nbytes,
        packets=x("cnt").cast(i64, strict=False),
    )
