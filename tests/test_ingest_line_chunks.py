"""Line readers end their chunks on DuckDB row-group boundaries (``LINES_PER_GROUP``)."""

from __future__ import annotations

import io
from pathlib import Path

from portradar.ingest.iptables import IptablesReader
from portradar.ingest.lines import LINES_PER_GROUP
from portradar.ingest.pipeline import ingest_input
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.store import Store

LINE = ("2026-11-26T10:00:{s:02d}Z fw kernel: DROP IN=eth0 OUT= SRC=198.51.100.{h} "
        "DST=192.0.2.1 LEN=40 TTL=50 ID=1 PROTO=TCP SPT=1 DPT={p} SYN URGP=0\n")


def _log(lines: int) -> bytes:
    return "".join(LINE.format(s=i % 60, h=i % 250, p=i % 1024) for i in range(lines)).encode()


def test_chunks_hold_whole_row_groups_of_lines_and_lose_nothing() -> None:
    n = 2 * LINES_PER_GROUP + 12_345
    data = _log(n)
    options = ReadOptions(chunk_bytes=len(data) // 2 + 1000)  # ~150,000 lines per read
    stats = ReadStats()
    chunks = list(IptablesReader().read(io.BytesIO(data), start_offset=0, options=options,
                                        stats=stats))
    records = [c.records for c in chunks]
    assert sum(records) == n and stats.events == n
    assert all(r % LINES_PER_GROUP == 0 for r in records[:-1])
    # each chunk ends exactly after its lines: offsets are line boundaries
    for chunk in chunks:
        assert chunk.offset is not None
        assert chunk.offset == len(data) or data[chunk.offset - 1:chunk.offset] == b"\n"
    assert chunks[-1].offset == len(data)


def test_ingest_of_aligned_chunks_stores_every_line_once(tmp_path: Path) -> None:
    n = LINES_PER_GROUP + 5_000
    path = tmp_path / "fw.log"
    path.write_bytes(_log(n))
    with Store.open(str(tmp_path / "t.duckdb")) as store:
        first = ingest_input(store, path)
        again = ingest_input(store, path)
        (stored,) = store.con.execute("SELECT count(*) FROM event_rows").fetchone()
    assert (first.events, again.status, stored) == (n, "unchanged", n)
