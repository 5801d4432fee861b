"""Reader of Fortinet FortiGate (FortiOS) traffic logs and IPS/anomaly logs, key=value.

FortiOS writes every log as ``key=value`` pairs, values quoted when they are strings
(FortiOS *Log Message Reference*, "Traffic log", log ids 0000000013 forward, 0000000011
local ...)::

    date=2023-06-21 time=10:00:00 devname="FGT60E" devid="FGT60E4Q16000000"
    eventtime=1687334400123456789 tz="+0200" logid="0000000013" type="traffic"
    subtype="forward" level="notice" vd="root" srcip=198.51.100.7 srcport=4444
    srcintf="wan1" dstip=192.0.2.10 dstport=445 dstintf="internal" proto=6
    action="deny" policyid=0 policytype="policy" service="SMB" sentbyte=0 rcvdbyte=0

Keys are read one by one (any order, quoted or not, FortiOS 5 wrote them unquoted).

**Time.**  ``eventtime`` (epoch, FortiOS 6.2+: nanoseconds; earlier: seconds; the unit
is told by magnitude) is the event time; without it, ``date`` and ``time`` in the zone
of ``tz="+0200"`` when present, else local time of ``--tz``.

**Mapping.**  Sensor ``devname`` (else the syslog host); ``in_iface``/``out_iface`` are
``srcintf``/``dstintf``; ``rule`` is ``policyname``, else the ``policyid`` (0 is the
implicit deny); ``bytes`` is ``sentbyte + rcvdbyte`` and ``packets`` ``sentpkt +
rcvdpkt`` when non-zero; ICMP keeps ``icmptype``/``icmpcode`` (hex) and drops the ports.

**Outcome** of ``type="traffic"`` from ``action``: ``deny`` (and ``blocked``, ``drop``)
blocked; ``accept``/``start`` accepted; ``close`` established; ``timeout`` established,
or unanswered when nothing came back (``rcvdbyte`` 0); ``server-rst`` rejected when the
server sent at most one packet (the reset) and established otherwise; ``client-rst``
established; ``ip-conn`` (no route/ARP reply) unanswered.  ``type="utm"`` with subtype
``ips`` or ``anomaly`` (DoS sensors, which log ``tcp_port_scan`` and floods) is read
too: ``rule`` is the ``attack`` name, ``dropped``/``blocked``/``clear_session`` blocked,
``reset`` rejected, ``detected``/``pass``/``monitored`` accepted.

Skipped: other log types (``event``, other ``utm`` subtypes; the reason names them) and
lines that are not FortiOS key=value logs.

>>> line = (b'date=2023-06-21 time=10:00:00 devname="FGT60E" tz="+0200" type="traffic" '
...         b'subtype="forward" srcip=198.51.100.7 srcport=4444 srcintf="wan1" '
...         b'dstip=192.0.2.10 dstport=445 dstintf="internal" proto=6 action="deny" '
...         b'policyid=0 sentbyte=0 rcvdbyte=0\\n')
>>> row = FortigateReader().parse_bytes(line).to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["dport"], row["outcome"], row["rule"]
('2023-06-21T08:00:00+00:00', 'FGT60E', 445, 'blocked', '0')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from portradar.events.schema import Outcome
from portradar.ingest.polars_lines import PolarsLineReader, first_present, proto_number
from portradar.ingest.reader import ReadOptions
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_header import TIME_COLUMNS, with_header, with_time
from portradar.ingest.text_fields import KeyValueStyle, key_values, string_buffers

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

#: Where the key=value list starts (the text before it is syslog framing).
TAG = r"(?:^|[\s>])(?:date|itime|logver|devname|logid)="

#: Keys read (value quoted or bare).
KEYS = ("date", "time", "tz", "eventtime", "devname", "type", "subtype", "srcip", "srcport",
        "srcintf", "dstip", "dstport", "dstintf", "proto", "action", "policyid", "policyname",
        "sentbyte", "rcvdbyte", "sentpkt", "rcvdpkt", "icmptype", "icmpcode", "attack")

_UTM_READ = ("ips", "anomaly")


def epoch_us(text: pl.Expr) -> pl.Expr:
    """Microseconds from an epoch number in s, ms, µs or ns (told by magnitude)."""
    v = text.cast(pl.Int64, strict=False)
    return (pl.when(v >= 10**17).then(v // 1000)
            .when(v >= 10**14).then(v)
            .when(v >= 10**11).then(v * 1000)
            .otherwise(v * 1_000_000))


def hex_or_int(text: pl.Expr) -> pl.Expr:
    """``0x08`` or ``8`` as an integer."""
    t = text.str.strip_chars().str.to_lowercase()
    return pl.when(t.str.starts_with("0x")).then(
        t.str.strip_prefix("0x").str.to_integer(base=16, strict=False)
    ).otherwise(t.cast(pl.Int64, strict=False))


@register_reader
class FortigateReader(PolarsLineReader):
    """Fortinet FortiGate traffic and IPS/anomaly logs (key=value)."""

    name: ClassVar[str] = "fortigate"
    sniff_pattern: ClassVar[re.Pattern[bytes]] = re.compile(
        rb"(?:^|[\s>])date=\d{4}-\d{2}-\d{2} +time=\d{2}:\d{2}:\d{2}\b.*\b(?:devname|devid|logid)=")

    def parse_frame(self, lines: pl.Series, options: ReadOptions) -> pl.DataFrame:
        frame = with_header(lines.to_frame(), TAG).drop("line", "before_marker")
        arr = string_buffers(lines.to_arrow())[0]
        pairs = key_values(arr, list(KEYS), KeyValueStyle(),
                           start=frame["marker_pos"].fill_null(-1).to_numpy())
        frame = frame.with_columns([
            first_present(pl.lit(pl.Series(values).cast(pl.String))).alias(f"k_{key}")
            for key, values in pairs.items()])
        date_time = pl.concat_str("k_date", pl.lit(" "), "k_time")
        frame = frame.with_columns(_dt=date_time, epoch_us=epoch_us(pl.col("k_eventtime")))
        timed = with_time(frame, "_dt", tz_column="k_tz").drop("_dt")
        # date= time= when present, else the syslog header's time
        has = (timed["ts_kind"] != 0).to_numpy()
        frame = timed.with_columns([pl.Series(c, np.where(has, timed[c].to_numpy(),
                                                          frame[c].to_numpy()))
                                    for c in TIME_COLUMNS])
        return _events(frame)


def _events(frame: pl.DataFrame) -> pl.DataFrame:
    i64 = pl.Int64

    def k(name: str) -> pl.Expr:
        return pl.col(f"k_{name}")

    def num(name: str) -> pl.Expr:
        return k(name).cast(i64, strict=False)

    kind = k("type").fill_null("").str.to_lowercase()
    subtype = k("subtype").fill_null("").str.to_lowercase()
    action = k("action").fill_null("").str.to_lowercase()
    utm = (kind == "utm") & subtype.is_in(list(_UTM_READ))
    proto = proto_number(k("proto"))
    icmp = proto.is_in([1, 58])
    traffic_outcome = (
        pl.when(action.is_in(["deny", "blocked", "block", "drop", "dropped"]))
        .then(int(Outcome.BLOCKED))
        .when(action.is_in(["accept", "start"])).then(int(Outcome.ACCEPTED))
        .when(action == "close").then(int(Outcome.ESTABLISHED))
        .when(action == "timeout").then(
            pl.when(num("rcvdbyte") == 0).then(int(Outcome.UNANSWERED))
            .otherwise(int(Outcome.ESTABLISHED)))
        .when(action == "server-rst").then(
            pl.when(num("rcvdpkt").fill_null(0) <= 1).then(int(Outcome.REJECTED))
            .otherwise(int(Outcome.ESTABLISHED)))
        .when(action == "client-rst").then(int(Outcome.ESTABLISHED))
        .when(action == "ip-conn").then(int(Outcome.UNANSWERED))
        .otherwise(int(Outcome.UNKNOWN))
    )
    utm_outcome = (
        pl.when(action.is_in(["dropped", "blocked", "block", "clear_session", "drop"]))
        .then(int(Outcome.BLOCKED))
        .when(action.str.starts_with("reset")).then(int(Outcome.REJECTED))
        .when(action.is_in(["detected", "pass", "passthrough", "monitored"]))
        .then(int(Outcome.ACCEPTED))
        .otherwise(int(Outcome.UNKNOWN))
    )
    reason = (
        pl.when(pl.col("marker_pos").is_null()).then(pl.lit("not a FortiGate key=value log"))
        .when((kind != "traffic") & ~utm)
        .then(pl.format("FortiGate {}/{} log is not read", k("type"), k("subtype")))
    )
    packets = num("sentpkt").fill_null(0) + num("rcvdpkt").fill_null(0)
    nbytes = pl.when(num("sentbyte").is_not_null() | num("rcvdbyte").is_not_null()).then(
        num("sentbyte").fill_null(0) + num("rcvdbyte").fill_null(0))
    rule = pl.when(utm).then(k("attack")).otherwise(first_present(k("policyname"),
                                                                  k("policyid")))
    return frame.with_columns(
        reason=reason,
        host=first_present(k("devname"), pl.col("host")),
        src=k("srcip"),
        dst=k("dstip"),
        proto=proto,
        sport=pl.when(icmp).then(None).otherwise(num("srcport")),
        dport=pl.when(icmp).then(None).otherwise(num("dstport")),
        icmp_type=pl.when(icmp).then(hex_or_int(k("icmptype"))),
        icmp_code=pl.when(icmp).then(hex_or_int(k("icmpcode"))),
        outcome=pl.when(utm).then(utm_outcome).otherwise(traffic_outcome),
        rule=rule,
        in_iface=k("srcintf"),
        out_iface=k("dstintf"),
        bytes=nbytes,
        packets=pl.when(packets > 0).then(packets),
    )
