"""The simulator: seeded, over-dispersed, weekly, with campaigns and exact truth."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

from portradar.ingest.iptables import IptablesReader
from portradar.sim.campaigns import Campaign, parse_campaign
from portradar.sim.events import event_batches, iptables_bytes
from portradar.sim.scenario import Scenario, demo, simulate
from portradar.sim.sightings import row_of


@pytest.fixture(scope="module")
def month() -> object:
    return simulate(demo(days=42, sensors=4, seed=3, campaigns=("sweep:445@35",)),
                    keep_sightings=True)


def test_same_seed_same_simulation() -> None:
    sc = demo(days=21, sensors=3, seed=9, focus=True)
    a, b = simulate(sc), simulate(sc)
    assert np.array_equal(a.total.sources, b.total.sources)
    assert np.array_equal(a.by_sensor.records, b.by_sensor.records)
    assert a.truth == b.truth
    c = simulate(demo(days=21, sensors=3, seed=10, focus=True))
    assert not np.array_equal(a.total.sources, c.total.sources)


def test_background_is_over_dispersed_weekly_and_long_tailed(month: object) -> None:
    total = month.total  # type: ignore[attr-defined]
    mean = total.sources.mean(axis=1)
    # chronically noisy ports lead; most ports are nearly silent
    top = [int(total.port[i]) for i in np.argsort(-mean)[:6]]
    assert {445, 23}.issubset(top)
    assert (mean < 1).mean() > 0.9
    # busy ports vary more than Poisson, the busiest far more
    busy = np.argsort(-mean)[:20]
    x = total.sources[busy, :34].astype(float)
    assert (x.var(axis=1) > x.mean(axis=1)).mean() > 0.8
    assert (x[:3].var(axis=1) > 3 * x[:3].mean(axis=1)).all()


def test_all_sensor_counts_are_unions(month: object) -> None:
    total, by_sensor = month.total, month.by_sensor  # type: ignore[attr-defined]
    r = row_of(6, 445)
    per = by_sensor.sources[(by_sensor.port == 445) & (by_sensor.proto == 6)].sum(axis=0)
    assert (total.sources[r] <= per).all() and (total.sources[r] >= per / 4).all()
    assert (total.new_sources[r] <= total.sources[r]).all()


def test_campaign_truth_and_visibility(month: object) -> None:
    (t,) = month.truth  # type: ignore[attr-defined]
    assert (t["kind"], t["port"], t["start_day"]) == ("sweep", 445, 35)
    r = row_of(6, 445)
    series = month.total.sources[r]  # type: ignore[attr-defined]
    assert series[35] > 1.8 * np.median(series[:35])
    assert t["doubles"] and t["peak_sources"] > 0


def test_worm_sources_grow_exponentially() -> None:
    sc = Scenario(days=40, sensors=5, seed=4, focus=((6, 8443),),
                  campaigns=(Campaign("worm", 6, 8443, 20, 12, 2000, doubling_days=1.0),))
    sim = simulate(sc)
    x = sim.total.sources[row_of(6, 8443), 20:28].astype(float)
    growth = np.diff(np.log(x[1:6]))
    assert np.all(growth > 0.3) and abs(np.mean(growth) - np.log(2)) < 0.25


def test_events_round_trip_through_iptables_lines(month: object) -> None:
    sim = month  # type: ignore[assignment]
    start_us = int(sim.scenario.start_time.timestamp() * 1e6)
    batch = next(event_batches(sim.sightings, sensors=sim.scenario.sensor_names,
                               start_us=start_us, seed=3))
    data = iptables_bytes(batch)
    assert data.count(b"\n") == batch.num_rows
    parsed = IptablesReader().parse_bytes(data)
    assert parsed.num_rows == batch.num_rows
    for col in ("ts", "sensor", "src_lo", "dst_lo", "proto", "dport", "ttl", "ip_id",
                "outcome"):
        assert parsed.column(col).to_pylist() == batch.column(col).to_pylist(), col


def test_millions_of_events_in_seconds() -> None:
    started = time.perf_counter()
    sim = simulate(demo(days=30, sensors=5, seed=1), keep_sightings=True)
    n = sum(b.num_rows for b in event_batches(sim.sightings, sensors=sim.scenario.sensor_names,
                                                start_us=0, seed=1))
    seconds = time.perf_counter() - started
    assert n > 1_000_000
    assert seconds < 30, f"{n:,} events took {seconds:.1f} s"


def test_simulate_into_the_store_once(tmp_path: object) -> None:
    from click.testing import CliRunner

    from portradar.cli.app import cli

    db = str(tmp_path / "sim.duckdb")  # type: ignore[operator]
    args = ["--db", db, "simulate", "--days", "21", "--sensors", "2", "--seed", "2",
            "--campaign", "sweep:445@16", "--scale", "0.05", "--json"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0
    from portradar.store import Store

    with Store.open(db, read_only=True) as store:
        (runs,) = store.con.execute("SELECT count(*) FROM inputs").fetchall()[0]
        assert runs == 1


def test_simulate_writes_iptables_log(tmp_path: object) -> None:
    from click.testing import CliRunner

    from portradar.cli.app import cli

    out = tmp_path / "fw.log.gz"  # type: ignore[operator]
    res = CliRunner().invoke(cli, ["simulate", "--days", "3", "--sensors", "2", "--scale",
                                   "0.02", "--campaign", "sweep:udp/53@1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with gzip.open(out) as fh:
        first = fh.readline()
    assert b" kernel: [UFW BLOCK] IN=eth0 OUT= SRC=" in first


@pytest.mark.parametrize("text,expected", [
    ("445", ("worm", 6, 445, None)), ("sweep:udp/53@12", ("sweep", 17, 53, 12)),
    ("loud:tcp/22", ("loud", 6, 22, None)),
])
def test_campaign_specs(text: str, expected: tuple[object, ...]) -> None:
    assert tuple(parse_campaign(text)) == expected


@pytest.mark.parametrize("bad", ["worm:", "bogus:445", "445@x", "sctp/1", "70000"])
def test_bad_campaign_specs_say_what_is_wrong(bad: str) -> None:
    from portradar.errors import PortradarError

    with pytest.raises(PortradarError):
        parse_campaign(bad)
