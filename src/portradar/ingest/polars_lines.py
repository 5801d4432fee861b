"""Line readers written as Polars expressions and numba kernels: the vendor readers' base.

The vendor firewall formats (Cisco ASA, Juniper, MikroTik, Palo Alto, FortiGate, CEF)
are each a syslog header and a handful of message shapes.  A reader subclasses
:class:`PolarsLineReader`, sets :attr:`~PolarsLineReader.sniff_pattern`, and implements
only :meth:`~PolarsLineReader.parse_frame`, which turns the column ``line`` into text and
number columns (the contract is :data:`FRAME_COLUMNS`), using the compiled scanners of
:mod:`portradar.ingest.syslog_header` and :mod:`portradar.ingest.text_fields` and Polars
expressions (Rust regexes) for the rest: no Python object per line.  This module does the
rest, the same way for every format:

* the chunk's lines become one Arrow string array (invalid UTF-8 bytes become ``?``,
  so a damaged line is skipped, never a crash), blank lines are ignored;
* times are resolved by :func:`portradar.ingest.syslog_header.resolve_times`;
* addresses (text, IPv4 or IPv6) become the ``hi``/``lo`` pairs of the event schema,
  by the compiled address parser of :mod:`portradar.ingest.fields`;
* numbers are range-checked (a port above 65535 is a damaged line, not an event);
* every row with a ``reason`` is counted with :meth:`ReadStats.skip` (first line,
  count, the start of the line), in line order, so ``--strict`` names the first bad line.

>>> class Demo(PolarsLineReader):
...     name = "demo"
...     sniff_pattern = re.compile(rb" demo ")
...     def parse_frame(self, lines, options):
...         g = lines.to_frame().with_columns(
...             p=pl.col("line").str.extract_groups(r"^(?P<ts_text>\\S+) demo (?P<src>\\S+) "
...                                                 r"(?P<dst>\\S+) (?P<dport>\\d+)$")).unnest("p")
...         g = with_time(g, "ts_text")
...         return g.with_columns(reason=pl.when(pl.col("src").is_null())
...                                 .then(pl.lit("not a demo line")),
...                               proto=pl.lit(6), dport=pl.col("dport").cast(pl.Int64),
...                               outcome=pl.lit(int(Outcome.BLOCKED)))
>>> stats = ReadStats()
>>> batch = Demo().parse_bytes(b"2026-01-02T03:04:05Z demo 192.0.2.1 2001:db8::1 445\\n"
...                            b"junk\\n\\n2026-01-02T03:04:06Z demo 192.0.2.1 nohost 99999\\n",
...                            stats=stats)
>>> [(r["dport"], r["outcome"], r["format"]) for r in batch.to_pylist()]
[(445, 'blocked', 'demo')]
>>> dict(stats.skipped)
{'not a demo line': 1, 'destination address is not an IPv4 or IPv6 address': 1}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numba
import numpy as np
import pyarrow as pa

from portradar.events.addresses import address_key
from portradar.events.schema import PROTO_NUMBERS, TCP_FLAG_BITS, Outcome, make_batch
from portradar.ingest import fields as field_kernels
from portradar.ingest import iptables_kernel as k
from portradar.ingest.lines import LineReader, head_lines
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.syslog_header import resolve_times, with_time
from portradar.ingest.syslog_time import YearState
from portradar.ingest.text_fields import string_buffers

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

__all__ = [
    "FRAME_COLUMNS",
    "PolarsLineReader",
    "address_pairs",
    "line_strings",
    "outcome_from_words",
    "per_distinct",
    "proto_number",
    "sniff_fraction",
    "tcp_flag_bits",
    "unspecified_like",
    "with_time",
]

#: What :meth:`PolarsLineReader.parse_frame` returns, one row per input line (all
#: optional but the time columns, ``src``, ``dst`` and ``proto``):
#: ``reason`` (str; set: skip the line for this reason), the time columns of
#: :func:`~portradar.ingest.syslog_header.with_time` and/or ``epoch_us``, ``host``
#: (sensor unless ``--sensor``), ``src``/``dst`` (address text), ``proto`` (int),
#: ``sport dport tcp_flags icmp_type icmp_code packets bytes ttl`` (int),
#: ``outcome`` (int, an :class:`Outcome`), ``rule in_iface out_iface`` (str).
FRAME_COLUMNS = (
    "reason", "host", "src", "dst", "proto", "sport", "dport", "tcp_flags", "icmp_type",
    "icmp_code", "outcome", "rule", "in_iface", "out_iface", "packets", "bytes", "ttl",
)

#: Inclusive upper bounds of the numeric event columns (their Arrow types' ranges).
LIMITS = {
    "proto": 255, "sport": 65535, "dport": 65535, "tcp_flags": 255, "icmp_type": 255,
    "icmp_code": 255, "packets": 2**32 - 1, "bytes": 2**63 - 1, "ttl": 255,
}

#: Lines longer than this in a snippet shown to the user are cut.
SNIPPET_CHARS = 100

#: Characters a blank line consists of (ASCII whitespace; blank lines are not records).
BLANK = " \t\r\n\x0b\x0c"

#: How many lines of the sniff window are looked at.
SNIFF_LINES = 50


def sniff_fraction(head: bytes, pattern: re.Pattern[bytes]) -> float:
    """Share of the first non-blank lines of ``head`` in which ``pattern`` is found.

    The last line is left out when the sniff window may have cut it.

    >>> sniff_fraction(b"a x\\nb\\nc x", re.compile(rb"x"))
    0.5
    """
    lines = head_lines(head, SNIFF_LINES)
    if not lines:
        return 0.0
    return sum(1 for ln in lines if pattern.search(ln)) / len(lines)


@numba.njit(cache=True, nogil=True)
def _sanitize_utf8(data: np.ndarray, offsets: np.ndarray) -> int:  # pragma: no cover - jit
    """Replace, in place, every byte that is not part of valid UTF-8 by ``?``.

    Checked line by line (a character never spans two lines).  Returns the count.
    """
    bad = 0
    for li in range(offsets.shape[0] - 1):
        i = offsets[li]
        end = offsets[li + 1]
        while i < end:
            c = data[i]
            if c < 0x80:
                i += 1
                continue
            need = 0
            lo = 0x80
            hi = 0xBF
            if 0xC2 <= c <= 0xDF:
                need = 1
            elif c == 0xE0:
                need, lo = 2, 0xA0
            elif 0xE1 <= c <= 0xEC or 0xEE <= c <= 0xEF:
                need = 2
            elif c == 0xED:
                need, hi = 2, 0x9F
            elif c == 0xF0:
                need, lo = 3, 0x90
            elif 0xF1 <= c <= 0xF3:
                need = 3
            elif c == 0xF4:
                need, hi = 3, 0x8F
            ok = need > 0 and i + need < end
            if ok:
                ok = lo <= data[i + 1] <= hi
                for j in range(2, need + 1):
                    if not 0x80 <= data[i + j] <= 0xBF:
                        ok = False
            if ok:
                i += need + 1
            else:
                data[i] = 63
                bad += 1
                i += 1
    return bad


def line_strings(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.StringArray:
    """The lines ``buf[starts[i]:ends[i]]`` as one Arrow string array, valid UTF-8."""
    offsets, data = k.gather_spans(buf, starts, ends)
    if data.size and data.max() >= 0x80:  # pure ASCII (most logs) needs no check
        _sanitize_utf8(data, offsets)
    return pa.Array.from_buffers(pa.string(), len(starts),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def address_pairs(texts: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(hi, lo, ok)`` of address texts; ``ok`` is False for nulls and non-addresses.

    Parsed by the compiled kernel of :func:`portradar.ingest.fields.addresses` straight
    from the Arrow buffers; the rare text it refuses (``[2001:db8::1]``) is retried once
    per distinct value by :func:`portradar.events.addresses.address_key`.

    >>> hi, lo, ok = address_pairs(pl.Series(["192.0.2.1", "::1", "1.2.3.999", None, "[::2]"]))
    >>> [hex(x) for x in lo], ok.tolist()
    (['0xffffc0000201', '0x1', '0x0', '0x0', '0x2'], [True, True, False, False, True])
    """
    arr, offsets, data = string_buffers(texts.cast(pl.String).to_arrow())
    starts = offsets[:-1].copy()
    ends = offsets[1:].copy()
    if arr.null_count:
        starts[np.asarray(arr.is_null().to_numpy(zero_copy_only=False))] = -1
    hi, lo, status = field_kernels.addresses(data, starts, ends)
    ok = status == field_kernels.OK
    retry = np.flatnonzero(status == field_kernels.BAD)
    if len(retry):
        again = texts.cast(pl.String).gather(retry)
        words = again.unique().to_list()
        table = np.zeros((len(words), 3), np.uint64)
        for j, word in enumerate(words):
            try:
                h, low = address_key(word.strip().strip("[]"))
            except ValueError:
                continue
            table[j] = (h, low, 1)
        index = again.replace_strict(words, list(range(len(words))),
                                     return_dtype=pl.Int64).to_numpy()
        hi[retry], lo[retry] = table[index, 0], table[index, 1]
        ok[retry] = table[index, 2] == 1
    return hi, lo, ok


def per_distinct(values: pl.Series, fn: Callable[[str | None], int]) -> np.ndarray:
    """``fn`` of every value, called once per distinct value (and once for null).

    >>> per_distinct(pl.Series(["a", "bb", "a", None]), lambda v: len(v or "")).tolist()
    [1, 2, 1, 0]
    """
    encoded = values.to_arrow().cast(pa.string()).dictionary_encode()
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    words = encoded.dictionary.to_pylist()
    table = np.array([fn(w) for w in words] + [fn(None)], np.int64)
    index = encoded.indices.fill_null(len(words)).to_numpy(zero_copy_only=False)
    return table[np.asarray(index, np.int64)]


def unspecified_like(address: pl.Expr) -> pl.Expr:
    """The unspecified address of the family of ``address`` (``::`` for IPv6, else 0.0.0.0).

    Stands for a destination the log does not name (traffic to the firewall itself).
    """
    return pl.when(address.str.contains(":", literal=True)).then(pl.lit("::")) \
        .otherwise(pl.lit("0.0.0.0"))


def proto_number(text: pl.Expr) -> pl.Expr:
    """IANA number of a protocol name (``tcp``, ``UDP``, ``icmp``) or decimal text.

    >>> pl.select(proto_number(pl.lit(pl.Series(["tcp", "17", "ICMPv6", "bogus"])))
    ...           ).to_series().to_list()
    [6, 17, 58, None]
    """
    names = {**PROTO_NUMBERS, "IPV6-ICMP": 58, "ICMP6": 58, "IP": 0}
    upper = text.str.strip_chars().str.to_uppercase()
    return pl.coalesce(
        upper.replace_strict(names, default=None, return_dtype=pl.Int64),
        upper.cast(pl.Int64, strict=False),
    )


def tcp_flag_bits(text: pl.Expr) -> pl.Expr:
    """TCP flag bits from flag words in any case and separator (``SYN ACK``, ``SYN,ACK``).

    Null when the text is null.

    >>> pl.select(tcp_flag_bits(pl.lit(pl.Series(["SYN", "fin,ack", None])))
    ...           ).to_series().to_list()
    [2, 17, None]
    """
    upper = text.str.to_uppercase()
    bits = pl.lit(0, pl.Int64)
    for word, bit in TCP_FLAG_BITS.items():
        bits = bits + pl.when(upper.str.contains(rf"\b{word}\b")).then(bit).otherwise(0)
    return pl.when(text.is_null()).then(None).otherwise(bits)


#: Words of an action, status or rule name → outcome; first match wins (upper case).
#: The same rules as the iptables reader's prefixes, plus the verbs vendors print.
OUTCOME_WORDS: tuple[tuple[str, Outcome], ...] = (
    (r"REJECT|RESET|\bREJ\b|\bRST\b", Outcome.REJECTED),
    (r"DROP|BLOCK|DENY|DENIED|DISCARD|INVALID|REFUSE|SINKHOLE", Outcome.BLOCKED),
    (r"ACCEPT|ALLOW|PASS|PERMIT|BUILT|START", Outcome.ACCEPTED),
)


def outcome_from_words(text: pl.Expr, default: Outcome = Outcome.UNKNOWN) -> pl.Expr:
    """Outcome code from an action word (``deny``, ``Permit``, ``reset-both``) or rule name.

    >>> pl.select(outcome_from_words(pl.lit(pl.Series(["deny", "reset-both", "alert"])))
    ...           ).to_series().to_list()
    [1, 2, 0]
    """
    upper = text.str.to_uppercase()
    expr: pl.Expr = pl.lit(int(default), pl.Int64)
    for pattern, outcome in reversed(OUTCOME_WORDS):
        expr = pl.when(upper.str.contains(pattern)).then(int(outcome)).otherwise(expr)
    return expr


class PolarsLineReader(LineReader):
    """Base class of the line readers whose parser is a set of Polars expressions."""

    name: ClassVar[str] = ""
    unit: ClassVar[str] = "lines"
    #: A line of this format contains a match (``sniff`` is the share of such lines).
    sniff_pattern: ClassVar[re.Pattern[bytes]] = re.compile(rb"(?!)")

    def __init__(self) -> None:
        self._years: YearState | None = None

    @classmethod
    def sniff(cls, head: bytes) -> float:
        return sniff_fraction(head, cls.sniff_pattern)

    def parse_frame(self, lines: pl.Series, options: ReadOptions) -> pl.DataFrame:
        """Turn the Utf8 series ``line`` into the columns of :data:`FRAME_COLUMNS`."""
        raise NotImplementedError


    def parse_lines(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    first_line: int, options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        if self._years is None:
            self._years = YearState(year=options.year)
        lines = pl.Series("line", line_strings(buf, starts, ends))
        nonblank = lines.str.strip_chars(BLANK).str.len_bytes() > 0
        rows = np.flatnonzero(nonblank.to_numpy())
        lines = lines.filter(nonblank)
        frame = self.parse_frame(lines, options) if len(lines) else pl.DataFrame()
        if not len(lines):
            return make_batch({"ts": [], "src_lo": [], "dst_lo": [], "proto": [],
                               "format": self.name}, n=0)
        return self._events(frame, lines, rows, first_line, options, stats)

    # -- from frame to batch --------------------------------------------------------------

    def _events(self, frame: pl.DataFrame, lines: pl.Series, rows: np.ndarray,
                first_line: int, options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        frame = _complete(frame)
        reason = frame["reason"].to_numpy().astype(object)
        free = reason == None  # noqa: E711 - elementwise on an object array

        assert self._years is not None
        ts, missing, bad = resolve_times(frame, options, self._years)
        reason[free & missing] = "no timestamp recognised"
        reason[free & bad] = "timestamp out of range"
        free = reason == None  # noqa: E711

        for col, what in (("src", "source"), ("dst", "destination")):
            absent = frame[col].is_null().to_numpy()
            reason[free & absent] = f"no {what} address"
            free = reason == None  # noqa: E711
        src_hi, src_lo, src_ok = address_pairs(frame["src"])
        dst_hi, dst_lo, dst_ok = address_pairs(frame["dst"])
        reason[free & ~src_ok] = "source address is not an IPv4 or IPv6 address"
        free = reason == None  # noqa: E711
        reason[free & ~dst_ok] = "destination address is not an IPv4 or IPv6 address"
        free = reason == None  # noqa: E711
        reason[free & frame["proto"].is_null().to_numpy()] = "no protocol recognised"
        free = reason == None  # noqa: E711
        for col, limit in LIMITS.items():
            values = frame[col]
            out = ((values > limit) | (values < 0)).fill_null(False).to_numpy()
            reason[free & out] = f"{col} out of range (0-{limit})"
            free = reason == None  # noqa: E711

        _report(reason, lines, rows, first_line, stats)
        keep = np.flatnonzero(free)
        kept = frame.select(FRAME_COLUMNS)
        if len(keep) < frame.height:
            kept = kept[keep]
        sensor: object = options.sensor or kept["host"].fill_null("default").to_arrow()

        def arrow(col: str) -> pa.Array:
            return kept[col].to_arrow()

        def text(col: str) -> pa.Array:
            values = kept[col].cast(pl.String)
            return values.replace("", None).to_arrow()

        columns = {
            "ts": ts[keep],
            "sensor": sensor,
            "src_hi": src_hi[keep], "src_lo": src_lo[keep],
            "dst_hi": dst_hi[keep], "dst_lo": dst_lo[keep],
            "proto": arrow("proto"),
            "sport": arrow("sport"), "dport": arrow("dport"),
            "tcp_flags": arrow("tcp_flags"),
            "icmp_type": arrow("icmp_type"), "icmp_code": arrow("icmp_code"),
            "outcome": kept["outcome"].fill_null(int(Outcome.UNKNOWN)).to_numpy()
            .astype(np.int32),
            "rule": text("rule"), "in_iface": text("in_iface"), "out_iface": text("out_iface"),
            "packets": kept["packets"].fill_null(1).to_arrow(),
            "bytes": arrow("bytes"), "ttl": arrow("ttl"),
            "format": self.name,
        }
        return make_batch(columns, n=len(keep))


#: Columns that are strings; every other column of :data:`FRAME_COLUMNS` is an Int64.
_STRING_COLUMNS = frozenset({"reason", "host", "src", "dst", "rule", "in_iface", "out_iface"})


def _complete(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the optional columns a reader left out (as nulls) and fix their types."""
    exprs = []
    for col in FRAME_COLUMNS:
        dtype = pl.String() if col in _STRING_COLUMNS else pl.Int64()
        if col in frame.columns:
            exprs.append(pl.col(col).cast(dtype, strict=False))
        else:
            exprs.append(pl.lit(None, dtype).alias(col))
    if "ts_kind" not in frame.columns:
        exprs += [pl.lit(k.TS_NONE, pl.Int8).alias("ts_kind"), pl.lit(0).alias("year"),
                  pl.lit(0).alias("month"), pl.lit(0).alias("day"),
                  pl.lit(0).alias("sod_us"), pl.lit(0).alias("tz_s"),
                  pl.lit(False).alias("ts_bad")]
    return frame.with_columns(exprs)


def _report(reason: np.ndarray, lines: pl.Series, rows: np.ndarray, first_line: int,
            stats: ReadStats) -> None:
    """Count skipped rows by reason, in line order of each reason's first row."""
    bad = np.flatnonzero(reason != None)  # noqa: E711
    if not len(bad):
        return
    table = pl.DataFrame({"reason": reason[bad].astype(str), "i": bad}).group_by(
        "reason", maintain_order=True).agg(pl.col("i").first(), pl.len().alias("count"))
    for why, i, count in table.sort("i").iter_rows():
        line = lines[int(i)]
        snippet = repr(line[:SNIPPET_CHARS]) + ("..." if len(line) > SNIPPET_CHARS else "")
        stats.skip(why, line=first_line + int(rows[i]), count=int(count), detail=snippet)


def first_present(*exprs: pl.Expr) -> pl.Expr:
    """The first non-null, non-empty value of ``exprs`` (Polars ``coalesce`` that skips "")."""
    return pl.coalesce([pl.when(e.cast(pl.String) == "").then(None).otherwise(e) for e in exprs])
