"""Writing a detection run's verdicts while the run goes on.

A run replaces the stored verdicts (table ``scanners``) of the sources it recomputed,
its :class:`Scope`.  :class:`VerdictWriter` does that on a connection of its own, in
a thread and a transaction of its own: it deletes the old verdicts when the run starts,
inserts the new ones as the analysed parts hand them over, and commits when the run
says it is done.
Meanwhile the detection's own connection writes the profiles and regroups the
campaigns (:func:`portradar.scan.detect._regroup`), and the last transaction adds the
campaign-only verdicts and moves the watermark, so a run cut short anywhere is redone
whole by the next one.

Why a writer of its own: in one transaction, the commit compressed and wrote the
benchmark's 195,727 verdicts (0.4-0.5 s, one core) after the campaigns' SQL (0.25 s,
one core), with the other core idle; here they overlap.  Why whole row groups: DuckDB
compresses the rows of an insert of a whole row group (122,880 rows) or more as it goes
(on the benchmark: one insert of all the verdicts 0.42 s, its commit 0.007 s), while
the rows of smaller inserts are left to the commit (17 inserts of one part's verdicts
each, 0.3-0.45 s, then 0.34-0.45 s of commit).  So the writer inserts exactly as many
whole row groups as the parts have handed over, while the last parts are analysed, and
the rest at the end.  Whole ones matter: inserting whatever had come once a row
group's worth was there left partial row groups in the middle of the table, which the
next checkpoint merged (0.2-0.3 s, paid at the next commit or at close).

Inside a caller's transaction (the watch service reads one snapshot), another
connection would see neither the caller's tables nor its rows: the writer then runs
on the caller's connection, once, when the run is done (``own=False``).

>>> scope = Scope("event_rows", "({e}.src_lo >> 8)")
>>> scope.verdicts_sql("_nets").startswith("coalesce(prefix = 64")
True
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from portradar.scan.arrow_arrays import to_arrow


@dataclass
class Scope:
    """The sources a run recomputes, whose stored verdicts it replaces: the networks
    ``nets`` (keys by ``net_sql``, an incremental run), or every source with events
    left in ``table`` (a full run: verdicts on sources whose events retention purged,
    last seen before the oldest event kept, stay)."""

    table: str
    #: A source's network key in SQL, ``{e}`` the table's name or alias
    #: (:data:`portradar.scan.detect.NET_KEY_SQL`).
    net_sql: str
    nets: np.ndarray | None = None

    def verdicts_sql(self, nets: str) -> str:
        """The condition on ``scanners`` rows; ``nets`` names a relation with the
        networks in column ``net`` (:meth:`register` puts them there)."""
        if self.nets is not None:
            return f"{self.net_sql.format(e='scanners')} IN (SELECT net FROM {nets})"
        return f"coalesce(prefix = 64 OR last_seen >= (SELECT min(ts) FROM {self.table}), FALSE)"

    def register(self, con: duckdb.DuckDBPyConnection, name: str) -> bool:
        """Register the networks under ``name`` on ``con`` (True when there are)."""
        if self.nets is None:
            return False
        con.register(name, pa.table({"net": to_arrow(np.asarray(self.nets, np.uint64))}))
        return True


Insert = Callable[[duckdb.DuckDBPyConnection, pa.Table], int]


#: Rows of one DuckDB row group.
ROW_GROUP = 122_880


class VerdictWriter:
    """Replaces the verdicts of a run's :class:`Scope`: :meth:`add` each part's
    verdicts, :meth:`finish` when there are no more, :meth:`wait` for the commit.

    ``insert(con, rows)`` writes verdict rows (the detection's SQL for the evidence
    texts).  The writer deletes the stored verdicts it replaces as soon as it starts,
    inserts whole row groups of the new ones as they come and the rest at
    :meth:`finish`; ``own`` False does it all on ``con`` itself at :meth:`finish`, in
    the caller's transaction.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, scope: Scope, insert: Insert, *,
                 own: bool = True) -> None:
        self._con = con
        self._scope = scope
        self._insert = insert
        self._rows: list[pa.Table] = []
        self._count = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._abort = False
        self._error: BaseException | None = None
        self.flagged = 0
        self._thread: threading.Thread | None = None
        if own:
            self._thread = threading.Thread(target=self._run, args=(con.cursor(),),
                                            name="scan-verdicts", daemon=True)
            self._thread.start()

    def add(self, rows: pa.Table | None) -> None:
        """Verdicts of one analysed part."""
        if rows is not None and rows.num_rows:
            with self._lock:
                self._rows.append(rows)
                self._count += rows.num_rows
                if self._count >= ROW_GROUP and self._thread is not None:
                    self._wake.set()

    def finish(self) -> None:
        """No more verdicts: insert them and commit (at once when ``own`` is False)."""
        if self._thread is None:
            try:
                self._delete(self._con)
                self._write(self._con)
            except BaseException as exc:
                self._error = exc
            return
        self._finished.set()
        self._wake.set()

    def wait(self, *, check: bool = True) -> int:
        """Wait for the verdicts to be committed; their count.  Raises what the
        writer met (unless ``check`` is False: after an error elsewhere, the writer is
        told to roll back)."""
        if self._thread is not None:
            if not check and not self._finished.is_set():
                self._abort = True
                self._finished.set()
                self._wake.set()
            self._thread.join()
        if check and self._error is not None:
            raise self._error
        return self.flagged

    def _delete(self, cur: duckdb.DuckDBPyConnection) -> None:
        named = self._scope.register(cur, "_scope_nets")
        try:
            cur.execute(f"""DELETE FROM scanners WHERE detector = 'campaign'
                            OR {self._scope.verdicts_sql('_scope_nets')}""")
        finally:
            if named:
                cur.unregister("_scope_nets")

    def _write(self, cur: duckdb.DuckDBPyConnection, whole_groups: bool = False) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            self._count = 0
            if not rows:
                return
            table = pa.concat_tables(rows, promote_options="default")
            if whole_groups:  # whole row groups now, the rest later
                keep = table.num_rows // ROW_GROUP * ROW_GROUP
                if keep < table.num_rows:
                    self._rows = [table.slice(keep)]
                    self._count = table.num_rows - keep
                table = table.slice(0, keep)
        if table.num_rows:
            self.flagged += self._insert(cur, table)

    def _run(self, cur: duckdb.DuckDBPyConnection) -> None:
        try:
            cur.execute("BEGIN TRANSACTION")
            self._delete(cur)
            while True:
                self._wake.wait()  # set by add() (a row group's worth) and finish()
                self._wake.clear()
                if self._finished.is_set():
                    break
                self._write(cur, whole_groups=True)
            if self._abort:
                raise RuntimeError("detection stopped before its verdicts were written")
            self._write(cur)
            cur.execute("COMMIT")
        except BaseException as exc:  # reported by wait(), in the caller's thread
            self._error = exc
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
        finally:
            cur.close()
