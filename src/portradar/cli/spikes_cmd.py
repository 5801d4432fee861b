"""``portradar spikes``, ``portradar simulate`` and ``portradar evaluate spikes``."""

from __future__ import annotations

import gzip
import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import click

# the per-bucket state these commands read (new sources, source sketches) is kept up to
# date by refreshers that register themselves on import, for every command's ingests
from portradar.activity import new_sources as _new_sources  # noqa: F401
from portradar.activity import sketch as _sketch  # noqa: F401
from portradar.cli.options import err, friendly, open_store, output_format, output_options


def _store_for_reading(ctx: click.Context) -> Any:
    """The store, writable when it exists (views refresh activity first)."""
    db = ctx.obj["db"]
    exists = db == ":memory:" or Path(db).exists()
    return open_store(ctx, read_only=not exists)


@click.command()
@click.option("--period", type=click.Choice(["day", "hour"]), default="day", show_default=True,
              help="Bucket size the detector works on.")
@click.option("--proto", help="Only this protocol (tcp, udp, ...).")
@click.option("--port", "port_", type=click.IntRange(-1, 65535), help="Only this port.")
@click.option("--current", is_flag=True, help="Only spikes still open at the last bucket.")
@click.option("--sensor", help="Only this sensor's own activity, against its own baseline "
                               "(default: all sensors together).")
@click.option("--no-sensors", is_flag=True,
              help="Skip the per-sensor baselines (no sensor share, no single-sensor rises).")
@click.option("--limit", "-n", default=50, show_default=True)
@output_options
@click.pass_context
@friendly
def spikes(ctx: click.Context, period: str, proto: str | None, port_: int | None,
           current: bool, sensor: str | None, no_sensors: bool, limit: int, as_json: bool,
           as_csv: bool) -> None:
    """Current and past port spikes: rises above each port's own baseline.

    Computed from the store's per-port activity in event time (never the wall
    clock): onset, end (back to normal), kind (new-sources, one-source, growth with
    its doubling time, rise) and the sensors whose own baseline shows it.  With
    ``--sensor`` the detector runs on that one sensor's activity alone: what a
    single firewall saw, against that firewall's own history.
    """
    from portradar.activity.periods import proto_number
    from portradar.cli.render import render
    from portradar.spikes.activity_matrix import from_store
    from portradar.spikes.spike_detector import SpikeDetector

    fmt = output_format(as_json, as_csv)
    proto_n = proto_number(proto) if proto else None
    with _store_for_reading(ctx) as store:
        if sensor is not None and sensor != "*":
            known = store.sensor_names()
            if sensor not in known:
                raise click.UsageError(
                    f"no sensor named {sensor!r} in the store"
                    + (f" (sensors: {', '.join(known[:20])}"
                       f"{', ...' if len(known) > 20 else ''})" if known else ""))
            total = from_store(store, period=period, scope=sensor, proto=proto_n, port=port_)
            by_sensor = None
        else:
            sensor = None
            total = from_store(store, period=period, scope="all", proto=proto_n, port=port_)
            by_sensor = None if no_sensors else from_store(
                store, period=period, scope="sensors", proto=proto_n, port=port_)
    found = SpikeDetector.for_period(period).detect(total, by_sensor)
    if current:
        found = [s for s in found if s.end is None]
    found.sort(key=lambda s: (s.alarm, s.score), reverse=True)
    rows = [s.as_row(total) for s in found[:limit]]
    columns = ["proto", "port", "score", "kind", "onset", "end", "sensors", "doubling_hours",
               "peak_sources", "baseline_sources", "new_share"]
    if fmt != "table":
        columns += ["alarm", "status", "ending", "sensor_share", "sensor_names", "scope",
                    "excess_sources"]
        render(rows, columns, fmt)
        return
    last = total.bucket_label(total.n_buckets - 1) if total.n_buckets else "(no data)"
    where = f" on sensor {sensor}" if sensor else ""
    render(rows, columns, fmt, title=f"port spikes by {period}{where} (data up to {last})",
           headers={"doubling_hours": "doubling (h)", "peak_sources": "peak",
                    "baseline_sources": "baseline", "new_share": "new"})
    if not rows:
        err.print("no spikes: every port stayed within its baseline")


@click.command()
@click.option("--scenario", type=click.Choice(["demo", "benchmark", "ms05"]), default="demo",
              show_default=True, help="demo: the options below; benchmark: the documented "
              "evaluation (20 sensors, 90 days, 50 campaigns); ms05: 445 in summer 2005.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 1024))
@click.option("--sensors", default=5, show_default=True, type=click.IntRange(1, 64))
@click.option("--seed", default=1, show_default=True)
@click.option("--campaign", "campaigns", multiple=True, metavar="[KIND:][PROTO/]PORT[@DAY]",
              help="Inject a campaign (kinds: worm (default), sweep, rise, loud, local); "
                   "repeatable.  Default: one worm on 445.")
@click.option("--scale", default=0.25, show_default=True, type=click.FloatRange(0.001, 100),
              help="Background intensity (1.0: the benchmark's).")
@click.option("--start", "start_", help="First day (ISO date; default 2025-01-06).")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write iptables LOG lines here ('.gz' compressed) instead of the store.")
@click.option("--truth", type=click.Path(dir_okay=False), help="Write the truth (JSON) here.")
@output_options
@click.pass_context
@friendly
def simulate(ctx: click.Context, scenario: str, days: int, sensors: int, seed: int,
             campaigns: tuple[str, ...], scale: float, start_: str | None, out: str | None,
             truth: str | None, as_json: bool, as_csv: bool) -> None:
    """Simulate background radiation with injected campaigns, into the store or a log.

    Same options, same events (by seed); storing the same simulation twice stores it
    once.  Prints the injected campaigns (the truth).
    """
    from portradar.cli.render import render
    from portradar.ingest.pipeline import store_batches
    from portradar.sim import scenario as sc
    from portradar.sim.events import event_batches, iptables_bytes

    fmt = output_format(as_json, as_csv)
    started = time.perf_counter()
    if scenario == "benchmark":
        chosen = sc.benchmark(seed=seed, sensors=sensors if sensors != 5 else 20,
                              days=days if days != 30 else 90)
    elif scenario == "ms05":
        chosen = sc.ms05(seed=seed, sensors=sensors)
    else:
        start = date.fromisoformat(start_) if start_ else sc.DEFAULT_START
        chosen = sc.demo(days=days, sensors=sensors, seed=seed, scale=scale, start=start,
                         campaigns=campaigns or ("445",))
    sim = sc.simulate(chosen, keep_sightings=True)
    assert sim.sightings is not None
    start_us = int(chosen.start_time.timestamp() * 1_000_000)
    batches = event_batches(sim.sightings, sensors=chosen.sensor_names, start_us=start_us,
                            seed=chosen.seed)
    if out:
        opener: Any = gzip.open if out.endswith(".gz") else open
        n = 0
        with opener(out, "wb") as fh:
            for batch in batches:
                fh.write(iptables_bytes(batch))
                n += batch.num_rows
        where = f"{out} ({n:,} iptables LOG lines)"
    else:
        identity = json.dumps({"simulate": 1, "scenario": repr(chosen)}).encode()
        with open_store(ctx) as store:
            result = store_batches(store, batches, name=f"simulate:{chosen.name}:{seed}",
                                   identity=identity, fmt="simulated")
        if result.status == "unchanged":
            where = f"{ctx.obj['db']} (already there: this simulation was stored before)"
        else:
            where = f"{ctx.obj['db']} ({result.events:,} events)"
    if truth:
        Path(truth).write_text(json.dumps(sim.truth, indent=2) + "\n")
    rows = sim.truth
    columns = ["id", "kind", "proto", "port", "start", "end", "sensors", "size",
               "baseline_sources", "peak_sources", "doubling_days", "label"]
    if fmt == "table":
        err.print(f"simulated {chosen.sensors} sensors × {chosen.days} days from "
                  f"{chosen.start} (seed {chosen.seed}) into {where} "
                  f"in {time.perf_counter() - started:.1f} s")
    render(rows, columns, fmt, title="injected campaigns (truth)")


@click.command("spikes")
@click.option("--scenario", type=click.Choice(["benchmark", "ms05", "demo"]),
              default="benchmark", show_default=True)
@click.option("--seed", default=2024, show_default=True,
              help="Simulator seed (2024 is the documented run; the defaults were set on 7 "
                   "and 11).")
@click.option("--sensors", default=20, show_default=True, type=click.IntRange(1, 64))
@click.option("--days", default=90, show_default=True, type=click.IntRange(30, 1024))
@click.option("--campaigns", default=50, show_default=True, type=click.IntRange(0, 1000))
@click.option("--no-matched", is_flag=True,
              help="Skip the baselines at thresholds matched to the new detector.")
@click.option("--truth", type=click.Path(dir_okay=False), help="Write the truth (JSON) here.")
@output_options
@friendly
def evaluate_spikes(scenario: str, seed: int, sensors: int, days: int, campaigns: int,
                    no_matched: bool, truth: str | None, as_json: bool, as_csv: bool) -> None:
    """Score every spike detector on a simulated scenario with known campaigns.

    Per detector: detection rate of the campaigns that double their port's daily
    sources, median delay in buckets, false alarms per port-year on the 100 busiest
    ports without campaigns and per 100 port-years over all ports.
    """
    from portradar.cli.render import render
    from portradar.sim import scenario as sc
    from portradar.spikes.evaluation import evaluate

    fmt = output_format(as_json, as_csv)
    started = time.perf_counter()
    if scenario == "benchmark":
        chosen = sc.benchmark(seed=seed, sensors=sensors, days=days, campaigns=campaigns)
    elif scenario == "ms05":
        chosen = sc.ms05(seed=seed, sensors=sensors, focus=False)
    else:
        chosen = sc.demo(days=days, sensors=sensors, seed=seed)
    sim = sc.simulate(chosen)
    simulated = time.perf_counter() - started
    scores = evaluate(sim.total, sim.by_sensor, sim.truth, matched=not no_matched)
    if truth:
        Path(truth).write_text(json.dumps(sim.truth, indent=2) + "\n")
    rows = [s.as_row() for s in scores]
    columns = ["detector", "detection_rate", "detected", "median_delay",
               "fa_per_port_year_busiest", "fa_per_100_port_years", "false_alarms",
               "detected_all", "kind_accuracy"]
    if fmt != "table":
        render(rows, [*columns, "per_kind", "note"], fmt)
        return
    err.print(f"{chosen.name}: {chosen.sensors} sensors × {chosen.days} days, "
              f"{len(sim.truth)} campaigns ({sum(t['doubles'] for t in sim.truth)} double "
              f"their port), seed {chosen.seed}; simulated in {simulated:.1f} s, scored in "
              f"{time.perf_counter() - started - simulated:.1f} s")
    render(rows, columns, fmt, title="spike detectors",
           headers={"detection_rate": "detection", "median_delay": "delay (buckets)",
                    "fa_per_port_year_busiest": "FA/port-yr busiest 100",
                    "fa_per_100_port_years": "FA/100 port-yr all",
                    "false_alarms": "FA", "detected_all": "all campaigns",
                    "kind_accuracy": "kind ok"})


commands = [spikes, simulate]
evaluate_commands = [evaluate_spikes]
