"""The partitioned Parquet archive: layout, exactly-once import, and three engines reading it."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from portradar.archive import parquet_archive as pa_arch
from portradar.errors import InputError
from portradar.events.schema import make_batch
from portradar.store import Store

DAY_US = 86_400_000_000


def simulated_store(path: Path, *, days: int = 4, sensors: int = 2) -> None:
    """A small simulator run stored at ``path`` (the same code as ``portradar simulate``)."""
    from portradar.ingest.pipeline import store_batches
    from portradar.sim import scenario as sc
    from portradar.sim.events import event_batches

    chosen = sc.demo(days=days, sensors=sensors, seed=3, scale=0.01, campaigns=("445@2",))
    sim = sc.simulate(chosen, keep_sightings=True)
    assert sim.sightings is not None
    start_us = int(chosen.start_time.timestamp() * 1_000_000)
    batches = event_batches(sim.sightings, sensors=chosen.sensor_names, start_us=start_us,
                            seed=chosen.seed)
    with Store.open(path) as store:
        store_batches(store, batches, name="sim", identity=b"test-archive-sim", fmt="simulated")


@pytest.fixture(scope="module")
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "source.duckdb"
    simulated_store(path)
    return path


@pytest.fixture(scope="module")
def archive(source_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive") / "arch"
    with Store.open(source_db, read_only=True) as store:
        result = pa_arch.export_store(store, root)
    assert result.events > 1000
    return root


def _count(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_layout_is_day_and_sensor_directories_without_the_partition_columns_inside(
        archive: Path) -> None:
    files = pa_arch.data_files(archive)
    assert files
    for f in files:
        day, sensor = f.relative_to(archive).parts[:2]
        assert day.startswith("day=") and sensor.startswith("sensor=")
        schema = pq.read_schema(f)
        assert "day" not in schema.names and "sensor" not in schema.names
        assert schema.field("src_hi").type == pa_arch.FILE_SCHEMA.field("src_hi").type
        assert schema.metadata[b"portradar.archive_version"] == str(
            pa_arch.ARCHIVE_VERSION).encode()
    manifest = json.loads((archive / pa_arch.MANIFEST).read_text())
    assert manifest["archive_version"] == pa_arch.ARCHIVE_VERSION
    assert manifest["columns"]["src_hi"] == "uint64"


def test_import_round_trip_is_exact_and_exactly_once(source_db: Path, archive: Path,
                                                      tmp_path: Path) -> None:
    target = tmp_path / "target.duckdb"
    with Store.open(target) as store:
        first = pa_arch.import_archive(store, archive)
        again = pa_arch.import_archive(store, archive)
    assert first.events > 0 and first.imported > 0
    assert (again.imported, again.events, again.unchanged) == (0, 0, first.imported)
    con = duckdb.connect(str(target))
    con.execute(f"ATTACH '{source_db}' AS src (READ_ONLY)")
    for table in ("events", "port_activity_hourly", "port_activity_daily"):
        drop = " EXCLUDE (input_id)" if table == "events" else ""
        for a, b in ((table, f"src.{table}"), (f"src.{table}", table)):
            diff = con.execute(f"SELECT count(*) FROM (SELECT *{drop} FROM {a} EXCEPT ALL "
                               f"SELECT *{drop} FROM {b})").fetchall()[0][0]
            assert diff == 0, (table, a)
    # the source format survives the trip (it lives in the ledger, not in event_rows)
    assert con.execute("SELECT DISTINCT format FROM events").fetchall() == [("simulated",)]
    con.close()


def test_duckdb_and_polars_read_the_archive(source_db: Path, archive: Path) -> None:
    polars = pytest.importorskip("polars")
    expected = sorted(_count(source_db, "SELECT sensor, count(*), sum(src_lo) FROM events "
                                        "GROUP BY sensor"))
    con = duckdb.connect()
    got = con.execute(f"SELECT sensor, count(*), sum(src_lo) FROM "
                      f"{pa_arch.duckdb_source(archive)} GROUP BY sensor").fetchall()
    assert sorted(got) == expected
    frame = (polars.scan_parquet(str(archive / "**" / "*.parquet"), hive_partitioning=True)
             .group_by("sensor").agg(polars.len(), polars.col("src_lo").sum()).collect())
    rows = sorted((r[0], r[1], int(r[2])) for r in frame.iter_rows())
    assert rows == [(s, n, int(t)) for s, n, t in expected]
    assert frame.schema["sensor"] == polars.String


def test_export_filters_and_replaces(source_db: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    root = tmp_path / "part"
    since = datetime(2025, 1, 7, tzinfo=UTC)
    until = datetime(2025, 1, 8, tzinfo=UTC)
    with Store.open(source_db, read_only=True) as store:
        one = pa_arch.export_store(store, root, since=since, until=until, sensor="sensor-01")
        two = pa_arch.export_store(store, root, since=since, until=until, sensor="sensor-01")
    assert one.events == two.events > 0
    assert one.days == {"2025-01-07"}
    got = duckdb.connect().execute(
        f"SELECT count(*), min(day), max(day), min(sensor), max(sensor) FROM "
        f"{pa_arch.duckdb_source(root)}").fetchall()[0]
    assert got[0] == one.events  # the second export replaced the first's files
    assert str(got[1]) == str(got[2]) == "2025-01-07"
    assert got[3] == got[4] == "sensor-01"


def test_write_events_appends_with_tags_and_keeps_numeric_sensor_names_text(
        tmp_path: Path) -> None:
    batch = make_batch({"ts": [0, DAY_US], "src_lo": [1, 2], "dst_lo": [3, 3],
                        "proto": [6, 6], "dport": [445, 22], "sensor": "123"})
    pa_arch.write_events([batch], tmp_path, tag="a")
    pa_arch.write_events([batch], tmp_path, tag="b")
    table = pa_arch.read_table(tmp_path)
    assert table.num_rows == 4
    assert set(table.column("sensor").to_pylist()) == {"123"}
    got = duckdb.connect().execute(
        f"SELECT typeof(sensor), count(*) FROM {pa_arch.duckdb_source(tmp_path)} "
        "GROUP BY ALL").fetchall()
    assert got == [("VARCHAR", 4)]


def test_a_newer_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / pa_arch.MANIFEST).write_text(json.dumps({"archive_version": 99,
                                                         "event_schema_version": 1}))
    with Store.open(":memory:") as store, pytest.raises(InputError, match="newer"):
        pa_arch.import_archive(store, tmp_path)


def test_cli_export_and_import(source_db: Path, tmp_path: Path) -> None:
    from portradar.cli.app import cli

    root = tmp_path / "cli-arch"
    target = tmp_path / "cli.duckdb"
    runner = CliRunner()
    done = runner.invoke(cli, ["--db", str(source_db), "export", "--to", str(root), "--json"])
    assert done.exit_code == 0, done.output
    exported = json.loads(done.output)[0]["events"]
    done = runner.invoke(cli, ["--db", str(target), "import", str(root), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)[0]["events"] == exported
    done = runner.invoke(cli, ["--db", str(target), "import", str(root), "--json"])
    assert json.loads(done.output)[0]["events"] == 0
    done = runner.invoke(cli, ["--db", str(target), "import", str(tmp_path / "nope")])
    assert done.exit_code != 0


def test_collector_writes_each_stored_batch_to_the_archive_once(tmp_path: Path) -> None:
    import time

    from portradar.collect import signing
    from portradar.collect.batch_codec import BatchHeader, encode, encode_body
    from portradar.collect.collector import Collector

    batch = make_batch({"ts": [1_780_000_000_000_000 + i for i in range(5)],
                        "src_lo": [0xFFFF_C633_6400 + i for i in range(5)],
                        "dst_lo": [0xFFFF_C000_0201] * 5, "proto": [6] * 5,
                        "dport": [445] * 5, "sensor": "fw1"})
    root = tmp_path / "collected"
    with Store.open(":memory:") as store:
        collector = Collector(store, archive=str(root))
        key = collector.add_sensor("fw1")
        for batch_id in ("ab" * 16, "ab" * 16, "cd" * 16):  # the second is a resend
            header = BatchHeader(batch_id=batch_id, sensor="fw1", ts=time.time(),
                                 nonce=signing.new_nonce(), events=5)
            msg = encode(header, encode_body(batch))
            collector.submit(msg, "fw1", signing.sign(key, msg))
    table = pa_arch.read_table(root)
    assert table.num_rows == 10
    assert set(table.column("sensor").to_pylist()) == {"fw1"}
    assert len(pa_arch.data_files(root)) == 2


def test_collect_serve_archive_option_writes_accepted_batches(tmp_path: Path) -> None:
    """`portradar collect serve --archive DIR` as a process: a signed batch lands in both."""
    import http.client
    import socket
    import subprocess
    import sys
    import time

    from portradar.collect import signing
    from portradar.collect.batch_codec import BatchHeader, encode, encode_body

    db, root = tmp_path / "c.duckdb", tmp_path / "archive"
    key = bytes.fromhex(subprocess.run(
        [sys.executable, "-m", "portradar", "--db", str(db), "collect", "add-sensor", "fw1"],
        check=True, capture_output=True, text=True).stdout.strip())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "portradar", "--db", str(db), "collect",
                             "serve", "--port", str(port), "--archive", str(root),
                             "--max-seconds", "60"], stderr=subprocess.PIPE)
    try:
        batch = make_batch({"ts": [1_780_000_000_000_000 + i for i in range(7)],
                            "src_lo": [0xFFFF_C633_6400 + i for i in range(7)],
                            "dst_lo": [0xFFFF_C000_0201] * 7, "proto": [6] * 7,
                            "dport": [445] * 7, "sensor": "fw1"})
        header = BatchHeader(batch_id="ef" * 16, sensor="fw1", ts=time.time(),
                             nonce=signing.new_nonce(), events=7)
        msg = encode(header, encode_body(batch))
        status = None
        for _ in range(100):  # until the server listens (bounded: 20 s)
            try:
                con = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                con.request("POST", "/api/v1/batches", body=msg, headers={
                    "X-Portradar-Sensor": "fw1",
                    "X-Portradar-Signature": signing.sign(key, msg)})
                status = con.getresponse().status
                con.close()
                break
            except OSError:
                time.sleep(0.2)
        assert status is not None and 200 <= status < 300, status
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert pa_arch.read_table(root).num_rows == 7
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM event_rows").fetchall() == [(7,)]
