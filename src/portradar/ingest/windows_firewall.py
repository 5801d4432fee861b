"""Reader of the Windows Defender Firewall log (``pfirewall.log``, W3C extended format).

The log starts with a header and then has one space-separated line per logged packet::

    #Version: 1.5
    #Software: Microsoft Windows Firewall
    #Time Format: Local
    #Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags
        tcpsyn tcpack tcpwin icmptype icmpcode info path          (one line in the file)

    2024-01-15 10:00:00 DROP TCP 198.51.100.7 192.0.2.10 4444 445 52 S 1234567 0 8192 - - - RECEIVE

Columns are found by name in ``#Fields``, so another order, a missing column or an
extra one (recent Windows adds ``pid``) all work; a header repeated further down (the
log was rotated and files concatenated) replaces the earlier one.  Without any
``#Fields`` line the order above is assumed.  ``-`` is a missing value.

Mapping: ``date`` + ``time`` → ``ts``; they are local time of the logging machine
(``#Time Format: Local``, the only value Windows writes), so ``--tz`` names its zone
as for syslog (default: this machine's); ``#Time Format: UTC`` is honoured too.
``action`` ``DROP`` → blocked, ``ALLOW`` → accepted; ``protocol`` (``TCP``, ``UDP``,
``ICMP``, ``ICMPv6`` or a number) → ``proto``; ``src-ip``/``src-port`` → source,
``dst-ip``/``dst-port`` → destination; ``size`` → ``bytes``; ``tcpflags`` (letters
``A F P R S U``) → ``tcp_flags``; ``tcpsyn`` (the sequence number) → ``tcp_seq``;
``tcpwin`` → ``tcp_window``; ``icmptype``/``icmpcode``.  The sensor is ``--sensor`` or
``windows``.

``path`` says which way the packet went: ``RECEIVE`` (inbound: the probes this tool is
about), ``SEND`` (the machine's own outbound traffic), ``FORWARD``.  The log names no
rule, so the path goes into the ``rule`` column and every line is kept; keep only
``rule = 'RECEIVE'`` to look at inbound probes, otherwise the machine itself may look
like a scanner of the hosts it talks to.

``INFO-EVENTS-LOST`` lines (the firewall could not keep up) carry no packet: they are
counted as such, never an error.

>>> log = (b"#Software: Microsoft Windows Firewall\\n#Time Format: Local\\n"
...        b"#Fields: date time action protocol src-ip dst-ip src-port dst-port size "
...        b"tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\\n\\n"
...        b"2024-01-15 10:00:00 DROP TCP 198.51.100.7 192.0.2.10 4444 445 52 S 1234567 0 "
...        b"8192 - - - RECEIVE\\n")
>>> row = WindowsFirewallReader().parse_bytes(log, ReadOptions(tz="Europe/Berlin")).to_pylist()[0]
>>> row["ts"].isoformat(), row["outcome"], row["dport"], row["tcp_flags"], row["rule"]
('2024-01-15T09:00:00+00:00', 'blocked', 445, 2, 'RECEIVE')
>>> WindowsFirewallReader.sniff(log)
1.0
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa

from portradar.events.schema import PROTO_NUMBERS, Outcome, make_batch
from portradar.ingest import fields as f
from portradar.ingest import iptables_kernel as ik
from portradar.ingest.lines import LineReader, head_lines
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone

#: The ``#Fields`` line Windows writes (Windows 10 1809 and later append ``pid``).
DEFAULT_FIELDS = ["date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port",
                  "dst-port", "size", "tcpflags", "tcpsyn", "tcpack", "tcpwin", "icmptype",
                  "icmpcode", "info", "path"]

WANTED = ("date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port", "dst-port",
          "size", "tcpflags", "tcpsyn", "tcpwin", "icmptype", "icmpcode", "path")
REQUIRED = ("date", "time", "action", "protocol", "src-ip", "dst-ip")

# statuses; 0 is an event
BLANK, HEADER, NO_FIELDS, FEW_FIELDS, BAD_TIME, BAD_SRC, BAD_DST = 1, 2, 3, 4, 5, 6, 7
BAD_PROTO, BAD_PORT, BAD_NUMBER, BAD_ACTION, EVENTS_LOST = 8, 9, 10, 11, 12
REASONS = {
    NO_FIELDS: "#Fields lacks date, time, action, protocol, src-ip or dst-ip",
    FEW_FIELDS: "fewer fields than #Fields names",
    BAD_TIME: "date or time missing or not YYYY-MM-DD HH:MM:SS",
    BAD_SRC: "src-ip is not an IPv4 or IPv6 address",
    BAD_DST: "dst-ip is not an IPv4 or IPv6 address",
    BAD_PROTO: "protocol is not a name or number 0-255",
    BAD_PORT: "src-port or dst-port is not a number 0-65535",
    BAD_NUMBER: "size, tcpflags, tcpsyn, tcpwin, icmptype or icmpcode out of range",
    BAD_ACTION: "action is not DROP, ALLOW or INFO-EVENTS-LOST",
    EVENTS_LOST: "INFO-EVENTS-LOST: the firewall dropped log records",
}
QUIET = frozenset({EVENTS_LOST})

#: Action words → outcome; -1: a lost-events notice.
_ACTIONS = {"DROP": int(Outcome.BLOCKED), "ALLOW": int(Outcome.ACCEPTED),
            "INFO-EVENTS-LOST": -1}
FLAGS = f.bit_table({"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20,
                     "E": 0x40, "C": 0x80})
_DASH = f.token("-")
_SNIFF_LINE = re.compile(
    rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?:DROP|ALLOW|INFO-EVENTS-LOST) \S+ \S+ \S+ ")


def _proto_number(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        return value if value <= 255 else None
    return PROTO_NUMBERS.get(text.upper())


@register_reader
class WindowsFirewallReader(LineReader):
    """Windows Defender Firewall pfirewall.log (W3C extended format)."""

    name: ClassVar[str] = "windows_firewall"
    unit: ClassVar[str] = "lines"

    def __init__(self) -> None:
        self._fields = list(DEFAULT_FIELDS)
        self._utc = False
        self._years = YearState()

    @classmethod
    def sniff(cls, head: bytes) -> float:
        if b"#Software: Microsoft Windows Firewall" in head[:4096]:
            return 1.0
        lines = head_lines(head, 50)
        if not lines:
            return 0.0
        if any(ln.startswith(b"#Fields: date time action protocol") for ln in lines):
            return 1.0
        data = [ln for ln in lines if not ln.startswith(b"#")]
        if not data:
            return 0.0
        return sum(1 for ln in data if _SNIFF_LINE.match(ln)) / len(data)


    def read(self, stream: BinaryIO, *, start_offset: int, options: ReadOptions,
             stats: ReadStats, start_line: int = 1) -> Iterator[ReadChunk]:
        """Read from ``start_offset``, first replaying the header lines before it."""
        if start_offset > 0:
            for line in f.prefix_lines(stream, start_offset, ord("#")):
                self._directive(line.decode("utf-8", "replace"))
            stream = f.Positioned(stream, start_offset)  # type: ignore[assignment]
        yield from super().read(stream, start_offset=start_offset, options=options,
                                stats=stats, start_line=start_line)

    def parse_lines(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    first_line: int, options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        n = len(starts)
        status = np.zeros(n, np.int8)
        nonblank = ends > starts
        first = np.zeros(n, np.uint8)
        if n and len(buf):
            first[nonblank] = buf[starts[nonblank]]
        status[~nonblank] = BLANK
        is_dir = nonblank & (first == ord("#"))
        status[is_dir] = HEADER
        m = len(WANTED)
        s = np.full((m, n), -1, np.int64)
        e = np.full((m, n), -1, np.int64)
        utc = np.zeros(n, bool)

        rows = np.flatnonzero(nonblank & ~is_dir)
        dirs = np.flatnonzero(is_dir)
        cuts = np.searchsorted(rows, dirs).tolist()
        begin = 0
        for d, cut in [*zip(dirs.tolist(), cuts, strict=True), (-1, len(rows))]:
            part = rows[begin:cut]
            if len(part):
                self._segment(buf, starts, ends, part, status, s, e)
                utc[part] = self._utc
            begin = cut
            if d >= 0:
                self._directive(bytes(buf[starts[d]:ends[d]]).decode("utf-8", "replace"))

        col = {name: (s[j], e[j]) for j, name in enumerate(WANTED)}
        matrix, time_st = f.date_and_time(buf, *col["date"], *col["time"])
        matrix[utc & (time_st == f.OK), ik.TK] = ik.TS_ABSOLUTE  # offset column is 0
        ts, bad_ts = resolve(matrix, tz=zone(options.tz),
                             reference=reference_time(None, options.reference_time),
                             state=self._years)
        src_hi, src_lo, src_st = f.addresses(buf, *col["src-ip"])
        dst_hi, dst_lo, dst_st = f.addresses(buf, *col["dst-ip"])
        action = f.decode(f.strings(buf, *col["action"]), lambda w: _ACTIONS.get(w.upper()),
                          -2, np.int64)
        proto = f.decode(f.strings(buf, *col["protocol"]), _proto_number, -1, np.int64)
        sport, sport_st = f.uints(buf, *col["src-port"], 65535, _DASH)
        dport, dport_st = f.uints(buf, *col["dst-port"], 65535, _DASH)
        size, size_st = f.uints(buf, *col["size"], 1 << 40, _DASH)
        flags_s, flags_e = col["tcpflags"]
        dash = (flags_e - flags_s == 1) & (flags_s >= 0)
        dash[dash] = buf[flags_s[dash]] == ord("-")
        flags, flags_st = f.bits(buf, np.where(dash, -1, flags_s), np.where(dash, -1, flags_e),
                                 FLAGS)
        seq, seq_st = f.uints(buf, *col["tcpsyn"], 0xFFFF_FFFF, _DASH)
        win, win_st = f.uints(buf, *col["tcpwin"], 65535, _DASH)
        itype, itype_st = f.uints(buf, *col["icmptype"], 255, _DASH)
        icode, icode_st = f.uints(buf, *col["icmpcode"], 255, _DASH)

        def bad(mask: np.ndarray, code: int) -> None:
            status[(status == 0) & mask] = code

        bad(action == -1, EVENTS_LOST)
        bad(action == -2, BAD_ACTION)
        bad((time_st != f.OK) | bad_ts, BAD_TIME)
        bad(src_st != f.OK, BAD_SRC)
        bad(dst_st != f.OK, BAD_DST)
        bad(proto < 0, BAD_PROTO)
        bad((sport_st == f.BAD) | (dport_st == f.BAD), BAD_PORT)
        bad(np.logical_or.reduce([st == f.BAD for st in (size_st, flags_st, seq_st, win_st,
                                                         itype_st, icode_st)]), BAD_NUMBER)
        f.report_skips(status, REASONS, buf, starts, ends, first_line, stats, QUIET)
        keep = np.flatnonzero(status == 0)

        def num(values: np.ndarray, st: np.ndarray, dtype: type) -> pa.Array:
            return f.nullable(values[keep], st[keep], dtype)

        path_s, path_e = col["path"]
        columns = {
            "ts": ts[keep],
            "sensor": options.sensor or "windows",
            "src_hi": src_hi[keep], "src_lo": src_lo[keep],
            "dst_hi": dst_hi[keep], "dst_lo": dst_lo[keep],
            "proto": proto[keep].astype(np.uint8),
            "sport": num(sport, sport_st, np.uint16),
            "dport": num(dport, dport_st, np.uint16),
            "tcp_flags": num(flags, flags_st, np.uint8),
            "icmp_type": num(itype, itype_st, np.uint8),
            "icmp_code": num(icode, icode_st, np.uint8),
            "outcome": action[keep].astype(np.int32),
            "rule": f.strings(buf, path_s[keep], path_e[keep]),
            "bytes": num(size, size_st, np.uint64),
            "tcp_window": num(win, win_st, np.uint16),
            "tcp_seq": num(seq, seq_st, np.uint32),
            "format": self.name,
        }
        return make_batch(columns, n=len(keep))

    def _directive(self, line: str) -> None:
        key, _, value = line[1:].partition(":")
        key = key.strip().lower()
        if key == "fields":
            self._fields = value.split()
        elif key == "time format":
            self._utc = value.strip().upper() == "UTC"

    def _segment(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray,
                 status: np.ndarray, s: np.ndarray, e: np.ndarray) -> None:
        names = self._fields
        if any(name not in names for name in REQUIRED):
            status[rows] = NO_FIELDS
            return
        slots, by_nf = f.one_layout([names.index(n) if n in names else -1 for n in WANTED])
        cs, ce, _, layout = f.select_fields(buf, starts[rows], ends[rows], ord(" "), slots,
                                            by_nf, len(WANTED), f.NO_TOKEN, f.NO_TOKEN)
        status[rows[layout < 0]] = FEW_FIELDS
        s[:, rows] = cs
        e[:, rows] = ce
