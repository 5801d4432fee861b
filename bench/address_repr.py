"""Benchmark: how should the store represent IP addresses?

What: builds N probe rows (default 10 million) in an in-memory DuckDB, each address
held in every candidate representation, and times the two query shapes portradar
lives on, best of 3:

(a) port activity: per port x hour, ``count(*)``, ``count(DISTINCT src)``,
    ``count(DISTINCT dst)`` (DShield's records / sources / targets);
(b) scanners: per source, ``count(*)``, ``count(DISTINCT port)``, ``count(DISTINCT dst)``.

Each query's best wall time and best CPU time (user + system of this process, so all
DuckDB threads) are printed: on a machine shared with other work, CPU time is the
steadier figure.

Representations:

* ``uint32 (IPv4 only)``: UINTEGER, the lower bound; it cannot hold IPv6 (IPv6 rows
  are cut to their low 32 bits here, so its distinct counts are not exact);
* ``UHUGEINT``: one unsigned 128-bit integer;
* ``UBIGINT pair``: two unsigned 64-bit columns (hi, lo), IPv4 mapped as
  ``::ffff:a.b.c.d`` -- what ``portradar.events.schema`` uses;
* ``VARCHAR``: the usual text form (dotted quad, RFC 5952 IPv6);
* ``BLOB(16)``: the 16 network-order bytes.

A pair cannot go into ``count(DISTINCT ...)`` as two columns, so two spellings are
timed: a row value ``(hi, lo)`` (the obvious SQL) and a two-step aggregate (distinct
keys first, then count), which is how a store query would be written if the row value
is slow.  Storage: each representation's two address columns are copied into an on-disk
DuckDB file and the file size after CHECKPOINT is reported (``--no-storage`` skips it).

Why: the event schema's address layout is hard to change once archives exist, so the
choice is made by measurement, on data shaped like the real thing: a heavy-tailed
source population (Zipf), destinations in a few /24s, Zipf-like ports, about 2% IPv6.

Usage: ``python bench/address_repr.py [--rows 10000000] [--seed 1] [--threads N]``
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

V4_MAPPED = 0xFFFF_0000_0000


@dataclass(frozen=True)
class Representation:
    name: str
    src: str  # column expression(s) of the source address
    dst: str
    group: str  # GROUP BY list for the source
    distinct_src: str  # expression inside count(DISTINCT ...)
    distinct_dst: str
    columns: tuple[str, ...]  # the stored columns, for the storage measurement


REPRESENTATIONS: tuple[Representation, ...] = (
    Representation("uint32 (IPv4 only)", "s4", "d4", "s4", "s4", "d4", ("s4", "d4")),
    Representation("UHUGEINT", "sh", "dh", "sh", "sh", "dh", ("sh", "dh")),
    Representation("UBIGINT pair, row value", "src_hi, src_lo", "dst_hi, dst_lo",
                   "src_hi, src_lo", "(src_hi, src_lo)", "(dst_hi, dst_lo)",
                   ("src_hi", "src_lo", "dst_hi", "dst_lo")),
    Representation("VARCHAR", "ss", "ds", "ss", "ss", "ds", ("ss", "ds")),
    Representation("BLOB(16)", "sb", "db", "sb", "sb", "db", ("sb", "db")),
)


def make_rows(n: int, seed: int, sources: int, ipv6_share: float) -> pa.Table:
    """Probe rows with realistic address, port and time distributions (all seeded)."""
    rng = np.random.default_rng(seed)
    v4_pop = rng.integers(1 << 24, 0xDF000000, size=sources, dtype=np.uint64)
    v6_pop_hi = np.uint64(0x20010DB8_8000_0000) | rng.integers(0, 1 << 31, sources // 40 + 1,
                                                              dtype=np.uint64)
    v6_pop_lo = rng.integers(0, 1 << 63, sources // 40 + 1, dtype=np.uint64)
    ranks = np.arange(1, sources + 1, dtype=np.float64)
    cdf = np.cumsum(ranks ** -1.1)
    pick = np.searchsorted(cdf / cdf[-1], rng.random(n), side="right")
    v6 = rng.random(n) < ipv6_share
    pick6 = rng.integers(0, v6_pop_lo.size, n)
    src_hi = np.where(v6, v6_pop_hi[pick6], np.uint64(0))
    src_lo = np.where(v6, v6_pop_lo[pick6], v4_pop[pick] | np.uint64(V4_MAPPED))
    nets = np.array([0xC0000200, 0xC6336400, 0xCB007100], np.uint64)  # the documentation /24s
    dst4 = nets[rng.integers(0, 3, n)] + rng.integers(0, 256, n).astype(np.uint64)
    dst_hi = np.where(v6, np.uint64(0x20010DB8_0001_0000), np.uint64(0))
    dst_lo = np.where(v6, rng.integers(1, 64, n).astype(np.uint64), dst4 | np.uint64(V4_MAPPED))
    port_cdf = np.cumsum(np.arange(1, 65536, dtype=np.float64) ** -1.2)
    port = (np.searchsorted(port_cdf / port_cdf[-1], rng.random(n), side="right") + 1)
    hour = rng.integers(0, 24 * 30, n).astype(np.int32)
    return pa.table({
        "src_hi": src_hi, "src_lo": src_lo, "dst_hi": dst_hi, "dst_lo": dst_lo,
        "port": port.astype(np.uint16), "hour": hour,
        "ss": _text(src_hi, src_lo), "ds": _text(dst_hi, dst_lo),
        "sb": _blob(src_hi, src_lo), "db": _blob(dst_hi, dst_lo),
    })


def _text(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Text form of each address; each distinct address is formatted once."""
    v6 = hi != 0  # IPv4-mapped addresses have hi == 0; no generated IPv6 address does
    index = np.empty(hi.size, np.int32)
    u4, inv4 = np.unique(lo[~v6], return_inverse=True)
    texts = [str(ipaddress.IPv4Address(int(x) & 0xFFFF_FFFF)) for x in u4]
    u6, inv6 = np.unique(np.stack([hi[v6], lo[v6]], axis=1), axis=0, return_inverse=True)
    texts += [str(ipaddress.IPv6Address((int(h) << 64) | int(x))) for h, x in u6]
    index[~v6] = inv4.reshape(-1)
    index[v6] = u4.size + np.asarray(inv6).reshape(-1)
    return pa.DictionaryArray.from_arrays(pa.array(index), pa.array(texts, pa.string())
                                          ).cast(pa.string())


def _blob(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    raw = np.stack([hi.astype(">u8"), lo.astype(">u8")], axis=1).view(np.uint8).reshape(-1)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), hi.size,
                                                [None, pa.py_buffer(raw.tobytes())])


def load(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    con.register("rows_arrow", table)
    con.execute("""
        CREATE TABLE r AS SELECT
            port, hour,
            (src_lo & 4294967295)::UINTEGER AS s4, (dst_lo & 4294967295)::UINTEGER AS d4,
            (src_hi::UHUGEINT << 64) | src_lo::UHUGEINT AS sh,
            (dst_hi::UHUGEINT << 64) | dst_lo::UHUGEINT AS dh,
            src_hi, src_lo, dst_hi, dst_lo,
            ss, ds, sb::BLOB AS sb, db::BLOB AS db
        FROM rows_arrow
    """)
    con.unregister("rows_arrow")


def queries(rep: Representation) -> dict[str, str]:
    q = {
        "port x hour": f"SELECT port, hour, count(*), count(DISTINCT {rep.distinct_src}), "
                       f"count(DISTINCT {rep.distinct_dst}) FROM r GROUP BY port, hour",
        "per source": f"SELECT {rep.group}, count(*), count(DISTINCT port), "
                      f"count(DISTINCT {rep.distinct_dst}) FROM r GROUP BY {rep.group}",
    }
    return q


def two_step_pair_queries() -> dict[str, str]:
    """The pair without row values: distinct keys first, then counts, joined per group."""
    return {
        "port x hour": """
            WITH n AS (SELECT port, hour, count(*) AS c FROM r GROUP BY port, hour),
                 s AS (SELECT port, hour, count(*) AS c FROM
                       (SELECT DISTINCT port, hour, src_hi, src_lo FROM r) GROUP BY port, hour),
                 d AS (SELECT port, hour, count(*) AS c FROM
                       (SELECT DISTINCT port, hour, dst_hi, dst_lo FROM r) GROUP BY port, hour)
            SELECT n.port, n.hour, n.c, s.c, d.c FROM n
            JOIN s USING (port, hour) JOIN d USING (port, hour)""",
        "per source": """
            WITH n AS (SELECT src_hi, src_lo, count(*) AS c, count(DISTINCT port) AS p
                       FROM r GROUP BY src_hi, src_lo),
                 d AS (SELECT src_hi, src_lo, count(*) AS c FROM
                       (SELECT DISTINCT src_hi, src_lo, dst_hi, dst_lo FROM r)
                       GROUP BY src_hi, src_lo)
            SELECT n.src_hi, n.src_lo, n.c, n.p, d.c FROM n JOIN d USING (src_hi, src_lo)""",
    }


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Best wall time and best CPU time (all DuckDB threads, this process) of ``repeat`` runs.

    CPU time barely moves when other work shares the machine; wall time does.
    """
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu, result


def storage_bytes(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...], rows: int,
                  workdir: Path) -> int:
    path = workdir / f"repr-{abs(hash(columns))}.duckdb"
    con.execute(f"ATTACH '{path}' AS disk")
    try:
        con.execute(f"CREATE TABLE disk.t AS SELECT {', '.join(columns)} FROM r")
        con.execute("CHECKPOINT disk")
    finally:
        con.execute("DETACH disk")
    size = path.stat().st_size
    path.unlink()
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sources", type=int, default=200_000,
                        help="size of the IPv4 source population (Zipf 1.1 activity)")
    parser.add_argument("--ipv6-share", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: default)")
    parser.add_argument("--no-storage", action="store_true", help="skip the storage sizes")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    table = make_rows(args.rows, args.seed, args.sources, args.ipv6_share)
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    load(con, table)
    del table
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]  # type: ignore[index]
    print(f"# {args.rows:,} rows, seed {args.seed}, {args.sources:,} IPv4 sources, "
          f"{args.ipv6_share:.0%} IPv6, built in {time.perf_counter() - t0:.1f} s")
    print(f"# DuckDB {duckdb.__version__}, {threads} threads, Python {platform.python_version()}, "
          f"{platform.machine()} {os.cpu_count()} CPUs ({_cpu_model()}); best of {args.repeat}; "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print()
    header = (f"{'representation':<26} {'port x hour: wall s':>19} {'CPU s':>6} "
              f"{'per source: wall s':>19} {'CPU s':>6}")
    storage = not args.no_storage
    if storage:
        header += f" {'storage MB':>11}"
    print(header)
    print("-" * len(header))
    sys.stdout.flush()
    reference: dict[str, object] = {}
    workdir = Path(tempfile.mkdtemp(prefix="portradar-addr-"))
    variants: list[tuple[str, dict[str, str], tuple[str, ...]]] = [
        (rep.name, queries(rep), rep.columns) for rep in REPRESENTATIONS]
    variants.insert(3, ("UBIGINT pair, two-step", two_step_pair_queries(), ()))
    for name, qs, columns in variants:
        cells = []
        for shape, sql in qs.items():
            def run(sql: str = sql) -> list[Any]:
                return con.execute(sql).fetchall()

            wall, cpu, result = best_of(run, args.repeat)
            cells.append(f"{wall:>19.2f} {cpu:>6.2f}")
            rows = len(result)  # type: ignore[arg-type]
            if not name.startswith("uint32"):  # same groups for every exact representation
                reference.setdefault(shape, rows)
                if reference[shape] != rows:
                    print(f"!! {name} {shape}: {rows} groups, expected {reference[shape]}",
                          file=sys.stderr)
        line = f"{name:<26} {cells[0]} {cells[1]}"
        if storage:
            size = storage_bytes(con, columns, args.rows, workdir) if columns else None
            line += f" {size / 1e6:>11.1f}" if size is not None else f" {'(same)':>11}"
        print(line)
        sys.stdout.flush()
    workdir.rmdir()
    print(f"# load average {os.getloadavg()[0]:.1f} at the end (other work on the machine "
          "inflates the times)")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
