"""Ingest: inputs in, events and per-port activity stored, exactly once.

For each input: open it (decompressing), sniff its format unless one is given, find
where an earlier run stopped (:mod:`portradar.store.ledger`), let the reader turn the
rest into event batches, and commit at the safe points the reader reports, about every
:data:`COMMIT_EVENTS` events.  Each commit writes the events, the ledger position and
the dirty-day marks together.
In ``strict`` mode an input is one transaction: the first bad record leaves the
store exactly as it was.

>>> from portradar.store import Store
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "fw.log")
>>> _ = open(path, "w").write(
...     "2026-11-26T10:00:00Z fw kernel: DROP IN=eth0 OUT= SRC=198.51.100.7 DST=192.0.2.1 "
...     "LEN=40 TTL=50 ID=1 PROTO=TCP SPT=1 DPT=445 WINDOW=1 RES=0x00 SYN URGP=0\\n")
>>> with Store.open(":memory:") as store:
...     first = ingest_input(store, path)
...     again = ingest_input(store, path)
>>> (first.status, first.events), (again.status, again.events)
(('ingested', 1), ('unchanged', 0))
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from portradar.errors import FormatError, InputError, PortradarError
from portradar.ingest.opener import OpenedInput, open_input
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import get_reader
from portradar.ingest.sniff import sniff_format
from portradar.store import ledger
from portradar.store.duckdb_store import Store

#: Events per insert and transaction (at least; a chunk is never split).  Chunks are
#: collected up to this many events and inserted with one statement: DuckDB then writes
#: whole row groups (122,880 rows) straight to the database file, while one insert per
#: chunk leaves a partly filled row group each time, rewritten at the next checkpoint.
#: Measured on 2 M iptables events: inserts of 131,072 rows cost 1.42 CPU-s plus 1.21
#: at the checkpoint (file 122 MB); inserts of 524,288 rows 1.23 CPU-s and nothing at
#: the checkpoint (file 63 MB).  Memory: the collected batches, about 100 MB.
COMMIT_EVENTS = 500_000

#: Count the activity of finished days on a second thread while the input is read
#: (:class:`_DayRefresher`); ``False`` counts everything after the last input instead.
ACTIVITY_DURING_INGEST = True

#: progress(records so far, decompressed bytes so far, input size or None, unit)
ProgressFn = Callable[[int, int, int | None, str], None]


@dataclass
class IngestResult:
    """What one input gave: the summary ``portradar ingest`` prints."""

    name: str
    status: str  # "ingested", "unchanged" or "failed"
    format: str | None = None
    unit: str = "records"
    records: int = 0
    events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    resumed_at: int = 0  # records already stored before this run
    seconds: float = 0.0
    message: str | None = None

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "input": self.name, "status": self.status, "format": self.format,
            "unit": self.unit, "records": self.records, "events": self.events,
            "skipped": self.skipped_total, "skip_reasons": self.skipped,
            "examples": self.examples, "resumed_at": self.resumed_at,
            "seconds": round(self.seconds, 3), "message": self.message,
        }


def _resume_point(opened: OpenedInput, head: bytes, store: Store) -> ledger.LedgerEntry | None:
    """The ledger entry this input continues, if any."""
    for entry in ledger.find(store, head):
        if entry.offset == 0 or not opened.seekable or entry.tail_sha is None:
            return entry
        if opened.size is not None and entry.offset > opened.size:
            return entry  # shorter than what was read: an earlier copy of the same log
        stream = opened.stream
        start = max(0, entry.offset - ledger.TAIL_BYTES)
        stream.seek(start)
        tail = stream.read(entry.offset - start)
        stream.seek(0)
        if ledger.tail_hash(tail) == entry.tail_sha:
            return entry
    return None


def ingest_input(
    store: Store,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    options: ReadOptions | None = None,
    progress: ProgressFn | None = None,
    reader_factory: Callable[[], object] | None = None,
) -> IngestResult:
    """Ingest one input; never raises for a bad input (the result says what went wrong).

    ``reader_factory`` builds the reader when it needs arguments (the generic table
    reader's column mapping); by default the registry's class is called without any.
    """
    options = options or ReadOptions()
    name = os.fspath(path) if os.fspath(path) != "-" else "<stdin>"
    started = time.perf_counter()
    result = IngestResult(name=name, status="failed")
    stats = ReadStats(source=name, strict=options.strict)
    entry: ledger.LedgerEntry | None = None
    input_id: int | None = None
    try:
        opened = open_input(path)
    except InputError as exc:
        result.message = str(exc)
        return _finish(store, result, stats, None, started)
    try:
        head = opened.head
        if not head:
            raise InputError(f"{name}: empty input, nothing to read")
        fmt = fmt or sniff_format(head, name=name)
        reader_cls = get_reader(fmt)
        result.format, result.unit = fmt, reader_cls.unit
        reader = reader_factory() if reader_factory else reader_cls()
        entry = _resume_point(opened, head, store)
        if entry is not None and opened.size is not None and opened.seekable and (
            entry.offset >= opened.size
        ):
            result.status = "unchanged"
            result.resumed_at = entry.records
            return _finish(store, result, stats, entry.input_id, started)
        opts = replace(options, reference_time=options.reference_time or opened.mtime)
        start_offset = entry.offset if entry else 0
        result.resumed_at = entry.records if entry else 0
        input_id = _run(store, reader, opened, head, opts, stats, result, start_offset,
                        entry.input_id if entry else None, progress)
    except (InputError, FormatError) as exc:
        result.status = "failed"
        result.message = str(exc)
    except PortradarError as exc:
        result.status = "failed"
        result.message = f"{name}: {exc}"
    finally:
        opened.close()
    result.records, result.events = stats.records, stats.events
    return _finish(store, result, stats, input_id, started)


class _Prefetch:
    """Run a reader one chunk ahead in a thread, so parsing overlaps the store's writes.

    The numba kernels and DuckDB both release the GIL, so on two cores the next chunk
    is parsed while the previous one is inserted.  Exceptions (a FormatError in strict
    mode, an InputError) are re-raised in the consumer, in order.
    """

    _DONE = object()

    def __init__(self, chunks: Iterator[ReadChunk], depth: int = 1) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(chunks,), daemon=True,
                                        name="portradar-reader")
        self._thread.start()

    def _pump(self, chunks: Iterator[ReadChunk]) -> None:
        try:
            for chunk in chunks:
                while not self._stop.is_set():
                    try:
                        self._queue.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._put(self._DONE)
        except BaseException as exc:
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[ReadChunk]:
        try:
            while True:
                item = self._queue.get()
                if item is self._DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self._stop.set()
            self._thread.join(timeout=5)


class _DayRefresher:
    """Refresh the activity of the days an ingest has finished with, on a second thread.

    A log is (nearly) in time order: once committed events reach day D, the days before
    D are complete, and their activity can be counted while the reader goes on.  This
    runs on its own DuckDB connection, one refresh at a time; the ingest thread never
    waits for it except at the end of the input.  A day that gets more events later
    (an out-of-order line) is marked dirty again by that insert and recomputed by the
    final refresh, so the result is the same as refreshing everything at the end.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._second: Store | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._done_before: date | None = None

    def committed(self, newest_day: date | None) -> None:
        """Events up to ``newest_day`` are committed: refresh the days before it."""
        if newest_day is None or (self._thread is not None and self._thread.is_alive()):
            return
        if self._done_before is not None and newest_day <= self._done_before:
            return
        self._raise()
        if self._second is None:
            self._second = self._store.second_connection()
        self._done_before = newest_day
        self._thread = threading.Thread(target=self._refresh, args=(newest_day,),
                                        daemon=True, name="portradar-activity")
        self._thread.start()

    def _refresh(self, before: date) -> None:
        assert self._second is not None
        try:
            self._second.refresh_activity(before=before)
        except duckdb.TransactionException:
            pass  # a write conflict: the days stay dirty, the final refresh counts them
        except BaseException as exc:
            self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Wait for a refresh under way, then close the second connection."""
        if self._thread is not None:
            self._thread.join()
        if self._second is not None:
            self._second.close()
            self._second = None
        self._raise()


def _newest_day(batches: Sequence[pa.RecordBatch]) -> date | None:
    """The UTC day of the newest event in ``batches``."""
    newest = None
    for batch in batches:
        if batch.num_rows:
            top = pc.max(batch.column("ts")).value
            newest = top if newest is None or top > newest else newest
    return None if newest is None else (_EPOCH + timedelta(microseconds=newest)).date()


_EPOCH = datetime(1970, 1, 1)


def _run(store: Store, reader: object, opened: OpenedInput, head: bytes, options: ReadOptions,
         stats: ReadStats, result: IngestResult, start_offset: int, input_id: int | None,
         progress: ProgressFn | None) -> int | None:
    """Read and commit; returns the ledger id of the input (None if nothing was stored)."""
    con = store.con
    in_txn = False
    records_done = 0
    buffered: list[pa.RecordBatch] = []  # read, not yet inserted
    buffered_rows = 0
    counts = [0, 0, 0]  # records, events, skipped since the last safe point
    safe: tuple[int, ReadChunk, list[int]] | None = None  # buffered up to a safe point
    days = _DayRefresher(store) if ACTIVITY_DURING_INGEST and not options.strict else None

    def flush(upto: int, commit: bool) -> None:
        """Insert ``buffered[:upto]``, record the safe point it ends at, maybe commit."""
        nonlocal in_txn, input_id, buffered, buffered_rows, safe
        if not in_txn:
            con.execute("BEGIN TRANSACTION")
            in_txn = True
        if input_id is None:
            input_id = ledger.create(store, head, result.name, result.format or "?")
        store.append_events(buffered[:upto], input_id=input_id)
        newest = _newest_day(buffered[:upto]) if days is not None else None
        if safe is not None and safe[0] == upto:
            chunk, (records, events, skipped) = safe[1], safe[2]
            ledger.advance(store, input_id, name=result.name, offset=chunk.offset or 0,
                           records=records, events=events, skipped=skipped, tail=chunk.tail)
            safe = None
        buffered = buffered[upto:]
        buffered_rows = sum(b.num_rows for b in buffered)
        if commit:
            con.execute("COMMIT")
            in_txn = False
            if days is not None:
                days.committed(newest)

    try:
        chunks = reader.read(  # type: ignore[attr-defined]
            opened.stream, start_offset=start_offset, options=options, stats=stats,
            start_line=result.resumed_at + 1,
        )
        for chunk in _Prefetch(chunks):
            buffered.append(chunk.batch)
            buffered_rows += chunk.batch.num_rows
            counts[0] += chunk.records
            counts[1] += chunk.batch.num_rows
            counts[2] += chunk.skipped
            records_done += chunk.records
            if chunk.offset is not None:
                if safe is not None:  # an earlier safe point, not recorded: its counts
                    counts = [a + b for a, b in zip(safe[2], counts, strict=True)]
                safe = (len(buffered), chunk, counts)  # records, events, skipped to here
                counts = [0, 0, 0]
                if buffered_rows >= COMMIT_EVENTS:
                    flush(len(buffered), commit=not options.strict)
            if progress is not None:
                progress(records_done, (chunk.offset or 0) - start_offset, opened.size,
                         result.unit)
        # the end: up to the last safe point with its ledger position, then the rest
        if safe is not None:
            flush(safe[0], commit=False)
        if buffered:
            flush(len(buffered), commit=False)
        if in_txn:
            con.execute("COMMIT")
            in_txn = False
    except BaseException:
        if in_txn:
            con.execute("ROLLBACK")
        raise
    finally:
        if days is not None:
            days.close()
    result.status = "unchanged" if stats.records == 0 and start_offset > 0 else "ingested"
    return input_id


def _finish(store: Store, result: IngestResult, stats: ReadStats, input_id: int | None,
            started: float) -> IngestResult:
    result.seconds = time.perf_counter() - started
    result.skipped = dict(stats.skipped)
    result.examples = list(stats.examples)
    if result.status == "failed" and result.message is None:
        result.message = "failed"
    # bookkeeping must never hide the real outcome of the ingest
    with contextlib.suppress(Exception):
        store.con.execute(
            """INSERT INTO ingest_runs VALUES (nextval('run_ids'), ?, ?, ?, ?, ?, ?, ?, ?, ?,
                                               ?, ?, ?, ?)""",
            [input_id, result.name, result.format, datetime.now(tz=UTC), result.seconds,
             result.records, result.events, result.skipped_total, json.dumps(result.skipped),
             json.dumps(result.examples), result.resumed_at, result.status, result.message],
        )
    return result


def store_batches(
    store: Store,
    batches: Iterable[pa.RecordBatch],
    *,
    name: str,
    identity: bytes,
    fmt: str = "generated",
) -> IngestResult:
    """Store batches that come from no file (the simulator, a collector, a test).

    ``identity`` plays the part of a file's first bytes: storing the same identity
    again is recognised and skipped, so a seeded simulation written twice is stored
    once.  Each batch is committed with its ledger position (the batch count).
    """
    started = time.perf_counter()
    result = IngestResult(name=name, status="ingested", format=fmt, unit="events")
    stats = ReadStats(source=name)
    found = ledger.find(store, identity)
    entry = next((e for e in found if e.head_len == len(identity[: ledger.HEAD_BYTES])), None)
    if entry is not None and entry.offset > 0:
        result.status = "unchanged"
        result.resumed_at = entry.records
        return _finish(store, result, stats, entry.input_id, started)
    input_id = entry.input_id if entry else None
    done = 0
    for batch in batches:
        with store.transaction():
            if input_id is None:
                input_id = ledger.create(store, identity, name, fmt)
            store.append_events(batch, input_id=input_id)
            done += 1
            ledger.advance(store, input_id, name=name, offset=done, records=batch.num_rows,
                           events=batch.num_rows, skipped=0, tail=None)
        stats.records += batch.num_rows
        stats.events += batch.num_rows
    result.records, result.events = stats.records, stats.events
    store.refresh_activity()
    return _finish(store, result, stats, input_id, started)


def ingest_inputs(
    store: Store,
    paths: Sequence[str | os.PathLike[str]],
    *,
    fmt: str | None = None,
    options: ReadOptions | None = None,
    progress: Callable[[str], ProgressFn | None] | None = None,
    reader_factory: Callable[[], object] | None = None,
) -> list[IngestResult]:
    """Ingest several inputs, then refresh per-port activity and apply retention once."""
    results = []
    for path in paths:
        callback = progress(os.fspath(path)) if progress else None
        results.append(ingest_input(store, path, fmt=fmt, options=options, progress=callback,
                                    reader_factory=reader_factory))
    if not store.read_only:
        store.refresh_activity()
        store.apply_retention()
    return results
