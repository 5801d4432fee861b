"""Reader of BSD ``pf`` firewall logs: pfSense / OPNsense ``filterlog`` and ``tcpdump -e`` prints.

Two text forms of the same pf log record, even mixed in one input:

* **filterlog** (pfSense 2.2+, OPNsense): one CSV line per logged packet inside BSD
  syslog (``Sep 28 10:38:09 pfSense filterlog: 53,,,1000000301,em0,match,block,in,4,...``,
  where the host is absent when pfSense forwards in the default format) or RFC 5424
  (``<134>1 2025-11-06T11:32:42.868451+00:00 firewall.lan filterlog 92653 - - 7,,,...``).
  The CSV layout (netgate "Raw Filter Log Format"; OPNsense ``description.txt``): rule
  number, sub rule, anchor, tracker (label), interface, reason, action, direction, IP
  version; IPv4: TOS, ECN, TTL, ID, offset, flags, protocol id, protocol name; IPv6:
  class, flow label, hop limit, protocol name, protocol id; then length, source,
  destination; TCP/UDP: source port, destination port, data length; TCP also flags,
  sequence (a single number or ``first:last``), ack, window, urg, options; ICMP: the
  type (pfSense's words ``request``, ``unreachport``, ..., or OPNsense's
  ``datalength=N,type,code,...`` with pf.conf keywords ``echoreq``, ``port-unr``, ...).
* **tcpdump** prints of ``pflog`` (OpenBSD / FreeBSD ``tcpdump -n -e -ttt -r
  /var/log/pflog``, or the same sent through syslog): ``Mar 16 15:23:09.532917 rule
  46/(match) block in on em0: 198.51.100.7.555 > 192.0.2.10.22: S 1:1(0) win 1024``.
  Both tcpdump flavours are read (OpenBSD's ``S``/``ack``, tcpdump.org's ``Flags [S.]``,
  ``ICMP echo request``).  Only the one-line form: ``-v`` output is not supported.

Mapping: action ``block`` → blocked, ``pass`` → accepted, anything else (``match``,
``scrub``, ``rdr``) → unknown (pf logs a ``block return`` rule as ``block``, so a
refusal shows as blocked).  The interface goes to ``in_iface`` for direction ``in`` and
``out_iface`` for ``out``.  ``rule`` is ``rule N`` plus the sub rule, anchor and
tracker when set.  ``bytes`` is the IP length; TTL (hop limit), IP id, TCP flags,
window and sequence number are kept; an ICMP type or code given as a word becomes
its number.  The sensor is ``--sensor``, else the syslog host, else ``default``.

The CSV and framing are parsed by the numba kernel in
:mod:`portradar.ingest.pf_filterlog_kernel` (several million lines/s); tcpdump lines,
rarer and irregular, by Polars regular expressions over the whole chunk.

Syslog lines of other programs (a pfSense log mixes ``sshd``, ``dhcpd``, ...) are
counted as "not from filterlog or pf", never an error; a ``filterlog`` line that does
not parse is.

>>> line = (b"Sep 28 10:38:24 pfSense filterlog: 53,,,1000102631,em0,match,block,in,4,0x0,,64,"
...         b"600,0,none,6,tcp,44,10.0.2.2,10.0.2.15,53792,22,0,S,31552001,,65535,,mss\\n")
>>> row = PfFilterlogReader().parse_bytes(line, ReadOptions(tz="UTC", year=2022)).to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["outcome"], row["in_iface"], row["dport"]
('2022-09-28T10:38:24+00:00', 'pfSense', 'blocked', 'em0', 22)
>>> row["rule"], row["tcp_flags"], row["ttl"], row["bytes"]
('rule 53 tracker 1000102631', 2, 64, 44)
>>> PfFilterlogReader.sniff(line)
1.0
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.events.schema import Outcome, make_batch
from portradar.ingest import fields as f
from portradar.ingest import iptables_kernel as ik
from portradar.ingest import pf_filterlog_kernel as k
from portradar.ingest.lines import LineReader, head_lines
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

# statuses from the kernel plus the tcpdump pass
BAD_TCPDUMP = 40
REASONS = {
    k.NO_TIMESTAMP: "no syslog or tcpdump timestamp recognised",
    k.BAD_TIMESTAMP: "timestamp out of range",
    k.OTHER_PROGRAM: "syslog line not from filterlog or pf",
    k.NOT_FILTERLOG: "neither a filterlog CSV nor a pf tcpdump line",
    k.BAD_CSV: "filterlog CSV with too few fields, no rule number or IP version not 4/6",
    k.BAD_SRC: "source is not an IPv4 or IPv6 address",
    k.BAD_DST: "destination is not an IPv4 or IPv6 address",
    k.BAD_PROTO: "protocol id missing or not recognised",
    k.BAD_PORT: "source or destination port is not a number 0-65535",
    k.BAD_NUMBER: "TTL, ID, length, TCP flags, window or sequence out of range",
    BAD_TCPDUMP: "pf tcpdump line not understood (rule, action, interface, addresses)",
}
QUIET = frozenset({k.OTHER_PROGRAM})

_SNIFF = re.compile(
    rb"filterlog(?:\[\d+\])?:?\s.*?\d+,\d*,[^,]*,[^,]*,[^,]+,[\w-]+,\w+,\w+,[46],"
    rb"|\brule \S+\([\w-]+\):? \w+ (?:in|out) on \S+: ")

# --- ICMP words -------------------------------------------------------------------------
#: pf.conf(5) icmp-type keywords and pfSense's filterlog words → (type, implied code).
ICMP4_TYPES: dict[str, tuple[int, int | None]] = {
    "echorep": (0, None), "unreach": (3, None), "squench": (4, None), "redir": (5, None),
    "althost": (6, None), "echoreq": (8, None), "routeradv": (9, None),
    "routersol": (10, None), "timex": (11, None), "paramprob": (12, None),
    "timereq": (13, None), "timerep": (14, None), "inforeq": (15, None),
    "inforep": (16, None), "maskreq": (17, None), "maskrep": (18, None), "trace": (30, None),
    "dataconv": (31, None), "mobredir": (32, None), "ipv6-where": (33, None),
    "ipv6-here": (34, None), "mobregreq": (35, None), "mobregrep": (36, None),
    "skip": (39, None), "photuris": (40, None),
    # pfSense
    "request": (8, 0), "reply": (0, 0), "unreachproto": (3, 2), "unreachport": (3, 3),
    "timexceed": (11, None), "redirect": (5, None), "maskreply": (18, 0),
    "needfrag": (3, 4), "tstamp": (13, 0), "tstampreply": (14, 0),
}
#: pf.conf(5) icmp6-type keywords (and pfSense's words) → (type, implied code).
ICMP6_TYPES: dict[str, tuple[int, int | None]] = {
    "unreach": (1, None), "toobig": (2, 0), "timex": (3, None), "paramprob": (4, None),
    "echoreq": (128, 0), "echorep": (129, 0), "groupqry": (130, 0), "grouprep": (131, 0),
    "groupterm": (132, 0), "routersol": (133, 0), "routeradv": (134, 0),
    "neighbrsol": (135, 0), "neighbradv": (136, 0), "redir": (137, 0),
    "routrrenum": (138, None), "wrureq": (139, None), "wrurep": (140, None),
    "fqdnreq": (139, None), "fqdnrep": (140, None), "niqry": (139, None),
    "nirep": (140, None), "mtraceresp": (200, None), "mtrace": (201, None),
    "request": (128, 0), "reply": (129, 0), "timexceed": (3, None), "redirect": (137, 0),
    "needfrag": (2, 0),
}
#: pf.conf(5) icmp-code keywords.
ICMP4_CODES = {
    "net-unr": 0, "host-unr": 1, "proto-unr": 2, "port-unr": 3, "needfrag": 4,
    "srcfail": 5, "net-unk": 6, "host-unk": 7, "isolate": 8, "net-prohib": 9,
    "host-prohib": 10, "net-tos": 11, "host-tos": 12, "filter-prohib": 13,
    "host-preced": 14, "cutoff-preced": 15, "redir-net": 0, "redir-host": 1,
    "redir-tos-net": 2, "redir-tos-host": 3, "normal-adv": 0, "common-adv": 16,
    "transit": 0, "reassemb": 1, "badhead": 0, "optmiss": 1, "badlen": 2,
    "unknown-ind": 1, "auth-fail": 2, "decrypt-fail": 3,
}
ICMP6_CODES = {
    "noroute-unr": 0, "admin-unr": 1, "beyond-unr": 2, "addr-unr": 3, "port-unr": 4,
    "transit": 0, "reassemb": 1, "badhead": 0, "nxthdr": 1, "redironlink": 0,
    "redirrouter": 1,
}


def _icmp_number(table: dict[str, tuple[int, int | None]],
                 position: int) -> Callable[[str], int | None]:
    """Type (position 0) or implied code (1) of an ICMP type word, number or ``unknown(N)``."""
    def fn(word: str) -> int | None:
        word = word.strip().lower()
        m = re.fullmatch(r"(?:unknown\()?(\d{1,3})\)?", word)
        if m:
            return int(m.group(1)) if position == 0 and int(m.group(1)) <= 255 else None
        value = table.get(word)
        return None if value is None else value[position]
    return fn


def _code_number(table: dict[str, int]) -> Callable[[str], int | None]:
    def fn(word: str) -> int | None:
        word = word.strip().lower()
        if word.isdigit():
            return int(word) if int(word) <= 255 else None
        return table.get(word)
    return fn


#: Outcome of each action code of the kernel (other, block, pass).
_OUTCOMES = np.array([int(Outcome.UNKNOWN), int(Outcome.BLOCKED), int(Outcome.ACCEPTED)],
                     np.int32)


def _rule_text(csv: str) -> str:
    """``53,,,1000000301`` → ``rule 53 tracker 1000000301``."""
    parts = [*csv.split(","), "", "", "", ""][:4]
    text = f"rule {parts[0]}"
    if parts[1]:
        text += f".{parts[1]}"
    if parts[2]:
        text += f" anchor {parts[2]}"
    if parts[3] and parts[3] != "0":
        text += f" tracker {parts[3]}"
    return text


@register_reader
class PfFilterlogReader(LineReader):
    """pfSense/OPNsense filterlog CSV and OpenBSD/FreeBSD pf tcpdump lines."""

    name: ClassVar[str] = "pf_filterlog"
    unit: ClassVar[str] = "lines"

    def __init__(self) -> None:
        self._years = YearState()
        self._years_initialised = False

    @classmethod
    def sniff(cls, head: bytes) -> float:
        lines = head_lines(head, 50)
        if not lines:
            return 0.0
        return sum(1 for ln in lines if _SNIFF.search(ln)) / len(lines)


    def parse_lines(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    first_line: int, options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        if not self._years_initialised:
            self._years = YearState(year=options.year)
            self._years_initialised = True
        out, addr = k.parse_lines(buf, starts, ends)
        n = len(starts)
        status = out[:, ik.ST].copy()
        ts, bad_ts = resolve(out, tz=zone(options.tz),
                             reference=reference_time(None, options.reference_time),
                             state=self._years, boot_time=options.boot_time)
        status[(status == ik.OK) & bad_ts] = k.BAD_TIMESTAMP
        kind = out[:, k.KIND]

        proto = out[:, k.PR].copy()
        sport = out[:, k.SP].copy()
        dport = out[:, k.DP].copy()
        flags = out[:, k.FL].copy()
        itype = np.full(n, -1, np.int64)
        icode = np.full(n, -1, np.int64)
        csv = (status == ik.OK) & (kind == k.K_CSV)
        self._icmp_words(buf, out, csv, proto, itype, icode)

        action = out[:, k.ACT].copy()
        direction = out[:, k.DIR].copy()
        strings = {
            "iface": _span_text(buf, out, csv, k.IFS, k.IFE),
            "rule": f.relabel(f.strings(buf, np.where(csv, out[:, k.RS], -1),
                                        np.where(csv, out[:, k.RE], -1)), _rule_text)
            .cast(pa.string()),
        }
        pf_rows = np.flatnonzero((status == ik.OK) & (kind == k.K_PF))
        if len(pf_rows):
            self._tcpdump(buf, out, pf_rows, status, addr, proto, sport, dport, flags,
                          itype, icode, action, direction, strings)

        f.report_skips(status, REASONS, buf, starts, ends, first_line, stats, QUIET)
        keep = np.flatnonzero(status == ik.OK)
        take = pa.array(keep, pa.int64())
        outcome = _OUTCOMES[action[keep]]
        iface = strings["iface"].take(take)
        null = pa.scalar(None, pa.string())
        inbound = pa.array(direction[keep] != k.D_OUT)
        sensor: object = options.sensor or _fill(
            f.strings(buf, out[keep, k.HS], out[keep, k.HE]), "default")

        def num(values: np.ndarray, dtype: type) -> pa.Array:
            v = values[keep]
            return f.nullable(v, np.where(v < 0, f.MISSING, f.OK), dtype)

        columns = {
            "ts": ts[keep],
            "sensor": sensor,
            "src_hi": addr[keep, 0], "src_lo": addr[keep, 1],
            "dst_hi": addr[keep, 2], "dst_lo": addr[keep, 3],
            "proto": proto[keep].astype(np.uint8),
            "sport": num(sport, np.uint16),
            "dport": num(dport, np.uint16),
            "tcp_flags": num(flags, np.uint8),
            "icmp_type": num(itype, np.uint8),
            "icmp_code": num(icode, np.uint8),
            "outcome": outcome,
            "rule": strings["rule"].take(take),
            "in_iface": pc.if_else(inbound, iface, null),
            "out_iface": pc.if_else(inbound, null, iface),
            "bytes": num(out[:, k.LEN], np.uint64),
            "ttl": num(out[:, k.TTL], np.uint8),
            "ip_id": num(out[:, k.ID], np.uint16),
            "tcp_window": num(out[:, k.WIN], np.uint16),
            "tcp_seq": num(out[:, k.SEQ], np.uint32),
            "format": self.name,
        }
        return make_batch(columns, n=len(keep))

    @staticmethod
    def _icmp_words(buf: np.ndarray, out: np.ndarray, rows: np.ndarray, proto: np.ndarray,
                    itype: np.ndarray, icode: np.ndarray) -> None:
        """ICMP type and code of filterlog lines, from words or numbers, per distinct word."""
        icmp = rows & ((proto == 1) | (proto == 58)) & (out[:, k.ITS] >= 0)
        if not icmp.any():
            return
        v6 = proto == 58
        types = f.strings(buf, np.where(icmp, out[:, k.ITS], -1),
                          np.where(icmp, out[:, k.ITE], -1))
        codes = f.strings(buf, np.where(icmp, out[:, k.ICS], -1),
                          np.where(icmp, out[:, k.ICE], -1))
        t4 = f.decode(types, _icmp_number(ICMP4_TYPES, 0), -1, np.int64)
        t6 = f.decode(types, _icmp_number(ICMP6_TYPES, 0), -1, np.int64)
        c4 = f.decode(types, _icmp_number(ICMP4_TYPES, 1), -1, np.int64)
        c6 = f.decode(types, _icmp_number(ICMP6_TYPES, 1), -1, np.int64)
        k4 = f.decode(codes, _code_number(ICMP4_CODES), -1, np.int64)
        k6 = f.decode(codes, _code_number(ICMP6_CODES), -1, np.int64)
        itype[icmp] = np.where(v6, t6, t4)[icmp]
        implied = np.where(v6, c6, c4)
        given = np.where(v6, k6, k4)
        icode[icmp] = np.where(given >= 0, given, implied)[icmp]

    def _tcpdump(self, buf: np.ndarray, out: np.ndarray, rows: np.ndarray, status: np.ndarray,
                 addr: np.ndarray, proto: np.ndarray, sport: np.ndarray, dport: np.ndarray,
                 flags: np.ndarray, itype: np.ndarray, icode: np.ndarray, action: np.ndarray,
                 direction: np.ndarray, strings: dict[str, pa.Array]) -> None:
        """Parse the pf tcpdump lines ``rows`` with Polars and merge them in."""
        valid = f.utf8_valid(buf, out[rows, k.BS], out[rows, k.BE])
        status[rows[~valid]] = BAD_TCPDUMP
        rows = rows[valid]
        if not len(rows):
            return
        offsets, data = ik.gather_spans(buf, out[rows, k.BS], out[rows, k.BE])
        text = pa.Array.from_buffers(pa.string(), len(rows),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        frame = tcpdump_frame(pl.Series("line", text))
        good = frame["ok"].to_numpy()
        status[rows[~good]] = BAD_TCPDUMP
        src_hi, src_lo, src_st = f.addresses(*f.string_spans(frame["src"].to_arrow()))
        dst_hi, dst_lo, dst_st = f.addresses(*f.string_spans(frame["dst"].to_arrow()))
        status[rows[good & (src_st != f.OK)]] = k.BAD_SRC
        status[rows[good & (src_st == f.OK) & (dst_st != f.OK)]] = k.BAD_DST
        addr[rows, 0], addr[rows, 1] = src_hi, src_lo
        addr[rows, 2], addr[rows, 3] = dst_hi, dst_lo
        for name, target, limit in (("proto", proto, 255), ("sport", sport, 65535),
                                    ("dport", dport, 65535), ("flags", flags, 255),
                                    ("icmp_type", itype, 255), ("icmp_code", icode, 255)):
            values = frame[name].fill_null(-1).to_numpy().astype(np.int64)
            over = values > limit
            status[rows[good & over & (status[rows] == ik.OK)]] = (
                k.BAD_PORT if name in ("sport", "dport") else k.BAD_NUMBER)
            target[rows] = np.where(over, -1, values)
        status[rows[good & (proto[rows] < 0) & (status[rows] == ik.OK)]] = k.BAD_PROTO
        words = frame["action"].fill_null("")
        action[rows] = np.select([(words == "block").to_numpy(), (words == "pass").to_numpy()],
                                 [k.A_BLOCK, k.A_PASS], k.A_OTHER)
        words = frame["dir"].fill_null("")
        direction[rows] = np.select([(words == "in").to_numpy(), (words == "out").to_numpy()],
                                    [k.D_IN, k.D_OUT], k.D_OTHER)
        n = len(status)
        pos = np.full(n, -1, np.int64)
        pos[rows] = np.arange(len(rows))
        where = pa.array(pos, mask=pos < 0)
        for name in ("iface", "rule"):
            column = frame[name].to_arrow().cast(pa.string()).take(where)
            strings[name] = pc.coalesce(strings[name], column)


def tcpdump_frame(lines: pl.Series) -> pl.DataFrame:
    """Columns of pf ``tcpdump -e`` lines (starting at ``rule``), as a Polars frame.

    >>> tcpdump_frame(pl.Series(["rule 2/(match) block in on em0: 198.51.100.7.4444 > "
    ...                          "192.0.2.1.22: S 1:1(0) win 1024"])).select(
    ...     "rule", "action", "iface", "proto", "sport", "dport", "flags").rows()
    [('rule 2', 'block', 'em0', 6, 4444, 22, 2)]
    """
    head = (r"^rule (?P<rule>[^(\s]+)\((?P<reason>[^)]*)\):?(?: \[[^\]]*\])?"
            r" (?P<action>[a-z-]+)(?: (?P<dir>in|out|fwd))?(?: on (?P<iface>[^:\s]+))?:"
            r" (?:\([^)]*\) )?(?P<src>\S+) > (?P<dst>\S+): ?(?P<payload>.*)$")
    endpoint = (r"^(?:(?P<v4>(?:\d{1,3}\.){3}\d{1,3})|(?P<v6>[0-9A-Fa-f]*:[0-9A-Fa-f:]*))"
                r"(?:\.(?P<port>\d{1,6}))?$")
    g = lines.to_frame("line").with_columns(
        pl.col("line").str.extract_groups(head).alias("h")).unnest("h")
    g = g.with_columns(
        pl.col("src").str.extract_groups(endpoint).struct.rename_fields(
            ["s4", "s6", "sp"]).alias("s"),
        pl.col("dst").str.extract_groups(endpoint).struct.rename_fields(
            ["d4", "d6", "dp"]).alias("d"),
    ).unnest("s", "d")
    payload = pl.col("payload").fill_null("")
    icmp4 = payload.str.contains(r"^(?:icmp: |ICMP )")
    icmp6 = payload.str.contains(r"^(?:icmp6: |ICMP6,? )")
    tcp_new = payload.str.extract(r"^Flags \[([^\]]*)\]", 1)
    tcp_old = payload.str.extract(r"^([FSRPUWE]+\.?|\.)(?:\s|$)", 1)
    has_ports = pl.col("sp").is_not_null() & pl.col("dp").is_not_null()
    other = payload.str.extract(r"^(?:ip-proto-(\d+))", 1).cast(pl.Int64, strict=False)
    named = (pl.when(payload.str.contains(r"^(?:GRE|gre)\b")).then(47)
             .when(payload.str.contains(r"^(?:ESP|esp)\b")).then(50)
             .when(payload.str.contains(r"^(?:AH|ah)\b")).then(51)
             .when(payload.str.contains(r"^(?:IGMP|igmp)\b")).then(2)
             .when(payload.str.contains(r"^(?:CARPv?\d*|carp|VRRPv?\d*|vrrp)\b")).then(112))
    g = g.with_columns(
        proto=pl.when(icmp6).then(58).when(icmp4).then(1)
        .when(has_ports & (tcp_new.is_not_null() | tcp_old.is_not_null())).then(6)
        .when(has_ports).then(17)
        .otherwise(pl.coalesce(other, named)),
        letters=pl.coalesce(tcp_new, tcp_old),
        icmp_text=pl.when(icmp4 | icmp6).then(payload.str.replace(r"^(?:icmp6?: |ICMP6?,? )",
                                                                    "")),
    )
    bits = [("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), ("U", 0x20), ("E", 0x40),
            ("W", 0x80)]
    flag_value = pl.lit(0)
    for letter, bit in bits:
        flag_value = flag_value + pl.when(pl.col("letters").str.contains(letter, literal=True)
                                          ).then(bit).otherwise(0)
    ack = (pl.col("letters").str.contains(".", literal=True)
           | payload.str.contains(r"(?:^|[ ,])ack \d"))
    flag_value = flag_value + pl.when(ack).then(0x10).otherwise(0)
    itype, icode = _icmp_text_numbers(pl.col("icmp_text"), pl.col("proto") == 58)
    is_tcp = pl.col("proto") == 6
    is_icmp = pl.col("proto").is_in([1, 58])
    return g.select(
        ok=pl.col("action").is_not_null() & pl.col("src").is_not_null()
        & (pl.col("s4").is_not_null() | pl.col("s6").is_not_null()),
        rule=pl.concat_str(pl.lit("rule "), pl.col("rule").str.strip_chars_end("/")),
        action=pl.col("action"),
        dir=pl.col("dir"),
        iface=pl.col("iface"),
        src=pl.coalesce("s4", "s6"),
        dst=pl.coalesce("d4", "d6"),
        proto=pl.col("proto").cast(pl.Int64),
        sport=pl.when(~is_icmp).then(pl.col("sp").cast(pl.Int64, strict=False)),
        dport=pl.when(~is_icmp).then(pl.col("dp").cast(pl.Int64, strict=False)),
        flags=pl.when(is_tcp).then(flag_value).cast(pl.Int64),
        icmp_type=pl.when(is_icmp).then(itype).cast(pl.Int64),
        icmp_code=pl.when(is_icmp).then(icode).cast(pl.Int64),
    ).with_columns(pl.col("ok").fill_null(False))


#: tcpdump's ICMP descriptions → (IPv4 type, code, IPv6 type, code); first match wins.
ICMP_TEXT = (
    (r"^echo request", 8, 0, 128, 0),
    (r"^echo reply", 0, 0, 129, 0),
    (r"need to frag|packet too big", 3, 4, 2, 0),
    (r"port \S*\s*unreachable|port unreachable", 3, 3, 1, 4),
    (r"protocol \S+ unreachable", 3, 2, 1, None),
    (r"admin(?:istratively)? prohibited", 3, 13, 1, 1),
    (r"host \S+ unreachable", 3, 1, 1, 3),
    (r"net \S+ unreachable", 3, 0, 1, 0),
    (r"unreachable", 3, None, 1, None),
    (r"time exceeded|ttl exceeded", 11, None, 3, None),
    (r"parameter problem", 12, None, 4, None),
    (r"redirect", 5, None, 137, 0),
    (r"source quench", 4, 0, None, None),
    (r"router advertisement", 9, 0, 134, 0),
    (r"router solicitation", 10, 0, 133, 0),
    (r"neighbor sol", None, None, 135, 0),
    (r"neighbor adv", None, None, 136, 0),
    (r"time stamp request|timestamp request", 13, 0, None, None),
    (r"time stamp reply|timestamp reply", 14, 0, None, None),
    (r"address mask request", 17, 0, None, None),
    (r"address mask reply", 18, 0, None, None),
    (r"multicast listener query", None, None, 130, 0),
)


def _icmp_text_numbers(text: pl.Expr, v6: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    itype: pl.Expr = pl.lit(None, pl.Int64)
    icode: pl.Expr = pl.lit(None, pl.Int64)
    for pattern, t4, c4, t6, c6 in reversed(ICMP_TEXT):
        hit = text.str.contains(pattern)
        itype = pl.when(hit).then(pl.when(v6).then(pl.lit(t6, pl.Int64))
                                  .otherwise(pl.lit(t4, pl.Int64))).otherwise(itype)
        icode = pl.when(hit).then(pl.when(v6).then(pl.lit(c6, pl.Int64))
                                  .otherwise(pl.lit(c4, pl.Int64))).otherwise(icode)
    return itype, icode


def _span_text(buf: np.ndarray, out: np.ndarray, rows: np.ndarray, s_col: int,
               e_col: int) -> pa.Array:
    return f.strings(buf, np.where(rows, out[:, s_col], -1),
                     np.where(rows, out[:, e_col], -1)).cast(pa.string())


def _fill(arr: pa.DictionaryArray, value: str) -> pa.Array:
    return pc.fill_null(arr.cast(pa.string()), value)
