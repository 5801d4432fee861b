"""One load of events for detection, kept as DuckDB returned it: Arrow chunks.

A full detection loads every event with one query (:data:`portradar.scan.detect.
_NATIVE_COLUMNS`: the columns as stored, nulls kept) and analyses it in parts by a
hash of the source's network.  DuckDB hands the result over in chunks of one row group
(122,880 rows); this class reads them in place, through numpy views of their buffers,
instead of joining each column's chunks into one array first.  On the 5 M-event
benchmark that join copied 325 MB (41 chunks of 17 columns) and faulted in as many
fresh pages, 0.4 CPU-s before the first part could start; a view costs nothing.

What detection needs from a load, chunk by chunk:

* :meth:`ChunkedLoad.part_rows`: each part's row numbers, in load order;
* :meth:`ChunkedLoad.take`: given rows (ascending, as a part's are) of every column in
  the analysis' dtype, -1 for null (as ``coalesce`` in the general load query);
* :meth:`ChunkedLoad.may_answer`: whether some source is also a destination (then
  replies are to be found, and the general path runs);
* :meth:`ChunkedLoad.sources_in`: the rows of given sources (campaign-only members).

>>> import pyarrow as pa
>>> table = pa.table({"src_hi": pa.chunked_array([[0, 0], [0]], pa.uint64()),
...                   "src_lo": pa.chunked_array([[0x0A000001, 0x0A000101], [0x0A000002]],
...                                              pa.uint64()),
...                   "dport": pa.chunked_array([[80, None], [22]], pa.uint16())})
>>> load = ChunkedLoad(table)
>>> [rows.tolist() for rows in load.part_rows(parts=2, first=0, last=2)]
[[0, 2], [1]]
>>> load.take(np.array([1, 2]), {"dport": np.int32})["dport"].tolist()
[-1, 22]
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from portradar.scan.arrow_arrays import _DTYPES
from portradar.scan.segment_set import nonzero, probe

#: One chunk of a column: its values (a view; a null's slot holds anything), its
#: validity bits (``None`` without nulls) and the bit of its first row.
Chunk = tuple[np.ndarray, np.ndarray | None, int]


class ChunkedLoad:
    """The columns of an Arrow table (integers and timestamps), chunk by chunk."""

    def __init__(self, table: pa.Table) -> None:
        self.names: list[str] = list(table.column_names)
        self.columns: dict[str, list[Chunk]] = {
            name: [_chunk(c) for c in table.column(name).chunks if len(c)]
            for name in self.names}
        self._table = table  # the buffers the views read
        first = self.columns[self.names[0]] if self.names else []
        sizes = [v.size for v, _, _ in first]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n = int(self.starts[-1])
        for name in self.names:  # DuckDB chunks every column alike; never assume it
            if [v.size for v, _, _ in self.columns[name]] != sizes:
                whole = _chunk(table.column(name).combine_chunks())
                self.columns[name] = _split(whole, self.starts)

    def dtype(self, name: str) -> np.dtype:
        return self.columns[name][0][0].dtype if self.columns[name] else np.dtype(np.int64)

    def take(self, rows: np.ndarray, dtypes: dict[str, Any] | None = None,
             names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The given rows (ascending) of each column (all, or ``names``), in ``dtypes``
        where given (its own dtype otherwise), -1 for null."""
        rows = np.asarray(rows, np.int64)
        bounds = np.searchsorted(rows, self.starts)  # each chunk's rows in ``rows``
        dtypes = dtypes or {}
        out: dict[str, np.ndarray] = {}
        for name in names if names is not None else self.names:
            taken = np.empty(rows.size, dtypes.get(name, self.dtype(name)))
            for c, (values, bits, bit0) in enumerate(self.columns[name]):
                lo, hi = int(bounds[c]), int(bounds[c + 1])
                if lo == hi:
                    continue
                base = int(self.starts[c])
                if bits is None:
                    _take_range(values, rows, base, lo, hi, taken)
                else:
                    _take_range_or_minus_one(values, bits, bit0, rows, base, lo, hi, taken)
            out[name] = taken
        return out

    def part_rows(self, parts: int, first: int, last: int) -> Iterator[np.ndarray]:
        """The rows of each part ``first`` to ``last - 1`` (network modulo ``parts``,
        as :data:`portradar.scan.detect.NET_KEY_SQL`), each in load order: a counting
        sort (0.03 s for 5 M rows)."""
        if last - first == 1:
            yield np.arange(self.n)
            return
        k = last - first
        part = np.empty(self.n, np.int32)
        bounds = np.zeros(k + 1, np.int64)
        for c, (hi, lo) in enumerate(self._pairs("src")):
            _part_ids(hi, lo, parts, first, k, part, int(self.starts[c]), bounds)
        np.cumsum(bounds, out=bounds)
        order = np.empty(self.n, np.int64)
        _counting_order(part, bounds, order)
        for p in range(k):
            yield order[bounds[p]:bounds[p + 1]]

    def may_answer(self) -> bool:
        """False when no row's source is any row's destination; True when one may be
        (hashes: a True can be wrong, and the caller confirms it with a query)."""
        return may_answer(self._pairs("src"), self._pairs("dst"))

    def _pairs(self, side: str) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(hi, lo) for (hi, _, _), (lo, _, _) in zip(
            self.columns[f"{side}_hi"], self.columns[f"{side}_lo"], strict=True)]

    def sources_in(self, src_hi: np.ndarray, src_lo: np.ndarray) -> np.ndarray:
        """The rows (ascending) whose source is one of the given (exact)."""
        keys, mask, state = address_set([(np.asarray(src_hi, np.uint64),
                                          np.asarray(src_lo, np.uint64))])
        found = np.zeros(self.n, np.bool_)
        for c, (hi, lo) in enumerate(self._pairs("src")):
            start = int(self.starts[c])
            sources_in(hi, lo, keys, mask, state, found[start:start + hi.size])
        rows = np.flatnonzero(found)
        got = self.take(rows, names=["src_hi", "src_lo"])
        # equal hashes of other addresses drop out here: exact pairs, compared as one
        # 16-byte value each
        exact = np.isin(_pair_values(got["src_hi"], got["src_lo"]),
                        _pair_values(src_hi, src_lo))
        return rows[exact]


def may_answer(sources: list[tuple[np.ndarray, np.ndarray]],
               destinations: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """False when no source (hi, lo) is a destination; True when one may be (a hash
    set of the destinations, so equal hashes of different addresses give a True)."""
    keys, mask, state = address_set(destinations, size=1 << 12)
    return any(any_source_in(hi, lo, keys, mask, state) for hi, lo in sources)


def address_set(pairs: list[tuple[np.ndarray, np.ndarray]], size: int = 16
                ) -> tuple[np.ndarray, np.uint64, np.ndarray]:
    """A hash set of the addresses (hi, lo) of every pair of arrays (``keys``,
    ``mask``) and its ``state`` (count, IPv4 span) for :func:`any_source_in` and
    :func:`sources_in`; ``size`` slots to start with, eight times more until they are
    at most half full."""
    while True:
        keys = np.zeros(size, np.uint64)
        mask = np.uint64(size - 1)
        state = np.array([0, -1, 0], np.int64)  # count, IPv4 span (as uint64 bits)
        if all(destination_set(hi, lo, keys, mask, state) for hi, lo in pairs):
            return keys, mask, state
        size *= 8


def _pair_values(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """(hi, lo) pairs as one structured value each, for exact set operations."""
    out = np.empty(len(hi), [("hi", np.uint64), ("lo", np.uint64)])
    out["hi"], out["lo"] = hi, lo
    return out


def _chunk(arr: pa.Array) -> Chunk:
    kind = arr.type
    dtype = np.dtype(np.int64) if pa.types.is_timestamp(kind) else np.dtype(_DTYPES[kind])
    values = np.frombuffer(arr.buffers()[1], dtype, count=arr.offset + len(arr))[arr.offset:]
    validity = arr.buffers()[0]
    if arr.null_count == 0 or validity is None:
        return values, None, 0
    return values, np.frombuffer(validity, np.uint8), arr.offset


def _split(chunk: Chunk, starts: np.ndarray) -> list[Chunk]:
    values, bits, bit0 = chunk
    return [(values[a:b], bits, bit0 + int(a)) for a, b in pairwise(starts.tolist())]


_MIX = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True)
def _take_range(values, rows, base, lo, hi, out):  # pragma: no cover - jit
    """``out[j] = values[rows[j] - base]`` for ``j`` in ``lo:hi``, in ``out``'s dtype."""
    for j in range(lo, hi):
        out[j] = values[rows[j] - base]


@numba.njit(cache=True, nogil=True)
def _take_range_or_minus_one(values, bits, bit0, rows, base, lo, hi,
                             out):  # pragma: no cover - jit
    """:func:`_take_range`, with -1 where the validity bit is clear."""
    for j in range(lo, hi):
        i = rows[j] - base
        b = bit0 + i
        out[j] = values[i] if (bits[b >> 3] >> (b & 7)) & 1 else -1


@numba.njit(cache=True, nogil=True)
def _part_ids(src_hi, src_lo, parts, first, k, part, start, counts):  # pragma: no cover
    """Each row's part (its /24, or tagged /48, modulo ``parts``, less ``first``); the
    rows per part in ``counts[1:]``."""
    m = np.uint64(parts)
    for i in range(src_hi.shape[0]):
        h = src_hi[i]
        net = src_lo[i] >> np.uint64(8) if h == 0 else (h >> np.uint64(16)) | np.uint64(1 << 62)
        p = np.int64(net % m) - first
        if p < 0 or p >= k:  # not this load's part: cannot happen, never write out of bounds
            p = 0
        part[start + i] = p
        counts[p + 1] += 1


@numba.njit(cache=True, nogil=True)
def _counting_order(part, bounds, order):  # pragma: no cover - jit
    at = bounds[:-1].copy()
    for i in range(part.shape[0]):
        p = part[i]
        order[at[p]] = i
        at[p] += 1


@numba.njit(cache=True, nogil=True)
def destination_set(dst_hi, dst_lo, keys, mask, state):  # pragma: no cover - jit
    """Add the addresses' hashes to ``keys``; ``state`` holds their count and the span
    of those whose hi is 0 (IPv4).  False (stop) once they fill half of ``keys``."""
    limit = keys.shape[0] // 2
    n = state[0]
    lo4 = np.uint64(state[1])
    hi4 = np.uint64(state[2])
    ok = True
    for i in range(dst_lo.shape[0]):
        h = dst_hi[i]
        lo = dst_lo[i]
        if h == 0:
            lo4 = min(lo4, lo)
            hi4 = max(hi4, lo)
        v = nonzero(lo ^ (h * _MIX))
        slot = probe(keys, mask, v)
        if keys[slot] == 0:
            keys[slot] = v
            n += 1
            if n > limit:
                ok = False
                break
    state[0] = n
    state[1] = np.int64(lo4)
    state[2] = np.int64(hi4)
    return ok


@numba.njit(cache=True, nogil=True)
def any_source_in(src_hi, src_lo, keys, mask, state):  # pragma: no cover - jit
    lo4 = np.uint64(state[1])
    hi4 = np.uint64(state[2])
    for i in range(src_lo.shape[0]):
        if src_hi[i] == 0 and (src_lo[i] < lo4 or src_lo[i] > hi4):
            continue  # outside every IPv4 destination's span: no look-up
        v = nonzero(src_lo[i] ^ (src_hi[i] * _MIX))
        if keys[probe(keys, mask, v)] == v:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def sources_in(src_hi, src_lo, keys, mask, state, out):  # pragma: no cover - jit
    """:func:`any_source_in` for every row: ``out`` marks the rows whose source may be
    in the set."""
    lo4 = np.uint64(state[1])
    hi4 = np.uint64(state[2])
    for i in range(src_lo.shape[0]):
        if src_hi[i] == 0 and (src_lo[i] < lo4 or src_lo[i] > hi4):
            continue
        v = nonzero(src_lo[i] ^ (src_hi[i] * _MIX))
        out[i] = keys[probe(keys, mask, v)] == v
