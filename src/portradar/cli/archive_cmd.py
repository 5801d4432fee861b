"""``portradar export`` and ``portradar import``: the store to and from a Parquet archive.

The archive layout, its versioning and why addresses stay unsigned are in
:mod:`portradar.archive.parquet_archive`; ``docs/scale.md`` shows how Spark, DuckDB and
Polars read it.
"""

from __future__ import annotations

import time

import click

from portradar.cli.options import (
    err,
    friendly,
    open_store,
    output_format,
    output_options,
    parse_when,
)


@click.command("export")
@click.option("--to", "to", required=True, type=click.Path(file_okay=False),
              help="The archive directory (created; day/sensor directories written to are "
                   "replaced).")
@click.option("--since", help="Only events from this time (ISO).")
@click.option("--until", help="Only events before this time (ISO).")
@click.option("--sensor", help="Only this sensor's events.")
@output_options
@click.pass_context
@friendly
def export(ctx: click.Context, to: str, since: str | None, until: str | None,
           sensor: str | None, as_json: bool, as_csv: bool) -> None:
    """Write the store's events to a Parquet archive partitioned by day and sensor."""
    from portradar.archive.parquet_archive import export_store
    from portradar.cli.render import render

    started = time.perf_counter()
    with open_store(ctx, read_only=True) as store:
        result = export_store(store, to, since=parse_when(since), until=parse_when(until),
                              sensor=sensor)
    row = {"archive": to, **result.as_dict(), "seconds": round(time.perf_counter() - started, 2)}
    render([row], list(row), output_format(as_json, as_csv), title="export")


@click.command("import")
@click.argument("archive", type=click.Path(file_okay=False, exists=True))
@output_options
@click.pass_context
@friendly
def import_(ctx: click.Context, archive: str, as_json: bool, as_csv: bool) -> None:
    """Store a Parquet archive's events; importing it again stores nothing twice."""
    from portradar.archive.parquet_archive import import_archive
    from portradar.cli.render import render

    started = time.perf_counter()
    with open_store(ctx) as store:
        result = import_archive(store, archive)
    row = {"archive": archive, **result.as_dict(),
           "seconds": round(time.perf_counter() - started, 2)}
    fmt = output_format(as_json, as_csv)
    render([row], list(row), fmt, title="import")
    if fmt == "table" and result.unchanged and not result.imported:
        err.print("nothing new: every file of this archive was imported before")


commands = [export, import_]
