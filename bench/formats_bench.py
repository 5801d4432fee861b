"""Throughput of the Zeek, Suricata, pf, Windows firewall, DShield and generic readers.

For each format this generates ``--lines`` lines from a fixed seed (random public-looking
sources probing documentation-space targets on Zipf-like ports, with the mix a sensor
sees: mostly unanswered or blocked probes, some established connections), then times

* **reader**: the registered reader's full ``read`` (chunking, parsing, time and address
  resolution, outcome, Arrow event batch), best of ``--repeat`` runs;
* **python**: the line-by-line baseline a user would write: ``str.split`` (TSV, CSV,
  space-separated), one compiled ``re`` match plus ``split`` (filterlog) or
  ``json.loads`` (JSON lines) per line, and a dict of the fields the event needs, with
  ports and counts as ``int`` (no address parsing, no time zones, no batch), best of
  ``--repeat`` runs.

Prints lines/s for both and the ratio.  The baseline does strictly less work than the
reader, so the ratio understates the gain.  Numbers on the 2-core reference machine
are in ``docs/formats.md``.

Usage::

    python bench/formats_bench.py --lines 300000 --seed 7
    python bench/formats_bench.py --only zeek_tsv pf_filterlog
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time
from collections.abc import Callable

import numpy as np

from portradar.ingest.generic_table import GenericTableReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader

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


def base_zeek_tsv(lines: list[str]) -> int:
    n = 0
    fields: list[str] = []
    for line in lines:
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line[0] == "#":
            continue
        rec = dict(zip(fields, line.split("\t"), strict=False))
        _ = (float(rec["ts"]), rec["id.orig_h"], int(rec["id.orig_p"]), rec["id.resp_h"],
             int(rec["id.resp_p"]), rec["proto"], rec["conn_state"])
        n += 1
    return n


def base_json(keys: tuple[str, ...]) -> Callable[[list[str]], int]:
    def run(lines: list[str]) -> int:
        n = 0
        for line in lines:
            rec = json.loads(line)
            _ = tuple(rec.get(k) for k in keys)
            n += 1
        return n
    return run


_SYSLOG = re.compile(r"^(\w{3} +\d+ [\d:]+) (\S+) filterlog(?:\[\d+\])?: (.*)$")


def base_filterlog(lines: list[str]) -> int:
    n = 0
    for line in lines:
        m = _SYSLOG.match(line)
        if not m:
            continue
        f = m[3].split(",")
        _ = (m[1], m[2], f[6], f[7], f[18], f[19], int(f[20]), int(f[21]), f[23])
        n += 1
    return n


def base_windows(lines: list[str]) -> int:
    n = 0
    for line in lines:
        if not line or line[0] == "#":
            continue
        f = line.split(" ")
        _ = (f[0] + " " + f[1], f[2], f[3], f[4], f[5], int(f[6]), int(f[7]), f[9])
        n += 1
    return n


def base_dshield(lines: list[str]) -> int:
    n = 0
    for line in lines:
        f = line.split("\t")
        _ = (f[0], int(f[2]), f[3], int(f[4]), f[5], int(f[6]), f[7], f[8])
        n += 1
    return n


def base_csv(lines: list[str]) -> int:
    import csv

    reader = csv.reader(lines)
    header = next(reader)
    n = 0
    for row in reader:
        rec = dict(zip(header, row, strict=False))
        _ = (float(rec["ts"]), rec["src"], rec["dst"], int(rec["dport"]), rec["outcome"])
        n += 1
    return n


CASES: dict[str, tuple[Callable[[Traffic], str], Callable[[], object], ReadOptions,
                       Callable[[list[str]], int]]] = {
    "zeek_tsv": (gen_zeek_tsv, lambda: get_reader("zeek_conn")(), ReadOptions(),
                 base_zeek_tsv),
    "zeek_json": (gen_zeek_json, lambda: get_reader("zeek_conn")(), ReadOptions(),
                  base_json(("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
                             "proto", "conn_state"))),
    "suricata_eve": (gen_suricata, lambda: get_reader("suricata_eve")(), ReadOptions(),
                     base_json(("timestamp", "event_type", "src_ip", "src_port", "dest_ip",
                                "dest_port", "proto", "flow"))),
    "pf_filterlog": (gen_pf_filterlog, lambda: get_reader("pf_filterlog")(),
                     ReadOptions(tz="UTC", year=2024), base_filterlog),
    "windows_firewall": (gen_windows, lambda: get_reader("windows_firewall")(),
                         ReadOptions(tz="Europe/Berlin"), base_windows),
    "dshield": (gen_dshield, lambda: get_reader("dshield")(), ReadOptions(), base_dshield),
    "generic_csv": (gen_generic, lambda: GenericTableReader(), ReadOptions(tz="UTC"),
                    base_csv),
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
    print(f"{'format':18s} {'reader lines/s':>15s} {'python lines/s':>15s} {'ratio':>7s}")
    for name in args.only or CASES:
        gen, make, options, baseline = CASES[name]
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
        base_secs, base_count = best(lambda lines=lines, baseline=baseline: baseline(lines),
                                     args.repeat)
        assert events == base_count == args.lines, (events, base_count)
        rate, base_rate = events / secs, base_count / base_secs
        print(f"{name:18s} {rate:15,.0f} {base_rate:15,.0f} {rate / base_rate:6.1f}x")


if __name__ == "__main__":
    main()
