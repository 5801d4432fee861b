"""Vectorised parsing of delimited text records, shared by the table-like readers.

Zeek's TSV logs, pfSense ``filterlog`` CSV, the DShield and Windows firewall formats and
the generic table reader all hold one record per line, split into fields by one byte.
This module is their common hot path: compiled (numba) kernels that work on *spans*,
``(start, end)`` byte offsets into one chunk of input held as a ``uint8`` array, and
never build a Python object per record:

* :func:`select_fields` finds the wanted fields of every line;
* :func:`uints`, :func:`decimal_us`, :func:`addresses`, :func:`iso_times` and
  :func:`bits` turn a column of spans into numbers, each with a status
  (:data:`OK`, :data:`MISSING` or :data:`BAD`) so the reader can count and skip;
* :func:`strings` turns a column of spans into a dictionary array, and :func:`decode`
  maps its *distinct* values through ordinary Python (a loop over distinct values is
  allowed in the hot path, a loop over records is not).

Arrow string arrays (from DuckDB's JSON functions or pyarrow's CSV reader) are read
through the same kernels with :func:`string_spans`, which exposes their data buffer and
offsets without a copy.

>>> buf = np.frombuffer(b"1.5\\t10.0.0.1\\t443\\n", np.uint8)
>>> slots, by_nf = one_layout([0, 1, 2])
>>> s, e, nf, layout = select_fields(buf, np.array([0]), np.array([16]), 9, slots, by_nf, 3,
...                                  NO_TOKEN, NO_TOKEN)
>>> int(nf[0]), bytes(buf[s[1, 0]:e[1, 0]])
(3, b'10.0.0.1')
>>> values, status = uints(buf, s[2], e[2], 65535, NO_TOKEN)
>>> int(values[0]), int(status[0])
(443, 0)
>>> us, status = decimal_us(buf, s[0], e[0], NO_TOKEN)
>>> int(us[0])
1500000
>>> hi, lo, status = addresses(buf, s[1], e[1])
>>> hex(int(lo[0]))
'0xffff0a000001'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.ingest import iptables_kernel as k
from portradar.ingest.reader import ReadStats

#: Status of a parsed value: present and valid, absent (empty or the null token), invalid.
OK, MISSING, BAD = 0, 1, 2

#: No null token: only empty spans are missing.
NO_TOKEN = np.zeros(0, np.uint8)

#: Columns of the time matrix :func:`iso_times` returns: the first eight columns of the
#: iptables kernel's matrix, so :func:`portradar.ingest.syslog_time.resolve` reads it.
TIME_COLUMNS = 8

#: Lines longer than this in a snippet shown to the user are cut.
SNIPPET_CHARS = 100


def token(text: str) -> np.ndarray:
    """A null token (``-``, ``(empty)``) as the byte array the kernels take."""
    return np.frombuffer(text.encode(), np.uint8).copy()


@numba.njit(cache=True, parallel=True)
def select_fields(buf, starts, ends, sep, slots, layout_by_nf, m,
                  null1, null2):  # pragma: no cover - jit
    """Spans of the wanted fields of every line, split on the byte ``sep``.

    ``slots[l, i]`` is the output column of field ``i`` in layout ``l`` (-1: not
    wanted); a line with ``nf`` fields uses layout ``layout_by_nf[min(nf, len - 1)]``
    (-1: too few fields, nothing selected).  Fields equal to ``null1`` or ``null2``
    (Zeek's ``-`` and ``(empty)``) are left out, like absent ones.

    Returns ``s, e`` (``m × n``, -1 where a line lacks the field), the number of fields
    of each line (0 for an empty line) and the layout used (-1 for none).
    """
    n = starts.shape[0]
    width = slots.shape[1]
    s_out = np.full((m, n), -1, np.int64)
    e_out = np.full((m, n), -1, np.int64)
    nf = np.zeros(n, np.int64)
    layout = np.full(n, -1, np.int64)
    for i in numba.prange(n):
        a = starts[i]
        b = ends[i]
        if b <= a:
            continue
        count = 1
        for q in range(a, b):
            if buf[q] == sep:
                count += 1
        nf[i] = count
        lay = layout_by_nf[min(count, layout_by_nf.shape[0] - 1)]
        layout[i] = lay
        if lay < 0:
            continue
        fld = 0
        begin = a
        for q in range(a, b + 1):
            if q == b or buf[q] == sep:
                if fld < width:
                    j = slots[lay, fld]
                    if j >= 0 and not _is_token(buf, begin, q, null1) \
                            and not _is_token(buf, begin, q, null2):
                        s_out[j, i] = begin
                        e_out[j, i] = q
                else:
                    break
                fld += 1
                begin = q + 1
    return s_out, e_out, nf, layout


def one_layout(columns: list[int], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``slots`` and ``layout_by_nf`` for :func:`select_fields` with one fixed layout.

    ``columns[j]`` is the field number of output column ``j`` (-1: never present).  Lines
    with fewer fields than the largest wanted field number + 1 get no layout.

    >>> slots, by_nf = one_layout([2, 0])
    >>> slots.tolist(), by_nf.tolist()
    ([[1, -1, 0]], [-1, -1, -1, 0])
    """
    present = [c for c in columns if c >= 0]
    needed = (max(present) + 1) if present else 1
    width = max(width or 0, needed)
    slots = np.full((1, width), -1, np.int64)
    for j, c in enumerate(columns):
        if c >= 0:
            slots[0, c] = j
    by_nf = np.full(needed + 1, -1, np.int64)
    by_nf[needed] = 0
    return slots, by_nf


@numba.njit(cache=True, inline="always")
def _is_token(buf, s, e, tok):  # pragma: no cover - jit
    m = tok.shape[0]
    if m == 0 or e - s != m:
        return False
    for j in range(m):  # noqa: SIM110 - numba compiles no generator expressions
        if buf[s + j] != tok[j]:
            return False
    return True


@numba.njit(cache=True, parallel=True)
def uints(buf, s, e, maxval, null_tok):  # pragma: no cover - jit
    """Unsigned decimal integers up to ``maxval``; statuses as in the module doc."""
    n = s.shape[0]
    values = np.zeros(n, np.int64)
    status = np.zeros(n, np.int8)
    for i in numba.prange(n):
        a = s[i]
        b = e[i]
        if a < 0 or b <= a or _is_token(buf, a, b, null_tok):
            status[i] = MISSING
            continue
        if b - a > 18:
            status[i] = BAD
            continue
        v = 0
        good = True
        for q in range(a, b):
            c = buf[q]
            if c < 48 or c > 57:
                good = False
                break
            v = v * 10 + (c - 48)
        if not good or v > maxval:
            status[i] = BAD
            continue
        values[i] = v
    return values, status


@numba.njit(cache=True, parallel=True)
def hex_uints(buf, s, e, maxval):  # pragma: no cover - jit
    """Unsigned hexadecimal integers (``1e``, ``0x1e``) up to ``maxval`` (Suricata's flags)."""
    n = s.shape[0]
    values = np.zeros(n, np.int64)
    status = np.zeros(n, np.int8)
    for i in numba.prange(n):
        a = s[i]
        b = e[i]
        if a < 0 or b <= a:
            status[i] = MISSING
            continue
        if b - a > 2 and buf[a] == 48 and (buf[a + 1] == 120 or buf[a + 1] == 88):
            a += 2
        if b - a > 15:
            status[i] = BAD
            continue
        v = 0
        for q in range(a, b):
            h = k._hexval(buf[q])
            if h < 0:
                v = -1
                break
            v = v * 16 + h
        if v < 0 or v > maxval:
            status[i] = BAD
            continue
        values[i] = v
    return values, status


@numba.njit(cache=True, parallel=True)
def decimal_us(buf, s, e, null_tok):  # pragma: no cover - jit
    """Seconds as a decimal (``1541350796.901974``) to integer microseconds.

    Digits beyond the sixth decimal are truncated; a sign or an exponent is invalid.
    """
    n = s.shape[0]
    values = np.zeros(n, np.int64)
    status = np.zeros(n, np.int8)
    for i in numba.prange(n):
        a = s[i]
        b = e[i]
        if a < 0 or b <= a or _is_token(buf, a, b, null_tok):
            status[i] = MISSING
            continue
        secs = 0
        q = a
        while q < b and 48 <= buf[q] <= 57 and q - a < 12:
            secs = secs * 10 + (buf[q] - 48)
            q += 1
        if q == a:
            status[i] = BAD
            continue
        us = 0
        if q < b and buf[q] == 46:
            q += 1
            nd = 0
            while q < b and 48 <= buf[q] <= 57:
                if nd < 6:
                    us = us * 10 + (buf[q] - 48)
                nd += 1
                q += 1
            while nd < 6:
                us *= 10
                nd += 1
        if q != b:
            status[i] = BAD
            continue
        values[i] = secs * 1_000_000 + us
    return values, status


@numba.njit(cache=True, parallel=True)
def addresses(buf, s, e):  # pragma: no cover - jit
    """IPv4 or IPv6 addresses as ``(hi, lo)`` pairs (IPv4 mapped), with statuses."""
    n = s.shape[0]
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    status = np.zeros(n, np.int8)
    for i in numba.prange(n):
        a = s[i]
        b = e[i]
        if a < 0 or b <= a:
            status[i] = MISSING
            continue
        ok, h, low = k._address(buf, a, b)
        if not ok:
            status[i] = BAD
            continue
        hi[i] = h
        lo[i] = low
    return hi, lo, status


@numba.njit(cache=True, parallel=True)
def iso_times(buf, s, e):  # pragma: no cover - jit
    """``YYYY-MM-DD[T ]HH:MM:SS[.f][ ][Z|±HH[:]MM]`` into a time matrix and statuses.

    The matrix has the first :data:`TIME_COLUMNS` columns of the iptables kernel's
    (kind, year, month, day, microseconds of the day, offset), so
    :func:`portradar.ingest.syslog_time.resolve` turns it into UTC, applying ``--tz`` to
    times without an offset.  A space before the offset is accepted (DShield writes
    ``2001-12-18 14:10:23 -05:00``).
    """
    n = s.shape[0]
    out = np.zeros((n, TIME_COLUMNS), np.int64)
    status = np.zeros(n, np.int8)
    for i in numba.prange(n):
        out[i, k.ST] = k.OK
        out[i, k.TK] = k.TS_NONE
        a = s[i]
        b = e[i]
        if a < 0 or b <= a:
            status[i] = MISSING
            continue
        q = k._iso_ts(buf, a, b, i, out)
        if q < 0:
            status[i] = BAD
            out[i, k.TK] = k.TS_NONE
            continue
        if out[i, k.TK] == k.TS_LOCAL and q + 1 < b and buf[q] == 32:
            z = k._tz_offset(buf, q + 1, b, i, out)
            if z >= 0:
                out[i, k.TK] = k.TS_ABSOLUTE
                q = z
        if q != b or out[i, k.ST] != k.OK:
            status[i] = BAD
            out[i, k.TK] = k.TS_NONE
    return out, status


@numba.njit(cache=True, parallel=True)
def date_and_time(buf, ds, de, ts, te):  # pragma: no cover - jit
    """A ``YYYY-MM-DD`` span and a ``HH:MM:SS[.f]`` span into a local-time matrix.

    The matrix is the one :func:`iso_times` returns, with kind ``TS_LOCAL`` (the
    Windows firewall log writes its date and time as two fields, in local time).
    """
    n = ds.shape[0]
    out = np.zeros((n, TIME_COLUMNS), np.int64)
    status = np.zeros(n, np.int8)
    for i in numba.prange(n):
        out[i, k.ST] = k.OK
        out[i, k.TK] = k.TS_NONE
        if ds[i] < 0 or de[i] <= ds[i] or ts[i] < 0 or te[i] <= ts[i]:
            status[i] = MISSING
            continue
        b = de[i]
        y, q = k._digits(buf, ds[i], b, 4)
        good = y >= 0 and q - ds[i] == 4 and q < b and buf[q] == 45
        if good:
            mo, q = k._digits(buf, q + 1, b, 2)
            good = mo >= 1 and mo <= 12 and q < b and buf[q] == 45
            if good:
                d, q = k._digits(buf, q + 1, b, 2)
                good = d >= 1 and d <= 31 and q == b
                if good:
                    r = k._hms(buf, ts[i], te[i], i, out)
                    good = r == te[i] and out[i, k.ST] == k.OK
                    out[i, k.YR] = y
                    out[i, k.MO] = mo
                    out[i, k.DY] = d
        if good:
            out[i, k.TK] = k.TS_LOCAL
        else:
            status[i] = BAD
            out[i, k.TK] = k.TS_NONE
    return out, status


@numba.njit(cache=True, parallel=True)
def bits(buf, s, e, table):  # pragma: no cover - jit
    """OR of ``table[byte]`` over each span (TCP flag letters); -1 in the table is invalid."""
    n = s.shape[0]
    values = np.zeros(n, np.int64)
    status = np.zeros(n, np.int8)
    for i in numba.prange(n):
        a = s[i]
        b = e[i]
        if a < 0 or b <= a:
            status[i] = MISSING
            continue
        v = 0
        for q in range(a, b):
            t = table[buf[q]]
            if t < 0:
                status[i] = BAD
                break
            v |= t
        values[i] = v
    return values, status


@numba.njit(cache=True)
def join_lines(buf, s, e):  # pragma: no cover - jit
    """The spans copied back to back, each followed by a newline (a CSV block)."""
    n = s.shape[0]
    total = 0
    for i in range(n):
        total += e[i] - s[i] + 1
    out = np.empty(total, np.uint8)
    k_ = 0
    for i in range(n):
        for j in range(s[i], e[i]):
            out[k_] = buf[j]
            k_ += 1
        out[k_] = 10
        k_ += 1
    return out


@numba.njit(cache=True, parallel=True)
def count_byte(buf, s, e, byte):  # pragma: no cover - jit
    """How often ``byte`` occurs in each span (quotes, to find unbalanced CSV lines)."""
    n = s.shape[0]
    counts = np.zeros(n, np.int64)
    for i in numba.prange(n):
        c = 0
        for j in range(s[i], e[i]):
            c += buf[j] == byte
        counts[i] = c
    return counts


@numba.njit(cache=True, parallel=True)
def first_nonblank(buf, s, e):  # pragma: no cover - jit
    """Position of the first byte of each span that is not a space or tab (-1: none)."""
    n = s.shape[0]
    out = np.full(n, -1, np.int64)
    for i in numba.prange(n):
        for j in range(s[i], e[i]):
            if buf[j] != 32 and buf[j] != 9:
                out[i] = j
                break
    return out


def bit_table(letters: dict[str, int]) -> np.ndarray:
    """A 256-entry table for :func:`bits`: the given letters, everything else invalid."""
    table = np.full(256, -1, np.int64)
    for letter, value in letters.items():
        table[ord(letter)] = value
    return table


@numba.njit(cache=True, parallel=True)
def utf8_valid(buf, s, e):  # pragma: no cover - jit
    """Whether each span is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF)."""
    n = s.shape[0]
    good = np.ones(n, np.bool_)
    for i in numba.prange(n):
        q = s[i]
        b = e[i]
        while q < b:
            c = buf[q]
            if c < 0x80:
                q += 1
                continue
            if 0xC2 <= c <= 0xDF:
                m = 1
                lo_, hi_ = 0x80, 0xBF
            elif 0xE0 <= c <= 0xEF:
                m = 2
                lo_ = 0xA0 if c == 0xE0 else 0x80
                hi_ = 0x9F if c == 0xED else 0xBF
            elif 0xF0 <= c <= 0xF4:
                m = 3
                lo_ = 0x90 if c == 0xF0 else 0x80
                hi_ = 0x8F if c == 0xF4 else 0xBF
            else:
                good[i] = False
                break
            if q + m >= b:
                good[i] = False
                break
            if buf[q + 1] < lo_ or buf[q + 1] > hi_:
                good[i] = False
                break
            bad = False
            for j in range(2, m + 1):
                if buf[q + j] < 0x80 or buf[q + j] > 0xBF:
                    bad = True
            if bad:
                good[i] = False
                break
            q += m + 1
    return good


def strings(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> pa.DictionaryArray:
    """Dictionary-encoded text of the spans; empty and absent spans become nulls.

    Bytes that are not UTF-8 are replaced (U+FFFD), so the result is always valid.
    """
    s = np.asarray(s, np.int64)
    e = np.asarray(e, np.int64)
    offsets, data = k.gather_spans(buf, s, e)
    n = len(s)
    binary = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    encoded = binary.dictionary_encode()
    words = [b.decode("utf-8", "replace") for b in encoded.dictionary.to_pylist()]
    indices = encoded.indices.cast(pa.int32())
    if "" in words:
        mask = pc.equal(indices, words.index(""))
        indices = pc.if_else(mask, pa.scalar(None, pa.int32()), indices)
    return pa.DictionaryArray.from_arrays(indices, pa.array(words, pa.string()))


def decode(values: pa.DictionaryArray, fn: Callable[[str], Any], default: Any,
           dtype: Any) -> np.ndarray:
    """Map every value through ``fn``, calling it once per *distinct* value.

    Nulls get ``default``.  ``fn`` returning ``None`` also gives ``default``.
    """
    mapped = [fn(v) for v in values.dictionary.to_pylist()]
    table = np.array([default if m is None else m for m in mapped] + [default], dtype=dtype)
    idx = pc.fill_null(values.indices, pa.scalar(len(mapped), pa.int32()))
    return table[np.asarray(idx.to_numpy(zero_copy_only=False), np.int64)]


def relabel(values: pa.DictionaryArray, fn: Callable[[str], str | None]) -> pa.DictionaryArray:
    """A dictionary array whose distinct values went through ``fn`` (``None``: null)."""
    mapped = [fn(v) for v in values.dictionary.to_pylist()]
    words = sorted({m for m in mapped if m is not None})
    code = {w: i for i, w in enumerate(words)}
    table = np.array([code.get(m, -1) if m is not None else -1 for m in mapped] + [-1],
                     dtype=np.int32)
    idx = pc.fill_null(values.indices, pa.scalar(len(mapped), pa.int32()))
    out = table[np.asarray(idx.to_numpy(zero_copy_only=False), np.int64)]
    missing = out < 0
    indices = pa.array(np.where(missing, 0, out), pa.int32(),
                       mask=missing if missing.any() else None)
    return pa.DictionaryArray.from_arrays(indices, pa.array(words, pa.string()))


def string_spans(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data buffer and per-value spans of an Arrow string array, without copying text.

    Null values get the span ``(-1, -1)``.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
            or pa.types.is_binary(arr.type)):
        arr = arr.cast(pa.string())
    n = len(arr)
    bufs = arr.buffers()
    wide = pa.types.is_large_string(arr.type)
    offsets = np.frombuffer(bufs[1], np.int64 if wide else np.int32, count=n + 1 + arr.offset)
    offsets = offsets[arr.offset:].astype(np.int64)
    data = (np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None and bufs[2].size
            else np.zeros(1, np.uint8))
    s = offsets[:-1].copy()
    e = offsets[1:].copy()
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), bool)
        s[~valid] = -1
        e[~valid] = -1
    return data, s, e


def nullable(values: np.ndarray, status: np.ndarray, dtype: Any) -> pa.Array:
    """An Arrow array of ``values`` with nulls where ``status`` is not :data:`OK`."""
    missing = status != OK
    clean = np.where(missing, 0, values).astype(dtype)
    return pa.array(clean, mask=missing if missing.any() else None)


def snippet(buf: np.ndarray, start: int, end: int) -> str:
    """The start of a line, quoted, for skip examples and error messages."""
    text = bytes(buf[start:min(end, start + SNIPPET_CHARS)]).decode("utf-8", "replace")
    return repr(text) + ("..." if end - start > SNIPPET_CHARS else "")


def report_skips(status: np.ndarray, reasons: dict[int, str], buf: np.ndarray,
                 starts: np.ndarray, ends: np.ndarray, first_line: int,
                 stats: ReadStats, quiet: frozenset[int] = frozenset()) -> None:
    """Count the lines whose ``status`` is not 0 by reason, first bad line first.

    Codes in ``quiet`` are records that are well formed but carry no probe (a Suricata
    ``dns`` event, a Windows ``INFO-EVENTS-LOST`` line): they are counted under their
    reason but never raise in strict mode and give no example.  Codes missing from
    ``reasons`` (blank lines, headers) are not counted at all.
    """
    bad = np.flatnonzero(status != 0)
    if not len(bad):
        return
    codes = status[bad]
    first_of = {int(c): int(bad[np.argmax(codes == c)]) for c in np.unique(codes)}
    for code, i in sorted(first_of.items(), key=lambda item: item[1]):
        if code not in reasons:
            continue
        count = int(np.count_nonzero(codes == code))
        if code in quiet:
            count_quietly(stats, reasons[code], count)
            continue
        stats.skip(reasons[code], line=first_line + i, count=count,
                   detail=snippet(buf, int(starts[i]), int(ends[i])))


def count_quietly(stats: ReadStats, reason: str, count: int) -> None:
    """Count well-formed records that are not probes (never an error, even when strict)."""
    if count > 0:
        stats.skipped[reason] += count


def prefix_lines(stream: BinaryIO, end: int, mark: int | None) -> list[bytes]:
    """Lines among the first ``end`` bytes of ``stream`` that start with the byte ``mark``.

    For readers whose records depend on header lines (Zeek's ``#fields``, a CSV
    header): when the pipeline resumes a grown file at ``end``, the header is before
    it.  With ``mark`` None only the first non-blank line is returned.  The stream is
    left at ``end`` (sought when seekable, read through otherwise); only header lines
    are kept, so a long prefix costs one sequential read.
    """
    if stream.seekable():
        stream.seek(0)
    found: list[bytes] = []
    carry = b""
    remaining = end
    want = b"\n" + bytes([0 if mark is None else mark])
    first_pending = True
    while remaining > 0:
        data = stream.read(min(remaining, 8 << 20))
        if not data:
            break
        remaining -= len(data)
        block = carry + data
        cut = len(block) if remaining <= 0 else block.rfind(b"\n") + 1
        whole, carry = block[:cut], block[cut:]
        if mark is None:
            if first_pending:
                for line in whole.split(b"\n"):
                    if line.strip():
                        found.append(line.rstrip(b"\r"))
                        first_pending = False
                        break
            if not first_pending and stream.seekable():
                break
            continue
        if whole[:1] == bytes([mark]):  # a block always starts at a line start
            stop = whole.find(b"\n")
            found.append(whole[:stop if stop >= 0 else len(whole)])
        at = whole.find(want)
        while at >= 0:
            stop = whole.find(b"\n", at + 1)
            found.append(whole[at + 1:stop if stop >= 0 else len(whole)])
            at = whole.find(want, at + 1)
    if stream.seekable():
        stream.seek(end)
    return [line.rstrip(b"\r") for line in found]


class Positioned:
    """A stream already at ``position``: :func:`portradar.ingest.lines.skip_to` is a no-op.

    After :func:`prefix_lines` has read through a non-seekable input up to the resume
    offset, the line reader must not skip that many bytes again.
    """

    def __init__(self, stream: BinaryIO, position: int) -> None:
        self._stream = stream
        self._position = position

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset != self._position:
            raise ValueError("a resumed stream can only stay where it is")
        return self._position

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._position += len(data)
        return data

    def readinto(self, view: memoryview) -> int:
        reader = getattr(self._stream, "readinto", None)
        if reader is not None:
            n = int(reader(view) or 0)
        else:
            data = self._stream.read(len(view))
            n = len(data)
            view[:n] = data
        self._position += n
        return n
