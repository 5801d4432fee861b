"""How the web server reaches the store: one connection shared safely, or reopened per request.

DuckDB allows **one writing process** per file (the writer holds an exclusive lock) or
any number of read-only processes, never both.  A DuckDB connection object is not safe
to share between threads.  So the server has two ways in:

* **Shared** (the default, and ``:memory:``): the server holds the store open (writable
  unless ``--read-only``); each request borrows a *cursor* (DuckDB's per-thread
  connection to the same database) from a small pool, so requests run in parallel
  threads safely.  The few writes (acknowledging an alert) go through :meth:`write`,
  under one lock.  Nothing else can write the file meanwhile, so derived results stay
  valid until the server writes.
* **Reopen per request** (``--read-only`` on a file): every request opens the file
  read-only, reads and closes it, so between requests the file is free for an ingest
  (``portradar ingest`` takes the write lock only when it can get it).  While an ingest
  holds the lock a request waits up to :data:`OPEN_RETRY_SECONDS` for it, then answers
  503 ``store_busy`` with ``Retry-After``.  DuckDB has no lock waiting of its own, so an
  ingest started while a request holds the file fails at once and must be retried.

Views get a :class:`~portradar.store.duckdb_store.Store` flagged ``read_only`` whichever
way the connection was opened, so no view ever writes (refreshing activity, detection
and the knowledge base happen once at start-up, see :meth:`StoreAccess.prepare`).

>>> from portradar.store.duckdb_store import Store
>>> access = StoreAccess.shared(Store.open(":memory:"))
>>> with access.read() as store:
...     store.read_only, store.con.execute("SELECT activity_port(6, 445, NULL)").fetchall()
(True, [(445,)])
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb

from portradar.errors import StoreError
from portradar.store.duckdb_store import Store, _sql, first_row

#: How long a request waits for an ingest's write lock before answering 503: a chunk of
#: the pipeline commits in well under a second on the benchmark machine, a whole ingest
#: may take minutes, so a short wait covers the gaps and a client retries the rest.
OPEN_RETRY_SECONDS = 2.0
#: Cursors kept ready in the shared mode: uvicorn's thread pool runs 40 requests at
#: most (anyio's default), two cores rarely need more than a handful.
POOL_SIZE = 8


class StoreBusy(StoreError):
    """The store is locked by a writer (an ingest) right now; retry shortly."""


class StoreAccess:
    """Hands each request a store to read, and serialises the server's own writes."""

    def __init__(self, store: Store | None, path: str, *, reopen: bool,
                 writable: bool) -> None:
        self._store = store
        self.path = path
        self.reopen = reopen
        self.writable = writable
        self._lock = threading.Lock()
        self._pool: queue.LifoQueue[duckdb.DuckDBPyConnection] = queue.LifoQueue()
        self._created = 0
        self._macros = _sql("macros.sql")

    @classmethod
    def shared(cls, store: Store) -> StoreAccess:
        """Serve from ``store``'s connection (cursor per request)."""
        return cls(store, store.path, reopen=False, writable=not store.read_only)

    @classmethod
    def reopening(cls, path: str) -> StoreAccess:
        """Open ``path`` read-only for each request (an ingest may run in between)."""
        return cls(None, path, reopen=True, writable=False)

    # -- reading -------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        assert self._store is not None
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            cur = self._store.con.cursor()
            self._created += 1
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute(self._macros)
        return cur

    def _release(self, cur: duckdb.DuckDBPyConnection) -> None:
        if self._pool.qsize() < POOL_SIZE:
            self._pool.put(cur)
        else:
            cur.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Store]:
        """A store for one request, flagged read-only (views never write)."""
        if self.reopen:
            store = _open_waiting(self.path)
            try:
                yield store
            finally:
                store.close()
            return
        cur = self._cursor()
        ok = False
        try:
            yield Store(cur, self.path, read_only=True)
            ok = True
        finally:
            if ok:
                self._release(cur)
            else:  # a failed statement may leave the cursor mid-transaction
                with contextlib.suppress(duckdb.Error):
                    cur.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[Store]:
        """The writable store, one writer at a time (only in the shared writable mode)."""
        if not self.writable or self._store is None:
            raise StoreError("the server has the store open read-only")
        with self._lock:
            yield self._store

    def version(self, store: Store) -> tuple[Any, ...]:
        """Changes whenever data derived results depend on changes (cheap: counts)."""
        return tuple(first_row(store.con.execute(
            """SELECT (SELECT count(*) FROM event_rows), (SELECT count(*) FROM activity_dirty),
                      (SELECT coalesce(max(run_id), 0) FROM ingest_runs),
                      (SELECT count(*) FROM port_activity_daily),
                      (SELECT max(value) FROM meta WHERE key = 'scan.rowid')""")))

    # -- start-up ------------------------------------------------------------------
    def prepare(self) -> list[str]:
        """Bring derived tables up to date before serving; returns what was done.

        Writable only: activity of dirty days, new-source counts, scan verdicts and the
        knowledge base's tables (a read-only server serves what the last writer left).
        """
        done: list[str] = []
        if not self.writable or self._store is None:
            return done
        from portradar.activity import new_sources
        from portradar.activity import sketch as _sketch  # noqa: F401  (its refresher)
        from portradar.alerts.lifecycle import AlertBook
        from portradar.intel.assets import ensure_tables
        from portradar.intel.vulnerabilities import KnowledgeBase
        from portradar.scan.detect import ensure_detection

        store = self._store
        with self._lock:
            days = store.refresh_activity()
            if days:
                done.append(f"activity refreshed for {days} days")
            if new_sources.sync(store):
                done.append("new-source counts updated")
            summary = ensure_detection(store)
            if summary.mode != "unchanged":
                done.append(f"scan detection ({summary.mode}): {summary.flagged:,} verdicts")
            KnowledgeBase.open(store)
            ensure_tables(store)
            AlertBook(store)
        return done


def _open_waiting(path: str) -> Store:
    deadline = time.monotonic() + OPEN_RETRY_SECONDS
    delay = 0.02
    while True:
        try:
            return Store.open(path, read_only=True)
        except StoreError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                if "lock" in str(exc).lower():
                    raise StoreBusy(f"{path}: locked by a writer (an ingest?); retry") from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
