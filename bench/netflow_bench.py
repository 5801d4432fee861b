"""Flow records per second decoding NetFlow v5, v9 and IPFIX: portradar vs ``netflow``.

Generates seeded export packets (30 records per v5 packet; v9 and IPFIX data sets of
28 records with a template every 20 packets, as softflowd and Cisco IOS re-send them),
decodes them with :class:`portradar.ingest.netflow_decoder.NetflowDecoder` (one
:meth:`~NetflowDecoder.take` per 1,000 packets, as the file reader does per block) and
with the ``netflow`` package's ``parse_packet`` (pip install netflow; the reference
decoder of the ground-truth packets), and prints both side by side.  portradar's figure
includes building the Arrow event batch; ``netflow``'s is the per-flow Python objects it
returns.  ``parse_packet`` is given ``bytearray`` packets: with ``bytes`` it first tries
to read them as a hex string.

    python bench/netflow_bench.py [--packets 20000] [--seed 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from collections.abc import Callable

import numpy as np

from portradar.ingest.netflow_decoder import NetflowDecoder
from portradar.ingest.reader import ReadStats

RECORDS_V5 = 30
RECORDS_TEMPLATED = 28
TEMPLATE_EVERY = 20
TAKE_EVERY = 1000
#: The baseline decodes this many packets at most (it is ~100× slower).
BASELINE_PACKETS = 3000

# softflowd's v9 template: src, dst, last, first, bytes, packets, in, out, ports, proto,
# flags, ip version, tos
V9_FIELDS = [(8, 4), (12, 4), (21, 4), (22, 4), (1, 4), (2, 4), (10, 4), (14, 4), (7, 2),
             (11, 2), (4, 1), (6, 1), (60, 1), (5, 1)]
# IPFIX with absolute milliseconds and 8-byte counters (softflowd -v 10 -A milli)
IPFIX_FIELDS = [(8, 4), (12, 4), (152, 8), (153, 8), (1, 8), (2, 8), (7, 2), (11, 2), (4, 1),
                (6, 2)]
IPFIX_VAR_FIELDS = [*IPFIX_FIELDS, (96, 65535)]  # + applicationName, variable length


def _values(rng: np.random.Generator, n: int, ie: int, length: int, now_ms: int) -> np.ndarray:
    if ie in (8, 12):
        return rng.integers(0x0A000000, 0x0AFFFFFF, n)
    if ie in (7, 11):
        return rng.integers(1, 65535, n)
    if ie == 4:
        return rng.choice([6, 6, 6, 17, 1], n)
    if ie == 6:
        return rng.choice([0x02, 0x12, 0x1B, 0x14, 0x10], n)
    if ie in (152, 153):
        return now_ms - rng.integers(0, 60_000, n)
    if ie in (21, 22):
        return rng.integers(50_000, 100_000, n)
    if ie in (10, 14):  # SNMP ifIndex: a router has a handful of interfaces
        return rng.integers(1, 9, n)
    return rng.integers(1, 1 << min(8 * length - 1, 31), n)


def _records(rng: np.random.Generator, n: int, fields: list[tuple[int, int]],
             now_ms: int) -> bytes:
    fixed = [(ie, ln) for ie, ln in fields if ln != 65535]
    dtype = np.dtype({"names": [f"f{i}" for i in range(len(fixed))],
                      "formats": [">u1" if ln == 1 else f">u{ln}" for _, ln in fixed]})
    rec = np.zeros(n, dtype)
    for i, (ie, ln) in enumerate(fixed):
        rec[f"f{i}"] = _values(rng, n, ie, ln, now_ms)
    if len(fixed) == len(fields):
        return rec.tobytes()
    out = bytearray()
    for row in rec:  # generator only: a variable-length field per record
        name = bytes(rng.integers(97, 123, int(rng.integers(3, 13))).astype(np.uint8))
        out += row.tobytes() + bytes([len(name)]) + name
    return bytes(out)


def v5_packets(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    dtype = np.dtype([("src", ">u4"), ("dst", ">u4"), ("hop", ">u4"), ("in", ">u2"),
                      ("out", ">u2"), ("pkts", ">u4"), ("octets", ">u4"), ("first", ">u4"),
                      ("last", ">u4"), ("sport", ">u2"), ("dport", ">u2"), ("pad", "u1"),
                      ("flags", "u1"), ("proto", "u1"), ("tos", "u1"), ("tail", "V8")])
    packets = []
    for i in range(n):
        rec = np.zeros(RECORDS_V5, dtype)
        rec["src"] = rng.integers(0x0A000000, 0x0AFFFFFF, RECORDS_V5)
        rec["dst"] = rng.integers(0x0A000000, 0x0AFFFFFF, RECORDS_V5)
        rec["pkts"] = rng.integers(1, 100, RECORDS_V5)
        rec["octets"] = rec["pkts"] * 60
        rec["first"] = rng.integers(50_000, 100_000, RECORDS_V5)
        rec["last"] = rec["first"]
        rec["sport"] = rng.integers(1024, 65535, RECORDS_V5)
        rec["dport"] = rng.integers(1, 1024, RECORDS_V5)
        rec["flags"] = rng.choice([0x02, 0x12, 0x1B, 0x14], RECORDS_V5)
        rec["proto"] = rng.choice([6, 6, 17], RECORDS_V5)
        header = struct.pack("!HHIIIIBBH", 5, RECORDS_V5, 100_000, 1_700_000_000 + i, 0,
                             i * RECORDS_V5, 0, 0, 0)
        packets.append(header + rec.tobytes())
    return packets


def templated_packets(n: int, seed: int, version: int,
                      fields: list[tuple[int, int]]) -> list[bytes]:
    rng = np.random.default_rng(seed)
    template_id = 256
    template = struct.pack("!HH", template_id, len(fields)) + b"".join(
        struct.pack("!HH", ie, ln) for ie, ln in fields)
    template_set = struct.pack("!HH", 0 if version == 9 else 2, 4 + len(template)) + template
    packets = []
    for i in range(n):
        body = _records(rng, RECORDS_TEMPLATED, fields, 1_700_000_000_000 + i)
        body += b"\x00" * (-len(body) % 4)
        data = struct.pack("!HH", template_id, 4 + len(body)) + body
        sets = (template_set if i % TEMPLATE_EVERY == 0 else b"") + data
        if version == 9:
            count = RECORDS_TEMPLATED + (1 if i % TEMPLATE_EVERY == 0 else 0)
            header = struct.pack("!HHIIII", 9, count, 100_000, 1_700_000_000 + i, i, 0)
        else:
            header = struct.pack("!HHIII", 10, 16 + len(sets), 1_700_000_000 + i, i, 0)
        packets.append(header + sets)
    return packets


def bench_portradar(packets: list[bytes]) -> tuple[int, float]:
    decoder = NetflowDecoder()
    stats = ReadStats()
    rows = 0
    start = time.perf_counter()
    for i, packet in enumerate(packets, 1):
        decoder.feed(packet, "192.0.2.1", port=2055, stats=stats)
        if i % TAKE_EVERY == 0:
            rows += decoder.take(stats).num_rows
    rows += decoder.take(stats).num_rows
    seconds = time.perf_counter() - start
    assert stats.skipped_total == 0, stats.skipped
    return rows, seconds


def bench_netflow(packets: list[bytes]) -> tuple[int, float] | str:
    """Records and seconds of the baseline, or why it could not run."""
    try:
        from netflow import parse_packet
    except ImportError:
        return "not installed"
    sample = [bytearray(p) for p in packets[:BASELINE_PACKETS]]
    templates: dict = {"netflow": {}, "ipfix": {}}
    rows = 0
    start = time.perf_counter()
    try:
        for packet in sample:
            rows += len(parse_packet(packet, templates).flows)
    except Exception as exc:  # the baseline's own limits (variable-length fields)
        return f"fails: {type(exc).__name__}"
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases: list[tuple[str, Callable[[], list[bytes]]]] = [
        ("NetFlow v5", lambda: v5_packets(args.packets, args.seed)),
        ("NetFlow v9 (softflowd template)",
         lambda: templated_packets(args.packets, args.seed, 9, V9_FIELDS)),
        ("IPFIX (fixed length)",
         lambda: templated_packets(args.packets, args.seed, 10, IPFIX_FIELDS)),
        ("IPFIX (variable-length field)",
         lambda: templated_packets(args.packets, args.seed, 10, IPFIX_VAR_FIELDS)),
    ]
    results = []
    bench_portradar(v5_packets(10, 0))  # warm up: numba compile cache, imports
    bench_portradar(templated_packets(25, 0, 10, IPFIX_VAR_FIELDS))
    for name, make in cases:
        packets = make()
        rows, seconds = bench_portradar(packets)
        base = bench_netflow(packets)
        results.append({
            "format": name, "packets": len(packets), "records": rows,
            "portradar_records_per_s": rows / seconds,
            "netflow_records_per_s": base[0] / base[1] if isinstance(base, tuple) else None,
            "netflow_records": base[0] if isinstance(base, tuple) else None,
            "netflow_note": base if isinstance(base, str) else None,
        })
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'format':34} {'records':>9} {'portradar rec/s':>16} {'netflow rec/s':>14} "
          f"{'ratio':>7}")
    for r in results:
        base = r["netflow_records_per_s"]
        ratio = f"{r['portradar_records_per_s'] / base:6.0f}×" if base else "     -"
        base_text = f"{base:14,.0f}" if base else f"{r['netflow_note']:>14}"
        print(f"{r['format']:34} {r['records']:>9,} {r['portradar_records_per_s']:>16,.0f} "
              f"{base_text} {ratio:>7}")


if __name__ == "__main__":
    main()
