"""Reader of Zeek (formerly Bro) ``conn.log``: one event per connection.

Both forms Zeek writes are read, even mixed in one input:

* **TSV** with its header: ``#separator \\x09`` (the separator, as a ``\\xHH`` escape),
  then ``#set_separator``, ``#empty_field``, ``#unset_field``, ``#path``, ``#open``,
  ``#fields`` and ``#types``.  Columns are found by name in ``#fields``, so any column
  order and extra columns (``community_id``, MAC addresses, ``ip_proto``) work.  A new
  header block (``#separator`` again, as after rotation when logs are concatenated)
  replaces the old one.  Values equal to ``#unset_field`` (``-``) or ``#empty_field``
  (``(empty)``) are missing.  Lines before any ``#fields`` line are read in the default
  layout, recognised by their number of fields: 20 is Bro's layout without
  ``local_resp`` (up to Bro 2.5), 21 or more the current one (extra trailing columns,
  such as the two MAC addresses, are ignored).
* **JSON lines** (``LogAscii::use_json``), with ``ts`` as epoch seconds or ISO 8601.

Mapping to the event schema: ``ts`` → ``ts``; ``id.orig_h``/``id.orig_p`` → source;
``id.resp_h``/``id.resp_p`` → destination; ``proto`` (``tcp``/``udp``/``icmp``, or the
number in Zeek 7's ``ip_proto``) → ``proto`` (``icmp`` over IPv6 is 58); for ICMP Zeek
stores the type in ``orig_p`` and the code in ``resp_p``, which become ``icmp_type`` and
``icmp_code``; ``orig_pkts`` → ``packets`` (1 when unset); ``orig_ip_bytes`` →
``bytes``; the sensor is ``--sensor`` or ``zeek``.

Outcome from ``conn_state`` (Zeek's ``conn/main.zeek`` documents the states), with the
``history`` letters ``D``/``d`` (payload from originator/responder) deciding the
reset states:

============  ==============================================================  ===========
state         Zeek's meaning                                                  outcome
============  ==============================================================  ===========
S0            attempt seen, no reply                                          unanswered
REJ           attempt rejected (RST to the SYN)                               rejected
RSTOS0        originator sent SYN then RST, no SYN-ACK seen                   unanswered
RSTO          established, originator aborted: without payload this is the    accepted /
              half-open scan of an open port (SYN, SYN-ACK, RST)              established
RSTR, RSTRH   responder sent a RST: before any payload → rejected,            rejected /
              after payload → established                                     established
SF, S1, S2,   established (closed normally, not closed, half closed)          established
S3
SH, SHR, OTH  half-seen or mid-stream traffic; no handshake to judge          unknown
============  ==============================================================  ===========

UDP gets ``S0`` (no reply), ``SF`` (replies) or ``SHR``/``OTH``; ICMP always ``OTH``
(unknown).  Lines of other Zeek logs (``#fields`` without ``id.orig_h``, ``id.resp_h``
and ``proto``) are skipped as "not a conn log"; connections whose transport Zeek could
not tell (``unknown_transport``) are counted but carry no probe.

>>> line = (b"1541350796.901974\\tC54zqz17PXuBv3HkLg\\t192.168.0.26\\t54855\\t54.85.115.89"
...         b"\\t443\\ttcp\\tssl\\t0.153642\\t1147\\t589\\tSF\\tT\\t0\\tShADadfF\\t7\\t1439"
...         b"\\t8\\t921\\t(empty)\\n")
>>> row = ZeekConnReader().parse_bytes(line).to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["dport"], row["outcome"], row["packets"], row["bytes"]
('2018-11-04T16:59:56.901974+00:00', 'zeek', 443, 'established', 7, 1439)
>>> ZeekConnReader.sniff(line)
0.9
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

import numpy as np
import pyarrow as pa

from portradar.events.schema import PROTO_NUMBERS, Outcome, make_batch
from portradar.ingest import fields as f
from portradar.ingest import json_lines as jl
from portradar.ingest.lines import LineReader, head_lines
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone

#: ``#fields`` of conn.log since Zeek 2.x (with ``local_resp``); later columns vary.
CONN_FIELDS = [
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
    "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
    "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
    "tunnel_parents",
]
#: Bro's layout without ``local_resp`` (the logstash ``BRO_CONN`` sample lines).
CONN_FIELDS_OLD = [name for name in CONN_FIELDS if name != "local_resp"]

#: The columns this reader uses.
WANTED = ("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "conn_state",
          "history", "orig_pkts", "orig_ip_bytes", "ip_proto")
REQUIRED = ("ts", "id.orig_h", "id.resp_h", "proto")

# statuses of a line; 0 is an event
BLANK, HEADER, NOT_CONN, FEW_FIELDS, BAD_TS, BAD_SRC, BAD_DST = 1, 2, 3, 4, 5, 6, 7
BAD_PROTO, BAD_PORT, BAD_COUNT, BAD_DIRECTIVE, NO_TRANSPORT = 8, 9, 10, 11, 12
NOT_UTF8, NOT_JSON, NOT_OBJECT = 13, 14, 15
REASONS = {
    NOT_CONN: "not a conn.log record (#fields lacks id.orig_h, id.resp_h or proto, or a "
              "header-less line without a conn_state)",
    FEW_FIELDS: "fewer fields than #fields names",
    BAD_TS: "ts missing or not epoch seconds / ISO 8601",
    BAD_SRC: "id.orig_h missing or not an IP address",
    BAD_DST: "id.resp_h missing or not an IP address",
    BAD_PROTO: "proto missing or not tcp, udp, icmp or a protocol number",
    BAD_PORT: "id.orig_p or id.resp_p is not a port number 0-65535",
    BAD_COUNT: "orig_pkts or orig_ip_bytes is not a count",
    BAD_DIRECTIVE: "malformed header directive",
    NO_TRANSPORT: "transport unknown to Zeek (unknown_transport): no probe",
    NOT_UTF8: jl.REASONS[jl.NOT_UTF8],
    NOT_JSON: jl.REASONS[jl.NOT_JSON],
    NOT_OBJECT: jl.REASONS[jl.NOT_OBJECT],
}
QUIET = frozenset({NO_TRANSPORT})

_JSON_STATUS = {jl.NOT_UTF8: NOT_UTF8, jl.NOT_JSON: NOT_JSON, jl.NOT_OBJECT: NOT_OBJECT,
                jl.BLANK: BLANK}

_STATE_OUTCOME = {
    "S0": Outcome.UNANSWERED, "REJ": Outcome.REJECTED, "RSTOS0": Outcome.UNANSWERED,
    "SF": Outcome.ESTABLISHED, "S1": Outcome.ESTABLISHED, "S2": Outcome.ESTABLISHED,
    "S3": Outcome.ESTABLISHED, "SH": Outcome.UNKNOWN, "SHR": Outcome.UNKNOWN,
    "OTH": Outcome.UNKNOWN,
}
#: States whose outcome depends on whether payload was seen: (without, with payload).
_RESET_OUTCOME = {
    "RSTO": (Outcome.ACCEPTED, Outcome.ESTABLISHED),
    "RSTR": (Outcome.REJECTED, Outcome.ESTABLISHED),
    "RSTRH": (Outcome.REJECTED, Outcome.ESTABLISHED),
}

def _headerless_layouts() -> tuple[np.ndarray, np.ndarray]:
    """Layout 0: Bro without ``local_resp`` (20 fields); layout 1: 21 fields or more."""
    width = len(CONN_FIELDS)
    slots = np.full((2, width), -1, np.int64)
    for j, name in enumerate(WANTED):
        if name in CONN_FIELDS_OLD:
            slots[0, CONN_FIELDS_OLD.index(name)] = j
        if name in CONN_FIELDS:
            slots[1, CONN_FIELDS.index(name)] = j
    by_nf = np.full(width + 1, -1, np.int64)
    by_nf[len(CONN_FIELDS_OLD)] = 0
    by_nf[width] = 1
    return slots, by_nf


_HEADERLESS = _headerless_layouts()

_SNIFF_TSV = re.compile(
    rb"^\d{9,11}(?:\.\d+)?\t\S+\t[0-9A-Fa-f.:]+\t\d+\t[0-9A-Fa-f.:]+\t\d+\t"
    rb"(?:tcp|udp|icmp|unknown_transport)(?:\t[^\t]*){4}\t"
    rb"(?:S0|S1|SF|REJ|S2|S3|RSTO|RSTR|RSTOS0|RSTRH|SH|SHR|OTH)\t")
#: ``conn_state`` text that is none of Zeek's states (outcome unknown; in a headerless
#: line it means the line is from another log, such as dns.log).
UNRECOGNISED = 99


@dataclass
class _Header:
    """What the ``#`` directives of a Zeek TSV log have said so far."""

    separator: int = 9
    set_separator: bytes = b","
    empty: bytes = b"(empty)"
    unset: bytes = b"-"
    path: str | None = None
    fields: list[str] | None = None
    types: list[str] = field(default_factory=list)


def _unescape(text: str) -> bytes:
    r"""Zeek's ``\xHH`` escapes, as in ``#separator \x09``."""
    return re.sub(r"\\x([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)),
                  text).encode("latin-1", "replace")


def _proto_number(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        return value if value <= 255 else None
    if text.lower() == "unknown_transport":
        return -2
    return PROTO_NUMBERS.get(text.upper())


def _has_payload(history: str) -> bool:
    return "D" in history or "d" in history


@register_reader
class ZeekConnReader(LineReader):
    """Zeek / Bro conn.log, TSV (with or without header) or JSON lines."""

    name: ClassVar[str] = "zeek_conn"
    unit: ClassVar[str] = "lines"

    def __init__(self) -> None:
        self._header = _Header()
        self._json: jl.JsonFields | None = None
        self._years = YearState()

    @classmethod
    def sniff(cls, head: bytes) -> float:
        lines = head_lines(head, 50)
        if not lines:
            return 0.0
        if lines[0].startswith(b"#separator"):
            fields_line = next((ln for ln in lines if ln.startswith(b"#fields")), b"")
            if b"id.orig_h" in fields_line and b"conn_state" in fields_line:
                return 1.0
            if any(ln.startswith(b"#path") and ln.split()[-1:] == [b"conn"] for ln in lines):
                return 1.0
            return 0.2  # another Zeek log
        json_hits = sum(1 for ln in lines if ln.lstrip().startswith(b"{")
                        and b'"id.orig_h"' in ln and b'"id.resp_p"' in ln
                        and (b'"conn_state"' in ln or b'"proto"' in ln))
        tsv_hits = sum(1 for ln in lines if _SNIFF_TSV.match(ln))
        return max(json_hits / len(lines), 0.9 * tsv_hits / len(lines))


    def read(self, stream: BinaryIO, *, start_offset: int, options: ReadOptions,
             stats: ReadStats, start_line: int = 1) -> Iterator[ReadChunk]:
        """Read from ``start_offset``, first replaying the header lines before it."""
        if start_offset > 0:
            for line in f.prefix_lines(stream, start_offset, ord("#")):
                self._directive(line)
            stream = f.Positioned(stream, start_offset)  # type: ignore[assignment]
        yield from super().read(stream, start_offset=start_offset, options=options,
                                stats=stats, start_line=start_line)

    # -- chunk -------------------------------------------------------------------------

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
        is_json = nonblank & (first == ord("{"))
        status[is_dir] = HEADER
        out = _Columns(n)

        tsv_rows = np.flatnonzero(nonblank & ~is_dir & ~is_json)
        if len(tsv_rows) or is_dir.any():
            self._tsv(buf, starts, ends, is_dir, tsv_rows, status, out)
        json_rows = np.flatnonzero(is_json)
        if len(json_rows):
            self._json_lines(buf, starts[json_rows], ends[json_rows], json_rows, status, out)

        ts = self._times(out, status, options)
        f.report_skips(status, REASONS, buf, starts, ends, first_line, stats, QUIET)
        keep = np.flatnonzero(status == 0)
        return out.batch(keep, ts, options.sensor or "zeek", self.name)

    def _tsv(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, is_dir: np.ndarray,
             rows: np.ndarray, status: np.ndarray, out: _Columns) -> None:
        """Parse the TSV data lines ``rows``, applying directives in line order."""
        dirs = np.flatnonzero(is_dir)
        bounds = np.searchsorted(rows, dirs)
        begin = 0
        for d, cut in zip(dirs.tolist(), bounds.tolist(), strict=True):
            if cut > begin:
                self._tsv_segment(buf, starts, ends, rows[begin:cut], status, out)
            begin = cut
            if not self._directive(bytes(buf[starts[d]:ends[d]])):
                status[d] = BAD_DIRECTIVE
        if begin < len(rows):
            self._tsv_segment(buf, starts, ends, rows[begin:], status, out)

    def _directive(self, line: bytes) -> bool:
        h = self._header
        text = line.decode("utf-8", "replace")
        if text.startswith("#separator"):
            value = _unescape(text[len("#separator"):].strip())
            if len(value) != 1:
                return False
            self._header = _Header(separator=value[0])
            return True
        parts = line.split(bytes([h.separator]))
        key = parts[0][1:].decode("utf-8", "replace")
        values = [p.decode("utf-8", "replace") for p in parts[1:]]
        if key == "fields":
            h.fields = values
        elif key == "types":
            h.types = values
        elif key == "path" and values:
            h.path = values[0]
        elif key == "set_separator" and values:
            h.set_separator = _unescape(values[0])
        elif key == "empty_field" and values:
            h.empty = _unescape(values[0])
        elif key == "unset_field" and values:
            h.unset = _unescape(values[0])
        return True

    def _tsv_segment(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                     rows: np.ndarray, status: np.ndarray, out: _Columns) -> None:
        h = self._header
        names = h.fields
        if names is not None:
            if any(name not in names for name in REQUIRED):
                status[rows] = NOT_CONN
                return
            slots, by_nf = f.one_layout([names.index(n) if n in names else -1 for n in WANTED])
        else:
            slots, by_nf = _HEADERLESS
            out.headerless[rows] = True
        s, e, _, layout = f.select_fields(buf, starts[rows], ends[rows], h.separator, slots,
                                          by_nf, len(WANTED), f.token(h.unset.decode("latin-1")),
                                          f.token(h.empty.decode("latin-1")))
        status[rows[layout < 0]] = FEW_FIELDS
        for j, name in enumerate(WANTED):
            out.set_text(name, rows, buf, s[j], e[j])

    def _json_lines(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    rows: np.ndarray, status: np.ndarray, out: _Columns) -> None:
        if self._json is None:
            self._json = jl.JsonFields({name: jl.json_path(name) for name in WANTED})
        js, cols = self._json.extract(buf, starts, ends)
        for code, ours in _JSON_STATUS.items():
            status[rows[js == code]] = ours
        for name in WANTED:
            data, s, e = f.string_spans(cols[name])
            out.set_text(name, rows, data, s, e)

    # -- values ------------------------------------------------------------------------

    def _times(self, out: _Columns, status: np.ndarray, options: ReadOptions) -> np.ndarray:
        """Parse every column of ``out`` in place; return the UTC microseconds."""
        ts, ts_st = out.epoch("ts")
        iso = ts_st == f.BAD
        if iso.any():
            fields_, iso_st = out.iso("ts", iso)
            utc, bad = resolve(fields_, tz=zone(options.tz or "UTC"),
                               reference=reference_time(None, options.reference_time),
                               state=self._years)
            ok = iso_st == f.OK
            rows = np.flatnonzero(iso)
            ts[rows[ok]] = utc[ok]
            ts_st[rows[ok & ~bad]] = f.OK
        out.derive(status, ts_st)
        return ts


class _Columns:
    """Text spans of the wanted columns of one chunk, then their parsed values.

    TSV lines point into the chunk, JSON lines into DuckDB's result; each column keeps
    one (buffer, start, end) triple per input kind, parsed separately and merged.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.headerless = np.zeros(n, bool)
        self.values: dict[str, object] = {}

    def set_text(self, name: str, rows: np.ndarray, buf: np.ndarray, s: np.ndarray,
                 e: np.ndarray) -> None:
        self.parts.setdefault(name, []).append((rows, buf, s, e))

    def _spans(self, name: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        return self.parts.get(name, [])

    def uints(self, name: str, maxval: int) -> tuple[np.ndarray, np.ndarray]:
        values = np.zeros(self.n, np.int64)
        status = np.full(self.n, f.MISSING, np.int8)
        for rows, buf, s, e in self._spans(name):
            v, st = f.uints(buf, s, e, maxval, f.NO_TOKEN)
            values[rows] = v
            status[rows] = st
        return values, status

    def epoch(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        values = np.zeros(self.n, np.int64)
        status = np.full(self.n, f.MISSING, np.int8)
        for rows, buf, s, e in self._spans(name):
            v, st = f.decimal_us(buf, s, e, f.NO_TOKEN)
            values[rows] = v
            status[rows] = st
        return values, status

    def iso(self, name: str, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ISO times of the rows in ``where`` (a mask), as a time matrix."""
        wanted = np.flatnonzero(where)
        matrix = np.zeros((len(wanted), f.TIME_COLUMNS), np.int64)
        status = np.full(len(wanted), f.MISSING, np.int8)
        for rows, buf, s, e in self._spans(name):
            pos = np.searchsorted(wanted, rows)
            inside = (pos < len(wanted)) & (wanted[np.minimum(pos, len(wanted) - 1)] == rows)
            if not inside.any():
                continue
            m, st = f.iso_times(buf, s[inside], e[inside])
            matrix[pos[inside]] = m
            status[pos[inside]] = st
        return matrix, status

    def addresses(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hi = np.zeros(self.n, np.uint64)
        lo = np.zeros(self.n, np.uint64)
        status = np.full(self.n, f.MISSING, np.int8)
        for rows, buf, s, e in self._spans(name):
            h, low, st = f.addresses(buf, s, e)
            hi[rows] = h
            lo[rows] = low
            status[rows] = st
        return hi, lo, status

    def decoded(self, name: str, fn: Callable[[str], Any], default: Any,
                dtype: Any) -> np.ndarray:
        values = np.full(self.n, default, dtype=dtype)
        for rows, buf, s, e in self._spans(name):
            values[rows] = f.decode(f.strings(buf, s, e), fn, default, dtype)
        return values

    def derive(self, status: np.ndarray, ts_st: np.ndarray) -> None:
        """Turn the text into event columns, setting each bad line's status."""
        src_hi, src_lo, src_st = self.addresses("id.orig_h")
        dst_hi, dst_lo, dst_st = self.addresses("id.resp_h")
        proto = self.decoded("proto", _proto_number, -1, np.int64)
        ip_proto, ip_proto_st = self.uints("ip_proto", 255)
        proto = np.where(ip_proto_st == f.OK, ip_proto, proto)
        v6 = ~((src_hi == 0) & ((src_lo >> np.uint64(32)) == np.uint64(0xFFFF)))
        proto = np.where((proto == 1) & v6, 58, proto)
        sport, sport_st = self.uints("id.orig_p", 65535)
        dport, dport_st = self.uints("id.resp_p", 65535)
        pkts, pkts_st = self.uints("orig_pkts", 0xFFFF_FFFF)
        nbytes, bytes_st = self.uints("orig_ip_bytes", (1 << 62))
        state = self.decoded("conn_state", _state_code, int(Outcome.UNKNOWN), np.int64)
        payload = self.decoded("history", _has_payload, False, bool)
        reset = state < 0
        without = np.array([int(o[0]) for o in _RESET_OUTCOME.values()])
        with_ = np.array([int(o[1]) for o in _RESET_OUTCOME.values()])
        idx = np.where(reset, -state - 1, 0)
        outcome = np.where(reset, np.where(payload, with_[idx], without[idx]), state)
        foreign = state == UNRECOGNISED
        outcome = np.where(foreign, int(Outcome.UNKNOWN), outcome)

        def bad(mask: np.ndarray, code: int) -> None:
            status[(status == 0) & mask] = code

        bad(self.headerless & foreign, NOT_CONN)
        bad(ts_st != f.OK, BAD_TS)
        bad(src_st != f.OK, BAD_SRC)
        bad(dst_st != f.OK, BAD_DST)
        bad(proto == -1, BAD_PROTO)
        bad(proto == -2, NO_TRANSPORT)
        bad((sport_st == f.BAD) | (dport_st == f.BAD), BAD_PORT)
        bad((pkts_st == f.BAD) | (bytes_st == f.BAD), BAD_COUNT)
        icmp = (proto == 1) | (proto == 58)
        bad(icmp & (((sport_st == f.OK) & (sport > 255)) | ((dport_st == f.OK) & (dport > 255))),
            BAD_PORT)
        self.values = {
            "src_hi": src_hi, "src_lo": src_lo, "dst_hi": dst_hi, "dst_lo": dst_lo,
            "proto": proto, "sport": sport, "sport_st": sport_st, "dport": dport,
            "dport_st": dport_st, "icmp": icmp, "packets": np.where(pkts_st == f.OK, pkts, 1),
            "bytes": nbytes, "bytes_st": bytes_st, "outcome": outcome,
        }

    def batch(self, keep: np.ndarray, ts: np.ndarray, sensor: str, fmt: str) -> pa.RecordBatch:
        v = {name: np.asarray(value)[keep] for name, value in self.values.items()}
        icmp = v["icmp"]
        port_st = np.where(icmp, f.MISSING, 0).astype(np.int8)
        type_st = np.where(icmp, 0, f.MISSING).astype(np.int8)
        columns = {
            "ts": ts[keep],
            "sensor": sensor,
            "src_hi": v["src_hi"], "src_lo": v["src_lo"],
            "dst_hi": v["dst_hi"], "dst_lo": v["dst_lo"],
            "proto": v["proto"].astype(np.uint8),
            "sport": f.nullable(v["sport"], np.maximum(v["sport_st"], port_st), np.uint16),
            "dport": f.nullable(v["dport"], np.maximum(v["dport_st"], port_st), np.uint16),
            "icmp_type": f.nullable(v["sport"], np.maximum(v["sport_st"], type_st), np.uint8),
            "icmp_code": f.nullable(v["dport"], np.maximum(v["dport_st"], type_st), np.uint8),
            "outcome": v["outcome"].astype(np.int32),
            "packets": v["packets"].astype(np.uint32),
            "bytes": f.nullable(v["bytes"], v["bytes_st"], np.uint64),
            "format": fmt,
        }
        return make_batch(columns, n=len(keep))


def _state_code(state: str) -> int:
    """Outcome of a state, or ``-(i + 1)`` for the i-th payload-dependent reset state."""
    if state in _RESET_OUTCOME:
        return -(list(_RESET_OUTCOME).index(state) + 1)
    return int(_STATE_OUTCOME.get(state, UNRECOGNISED))
