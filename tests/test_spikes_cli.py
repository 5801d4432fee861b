"""``portradar simulate`` → ``spikes`` / ``port`` on the store; ``evaluate spikes``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from portradar.cli.app import cli


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("spikes") / "demo.duckdb")
    # the README's example
    res = CliRunner().invoke(cli, ["--db", db, "simulate", "--days", "30", "--sensors", "5",
                                   "--seed", "1", "--campaign", "445",
                                   "--truth", str(Path(db).with_suffix(".json"))])
    assert res.exit_code == 0, res.output
    return db


def test_spikes_lists_the_campaign(demo_db: str) -> None:
    res = CliRunner().invoke(cli, ["--db", demo_db, "spikes", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    worm = [r for r in rows if r["port"] == 445]
    assert len(worm) == 1
    (spike,) = worm
    truth = json.loads(Path(demo_db).with_suffix(".json").read_text())[0]
    assert spike["kind"] == "growth" and spike["doubling_hours"] is not None
    assert truth["start"] <= spike["onset"] <= truth["end"]
    assert spike["sensors"] == "5/5"
    # every other listed spike is noise on a quiet deployment: there are few
    assert len(rows) <= 3


def test_spikes_csv_and_filters(demo_db: str) -> None:
    res = CliRunner().invoke(cli, ["--db", demo_db, "spikes", "--csv", "--port", "445"])
    assert res.exit_code == 0, res.output
    header, *lines = res.output.strip().splitlines()
    assert header.startswith("proto,port,score,kind,onset,end,sensors")
    assert len(lines) == 1 and ",445," in lines[0]
    hourly = CliRunner().invoke(cli, ["--db", demo_db, "spikes", "--period", "hour", "--json",
                                      "--port", "445"])
    assert hourly.exit_code == 0, hourly.output
    assert [r["kind"] for r in json.loads(hourly.output)] == ["growth"]


def test_port_shows_the_band_and_marks_the_spike(demo_db: str) -> None:
    res = CliRunner().invoke(cli, ["--db", demo_db, "port", "445", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {"baseline_low", "baseline_high", "spike"} <= set(rows[0])
    marked = [r for r in rows if r["spike"]]
    assert marked and all(r["spike"] == "growth" for r in marked)
    quiet = [r for r in rows if not r["spike"]][:5]
    assert all(r["baseline_low"] <= r["sources"] <= r["baseline_high"] * 1.5 for r in quiet)
    table = CliRunner().invoke(cli, ["--db", demo_db, "port", "445"])
    assert "▲ growth" in table.output


def test_spikes_on_a_missing_store_says_so(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.duckdb"), "spikes"])
    assert res.exit_code == 1 and "no store here yet" in res.output


def test_evaluate_spikes_prints_every_detector() -> None:
    res = CliRunner().invoke(cli, ["evaluate", "spikes", "--sensors", "4", "--days", "60",
                                   "--campaigns", "8", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    names = [r["detector"] for r in rows]
    assert names[:4] == ["spike_detector", "dshield_trend", "greynoise_rule", "ewma"]
    for r in rows:
        assert {"detection_rate", "median_delay", "fa_per_port_year_busiest",
                "fa_per_100_port_years"} <= set(r)


def test_the_store_path_runs_the_same_detector() -> None:
    """Matrices straight from the simulator and read back from the store agree."""
    import numpy as np

    from portradar.ingest.pipeline import store_batches
    from portradar.sim.events import event_batches
    from portradar.sim.scenario import demo, simulate
    from portradar.sim.sightings import row_of
    from portradar.spikes.activity_matrix import from_store
    from portradar.spikes.spike_detector import detect_spikes
    from portradar.store import Store

    sc = demo(days=35, sensors=3, seed=4, campaigns=("sweep:445@25", "worm:23@22"),
              focus=True)
    sim = simulate(sc, keep_sightings=True)
    with Store.open(":memory:") as store:
        store_batches(store, event_batches(sim.sightings, sensors=sc.sensor_names,
                                           start_us=int(sc.start_time.timestamp() * 1e6),
                                           seed=sc.seed),
                      name="t", identity=b"store-path-test")
        total = from_store(store, period="day", scope="all")
        by_sensor = from_store(store, period="day", scope="sensors")
    for port in (445, 23):
        stored = total.sources[total.rows_of(6, port)[0]]
        assert np.array_equal(stored, sim.total.sources[row_of(6, port)])
    got = {(s.port, s.kind, s.onset, s.alarm) for s in detect_spikes(total, by_sensor)
           if s.scope == "all"}
    want = {(s.port, s.kind, s.onset, s.alarm) for s in detect_spikes(sim.total,
                                                                        sim.by_sensor)
            if s.scope == "all"}
    assert {k[:2] for k in want} >= {(445, "new-sources"), (23, "growth")}
    assert {(p, o, a) for p, _, o, a in got} == {(p, o, a) for p, _, o, a in want}
