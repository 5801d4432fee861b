"""``portradar watch`` (the live service) and ``portradar alerts`` (the stored alerts)."""

from __future__ import annotations

import signal
from typing import Any

import click

from portradar.cli.options import err, friendly, open_store, output_format, output_options


@click.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The TOML configuration (inputs, sinks, metrics).")
@click.option("--max-seconds", type=float, default=None, hidden=True,
              help="Stop after this many seconds (tests, benchmarks).")
@click.pass_context
@friendly
def watch(ctx: click.Context, config_path: str, max_seconds: float | None) -> None:
    """Run continuously: follow files, listen for syslog and NetFlow, store, detect, alert.

    Stops cleanly on SIGTERM or Ctrl-C (what was received is stored, pending alerts
    delivered); after a crash it resumes from the positions stored with the events.
    """
    from portradar.watch.config import WatchConfig
    from portradar.watch.service import WatchService

    config = WatchConfig.load(config_path)
    with open_store(ctx) as store:
        service = WatchService(store, config)

        def stop(*_: Any) -> None:
            service.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        err.print(f"portradar watch: {len(config.inputs)} inputs, "
                  f"{len(service.workers)} sinks, store {store.path}"
                  + (f", dashboard {service.dashboard.url}" if service.dashboard else ""))
        service.run(max_seconds=max_seconds)


@click.command()
@click.option("--status", type=click.Choice(["open", "resolved"]), help="Only these.")
@output_options
@click.pass_context
@friendly
def alerts(ctx: click.Context, status: str | None, as_json: bool, as_csv: bool) -> None:
    """Alerts the watch service opened, escalated and resolved (event times)."""
    from portradar.alerts.lifecycle import AlertBook
    from portradar.cli.render import render

    fmt = output_format(as_json, as_csv)
    with open_store(ctx) as store:
        rows = [a.as_dict() for a in AlertBook(store).alerts(status)]
    columns = ["alert_id", "kind", "proto", "port", "status", "severity", "onset",
               "opened_at", "updated_at", "resolved_at", "peak_sources", "level"]
    if fmt != "table":
        columns += ["baseline_sources", "score", "spike_kind", "updates", "reasons", "actions"]
    render(rows, columns, fmt, title="alerts")


commands = [watch, alerts]
