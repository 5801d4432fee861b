"""The ``pcap`` reader: classic pcap and pcapng packet captures to probe events.

**Containers.**  Classic pcap in both byte orders with microsecond (``a1b2c3d4``) or
nanosecond (``a1b23c4d``) timestamps; pcapng with any number of sections (each with
its own byte order) and interfaces, each interface with its own link type,
``if_tsresol`` and ``if_tsoffset``; enhanced, simple and obsolete packet blocks.  A
simple packet block has no timestamp and takes the previous packet's.  Link types
and protocols are those of :mod:`portradar.ingest.pcap_kernel`.

**Design.**  The input is read in blocks of ``options.chunk_bytes`` into one reused
buffer.  numba kernels walk the records of a block and decode every packet's headers
into columns (:mod:`~portradar.ingest.pcap_kernel`); only those columns, about 70
bytes per packet, are kept, so two million packets need about 140 MB whatever the
packets' size.  Once the whole capture is decoded, probes are paired with replies
(:mod:`~portradar.ingest.probe_outcome`) and the events are yielded in batches of
:data:`BATCH_ROWS`.  The answers that decided a probe's outcome (:data:`ANSWER_REASON`)
and the return traffic of conversations the other side started in the capture
(:data:`RETURN_REASON`: the server's data, ACKs and FIN, later UDP and echo replies), and
the starter's own later packets of an answered conversation (:data:`CONTINUES_REASON`)
are counted, never errors, and not stored: only what starts a conversation, and what the
capture cannot place in one, is an event (see :class:`PcapReader`).  Pairing needs the
whole capture, so only the last chunk carries an ``offset`` (the end of the last
complete record): a capture is committed whole.
Resuming from an offset reads the file header again (pcapng: walks the blocks before
the offset for its interface descriptions) and pairs only the new packets (conversations
started before the offset are not known: their later packets are events).

**Bad input**, decided as follows:

* skipped and counted by reason (``stats.skip``; strict mode raises
  :class:`~portradar.errors.FormatError` instead): a record cut off by the end of the
  capture (``"truncated record at end of capture"``, the packets before it are
  kept and the final offset stops before it so a capture still being written is
  resumed there), a frame whose link or IP header is cut short or impossible;
* counted by reason and never an error, not even in strict mode, because they are
  fine, just not IP: ARP, STP, LLC and other non-IP frames (``"not IP (ethertype
  0x0806)"``), and packets of a pcapng interface with a link type this reader does
  not decode;
* :class:`~portradar.errors.InputError` naming the file and byte offset, in every
  mode, when the framing is lost and nothing after the spot can be trusted: a record
  length above :data:`MAX_CAPLEN`, a pcapng block length that is too small, not a
  multiple of 4, above :data:`MAX_BLOCK_BYTES` or not repeated at the block's end, a
  bad section header; also a file that is not a capture at all, an empty one, a
  truncated file header, and a classic pcap whose link type is not decoded (no
  packet of it could ever become an event);
* a record longer than the file's snaplen (but at most :data:`MAX_CAPLEN`) is read
  like libpcap does; in strict mode it is an :class:`~portradar.errors.InputError`.

Skip messages number records from 1 like Wireshark's ``frame.number`` (the ``line`` of
:class:`~portradar.ingest.reader.ReadStats` examples is the record number).

>>> import io, struct
>>> frame = bytes.fromhex("ffffffffffff0200000000010800" "4500002c00014000400600000a0000010a000002"
...                       "d43101bb0000006400000000600204000000000002040" "5b4")
>>> capture = (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
...            + struct.pack("<IIII", 1700000000, 250, len(frame), len(frame)) + frame)
>>> stats = ReadStats(source="x.pcap")
>>> chunks = list(PcapReader().read(io.BytesIO(capture), start_offset=0,
...                                 options=ReadOptions(), stats=stats))
>>> [(c.batch.num_rows, c.offset) for c in chunks]
[(1, 98)]
>>> row = chunks[0].batch.to_pylist()[0]
>>> row["ts"].isoformat(), row["dport"], row["tcp_flags"], row["outcome"], row["format"]
('2023-11-14T22:13:20.000250+00:00', 443, 2, 'unanswered', 'pcap')
>>> PcapReader.sniff(capture[:24]), PcapReader.sniff(b"Nov 26 10:00:00 fw kernel:")
(1.0, 0.0)
"""

from __future__ import annotations

import io
import itertools
import os
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa

from portradar.errors import InputError
from portradar.events.schema import empty_batch, make_batch
from portradar.ingest import pcap_kernel as kernel
from portradar.ingest.probe_outcome import (
    CONTINUES,
    RETURN,
    Conversations,
    probe_outcomes,
    return_traffic,
)
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import register_reader

#: Largest record accepted: libpcap's ``MAXIMUM_SNAPLEN`` (262144 bytes, pcap-int.h), the
#: most any libpcap-based capture writes.  Above it a length is taken to be garbage.
MAX_CAPLEN = 262144
#: Largest pcapng block accepted: Wireshark's long-standing limit of 16 MiB
#: (wiretap/pcapng.c, raised since only for D-Bus captures, which are not IP).
MAX_BLOCK_BYTES = 16 << 20
#: Most pcapng interfaces in one section; beyond it the file is taken to be garbage.
MAX_INTERFACES = 65536
#: Rows per yielded batch: large enough that per-batch costs vanish, small enough
#: for the store to take each batch in one transaction without much memory.
BATCH_ROWS = 1 << 18
#: Smallest read block, whatever ``options.chunk_bytes`` says (a longer record grows it).
MIN_BLOCK_BYTES = 1 << 16
#: Threads that decode packets (the numba kernels release the GIL).  Two: the machine
#: the issue sets the speed target on has two cores, and decoding is the largest part
#: of a read (docs/pcap-reader.md); more threads than cores only contend.
DECODE_THREADS = 2
#: A block is split between the threads only when each gets at least this many packets:
#: below it the hand-over costs more than it saves.
MIN_PACKETS_PER_THREAD = 1 << 15
#: How the packets that answered a probe of the capture are counted (not stored: each
#: is its probe's outcome; not an error either, not even in strict mode).
ANSWER_REASON = "answer to a probe in the capture (stored as the probe's outcome)"
#: How the later packets of a conversation that the other side started in the capture are
#: counted (not stored: the server's side of a conversation is not a probe; not an error).
RETURN_REASON = "return traffic of a conversation started in the capture (not a probe)"
#: How the starter's own later packets of a conversation the capture saw answered are
#: counted (the client's ACKs and data after its SYN, the next datagrams or echo
#: requests): the conversation is one probe, its first packet, as a firewall that logs
#: new connections records it.
CONTINUES_REASON = ("later packet of a conversation the capture saw start and answered "
                    "(the conversation is one event)")
#: Bytes before the final offset handed back in ``ReadChunk.tail`` (the ledger's
#: ``TAIL_BYTES``, which it compares before resuming a grown capture).
TAIL_BYTES = 256

_PCAP_MAGICS = {  # first 4 bytes -> (big endian, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": (False, False),
    b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True),
    b"\xa1\xb2\x3c\x4d": (True, True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM_LE = b"\x4d\x3c\x2b\x1a"
_PCAPNG_BOM_BE = b"\x1a\x2b\x3c\x4d"
_MODIFIED_PCAP = (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")  # Kuznetzov's patched libpcap

_PF_DIR_IN, _PF_DIR_OUT = 1, 2


@dataclass
class _Interface:
    """One pcapng interface: link type, snaplen and how to turn its ticks into µs."""

    linktype: int
    snaplen: int
    ts_mode: int = 0  # 0: 10**-exp seconds, 1: 2**-exp seconds
    ts_mul: int = 1
    ts_div: int = 1
    ts_shift: int = 0
    ts_offset_us: int = 0


@dataclass
class _Decoded:
    """Event columns of every packet decoded so far, plus side tables.

    The columns are capture-wide arrays the decoder writes into directly; their room is
    reserved from an estimate of the capture's packet count (pages never written cost
    no memory) and doubled when it runs out.
    """

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    capacity: int = 0
    rows: int = 0
    quotes: list[dict[str, np.ndarray]] = field(default_factory=list)
    pflog: list[dict[str, np.ndarray]] = field(default_factory=list)
    pool: ThreadPoolExecutor | None = None  # decodes parts of a block side by side
    input_bytes: int | None = None  # size of the input, for the first estimate

    def reserve(self, more: int, bytes_per_record: float) -> None:
        """Make room for ``more`` rows."""
        need = self.rows + more
        if need <= self.capacity:
            return
        capacity = max(need, 2 * self.capacity)
        if self.capacity == 0 and self.input_bytes and bytes_per_record > 0:
            capacity = max(capacity, int(self.input_bytes / bytes_per_record * 1.05))
        grown = kernel.new_event_columns(capacity)
        for name, column in self.columns.items():
            grown[name][: self.rows] = column[: self.rows]
        self.columns, self.capacity = grown, capacity

    def events(self) -> dict[str, np.ndarray]:
        return {name: column[: self.rows] for name, column in self.columns.items()}


class _BlockFeeder:
    """Reads a stream into one reusable numpy buffer, keeping an unfinished tail."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.buf = np.empty(size, np.uint8)
        self.fill = 0  # valid bytes in buf
        self.base = 0  # absolute offset of buf[0]
        self.eof = False
        self.dropped_tail = b""  # the last bytes dropped from the front, for tail()
        self._readinto = getattr(stream, "readinto", None)

    def tail(self, at: int) -> bytes:
        """The :data:`TAIL_BYTES` bytes before buffer position ``at`` (fewer at the start)."""
        here = self.buf[max(0, at - TAIL_BYTES) : at].tobytes()
        if len(here) < TAIL_BYTES:
            here = (self.dropped_tail + here)[-TAIL_BYTES:]
        return here

    def skip_truncated(self, at: int, stats: ReadStats, line: int) -> int:
        """Count a record cut off at the end (if any bytes of it are there); return its offset.

        The returned offset is where a growing capture resumes.
        """
        if at < self.fill:
            stats.skip("truncated record at end of capture", line=line,
                       detail=f"byte {self.base + at}")
        return self.base + at

    def refill(self, keep_from: int, need: int = 0) -> None:
        """Drop ``buf[:keep_from]``, make room for ``need`` bytes, read until full or EOF."""
        tail = self.fill - keep_from
        if keep_from:
            self.dropped_tail = self.tail(keep_from)
        if need > self.buf.shape[0]:
            grown = np.empty(max(need, 2 * self.buf.shape[0]), np.uint8)
            grown[:tail] = self.buf[keep_from : self.fill]
            self.buf = grown
        elif keep_from:
            self.buf[:tail] = self.buf[keep_from : self.fill]
        self.base += keep_from
        self.fill = tail
        view = memoryview(self.buf)  # type: ignore[arg-type]
        while self.fill < self.buf.shape[0] and not self.eof:
            if self._readinto is not None:
                got = self._readinto(view[self.fill :])
            else:
                data = self.stream.read(self.buf.shape[0] - self.fill)
                got = len(data)
                self.buf[self.fill : self.fill + got] = np.frombuffer(data, np.uint8)
            if not got:
                self.eof = True
            else:
                self.fill += got

    def skip_to(self, offset: int) -> None:
        """Continue at absolute ``offset`` (forward only), seeking when the stream can."""
        if offset <= self.base + self.fill:
            self.refill(offset - self.base)
            return
        try:
            seekable = bool(self.stream.seekable())
        except (AttributeError, OSError, ValueError):
            seekable = False
        if seekable:
            self.stream.seek(offset)
        else:
            remaining = offset - self.base - self.fill
            while remaining > 0:
                data = self.stream.read(min(remaining, 8 << 20))
                if not data:
                    break
                remaining -= len(data)
        self.base, self.fill, self.eof = offset, 0, False
        self.dropped_tail = b""  # unknown: the pipeline checks the tail before resuming
        self.refill(0)


@register_reader
class PcapReader:
    """Reads pcap and pcapng captures (registry name ``pcap``, counted in packets).

    Options used: ``sensor`` (default ``"default"``), ``strict``, ``probe_timeout``
    (seconds, for :func:`~portradar.ingest.probe_outcome.probe_outcomes`) and
    ``chunk_bytes`` (bytes read per block).  The constructor's parameters are the
    limits documented at module level, and what is stored:

    * the packets that answered a probe of the capture (a SYN-ACK, an RST, an ICMP
      error...) are its outcome, so by default they are counted (:data:`ANSWER_REASON`)
      and not stored as events of their own, which would count the target as a source
      probing the scanner's ephemeral port (or ICMP type 3) in the per-port activity;
    * the later packets of a conversation whose start the capture saw the other side
      send (the server's data, ACKs and FIN, later UDP replies, later echo replies) are
      return traffic, counted under :data:`RETURN_REASON` and not stored either
      (:func:`~portradar.ingest.probe_outcome.return_traffic`; timeouts from
      ``conversations``, a fresh :class:`~portradar.ingest.probe_outcome.Conversations`
      per read when None; the live capture passes its own, kept across rounds);
    * so are the starter's own later packets of such a conversation once it was
      answered (the client's ACKs and data after its SYN, its next datagrams or echo
      requests): the conversation is one event, its first packet, as a firewall that
      logs new connections records it; counted under :data:`CONTINUES_REASON`;
    * ``keep_answers=True`` stores every packet, answers and return traffic included,
      with outcome ``unknown`` (one event per packet: the pairing tests use it);
      ``keep_return_traffic=True`` stores return traffic and the starters' later packets
      but not the answers (the behaviour before conversations were recognised).
    """

    name: ClassVar[str] = "pcap"
    unit: ClassVar[str] = "packets"

    def __init__(
        self,
        *,
        max_caplen: int = MAX_CAPLEN,
        max_block_bytes: int = MAX_BLOCK_BYTES,
        batch_rows: int = BATCH_ROWS,
        decode_threads: int = DECODE_THREADS,
        keep_answers: bool = False,
        keep_return_traffic: bool = False,
        conversations: Conversations | None = None,
    ) -> None:
        self.max_caplen = max_caplen
        self.max_block_bytes = max_block_bytes
        self.batch_rows = max(1, batch_rows)
        self.decode_threads = max(1, decode_threads)
        self.keep_answers = keep_answers
        self.keep_return_traffic = keep_return_traffic
        self.conversations = conversations
        #: Capture times (µs) of the answers the last read counted instead of storing
        #: (the live capture, which re-reads a window of context, counts the new ones).
        self.answer_ts = np.zeros(0, np.int64)
        #: Packets of the last read counted under RETURN_REASON and CONTINUES_REASON.
        self.folded: dict[str, int] = {}

    @classmethod
    def sniff(cls, head: bytes) -> float:
        """1.0 for a pcap or pcapng magic, 0.0 for anything else.

        >>> PcapReader.sniff(bytes.fromhex("0a0d0d0a1c0000004d3c2b1a"))
        1.0
        """
        if head[:4] in _PCAP_MAGICS:
            return 1.0
        if head[:4] == _PCAPNG_SHB and (
            len(head) < 12 or head[8:12] in (_PCAPNG_BOM_LE, _PCAPNG_BOM_BE)
        ):
            return 1.0
        return 0.0

    # ---- reading -----------------------------------------------------------------------

    def read(
        self,
        stream: BinaryIO,
        *,
        start_offset: int,
        options: ReadOptions,
        stats: ReadStats,
        start_line: int = 1,
    ) -> Iterator[ReadChunk]:
        """Yield the capture's events; only the last chunk carries the offset."""
        source = stats.source
        feeder = _BlockFeeder(stream, max(MIN_BLOCK_BYTES, options.chunk_bytes))
        try:
            feeder.refill(0)
        except OSError as exc:
            raise InputError(f"{source}: cannot read ({exc})") from exc
        if feeder.fill == 0:
            if start_offset > 0:
                yield ReadChunk(batch=empty_batch(), offset=start_offset, records=0)
                return
            raise InputError(f"{source}: empty file, no pcap or pcapng header")
        magic = feeder.buf[:4].tobytes()
        decoded = _Decoded(input_bytes=_input_size(stream))
        if self.decode_threads > 1:
            decoded.pool = ThreadPoolExecutor(self.decode_threads, "portradar-pcap")
        try:
            if magic in _PCAP_MAGICS:
                end, records = self._read_pcap(
                    feeder, magic, start_offset, options, stats, start_line, decoded
                )
            elif magic == _PCAPNG_SHB:
                end, records = self._read_pcapng(
                    feeder, start_offset, options, stats, start_line, decoded
                )
            elif magic in _MODIFIED_PCAP:
                raise InputError(
                    f"{source}: modified (Kuznetzov) pcap is not supported; "
                    "convert it with `editcap -F pcap`"
                )
            else:
                raise InputError(
                    f"{source}: not a pcap or pcapng capture (starts with "
                    f"{feeder.buf[: min(8, feeder.fill)].tobytes().hex()})"
                )
        except OSError as exc:
            raise InputError(f"{source}: cannot read ({exc})") from exc
        finally:
            if decoded.pool is not None:
                decoded.pool.shutdown()
        stats.records += records
        tail = feeder.tail(end - feeder.base)
        yield from self._events(decoded, end, tail, records, options, stats)

    def _read_pcap(
        self, feeder: _BlockFeeder, magic: bytes, start_offset: int, options: ReadOptions,
        stats: ReadStats, start_line: int, decoded: _Decoded,
    ) -> tuple[int, int]:  # fmt: skip
        """Walk a classic pcap; return (end of the last complete record, records read)."""
        source = stats.source
        big, nano = _PCAP_MAGICS[magic]
        if feeder.fill < 24:
            raise InputError(f"{source}: pcap file header truncated ({feeder.fill} of 24 bytes)")
        order = ">" if big else "<"
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack(
            order + "HHiIII", feeder.buf[4:24].tobytes()
        )
        if major != 2:
            raise InputError(f"{source}: pcap version {major} is not supported (expected 2)")
        linktype = network & 0xFFFF  # the upper bits carry FCS information
        if linktype not in kernel.SUPPORTED_LINKTYPES:
            raise InputError(
                f"{source}: link type {linktype} is not supported; supported: "
                + ", ".join(f"{k} {v}" for k, v in sorted(kernel.SUPPORTED_LINKTYPES.items()))
            )
        feeder.skip_to(max(start_offset, 24))
        pos, records = 0, 0
        records_room = _RecordArrays()
        max_caplen = self.max_caplen
        while True:
            args = (feeder.buf, pos, feeder.fill, big, nano, snaplen, max_caplen, stats.strict)
            arrays = records_room.room((feeder.fill - pos) // 16 + 1)  # at most this many
            n, status, stop, detail = kernel.walk_pcap_records(*args, True, *arrays[:4])
            if n:
                arrays = tuple(a[:n] for a in arrays)
                arrays[4][:] = linktype
                self._decode(
                    feeder.buf,
                    arrays,
                    decoded,
                    start_line + records,
                    stats,
                    feeder.base,
                    stop - pos,
                )
                records += n
            if status == kernel.WALK_NEED_MORE:
                if feeder.eof:
                    return feeder.skip_truncated(stop, stats, start_line + records), records
                feeder.refill(stop, detail)
                pos = 0
                continue
            where = f"{source}: byte {feeder.base + stop} (record {start_line + records})"
            if status == kernel.WALK_OVER_SNAPLEN:
                raise InputError(
                    f"{where}: captured length {detail} is larger than the "
                    f"file's snaplen {snaplen} (strict mode)"
                )
            raise InputError(
                f"{where}: captured length {detail} is larger than {max_caplen}; "
                "the file is corrupt or not a capture (pcapfix can repair it)"
            )

    def _read_pcapng(
        self, feeder: _BlockFeeder, start_offset: int, options: ReadOptions, stats: ReadStats,
        start_line: int, decoded: _Decoded,
    ) -> tuple[int, int]:  # fmt: skip
        """Walk a pcapng; return (end of the last complete block, records read)."""
        source = stats.source
        ifaces: list[_Interface] = []
        tables = _interface_tables(ifaces)
        big = False
        last_ts = np.zeros(1, np.int64)
        pos, records = 0, 0
        records_room = _RecordArrays()
        while True:
            args = (
                feeder.buf,
                pos,
                feeder.fill,
                big,
                len(ifaces),
                *tables,
                self.max_block_bytes,
                start_offset - feeder.base,
                last_ts,
            )
            arrays = records_room.room((feeder.fill - pos) // 16 + 1)  # at most this many
            n, status, stop, detail = kernel.walk_pcapng_blocks(*args, True, *arrays)  # type: ignore[call-arg, arg-type]
            if n:
                arrays = tuple(a[:n] for a in arrays)
                self._decode(
                    feeder.buf,
                    arrays,
                    decoded,
                    start_line + records,
                    stats,
                    feeder.base,
                    stop - pos,
                )
                records += n
            where = f"{source}: byte {feeder.base + stop}"
            if status == kernel.WALK_CONTROL:
                need = _control_length(feeder, stop, big, self.max_block_bytes, where)
                if feeder.fill - stop < need:
                    if feeder.eof:  # stop < fill here: the block's header is there
                        return feeder.skip_truncated(stop, stats, start_line + records), records
                    feeder.refill(stop, need)
                    pos = 0
                    continue
                block = feeder.buf[stop : stop + need].tobytes()
                btype, block_big = _control_block(block, big, where)
                if btype == 1:
                    if len(ifaces) >= MAX_INTERFACES:
                        raise InputError(f"{where}: more than {MAX_INTERFACES} interfaces")
                    ifaces.append(_parse_idb(block, block_big, where))
                else:  # a new section: its own byte order, no interfaces yet
                    big = block_big
                    ifaces = []
                tables = _interface_tables(ifaces)
                pos = stop + need
                continue
            if status == kernel.WALK_NEED_MORE:
                if feeder.eof:
                    return feeder.skip_truncated(stop, stats, start_line + records), records
                feeder.refill(stop, detail)
                pos = 0
                continue
            if status == kernel.WALK_BAD_TRAILER:
                raise InputError(
                    f"{where}: pcapng block's trailing length {detail} differs from "
                    "its leading length; the file is corrupt"
                )
            if status == kernel.WALK_PACKET_OVERRUN:
                raise InputError(
                    f"{where}: pcapng packet of {detail} bytes overruns its block; "
                    "the file is corrupt"
                )
            raise InputError(
                f"{where}: impossible pcapng block length {detail}; the file is "
                "corrupt or not a capture"
            )

    # ---- decoding and events -------------------------------------------------------------

    def _decode(
        self, buf: np.ndarray, arrays: tuple[np.ndarray, ...], decoded: _Decoded,
        first_record: int, stats: ReadStats, buf_offset: int, block_bytes: int,
    ) -> None:  # fmt: skip
        """Decode one block's records into the capture's columns; count the skipped ones.

        Large blocks are cut in parts decoded side by side, each into its own rows; the
        parts are collected in order, closing the gap a part's skipped frames left.
        ``buf_offset`` is where ``buf`` starts in the file, for messages.
        """
        data_off, caplen, origlen, ts_us, linktype = arrays
        n = data_off.shape[0]
        decoded.reserve(n, block_bytes / n)
        start = decoded.rows
        columns = tuple(decoded.columns.values())
        parts = 1
        if decoded.pool is not None:
            parts = min(self.decode_threads, max(1, n // MIN_PACKETS_PER_THREAD))
        cuts = [int(c) for c in np.linspace(0, n, parts + 1)]

        def decode(lo: int, hi: int) -> tuple:
            return kernel.decode_frames(
                buf,
                data_off[lo:hi],
                caplen[lo:hi],
                origlen[lo:hi],
                linktype[lo:hi],
                ts_us[lo:hi],
                start + lo,
                *columns,
            )

        if parts == 1 or decoded.pool is None:
            results = [decode(0, n)]
        else:
            futures = [decoded.pool.submit(decode, lo, hi) for lo, hi in itertools.pairwise(cuts)]
            results = [future.result() for future in futures]
        write = start
        for (lo, _hi), result in zip(itertools.pairwise(cuts), results, strict=True):
            got = kernel.frame_columns(result)
            at = start + lo  # where this part wrote its rows
            if at != write and got.count:  # close the gap left by the skipped frames
                for column in columns:
                    column[write : write + got.count] = column[at : at + got.count]
            self._count_skips(got, data_off[lo:], first_record + lo, stats, buf_offset)
            if got.quotes["row"].shape[0]:
                quote = {name: column.copy() for name, column in got.quotes.items()}
                quote["row"] += write - at
                decoded.quotes.append(quote)
            if got.pflog_row.shape[0]:
                decoded.pflog.append(_pflog_fields(buf, got.pflog_off, got.pflog_row + write - at))
            write += got.count
        decoded.rows = write

    def _count_skips(self, got: kernel.DecodedFrames, data_off: np.ndarray, first_record: int,
                     stats: ReadStats, buf_offset: int) -> None:  # fmt: skip
        """Count the frames of one decoded part that gave no event, by reason."""
        if got.count == got.status.shape[0]:
            return
        bad = np.flatnonzero(got.status)
        reasons = (got.status[bad].astype(np.uint64) << np.uint64(32)) | got.detail[bad]
        uniq, first, counts = np.unique(reasons, return_index=True, return_counts=True)
        in_order = np.argsort(first)  # examples in record order
        for value, at, count in zip(
            uniq[in_order].tolist(),
            first[in_order].tolist(),
            counts[in_order].tolist(),
            strict=True,
        ):
            # one step per distinct reason, not per frame
            code, detail = value >> 32, value & 0xFFFFFFFF
            reason = kernel.skip_reason(code, detail)
            if reason in stats.skipped or (stats.strict and code in kernel.NOT_IP_CODES):
                # counted only: one example per reason, and not IP is never an error
                stats.skipped[reason] += count
            else:
                stats.skip(
                    reason,
                    line=first_record + int(bad[at]),
                    count=count,
                    detail=f"frame at byte {buf_offset + int(data_off[bad[at]])}",
                )

    def _events(
        self, decoded: _Decoded, end: int, tail: bytes, records: int, options: ReadOptions,
        stats: ReadStats,
    ) -> Iterator[ReadChunk]:  # fmt: skip
        """Pair the whole capture, then yield batches; the last carries the offset."""
        n = decoded.rows
        if n == 0:
            yield ReadChunk(batch=empty_batch(), offset=end, records=records, tail=tail)
            return
        cols = decoded.events()
        quotes = _concatenate(decoded.quotes) if decoded.quotes else None
        answers = np.zeros(n, np.bool_)
        outcome = probe_outcomes(cols, timeout_us=round(options.probe_timeout * 1e6),
                                 quotes=quotes, answers=answers)
        pf = _pflog_columns(_concatenate(decoded.pflog), n) if decoded.pflog else {}
        self.answer_ts = np.zeros(0, np.int64)
        self.folded = {}
        if not self.keep_answers:
            n_answers = int(np.count_nonzero(answers))
            n_return = n_continues = 0
            drop = answers
            if not self.keep_return_traffic:
                # the other side's later packets of a conversation, and the starter's
                # own after its first: not probes either
                kinds = return_traffic(cols, answers=answers,
                                       conversations=self.conversations)
                n_return = int(np.count_nonzero(kinds == RETURN))
                n_continues = int(np.count_nonzero(kinds == CONTINUES))
                if n_return or n_continues:
                    drop = answers | (kinds != 0)
                    self.folded = {RETURN_REASON: n_return, CONTINUES_REASON: n_continues}
            if n_answers:
                # the target's answers are the probes' outcomes, not probes of their own
                self.answer_ts = np.asarray(cols["ts"], np.int64)[answers]
            if n_answers or n_return or n_continues:
                keep = np.flatnonzero(~drop)
                cols = {name: column[keep] for name, column in cols.items()}
                outcome = outcome[keep]
                pf = {name: column.take(pa.array(keep)) for name, column in pf.items()}
                # counted, never an error
                if n_answers:
                    stats.skipped[ANSWER_REASON] += n_answers
                if n_return:
                    stats.skipped[RETURN_REASON] += n_return
                if n_continues:
                    stats.skipped[CONTINUES_REASON] += n_continues
                n = keep.shape[0]
                if n == 0:
                    yield ReadChunk(batch=empty_batch(), offset=end, records=records,
                                    tail=tail)
                    return
        sensor = options.sensor or "default"
        ones = np.ones(min(n, self.batch_rows), np.uint32)
        for start in range(0, n, self.batch_rows):
            sl = slice(start, min(start + self.batch_rows, n))
            batch = _batch(cols, outcome, pf, sl, sensor, ones)
            last = sl.stop == n
            stats.events += batch.num_rows
            yield ReadChunk(
                batch=batch,
                offset=end if last else None,
                records=batch.num_rows + (records - n if last else 0),
                tail=tail if last else None,
            )


def _input_size(stream: BinaryIO) -> int | None:
    """Bytes in the input when it is a plain file (compressed: the compressed size)."""
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


class _RecordArrays:
    """Data offset, caplen, origlen, timestamp (µs) and link type of a block's records.

    Reused from block to block of one read, so their pages are faulted in once; sized
    for the worst case (16-byte records) so a block is walked once.
    """

    def __init__(self) -> None:
        self.arrays: tuple[np.ndarray, ...] = ()

    def room(self, n: int) -> tuple[np.ndarray, ...]:
        if not self.arrays or self.arrays[0].shape[0] < n:
            self.arrays = (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64),
                           np.empty(n, np.int64), np.empty(n, np.int32))  # fmt: skip
        return self.arrays


def _section_order(head: bytes, big: bool, where: str) -> bool:
    """Byte order of the block starting with ``head``: a section header brings its own."""
    if head[:4] != _PCAPNG_SHB:
        return big
    bom = head[8:12]
    if bom == _PCAPNG_BOM_LE:
        return False
    if bom == _PCAPNG_BOM_BE:
        return True
    raise InputError(
        f"{where}: pcapng section header with an unknown byte-order magic "
        f"{bom.hex()}; the file is corrupt"
    )


def _control_length(feeder: _BlockFeeder, at: int, big: bool, max_block: int,
                    where: str) -> int:  # fmt: skip
    """Length of the section header or interface description at ``at`` (12 if unknown yet)."""
    if feeder.fill - at < 12:
        return 12
    head = feeder.buf[at : at + 12].tobytes()
    order = ">" if _section_order(head, big, where) else "<"
    total: int = struct.unpack(order + "I", head[4:8])[0]
    minimum = 28 if head[:4] == _PCAPNG_SHB else 20
    if total < minimum or total % 4 or total > max_block:
        raise InputError(
            f"{where}: impossible pcapng block length {total}; the file is corrupt or not a capture"
        )
    return total


def _control_block(block: bytes, big: bool, where: str) -> tuple[int, bool]:
    """Check a whole section header / interface description: (block type, byte order)."""
    big = _section_order(block, big, where)
    order = ">" if big else "<"
    total = len(block)
    if struct.unpack(order + "I", block[-4:])[0] != total:
        raise InputError(
            f"{where}: pcapng block's trailing length differs from its "
            "leading length; the file is corrupt"
        )
    if block[:4] == _PCAPNG_SHB:
        major = struct.unpack(order + "H", block[12:14])[0]
        if major != 1:
            raise InputError(f"{where}: pcapng version {major} is not supported")
        return 0x0A0D0D0A, big
    return 1, big


def _interface_tables(ifaces: list[_Interface]) -> tuple[np.ndarray, ...]:
    """The per-interface arrays the pcapng walker takes."""
    return (
        np.array([i.linktype for i in ifaces] or [0], np.int32),
        np.array([i.snaplen for i in ifaces] or [0], np.int64),
        np.array([i.ts_mode for i in ifaces] or [0], np.int64),
        np.array([i.ts_mul for i in ifaces] or [1], np.int64),
        np.array([i.ts_div for i in ifaces] or [1], np.int64),
        np.array([i.ts_shift for i in ifaces] or [0], np.int64),
        np.array([i.ts_offset_us for i in ifaces] or [0], np.int64),
    )


def _parse_idb(block: bytes, big: bool, where: str) -> _Interface:
    """Link type, snaplen, ``if_tsresol`` and ``if_tsoffset`` of an interface description."""
    order = ">" if big else "<"
    total = len(block)
    linktype, _reserved, snaplen = struct.unpack(order + "HHI", block[8:16])
    iface = _Interface(linktype=linktype, snaplen=snaplen)
    resolution, offset_s = 6, 0
    pos = 16
    while pos + 4 <= total - 4:  # options; each step moves at least 4 bytes
        code, length = struct.unpack(order + "HH", block[pos : pos + 4])
        value = block[pos + 4 : pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:
            resolution = value[0]
        elif code == 14 and length >= 8:
            offset_s = struct.unpack(order + "q", value[:8])[0]
        pos += 4 + ((length + 3) & ~3)
    if resolution & 0x80:
        iface.ts_mode, iface.ts_shift = 1, resolution & 0x7F
        if iface.ts_shift > 62:
            raise InputError(f"{where}: if_tsresol 2^-{iface.ts_shift} is not supported")
    else:
        if resolution > 18:
            raise InputError(f"{where}: if_tsresol 10^-{resolution} is not supported")
        if resolution <= 6:
            iface.ts_mul = 10 ** (6 - resolution)
        else:
            iface.ts_div = 10 ** (resolution - 6)
    iface.ts_offset_us = offset_s * 1_000_000
    return iface


def _pflog_fields(buf: np.ndarray, hdr: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """Interface, rule and direction from pflog headers at ``hdr`` (``struct pfloghdr``)."""
    length = buf[hdr].astype(np.int64)
    span = np.arange(16)
    ifname = buf[hdr[:, None] + 4 + span]
    ruleset = buf[hdr[:, None] + 20 + span]
    be = np.array([1 << 24, 1 << 16, 1 << 8, 1], np.int64)
    rulenr = (buf[hdr[:, None] + 36 + np.arange(4)].astype(np.int64) * be).sum(axis=1)
    subrule = (buf[hdr[:, None] + 40 + np.arange(4)].astype(np.int64) * be).sum(axis=1)
    # dir sits at offset 60, present when the header is at least 61 bytes long
    direction = np.where(length >= 61, buf[np.minimum(hdr + 60, buf.shape[0] - 1)], 0)
    return {"index": index, "ifname": ifname, "ruleset": ruleset, "rulenr": rulenr,
            "subrule": subrule, "dir": direction.astype(np.uint8)}  # fmt: skip


def _dictionary(values: np.ndarray, index: np.ndarray, mask: np.ndarray, n: int,
                texts: list[str]) -> pa.DictionaryArray:  # fmt: skip
    """Dictionary column of ``n`` rows: rows ``index[mask]`` take ``texts[values[mask]]``."""
    codes = np.zeros(n, np.int32)
    valid = np.zeros(n, bool)
    codes[index[mask]] = values[mask]
    valid[index[mask]] = True
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, mask=~valid), pa.array(texts, pa.string())
    )


def _pflog_columns(pf: dict[str, np.ndarray], n: int) -> dict[str, pa.DictionaryArray]:
    """``rule``, ``in_iface`` and ``out_iface`` columns for all ``n`` events.

    Each distinct name or rule is decoded once.  The rule reads like tcpdump prints it:
    ``12`` or, inside an anchor, ``12.anchor.3``.
    """
    names, name_code = np.unique(pf["ifname"], axis=0, return_inverse=True)
    name_texts = [bytes(r).split(b"\0", 1)[0].decode("ascii", "replace") for r in names]
    rule_key = np.concatenate(
        [pf["rulenr"][:, None], pf["subrule"][:, None], pf["ruleset"].astype(np.int64)], axis=1
    )
    rules, rule_code = np.unique(rule_key, axis=0, return_inverse=True)
    rule_texts = []
    for row in rules.tolist():
        rulenr, subrule = row[0], row[1]
        anchor = bytes(row[2:]).split(b"\0", 1)[0].decode("ascii", "replace")
        rule_texts.append(
            f"{rulenr}.{anchor}.{subrule}" if subrule != 0xFFFFFFFF and anchor else str(rulenr)
        )
    index = pf["index"]
    name_code = name_code.reshape(-1).astype(np.int32)
    rule_code = rule_code.reshape(-1).astype(np.int32)
    everywhere = np.ones(index.shape[0], bool)
    return {
        "rule": _dictionary(rule_code, index, everywhere, n, rule_texts),
        "in_iface": _dictionary(name_code, index, pf["dir"] == _PF_DIR_IN, n, name_texts),
        "out_iface": _dictionary(name_code, index, pf["dir"] == _PF_DIR_OUT, n, name_texts),
    }


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-block side tables, releasing each block's arrays as it goes."""
    out: dict[str, np.ndarray] = {}
    for name in list(parts[0]):
        out[name] = (
            np.concatenate([p.pop(name) for p in parts]) if len(parts) > 1 else parts[0].pop(name)
        )
    return out


def _masked(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Arrow array over ``values`` (no copy) with nulls where not ``valid``."""
    nulls = valid.shape[0] - int(np.count_nonzero(valid))
    if nulls == 0:
        return pa.array(values)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), values.shape[0],
                                 [bitmap, pa.py_buffer(values)], null_count=nulls)  # fmt: skip


def _batch(
    cols: dict[str, np.ndarray], outcome: np.ndarray, pf: dict[str, pa.DictionaryArray],
    sl: slice, sensor: str, ones: np.ndarray,
) -> pa.RecordBatch:  # fmt: skip
    """One event batch from rows ``sl`` of the decoded columns."""
    l4 = cols["l4"][sl]
    ports = (l4 == kernel.L4_PORTS) | (l4 == kernel.L4_TCP)
    tcp = l4 == kernel.L4_TCP
    icmp = l4 == kernel.L4_ICMP
    rows = l4.shape[0]
    columns: dict[str, object] = {
        "ts": cols["ts"][sl],
        "sensor": sensor,
        "src_hi": cols["src_hi"][sl],
        "src_lo": cols["src_lo"][sl],
        "dst_hi": cols["dst_hi"][sl],
        "dst_lo": cols["dst_lo"][sl],
        "proto": cols["proto"][sl],
        "sport": _masked(cols["sport"][sl], ports),
        "dport": _masked(cols["dport"][sl], ports),
        "tcp_flags": _masked(cols["tcp_flags"][sl], tcp),
        "icmp_type": _masked(cols["icmp_type"][sl], icmp),
        "icmp_code": _masked(cols["icmp_code"][sl], icmp),
        "outcome": outcome[sl],
        "packets": ones[:rows],
        "bytes": cols["ip_len"][sl].astype(np.uint64),
        "ttl": cols["ttl"][sl],
        "ip_id": _masked(cols["ip_id"][sl], cols["family"][sl] == 4),
        "tcp_window": _masked(cols["tcp_window"][sl], tcp),
        "tcp_seq": _masked(cols["tcp_seq"][sl], tcp),
        "format": "pcap",
    }
    for name, column in pf.items():
        columns[name] = column.slice(sl.start, rows)
    return make_batch(columns, n=rows)
