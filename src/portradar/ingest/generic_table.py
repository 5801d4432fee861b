"""Reader of any CSV or JSON-lines table of connections, with an explicit column mapping.

For exports no dedicated reader knows (a SIEM query, a cloud flow log turned into CSV,
a spreadsheet), the user says which column holds what::

    GenericTableReader(mapping={"ts": "time", "src": "source", "dst": "dest",
                                "dport": "port", "proto": "protocol"},
                       fmt="csv", ts_format="iso")

Keys of ``mapping`` are event fields (:data:`TARGETS`); values are column names (CSV
header names, or JSON keys; a JSON value starting with ``$`` is a JSONPath such as
``$.flow.src``).  Unmapped fields keep their own name, so a table whose columns are
already called ``ts``, ``src``, ``dst``, ``proto``, ``dport`` ... needs no mapping at
all.  ``ts``, ``src``, ``dst`` and ``proto`` are required per row.

* ``fmt``: ``csv`` (first line is the header; quoted fields with a delimiter inside are
  fine, a quoted field spanning lines is not), ``jsonl``, or ``auto`` (JSON lines when
  the first line starts with ``{``).  ``delimiter``: ``,`` ``;`` ``|`` or tab, guessed
  from the header when not given.
* ``ts_format``: ``auto`` (epoch seconds when the value is a decimal number, else ISO
  8601), ``epoch``, ``epoch_ms``, ``epoch_us``, ``iso``, or a ``strptime`` pattern such as
  ``%d/%m/%Y %H:%M:%S``.  Times without an offset are local time in ``--tz``.
* ``proto``: a name (``tcp``, ``UDP``, ``icmp``) or number; ``tcp_flags``: a number or
  letters (``S``, ``SA``, ``FPU``); ``outcome``: one of portradar's outcome words
  (``blocked``, ``rejected``, ``accepted``, ``unanswered``, ``established``,
  ``unknown``) or a firewall action word read like an iptables log prefix (``DROP``,
  ``deny``, ``ALLOW``, ``REJECT``; ``--action WORD=OUTCOME`` overrides), default
  unknown; ``packets`` defaults to 1; ``sensor`` to ``--sensor``, the column, or
  ``generic``.

The registry's instance (``portradar ingest --format generic``) uses the default
mapping and ``fmt="auto"``; its :meth:`sniff` is always 0, so a table is never read
as generic by guessing.

>>> data = (b"time,source,dest,port,protocol,action\\n"
...         b"2026-01-02T03:04:05Z,198.51.100.7,192.0.2.1,445,tcp,deny\\n")
>>> reader = GenericTableReader(mapping={"ts": "time", "src": "source", "dst": "dest",
...                                      "dport": "port", "proto": "protocol",
...                                      "outcome": "action"})
>>> row = reader.parse_bytes(data).to_pylist()[0]
>>> row["ts"].isoformat(), row["dport"], row["proto"], row["outcome"], row["sensor"]
('2026-01-02T03:04:05+00:00', 445, 6, 'blocked', 'generic')
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from portradar.errors import InputError
from portradar.events.schema import PROTO_NUMBERS, Outcome, make_batch
from portradar.ingest import fields as f
from portradar.ingest import json_lines as jl
from portradar.ingest.iptables import outcome_for_prefix
from portradar.ingest.lines import LineReader
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_time import (
    YearState,
    local_to_utc,
    reference_time,
    resolve,
    zone,
)

#: Event fields a column can be mapped to (``src``/``dst`` are address texts).
TARGETS = ("ts", "src", "dst", "proto", "sport", "dport", "tcp_flags", "icmp_type",
           "icmp_code", "outcome", "rule", "in_iface", "out_iface", "packets", "bytes", "ttl",
           "sensor")
REQUIRED = ("ts", "src", "dst", "proto")
TS_FORMATS = ("auto", "epoch", "epoch_ms", "epoch_us", "iso")
DELIMITERS = (",", "\t", ";", "|")

# statuses; 0 is an event
BLANK, HEADER, BAD_ROW, NOT_UTF8, NOT_JSON, NOT_OBJECT = 1, 2, 3, 4, 5, 6
BAD_TS, BAD_SRC, BAD_DST, BAD_PROTO, BAD_PORT, BAD_NUMBER = 7, 8, 9, 10, 11, 12
REASONS = {
    BAD_ROW: "CSV row with a different number of columns than the header",
    NOT_UTF8: jl.REASONS[jl.NOT_UTF8],
    NOT_JSON: jl.REASONS[jl.NOT_JSON],
    NOT_OBJECT: jl.REASONS[jl.NOT_OBJECT],
    BAD_TS: "time missing or not in the expected format",
    BAD_SRC: "source address missing or not an IPv4 or IPv6 address",
    BAD_DST: "destination address missing or not an IPv4 or IPv6 address",
    BAD_PROTO: "protocol missing or not a name or number 0-255",
    BAD_PORT: "port is not a number 0-65535",
    BAD_NUMBER: "a count, flag, ICMP or TTL value is out of range",
}
_JSON_STATUS = {jl.BLANK: BLANK, jl.NOT_UTF8: NOT_UTF8, jl.NOT_JSON: NOT_JSON,
                jl.NOT_OBJECT: NOT_OBJECT}
FLAGS = f.bit_table({"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20,
                     "E": 0x40, "C": 0x80, "W": 0x80, ".": 0x10,
                     "f": 0x01, "s": 0x02, "r": 0x04, "p": 0x08, "a": 0x10, "u": 0x20,
                     "e": 0x40, "c": 0x80, "w": 0x80})


def parse_mapping(text: str) -> dict[str, str]:
    """The mapping of a ``--map`` option: ``field=column`` pairs separated by commas.

    >>> parse_mapping("ts=time, src=source,dst=$.server.ip")
    {'ts': 'time', 'src': 'source', 'dst': '$.server.ip'}
    >>> parse_mapping("port=dpt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    portradar.errors.InputError: --map: cannot map to 'port'; event fields are ts, src, ...
    """
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        target, sep, column = item.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not column:
            raise InputError(f"--map: {item.strip()!r} is not FIELD=COLUMN")
        if target not in TARGETS:
            raise InputError(f"--map: cannot map to {target!r}; event fields are "
                             f"{', '.join(TARGETS)}")
        mapping[target] = column
    return mapping


def _proto_number(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        value = int(text)
        return value if value <= 255 else None
    return PROTO_NUMBERS.get(text.upper())


@register_reader
class GenericTableReader(LineReader):
    """Any CSV or JSON-lines table, with a column mapping (never sniffed)."""

    name: ClassVar[str] = "generic"
    unit: ClassVar[str] = "lines"

    def __init__(self, mapping: Mapping[str, str] | None = None, fmt: str = "auto",
                 ts_format: str = "auto", delimiter: str | None = None) -> None:
        unknown = set(mapping or {}) - set(TARGETS)
        if unknown:
            raise InputError(f"cannot map to {sorted(unknown)}: event fields are "
                             f"{', '.join(TARGETS)}")
        if fmt not in ("auto", "csv", "jsonl"):
            raise InputError(f"table format {fmt!r}: use csv, jsonl or auto")
        if ts_format not in TS_FORMATS and "%" not in ts_format:
            raise InputError(f"time format {ts_format!r}: use {', '.join(TS_FORMATS)} "
                             "or a strptime pattern such as %Y-%m-%d %H:%M:%S")
        if delimiter is not None and len(delimiter) != 1:
            raise InputError(f"delimiter {delimiter!r} must be one character")
        self.mapping = {t: t for t in TARGETS} | dict(mapping or {})
        self.fmt = fmt
        self.ts_format = ts_format
        self.delimiter = delimiter
        self._header: list[str] | None = None
        self._json: jl.JsonFields | None = None
        self._years = YearState()

    @classmethod
    def sniff(cls, head: bytes) -> float:
        return 0.0


    def read(self, stream: BinaryIO, *, start_offset: int, options: ReadOptions,
             stats: ReadStats, start_line: int = 1) -> Iterator[ReadChunk]:
        """Read from ``start_offset``, first reading the CSV header before it."""
        if start_offset > 0:
            first = f.prefix_lines(stream, start_offset, None)
            if first:
                if self.fmt == "auto":
                    self.fmt = "jsonl" if first[0].lstrip()[:1] == b"{" else "csv"
                if self.fmt == "csv" and self._header is None:
                    self._read_header(first[0])
            stream = f.Positioned(stream, start_offset)  # type: ignore[assignment]
        yield from super().read(stream, start_offset=start_offset, options=options,
                                stats=stats, start_line=start_line)

    def parse_lines(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    first_line: int, options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        n = len(starts)
        status = np.zeros(n, np.int8)
        nonblank = np.flatnonzero(ends > starts)
        status[ends <= starts] = BLANK
        if self.fmt == "auto" and len(nonblank):
            self.fmt = "jsonl" if buf[starts[nonblank[0]]] == ord("{") else "csv"
        if self.fmt == "jsonl":
            rows, cols = self._jsonl(buf, starts, ends, status)
        else:
            rows, cols = self._csv(buf, starts, ends, nonblank, status)
        return self._events(rows, cols, status, buf, starts, ends, first_line, options, stats)

    # -- input forms -----------------------------------------------------------------

    def _jsonl(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               status: np.ndarray) -> tuple[np.ndarray, dict[str, pa.Array]]:
        if self._json is None:
            self._json = jl.JsonFields({
                t: (c if c.startswith("$") else jl.json_path(c)) for t, c in self.mapping.items()})
        js, cols = self._json.extract(buf, starts, ends)
        for code, ours in _JSON_STATUS.items():
            status[js == code] = ours
        return np.arange(len(starts)), cols

    def _csv(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, nonblank: np.ndarray,
             status: np.ndarray) -> tuple[np.ndarray, dict[str, pa.Array]]:
        empty: dict[str, pa.Array] = {}
        if self._header is None and len(nonblank):
            h = int(nonblank[0])
            self._read_header(bytes(buf[starts[h]:ends[h]]))
            status[h] = HEADER
            nonblank = nonblank[1:]
        if self._header is None or not len(nonblank):
            return np.zeros(0, np.int64), empty
        names = self._header
        # one record per line: a line with an odd number of quotes or bad UTF-8 is bad
        # by itself, and is kept out of the block so it cannot swallow the next lines
        s, e = starts[nonblank], ends[nonblank]
        utf8 = f.utf8_valid(buf, s, e)
        even = f.count_byte(buf, s, e, ord('"')) % 2 == 0
        status[nonblank[~utf8]] = NOT_UTF8
        status[nonblank[utf8 & ~even]] = BAD_ROW
        lines = nonblank[utf8 & even]
        if not len(lines):
            return np.zeros(0, np.int64), empty
        invalid: list[int] = []

        def on_invalid(row: pcsv.InvalidRow) -> str:
            invalid.append(row.number if row.number is not None else -1)
            return "skip"

        block = f.join_lines(buf, starts[lines], ends[lines])
        try:
            table = pcsv.read_csv(
                io.BytesIO(block.tobytes()),
                read_options=pcsv.ReadOptions(column_names=names, use_threads=False),
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter,
                                                invalid_row_handler=on_invalid),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowInvalid, ValueError):
            status[lines] = BAD_ROW
            return np.zeros(0, np.int64), empty
        bad_rows = np.array(sorted({i - 1 for i in invalid if 0 < i <= len(lines)}), np.int64)
        status[lines[bad_rows]] = BAD_ROW
        rows = np.delete(lines, bad_rows)
        if len(rows) != table.num_rows:  # cannot happen with balanced quotes; be safe
            status[lines] = BAD_ROW
            return np.zeros(0, np.int64), empty
        cols = {t: table.column(c).combine_chunks() for t, c in self.mapping.items()
                if c in names}
        return rows, cols

    def _read_header(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if self.delimiter is None:
            self.delimiter = max(DELIMITERS, key=text.count)
        try:
            header = pcsv.read_csv(io.BytesIO(text.encode() + b"\n"),
                                   parse_options=pcsv.ParseOptions(delimiter=self.delimiter))
        except (pa.ArrowInvalid, ValueError) as exc:
            raise InputError(f"generic table: cannot read the CSV header {text[:80]!r}") from exc
        self._header = [name.strip() for name in header.column_names]
        missing = [f"{t} ({self.mapping[t]!r})" for t in REQUIRED
                   if self.mapping[t] not in self._header]
        if missing:
            raise InputError(
                f"generic table: no column for {', '.join(missing)} in the header "
                f"{self._header}; map them, e.g. --map ts=time,src=source")

    # -- values ------------------------------------------------------------------------

    def _events(self, rows: np.ndarray, cols: dict[str, pa.Array], status: np.ndarray,
                buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, first_line: int,
                options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        m = len(rows)

        def spans(target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if target in cols:
                return f.string_spans(cols[target])
            return np.zeros(1, np.uint8), np.full(m, -1, np.int64), np.full(m, -1, np.int64)

        def uint(target: str, maxval: int) -> tuple[np.ndarray, np.ndarray]:
            return f.uints(*spans(target), maxval, f.NO_TOKEN)

        def text(target: str) -> pa.Array:
            return cols.get(target, pa.nulls(m, pa.string()))

        ts, ts_st = self._times(spans("ts"), text("ts"), options)
        src_hi, src_lo, src_st = f.addresses(*spans("src"))
        dst_hi, dst_lo, dst_st = f.addresses(*spans("dst"))
        proto = f.decode(pc.utf8_trim_whitespace(text("proto")).dictionary_encode(),
                         _proto_number, -1, np.int64)
        sport, sport_st = uint("sport", 65535)
        dport, dport_st = uint("dport", 65535)
        flags, flags_st = uint("tcp_flags", 255)
        letters, letters_st = f.bits(*spans("tcp_flags"), FLAGS)
        flags = np.where(flags_st == f.BAD, letters, flags)
        flags_st = np.where(flags_st == f.BAD, letters_st, flags_st)
        itype, itype_st = uint("icmp_type", 255)
        icode, icode_st = uint("icmp_code", 255)
        packets, packets_st = uint("packets", 0xFFFF_FFFF)
        nbytes, bytes_st = uint("bytes", 1 << 62)
        ttl, ttl_st = uint("ttl", 255)
        labels = set(Outcome.labels())
        outcome = f.decode(
            pc.utf8_trim_whitespace(text("outcome")).dictionary_encode(),
            lambda w: int(Outcome[w.upper()]) if w.lower() in labels
            else int(outcome_for_prefix(w, options.actions)),
            int(outcome_for_prefix(None, options.actions)), np.int32)

        sub = np.zeros(m, np.int8)

        def bad(mask: np.ndarray, code: int) -> None:
            sub[(sub == 0) & mask] = code

        bad(ts_st != f.OK, BAD_TS)
        bad(src_st != f.OK, BAD_SRC)
        bad(dst_st != f.OK, BAD_DST)
        bad(proto < 0, BAD_PROTO)
        bad((sport_st == f.BAD) | (dport_st == f.BAD), BAD_PORT)
        bad(np.logical_or.reduce([st == f.BAD for st in (flags_st, itype_st, icode_st,
                                                         packets_st, bytes_st, ttl_st)]),
            BAD_NUMBER)
        ok_rows = status[rows] == 0
        status[rows[ok_rows]] = sub[ok_rows]
        f.report_skips(status, REASONS, buf, starts, ends, first_line, stats)
        keep_mask = ok_rows & (sub == 0)
        keep = np.flatnonzero(keep_mask)
        take = pa.array(keep, pa.int64())

        def num(values: np.ndarray, st: np.ndarray, dtype: type) -> pa.Array:
            return f.nullable(values[keep], st[keep], dtype)

        sensor: object = options.sensor
        if sensor is None:
            sensor = pc.fill_null(pc.if_else(pc.equal(text("sensor").take(take), ""),
                                             pa.scalar(None, pa.string()),
                                             text("sensor").take(take)), "generic")

        def label(target: str) -> pa.Array:
            values = text(target).take(take)
            return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)

        columns = {
            "ts": ts[keep],
            "sensor": sensor,
            "src_hi": src_hi[keep], "src_lo": src_lo[keep],
            "dst_hi": dst_hi[keep], "dst_lo": dst_lo[keep],
            "proto": proto[keep].astype(np.uint8),
            "sport": num(sport, sport_st, np.uint16),
            "dport": num(dport, dport_st, np.uint16),
            "tcp_flags": num(flags, flags_st, np.uint8),
            "icmp_type": num(itype, itype_st, np.uint8),
            "icmp_code": num(icode, icode_st, np.uint8),
            "outcome": outcome[keep],
            "rule": label("rule"),
            "in_iface": label("in_iface"),
            "out_iface": label("out_iface"),
            "packets": np.where(packets_st == f.OK, packets, 1)[keep].astype(np.uint32),
            "bytes": num(nbytes, bytes_st, np.uint64),
            "ttl": num(ttl, ttl_st, np.uint8),
            "format": self.name,
        }
        return make_batch(columns, n=len(keep))

    def _times(self, span: tuple[np.ndarray, np.ndarray, np.ndarray], text: pa.Array,
               options: ReadOptions) -> tuple[np.ndarray, np.ndarray]:
        """UTC microseconds and statuses of the time column, per ``ts_format``."""
        buf, s, e = span
        fmt = self.ts_format
        tz = zone(options.tz)
        if fmt == "epoch_us":
            return f.uints(buf, s, e, 1 << 62, f.NO_TOKEN)
        if fmt == "epoch_ms":
            ms, st = f.uints(buf, s, e, 1 << 52, f.NO_TOKEN)
            return ms * 1000, st
        if "%" in fmt:
            parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
            st = np.where(np.asarray(parsed.is_valid().to_numpy(zero_copy_only=False), bool),
                          f.OK, f.BAD).astype(np.int8)
            us = np.asarray(pc.fill_null(parsed.cast(pa.int64()), 0).to_numpy(
                zero_copy_only=False), np.int64)
            if "%z" not in fmt:
                us = local_to_utc(us, tz)
            return us, st
        us = np.zeros(len(s), np.int64)
        st = np.full(len(s), f.BAD, np.int8)
        if fmt in ("auto", "epoch"):
            us, st = f.decimal_us(buf, s, e, f.NO_TOKEN)
        if fmt in ("auto", "iso"):
            iso = st != f.OK
            if iso.any():
                matrix, iso_st = f.iso_times(buf, s[iso], e[iso])
                utc, bad = resolve(matrix, tz=tz,
                                   reference=reference_time(None, options.reference_time),
                                   state=self._years)
                rows = np.flatnonzero(iso)
                us[rows] = utc
                st[rows] = np.where((iso_st == f.OK) & ~bad, f.OK, f.BAD)
        return us, st
