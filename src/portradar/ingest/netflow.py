"""Reader of NetFlow v1/v5/v9 and IPFIX exports captured in a pcap or pcapng file.

The container is the one users already have: ``tcpdump -i eth0 -w exports.pcap udp port
2055`` on a collector, or a capture a vendor sends with a support case.  The reader
walks the capture's frames, keeps the UDP datagrams sent to a flow collector port
(:data:`FLOW_PORTS`), and hands their payloads to
:class:`~portradar.ingest.netflow_decoder.NetflowDecoder`, the decoder the live listener
uses too.  The exporter is the datagram's IP source address (and its UDP source port
scopes the templates); each event's sensor is ``--sensor`` or that address.

It has its own small frame walker rather than the pcap reader's: it needs only
"which UDP payloads go to which port from whom", one Python step per frame, while the
records inside (tens per datagram) are decoded column-wise.

Link types: Ethernet (with 802.1Q/802.1ad tags), Linux cooked (SLL, SLL2), raw IP,
BSD null/loopback.  IP fragments are counted and skipped (exporters keep datagrams
under the path MTU; reassembly is left out).

**Sniffing.**  A capture of exports starts with the same magic as any capture, and the
pcap reader claims those; this reader therefore scores 0 and is chosen with
``--format netflow``.  Telling the two apart from the first 64 KiB would mean walking
packets in ``sniff`` and could still only tie with the pcap reader's 1.0.

**Resuming.**  v9 and IPFIX records cannot be read without the templates sent earlier
in the file, so a resumed read walks the file from the start, learning templates and
options (no events) up to where the previous run stopped.  A chunk is a safe point only
when no data set is waiting for its template.

>>> import struct
>>> v5 = bytes.fromhex(  # one flow 198.51.100.7:54321 -> 192.0.2.10:22, SYN
...     "0005000100000064" "6553f100" "00000000" "00000001" "00000000"
...     "c6336407" "c000020a" "00000000" "00010002" "00000001" "0000002c"
...     "00000032" "00000032" "d4310016" "00020600" "00000000" "18180000")
>>> udp = struct.pack("!HHHH", 50000, 2055, 8 + len(v5), 0) + v5
>>> ip = (struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0)
...       + bytes([192, 0, 2, 250, 192, 0, 2, 1]) + udp)
>>> pcap = (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
...         + struct.pack("<IIII", 1700000000, 0, len(ip), len(ip)) + ip)
>>> import io
>>> stats = ReadStats()
>>> chunks = list(NetflowReader().read(io.BytesIO(pcap), start_offset=0,
...                                    options=ReadOptions(), stats=stats))
>>> [(r["sensor"], r["proto"], r["dport"]) for c in chunks for r in c.batch.to_pylist()]
[('192.0.2.250', 6, 22)]
>>> chunks[-1].offset == len(pcap), stats.records, stats.skipped_total
(True, 1, 0)
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from portradar.events.schema import empty_batch
from portradar.ingest.netflow_decoder import NetflowDecoder
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import register_reader

#: UDP destination ports of flow collectors: 2055 (Cisco NetFlow, also nfcapd's and
#: softflowd's habit), 4739 (IANA ``ipfix``), 9995 and 9996 (common NetFlow defaults,
#: nfcapd/pmacct examples).  6343 (sFlow) is not listed: sFlow is a different format.
#: A ``flow_ports`` attribute on the read options replaces the set.
FLOW_PORTS = frozenset({2055, 4739, 9995, 9996})

NOT_FLOW_PORT = "frame is not a UDP datagram to a flow collector port"
FRAGMENT = "IP fragment of an export datagram (reassembly is not done)"
CUT = "export datagram cut short by the capture's snap length"
BAD_LINK = "frame of an unsupported link type"
BAD_CAPTURE = "corrupt capture framing"

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": "<",  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanoseconds
    b"\xa1\xb2\x3c\x4d": ">",
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_ETHER_VLAN = (0x8100, 0x88A8, 0x9100)
_IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options
#: A record larger than this is framing corruption, not a frame (256 KiB, as tcpdump's
#: maximum snap length).
MAX_FRAME = 262_144


class _Walker:
    """Finds frames in pcap or pcapng bytes: ``(end offset, link type, frame)``."""

    def __init__(self) -> None:
        self.kind: str | None = None  # "pcap" or "pcapng"
        self.endian = "<"
        self.linktype = 1
        self.interfaces: list[int] = []

    def frames(self, buf: bytes, base: int, stats: ReadStats) -> tuple[list[tuple[int, int, bytes]],
                                                                       int, bool]:
        """Frames complete in ``buf`` (which starts at file offset ``base``).

        Returns the frames, how many bytes were consumed and whether the framing is
        corrupt (the rest of the input cannot be walked).
        """
        out: list[tuple[int, int, bytes]] = []
        pos = 0
        size = len(buf)
        if self.kind is None:
            if size < 24:
                return out, 0, False
            head = buf[:4]
            if head in _PCAP_MAGIC:
                self.kind, self.endian = "pcap", _PCAP_MAGIC[head]
                self.linktype = struct.unpack_from(self.endian + "I", buf, 20)[0] & 0xFFFF
                pos = 24
            elif head == _PCAPNG_SHB:
                self.kind = "pcapng"
            else:
                stats.skip(BAD_CAPTURE, detail="not a pcap or pcapng file (use --format "
                                               "nfdump for nfcapd files)")
                return out, size, True
        if self.kind == "pcap":
            record = struct.Struct(self.endian + "IIII")
            while size - pos >= 16:
                _, _, caplen, _ = record.unpack_from(buf, pos)
                if caplen > MAX_FRAME:
                    stats.skip(BAD_CAPTURE, detail=f"record of {caplen} bytes at {base + pos}")
                    return out, size, True
                if size - pos - 16 < caplen:
                    break
                start = pos + 16
                pos = start + caplen
                out.append((base + pos, self.linktype, buf[start:pos]))
            return out, pos, False
        while size - pos >= 12:
            block_type = buf[pos:pos + 4]
            if block_type == _PCAPNG_SHB:
                self.endian = "<" if buf[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                self.interfaces = []
            block_len = struct.unpack_from(self.endian + "I", buf, pos + 4)[0]
            if block_len < 12 or block_len % 4 or block_len > MAX_FRAME + 64:
                stats.skip(BAD_CAPTURE, detail=f"pcapng block of {block_len} bytes at "
                                               f"{base + pos}")
                return out, size, True
            if size - pos < block_len:
                break
            btype = struct.unpack_from(self.endian + "I", buf, pos)[0]
            body = pos + 8
            end = pos + block_len
            if btype == 1:  # interface description
                self.interfaces.append(struct.unpack_from(self.endian + "H", buf, body)[0])
            elif btype in (6, 2):  # enhanced packet, obsolete packet
                if btype == 6:
                    iface = struct.unpack_from(self.endian + "I", buf, body)[0]
                else:
                    iface = struct.unpack_from(self.endian + "H", buf, body)[0]
                caplen = struct.unpack_from(self.endian + "I", buf, body + 12)[0]
                data = body + 20
                if data + caplen <= end - 4 and iface < len(self.interfaces):
                    out.append((base + end, self.interfaces[iface], buf[data:data + caplen]))
                else:
                    stats.skip(BAD_CAPTURE, detail=f"packet block at {base + pos}")
            elif btype == 3 and self.interfaces:  # simple packet
                orig = struct.unpack_from(self.endian + "I", buf, body)[0]
                caplen = min(orig, block_len - 16)
                out.append((base + end, self.interfaces[0], buf[body + 4:body + 4 + caplen]))
            pos = end
        return out, pos, False


def _ip_payload(linktype: int, frame: bytes) -> tuple[int, int] | None:
    """``(offset of the IP header, IP version)`` in a frame, or None if not IP."""
    if linktype == 1:  # Ethernet
        pos, ethertype = 14, int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
        while ethertype in _ETHER_VLAN and len(frame) >= pos + 4:
            ethertype = int.from_bytes(frame[pos + 2:pos + 4], "big")
            pos += 4
        version = {0x0800: 4, 0x86DD: 6}.get(ethertype)
        return (pos, version) if version else None
    if linktype in (101, 12, 14, 228, 229):  # raw IP
        return (0, frame[0] >> 4) if frame else None
    if linktype == 113:  # Linux cooked v1
        proto = int.from_bytes(frame[14:16], "big")
        version = {0x0800: 4, 0x86DD: 6}.get(proto)
        return (16, version) if version else None
    if linktype == 276:  # Linux cooked v2
        proto = int.from_bytes(frame[0:2], "big")
        version = {0x0800: 4, 0x86DD: 6}.get(proto)
        return (20, version) if version else None
    if linktype in (0, 108) and len(frame) >= 4:  # BSD null (host order) / loop (network)
        family = int.from_bytes(frame[:4], "big" if linktype == 108 else "little")
        if family not in (2, 10, 24, 28, 30):
            family = int.from_bytes(frame[:4], "little" if linktype == 108 else "big")
        if family == 2:
            return 4, 4
        if family in (10, 24, 28, 30):
            return 4, 6
        return None
    return None


def udp_datagram(linktype: int, frame: bytes, stats: ReadStats,
                 ports: frozenset[int]) -> tuple[str, int, bytes] | None:
    """Exporter address, source port and payload of a UDP datagram to a flow port."""
    found = _ip_payload(linktype, frame)
    if found is None:
        if linktype not in (0, 1, 12, 14, 101, 108, 113, 228, 229, 276):
            stats.skip(BAD_LINK, detail=f"link type {linktype}")
        else:
            stats.skip(NOT_FLOW_PORT)
        return None
    pos, version = found
    if version == 4:
        if len(frame) < pos + 20:
            stats.skip(CUT)
            return None
        ihl = (frame[pos] & 0x0F) * 4
        if frame[pos + 9] != 17:
            stats.skip(NOT_FLOW_PORT)
            return None
        if int.from_bytes(frame[pos + 6:pos + 8], "big") & 0x3FFF:
            stats.skip(FRAGMENT)
            return None
        total = int.from_bytes(frame[pos + 2:pos + 4], "big")
        src = socket.inet_ntop(socket.AF_INET, frame[pos + 12:pos + 16])
        udp = pos + ihl
        ip_end = pos + total
    elif version == 6:
        if len(frame) < pos + 40:
            stats.skip(CUT)
            return None
        nxt = frame[pos + 6]
        ip_end = pos + 40 + int.from_bytes(frame[pos + 4:pos + 6], "big")
        src = socket.inet_ntop(socket.AF_INET6, frame[pos + 8:pos + 24])
        udp = pos + 40
        while nxt in _IPV6_EXTENSIONS and len(frame) >= udp + 8:
            nxt, udp = frame[udp], udp + 8 + frame[udp + 1] * 8
        if nxt == 44:
            stats.skip(FRAGMENT)
            return None
        if nxt != 17:
            stats.skip(NOT_FLOW_PORT)
            return None
    else:
        stats.skip(NOT_FLOW_PORT)
        return None
    if len(frame) < udp + 8:
        stats.skip(CUT)
        return None
    sport, dport, length = struct.unpack_from("!HHH", frame, udp)
    if dport not in ports:
        stats.skip(NOT_FLOW_PORT, detail=f"UDP port {dport}")
        return None
    end = udp + length
    if end > len(frame) or end > ip_end or length < 8:
        stats.skip(CUT, detail=f"UDP length {length}, {len(frame) - udp} bytes captured")
        return None
    return src, sport, frame[udp + 8:end]


@register_reader
class NetflowReader:
    """NetFlow v1/v5/v9 and IPFIX export datagrams in a pcap/pcapng capture (--format netflow).

    ``keep_replies=True`` stores the reply flows that decided a probe flow's outcome as
    events too (by default they are counted, not stored: see
    :class:`~portradar.ingest.netflow_decoder.NetflowDecoder`).
    """

    name: ClassVar[str] = "netflow"
    unit: ClassVar[str] = "flows"

    def __init__(self, *, keep_replies: bool = False) -> None:
        self.keep_replies = keep_replies

    @classmethod
    def sniff(cls, head: bytes) -> float:
        """Always 0: a capture of exports is chosen with ``--format netflow`` (module doc)."""
        return 0.0

    def read(
        self,
        stream: BinaryIO,
        *,
        start_offset: int,
        options: ReadOptions,
        stats: ReadStats,
        start_line: int = 1,
    ) -> Iterator[ReadChunk]:
        ports = frozenset(getattr(options, "flow_ports", None) or FLOW_PORTS)
        decoder = NetflowDecoder(sensor=options.sensor, keep_replies=self.keep_replies)
        walker = _Walker()
        block = max(1 << 16, options.chunk_bytes)
        base = 0
        carry = b""
        tail = b""
        corrupt = False
        while not corrupt:
            data = stream.read(block)
            if not data:
                break
            buf = carry + data if carry else data
            frames, consumed, corrupt = walker.frames(buf, base, stats)
            before = stats.records
            for end, linktype, frame in frames:
                found = udp_datagram(linktype, frame, stats, ports)
                if found is not None:
                    decoder.feed(found[2], found[0], port=found[1], stats=stats,
                                 learn_only=end <= start_offset)
            tail = (tail + buf[:consumed])[-256:]
            base += consumed
            carry = buf[consumed:]
            batch = decoder.take(stats)
            stats.events += batch.num_rows
            safe = decoder.pending_sets == 0 and base > start_offset
            if batch.num_rows or safe:
                yield ReadChunk(batch=batch, offset=base if safe else None,
                                records=stats.records - before, tail=tail if safe else None)
        if carry and not corrupt:
            stats.skip(BAD_CAPTURE, detail=f"{len(carry)} bytes of a cut last record")
        decoder.finish(stats)
        end = base + len(carry)
        if end > start_offset:
            yield ReadChunk(batch=empty_batch(), offset=end, records=0,
                            tail=(tail + carry)[-256:])
