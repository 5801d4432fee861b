"""A progress bar with records/s that appears only for ingests longer than a second."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

#: Ingests shorter than this show no progress bar at all.
SHOW_AFTER_S = 1.0


class IngestProgress:
    """Callback factory for :func:`portradar.ingest.pipeline.ingest_inputs`."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._started = time.perf_counter()

    def __call__(self, name: str):
        if not self.enabled:
            return None
        start = time.perf_counter()
        task: list[TaskID] = []

        def update(records: int, done: int, total: int | None, unit: str) -> None:
            elapsed = time.perf_counter() - start
            if self._progress is None:
                if elapsed < SHOW_AFTER_S:
                    return
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.fields[records]:,} {task.fields[unit]}"),
                    TextColumn("{task.fields[rate]:,.0f} {task.fields[unit]}/s"),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                )
                self._progress.start()
            if not task:
                task.append(self._progress.add_task(name, total=total, records=0, rate=0.0,
                                                    unit=unit))
            self._progress.update(task[0], completed=done, records=records,
                                  rate=records / max(elapsed, 1e-9))

        return update

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
