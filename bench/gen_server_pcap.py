"""Generate a capture of a busy server: real conversations, not scans (fixed seed).

Usage (from the repository root)::

    python bench/gen_server_pcap.py --conversations 110000 -o bench/data/server-110000.pcap
    python bench/ingest_bench.py --pcap bench/data/server-110000.pcap

Each conversation is an HTTPS connection from a client in 10.2.0.0/16 (ephemeral port
32768-60767) to one of ten servers 10.1.0.1-10 on 443: the handshake, a 200-byte request,
8 data segments of 100 bytes from the server with the client's ACKs, and both FINs.  One
conversation in four also sends a DNS query to 10.1.0.53, answered three times.
110,000 conversations give about 2.2 million packets (Ethernet, classic pcap, microsecond
times, written in time order).

What it is for: on such a capture only the clients' first packets of each conversation
probe anything; the servers' side is return traffic (``docs/pcap-reader.md``), so the
per-port activity should show ports 443 and 53 and none of the clients' ephemeral ports.
The scan benchmark's capture (``pcap_candidates.py``) has almost no conversations.
"""

from __future__ import annotations

import argparse
import random
import struct
from pathlib import Path

SYN, SYN_ACK, ACK, PSH_ACK, FIN_ACK = 0x02, 0x12, 0x10, 0x18, 0x11
_ETHERNET = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00"


def frame(src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    """An Ethernet frame of an IPv4 packet (checksums left 0: no reader checks them)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0, src,
                     dst)
    return _ETHERNET + ip + l4


def tcp(sport: int, dport: int, flags: int, payload: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 0x50, flags, 1024, 0, 0) + \
        b"x" * payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def packets(conversations: int, seed: int) -> list[tuple[int, bytes]]:
    """(time in µs, frame) of every packet, in time order."""
    rnd = random.Random(seed)
    out: list[tuple[int, bytes]] = []
    resolver = bytes((10, 1, 0, 53))
    for j in range(conversations):
        client = bytes((10, 2, rnd.randrange(256), rnd.randrange(1, 255)))
        server = bytes((10, 1, 0, 1 + j % 10))
        cport, sport = 32768 + (j * 7) % 28000, 443
        t = 1_700_000_000_000_000 + j * 100
        up = (client, server, cport, sport)
        down = (server, client, sport, cport)
        steps = [(*up, SYN, 0), (*down, SYN_ACK, 0), (*up, ACK, 0), (*up, PSH_ACK, 200)]
        for k in range(8):
            steps.append((*down, PSH_ACK, 100))
            if k % 2:
                steps.append((*up, ACK, 0))
        steps += [(*down, FIN_ACK, 0), (*up, FIN_ACK, 0), (*down, ACK, 0)]
        for i, (a, b, p, q, flags, size) in enumerate(steps):
            out.append((t + i * 1000, frame(a, b, 6, tcp(p, q, flags, size))))
        if j % 4 == 0:  # a DNS query answered three times
            out.append((t + 50, frame(client, resolver, 17, udp(cport + 1, 53, b"abcd"))))
            for r in range(3):
                out.append((t + 300 + r * 10,
                            frame(resolver, client, 17, udp(53, cport + 1, b"efgh"))))
    out.sort(key=lambda rec: rec[0])
    return out


def write_pcap(path: Path, records: list[tuple[int, bytes]]) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, data in records:
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(data),
                                len(data)) + data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--conversations", type=int, default=110_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    records = packets(args.conversations, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_pcap(args.output, records)
    print(f"wrote {len(records):,} packets of {args.conversations:,} conversations to "
          f"{args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
