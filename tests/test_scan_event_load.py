"""The detection's load read in DuckDB's chunks (portradar.scan.event_load)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

from portradar.scan.event_load import ChunkedLoad


def _table(n: int, chunk: int, seed: int = 1) -> tuple[pa.Table, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    src_hi = np.where(rng.random(n) < 0.1, rng.integers(1, 1 << 62, n), 0).astype(np.uint64)
    src_lo = (np.uint64(0xFFFF_0000_0000) + rng.integers(0, 1 << 20, n)).astype(np.uint64)
    dport = rng.integers(0, 65536, n).astype(np.uint16)
    dport_null = rng.random(n) < 0.2
    ts = np.sort(rng.integers(0, 10**12, n))
    cuts = [*list(range(0, n, chunk)), n]

    def chunked(values: np.ndarray, kind: pa.DataType,
                null: np.ndarray | None = None) -> pa.ChunkedArray:
        return pa.chunked_array([pa.array(values[a:b], kind,
                                          mask=None if null is None else null[a:b])
                                 for a, b in itertools.pairwise(cuts)], kind)

    table = pa.table({"ts": chunked(ts, pa.timestamp("us")),
                      "src_hi": chunked(src_hi, pa.uint64()),
                      "src_lo": chunked(src_lo, pa.uint64()),
                      "dport": chunked(dport, pa.uint16(), dport_null)})
    truth = {"ts": ts, "src_hi": src_hi, "src_lo": src_lo,
             "dport": np.where(dport_null, -1, dport.astype(np.int32))}
    return table, truth


def test_take_reads_rows_across_chunks_with_nulls_as_minus_one():
    table, truth = _table(10_000, 1_000)
    load = ChunkedLoad(table)
    assert load.n == 10_000 and load.starts.tolist()[:3] == [0, 1_000, 2_000]
    rows = np.sort(np.random.default_rng(2).choice(10_000, 3_000, replace=False))
    got = load.take(rows, {"dport": np.int32})
    for name, values in truth.items():
        assert np.array_equal(got[name], values[rows]), name
    assert got["dport"].dtype == np.int32 and got["src_lo"].dtype == np.uint64
    assert got["ts"].dtype == np.int64
    assert load.take(np.empty(0, np.int64))["ts"].size == 0


def test_part_rows_are_networks_modulo_parts_in_load_order():
    table, truth = _table(10_000, 1_234)
    load = ChunkedLoad(table)
    net = np.where(truth["src_hi"] == 0, truth["src_lo"] >> np.uint64(8),
                   (truth["src_hi"] >> np.uint64(16)) | np.uint64(1 << 62))
    part = (net % np.uint64(8)).astype(np.int64)
    got = list(load.part_rows(8, 2, 6))  # a load holding parts 2 to 5 only
    mine = (part >= 2) & (part < 6)
    load4 = ChunkedLoad(table.filter(pa.array(mine)))
    rows4 = list(load4.part_rows(8, 2, 6))
    expected = [np.flatnonzero(part[mine] == p) for p in range(2, 6)]
    assert [r.tolist() for r in rows4] == [e.tolist() for e in expected]
    assert len(got) == 4  # every row lands in some part, never out of bounds
    assert [r.tolist() for r in load.part_rows(1, 0, 1)] == [list(range(10_000))]


def test_columns_chunked_differently_are_read_alike():
    table, truth = _table(5_000, 700)
    other = pa.chunked_array([table.column("dport").combine_chunks()])  # one chunk
    table = table.set_column(3, "dport", other)
    load = ChunkedLoad(table)
    rows = np.arange(0, 5_000, 7)
    got = load.take(rows, {"dport": np.int32})
    assert np.array_equal(got["dport"], truth["dport"][rows])
    assert np.array_equal(got["src_lo"], truth["src_lo"][rows])


def test_sources_in_finds_exactly_the_given_sources():
    table, truth = _table(20_000, 3_000)
    load = ChunkedLoad(table)
    pick = np.array([5, 17, 19_999])
    rows = load.sources_in(truth["src_hi"][pick], truth["src_lo"][pick])
    wanted = set(zip(truth["src_hi"][pick].tolist(), truth["src_lo"][pick].tolist(),
                     strict=True))
    expected = [i for i, pair in enumerate(zip(truth["src_hi"].tolist(),
                                               truth["src_lo"].tolist(), strict=True))
                if pair in wanted]
    assert rows.tolist() == expected
    assert load.sources_in(np.empty(0, np.uint64), np.empty(0, np.uint64)).size == 0


def test_may_answer_sees_a_source_in_any_chunk_among_the_destinations():
    n = 9_000
    rng = np.random.default_rng(5)
    src_lo = rng.integers(1, 1 << 40, n).astype(np.uint64)
    dst_lo = rng.integers(1 << 41, 1 << 42, n).astype(np.uint64)
    zeros = np.zeros(n, np.uint64)

    def load(src: np.ndarray, dst: np.ndarray) -> ChunkedLoad:
        cut = [0, 2_000, 7_000, n]
        col = lambda v: pa.chunked_array(  # noqa: E731
            [pa.array(v[a:b], pa.uint64()) for a, b in itertools.pairwise(cut)])
        return ChunkedLoad(pa.table({"src_hi": col(zeros), "src_lo": col(src),
                                     "dst_hi": col(zeros), "dst_lo": col(dst)}))

    assert not load(src_lo, dst_lo).may_answer()
    src = src_lo.copy()
    src[8_500] = dst_lo[100]  # last chunk's source, first chunk's destination
    assert load(src, dst_lo).may_answer()
