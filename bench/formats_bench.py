"""Throughput of the Zeek, Suricata, pf, Windows firewall, DShield and generic readers.

For each format this generates ``--lines`` lines from a fixed seed (random public-looking
sources probing documentation-space targets on Zipf-like ports, with the mix a sensor
sees: mostly unanswered or blocked probes, some established connections), then times

* **reader**: the registered reader's full ``read`` (chunking, parsing, time and address
  resolution, outcome, Arrow event batch), best of ``--repeat`` runs;
* **python split**: the line-by-line baseline a user would write: ``str.split`` (TSV,
  CSV, space-separated), one compiled ``re`` match plus ``split`` (filterlog) or
  ``json.loads`` (JSON lines) per line, and a tuple of the fields the event needs, with
  ports and counts as ``int`` (no address parsing, no time zones, no batch), best of
  ``--repeat`` runs;
* **python +ip+time**: the same plus what a reader cannot skip: ``ipaddress`` objects for
  both addresses and a ``datetime`` for the time (with the zone where the format needs
  one), still without a batch.

Prints lines/s for all three and the reader's ratio to each.  Numbers on the 2-core
reference machine are in ``docs/formats.md``.

Usage::

    python bench/formats_bench.py --lines 300000 --seed 7
    python bench/formats_bench.py --only zeek_tsv pf_filterlog
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from portradar.ingest.generic_table import GenericTableReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader

BERLIN = ZoneInfo("Europe/Berlin")
PORTS = np.array([445, 23, 22, 3389, 80, 443, 8080, 1433, 5900, 25, 53, 161, 6379, 9200])
ZEEK_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
               "resp_pkts", "resp_ip_bytes", "tunnel_parents"]


class Traffic:
    """Seeded random fields for ``n`` probes, as Python lists."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        octets = rng.integers(1, 224, size=(n, 4))
        self.src = [f"{a}.{b}.{c}.{d}" for a, b, c, d in octets]
        self.dst = [f"192.0.2.{x}" for x in rng.integers(1, 255, n)]
        zipf = np.minimum(rng.zipf(1.6, n) - 1, len(PORTS) * 4)
        ports = np.where(zipf < len(PORTS), PORTS[np.minimum(zipf, len(PORTS) - 1)],
                         rng.integers(1, 65536, n))
        self.dport = ports.tolist()
        self.sport = rng.integers(1024, 65536, n).tolist()
        self.kind = rng.choice(3, size=n, p=[0.85, 0.1, 0.05]).tolist()  # probe/ok/udp
        self.sec = np.sort(rng.integers(0, 86400, n)).tolist()
        self.us = rng.integers(0, 1_000_000, n).tolist()
        self.n = n

    def clock(self, i: int) -> str:
        s = self.sec[i]
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    def epoch(self, i: int) -> str:
        return f"{1_700_000_000 + self.sec[i]}.{self.us[i]:06d}"


def gen_zeek_tsv(t: Traffic) -> str:
    head = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            "#path\tconn\n#fields\t" + "\t".join(ZEEK_FIELDS) + "\n")
    lines = []
    for i in range(t.n):
        state, hist, proto = (("S0", "S", "tcp"), ("SF", "ShADadfF", "tcp"),
                              ("S0", "D", "udp"))[t.kind[i]]
        lines.append(f"{t.epoch(i)}\tC{i:x}\t{t.src[i]}\t{t.sport[i]}\t{t.dst[i]}\t"
                     f"{t.dport[i]}\t{proto}\t-\t-\t-\t-\t{state}\tF\tT\t0\t{hist}\t1\t44\t0\t0\t-")
    return head + "\n".join(lines) + "\n"


def gen_zeek_json(t: Traffic) -> str:
    return "".join(json.dumps({
        "ts": float(t.epoch(i)), "uid": f"C{i:x}", "id.orig_h": t.src[i],
        "id.orig_p": t.sport[i], "id.resp_h": t.dst[i], "id.resp_p": t.dport[i],
        "proto": "udp" if t.kind[i] == 2 else "tcp",
        "conn_state": "SF" if t.kind[i] == 1 else "S0", "history": "S", "orig_pkts": 1,
        "orig_ip_bytes": 44}) + "\n" for i in range(t.n))


def gen_suricata(t: Traffic) -> str:
    return "".join(json.dumps({
        "timestamp": f"2024-01-01T{t.clock(i)}.{t.us[i]:06d}+0000", "flow_id": i,
        "in_iface": "eth0", "event_type": "flow", "src_ip": t.src[i], "src_port": t.sport[i],
        "dest_ip": t.dst[i], "dest_port": t.dport[i], "proto": "TCP",
        "flow": {"pkts_toserver": 1, "pkts_toclient": int(t.kind[i] == 1),
                 "bytes_toserver": 60, "bytes_toclient": 0,
                 "start": f"2024-01-01T{t.clock(i)}.{t.us[i]:06d}+0000",
                 "end": f"2024-01-01T{t.clock(i)}.{t.us[i]:06d}+0000", "age": 0,
                 "state": "new", "reason": "timeout", "alerted": False},
        "tcp": {"tcp_flags": "02", "tcp_flags_ts": "02", "tcp_flags_tc": "00", "syn": True,
                "state": "syn_sent"}}) + "\n" for i in range(t.n))


def gen_pf_filterlog(t: Traffic) -> str:
    return "".join(
        f"Sep 28 {t.clock(i)} pfSense filterlog: 53,,,1000102631,em0,match,"
        f"{'pass' if t.kind[i] == 1 else 'block'},in,4,0x0,,64,600,0,none,6,tcp,44,"
        f"{t.src[i]},{t.dst[i]},{t.sport[i]},{t.dport[i]},0,S,31552001,,65535,,mss\n"
        for i in range(t.n))


def gen_windows(t: Traffic) -> str:
    head = ("#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n"
            "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags "
            "tcpsyn tcpack tcpwin icmptype icmpcode info path\n\n")
    return head + "".join(
        f"2024-01-15 {t.clock(i)} {'ALLOW' if t.kind[i] == 1 else 'DROP'} TCP {t.src[i]} "
        f"{t.dst[i]} {t.sport[i]} {t.dport[i]} 52 S 3841223591 0 64240 - - - RECEIVE\n"
        for i in range(t.n))


def gen_dshield(t: Traffic) -> str:
    return "".join(
        f"2024-01-15 {t.clock(i)} +00:00\t12345\t1\t{t.src[i]}\t{t.sport[i]}\t{t.dst[i]}\t"
        f"{t.dport[i]}\tTCP\tS\n" for i in range(t.n))


def gen_generic(t: Traffic) -> str:
    return "ts,src,dst,proto,sport,dport,outcome\n" + "".join(
        f"{t.epoch(i)},{t.src[i]},{t.dst[i]},tcp,{t.sport[i]},{t.dport[i]},"
        f"{'accepted' if t.kind[i] == 1 else 'blocked'}\n" for i in range(t.n))


Record = tuple  # (time text or number, source text, destination text, ...)


def base_zeek_tsv(lines: list[str]) -> list[Record]:
    out = []
    fields: list[str] = []
    for line in lines:
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line[0] == "#":
            continue
        rec = dict(zip(fields, line.split("\t"), strict=False))
        out.append((float(rec["ts"]), rec["id.orig_h"], rec["id.resp_h"],
                    int(rec["id.orig_p"]), int(rec["id.resp_p"]), rec["proto"],
                    rec["conn_state"]))
    return out


def base_json(keys: tuple[str, ...]) -> Callable[[list[str]], list[Record]]:
    def run(lines: list[str]) -> list[Record]:
        out = []
        for line in lines:
            rec = json.loads(line)
            out.append(tuple(rec.get(k) for k in keys))
        return out
    return run


_SYSLOG = re.compile(r"^(\w{3} +\d+ [\d:]+) (\S+) filterlog(?:\[\d+\])?: (.*)$")


def base_filterlog(lines: list[str]) -> list[Record]:
    out = []
    for line in lines:
        m = _SYSLOG.match(line)
        if not m:
            continue
        f = m[3].split(",")
        out.append((m[1], f[18], f[19], m[2], f[6], f[7], int(f[20]), int(f[21]), f[23]))
    return out


def base_windows(lines: list[str]) -> list[Record]:
    out = []
    for line in lines:
        if not line or line[0] == "#":
            continue
        f = line.split(" ")
        out.append((f[0] + " " + f[1], f[4], f[5], f[2], f[3], int(f[6]), int(f[7]), f[9]))
    return out


def base_dshield(lines: list[str]) -> list[Record]:
    out = []
    for line in lines:
        f = line.split("\t")
        out.append((f[0], f[3], f[5], int(f[2]), int(f[4]), int(f[6]), f[7], f[8]))
    return out


def base_csv(lines: list[str]) -> list[Record]:
    import csv

    reader = csv.reader(lines)
    header = next(reader)
    out = []
    for row in reader:
        rec = dict(zip(header, row, strict=False))
        out.append((float(rec["ts"]), rec["src"], rec["dst"], int(rec["dport"]),
                    rec["outcome"]))
    return out


def epoch_time(value: object) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]


def iso_time(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


def syslog_time(value: object) -> datetime:
    return datetime.strptime(f"2024 {value}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)


def local_time(value: object) -> datetime:
    return datetime.fromisoformat(str(value)).replace(tzinfo=BERLIN).astimezone(UTC)


def converted(baseline: Callable[[list[str]], list[Record]], when: Callable[[object], datetime]
              ) -> Callable[[list[str]], list[Record]]:
    """The baseline plus what a reader must also do: addresses and times as values."""
    def run(lines: list[str]) -> list[Record]:
        return [(when(r[0]), ipaddress.ip_address(r[1]), ipaddress.ip_address(r[2]), *r[3:])
                for r in baseline(lines)]
    return run


CASES: dict[str, tuple[Callable[[Traffic], str], Callable[[], object], ReadOptions,
                       Callable[[list[str]], list[Record]], Callable[[object], datetime]]] = {
    "zeek_tsv": (gen_zeek_tsv, lambda: get_reader("zeek_conn")(), ReadOptions(),
                 base_zeek_tsv, epoch_time),
    "zeek_json": (gen_zeek_json, lambda: get_reader("zeek_conn")(), ReadOptions(),
                  base_json(("ts", "id.orig_h", "id.resp_h", "id.orig_p", "id.resp_p",
                             "proto", "conn_state")), epoch_time),
    "suricata_eve": (gen_suricata, lambda: get_reader("suricata_eve")(), ReadOptions(),
                     base_json(("timestamp", "src_ip", "dest_ip", "event_type", "src_port",
                                "dest_port", "proto", "flow")), iso_time),
    "pf_filterlog": (gen_pf_filterlog, lambda: get_reader("pf_filterlog")(),
                     ReadOptions(tz="UTC", year=2024), base_filterlog, syslog_time),
    "windows_firewall": (gen_windows, lambda: get_reader("windows_firewall")(),
                         ReadOptions(tz="Europe/Berlin"), base_windows, local_time),
    "dshield": (gen_dshield, lambda: get_reader("dshield")(), ReadOptions(), base_dshield,
                iso_time),
    "generic_csv": (gen_generic, lambda: GenericTableReader(), ReadOptions(tz="UTC"),
                    base_csv, epoch_time),
}


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times = []
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(CASES))
    args = parser.parse_args()
    traffic = Traffic(args.lines, args.seed)
    print(f"{'format':18s} {'reader lines/s':>15s} {'python split':>13s} {'ratio':>6s} "
          f"{'python +ip+time':>16s} {'ratio':>6s}")
    for name in args.only or CASES:
        gen, make, options, baseline, when = CASES[name]
        text = gen(traffic)
        data = text.encode()
        lines = text.splitlines()
        make_reader = make  # a fresh reader per run: header state starts empty

        def run_reader(make_reader: Callable[[], object] = make_reader,
                       options: ReadOptions = options, data: bytes = data) -> int:
            stats = ReadStats()
            reader = make_reader()
            for _chunk in reader.read(io.BytesIO(data), start_offset=0,  # type: ignore[attr-defined]
                                      options=options, stats=stats):
                pass
            assert stats.skipped_total == 0, stats.skipped
            return stats.events

        run_reader()  # compile the numba kernels outside the timing
        secs, events = best(run_reader, args.repeat)
        base_secs, base_count = best(
            lambda lines=lines, baseline=baseline: len(baseline(lines)), args.repeat)
        full = converted(baseline, when)
        full_secs, full_count = best(lambda lines=lines, full=full: len(full(lines)),
                                     args.repeat)
        assert events == base_count == full_count == args.lines, (events, base_count)
        rate, base_rate, full_rate = events / secs, base_count / base_secs, full_count / full_secs
        print(f"{name:18s} {rate:15,.0f} {base_rate:13,.0f} {rate / base_rate:5.1f}x "
              f"{full_rate:16,.0f} {rate / full_rate:5.1f}x")


if __name__ == "__main__":
    main()
