"""Spark per-port aggregation with 1 and 2 cores against the embedded engine, same events.

Steps (every intermediate kept under ``--work``, reused when already there):

1. ``bench/gen_iptables_log.py --lines N`` (default 20 million, seed 7, 4 sensors,
   7 days): a bounded, seeded iptables LOG file;
2. ``portradar ingest`` into a DuckDB store (not timed here: ``ingest_bench.py`` does);
3. **embedded**: every day marked dirty and ``Store.refresh_activity()`` timed: the
   hourly and daily per-port activity (records, packets, distinct sources and targets,
   per sensor and all sensors), single process, DuckDB's own threads;
4. ``portradar export`` of the store to a day/sensor Parquet archive (timed);
5. **Spark**: ``portradar.spark.activity_job.activity`` for hour and day, written as
   Parquet, with ``local[1]`` and ``local[2]`` (each in a fresh JVM, one warm-up-free
   run: what a user waits for, JVM start excluded), the same figures as step 3.

Prints events/s of each and the speed-up of ``local[2]`` over ``local[1]``; ``--json``
writes them.  The machine this was written on has 2 vCPUs shared with other work, so
the 2-core figure is a lower bound on what two dedicated cores give.

    python bench/spark_bench.py                     # 20 M events
    python bench/spark_bench.py --events 2000000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _spark_run(master: str, archive: str, out: str) -> dict[str, float]:
    """One Spark aggregation run (called in a child process)."""
    from portradar.spark import activity_job
    from portradar.spark.archive_source import read_archive
    from portradar.spark.session import build_session

    cores = 1 if master == "local[1]" else 2
    spark = build_session(master, shuffle_partitions=4 * cores,
                          conf={"spark.driver.memory": "4g"})
    started = time.perf_counter()
    events = read_archive(spark, archive)
    n = events.count()
    for period in ("hour", "day"):
        activity_job.activity(events, period).write.mode("overwrite").parquet(
            os.path.join(out, f"activity_{period}"))
    seconds = time.perf_counter() - started
    spark.stop()
    return {"events": n, "seconds": seconds}


def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default="/tmp/portradar-spark-bench")
    parser.add_argument("--json", dest="json_out")
    parser.add_argument("--spark-run", nargs=3, metavar=("MASTER", "ARCHIVE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.spark_run:
        print(json.dumps(_spark_run(*args.spark_run)))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"iptables-{args.events}-seed{args.seed}.log"
    db = work / f"bench-{args.events}.duckdb"
    archive = work / f"archive-{args.events}"
    if not log.exists():
        _run([sys.executable, str(HERE / "gen_iptables_log.py"), "--lines", str(args.events),
              "--seed", str(args.seed), "--days", "7", "--sensors", "fw1,fw2,fw3,fw4",
              "-o", str(log)])
    if not db.exists():
        _run(["portradar", "--db", str(db), "ingest", "--quiet", "--json", "--tz", "UTC",
              "--year", "2024", str(log)])

    from portradar.archive.parquet_archive import export_store
    from portradar.store.duckdb_store import Store

    figures: dict[str, object] = {"events_requested": args.events,
                                  "load_average": os.getloadavg()}
    with Store.open(db) as store:
        n = store.con.execute("SELECT count(*) FROM event_rows").fetchall()[0][0]
        figures["events"] = n
        store.con.execute("INSERT INTO activity_dirty SELECT DISTINCT CAST(ts AS DATE) "
                          "FROM event_rows")
        started = time.perf_counter()
        store.refresh_activity()
        figures["embedded_seconds"] = time.perf_counter() - started
        if not archive.exists():
            started = time.perf_counter()
            export_store(store, archive)
            figures["export_seconds"] = time.perf_counter() - started
    for master in ("local[1]", "local[2]"):
        out = work / f"out-{master[6]}"
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run([sys.executable, __file__, "--spark-run", master, str(archive),
                               str(out)], check=True, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        figures[f"spark_{master}_seconds"] = result["seconds"]
    n = int(figures["events"])  # type: ignore[call-overload]

    def rate(key: str) -> float:
        return n / float(figures[key])  # type: ignore[arg-type]

    figures["embedded_events_per_s"] = rate("embedded_seconds")
    figures["spark_local1_events_per_s"] = rate("spark_local[1]_seconds")
    figures["spark_local2_events_per_s"] = rate("spark_local[2]_seconds")
    figures["speedup_2_over_1"] = (float(figures["spark_local[1]_seconds"])  # type: ignore[arg-type]
                                   / float(figures["spark_local[2]_seconds"]))  # type: ignore[arg-type]
    figures["load_average_after"] = os.getloadavg()
    print(f"events: {n:,}  (load average before {figures['load_average']}, "
          f"after {figures['load_average_after']}; shared 2-vCPU machine)")
    print(f"embedded DuckDB refresh_activity: {figures['embedded_seconds']:.1f} s, "
          f"{figures['embedded_events_per_s']:,.0f} events/s")
    for cores in (1, 2):
        key = f"spark_local[{cores}]_seconds"
        print(f"Spark local[{cores}]: {figures[key]:.1f} s, "
              f"{figures[f'spark_local{cores}_events_per_s']:,.0f} events/s")
    print(f"speed-up local[2] / local[1]: {figures['speedup_2_over_1']:.2f}x")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
