"""Compiled scanners for the fields inside log lines: ``key=value``, CSV, fixed texts.

FortiGate, CEF extensions, ScreenOS and Junos structured data are ``key=value`` lists;
PAN-OS is CSV with quoted fields; Cisco's messages are fixed texts with holes.  A regex
per field costs one pass over every line each, and a capturing regex is slow whatever
the engine: about 3 µs per 150-byte line in Rust's ``regex`` (through Polars) as in
Python's ``re``, measured on the reference machine (``bench/formats_vendor_bench.py``).
These numba kernels walk each line once over the Arrow string buffers and return byte
spans (``-1`` when absent); :func:`span_strings` turns spans into an Arrow string array
without a Python object per line.

* :func:`key_values`: the values of the wanted keys;
* :func:`delimited_spans` / :func:`csv_spans`: the first fields of a delimited record;
* :func:`after`: the text after a marker (a message body);
* :class:`Templates`: scanf-like matching of fixed message texts
  (``Deny {proto} src {in_if*}:{src}/{sport} dst ...``).

Value grammars (:class:`KeyValueStyle`):

* ``TOKEN``: a value is ``"quoted"`` (quotes dropped) or runs to the next space
  (FortiOS, Junos ``[junos@... key="value"]``);
* ``TO_NEXT_KEY``: an unquoted value runs to the next `` key=`` (so it may hold spaces:
  CEF's ``msg=``, ScreenOS' ``service=msrpc Endpoint Mapper(tcp)``); with
  ``two_word_keys`` a key may be two words (ScreenOS' ``src zone=``); with
  ``pipe_separates`` a ``|`` also ends a token (the CEF header before the extension).

>>> import pyarrow as pa
>>> lines = pa.array(['date=2023-06-21 devname="FGT 1" srcip=1.2.3.4 x', 'srcip=::1'])
>>> cols = key_values(lines, ["srcip", "devname"], KeyValueStyle())
>>> cols["srcip"].to_pylist(), cols["devname"].to_pylist()
(['1.2.3.4', '::1'], ['FGT 1', None])
>>> cef = pa.array(["CEF:0|V|P|1|2|N|5|src=10.0.0.1 msg=two words dpt=22"])
>>> key_values(cef, ["msg", "dpt"], KeyValueStyle(to_next_key=True,
...            pipe_separates=True))["msg"].to_pylist()
['two words']
>>> csv = pa.array(['1,"a, b",c'])
>>> fs, fe = csv_spans(csv, np.zeros(1, np.int64), 3)
>>> span_strings(csv, fs[:, 1], fe[:, 1]).to_pylist()
['a, b']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl


@dataclass(frozen=True)
class KeyValueStyle:
    """How keys and values are delimited (see the module doc)."""

    to_next_key: bool = False
    two_word_keys: bool = False
    pipe_separates: bool = False


def string_buffers(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray,
                                                                 np.ndarray]:
    """``(large_string array, int64 offsets, uint8 data)`` of a string array, no copy if large."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.large_string():
        values = values.cast(pa.large_string())
    n = len(values)
    bufs = values.buffers()
    offsets = np.frombuffer(bufs[1], np.int64, count=n + 1, offset=values.offset * 8)
    data = (np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None and bufs[2].size
            else np.zeros(0, np.uint8))
    return values, offsets, data


@numba.njit(cache=True, inline="always")
def _is_key_char(c):  # pragma: no cover - jit
    return (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 95 or c == 45
            or c == 46 or c == 91 or c == 93 or c == 64)


@numba.njit(cache=True, inline="always")
def _key_end(data, p, e):  # pragma: no cover - jit
    """End of the key characters starting at p (p itself when none)."""
    while p < e and _is_key_char(data[p]):
        p += 1
    return p


@numba.njit(cache=True)
def _key_at(data, p, e, two_word):  # pragma: no cover - jit
    """If a key and '=' start at p, return (key end, position after '='), else (-1, -1)."""
    q = _key_end(data, p, e)
    if q == p:
        return -1, -1
    if q < e and data[q] == 61:
        return q, q + 1
    if two_word and q < e and data[q] == 32:
        r = _key_end(data, q + 1, e)
        if r > q + 1 and r < e and data[r] == 61:
            return r, r + 1
    return -1, -1


@numba.njit(cache=True)
def _match_key(data, ks, ke, keys, key_off, by_len):  # pragma: no cover - jit
    """Index of the wanted key equal to data[ks:ke], or -1.

    ``by_len[n]`` lists (as a range into ``key_off`` order) the keys of length n.
    """
    n = ke - ks
    if n >= by_len.shape[0] - 1:
        return -1
    for j in range(by_len[n], by_len[n + 1]):
        a = key_off[j]
        same = True
        for i in range(n):
            if data[ks + i] != keys[a + i]:
                same = False
                break
        if same:
            return j
    return -1


@numba.njit(cache=True, parallel=True, nogil=True)
def _kv_spans(data, offsets, start, keys, key_off, by_len, to_next_key, two_word,
              pipe):  # pragma: no cover - jit
    n = offsets.shape[0] - 1
    m = key_off.shape[0] - 1
    vs = np.full((n, m), -1, np.int64)
    ve = np.full((n, m), -1, np.int64)
    for row in numba.prange(n):
        if start[row] < 0:
            continue
        p = offsets[row] + start[row]
        e = offsets[row + 1]
        at_start = True
        while p < e:
            c = data[p]
            if c == 32 or (pipe and c == 124):
                at_start = True
                p += 1
                continue
            if not at_start:
                p += 1
                continue
            at_start = False
            ke, v = _key_at(data, p, e, two_word)
            if ke < 0:
                p += 1
                continue
            j = _match_key(data, p, ke, keys, key_off, by_len)
            # the value
            if v < e and data[v] == 34:  # "quoted"
                q = v + 1
                while q < e and data[q] != 34:
                    q += 1
                s, t = v + 1, q
                p = q + 1 if q < e else e
            elif to_next_key:
                q = v
                while q < e:
                    if data[q] == 32:
                        r = q
                        while r < e and data[r] == 32:
                            r += 1
                        if _key_at(data, r, e, two_word)[0] >= 0:
                            break
                        q = r
                        continue
                    q += 1
                t = q
                while t > v and data[t - 1] == 32:
                    t -= 1
                s = v
                p = q
            else:
                q = v
                while q < e and data[q] != 32:
                    q += 1
                s, t = v, q
                p = q
            if j >= 0 and vs[row, j] < 0:
                vs[row, j] = s
                ve[row, j] = t
            at_start = p < e and data[p] == 32
    return vs, ve


@numba.njit(cache=True, parallel=True, nogil=True)
def _delimited(data, offsets, start, nfields, sep, quote, escape):  # pragma: no cover - jit
    """Spans of the first ``nfields`` ``sep``-separated fields after byte ``start[row]``.

    ``quote`` (or -1): a field starting with it runs to the closing one (doubled inside);
    ``escape`` (or -1): a byte that makes the next one literal.
    """
    n = offsets.shape[0] - 1
    fs = np.full((n, nfields), -1, np.int64)
    fe = np.full((n, nfields), -1, np.int64)
    for row in numba.prange(n):
        if start[row] < 0:
            continue
        p = offsets[row] + start[row]
        e = offsets[row + 1]
        f = 0
        while f < nfields and p <= e:
            if p < e and data[p] == quote:
                q = p + 1
                while q < e:
                    if data[q] == quote:
                        if q + 1 < e and data[q + 1] == quote:
                            q += 2
                            continue
                        break
                    q += 1
                fs[row, f] = p + 1
                fe[row, f] = q
                q = q + 1 if q < e else e
                while q < e and data[q] != sep:
                    q += 1
            else:
                q = p
                while q < e and data[q] != sep:
                    q += 2 if data[q] == escape else 1
                q = min(q, e)
                fs[row, f] = p
                fe[row, f] = q
            f += 1
            if q >= e:
                break
            p = q + 1
    return fs, fe


@numba.njit(cache=True, parallel=True, nogil=True)
def _after(data, offsets, pos, stops):  # pragma: no cover - jit
    """From byte ``pos[row]``: the first byte in ``stops``, and the text after it and spaces."""
    n = offsets.shape[0] - 1
    out = np.full((n, 3), -1, np.int64)
    for row in numba.prange(n):
        if pos[row] < 0:
            continue
        e = offsets[row + 1]
        p = offsets[row] + pos[row]
        while p < e:
            hit = False
            for c in stops:
                if data[p] == c:
                    hit = True
            if hit:
                break
            p += 1
        if p >= e:
            continue
        out[row, 0] = p
        q = p + 1
        while q < e and data[q] == 32:
            q += 1
        out[row, 1] = q
        out[row, 2] = e
    return out


@numba.njit(cache=True, parallel=True, nogil=True)
def _copy_spans(data, s, e, offsets, out):  # pragma: no cover - jit
    for i in numba.prange(s.shape[0]):
        if s[i] >= 0:
            out[offsets[i]:offsets[i + 1]] = data[s[i]:e[i]]


def span_strings(values: pa.Array, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The spans (absolute byte offsets into ``values``' data, -1: null) as strings."""
    _, _, data = string_buffers(values)
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    missing = starts < 0
    offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(np.where(missing, 0, ends - starts), out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    _copy_spans(data, starts, ends, offsets, out)
    validity = None
    if missing.any():
        validity = pa.array(~missing).buffers()[1]
    return pa.Array.from_buffers(pa.large_string(), len(starts),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(out)],
                                 null_count=int(missing.sum()))


def key_values(values: pa.Array | pa.ChunkedArray, keys: list[str], style: KeyValueStyle,
               start: np.ndarray | None = None) -> dict[str, pa.Array]:
    """The value of every key in ``keys`` on every line (null where absent), one pass.

    ``start[i]`` is the byte of line ``i`` where the pairs begin (-1: none); default 0.
    """
    arr, offsets, data = string_buffers(values)
    # keys sorted by length, so the kernel compares a token only with keys as long
    order = sorted(range(len(keys)), key=lambda j: len(keys[j].encode()))
    encoded = [keys[j].encode() for j in order]
    table = np.frombuffer(b"".join(encoded), np.uint8) if encoded else np.zeros(0, np.uint8)
    key_off = np.zeros(len(encoded) + 1, np.int64)
    key_off[1:] = np.cumsum([len(k) for k in encoded])
    longest = max((len(k) for k in encoded), default=0)
    by_len = np.searchsorted([len(k) for k in encoded], np.arange(longest + 2)).astype(np.int64)
    begin = np.zeros(len(arr), np.int64) if start is None else np.asarray(start, np.int64)
    vs, ve = _kv_spans(data, offsets, begin, table, key_off, by_len, style.to_next_key,
                       style.two_word_keys, style.pipe_separates)
    return {keys[j]: span_strings(arr, vs[:, i], ve[:, i]) for i, j in enumerate(order)}


def delimited_spans(values: pa.Array | pa.ChunkedArray, start: np.ndarray, nfields: int,
                    sep: str = ",", quote: str | None = '"',
                    escape: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Byte spans (absolute) of the first ``nfields`` fields of each line from ``start``.

    ``start[i]`` is relative to line ``i`` (-1: the line has no record).  A quoted field's
    span excludes the quotes (a doubled quote inside stays doubled); missing fields -1.
    """
    _, offsets, data = string_buffers(values)
    return _delimited(data, offsets, np.asarray(start, np.int64), nfields, ord(sep),
                      ord(quote) if quote else -1, ord(escape) if escape else -1)


def csv_spans(values: pa.Array | pa.ChunkedArray, start: np.ndarray,
              nfields: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`delimited_spans` of comma-separated, double-quoted fields."""
    return delimited_spans(values, start, nfields)


def after(values: pa.Array | pa.ChunkedArray, pos: np.ndarray,
          stops: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From byte ``pos[i]`` of each line: where the first of ``stops`` is, and the span of
    the rest of the line after it (and after spaces); all absolute byte offsets, -1 if none.

    >>> stop, s, e = after(pa.array(["ab %X-1: body"]), np.array([3]), b":")
    >>> span_strings(pa.array(["ab %X-1: body"]), s, e).to_pylist()
    ['body']
    """
    _, offsets, data = string_buffers(values)
    out = _after(data, offsets, np.asarray(pos, np.int64), np.frombuffer(stops, np.uint8))
    return out[:, 0], out[:, 1], out[:, 2]


def relative(values: pa.Array | pa.ChunkedArray, absolute: np.ndarray) -> np.ndarray:
    """Absolute byte offsets (as :func:`after` returns) made relative to each line (-1 kept)."""
    _, offsets, _ = string_buffers(values)
    absolute = np.asarray(absolute, np.int64)
    return np.where(absolute >= 0, absolute - offsets[:-1], -1)


def strings(values: pa.Array | pa.ChunkedArray, starts: np.ndarray,
            ends: np.ndarray) -> pl.Series:
    """:func:`span_strings` as a Polars string series (all-null spans cost nothing)."""
    starts = np.asarray(starts, np.int64)
    if not (starts >= 0).any():
        return pl.repeat(None, len(starts), dtype=pl.String, eager=True)
    return pl.Series(span_strings(values, starts, ends)).cast(pl.String)


# --- templates: scanf-like matching of fixed message texts ------------------------------

_LITERAL, _FIELD = 0, 1


@dataclass(frozen=True)
class Templates:
    """Message texts like ``Deny {proto} src {in_if*}:{src}/{sport} dst ...``, compiled.

    ``{name}`` is a field without spaces, ``{name*}`` one that may hold spaces,
    ``{name:d}`` one of digits only, ``{_}`` a field that is skipped.  A field ends at
    the first place the literal text after it follows (scanf's rule), so a template is
    only for texts whose fields cannot contain that literal; anything else belongs to a
    regex.  A template matches a prefix of the text (what follows its last literal is
    ignored).
    """

    texts: tuple[str, ...]
    names: tuple[str, ...]  # the field slots, in order of first appearance
    ops: np.ndarray  # (kind, literal start, literal length, slot, spaces allowed)
    op_off: np.ndarray  # template i is ops[op_off[i]:op_off[i + 1]]
    pool: np.ndarray  # the literal bytes

    @classmethod
    def compile(cls, texts: list[str]) -> Templates:
        names: list[str] = []
        ops: list[tuple[int, int, int, int, int]] = []
        pool = bytearray()
        op_off = [0]
        for text in texts:
            parts = re.split(r"(\{\w+(?:\*|:d)?\})", text)
            previous_field = False
            for part in parts:
                if not part:
                    continue
                if part.startswith("{"):
                    if previous_field:
                        raise ValueError(f"two fields without text between them: {text!r}")
                    name = part.strip("{}*").removesuffix(":d")
                    slot = -1
                    if name != "_":
                        if name not in names:
                            names.append(name)
                        slot = names.index(name)
                    kind = 1 if part.endswith("*}") else 2 if part.endswith(":d}") else 0
                    ops.append((_FIELD, 0, 0, slot, kind))
                    previous_field = True
                else:
                    raw = part.encode()
                    ops.append((_LITERAL, len(pool), len(raw), -1, 0))
                    pool += raw
                    previous_field = False
            op_off.append(len(ops))
        return cls(tuple(texts), tuple(names), np.array(ops, np.int64).reshape(-1, 5),
                   np.array(op_off, np.int64), np.frombuffer(bytes(pool), np.uint8).copy())

    def match(self, values: pa.Array | pa.ChunkedArray,
              start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(template index or -1, field starts, field ends)`` per line, text from ``start``.

        Spans are absolute byte offsets (for :func:`span_strings`), one column per name.

        >>> t = Templates.compile(["Deny {proto} src {src}/{sport:d} dst",
        ...                        "Deny {proto} src {src}"])
        >>> arr = pa.array(["Deny tcp src 1.2.3.4/55 dst x", "Deny udp src ::1", "Allow"])
        >>> which, fs, fe = t.match(arr, np.zeros(3, np.int64))
        >>> which.tolist(), span_strings(arr, fs[:, 1], fe[:, 1]).to_pylist()
        ([0, 1, -1], ['1.2.3.4', '::1', None])
        """
        _, offsets, data = string_buffers(values)
        return _match_templates(data, offsets, np.asarray(start, np.int64), self.ops,
                                self.op_off, self.pool, len(self.names))


@numba.njit(cache=True)
def _literal_at(data, q, e, pool, a, n):  # pragma: no cover - jit
    if q + n > e:
        return False
    for i in range(n):  # noqa: SIM110 - numba compiles no generator expressions
        if data[q + i] != pool[a + i]:
            return False
    return True


@numba.njit(cache=True)
def _match_one(data, s, e, ops, lo, hi, pool, fs, fe):  # pragma: no cover - jit
    p = s
    for i in range(lo, hi):
        kind = ops[i, 0]
        if kind == _LITERAL:
            if not _literal_at(data, p, e, pool, ops[i, 1], ops[i, 2]):
                return False
            p += ops[i, 2]
            continue
        spaces = ops[i, 4] == 1
        digits = ops[i, 4] == 2
        q = p
        if i + 1 < hi:  # the field ends where the next literal starts
            a = ops[i + 1, 1]
            n = ops[i + 1, 2]
            while True:
                if q >= e:
                    return False
                if q > p and _literal_at(data, q, e, pool, a, n):
                    break
                if (data[q] == 32 and not spaces) or (digits and not 48 <= data[q] <= 57):
                    return False
                q += 1
        else:  # a last field runs to the end of its token (or of the text)
            while q < e and (spaces or data[q] != 32):
                if digits and not 48 <= data[q] <= 57:
                    break
                q += 1
            if q == p:
                return False
        slot = ops[i, 3]
        if slot >= 0:
            fs[slot] = p
            fe[slot] = q
        p = q
    return True


@numba.njit(cache=True, parallel=True, nogil=True)
def _match_templates(data, offsets, start, ops, op_off, pool,
                     nslots):  # pragma: no cover - jit
    n = offsets.shape[0] - 1
    which = np.full(n, -1, np.int64)
    fs = np.full((n, nslots), -1, np.int64)
    fe = np.full((n, nslots), -1, np.int64)
    for row in numba.prange(n):
        if start[row] < 0:
            continue
        s = offsets[row] + start[row]
        e = offsets[row + 1]
        ts = np.empty(nslots, np.int64)
        te = np.empty(nslots, np.int64)
        for t in range(op_off.shape[0] - 1):
            ts[:] = -1
            te[:] = -1
            if _match_one(data, s, e, ops, op_off[t], op_off[t + 1], pool, ts, te):
                which[row] = t
                fs[row] = ts
                fe[row] = te
                break
    return which, fs, fe
