"""The DShield submission format: a reader, and :func:`write_dshield` to export events in it.

DShield (SANS Internet Storm Center) collects firewall logs of blocked packets from
volunteers; its client framework (``framework.pl``), psad and many firewall parsers
write one tab-separated line per log entry::

    2001-12-18 14:10:23 -05:00<TAB>12345<TAB>1<TAB>198.51.100.7<TAB>4444<TAB>192.0.2.10
        <TAB>445<TAB>TCP<TAB>S                                   (one line in the file)

that is: date, time and UTC offset; DShield user id; count (how many identical log
lines this one stands for, from ``last message repeated N times``); source IP; source
port; target IP; target port; protocol (``TCP``, ``UDP``, ``ICMP`` or a number); TCP
flags (letters ``SFAPRU12``, optional).  For ICMP the source port field holds the ICMP
type and the target port field the ICMP code (as the framework's iptables parser
writes them).  ``???`` stands for an unknown port or protocol.  IPv6 addresses are
accepted in any notation.

Reading maps the fields to the event schema one for one: ``count`` → ``packets``; the
outcome is blocked (the format only carries blocked packets); flag ``1`` → CWR and ``2``
→ ECE (the two formerly reserved bits, named 1 and 2 by Snort and DShield); the sensor
is ``--sensor``, else ``dshield-<userid>`` (``dshield`` for user id 0 or none).  A time
without an offset is local time in ``--tz``.  Lines of the mail header the framework
writes before the records (``To:``, ``From:``, ``Subject: FORMAT DSHIELD ...``) and blank
lines are ignored; a record whose protocol is ``???`` carries no probe to place and is
counted, not an error.

Writing (:func:`write_dshield`) is the inverse, so a DShield report can be produced
from any input portradar reads; times are written in UTC (``+00:00``) and IPv6
addresses fully expanded, as the framework's validator wants them.  Reader and writer
share this module because they are one format; exporting does not depend on anything
else in ``ingest``.

>>> import io
>>> line = (b"2001-12-18 14:10:23 -05:00\\t12345\\t3\\t198.51.100.7\\t4444\\t192.0.2.10\\t445"
...         b"\\tTCP\\tS\\n")
>>> batch = DshieldReader().parse_bytes(line)
>>> row = batch.to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["packets"], row["dport"], row["tcp_flags"]
('2001-12-18T19:10:23+00:00', 'dshield-12345', 3, 445, 2)
>>> out = io.StringIO()
>>> write_dshield(pa.Table.from_batches([batch]), out, userid=12345)
1
>>> out.getvalue()
'2001-12-18 19:10:23 +00:00\\t12345\\t3\\t198.51.100.7\\t4444\\t192.0.2.10\\t445\\tTCP\\tS\\n'
"""

from __future__ import annotations

import io
import ipaddress
import re
from typing import IO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.events.addresses import key_to_text
from portradar.events.schema import PROTO_NUMBERS, Outcome, make_batch
from portradar.ingest import fields as f
from portradar.ingest.lines import LineReader, head_lines
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone

COLUMNS = ("when", "userid", "count", "src", "sport", "dst", "dport", "proto", "flags")

# statuses; 0 is an event
BLANK, HEADER, FEW_FIELDS, BAD_TIME, BAD_COUNT, BAD_SRC, BAD_DST = 1, 2, 3, 4, 5, 6, 7
BAD_PORT, BAD_PROTO, BAD_FLAGS, UNKNOWN_PROTO = 8, 9, 10, 11
REASONS = {
    FEW_FIELDS: "fewer than 8 tab-separated fields",
    BAD_TIME: "date/time not YYYY-MM-DD HH:MM:SS [+-HH:MM]",
    BAD_COUNT: "user id or count is not a number",
    BAD_SRC: "source IP is not an IPv4 or IPv6 address",
    BAD_DST: "target IP is not an IPv4 or IPv6 address",
    BAD_PORT: "port (or ICMP type/code) is not a number in range",
    BAD_PROTO: "protocol is not TCP, UDP, ICMP or a number 0-255",
    BAD_FLAGS: "TCP flags are not letters of SFAPRU12",
    UNKNOWN_PROTO: "protocol ??? (unknown): no probe to place",
}
QUIET = frozenset({UNKNOWN_PROTO})

FLAGS = f.bit_table({"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20,
                     "2": 0x40, "E": 0x40, "1": 0x80, "C": 0x80})
#: Flag letters written, most significant bit first (CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
FLAG_LETTERS = (("1", 0x80), ("2", 0x40), ("U", 0x20), ("A", 0x10), ("P", 0x08), ("R", 0x04),
                ("S", 0x02), ("F", 0x01))
_UNKNOWN = f.token("???")
_HEADER = re.compile(rb"^(?:To|Cc|Bcc|From|Subject|Date|Reply-To):")
_SNIFF_LINE = re.compile(
    rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: ?[+-]\d\d:?\d\d)?\t\d*\t\d+\t[0-9A-Fa-f.:]+\t"
    rb"[\d?]*\t[0-9A-Fa-f.:]+\t[\d?]*\t[0-9A-Za-z?]*(?:\t[0-9A-Za-z]*)?\r?$")


def _proto_number(text: str) -> int | None:
    if text == "???":
        return -2
    if text.isdigit():
        value = int(text)
        return value if value <= 255 else None
    return PROTO_NUMBERS.get(text.upper())


def _layout() -> tuple[np.ndarray, np.ndarray]:
    """Nine fields, the flags (the ninth) optional."""
    slots = np.arange(len(COLUMNS), dtype=np.int64).reshape(1, -1)
    by_nf = np.full(len(COLUMNS) + 1, -1, np.int64)
    by_nf[len(COLUMNS) - 1:] = 0
    return slots, by_nf


_LAYOUT = _layout()


@register_reader
class DshieldReader(LineReader):
    """DShield tab-separated submission format (framework.pl, psad)."""

    name: ClassVar[str] = "dshield"
    unit: ClassVar[str] = "lines"

    def __init__(self) -> None:
        self._years = YearState()

    @classmethod
    def sniff(cls, head: bytes) -> float:
        lines = [ln for ln in head_lines(head, 60) if not _HEADER.match(ln)]
        if not lines:
            return 0.0
        return sum(1 for ln in lines if _SNIFF_LINE.match(ln)) / len(lines)


    def parse_lines(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    first_line: int, options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        n = len(starts)
        status = np.zeros(n, np.int8)
        blank = ends <= starts
        status[blank] = BLANK
        header = _mail_header(buf, starts, ends) & ~blank
        status[header] = HEADER
        slots, by_nf = _LAYOUT
        s, e, _, layout = f.select_fields(buf, starts, ends, 9, slots, by_nf, len(COLUMNS),
                                          f.NO_TOKEN, f.NO_TOKEN)
        col = {name: (s[j], e[j]) for j, name in enumerate(COLUMNS)}
        matrix, time_st = f.iso_times(buf, *col["when"])
        ts, bad_ts = resolve(matrix, tz=zone(options.tz),
                             reference=reference_time(None, options.reference_time),
                             state=self._years)
        userid, user_st = f.uints(buf, *col["userid"], 1 << 62, f.NO_TOKEN)
        count, count_st = f.uints(buf, *col["count"], 0xFFFF_FFFF, f.NO_TOKEN)
        src_hi, src_lo, src_st = f.addresses(buf, *col["src"])
        dst_hi, dst_lo, dst_st = f.addresses(buf, *col["dst"])
        sport, sport_st = f.uints(buf, *col["sport"], 65535, _UNKNOWN)
        dport, dport_st = f.uints(buf, *col["dport"], 65535, _UNKNOWN)
        proto = f.decode(f.strings(buf, *col["proto"]), _proto_number, -1, np.int64)
        flags, flags_st = f.bits(buf, *col["flags"], FLAGS)
        icmp = (proto == 1) | (proto == 58)

        def bad(mask: np.ndarray, code: int) -> None:
            status[(status == 0) & mask] = code

        bad(layout < 0, FEW_FIELDS)
        bad((time_st != f.OK) | bad_ts, BAD_TIME)
        bad((user_st == f.BAD) | (count_st != f.OK), BAD_COUNT)
        bad(src_st != f.OK, BAD_SRC)
        bad(dst_st != f.OK, BAD_DST)
        bad(proto == -2, UNKNOWN_PROTO)
        bad(proto == -1, BAD_PROTO)
        big = ((sport_st == f.OK) & (sport > 255)) | ((dport_st == f.OK) & (dport > 255))
        bad((sport_st == f.BAD) | (dport_st == f.BAD) | (icmp & big), BAD_PORT)
        bad(flags_st == f.BAD, BAD_FLAGS)
        f.report_skips(status, REASONS, buf, starts, ends, first_line, stats, QUIET)
        keep = np.flatnonzero(status == 0)
        ic = icmp[keep]
        tcp = proto[keep] == 6

        def num(values: np.ndarray, st: np.ndarray, dtype: type, where: np.ndarray) -> pa.Array:
            return f.nullable(values[keep], np.where(where, st[keep], f.MISSING), dtype)

        sensor: object = options.sensor
        if sensor is None:
            ids = np.where(user_st[keep] == f.OK, userid[keep], 0)
            uniq, inverse = np.unique(ids, return_inverse=True)
            names = np.array([f"dshield-{u}" if u else "dshield" for u in uniq.tolist()],
                             dtype=object)
            sensor = pa.DictionaryArray.from_arrays(
                pa.array(np.asarray(inverse, np.int32).reshape(-1)), pa.array(names.tolist()))
        columns = {
            "ts": ts[keep],
            "sensor": sensor,
            "src_hi": src_hi[keep], "src_lo": src_lo[keep],
            "dst_hi": dst_hi[keep], "dst_lo": dst_lo[keep],
            "proto": proto[keep].astype(np.uint8),
            "sport": num(sport, sport_st, np.uint16, ~ic),
            "dport": num(dport, dport_st, np.uint16, ~ic),
            "tcp_flags": num(flags, flags_st, np.uint8, tcp),
            "icmp_type": num(sport, sport_st, np.uint8, ic),
            "icmp_code": num(dport, dport_st, np.uint8, ic),
            "outcome": int(Outcome.BLOCKED),
            "packets": count[keep].astype(np.uint32),
            "format": self.name,
        }
        return make_batch(columns, n=len(keep))


def _mail_header(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines of the framework's mail header; only short, letter-first lines are checked."""
    n = len(starts)
    result = np.zeros(n, bool)
    if not n or not len(buf):
        return result
    nonblank = ends > starts
    first = np.zeros(n, np.uint8)
    first[nonblank] = buf[starts[nonblank]]
    candidates = np.flatnonzero(nonblank & (first >= ord("A")) & (first <= ord("Z")))
    for i in candidates.tolist():  # a handful of lines per file, never per record
        result[i] = bool(_HEADER.match(bytes(buf[starts[i]:min(ends[i], starts[i] + 16)])))
    return result


def write_dshield(events: pa.Table | pa.RecordBatch, stream: IO[str] | IO[bytes], *,
                  userid: int = 0) -> int:
    """Write events (in the event schema) as DShield lines; return how many were written.

    ``stream`` may be a text or a binary file.  Every event becomes one line, its
    ``packets`` the count.
    """
    table = events if isinstance(events, pa.Table) else pa.Table.from_batches([events])
    written = 0
    for batch in table.to_batches(max_chunksize=1 << 18):
        if not batch.num_rows:
            continue
        text = _dshield_lines(batch, userid)
        if isinstance(stream, io.TextIOBase) or "b" not in getattr(stream, "mode", "b"):
            stream.write(text.decode())  # type: ignore[call-overload]
        else:
            stream.write(text)  # type: ignore[arg-type]
        written += batch.num_rows
    return written


def _dshield_lines(batch: pa.RecordBatch, userid: int) -> bytes:
    n = batch.num_rows
    seconds = pc.cast(pc.floor_temporal(batch.column("ts"), unit="second"),
                      pa.timestamp("s", tz="UTC"))
    ts = pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S")
    when = pc.binary_join_element_wise(ts, "+00:00", " ")
    proto = np.asarray(batch.column("proto").to_numpy(zero_copy_only=False), np.int64)
    icmp = pa.array((proto == 1) | (proto == 58))
    sport = pc.if_else(icmp, batch.column("icmp_type"), batch.column("sport").cast(pa.int32()))
    dport = pc.if_else(icmp, batch.column("icmp_code"), batch.column("dport").cast(pa.int32()))
    names = {6: "TCP", 17: "UDP", 1: "ICMP"}
    uniq, inverse = np.unique(proto, return_inverse=True)
    proto_text = pa.array([names.get(p, str(p)) for p in uniq.tolist()]).take(
        pa.array(np.asarray(inverse).reshape(-1)))
    flags = np.asarray(pc.fill_null(batch.column("tcp_flags"), 0).to_numpy(
        zero_copy_only=False), np.int64)
    flags = np.where(proto == 6, flags, 0)
    fu, finv = np.unique(flags, return_inverse=True)
    flag_text = pa.array(["".join(c for c, bit in FLAG_LETTERS if v & bit)
                          for v in fu.tolist()]).take(pa.array(np.asarray(finv).reshape(-1)))
    parts = [
        when,
        pa.array([str(userid)] * n) if n else pa.array([], pa.string()),
        pc.cast(batch.column("packets"), pa.string()),
        _address_text(batch.column("src_hi"), batch.column("src_lo")),
        pc.fill_null(pc.cast(sport, pa.string()), "???"),
        _address_text(batch.column("dst_hi"), batch.column("dst_lo")),
        pc.fill_null(pc.cast(dport, pa.string()), "???"),
        proto_text,
        flag_text,
    ]
    lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*parts, "\t"), "", "\n")
    # the values of a fresh string array lie back to back in its data buffer: the file
    offsets = np.frombuffer(lines.buffers()[1], np.int32, count=n + 1 + lines.offset)
    return lines.buffers()[2].to_pybytes()[offsets[lines.offset]:offsets[-1]]


def _address_text(hi: pa.Array, lo: pa.Array) -> pa.Array:
    """Dotted IPv4 or fully expanded IPv6 text, each distinct address formatted once."""
    pairs = np.stack([np.asarray(hi.to_numpy(zero_copy_only=False), np.uint64),
                      np.asarray(lo.to_numpy(zero_copy_only=False), np.uint64)], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    texts = []
    for h, low in uniq.tolist():
        text = key_to_text(h, low)
        texts.append(ipaddress.IPv6Address(text).exploded if ":" in text else text)
    return pa.array(texts, pa.string()).take(pa.array(np.asarray(inverse).reshape(-1)))
