"""Reader of MikroTik RouterOS firewall log lines (``action=log`` rules).

RouterOS logs a packet matched by a firewall rule with ``log=yes`` under the topics
``firewall,info`` as (RouterOS manual, *IP/Firewall/Filter*, "log-prefix")::

    firewall,info drop-in input: in:ether1-WAN out:(unknown 0),
    connection-state:new src-mac 00:17:10:88:bc:02, proto TCP (SYN),
    36.97.161.219:59388->81.82.202.145:23, len 40

i.e. topics, the rule's ``log-prefix`` (optional), the chain, the interfaces, the
connection state and source MAC (both optional), the protocol with TCP flags or ICMP
type/code in parentheses, ``src:port->dst:port`` (IPv6 in brackets; no ports for ICMP),
an optional ``NAT (...)`` part, and the packet length.  In front is the syslog framing
of the remote-logging target: RFC 3164, ISO 8601 (rsyslog's high-precision format, as
in the CrowdSec samples) or RFC 5424, with the router's address or name as host.

Mapping: ``rule`` is the log prefix, or the chain when the rule has none; the outcome is
read from it exactly like an iptables log prefix (``--action PREFIX=OUTCOME`` first,
then ``DROP``/``REJECT``/``ACCEPT`` words, :func:`portradar.ingest.iptables.
outcome_for_prefix`), so ``drop-in`` is blocked and a bare ``input`` is unknown unless
``--action``; ``in:``/``out:`` are the interfaces (``(unknown 0)`` is none); ``len`` is
``bytes``.

Skipped: lines without the ``firewall`` topic (logins, DHCP, system messages).

>>> line = (b"2023-03-18T20:36:59.594792+01:00 10.120.127.1 firewall,info drop-tcp input: "
...         b"in:ether1-WAN out:(unknown 0), connection-state:new src-mac 00:17:10:88:bc:02, "
...         b"proto TCP (SYN), 36.97.161.219:59388->81.82.202.145:23, len 40\\n")
>>> row = MikrotikReader().parse_bytes(line).to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["dport"], row["tcp_flags"], row["outcome"]
('2023-03-18T19:36:59.594792+00:00', '10.120.127.1', 23, 2, 'blocked')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from portradar.ingest.iptables import outcome_for_prefix
from portradar.ingest.polars_lines import (
    PolarsLineReader,
    per_distinct,
    proto_number,
    tcp_flag_bits,
)
from portradar.ingest.reader import ReadOptions
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_header import with_header
from portradar.ingest.text_fields import Templates, after, relative, string_buffers, strings

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

#: The topics that start a firewall message (the text before them is syslog framing).
TAG = r"\bfirewall(?:,[\w-]+)* "

_SIDE = (r"(?:\[(?P<{n}b>[^\]]+)\]:(?P<{n}bp>\d+)|(?P<{n}4>\d{{1,3}}(?:\.\d{{1,3}}){{3}})"
         r"(?::(?P<{n}4p>\d+))?|(?P<{n}6>[0-9A-Fa-f:.]+))")

BODY = (
    r"^(?:(?P<prefix>.*?) )?(?P<chain>[^\s:]+): in:(?P<in_if>.*?) out:(?P<out_if>.*?), "
    r"(?:connection-state:\S+ )?(?:src-mac [0-9A-Fa-f:]+, )?"
    r"proto (?P<proto>[\w-]+)(?: \((?P<info>[^)]*)\))?, "
    + _SIDE.format(n="s") + "->" + _SIDE.format(n="d")
    + r"(?:, NAT .*?)?(?:, len (?P<len>\d+))?\s*$"
)

#: The fast path (compiled templates, see :class:`~portradar.ingest.text_fields.Templates`):
#: the part up to the interfaces, matched at the start of the message ...
HEAD = Templates.compile([
    "{prefix} {chain}: in:{in_if*} out:{out_if*}, ",
    "{chain}: in:{in_if*} out:{out_if*}, ",
])
#: ... and the protocol and addresses, matched at ``proto``.  Lines neither takes go to
#: :data:`BODY`, the complete grammar.
TAIL = Templates.compile([
    "proto {proto} ({info*}), {src}:{sport:d}->{dst}:{dport:d}, len {len:d}",
    "proto {proto} ({info*}), [{src}]:{sport:d}->[{dst}]:{dport:d}, len {len:d}",
    "proto {proto}, {src}:{sport:d}->{dst}:{dport:d}, len {len:d}",
    "proto {proto}, [{src}]:{sport:d}->[{dst}]:{dport:d}, len {len:d}",
    "proto {proto} ({info*}), {src}->{dst}, len {len:d}",
    "proto {proto}, {src}->{dst}, len {len:d}",
])

_FIELDS = ("prefix", "chain", "in_if", "out_if", "proto", "info", "src", "sport", "dst",
           "dport", "len")


@register_reader
class MikrotikReader(PolarsLineReader):
    """MikroTik RouterOS firewall log lines (remote syslog)."""

    name: ClassVar[str] = "mikrotik"
    sniff_pattern: ClassVar[re.Pattern[bytes]] = re.compile(
        rb"firewall(?:,[\w-]+)* .*?\S+: in:.*? out:.*?, .*proto \S+.*, \S+->\S+")

    def parse_frame(self, lines: pl.Series, options: ReadOptions) -> pl.DataFrame:
        frame = with_header(lines.to_frame(), TAG)
        arr = string_buffers(lines.to_arrow())[0]
        _, start, end = after(arr, frame["marker_pos"].fill_null(-1).to_numpy(), b" ")
        proto_at = lines.str.find(", proto ", literal=True).fill_null(-3).to_numpy() + 2
        head, hs, he = HEAD.match(arr, relative(arr, start))
        tail, ts, te = TAIL.match(arr, np.where(start >= 0, proto_at, -1))
        fast = (head >= 0) & (tail >= 0)
        spans = {n: (hs[:, i], he[:, i]) for i, n in enumerate(HEAD.names)}
        spans |= {n: (ts[:, i], te[:, i]) for i, n in enumerate(TAIL.names)}
        frame = frame.with_columns(
            [strings(arr, np.where(fast, a, -1), b).alias(n) for n, (a, b) in spans.items()]
            + [strings(arr, np.where(fast, -1, start), end).alias("body")]
        ).drop("line", "before_marker").with_row_index("_row")
        frame = frame.with_columns([pl.lit(None, pl.String).alias(n) for n in _FIELDS
                                    if n not in frame.columns])
        slow = frame.filter(pl.col("body").is_not_null())
        if slow.height:
            frame = frame.update(_regex_fields(slow), on="_row")
        i64 = pl.Int64
        proto = proto_number(pl.col("proto"))
        info = pl.col("info")
        icmp = proto.is_in([1, 58])
        rule = pl.when(pl.col("prefix").str.strip_chars() != "") \
            .then(pl.col("prefix").str.strip_chars()).otherwise(pl.col("chain"))
        frame = frame.with_columns(rule=rule)
        reason = (
            pl.when(pl.col("marker_pos").is_null())
            .then(pl.lit("not a MikroTik firewall log line"))
            .when(pl.col("chain").is_null()).then(pl.lit("MikroTik firewall line not "
                                                         "recognised"))
        )

        def iface(col: str) -> pl.Expr:
            value = pl.col(col).str.strip_chars()
            return pl.when(value.str.starts_with("(unknown")).then(None).otherwise(value)

        frame = frame.with_columns(
            reason=reason,
            sport=pl.when(icmp).then(None).otherwise(pl.col("sport").cast(i64, strict=False)),
            dport=pl.when(icmp).then(None).otherwise(pl.col("dport").cast(i64, strict=False)),
            proto=proto,
            tcp_flags=pl.when(proto == 6).then(tcp_flag_bits(info)),
            icmp_type=pl.when(icmp).then(info.str.extract(r"type (\d+)", 1).cast(i64)),
            icmp_code=pl.when(icmp).then(info.str.extract(r"code (\d+)", 1).cast(i64)),
            in_iface=iface("in_if"),
            out_iface=iface("out_if"),
            bytes=pl.col("len").cast(i64, strict=False),
        )
        return frame.with_columns(outcome=_outcomes(frame["rule"], options))


def _regex_fields(slow: pl.DataFrame) -> pl.DataFrame:
    """The fields of the lines the templates did not take, by :data:`BODY`."""
    g = slow.select("_row", pl.col("body").str.extract_groups(BODY).alias("_g")).unnest("_g")
    return g.select(
        "_row", "prefix", "chain", "in_if", "out_if", "proto", "info", "len",
        src=pl.coalesce("sb", "s4", "s6"), dst=pl.coalesce("db", "d4", "d6"),
        sport=pl.coalesce("sbp", "s4p"), dport=pl.coalesce("dbp", "d4p"))


def _outcomes(rule: pl.Series, options: ReadOptions) -> pl.Series:
    """Outcome of each row from its rule text, looked up once per distinct rule."""
    return pl.Series("outcome", per_distinct(
        rule, lambda word: int(outcome_for_prefix(word, options.actions))))
