"""The verdict writer (portradar.scan.verdict_writer): whole row groups while the run
goes on, the rest at the end, one transaction of its own, rolled back on abort."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from portradar.scan import verdict_writer
from portradar.scan.detect import NET_KEY_SQL, _apply_schema
from portradar.scan.verdict_writer import Scope, VerdictWriter
from portradar.store import Store


def _store(tmp_path):
    store = Store.open(tmp_path / "w.duckdb")
    _apply_schema(store)
    store.con.execute("CREATE TABLE written (x INTEGER)")
    return store


def _insert(sizes: list[int]):
    def insert(con, rows: pa.Table) -> int:
        sizes.append(rows.num_rows)
        con.register("_x", rows)
        con.execute("INSERT INTO written SELECT x FROM _x")
        con.unregister("_x")
        return rows.num_rows
    return insert


def _rows(start: int, n: int) -> pa.Table:
    return pa.table({"x": pa.array(range(start, start + n), pa.int32())})


def test_whole_row_groups_while_parts_come_and_the_rest_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(verdict_writer, "ROW_GROUP", 10)
    sizes: list[int] = []
    with _store(tmp_path) as store:
        writer = VerdictWriter(store.con, Scope("event_rows", NET_KEY_SQL), _insert(sizes))
        for i in range(5):
            writer.add(_rows(7 * i, 7))
        writer.add(None)
        writer.finish()
        assert writer.wait() == 35
        got = sorted(x for (x,) in store.con.execute("SELECT x FROM written").fetchall())
    assert got == list(range(35))  # every row once, none lost at a row group's edge
    assert sum(sizes) == 35 and all(n % 10 == 0 for n in sizes[:-1]) and sizes[-1] % 10 == 5


def test_other_connections_see_nothing_until_the_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(verdict_writer, "ROW_GROUP", 10)
    sizes: list[int] = []
    with _store(tmp_path) as store:
        writer = VerdictWriter(store.con, Scope("event_rows", NET_KEY_SQL), _insert(sizes))
        writer.add(_rows(0, 12))
        deadline = time.monotonic() + 10
        while not sizes and time.monotonic() < deadline:  # bounded wait for the batch
            time.sleep(0.01)
        assert sizes == [10]  # a whole row group, written before finish()
        assert store.con.execute("SELECT count(*) FROM written").fetchone() == (0,)
        writer.finish()
        assert writer.wait() == 12 and sizes == [10, 2]
        assert store.con.execute("SELECT count(*) FROM written").fetchone() == (12,)


def test_a_writer_told_to_stop_rolls_back(tmp_path):
    sizes: list[int] = []
    with _store(tmp_path) as store:
        writer = VerdictWriter(store.con, Scope("event_rows", NET_KEY_SQL), _insert(sizes))
        writer.add(_rows(0, 3))
        writer.wait(check=False)  # an error elsewhere: told to stop before finish()
        assert store.con.execute("SELECT count(*) FROM written").fetchone() == (0,)
        with pytest.raises(RuntimeError, match="stopped"):
            writer.wait()


def test_inside_a_callers_transaction_it_writes_on_the_callers_connection(tmp_path):
    sizes: list[int] = []
    with _store(tmp_path) as store, store.transaction():
        writer = VerdictWriter(store.con, Scope("event_rows", NET_KEY_SQL), _insert(sizes),
                               own=False)
        writer.add(_rows(0, 4))
        writer.finish()
        assert writer.wait() == 4
        # the caller's transaction sees the rows before it commits
        assert store.con.execute("SELECT count(*) FROM written").fetchone() == (4,)
    assert sizes == [4]
