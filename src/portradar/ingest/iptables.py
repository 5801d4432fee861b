"""Reader of Linux netfilter LOG lines: iptables, ip6tables and nftables ``log`` rules.

The byte-level work is done by the compiled kernel in
:mod:`portradar.ingest.iptables_kernel`; this module turns its columns into event
batches: timestamps (:mod:`portradar.ingest.syslog_time`), strings, and the
*outcome* derived from the log prefix.

Outcome from the prefix (the rule name the admin chose), first match wins, on the
upper-cased prefix:

1. ``--action PREFIX=OUTCOME`` given by the user (exact prefix, or ``*`` for the
   default of unrecognised prefixes);
2. a UniFi action tag ``[RULESET-A-2000]`` (A accepted, D blocked, R rejected);
3. ``REJECT`` or ``REJ`` → rejected;
4. ``DROP``, ``BLOCK``, ``DENY``, ``INVALID``, ``REFUSE`` → blocked
   (``[UFW BLOCK]``, ``[UFW LIMIT BLOCK]``, Shorewall's ``...:DROP:``, ``policy DROP``);
5. ``ACCEPT``, ``ALLOW``, ``PASS``, ``PERMIT`` → accepted (``[UFW ALLOW]``);
6. anything else, or no prefix → unknown.

The sensor is ``--sensor`` or else the syslog host name of each line, so one central
log of many firewalls yields one sensor per firewall.

>>> reader = IptablesReader()
>>> line = (b"Nov 26 10:00:00 fw kernel: [12.5] [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.7 "
...         b"DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=240 ID=54321 PROTO=TCP SPT=4444 "
...         b"DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0\\n")
>>> batch = reader.parse_bytes(line, ReadOptions(tz="UTC", year=2026))
>>> row = batch.to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["rule"], row["outcome"], row["dport"]
('2026-11-26T10:00:00+00:00', 'fw', '[UFW BLOCK]', 'blocked', 445)
>>> row["tcp_flags"], row["ttl"], row["ip_id"]
(2, 240, 54321)
>>> IptablesReader.sniff(line)
1.0
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.events.schema import Outcome, make_batch
from portradar.ingest import iptables_kernel as k
from portradar.ingest.lines import LineReader, head_lines
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone

#: UniFi (Ubiquiti) prefixes carry the rule's action as a letter: [WAN_IN-A-2000].
_UNIFI_TAG = re.compile(r"\[[A-Z0-9_]+-([ADR])-\d+\]")
_UNIFI_ACTIONS = {"A": Outcome.ACCEPTED, "D": Outcome.BLOCKED, "R": Outcome.REJECTED}

_RULES: tuple[tuple[re.Pattern[str], Outcome], ...] = (
    (re.compile(r"REJECT|(?<![A-Z])REJ(?![A-Z])"), Outcome.REJECTED),
    (re.compile(r"DROP|BLOCK|DENY|DENIED|INVALID|REFUSE"), Outcome.BLOCKED),
    (re.compile(r"ACCEPT|ALLOW|PASS|PERMIT"), Outcome.ACCEPTED),
)

_SNIFF_LINE = re.compile(rb"(?:^|[\s:\]])(?:IN=\S*\s.*)?SRC=\S+ DST=\S+ .*PROTO=\S+")

#: Lines longer than this in a snippet shown to the user are cut.
SNIPPET_CHARS = 100


def outcome_for_prefix(prefix: str | None, actions: dict[str, str] | None = None) -> Outcome:
    """The outcome a log prefix implies (see the module doc for the rules).

    >>> outcome_for_prefix("[UFW ALLOW]"), outcome_for_prefix("Shorewall:net2fw:DROP:")
    (<Outcome.ACCEPTED: 3>, <Outcome.BLOCKED: 1>)
    >>> outcome_for_prefix("[WAN_LOCAL-A-2000] Block All Traffic")
    <Outcome.ACCEPTED: 3>
    >>> outcome_for_prefix("fw-in", {"fw-in": "rejected"})
    <Outcome.REJECTED: 2>
    >>> outcome_for_prefix(None), outcome_for_prefix("LOG", {"*": "blocked"})
    (<Outcome.UNKNOWN: 0>, <Outcome.BLOCKED: 1>)
    """
    actions = actions or {}
    text = (prefix or "").strip()
    if text in actions:
        return Outcome[actions[text].upper()]
    upper = text.upper()
    tag = _UNIFI_TAG.search(upper)
    if tag:
        return _UNIFI_ACTIONS[tag.group(1)]
    for pattern, outcome in _RULES:
        if pattern.search(upper):
            return outcome
    if "*" in actions:
        return Outcome[actions["*"].upper()]
    return Outcome.UNKNOWN


def _dictionary(buf: np.ndarray, fields: np.ndarray, keep: np.ndarray, codes: np.ndarray,
                first: np.ndarray, start_col: int, end_col: int) -> pa.DictionaryArray:
    """A dictionary column from :func:`~portradar.ingest.iptables_kernel.encode_span_columns`
    output: ``codes`` per kept row (-1: null) and the kept row where each code first
    appears."""
    rows = keep[first]
    words = [bytes(buf[fields[r, start_col]:fields[r, end_col]]).decode("utf-8", "replace")
             for r in rows]
    missing = codes < 0
    indices = pa.array(codes, mask=missing if missing.any() else None)
    return pa.DictionaryArray.from_arrays(indices, pa.array(words, pa.string()))


#: The numeric columns of the kernel's matrix that become event columns, in the order
#: :func:`~portradar.ingest.iptables_kernel.compact_columns` returns them.
_VALUE_NAMES = ("proto", "sport", "dport", "tcp_flags", "icmp_type", "icmp_code", "bytes",
                "ttl", "ip_id", "tcp_window", "tcp_seq")
_VALUE_COLUMNS = np.array([k.PR, k.SP, k.DP, k.FL, k.IT, k.IC, k.LN, k.TT, k.ID, k.WN, k.SQ],
                          dtype=np.int64)
_VALUE_INDEX = {name: j for j, name in enumerate(_VALUE_NAMES)}
_NUMPY_TYPES = {pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32,
                pa.uint64(): np.uint64}
#: The string columns (start and end offsets): host (sensor), prefix (rule), IN=, OUT=.
_SPAN_STARTS = np.array([k.HS, k.PS, k.IS, k.OS], dtype=np.int64)
_SPAN_ENDS = np.array([k.HE, k.PE, k.IE, k.OE], dtype=np.int64)


@register_reader
class IptablesReader(LineReader):
    """Linux netfilter LOG lines (iptables, nftables, UFW, Shorewall): dmesg, syslog, journald."""

    name: ClassVar[str] = "iptables"
    unit: ClassVar[str] = "lines"

    def __init__(self) -> None:
        self._years = YearState()
        self._years_initialised = False

    @classmethod
    def sniff(cls, head: bytes) -> float:
        lines = head_lines(head, 50)
        if not lines:
            return 0.0
        hits = sum(1 for ln in lines if _SNIFF_LINE.search(ln))
        return hits / len(lines)


    def parse_lines(
        self,
        buf: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        first_line: int,
        options: ReadOptions,
        stats: ReadStats,
    ) -> pa.RecordBatch:
        if not self._years_initialised:
            self._years = YearState(year=options.year)
            self._years_initialised = True
        fields, addr = k.parse_lines(buf, starts, ends)
        status = fields[:, k.ST]
        tz = zone(options.tz)
        ts, bad_ts = resolve(
            fields,
            tz=tz,
            reference=reference_time(None, options.reference_time),
            state=self._years,
            boot_time=options.boot_time,
        )
        status = np.where((status == k.OK) & bad_ts, k.BAD_TIMESTAMP, status)
        self._report_skips(status, buf, starts, ends, first_line, stats)
        keep = np.flatnonzero(status == k.OK)
        values, valid, nulls, a = k.compact_columns(fields, addr, keep, _VALUE_COLUMNS)
        n = len(keep)

        def number(name: str, dtype: pa.DataType) -> pa.Array:
            j = _VALUE_INDEX[name]
            data = values[j].astype(_NUMPY_TYPES[dtype])
            bitmap = pa.py_buffer(valid[j]) if nulls[j] else None
            return pa.Array.from_buffers(dtype, n, [bitmap, pa.py_buffer(data)],
                                         null_count=int(nulls[j]))

        codes, first, ncodes = k.encode_span_columns(buf, fields, keep, _SPAN_STARTS,
                                                      _SPAN_ENDS)
        strings = [_dictionary(buf, fields, keep, codes[q], first[q, :ncodes[q]],
                               int(_SPAN_STARTS[q]), int(_SPAN_ENDS[q]))
                   for q in range(len(_SPAN_STARTS))]
        host, rule, in_iface, out_iface = strings
        sensor: object = options.sensor or _fill_null(host, "default")
        outcome_codes = np.array(
            [int(outcome_for_prefix(p, options.actions)) for p in rule.dictionary.to_pylist()]
            + [int(outcome_for_prefix(None, options.actions))],
            dtype=np.int32,
        )
        # rows without a prefix (code -1) take the last entry: the outcome of no prefix
        outcome = outcome_codes[codes[1]]

        columns = {
            "ts": ts[keep],
            "sensor": sensor,
            "src_hi": a[0],
            "src_lo": a[1],
            "dst_hi": a[2],
            "dst_lo": a[3],
            "proto": values[_VALUE_INDEX["proto"]].astype(np.uint8),
            "sport": number("sport", pa.uint16()),
            "dport": number("dport", pa.uint16()),
            "tcp_flags": number("tcp_flags", pa.uint8()),
            "icmp_type": number("icmp_type", pa.uint8()),
            "icmp_code": number("icmp_code", pa.uint8()),
            "outcome": outcome,
            "rule": rule,
            "in_iface": in_iface,
            "out_iface": out_iface,
            "bytes": number("bytes", pa.uint64()),
            "ttl": number("ttl", pa.uint8()),
            "ip_id": number("ip_id", pa.uint16()),
            "tcp_window": number("tcp_window", pa.uint16()),
            "tcp_seq": number("tcp_seq", pa.uint32()),
            "format": self.name,
        }
        return make_batch(columns, n=len(keep))

    @staticmethod
    def _report_skips(status: np.ndarray, buf: np.ndarray, starts: np.ndarray,
                      ends: np.ndarray, first_line: int, stats: ReadStats) -> None:
        bad = np.flatnonzero((status != k.OK) & (status != k.BLANK))
        if not len(bad):
            return
        codes = status[bad]
        first_of = {int(c): int(bad[np.argmax(codes == c)]) for c in np.unique(codes)}
        # report in line order, so strict mode names the first bad line
        for code, i in sorted(first_of.items(), key=lambda item: item[1]):
            stats.skip(k.REASONS.get(code, "malformed line"), line=first_line + i,
                       count=int(np.count_nonzero(codes == code)),
                       detail=_snippet(buf, int(starts[i]), int(ends[i])))


def _snippet(buf: np.ndarray, start: int, end: int) -> str:
    text = bytes(buf[start:min(end, start + SNIPPET_CHARS)]).decode("utf-8", "replace")
    return repr(text) + ("..." if end - start > SNIPPET_CHARS else "")


def _fill_null(arr: pa.DictionaryArray, value: str) -> pa.DictionaryArray:
    """Replace nulls of a dictionary array by ``value``."""
    if not arr.null_count:
        return arr
    words = arr.dictionary.to_pylist()
    if value not in words:
        words.append(value)
    code = words.index(value)
    indices = pc.fill_null(arr.indices, pa.scalar(code, pa.int32()))
    return pa.DictionaryArray.from_arrays(indices, pa.array(words, pa.string()))
