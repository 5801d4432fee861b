"""From sightings to probe events: Arrow batches for the store, or iptables LOG lines.

Each sighting (a scanner seen by a sensor on a port and day, with a number of probes)
becomes that many events, vectorised: times inside the scanner's hours of that day
(with a mild day/night rhythm, 15 %), a TCP SYN or a UDP datagram to a random address
of the sensor's block, from the scanner's address.

Addresses: sensors own blocks of the documentation ranges (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24; RFC 5737), so nothing simulated names a real network;
a scanner's address is a fixed hash of its identity and the seed onto public-looking
IPv4 space (first octets outside private, loopback, multicast and documentation
ranges).  Lines are in the ISO-8601 syslog framing the iptables reader reads without
``--year`` or ``--tz``::

    2025-01-06T00:00:07.120000Z sensor-01 kernel: [UFW BLOCK] IN=eth0 OUT= SRC=... DST=...

>>> import numpy as np
>>> from portradar.sim.sightings import Sightings
>>> s = Sightings.from_arrays(scanner=[7], row=[445], day=[0], sensor=[0], records=[3])
>>> batches = list(event_batches(s, sensors=("fw",), start_us=0, seed=1))
>>> b = batches[0]
>>> b.num_rows, b.column("dport").to_pylist(), len(set(b.column("src_lo").to_pylist()))
(3, [445, 445, 445], 1)
>>> line = iptables_lines(b)[0].as_py()
>>> " fw kernel: [UFW BLOCK] IN=eth0 OUT= SRC=" in line and "PROTO=TCP" in line
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.events.schema import Outcome, make_batch
from portradar.sim.sightings import PROTOS, Sightings

#: The three documentation /24s (RFC 5737) that sensors' blocks are cut from.
DOC_NETS = (0xC0000200, 0xC6336400, 0xCB007100)
#: First octets a scanner address may have: public unicast, not documentation space.
_FIRST_OCTETS = np.array([o for o in range(1, 224) if o not in (
    10, 100, 127, 169, 172, 192, 198, 203)], np.uint64)
#: Events per batch handed to the store (a day is split beyond this).
BATCH_EVENTS = 1_000_000


def block_size(n_sensors: int) -> int:
    """Addresses per sensor: 32, or fewer when more than 24 sensors share the ranges."""
    size = 32
    while size > 1 and (768 // size) < n_sensors:
        size //= 2
    return size


def sensor_base(sensor: np.ndarray, size: int) -> np.ndarray:
    per_net = 256 // size
    nets = np.asarray(DOC_NETS, np.uint64)
    return nets[sensor // per_net] + (sensor % per_net).astype(np.uint64) * np.uint64(size)


def scanner_address(scanner: np.ndarray, seed: int) -> np.ndarray:
    """IPv4 (as an integer) of each scanner identity."""
    from portradar.activity.sketch import hash_sources

    h = hash_sources(np.full(len(scanner), seed, np.uint64), scanner.astype(np.uint64))
    first = _FIRST_OCTETS[(h >> np.uint64(40)) % np.uint64(len(_FIRST_OCTETS))]
    return (first << np.uint64(24)) | (h & np.uint64(0xFFFFFF))


def event_batches(s: Sightings, *, sensors: Sequence[str], start_us: int, seed: int,
                  batch_events: int = BATCH_EVENTS) -> Iterator[pa.RecordBatch]:
    """Event batches, day by day in time order (a day split at ``batch_events``)."""
    rng = np.random.default_rng([seed, 2])
    size = block_size(len(sensors))
    order = np.argsort(s.day, kind="stable")
    days = s.day[order]
    bounds = np.flatnonzero(np.diff(days)) + 1
    for chunk in np.split(order, bounds):
        if not len(chunk):
            continue
        cum = np.cumsum(s.records[chunk])
        parts = np.searchsorted(cum, np.arange(batch_events, cum[-1], batch_events),
                                side="right")
        for piece in np.split(chunk, parts):
            if len(piece):
                yield _batch(s, piece, rng, sensors, size, start_us, seed)


def _batch(s: Sightings, idx: np.ndarray, rng: np.random.Generator,
           sensors: Sequence[str], size: int, start_us: int, seed: int) -> pa.RecordBatch:
    rec = s.records[idx]
    ev = np.repeat(idx, rec)
    n = len(ev)
    u = rng.random(n)
    u = u + 0.15 / (2 * np.pi) * np.sin(2 * np.pi * u)  # busier in the second half-day
    hour = s.hour0[ev] + np.clip(u, 0.0, 1.0) * s.hours[ev]
    ts = (start_us + s.day[ev].astype(np.int64) * 86_400_000_000
          + (np.minimum(hour, 23.9999) * 3_600_000_000).astype(np.int64))
    order = np.argsort(ts, kind="stable")
    ev, ts = ev[order], ts[order]
    row = s.row[ev]
    proto = np.asarray(PROTOS, np.uint8)[row // 65536]
    sensor = s.sensor[ev]
    src = scanner_address(s.scanner[ev], seed)
    dst = sensor_base(sensor, size) + rng.integers(0, size, n).astype(np.uint64)
    tcp = proto == 6
    mapped = np.uint64(0xFFFF_0000_0000)
    names = pa.array(list(sensors), pa.string())
    return make_batch({
        "ts": ts,
        "sensor": pa.DictionaryArray.from_arrays(pa.array(sensor.astype(np.int32)), names),
        "src_lo": mapped | src, "dst_lo": mapped | dst,
        "proto": proto, "sport": rng.integers(1024, 65536, n).astype(np.uint16),
        "dport": (row % 65536).astype(np.uint16),
        "tcp_flags": pa.array(np.where(tcp, 2, 0).astype(np.uint8), mask=~tcp),
        "outcome": int(Outcome.BLOCKED), "rule": "[UFW BLOCK]", "in_iface": "eth0",
        "packets": 1, "bytes": np.where(tcp, 44, 60).astype(np.uint64),
        "ttl": rng.integers(40, 250, n).astype(np.uint8),
        "ip_id": rng.integers(0, 65536, n).astype(np.uint16),
        "tcp_window": pa.array(np.full(n, 1024, np.uint16), mask=~tcp),
        "format": "simulated",
    }, n=n)


def _ipv4_text(lo: pa.Array) -> pa.Array:
    v = np.asarray(lo.to_numpy(zero_copy_only=False), np.uint64) & np.uint64(0xFFFFFFFF)
    octets = [pc.cast(pa.array((v >> np.uint64(k)) & np.uint64(255)), pa.string())
              for k in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*octets, ".")


def iptables_lines(batch: pa.RecordBatch, end: str = "") -> pa.Array:
    """Netfilter LOG lines (ISO syslog framing) of an event batch, in its row order."""
    ts = pc.strftime(batch.column("ts"), format="%Y-%m-%dT%H:%M:%S")
    sensor = pc.cast(batch.column("sensor"), pa.string())
    proto = batch.column("proto").to_numpy(zero_copy_only=False)
    tcp = proto == 6
    name = pa.array(np.where(tcp, "TCP", "UDP"))
    length = pc.cast(batch.column("bytes"), pa.string())
    tail = pa.array(np.where(tcp, " WINDOW=1024 RES=0x00 SYN URGP=0", " LEN=40"))
    s = pc.cast
    parts = [ts, "Z ", sensor, " kernel: [UFW BLOCK] IN=eth0 OUT= SRC=",
             _ipv4_text(batch.column("src_lo")), " DST=", _ipv4_text(batch.column("dst_lo")),
             " LEN=", length, " TOS=0x00 PREC=0x00 TTL=", s(batch.column("ttl"), pa.string()),
             " ID=", s(batch.column("ip_id"), pa.string()), " PROTO=", name,
             " SPT=", s(batch.column("sport"), pa.string()),
             " DPT=", s(batch.column("dport"), pa.string()), tail, end]
    n = batch.num_rows
    arrays = [pa.array([p] * n, pa.string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def iptables_bytes(batch: pa.RecordBatch) -> bytes:
    """The lines of a batch, each ending in a newline, as one block of bytes."""
    lines = iptables_lines(batch, "\n")
    if len(lines) == 0:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1, lines.offset * 4)
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]
