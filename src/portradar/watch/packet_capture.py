"""Live capture on an interface through libpcap (tcpdump), with a BPF filter, in micro-batches.

``[[input]] type = "capture"``, ``interface = "eth0"``, ``filter = "tcp[tcpflags] &
tcp-syn != 0"``: the service starts ``tcpdump -i IF -n -U --immediate-mode -w - FILTER``
and reads the pcap stream from its standard output.  The records are walked and decoded
by the pcap reader's numba kernels (:mod:`portradar.ingest.pcap`, via
:class:`~portradar.ingest.pcap.PcapReader`) and paired with their replies by
:func:`~portradar.ingest.probe_outcome.probe_outcomes`: no Python per packet.

**Why tcpdump and not a ctypes binding to libpcap.**  Both use Debian's libpcap (the
kernel's TPACKET ring, the BPF compiler).  Measured on this project's 2-core machine,
300,000 SYN frames from a file (``bench``-style, ``tcpdump -r`` standing in for the
interface): through a ``tcpdump -w -`` pipe 0.36 s (820,000 packets/s, in another
process: the service's GIL is never held for it), through ``pcap_next_ex`` called from
ctypes 1.09 s (275,000 packets/s, one Python call per packet, all of it under the
GIL); decoding the same bytes is 0.08 s either way.  tcpdump also brings BPF syntax
errors worded for users, privilege dropping (``-Z``, Debian's default user
``tcpdump``) and its kernel-drop count, so it is both the simpler and the faster way.

**Probe outcomes across micro-batches.**  A probe's outcome needs its reply, which may
come in the next batch.  Packets are therefore *held back* until their reply window is
over: a packet is stored once its timestamp is ``horizon`` seconds older than the wall
clock (``horizon`` = 2 × ``probe_timeout``: the SYN-ACK within the timeout, then the
client's ACK, which makes it ``established``, within another).  The last
``probe_timeout`` seconds of already-stored packets stay as *context*, so a new UDP
packet still sees the earlier packet it answers.  Each round decodes the window
(context, held-back and new packets: about 3 × ``probe_timeout`` of traffic) and keeps
the rows stored for the first time.  Measured on this project's 2-core machine with the
3 s default, 10,000 packets/s: a round (9 s of traffic, 90,000 packets, decoded, paired
and filtered) takes 44 ms median, 55 ms at most, so one core keeps up with roughly
200,000 packets/s; beyond that the decoded columns should be kept between rounds
instead of decoding the window again (not done).  When the input stops (clean shutdown)
everything held back is stored, judged on what was captured, like the last probes of a
capture file.

**Return traffic across micro-batches.**  The server's side of a conversation the client
started (data, ACKs, FIN, later UDP replies) is counted under the pcap reader's
``RETURN_REASON`` and not stored, as in a file, and so are the client's own later packets
of an answered conversation (``CONTINUES_REASON``).  A conversation lasts far longer than
the re-read window, so its state is kept between rounds: one
:class:`~portradar.ingest.probe_outcome.Conversations` (``live=True``) for the input's
life, and each round it judges only the packets stored for the first time (timestamps
after the last round's cut-off, up to this one's), in time order, each once.  The limit:
a conversation is followed from its start when a reverse packet of it (its accepting
answer counts: SYN-ACK, UDP or echo reply) is in the round's window, i.e. within the
held-back ``horizon`` after the start: every TCP conversation, a UDP request answered
within 6 s.  The table keeps the conversations alive at once (idle timeouts: TCP 300 s,
UDP and ICMP 60 s, 5 s after a TCP close; about 84 bytes each); expired ones are dropped
when it grows.

**Guarantees.**  Like the other network inputs: no position to resume, so what tcpdump
and the held-back window hold at a ``kill -9`` (the last ~``horizon`` seconds) is lost;
what was stored is never stored twice.  When the service falls behind, the pipe fills,
tcpdump blocks and the kernel drops packets: tcpdump's ``packets dropped by kernel``
is reported as the input's ``dropped`` count (read when tcpdump exits, and on request
with SIGUSR1, which tcpdump answers with its statistics).

**The filter.**  A SYN-only filter (``tcp[tcpflags] & tcp-syn != 0``) keeps probes and
SYN-ACKs, so open ports are ``accepted``; a closed port's RST does not pass it and its
probes are ``unanswered``.  Capture ``tcp`` (or add ``or tcp[tcpflags] & tcp-rst != 0``)
to see rejections.

Defaults: ``snaplen`` 256 bytes (Ethernet + IPv6 + extension headers + TCP with options
fit in 128; 256 leaves room for tunnels and ICMP quotes, and keeps the pipe small),
``probe_timeout`` 3 s (the pcap reader's default, see
:mod:`portradar.ingest.probe_outcome`), a 64 MiB read buffer (seconds of a saturated
1 Gbit/s link at 256-byte snaplen).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.errors import InputError
from portradar.events.schema import empty_batch
from portradar.ingest import pcap_kernel as kernel
from portradar.ingest.pcap import ANSWER_REASON, PcapReader
from portradar.ingest.probe_outcome import Conversations
from portradar.ingest.reader import ReadOptions, ReadStats

log = logging.getLogger(__name__)

#: Bytes of each packet captured (see the module doc).
SNAPLEN = 256
#: Seconds a probe waits for its reply (the pcap reader's ``ReadOptions.probe_timeout``).
PROBE_TIMEOUT = 3.0
#: Bytes read from tcpdump and not yet decoded before the reader thread stops reading
#: (tcpdump then blocks and the kernel drops, which tcpdump counts).
BUFFER_BYTES = 64 << 20
#: Seconds tcpdump has to open the interface and compile the filter.
START_SECONDS = 10.0

_PCAP_HEADER = 24
_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")
_RECEIVED = re.compile(r"(\d+) packets? received by filter")


class PacketCapture:
    """``tcpdump`` on ``interface`` with ``bpf_filter``; :meth:`drain` returns event batches.

    ``clock`` (seconds, wall clock) decides when held-back packets are final; tests give
    their own.
    """

    def __init__(self, interface: str, bpf_filter: str = "", *, snaplen: int = SNAPLEN,
                 probe_timeout: float = PROBE_TIMEOUT, sensor: str | None = None,
                 tcpdump: str = "tcpdump", buffer_bytes: int = BUFFER_BYTES,
                 extra_args: list[str] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.snaplen = snaplen
        self.probe_timeout = probe_timeout
        self.horizon_us = round(2 * probe_timeout * 1e6)
        self.sensor = sensor
        self.tcpdump = tcpdump
        self.buffer_bytes = buffer_bytes
        self.extra_args = list(extra_args or [])
        self._clock: Callable[[], float] = clock or time.time
        self.counts: Counter[str] = Counter()
        self.stats = ReadStats(source=f"capture:{interface}")
        self._proc: subprocess.Popen[bytes] | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._header = b""
        self._window = b""  # whole records: context, then packets not stored yet
        self._cut = -(1 << 62)  # packets with ts <= this (µs) were stored
        #: Conversations seen so far, kept across rounds (return traffic, see the module doc)
        self.conversations = Conversations(live=True)
        self._final = False
        self._eof = threading.Event()
        self._stderr: list[str] = []
        self._threads: list[threading.Thread] = []

    # -- running tcpdump ----------------------------------------------------------------
    def command(self) -> list[str]:
        """The tcpdump command line."""
        args = [self.tcpdump, "-i", self.interface, "-n", "-U", "--immediate-mode",
                "-s", str(self.snaplen), "-w", "-", *self.extra_args]
        return args + ([self.bpf_filter] if self.bpf_filter.strip() else [])

    def start(self) -> PacketCapture:
        if shutil.which(self.tcpdump) is None:
            raise InputError(f"capture:{self.interface}: {self.tcpdump} not found "
                             "(Debian package tcpdump)")
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self._spawn(self._read_stdout, "capture-read")
        self._spawn(self._read_stderr, "capture-stderr")
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if any("listening on" in line for line in self._stderr):
                return self
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        self._terminate()
        detail = " ".join(self._stderr).strip() or "no message"
        raise InputError(f"capture:{self.interface}: tcpdump did not start ({detail}); "
                         f"command: {' '.join(self.command())}")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            with self._room:  # back-pressure: tcpdump blocks, the kernel drops and counts
                while self._buffered >= self.buffer_bytes and not self._final:
                    self._room.wait(0.2)
            data = os.read(fd, 1 << 20)
            if not data:
                break
            with self._lock:
                self._chunks.append(data)
                self._buffered += len(data)
        self._eof.set()

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            self._stderr.append(line)
            del self._stderr[:-50]
            if m := _DROPPED.search(line):
                self.counts["kernel_dropped"] = int(m.group(1))
            if m := _RECEIVED.search(line):
                self.counts["received_by_filter"] = int(m.group(1))

    def request_statistics(self) -> None:
        """Ask tcpdump for its counts (SIGUSR1; read back by the stderr thread)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGUSR1)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # tcpdump flushes what it holds and prints its statistics
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop tcpdump and read what it still wrote; the next :meth:`drain` stores all."""
        self._terminate()
        self._eof.wait(5)
        for thread in self._threads:
            thread.join(5)
        with self._room:
            self._final = True
            self._room.notify_all()

    def pending_bytes(self) -> int:
        """Bytes read from tcpdump but not stored yet (held back included)."""
        with self._lock:
            return self._buffered + len(self._window)

    def dropped(self) -> int:
        return int(self.counts["kernel_dropped"])

    # -- micro-batches --------------------------------------------------------------------
    def drain(self) -> pa.RecordBatch:
        """Events of the packets whose reply window is over (all of them after :meth:`stop`)."""
        with self._room:
            data = b"".join(self._chunks)
            self._chunks = []
            self._buffered = 0
            final = self._final
            self._room.notify_all()
        if not self._header:
            data = self._window + data
            if len(data) < _PCAP_HEADER:
                self._window = data
                return empty_batch()
            self._header, self._window, data = data[:_PCAP_HEADER], b"", data[_PCAP_HEADER:]
            self._check_header()
        window = self._window + data
        ts, starts, ends = self._records(window)
        complete = int(ends[-1]) if ends.shape[0] else 0
        cut = (1 << 62) if final else int(self._clock() * 1e6) - self.horizon_us
        fresh = (ts > self._cut) & (ts <= cut)
        n_fresh = int(np.count_nonzero(fresh))
        batch = empty_batch()
        if n_fresh:
            batch, answer_ts, folded = self._decode(window[:complete], cut)
            returns = sum(folded.values())
            t = pc.cast(batch.column("ts"), pa.int64())
            keep = pc.and_(pc.greater(t, self._cut), pc.less_equal(t, cut))
            batch = batch.filter(keep)
            self.counts["packets"] += n_fresh
            # answers to probes: the probes' outcomes, counted as the file reader does
            answers = int(np.count_nonzero((answer_ts > self._cut) & (answer_ts <= cut)))
            if answers:
                self.stats.skipped[ANSWER_REASON] += answers
            for reason, count in folded.items():  # only the fresh packets are judged:
                if count:  # each is counted once
                    self.stats.skipped[reason] += count
            no_event = n_fresh - batch.num_rows - answers - returns
            if no_event > 0:  # frames that are not IP, or cut short: counted, never stored
                self.stats.skip("frame gave no event (not IP, or headers cut short)",
                                count=no_event)
        # keep the context (and everything not stored yet) for the next round
        later = np.flatnonzero(ts > cut - round(self.probe_timeout * 1e6))
        if final:
            self._window = b""
            self._cut = max(self._cut, int(ts.max())) if ts.shape[0] else self._cut
        else:
            self._window = window[int(starts[later[0]]) if later.shape[0] else complete:]
            self._cut = max(self._cut, cut)
        self.stats.events += batch.num_rows
        return batch

    def _check_header(self) -> None:
        magic = self._header[:4]
        if magic not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                         b"\xa1\xb2\x3c\x4d"):
            raise InputError(f"capture:{self.interface}: tcpdump wrote no pcap header "
                             f"(starts with {magic.hex()})")
        self._big = magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
        self._nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        order = ">" if self._big else "<"
        (self._snap,) = struct.unpack(order + "I", self._header[16:20])

    def _records(self, window: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Timestamps (µs), start and end offsets of the complete records in ``window``."""
        buf = np.frombuffer(window, np.uint8)
        room = len(window) // 16 + 1
        data_off = np.empty(room, np.int64)
        caplen = np.empty(room, np.int64)
        origlen = np.empty(room, np.int64)
        ts_us = np.empty(room, np.int64)
        n, status, _stop, detail = kernel.walk_pcap_records(
            buf, 0, len(window), self._big, self._nano, self._snap, PcapReader().max_caplen,
            False, True, data_off, caplen, origlen, ts_us)
        if status not in (kernel.WALK_NEED_MORE,):
            raise InputError(f"capture:{self.interface}: corrupt pcap stream from tcpdump "
                             f"(record length {detail})")
        return ts_us[:n], data_off[:n] - 16, data_off[:n] + caplen[:n]

    def _decode(self, records: bytes, cut: int,
                ) -> tuple[pa.RecordBatch, np.ndarray, dict[str, int]]:
        """The window's events, the capture times of the answers counted instead, and how
        many fresh packets (``self._cut < ts <= cut``) were return traffic or a starter's
        later packets, by reason."""
        stats = ReadStats(source=self.stats.source)  # re-decoded context: not counted twice
        options = ReadOptions(sensor=self.sensor, probe_timeout=self.probe_timeout)
        # the conversations judge (and remember) only the packets stored this round
        self.conversations.since_us, self.conversations.until_us = self._cut, cut
        reader = PcapReader(decode_threads=1, conversations=self.conversations)
        chunks = list(reader.read(
            io.BytesIO(self._header + records), start_offset=0, options=options, stats=stats))
        folded = dict(reader.folded)
        batches = [c.batch for c in chunks if c.batch.num_rows]
        if not batches:
            return empty_batch(), reader.answer_ts, folded
        if len(batches) == 1:
            return batches[0], reader.answer_ts, folded
        return (pa.Table.from_batches(batches).combine_chunks().to_batches()[0],
                reader.answer_ts, folded)
