"""``portradar``: one command, with subcommands.

Every listing command prints a readable table by default and takes ``--json`` or
``--csv``.  Errors a user can cause print one line (``portradar: ...``) and exit
with status 1 (2 for bad usage), never a traceback.
"""

from __future__ import annotations

import sys
from datetime import date, datetime

import click
from rich.console import Console

from portradar import __version__
from portradar.cli.options import (
    err,
    friendly,
    open_store,
    output_format,
    output_options,
    parse_when,
)
from portradar.store.duckdb_store import DEFAULT_DB


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", default=DEFAULT_DB, show_default=True, envvar="PORTRADAR_DB",
              help="The store (a DuckDB file).")
@click.version_option(__version__, prog_name="portradar")
@click.pass_context
def cli(ctx: click.Context, db: str) -> None:
    """portradar: early warning of attacks from the port probing you already log."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


# --- ingest --------------------------------------------------------------------------


def _parse_actions(values: tuple[str, ...]) -> dict[str, str]:
    from portradar.events.schema import Outcome

    actions = {}
    for item in values:
        prefix, sep, outcome = item.rpartition("=")
        if not sep or outcome.strip().upper() not in Outcome.__members__:
            raise click.BadParameter(
                f"{item!r}: use PREFIX=OUTCOME, OUTCOME one of {', '.join(Outcome.labels())}",
                param_hint="--action",
            )
        actions[prefix.strip()] = outcome.strip().lower()
    return actions


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--format", "fmt", help="Skip sniffing: read every input as this format.")
@click.option("--sensor", help="Sensor name for every event (default: from the data).")
@click.option("--year", type=int, help="Year of the first line of year-less syslog times.")
@click.option("--tz", help="IANA zone of times without offset (default: this machine's).")
@click.option("--boot-time", help="Boot time (ISO) for raw dmesg uptime stamps.")
@click.option("--action", "actions", multiple=True, metavar="PREFIX=OUTCOME",
              help="Outcome of a log prefix, e.g. 'fw-in=blocked'; '*=blocked' for the rest.")
@click.option("--map", "mapping", metavar="FIELD=COLUMN,...",
              help="Generic CSV/JSON lines: which column is which event field "
                   "(e.g. ts=time,src=source,dst=dest,dport=port); implies --format generic.")
@click.option("--table-format", type=click.Choice(["auto", "csv", "jsonl"]), default="auto",
              show_default=True, help="Generic tables: CSV or JSON lines.")
@click.option("--ts-format", default="auto", show_default=True,
              help="Generic tables: auto, epoch, epoch_ms, epoch_us, iso or a strptime pattern.")
@click.option("--delimiter", help="Generic CSV: the field delimiter (default: sniffed).")
@click.option("--strict", is_flag=True, help="Stop at the first malformed record.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@output_options
@click.pass_context
@friendly
def ingest(ctx: click.Context, inputs: tuple[str, ...], fmt: str | None, sensor: str | None,
           year: int | None, tz: str | None, boot_time: str | None, actions: tuple[str, ...],
           mapping: str | None, table_format: str, ts_format: str, delimiter: str | None,
           strict: bool, quiet: bool, as_json: bool, as_csv: bool) -> None:
    """Read logs and captures (any format, compressed or not, '-' for stdin) into the store.

    Each input is recognised by its content; reading it again, or after it has grown
    or been rotated, stores every event exactly once.
    """
    from portradar.cli.startup_imports import INGEST_HIDDEN, modules_hidden

    with modules_hidden(*INGEST_HIDDEN):  # ~0.6 s of start-up: see startup_imports
        _ingest(ctx, inputs, fmt, sensor, year, tz, boot_time, actions, mapping,
                table_format, ts_format, delimiter, strict, quiet, as_json, as_csv)


def _ingest(ctx: click.Context, inputs: tuple[str, ...], fmt: str | None, sensor: str | None,
            year: int | None, tz: str | None, boot_time: str | None, actions: tuple[str, ...],
            mapping: str | None, table_format: str, ts_format: str, delimiter: str | None,
            strict: bool, quiet: bool, as_json: bool, as_csv: bool) -> None:
    from portradar.cli.progress import IngestProgress
    from portradar.cli.render import render
    from portradar.ingest.pipeline import ingest_inputs
    from portradar.ingest.reader import ReadOptions
    from portradar.ingest.registry import get_reader
    from portradar.ingest.syslog_time import zone

    out_fmt = output_format(as_json, as_csv)
    factory = None
    if mapping or fmt == "generic":
        import functools

        from portradar.ingest.generic_table import GenericTableReader, parse_mapping

        fmt = "generic"
        factory = functools.partial(
            GenericTableReader, mapping=parse_mapping(mapping or ""), fmt=table_format,
            ts_format=ts_format, delimiter=delimiter)
        factory()  # check the options before reading anything
    if fmt:
        get_reader(fmt)
    if tz:
        zone(tz)
    options = ReadOptions(sensor=sensor, strict=strict, year=year, tz=tz,
                          boot_time=parse_when(boot_time), actions=_parse_actions(actions))
    progress = IngestProgress(enabled=not quiet and out_fmt == "table")
    with open_store(ctx) as store:
        try:
            results = ingest_inputs(store, inputs, fmt=fmt, options=options, progress=progress,
                                    reader_factory=factory)
        finally:
            progress.close()
    rows = []
    for r in results:
        row = r.as_dict()
        row["rate"] = f"{r.records / r.seconds:,.0f} {r.unit}/s" if r.seconds > 0 else "-"
        rows.append(row)
    if out_fmt != "table":
        render(rows, list(rows[0].keys()) if rows else [], out_fmt)
    else:
        render(rows, ["input", "format", "status", "records", "events", "skipped",
                      "resumed_at", "seconds", "rate"], title="ingest",
               headers={"resumed_at": "already stored"})
        for r in results:
            for example in r.examples:
                err.print(f"  skipped {example}", markup=False)
            if r.skipped_total > len(r.examples):
                for reason, count in r.skipped.items():
                    err.print(f"  {r.name}: {count:,} × {reason}", markup=False)
            if r.message:
                err.print(f"[red]portradar:[/red] {r.message}", markup=True)
    if any(r.status == "failed" for r in results):
        sys.exit(1)


@cli.command()
@output_options
@friendly
def formats(as_json: bool, as_csv: bool) -> None:
    """List the input formats portradar reads."""
    from portradar.cli.render import render
    from portradar.ingest.registry import all_readers

    rows = [{"format": r.name, "unit": r.unit,
             "description": (r.__doc__ or "").strip().splitlines()[0]} for r in all_readers()]
    render(rows, ["format", "unit", "description"], output_format(as_json, as_csv))


@cli.command()
@output_options
@click.pass_context
@friendly
def inputs(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """List what has been ingested and how far each input has been read."""
    from portradar.cli.render import render

    with open_store(ctx, read_only=True) as store:
        rows = store.query(
            """SELECT input_id AS id, last_name AS input, format, records, events, skipped,
                      offset_bytes AS bytes_read, strftime(last_seen, '%Y-%m-%d %H:%M:%S')
                      AS last_read
               FROM inputs ORDER BY input_id"""
        ).to_pylist()
    render(rows, ["id", "input", "format", "records", "events", "skipped", "bytes_read",
                  "last_read"], output_format(as_json, as_csv), title="inputs")


# --- views ---------------------------------------------------------------------------


@cli.command()
@click.option("--period", type=click.Choice(["day", "hour"]), default="day", show_default=True)
@click.option("--at", "at", help="The bucket (date or hour, ISO); default: the latest.")
@click.option("--by", type=click.Choice(["records", "sources", "targets"]), default="records",
              show_default=True, help="Rank by.")
@click.option("--proto", help="Only this protocol (tcp, udp, icmp, ...).")
@click.option("--sensor", default="*", show_default=True, help="One sensor, or * for all.")
@click.option("--limit", "-n", default=10, show_default=True)
@output_options
@click.pass_context
@friendly
def ports(ctx: click.Context, period: str, at: str | None, by: str, proto: str | None,
          sensor: str, limit: int, as_json: bool, as_csv: bool) -> None:
    """Top ports of a day (or hour) with the change against the previous one."""
    from portradar.activity.top_ports import top_ports
    from portradar.cli.render import render

    when: date | datetime | None = None
    if at:
        parsed = parse_when(at)
        when = parsed.date() if period == "day" and parsed is not None else parsed
    with open_store(ctx) as store:
        rows = top_ports(store, period=period, at=when, by=by, proto=proto, sensor=sensor,
                         limit=limit)
    title = f"top ports by {by}, {period} {rows[0]['bucket'] if rows else '(no data)'}"
    render(rows, ["rank", "proto", "port", "records", "change_records", "sources",
                  "change_sources", "targets", "change_targets"], output_format(as_json, as_csv),
           title=title, headers={"change_records": "Δ", "change_sources": "Δ",
                                 "change_targets": "Δ"})


@cli.command()
@click.argument("port", type=click.IntRange(-1, 65535))
@click.option("--proto", default="tcp", show_default=True)
@click.option("--period", type=click.Choice(["day", "hour"]), default="day", show_default=True)
@click.option("--last", default=None, type=click.IntRange(1, 10000),
              help="How many buckets (default 30 days or 48 hours).")
@click.option("--sensor", default="*", show_default=True)
@output_options
@click.pass_context
@friendly
def port(ctx: click.Context, port: int, proto: str, period: str, last: int | None,
         sensor: str, as_json: bool, as_csv: bool) -> None:
    """One port's history: records, distinct sources and targets per day or hour."""
    from portradar.activity.periods import proto_number
    from portradar.activity.port_history import port_history
    from portradar.cli.render import render, sparkline
    from portradar.spikes.port_view import port_band

    n = last or (30 if period == "day" else 48)
    with open_store(ctx) as store:
        rows = port_history(store, port, proto=proto, period=period, last=n, sensor=sensor)
        band = port_band(store, port, proto=proto_number(proto), period=period,
                         sensor=sensor) if rows else {}
    for row in rows:
        row.update(band.get(row["bucket"], {"baseline_low": None, "baseline_high": None,
                                             "spike": None}))
    fmt = output_format(as_json, as_csv)
    if fmt == "table":
        series = [r["sources"] for r in rows]
        Console().print(f"[bold]{proto}/{port}[/bold] sources per {period}: "
                        f"{sparkline(series)}  (max {max(series, default=0):,})")
        for row in rows:
            row["spike"] = f"▲ {row['spike']}" if row["spike"] else ""
    render(rows, ["bucket", "records", "sources", "targets", "baseline_low", "baseline_high",
                  "spike"], fmt, title=f"{proto}/{port} by {period}",
           headers={"baseline_low": "baseline low", "baseline_high": "high"})


@cli.command()
@click.option("--since", help="From this time (ISO).")
@click.option("--until", help="Up to this time (ISO).")
@click.option("--port", "port_", type=int, help="Only probes of this port.")
@click.option("--proto", help="Only this protocol.")
@click.option("--sensor", help="Only this sensor.")
@click.option("--limit", "-n", default=20, show_default=True)
@output_options
@click.pass_context
@friendly
def sources(ctx: click.Context, since: str | None, until: str | None, port_: int | None,
            proto: str | None, sensor: str | None, limit: int, as_json: bool,
            as_csv: bool) -> None:
    """Top talkers: the sources that sent the most probes."""
    from portradar.activity.top_sources import top_sources
    from portradar.cli.render import render

    with open_store(ctx, read_only=True) as store:
        rows = top_sources(store, since=parse_when(since), until=parse_when(until),
                           port=port_, proto=proto, sensor=sensor, limit=limit)
    render(rows, ["source", "probes", "ports", "targets", "sensors", "first_seen",
                  "last_seen"], output_format(as_json, as_csv), title="top sources")


@cli.command()
@click.argument("days", type=click.IntRange(0, 100000))
@click.pass_context
@friendly
def retention(ctx: click.Context, days: int) -> None:
    """Keep raw events for DAYS days before the newest event (0: forever).

    Per-port activity of older days is kept.
    """
    with open_store(ctx) as store:
        store.set_setting("retention_days", str(days))
        removed = store.apply_retention()
    click.echo(f"retention: {days or 'forever'} days; {removed:,} old events removed")


@cli.group()
def evaluate() -> None:
    """Score detectors against labelled truth (precision, recall, delay, false alarms)."""


#: Modules that add subcommands: each exposes ``commands`` (click commands added to
#: ``portradar``) and may expose ``evaluate_commands`` (added under ``portradar
#: evaluate``).  A feature's commands live beside it; this list is the only place
#: that names them.
COMMAND_MODULES: tuple[str, ...] = ("portradar.cli.spikes_cmd", "portradar.cli.scanners_cmd",
                                    "portradar.cli.campaigns_cmd",
                                    "portradar.cli.intel_cmd", "portradar.cli.watch_cmd",
                                    "portradar.cli.collect_cmd", "portradar.cli.archive_cmd",
                                    "portradar.cli.serve_cmd", "portradar.cli.spark_cmd")


def _add_commands() -> None:
    import importlib

    for module in COMMAND_MODULES:
        loaded = importlib.import_module(module)
        for command in getattr(loaded, "commands", []):
            cli.add_command(command)
        for command in getattr(loaded, "evaluate_commands", []):
            evaluate.add_command(command)


_add_commands()


def main() -> None:
    from portradar.cli.startup_imports import modules_hidden

    with modules_hidden("scipy.linalg"):  # numba's BLAS probe: see startup_imports
        cli(obj={})


if __name__ == "__main__":
    main()
