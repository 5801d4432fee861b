"""Reader of Palo Alto Networks PAN-OS TRAFFIC and THREAT logs (syslog, CSV payload).

PAN-OS sends each log as one CSV record after a syslog header.  The field order is
fixed per log type (PAN-OS Administrator's Guide, *Syslog Field Descriptions*,
"Traffic Log Fields" and "Threat Log Fields"; later releases only append fields).
The fields read, by position (0-based):

==  ==================  ==  =============================================
 1  Receive Time        22  Session ID
 2  Serial Number       23  Repeat Count
 3  Type                24  Source Port
 4  Subtype             25  Destination Port
 6  Generated Time      29  Protocol
 7  Source Address      30  Action
 8  Destination Address
11  Rule Name           TRAFFIC: 31 Bytes, 34 Packets, 45 Packets Received,
18  Inbound Interface            46 Session End Reason
19  Outbound Interface  THREAT:  32 Threat ID (name and id), 34 Severity
==  ==================  ==  =============================================

Fields may be double-quoted (with ``""`` for a quote) and then contain commas; the
record is split by the compiled CSV scanner of :mod:`portradar.ingest.text_fields`,
which honours that.

Mapping: ``in_iface``/``out_iface`` are the inbound and outbound interfaces; ``rule`` is
the security rule for TRAFFIC and the threat name (``SSH User Authentication Brute Force
Attempt(40015)``) for THREAT.  TRAFFIC keeps ``bytes`` and ``packets``; THREAT's repeat
count is its ``packets`` (PAN-OS folds repeated identical threats into one log).
The event time is the Generated Time when it carries a UTC offset (Strata Logging
Service writes ISO 8601), else the syslog header's when that does (the firewall's own
clock, to the second), else the Generated Time, local time of ``--tz``.

Outcome from action and subtype: ``deny``, ``drop``, ``drop-icmp``, ``drop-all-packets``,
``block-*``, ``sinkhole`` (and the ``deny``/``drop`` subtypes) blocked; ``reset-client``,
``reset-server``, ``reset-both`` rejected; ``allow`` accepted for a ``start`` log and for
THREAT (``alert`` too: the session passed), and for an ``end`` log established, or
unanswered when the server sent no packet (Packets Received 0), or rejected when the
server's only packet was a reset (``tcp-rst-from-server``).

Skipped: other log types (SYSTEM, CONFIG, HIP-MATCH, URL ... each named in the reason)
and lines that are not PAN-OS CSV.

>>> line = (b"<14>Jul  6 08:11:40 PA-VM 1,2023/07/06 08:11:40,0123,TRAFFIC,drop,2561,"
...         b"2023/07/06 08:11:40,198.51.100.7,192.0.2.10,0.0.0.0,0.0.0.0,deny-all,,,"
...         b"not-applicable,vsys1,untrust,trust,ethernet1/1,,fwd,2023/07/06 08:11:40,0,1,"
...         b"4444,445,0,0,0x0,tcp,deny,60,60,0,1,2023/07/06 08:11:40,0,any,0,1,0x0,"
...         b"Netherlands,10.0.0.0-10.255.255.255,0,1,0,policy-deny\\n")
>>> row = PaloAltoReader().parse_bytes(line, ReadOptions(tz="UTC")).to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["dport"], row["outcome"], row["rule"]
('2023-07-06T08:11:40+00:00', 'PA-VM', 445, 'blocked', 'deny-all')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from portradar.events.schema import Outcome
from portradar.ingest import iptables_kernel as k
from portradar.ingest.polars_lines import (
    PolarsLineReader,
    first_present,
    outcome_from_words,
    proto_number,
)
from portradar.ingest.reader import ReadOptions
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_header import TIME_COLUMNS, with_header, with_time
from portradar.ingest.text_fields import csv_spans, string_buffers, strings

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

#: Where the record starts: the Receive Time, then Serial Number and Type (the text
#: before it is syslog framing and the FUTURE_USE field).
TAG = (r"(?:\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"
       r"(?:\.\d+)?Z),[^,]*,[A-Z][A-Z-]*,")

#: PAN-OS field position → column; THREAT and TRAFFIC share 1-30 and differ after.
FIELDS = {1: "recv", 2: "serial", 3: "type", 4: "subtype", 6: "generated", 7: "src",
          8: "dst", 11: "rule", 18: "in_if", 19: "out_if", 23: "repeat", 24: "sport",
          25: "dport", 29: "proto", 30: "action", 31: "bytes", 32: "threat", 34: "packets",
          45: "precv", 46: "end_reason"}

_READ_TYPES = ("TRAFFIC", "THREAT")


@register_reader
class PaloAltoReader(PolarsLineReader):
    """Palo Alto Networks PAN-OS TRAFFIC and THREAT logs (syslog CSV)."""

    name: ClassVar[str] = "palo_alto"
    sniff_pattern: ClassVar[re.Pattern[bytes]] = re.compile(
        rb"(?:^|[\s,])(?:\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T[\d:.]+Z),[^,]*,"
        rb"(?:TRAFFIC|THREAT|SYSTEM|CONFIG"
        rb"|HIP-MATCH|CORRELATION|USERID|AUTHENTICATION|GLOBALPROTECT|DECRYPTION|TUNNEL"
        rb"|GTP|SCTP|IPTAG|URL|WILDFIRE|DATA),")

    def parse_frame(self, lines: pl.Series, options: ReadOptions) -> pl.DataFrame:
        frame = with_header(lines.to_frame(), TAG)
        arr = string_buffers(lines.to_arrow())[0]
        starts, ends = csv_spans(arr, frame["marker_pos"].fill_null(-1).to_numpy(),
                                 max(FIELDS))
        host = pl.col("host")
        frame = frame.with_columns(
            [strings(arr, starts[:, i - 1], ends[:, i - 1]).alias(name)
             for i, name in FIELDS.items()]
            + [pl.when(host.str.contains(r"^\d*,")).then(None).otherwise(host).alias("host")]
        ).drop("line", "before_marker")
        quoted = ("rule", "threat")  # names may hold a doubled quote
        frame = frame.with_columns(
            [first_present(pl.col(n)).alias(n) for n in FIELDS.values() if n not in quoted]
            + [first_present(pl.col(n).str.replace_all('""', '"', literal=True)).alias(n)
               for n in quoted])
        return _events(_event_time(frame))


def _event_time(frame: pl.DataFrame) -> pl.DataFrame:
    """Generated Time when it has an offset, else the header's when it has, else Generated."""
    header = {c: frame[c].to_numpy() for c in TIME_COLUMNS}
    generated = with_time(frame.with_columns(_g=pl.coalesce("generated", "recv")), "_g")
    gen_kind = generated["ts_kind"].to_numpy()
    use_header = (gen_kind != k.TS_ABSOLUTE) & (header["ts_kind"] == k.TS_ABSOLUTE) | (
        gen_kind == k.TS_NONE)
    return generated.drop("_g").with_columns([
        pl.Series(c, np.where(use_header, header[c], generated[c].to_numpy()))
        for c in TIME_COLUMNS])


def _events(frame: pl.DataFrame) -> pl.DataFrame:
    i64 = pl.Int64

    def num(col: str) -> pl.Expr:
        return pl.col(col).cast(i64, strict=False)

    kind = pl.col("type")
    traffic = kind == "TRAFFIC"
    subtype = pl.col("subtype").fill_null("").str.to_lowercase()
    action = pl.col("action").fill_null("").str.to_lowercase()
    end_reason = pl.col("end_reason").fill_null("")
    proto = proto_number(pl.col("proto"))
    icmp = proto.is_in([1, 58])
    outcome = (
        pl.when(subtype.is_in(["deny", "drop"])).then(int(Outcome.BLOCKED))
        .when(action.is_in(["allow", "alert"]) & traffic & (subtype == "end")).then(
            pl.when(num("precv") == 0).then(int(Outcome.UNANSWERED))
            .when((end_reason == "tcp-rst-from-server") & (num("precv") <= 1))
            .then(int(Outcome.REJECTED))
            .otherwise(int(Outcome.ESTABLISHED)))
        .when(action.is_in(["allow", "alert"])).then(int(Outcome.ACCEPTED))
        .otherwise(outcome_from_words(action))
    )
    reason = (
        pl.when(kind.is_null()).then(pl.lit("not a PAN-OS log record"))
        .when(~kind.is_in(list(_READ_TYPES))).then(pl.format("PAN-OS {} log is not read", kind))
        .when(pl.col("action").is_null()).then(pl.format("PAN-OS {} record too short", kind))
    )
    packets = pl.when(traffic).then(num("packets")).otherwise(num("repeat"))
    return frame.with_columns(
        reason=reason,
        host=first_present(pl.col("host"), pl.col("serial")),
        proto=proto,
        sport=pl.when(icmp).then(None).otherwise(num("sport")),
        dport=pl.when(icmp).then(None).otherwise(num("dport")),
        outcome=outcome,
        rule=pl.when(traffic).then(pl.col("rule")).otherwise(pl.col("threat")),
        in_iface=pl.col("in_if"),
        out_iface=pl.col("out_if"),
        bytes=pl.when(traffic).then(num("bytes")),
        packets=pl.when(packets > 0).then(packets),
    )
