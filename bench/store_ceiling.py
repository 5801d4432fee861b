"""The ceiling the store puts on end-to-end ingest speed: imports plus the DuckDB insert alone.

Usage (from the repository root)::

    python bench/store_ceiling.py --pcap bench/data/candidates-2000000-7.pcap
    python bench/store_ceiling.py --log bench/data/iptables-5M-seed7.log --limit 2000000

What it measures: the events of the input are decoded once, in this process, and
written to an uncompressed Parquet file.  Then, in fresh subprocesses (best of
``--repeat``), the least any ``portradar ingest`` of those events must do:

1. start Python and import ``duckdb``, ``pyarrow`` and ``numpy`` (no portradar, no numba);
2. create the store's tables (``store/schema.sql``);
3. ``INSERT`` the already decoded events into ``event_rows`` in one statement, as the
   pipeline does, and commit; close.

Reading the Parquet file is timed apart and left out.  The sum of 1 and 3 is a floor
below which no end-to-end run can go, whatever the reader: nothing is read, parsed,
paired or aggregated.  It is printed as a rate in the target's unit (input packets or
lines per second: every packet read counts, as in ``ingest_bench.py``, though a packet
that answered a probe is stored as the probe's outcome, not as an event; the insert's
CPU seconds beside it), next to the issue's target, for the
insert with DuckDB's default compression (what the store uses) and with
``force_compression='uncompressed'`` (a store two to three times larger; shown only to
say how much of the insert is compression).

It answers one question: can an end-to-end rate be reached at all by making the reader
faster?  If the ceiling itself is below the target, no.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCHEMA = ROOT / "src" / "portradar" / "store" / "schema.sql"

#: The child: imports, schema, one INSERT, close; prints its own timings as JSON.
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import duckdb, numpy, pyarrow, pyarrow.parquet as pq
t1 = time.perf_counter()
table = pq.read_table(sys.argv[1]).combine_chunks()
t2 = time.perf_counter()
con = duckdb.connect(sys.argv[2])
con.execute(open(sys.argv[3]).read())
if sys.argv[4] != "default":
    con.execute(f"SET force_compression = '{sys.argv[4]}'")
t3 = time.perf_counter()
c3 = time.process_time()
con.register("_incoming", table)
con.execute("BEGIN")
con.execute('''INSERT INTO event_rows
    SELECT ts, sensor_id, src_hi, src_lo, dst_hi, dst_lo, proto, sport, dport, tcp_flags,
           icmp_type, icmp_code, outcome, rule_id, in_iface_id, out_iface_id, packets, bytes,
           ttl, ip_id, tcp_window, tcp_seq, 1 FROM _incoming''')
con.execute("COMMIT")
con.close()
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "parquet": t2 - t1, "schema": t3 - t2,
                  "insert": t4 - t3, "insert_cpu": time.process_time() - c3}))
"""


def decoded_events(path: Path, fmt: str, limit: int | None) -> tuple[object, int]:
    """The input's events as the store's ``event_rows`` columns (a pyarrow Table), and
    the input records (packets, lines) they came from: the unit of the end-to-end rate,
    which counts every packet read, stored as an event or not (a packet that answered a
    probe is its outcome, not an event)."""
    sys.path.insert(0, str(ROOT / "src"))
    import pyarrow as pa

    from portradar.ingest.reader import ReadOptions, ReadStats
    from portradar.ingest.registry import get_reader
    from portradar.store.duckdb_store import Store

    reader = get_reader(fmt)()
    batches = []
    rows = records = 0
    with open(path, "rb") as f:
        for chunk in reader.read(f, start_offset=0, options=ReadOptions(),
                                 stats=ReadStats(source=str(path))):
            batches.append(chunk.batch)
            rows += chunk.batch.num_rows
            records += chunk.records
            if limit and rows >= limit:
                break
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "names.duckdb")
        try:
            table = pa.concat_tables([store._stored_columns(b) for b in batches if b.num_rows])
        finally:
            store.close()
    if limit and rows > limit:  # the records of the events kept, roughly: pro rata
        records = round(records * limit / rows)
    return (table.slice(0, limit) if limit else table), records


def child_run(parquet: Path, compression: str, tmp: Path) -> dict[str, float]:
    db = tmp / f"ceiling-{compression}.duckdb"
    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(parquet), str(db), str(SCHEMA),
                          compression], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    timings = json.loads(out.stdout)
    timings["process"] = wall
    timings["size_mb"] = db.stat().st_size / 1e6
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pcap", type=Path, help="a capture (target 2,000,000 packets/s)")
    source.add_argument("--log", type=Path, help="an iptables log (target 500,000 lines/s)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many events")
    parser.add_argument("--repeat", type=int, default=3, help="child runs each; best is kept")
    args = parser.parse_args(argv)
    path, fmt, target, unit = ((args.pcap, "pcap", 2_000_000, "packets/s") if args.pcap
                               else (args.log, "iptables", 500_000, "lines/s"))
    import pyarrow.parquet as pq

    # the ceiling is in the target's unit: input records (every packet or line read) per
    # second of imports plus the insert of the events they give
    t0 = time.perf_counter()
    table, n = decoded_events(path, fmt, args.limit)
    events = table.num_rows  # type: ignore[attr-defined]
    print(f"{path}: {n:,} {unit.split('/')[0]} read, {events:,} events decoded in "
          f"{time.perf_counter() - t0:.2f} s (not counted)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        parquet = tmp / "events.parquet"
        pq.write_table(table, parquet, compression="none")
        print(f"{'store compression':<18} {'imports s':>9} {'insert s':>9} {'CPU s':>6} "
              f"{'floor s':>8} {'ceiling ' + unit:>20} {'store MB':>9}")
        for compression in ("default", "uncompressed"):
            best = min((child_run(parquet, compression, tmp) for _ in range(args.repeat)),
                       key=lambda t: t["imports"] + t["insert"])
            floor = best["imports"] + best["insert"]
            print(f"{compression:<18} {best['imports']:>9.3f} {best['insert']:>9.3f} "
                  f"{best['insert_cpu']:>6.2f} {floor:>8.3f} {n / floor:>20,.0f} "
                  f"{best['size_mb']:>9.0f}")
    print(f"target: {target:,} {unit} end to end; a ceiling below it cannot be reached by a "
          f"faster reader")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
