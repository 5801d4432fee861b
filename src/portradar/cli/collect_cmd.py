"""``portradar agent`` (on a sensor) and ``portradar collect`` (serve, add-sensor, sensors)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import click

from portradar.cli.options import err, friendly, open_store, output_format, output_options


def _key(key_hex: str | None, key_file: str | None) -> bytes:
    text = key_hex
    if key_file:
        with open(key_file) as fh:
            text = fh.read().strip()
    if not text:
        raise click.UsageError("give the sensor's key with --key-file or PORTRADAR_AGENT_KEY "
                               "(printed by 'portradar collect add-sensor NAME')")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise click.BadParameter("the key is hex digits", param_hint="--key-file") from exc


@click.command()
@click.option("--collector", "url", required=True, help="Collector URL, e.g. http://host:8471")
@click.option("--sensor", required=True, help="This sensor's registered name.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="File with the key (hex).")
@click.option("--key", "key_hex", envvar="PORTRADAR_AGENT_KEY", hidden=True)
@click.option("--input", "inputs", multiple=True, metavar="PATH[:FORMAT]",
              help="A log file to follow (format default iptables); repeatable.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="A TOML file of [[input]] tables (file, syslog, netflow), as for watch.")
@click.option("--spool", "spool_dir", default="portradar-spool", show_default=True,
              help="Directory of unsent batches and file positions.")
@click.option("--spool-mb", type=int, default=256, show_default=True,
              help="Most megabytes spooled while the collector is unreachable.")
@click.option("--anonymise", type=click.Choice(["none", "mask", "hash"]), default="none",
              show_default=True, help="Hide target addresses: mask to a prefix, or keyed hash.")
@click.option("--v4-prefix", type=int, default=24, show_default=True)
@click.option("--v6-prefix", type=int, default=48, show_default=True)
@click.option("--batch-seconds", type=float, default=1.0, show_default=True)
@click.option("--max-backoff", type=float, default=60.0, show_default=True,
              help="Longest wait (seconds) between resends to an unreachable collector.")
@click.option("--max-seconds", type=float, default=None, hidden=True)
@friendly
def agent(url: str, sensor: str, key_file: str | None, key_hex: str | None,
          inputs: tuple[str, ...], config_path: str | None, spool_dir: str, spool_mb: int,
          anonymise: str, v4_prefix: int, v6_prefix: int, batch_seconds: float,
          max_backoff: float, max_seconds: float | None) -> None:
    """Read local inputs and send their events, signed, to a collector.

    Inputs are files to follow (--input) and/or the [[input]] tables of a watch-style
    TOML config (--config: file, syslog, netflow; its [watch] tz and year apply).
    Batches are spooled on disk while the collector is unreachable and resent with
    backoff; a resend is never stored twice.
    """
    from portradar.collect.agent import Agent, InputSpec
    from portradar.collect.anonymise import hash_targets, mask_targets
    from portradar.collect.spool import BASE_BACKOFF
    from portradar.ingest.reader import ReadOptions
    from portradar.watch.config import WatchConfig

    logging.basicConfig(level=logging.WARNING, format="portradar agent: %(message)s")
    key = _key(key_hex, key_file)
    anonymiser: Any = None
    if anonymise == "mask":
        def anonymiser(b: Any) -> Any:
            return mask_targets(b, v4_prefix=v4_prefix, v6_prefix=v6_prefix)
    elif anonymise == "hash":
        def anonymiser(b: Any) -> Any:
            return hash_targets(b, key=key)
    if not inputs and not config_path:
        raise click.UsageError("give at least one --input PATH[:FORMAT] or a --config")
    specs: list[InputSpec] = []
    options = ReadOptions()
    if config_path:
        config = WatchConfig.load(config_path)
        specs.extend(config.inputs)
        options = ReadOptions(tz=config.tz, year=config.year)
    for item in inputs:
        path, sep, fmt = item.rpartition(":")
        specs.append((path, fmt) if sep and fmt and not os.path.exists(item)
                     else (item, "iptables"))
    runner = Agent(url, sensor, key, specs, spool_dir, anonymiser=anonymiser,
                   spool_bytes=spool_mb << 20, options=options,
                   base_backoff=min(BASE_BACKOFF, max_backoff), max_backoff=max_backoff)

    def stop(*_: Any) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stats = runner.run(batch_seconds=batch_seconds, max_seconds=max_seconds)
    err.print(f"portradar agent: {stats.events} events read, {stats.batches_sent} batches "
              f"sent, {runner.spool.count()} spooled, {stats.rejected} rejected"
              + (f", {stats.dropped} flow events dropped (spool full)" if stats.dropped else ""))


@click.group()
def collect() -> None:
    """The collector: receive batches from many sensors into this store."""


@collect.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8471, show_default=True)
@click.option("--rate", type=float, default=20.0, show_default=True,
              help="Batches per second per sensor (token bucket).")
@click.option("--max-mb", type=int, default=16, show_default=True, help="Largest message.")
@click.option("--archive", type=click.Path(file_okay=False), default=None,
              help="Also write every stored batch to this Parquet archive (docs/scale.md).")
@click.option("--dashboard", "dashboard_at", metavar="[HOST:]PORT", default=None,
              help="Also serve the dashboard and JSON API of 'portradar serve' here "
                   "(this process holds the store, so 'portradar serve' cannot open it); "
                   "beyond loopback a login is required.")
@click.option("--dashboard-every", type=click.FloatRange(1.0), default=30.0,
              show_default=True,
              help="Seconds between updates of the dashboard's scan verdicts and new-source "
                   "counts.")
@click.option("--max-seconds", type=float, default=None, hidden=True)
@click.pass_context
@friendly
def serve(ctx: click.Context, host: str, port: int, rate: float, max_mb: int,
          archive: str | None, dashboard_at: str | None, dashboard_every: float,
          max_seconds: float | None) -> None:
    """Serve POST /api/v1/batches until SIGTERM or Ctrl-C."""
    from portradar.collect.collector import Collector, CollectorServer

    dash_host, dash_port = _host_port(dashboard_at) if dashboard_at else ("", 0)
    with open_store(ctx) as store:
        collector = Collector(store, rate=rate, burst=max(1.0, 5 * rate), max_body=max_mb << 20,
                              archive=archive)
        server = CollectorServer(collector, host, port)
        dashboard = None
        if dashboard_at:
            from portradar.web.embedded_server import DashboardServer

            try:
                dashboard = DashboardServer(store, host=dash_host, port=dash_port,
                                            keep_current=dashboard_every).start()
            except BaseException:
                server.server_close()
                raise
        done = threading.Event()

        def stop(*_: Any) -> None:
            done.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        err.print(f"portradar collect: listening on {server.url}, store {store.path}"
                  + (f", dashboard {dashboard.url}" if dashboard else ""))
        done.wait(max_seconds)
        server.shutdown()
        server.server_close()
        if dashboard is not None:
            dashboard.stop()
        collector.close()


def _host_port(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (an IPv6 host in brackets); the host defaults to loopback.

    >>> _host_port("8080"), _host_port("0.0.0.0:8080"), _host_port("[::1]:8080")
    (('127.0.0.1', 8080), ('0.0.0.0', 8080), ('::1', 8080))
    """
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise click.BadParameter(f"{text!r}: expected [HOST:]PORT", param_hint="--dashboard")
    return (host.strip("[]") or "127.0.0.1"), number


@collect.command("add-sensor")
@click.argument("name")
@click.pass_context
@friendly
def add_sensor(ctx: click.Context, name: str) -> None:
    """Register sensor NAME (or replace its key); prints the new key (hex)."""
    from portradar.collect.collector import Collector

    with open_store(ctx) as store:
        click.echo(Collector(store).add_sensor(name).hex())


@collect.command()
@output_options
@click.pass_context
@friendly
def sensors(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """Per-sensor health: last seen, batches, events, events/s, clock skew, rejected."""
    from portradar.cli.render import render
    from portradar.collect.collector import Collector

    with open_store(ctx) as store:
        rows = Collector(store).sensors()
    render(rows, ["sensor", "last_seen", "batches", "events", "events_per_s", "skew_s",
                  "rejected"], output_format(as_json, as_csv), title="sensors")


commands = [agent, collect]
