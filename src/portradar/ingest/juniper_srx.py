"""Reader of Juniper SRX ``RT_FLOW`` session logs: sessions created, closed and denied.

Junos writes one line per session event, ``RT_FLOW_SESSION_CREATE``, ``_CLOSE`` and
``_DENY`` (``_LS`` variants from logical systems too), in two forms (Junos *System Log
Explorer*, RT_FLOW):

* plain text (``set security log format syslog``)::

    Sep 29 23:49:20 SRX-1 RT_FLOW: RT_FLOW_SESSION_DENY: session denied
    10.0.0.1/54924->192.168.1.1/53 junos-dns-udp 17(0) default-deny(global) trust trust
    UNKNOWN UNKNOWN N/A(N/A) ge-0/0/0.0 UNKNOWN policy deny

  The fields are positional and Junos releases insert NAT-rule fields after the NAT
  addresses, so the regexes anchor on the address pairs and on the
  ``protocol policy from-zone to-zone session-id`` run that follows them.
* structured RFC 5424 (``set security log format sd-syslog``)::

    <14>1 2023-06-21T10:00:00.123+02:00 srx1 RT_FLOW - RT_FLOW_SESSION_DENY
    [junos@2636.1.1.1.2.26 source-address="198.51.100.7" source-port="4444" ...]

  read by key, so any field order and any added field is fine.

Mapping: the session's client is the source; ``rule`` is the policy name; ``in_iface``
and ``out_iface`` are the source and destination **zones** (SRX policies are written
zone to zone, and a log names only the incoming interface).  CREATE is accepted, DENY
blocked, CLOSE established with ``bytes`` and ``packets`` of both directions summed;
a CLOSE with no packet from the server is unanswered, and one ended by ``TCP SERVER RST``
after at most one server packet is rejected.  For ICMP the ``(n)`` after the protocol is
the ICMP type and the ports are dropped.

Skipped: lines with no ``RT_FLOW_SESSION_`` tag (other Junos messages), and
``RT_FLOW_SESSION_*`` lines whose text does not parse (reason names the tag).

>>> line = (b"Sep 29 23:49:20 SRX-1 RT_FLOW: RT_FLOW_SESSION_DENY: session denied "
...         b"10.0.0.1/54924->192.168.1.1/53 junos-dns-udp 17(0) default-deny(global) trust "
...         b"trust UNKNOWN UNKNOWN N/A(N/A) ge-0/0/0.0 UNKNOWN policy deny\\n")
>>> row = JuniperSrxReader().parse_bytes(line, ReadOptions(tz="UTC", year=2023)).to_pylist()[0]
>>> row["sensor"], row["proto"], row["dport"], row["outcome"], row["rule"], row["in_iface"]
('SRX-1', 17, 53, 'blocked', 'default-deny(global)', 'trust')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from portradar.events.schema import Outcome
from portradar.ingest.polars_lines import PolarsLineReader, first_present
from portradar.ingest.reader import ReadOptions
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_header import with_header
from portradar.ingest.text_fields import (
    KeyValueStyle,
    after,
    key_values,
    relative,
    string_buffers,
    strings,
)

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

#: Where the Junos message starts (the text before it is syslog framing).
TAG = r"RT_FLOW_SESSION_(?:CREATE|CLOSE|DENY)"

_A = r"[^\s/]+"
_PAIR = rf"(?P<src>{_A})/(?P<sport>\d+)->(?P<dst>{_A})/(?P<dport>\d+)(?: 0x\w+)?"
_NAT = rf"{_A}/\d+->{_A}/\d+(?: 0x\w+)?"
_RUN = (r"(?:\S+ )*?(?P<proto>\d{1,3}) (?P<rule>\S+) (?P<fz>\S+) (?P<tz>\S+) "
        r"(?P<sid>\d+)")

#: The plain-text forms, one regex each (the group names are shared).
PLAIN = {
    "CREATE": rf"^session created {_PAIR} (?P<service>\S+) {_NAT} {_RUN}",
    "CLOSE": (rf"^session closed (?P<why>.*?): {_PAIR} (?P<service>\S+) {_NAT} {_RUN} "
              r"(?P<pin>\d+)\((?P<bin>\d+)\) (?P<pout>\d+)\((?P<bout>\d+)\)"),
    "DENY": (rf"^session denied {_PAIR} (?P<service>\S+) (?P<proto>\d{{1,3}})\((?P<itype>\d+)\)"
             r" (?P<rule>\S+) (?P<fz>\S+) (?P<tz>\S+)"),
}

#: Structured-data keys → the group names of the plain forms.
KEYS = {
    "source-address": "src", "source-port": "sport", "destination-address": "dst",
    "destination-port": "dport", "protocol-id": "proto", "icmp-type": "itype",
    "policy-name": "rule", "source-zone-name": "fz", "destination-zone-name": "tz",
    "packets-from-client": "pin", "bytes-from-client": "bin",
    "packets-from-server": "pout", "bytes-from-server": "bout", "reason": "why",
}

_FIELDS = ("src", "sport", "dst", "dport", "proto", "itype", "rule", "fz", "tz", "pin",
           "bin", "pout", "bout", "why")


@register_reader
class JuniperSrxReader(PolarsLineReader):
    """Juniper SRX RT_FLOW session logs (plain and structured syslog)."""

    name: ClassVar[str] = "juniper_srx"
    sniff_pattern: ClassVar[re.Pattern[bytes]] = re.compile(
        rb"RT_FLOW_SESSION_(?:CREATE|CLOSE|DENY)(?:_LS)?(?:: session | \[junos@)")

    def parse_frame(self, lines: pl.Series, options: ReadOptions) -> pl.DataFrame:
        frame = with_header(lines.to_frame(), TAG)
        arr, offsets, _ = string_buffers(lines.to_arrow())
        pos = frame["marker_pos"].fill_null(-1).to_numpy()
        stop, start, end = after(arr, pos, b": ")
        tag_start = np.where(stop >= 0, offsets[:-1] + pos, -1)
        host = pl.col("host")
        frame = frame.with_columns(
            tag=strings(arr, tag_start, stop), body=strings(arr, start, end),
            host=pl.when(host.str.starts_with("RT_FLOW")).then(None).otherwise(host),
        ).drop("line", "before_marker")
        frame = frame.with_columns(kind=pl.col("tag").str.extract(r"_(CREATE|CLOSE|DENY)", 1),
                                   _structured=pl.col("body").str.starts_with("[junos@"))
        pairs = key_values(arr, list(KEYS), KeyValueStyle(), start=relative(arr, start))
        frame = _plain_fields(frame)
        structured = pl.col("_structured")
        return _events(frame.with_columns([
            pl.when(structured).then(pl.Series(values).cast(pl.String))
            .otherwise(pl.col(KEYS[key])).alias(KEYS[key])
            for key, values in pairs.items()]))


def _plain_fields(frame: pl.DataFrame) -> pl.DataFrame:
    """The fields of plain-text lines, each kind's regex on its own rows only."""
    frame = frame.with_row_index("_row")
    parts = []
    plain = frame.filter(~pl.col("_structured") & pl.col("kind").is_not_null())
    for (kind,), part in plain.partition_by("kind", as_dict=True).items():
        parts.append(part.select("_row", pl.col("body").str.extract_groups(PLAIN[kind])
                                 .alias("_g")).unnest("_g"))
    if parts:
        fields = pl.concat(parts, how="diagonal_relaxed")
        frame = frame.join(fields, on="_row", how="left", maintain_order="left")
    missing = [f for f in _FIELDS if f not in frame.columns]
    return frame.with_columns([pl.lit(None, pl.String).alias(f) for f in missing])


def _events(frame: pl.DataFrame) -> pl.DataFrame:
    i64 = pl.Int64

    def num(col: str) -> pl.Expr:
        return pl.col(col).cast(i64, strict=False)

    proto = num("proto")
    icmp = proto.is_in([1, 58])
    kind = pl.col("kind")
    why = pl.col("why").fill_null("").str.to_uppercase()
    outcome = (
        pl.when(kind == "DENY").then(int(Outcome.BLOCKED))
        .when(kind == "CREATE").then(int(Outcome.ACCEPTED))
        .when(num("pout") == 0).then(int(Outcome.UNANSWERED))
        .when(why.str.contains("SERVER RST") & (num("pout") <= 1)).then(int(Outcome.REJECTED))
        .otherwise(int(Outcome.ESTABLISHED))
    )
    closed = kind == "CLOSE"
    reason = (
        pl.when(pl.col("tag").is_null()).then(pl.lit("not a Juniper RT_FLOW session log"))
        .when(pl.col("src").is_null() | proto.is_null())
        .then(pl.format("{} text not recognised", "tag"))
    )
    return frame.with_columns(
        reason=reason,
        proto=proto,
        sport=pl.when(icmp).then(None).otherwise(num("sport")),
        dport=pl.when(icmp).then(None).otherwise(num("dport")),
        icmp_type=pl.when(icmp).then(num("itype")),
        outcome=outcome,
        rule=first_present(pl.col("rule")),
        in_iface=first_present(pl.col("fz")),
        out_iface=first_present(pl.col("tz")),
        bytes=pl.when(closed).then(num("bin") + num("bout")),
        packets=pl.when(closed & (num("pin") + num("pout") > 0)).then(num("pin") + num("pout")),
    )
