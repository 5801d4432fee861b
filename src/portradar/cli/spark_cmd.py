"""``portradar spark activity|scanners|spikes|all``: the analyses as PySpark jobs.

They read a Parquet archive (``portradar export``, or a collector writing one), write
their results as Parquet under ``--out`` and, with ``--store``, load them into a store
that ``portradar ports``, ``port``, ``spikes`` and ``scanners`` read as they are.  The
same jobs run under ``spark-submit`` on a cluster (``--master yarn``, ``k8s://...``);
see docs/scale.md.
"""

from __future__ import annotations

import time
from typing import Any

import click

from portradar.cli.options import err, friendly, output_format, output_options

JOBS = ("activity", "scanners", "spikes", "all")


def run_jobs(job: str, archive: str, out: str, *, master: str = "local[2]",
             store_path: str | None = None, shuffle_partitions: int | None = None,
             hourly_spikes: bool = True, spark: Any = None) -> dict[str, Any]:
    """Run one job (or all) and load the results; returns a summary (seconds per stage)."""
    from pathlib import Path

    from portradar.errors import PortradarError
    from portradar.scan.detect import ScanConfig
    from portradar.spark import activity_job, results, scanners_job, spikes_job
    from portradar.spark.archive_source import read_archive
    from portradar.spark.session import DEFAULT_SHUFFLE_PARTITIONS, build_session
    from portradar.store.duckdb_store import Store

    if not Path(archive).is_dir():
        raise PortradarError(f"{archive}: no such archive directory")
    session = spark or build_session(
        master, shuffle_partitions=shuffle_partitions or DEFAULT_SHUFFLE_PARTITIONS)
    summary: dict[str, Any] = {"job": job, "archive": archive, "out": out, "master": master}
    # not cached: an archive is usually bigger than the executors' memory, and each
    # job's first shuffle reads only the columns it needs from the Parquet files
    events = read_archive(session, archive)
    summary["events"] = events.count()
    store = Store.open(store_path) if store_path else None
    try:
        config = ScanConfig.from_store(store) if store is not None else ScanConfig()
        if job in ("activity", "spikes", "all"):
            started = time.perf_counter()
            activity_job.run(events, out)
            summary["activity_seconds"] = round(time.perf_counter() - started, 1)
        if job in ("scanners", "all"):
            started = time.perf_counter()
            done = scanners_job.run(events, out, config)
            summary["answering"] = done["answering"]
            summary["scanners_seconds"] = round(time.perf_counter() - started, 1)
        if job in ("spikes", "all"):
            started = time.perf_counter()

            def read(name: str) -> Any:
                return session.read.parquet(str(Path(out) / name))

            spikes_job.run(read("port_activity_daily"), read("port_new_sources_daily"),
                           read("port_activity_hourly") if hourly_spikes else None,
                           read("port_new_sources_hourly") if hourly_spikes else None, out)
            summary["spikes_seconds"] = round(time.perf_counter() - started, 1)
        if store is not None:
            started = time.perf_counter()
            loaded = results.load(store, out,
                                  lonely_events=scanners_job.lonely_loader(session, events))
            summary.update({f"rows_{k}": v for k, v in loaded.items()})
            summary["load_seconds"] = round(time.perf_counter() - started, 1)
    finally:
        if store is not None:
            store.close()
    return summary


@click.command("spark")
@click.argument("job", type=click.Choice(JOBS))
@click.option("--archive", required=True, type=click.Path(file_okay=False, exists=True),
              help="The Parquet archive (portradar export --to DIR).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Where the results are written (one Parquet directory per table).")
@click.option("--master", default="local[2]", show_default=True,
              help="Spark master: local[N], spark://..., yarn, k8s://...")
@click.option("--store", "store_path", type=click.Path(dir_okay=False),
              help="Load the results into this store (a fresh one, or the one the archive "
                   "came from) for portradar ports/spikes/scanners.")
@click.option("--shuffle-partitions", type=click.IntRange(1, 100000),
              help="spark.sql.shuffle.partitions (default 8; 2 to 4 per executor core).")
@click.option("--no-hourly-spikes", is_flag=True, help="Daily spikes only.")
@output_options
@friendly
def spark(job: str, archive: str, out: str, master: str, store_path: str | None,
          shuffle_partitions: int | None, no_hourly_spikes: bool, as_json: bool,
          as_csv: bool) -> None:
    """Per-port activity, scanners and spikes as PySpark jobs over a Parquet archive.

    The detectors are portradar's own, run inside the executors on Arrow batches; the
    results equal the embedded ones on the same events.
    """
    from portradar.cli.render import render

    summary = run_jobs(job, archive, out, master=master, store_path=store_path,
                       shuffle_partitions=shuffle_partitions,
                       hourly_spikes=not no_hourly_spikes)
    if summary.get("answering"):
        err.print("note: some destinations in this archive also send; the Spark job does "
                  "not tell replies from probes (docs/scale.md), the embedded one does")
    render([summary], list(summary), output_format(as_json, as_csv), title="spark")


commands = [spark]
