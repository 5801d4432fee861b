"""Spark jobs against the embedded pipeline on the same simulator events: equal answers.

One ``local[2]`` SparkSession for the module (loopback only, no UI), one simulated
store (21 days, 3 sensors, a worm on 445 and a sweep on 23: about 50,000 events), its
archive, and one ``portradar spark all`` run into a fresh store.  Skipped when PySpark,
pandas or Java is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from portradar.spark.session import spark_available

pytestmark = pytest.mark.skipif(spark_available() is not None,
                                reason=f"Spark unavailable: {spark_available()}")


@pytest.fixture(scope="module")
def spark() -> Any:
    from portradar.spark.session import build_session

    session = build_session("local[2]", app_name="portradar-tests", shuffle_partitions=2)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's events in a store, with activity, new sources and verdicts."""
    from portradar.activity import new_sources
    from portradar.ingest.pipeline import store_batches
    from portradar.scan.detect import detect
    from portradar.sim import scenario as sc
    from portradar.sim.events import event_batches
    from portradar.store import Store

    path = tmp_path_factory.mktemp("spark") / "embedded.duckdb"
    chosen = sc.demo(days=21, sensors=3, seed=1, scale=0.02,
                     campaigns=("445", "sweep:23@10"))
    sim = sc.simulate(chosen, keep_sightings=True)
    assert sim.sightings is not None
    start_us = int(chosen.start_time.timestamp() * 1_000_000)
    with Store.open(path) as store:
        store_batches(store, event_batches(sim.sightings, sensors=chosen.sensor_names,
                                           start_us=start_us, seed=chosen.seed),
                      name="sim", identity=b"test-spark-sim", fmt="simulated")
        new_sources.sync(store)
        detect(store, full=True)
    return path


@pytest.fixture(scope="module")
def archive(embedded: Path) -> Path:
    from portradar.archive.parquet_archive import export_store
    from portradar.store import Store

    root = embedded.parent / "archive"
    with Store.open(embedded, read_only=True) as store:
        export_store(store, root)
    return root


@pytest.fixture(scope="module")
def spark_store(spark: Any, archive: Path) -> tuple[Path, dict[str, Any]]:
    from portradar.cli.spark_cmd import run_jobs

    path = archive.parent / "spark.duckdb"
    summary = run_jobs("all", str(archive), str(archive.parent / "out"),
                       store_path=str(path), spark=spark)
    return path, summary


def _differences(store: Path, other: Path, table: str, exclude: str = "") -> tuple[int, int]:
    con = duckdb.connect(str(store), read_only=True)
    con.execute(f"ATTACH '{other}' AS other (READ_ONLY)")
    cols = f"* EXCLUDE ({exclude})" if exclude else "*"
    out = tuple(
        con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT ALL "
                    f"SELECT {cols} FROM {b})").fetchall()[0][0]
        for a, b in ((table, f"other.{table}"), (f"other.{table}", table)))
    con.close()
    return out[0], out[1]


def _rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_job_read_every_event(spark_store: tuple[Path, dict[str, Any]],
                                  embedded: Path) -> None:
    _, summary = spark_store
    assert summary["events"] == _rows(embedded, "SELECT count(*) FROM event_rows")[0][0]
    assert summary["answering"] is False


@pytest.mark.parametrize("table", ["port_activity_hourly", "port_activity_daily",
                                   "port_new_sources_hourly", "port_new_sources_daily"])
def test_per_port_counts_equal_the_embedded_ones(spark_store: tuple[Path, dict[str, Any]],
                                                 embedded: Path, table: str) -> None:
    path, _ = spark_store
    assert _rows(path, f"SELECT count(*) FROM {table}")[0][0] > 0
    assert _differences(path, embedded, table) == (0, 0)


@pytest.mark.parametrize("table", ["scanners", "scan_profiles", "campaigns",
                                   "campaign_members"])
def test_scanners_equal_the_embedded_ones(spark_store: tuple[Path, dict[str, Any]],
                                          embedded: Path, table: str) -> None:
    path, _ = spark_store
    if table in ("scanners", "scan_profiles"):
        assert _rows(path, f"SELECT count(*) FROM {table}")[0][0] > 100
    assert _differences(path, embedded, table) == (0, 0)


@pytest.mark.parametrize("period", ["day", "hour"])
def test_spikes_equal_the_embedded_ones(spark_store: tuple[Path, dict[str, Any]],
                                        embedded: Path, period: str) -> None:
    from portradar.spikes.activity_matrix import from_store
    from portradar.spikes.spike_detector import SpikeDetector
    from portradar.store import Store

    path, _ = spark_store
    with Store.open(embedded) as store:
        total = from_store(store, period=period, scope="all")
        by_sensor = from_store(store, period=period, scope="sensors")
    want = sorted(json.dumps({"period": period, **s.as_row(total)}, sort_keys=True)
                  for s in SpikeDetector.for_period(period).detect(total, by_sensor))
    con = duckdb.connect(str(path), read_only=True)
    cur = con.execute("SELECT * FROM detected_spikes WHERE period = ?", [period])
    names = [d[0] for d in cur.description]
    got = sorted(json.dumps(dict(zip(names, r, strict=True)), sort_keys=True)
                 for r in cur.fetchall())
    con.close()
    if period == "day":
        assert want, "the simulated worm on 445 should make a daily spike"
    assert got == want


@pytest.mark.parametrize("args", [["spikes", "--json"], ["spikes", "--period", "hour", "--json"],
                                  ["scanners", "--json", "-n", "100000"],
                                  ["ports", "--json", "-n", "50"],
                                  ["port", "445", "--json", "--last", "21"]])
def test_the_cli_reads_the_spark_store_like_the_embedded_one(
        spark_store: tuple[Path, dict[str, Any]], embedded: Path, args: list[str]) -> None:
    from portradar.cli.app import cli

    path, _ = spark_store
    runner = CliRunner()
    outputs = []
    for db in (embedded, path):
        done = runner.invoke(cli, ["--db", str(db), *args])
        assert done.exit_code == 0, done.output
        outputs.append(json.loads(done.output))
    assert outputs[0] == outputs[1]
    assert outputs[0]


def test_campaign_members_are_read_back_from_the_archive_as_from_the_store(
        spark: Any, archive: Path, embedded: Path) -> None:
    """The stage-2 reader gives the embedded load columns (``detect._fetch``'s) for the
    sources asked for: the campaign-only members' events, read from the archive."""
    from portradar.scan.detect import event_table
    from portradar.spark.archive_source import read_archive
    from portradar.spark.scanners_job import lonely_loader

    con = duckdb.connect(str(embedded), read_only=True)
    con.execute("""CREATE TEMP TABLE _lonely AS SELECT src_hi, src_lo FROM scanners
                   ORDER BY probes DESC LIMIT 5""")
    cols, replies = lonely_loader(spark, read_archive(spark, archive))(con)
    table, load = event_table(con)
    want_table = con.sql(f"SELECT {load} FROM {table} e WHERE (e.src_hi, e.src_lo) IN "
                         "(SELECT src_hi, src_lo FROM _lonely)").to_arrow_table()
    con.close()
    assert replies.size == 0
    want = {k: want_table.column(k).to_numpy() for k in want_table.column_names}
    assert len(cols["ts"]) == len(want["ts"]) > 0
    order = np.lexsort((want["sport"], want["dport"], want["proto"], want["dst_lo"],
                        want["dst_hi"], want["ts"]))
    for name in ("ts", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport",
                 "tcp_flags", "icmp_type", "outcome", "packets", "ttl", "ip_id",
                 "tcp_window", "tcp_seq"):
        assert np.array_equal(cols[name], want[name][order]), name
        assert cols[name].dtype == want[name].dtype, name


def test_unsigned_addresses_survive_spark(spark: Any, tmp_path: Path) -> None:
    """Addresses with the top bit set (fe80::, ff02::) keep every bit through Spark."""
    from portradar.archive.parquet_archive import write_events
    from portradar.events.schema import make_batch
    from portradar.spark.archive_source import read_archive

    hi = [0xFE80 << 48, 0xFF02 << 48, 0]
    lo = [2**64 - 1, 1, 0xFFFF_C000_0201]
    hi_arr, lo_arr = pa.array(hi, pa.uint64()), pa.array(lo, pa.uint64())
    write_events([make_batch({"ts": [0, 1, 2], "src_hi": hi_arr, "src_lo": lo_arr,
                              "dst_lo": [5] * 3,
                              "proto": [6] * 3, "dport": [22] * 3, "sensor": "s"})], tmp_path)
    got = read_archive(spark, tmp_path).select("src_hi", "src_lo").toArrow()
    pairs = sorted(zip(got.column("src_hi").to_numpy().view(np.uint64).tolist(),
                       got.column("src_lo").to_numpy().view(np.uint64).tolist(), strict=True))
    assert pairs == sorted(zip(hi, lo, strict=True))
