"""Syslog receiver: UDP and TCP, RFC 3164 and RFC 5424 messages, both TCP framings.

Firewalls forward their LOG lines to a collector by syslog (rsyslog ``omfwd``,
syslog-ng, ``logger --server``).  This listener accepts them and hands the messages, as
newline-separated bytes, to the service, which parses them with the iptables reader's
byte parser (:meth:`~portradar.ingest.iptables.IptablesReader.parse_lines`, which reads
the ``<PRI>`` of both RFC 3164 and RFC 5424 headers itself).

* **UDP** (RFC 5426): one message per datagram.  On Linux the datagrams are taken
  ``UDP_BATCH`` at a time with one ``recvmmsg(2)`` call (through ``ctypes``, which
  releases the GIL) into a fixed slot matrix and packed into lines by a compiled kernel:
  no Python work per message, which is what lets one thread keep up with 100,000
  messages/s.  Datagrams that arrive while the service's buffer is full are dropped and
  counted (``udp_dropped``), and so are the ones the kernel dropped for the socket
  (``/proc/net/udp``'s ``drops`` column, :meth:`SyslogListener.kernel_drops`): UDP loss
  is reported, never hidden.
* **TCP** (RFC 6587): each frame is either *octet-counted* (``LEN SP MSG``, what
  rsyslog's ``TCP_Framing="octet-counted"`` sends) or *non-transparent* (a message ended
  by LF), decided per frame by its first bytes, as rsyslog's imtcp does.  A compiled
  kernel (:class:`TcpFramer`) cuts whole 1 MiB reads at a time and keeps an unfinished
  frame for the next read.  When the service's buffer is full the connection's thread
  stops reading, so TCP's flow control slows the sender down and nothing is lost.

Bad framing is counted and skipped, never a traceback (``counts``):

* ``oversized_frames``: a frame longer than ``MAX_FRAME``, whether octet-counted (its
  ``LEN`` bytes are skipped, as its count says) or an LF-framed run or datagram that
  long; dropped rather than cut, since a cut firewall line would be parsed as a wrong
  event (rsyslog truncates instead);
* ``bad_octet_counts``: a count of zero, with a leading zero or of more than 10 digits
  (RFC 6587: ``NONZERO-DIGIT *DIGIT``); like rsyslog, the frame is then read up to the
  next LF (octet stuffing) and that text is skipped;
* ``truncated_frames``: an octet-counted frame the peer closed the connection inside.

It binds ``127.0.0.1`` by default, like the NetFlow listener: anyone who can reach a
syslog port can inject events, so listening on a routable address is the operator's
decision (``host = "0.0.0.0"`` in the config).

>>> import socket, time
>>> with SyslogListener(udp_port=0, tcp_port=0) as lis:
...     u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
...     _ = u.sendto(b"<4>Nov 26 10:00:00 fw kernel: hello", lis.udp_address)
...     t = socket.create_connection(lis.tcp_address)
...     t.sendall(b"10 <4>one two8 <4>three"); t.close()
...     t = socket.create_connection(lis.tcp_address)
...     t.sendall(b"<4>four\\n2026-11-26T10:00:00Z five\\n"); t.close(); u.close()
...     got = b""
...     for _ in range(500):
...         got += lis.drain()
...         if got.count(b"\\n") >= 5: break
...         time.sleep(0.02)
>>> for line in sorted(got.splitlines()): print(line)
b'2026-11-26T10:00:00Z five'
b'<4>Nov 26 10:00:00 fw kernel: hello'
b'<4>four'
b'<4>one two'
b'<4>three'
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import select
import socket
import sys
import threading
import time
from collections import Counter
from types import TracebackType

import numba
import numpy as np

log = logging.getLogger(__name__)

#: Default syslog port (RFC 5426 / RFC 6587 use 514; an unprivileged port needs none
#: of the root rights 514 needs, so the config usually names its own).
DEFAULT_PORT = 514
#: Bytes held for the service before UDP drops and TCP back-pressure start: 64 MiB is
#: about 2.5 s at 100,000 lines/s of ~260-byte syslog lines (the issue's rate), many
#: 1-second micro-batches.  A service round longer than that (a detection round over
#: millions of stored events, measured by ``bench/syslog_bench.py``) holds TCP senders
#: back and makes UDP drop: more buffer would only postpone it.
BUFFER_BYTES = 64 << 20
#: Kernel receive buffer asked for on the UDP socket (``SO_RCVBUFFORCE`` when the
#: process may, else ``SO_RCVBUF``, capped by ``net.core.rmem_max``; Linux doubles it
#: for its bookkeeping): 64 MiB, about a second of 100,000 datagrams/s at the ~1 KiB
#: the kernel charges per small datagram, to ride out a pause of the receiving thread
#: (``bench/syslog_bench.py`` lost datagrams in the kernel with 32 MiB on a busy machine).
RECEIVE_BUFFER = 64 << 20
#: Longest frame accepted: rsyslog's default ``maxMessageSize`` (8 KiB; RFC 5425 asks
#: receivers for at least 2 KiB).  A kernel LOG line with its syslog header is < 1 KiB.
MAX_FRAME = 8 << 10
#: Bytes asked for per TCP ``recv``: a few thousand lines per compiled framing call.
TCP_READ = 1 << 20
#: Datagrams per ``recvmmsg`` call (the slot matrix is ``UDP_BATCH x MAX_FRAME``, 8 MiB
#: of address space of which only the first page of each slot is touched).
UDP_BATCH = 1024
#: Pause after a ``recvmmsg`` that emptied the socket, so the next call takes a batch
#: (about 200 datagrams at 100,000/s) instead of one: far below what the socket buffer
#: holds, and it keeps the thread from spinning on single datagrams.
UDP_PAUSE = 0.002
#: Bytes per parser call in :meth:`SyslogListener.drain_chunks`: about 30,000 lines, a
#: few tens of ms in the iptables kernels, during which the UDP thread waits for the GIL.
PARSE_CHUNK = 8 << 20
POLL_SECONDS = 0.2

_MSG_DONTWAIT = 0x40
_MSG_TRUNC = 0x20


# -- framing kernels ------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _copy_message(data: np.ndarray, a: int, b: int, out: np.ndarray, o: int,
                  octet: bool) -> int:  # pragma: no cover - jit
    """Copy ``data[a:b]`` to ``out[o:]`` as one LF-ended line; returns the new ``o``."""
    while b > a and (data[b - 1] == 10 or data[b - 1] == 13 or data[b - 1] == 0):
        b -= 1
    if b == a:
        return o
    m = b - a
    out[o:o + m] = data[a:b]
    if octet:  # an LF inside an octet-counted message or datagram would split it in two
        for j in range(o, o + m):
            if out[j] == 10 or out[j] == 13:
                out[j] = 32
    out[o + m] = 10
    return o + m + 1


@numba.njit(cache=True, nogil=True)
def _frames(data: np.ndarray, out: np.ndarray, state: np.ndarray, counts: np.ndarray,
            max_frame: int, eof: bool) -> tuple[int, int]:  # pragma: no cover - jit
    """Cut RFC 6587 frames of ``data`` into LF-ended lines in ``out``.

    ``state`` carries across calls: [0] bytes of an oversized frame still to skip,
    [1] 1 while skipping to the next LF.  ``counts`` (added to): messages, oversized
    frames, bad octet counts, truncated frames.  Returns (bytes of ``data`` used,
    bytes written to ``out``); the unused rest is an unfinished frame.
    """
    n = data.shape[0]
    i = 0
    o = 0
    while i < n:
        if state[0] > 0:  # inside an oversized octet-counted frame
            take = min(state[0], n - i)
            i += take
            state[0] -= take
            continue
        if state[1] == 1:  # skipping a bad frame or an over-long line up to its LF
            while i < n and data[i] != 10:
                i += 1
            if i < n:
                i += 1
                state[1] = 0
            continue
        c = data[i]
        if 48 <= c <= 57:  # a digit: maybe "LEN SP MSG"
            j = i
            length = 0
            while j < n and 48 <= data[j] <= 57 and j - i <= 10:
                length = length * 10 + (data[j] - 48)
                j += 1
            if j == n and j - i <= 10 and not eof:
                break  # only digits so far: wait for the rest of the count
            if j - i > 10:
                counts[2] += 1  # not a count any frame could have
                state[1] = 1
                continue
            if j < n and data[j] == 32:
                if c == 48:  # zero, or a leading zero
                    counts[2] += 1
                    state[1] = 1
                    continue
                if length > max_frame:
                    counts[1] += 1
                    state[0] = length
                    i = j + 1
                    continue
                start = j + 1
                if start + length > n:
                    if eof:
                        counts[3] += 1
                        i = n
                    break  # wait for the rest of the frame
                before = o
                o = _copy_message(data, start, start + length, out, o, True)
                if o > before:
                    counts[0] += 1
                i = start + length
                continue
            # digits then something else: an LF-framed message starting with digits
        j = i
        limit = min(n, i + max_frame + 1)
        while j < limit and data[j] != 10:
            j += 1
        if j - i > max_frame:
            counts[1] += 1  # a line longer than any frame: skip it up to its LF
            state[1] = 1
            i = j
            continue
        if j == n and not eof:
            break  # wait for the LF
        before = o
        o = _copy_message(data, i, j, out, o, False)
        if o > before:
            counts[0] += 1
        i = j + 1 if j < n else n
    return i, o


@numba.njit(cache=True, nogil=True)
def _pack_datagrams(slots: np.ndarray, lengths: np.ndarray, flags: np.ndarray, count: int,
                    out: np.ndarray, counts: np.ndarray) -> int:  # pragma: no cover - jit
    """The first ``count`` datagrams of ``slots`` as LF-ended lines in ``out``.

    ``counts`` (added to): messages, oversized (truncated by the slot) datagrams.
    """
    o = 0
    for k in range(count):
        if flags[k] & 0x20:  # MSG_TRUNC: longer than a slot
            counts[1] += 1
            continue
        before = o
        o = _copy_message(slots[k], 0, lengths[k], out, o, True)
        if o > before:
            counts[0] += 1
    return o


class TcpFramer:
    r"""RFC 6587 framing of one TCP connection: bytes in, LF-ended messages out.

    The state (an unfinished frame, the rest of an oversized frame) carries from one
    :meth:`feed` to the next, so frames may be cut anywhere by the reads.

    >>> f = TcpFramer()
    >>> f.feed(b"5 <1>ab<2>x\n4 <3"), f.feed(b">z"), f.finish()
    (b'<1>ab\n<2>x\n', b'<3>z\n', b'')
    >>> f.feed(b"0 <4>bad count\n<5>ok\n"), dict(f.counts)
    (b'<5>ok\n', {'messages': 4, 'bad_octet_counts': 1})
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.counts: Counter[str] = Counter()
        self._held = b""
        self._state = np.zeros(2, np.int64)

    def feed(self, data: bytes | bytearray | memoryview, *, eof: bool = False) -> bytes:
        """The messages completed by ``data``, each ended by LF."""
        whole = self._held + bytes(data) if self._held else data
        buf = np.frombuffer(whole, dtype=np.uint8)
        out = np.empty(len(buf) + 1, np.uint8)
        counts = np.zeros(4, np.int64)
        used, written = _frames(buf, out, self._state, counts, self.max_frame, eof)
        self._held = bytes(buf[used:])
        for name, value in zip(("messages", "oversized_frames", "bad_octet_counts",
                                "truncated_frames"), counts.tolist(), strict=True):
            if value:
                self.counts[name] += value
        return out[:written].tobytes()

    def finish(self) -> bytes:
        """At the end of the connection: a last LF-less message; a cut frame is counted."""
        return self.feed(b"", eof=True)

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held for the next read."""
        return len(self._held)


# -- recvmmsg(2) through ctypes ---------------------------------------------------------------
class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_IoVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _libc_recvmmsg() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_MMsgHdr), ctypes.c_uint, ctypes.c_int,
                   ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_RECVMMSG = _libc_recvmmsg()


class _DatagramBatch:
    """``UDP_BATCH`` receive slots for ``recvmmsg`` and numpy views of what it returns."""

    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slots = np.zeros((slots, slot_bytes), np.uint8)
        self.iov = (_IoVec * slots)()
        self.hdrs = (_MMsgHdr * slots)()
        base = self.slots.ctypes.data
        for k in range(slots):  # once, at start-up
            self.iov[k].iov_base = base + k * slot_bytes
            self.iov[k].iov_len = slot_bytes
            self.hdrs[k].msg_hdr.msg_iov = ctypes.pointer(self.iov[k])
            self.hdrs[k].msg_hdr.msg_iovlen = 1
        stride = (ctypes.sizeof(_MMsgHdr),)
        raw = np.ctypeslib.as_array(ctypes.cast(self.hdrs, ctypes.POINTER(ctypes.c_uint8)),
                                    shape=(ctypes.sizeof(self.hdrs),))
        self.lengths = np.ndarray((slots,), np.uint32, buffer=raw,
                                  offset=_MMsgHdr.msg_len.offset, strides=stride)
        self.flags = np.ndarray((slots,), np.int32, buffer=raw,
                                offset=_MMsgHdr.msg_hdr.offset + _MsgHdr.msg_flags.offset,
                                strides=stride)
        self.out = np.empty(slots * (slot_bytes + 1), np.uint8)

    def receive(self, fd: int) -> int:
        """Datagrams waiting on ``fd`` (without blocking), at most one batch."""
        n = int(_RECVMMSG(fd, self.hdrs, len(self.iov), _MSG_DONTWAIT, None))  # type: ignore[operator]
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(err, "recvmmsg")
        return n


class SyslogListener:
    """UDP and/or TCP syslog on ``host``; :meth:`drain` returns the messages received."""

    def __init__(self, *, host: str = "127.0.0.1", udp_port: int | None = None,
                 tcp_port: int | None = None, buffer_bytes: int = BUFFER_BYTES,
                 receive_buffer: int = RECEIVE_BUFFER) -> None:
        self.host = host
        self.udp_port = udp_port
        self.tcp_port = tcp_port
        self.buffer_bytes = buffer_bytes
        self.receive_buffer = receive_buffer
        self.receive_buffer_granted = 0
        self.counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()

    # -- life cycle -----------------------------------------------------------------------
    @property
    def udp_address(self) -> tuple[str, int]:
        assert self._udp is not None
        return self._udp.getsockname()[:2]

    @property
    def tcp_address(self) -> tuple[str, int]:
        assert self._tcp is not None
        return self._tcp.getsockname()[:2]

    def start(self) -> SyslogListener:
        if self.udp_port is not None:
            fam, kind, proto, _, addr = socket.getaddrinfo(
                self.host, self.udp_port, type=socket.SOCK_DGRAM)[0]
            self._udp = socket.socket(fam, kind, proto)
            self._set_receive_buffer(self._udp)
            self._udp.bind(addr)
            self._udp.setblocking(False)
            self._spawn(self._receive_udp, "syslog-udp")
        if self.tcp_port is not None:
            fam, kind, proto, _, addr = socket.getaddrinfo(
                self.host, self.tcp_port, type=socket.SOCK_STREAM)[0]
            self._tcp = socket.socket(fam, kind, proto)
            self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._tcp.bind(addr)
            self._tcp.listen(64)
            self._tcp.settimeout(POLL_SECONDS)
            self._spawn(self._accept, "syslog-tcp")
        return self

    def _set_receive_buffer(self, sock: socket.socket) -> None:
        force = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform.startswith("linux")
                        else None)
        for opt in (force, socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, self.receive_buffer)
                break
            except OSError:
                continue
        #: what the kernel granted (Linux reports twice the size asked for)
        self.receive_buffer_granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name,  # type: ignore[arg-type]
                                  daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def stop(self) -> None:
        """Stop receiving; what the sockets already hold is read and kept for :meth:`drain`."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in list(self._threads):
            thread.join(5)
        for sock in [self._udp, self._tcp, *self._conns]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._udp = self._tcp = None

    def __enter__(self) -> SyslogListener:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the consumer side ----------------------------------------------------------------
    def drain(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Whole messages received so far (LF-separated): all of them, or about ``max_bytes``.

        The service takes everything at each micro-batch (at 100,000 lines/s a cap would
        make it fall behind); the buffer itself is handed over, not copied.
        """
        with self._cond:
            if max_bytes is None or len(self._buf) <= max_bytes:
                data: bytes | bytearray = self._buf
                self._buf = bytearray()
            else:
                cut = self._buf.rfind(b"\n", 0, max_bytes) + 1 or len(self._buf)
                data = bytes(self._buf[:cut])
                del self._buf[:cut]
            self._cond.notify_all()
        return data

    def drain_chunks(self, chunk_bytes: int = PARSE_CHUNK) -> list[memoryview]:
        """What :meth:`drain` returns, cut at line ends into pieces of about ``chunk_bytes``.

        The service parses piece by piece: the parser's compiled kernels hold the GIL,
        and between pieces the UDP thread gets it back to empty its socket.

        >>> lis = SyslogListener()
        >>> lis._buf += b"a\\nbb\\nccc\\n"
        >>> [bytes(c) for c in lis.drain_chunks(4)]
        [b'a\\nbb\\n', b'ccc\\n']
        """
        data = self.drain()
        view = memoryview(data)
        out = []
        start, n = 0, len(data)
        while start < n:  # one pass per chunk, not per line
            end = data.find(b"\n", min(n, start + chunk_bytes) - 1) + 1 or n
            out.append(view[start:end])
            start = end
        return out

    def pending_bytes(self) -> int:
        with self._cond:
            return len(self._buf)

    def dropped(self) -> int:
        """UDP messages lost: dropped here (buffer full) and by the kernel (socket full)."""
        return self.counts["udp_dropped"] + self.kernel_drops()

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on the UDP socket (Linux ``/proc/net/udp``)."""
        if self._udp is None:
            return self.counts["udp_kernel_drops_at_close"]
        return udp_socket_drops(self._udp)

    # -- receivers ------------------------------------------------------------------------
    def _count(self, values: dict[str, int]) -> None:
        with self._count_lock:
            for key, value in values.items():
                if value:
                    self.counts[key] += value

    def _put(self, data: bytes | bytearray | memoryview, *, block: bool,
             force: bool = False) -> bool:
        size = len(data)
        with self._cond:
            # a piece larger than the whole buffer waits for it to be empty
            while not force and self._buf and len(self._buf) + size > self.buffer_bytes:
                if not block:
                    return False
                if self._stop.is_set():
                    break  # stopping: keep it, the service drains once more
                self._cond.wait(POLL_SECONDS)
            self._buf += data
            return True

    def _receive_udp(self) -> None:
        sock = self._udp
        assert sock is not None
        try:
            if _RECVMMSG is None:
                self._receive_udp_plain(sock)
            else:
                self._receive_udp_batched(sock)
        finally:
            with contextlib.suppress(OSError):
                self.counts["udp_kernel_drops_at_close"] = udp_socket_drops(sock)

    def _receive_udp_batched(self, sock: socket.socket) -> None:
        batch = _DatagramBatch(UDP_BATCH, MAX_FRAME)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        fd = sock.fileno()
        counts = np.zeros(2, np.int64)
        while True:
            stopping = self._stop.is_set()
            if not stopping and not poller.poll(POLL_SECONDS * 1000):
                continue
            try:
                n = batch.receive(fd)
            except OSError:
                return
            if n:
                counts[:] = 0
                written = _pack_datagrams(batch.slots, batch.lengths, batch.flags, n,
                                          batch.out, counts)
                messages, oversized = int(counts[0]), int(counts[1])
                if self._put(batch.out[:written].data, block=False, force=stopping):
                    self._count({"udp_messages": messages, "oversized_frames": oversized})
                else:
                    self._count({"udp_dropped": messages, "oversized_frames": oversized})
            if n < UDP_BATCH:
                if stopping:
                    return  # the socket is empty
                time.sleep(UDP_PAUSE)

    def _receive_udp_plain(self, sock: socket.socket) -> None:  # pragma: no cover - non-Linux
        sock.settimeout(POLL_SECONDS)
        while not self._stop.is_set():
            try:
                data = sock.recv(MAX_FRAME + 1)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) > MAX_FRAME:
                self._count({"oversized_frames": 1})
                continue
            data = data.rstrip(b"\r\n\0").replace(b"\n", b" ")
            if not data:
                continue
            if self._put(data + b"\n", block=False):
                self._count({"udp_messages": 1})
            else:
                self._count({"udp_dropped": 1})

    def _accept(self) -> None:
        sock = self._tcp
        assert sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(POLL_SECONDS)
            with contextlib.suppress(OSError):  # several reads of TCP_READ without a wait
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * TCP_READ)
            self._conns.add(conn)
            self._count({"tcp_connections": 1})
            self._spawn(self._receive_tcp, "syslog-tcp-conn", conn)

    def _take_counts(self, framer: TcpFramer) -> None:
        if framer.counts:
            values = dict(framer.counts)
            values["tcp_messages"] = values.pop("messages", 0)
            framer.counts.clear()
            self._count(values)

    def _receive_tcp(self, conn: socket.socket) -> None:
        framer = TcpFramer()
        buf = bytearray(TCP_READ)
        view = memoryview(buf)
        try:
            while True:
                stopping = self._stop.is_set()
                if stopping:
                    conn.setblocking(False)  # read what the socket holds, then leave
                try:
                    n = conn.recv_into(view)
                except (TimeoutError, BlockingIOError):
                    if stopping:
                        break
                    continue
                except OSError:
                    break
                if not n:
                    break
                out = framer.feed(view[:n])
                self._take_counts(framer)
                if out:
                    self._put(out, block=True, force=stopping)
            out = framer.finish()
            if out:
                self._put(out, block=True, force=True)
        finally:
            view.release()
            self._take_counts(framer)
            self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()


def udp_socket_drops(sock: socket.socket) -> int:
    """The kernel's drop count for a bound UDP socket (Linux ``/proc/net/udp``), else 0."""
    try:
        port = sock.getsockname()[1]
        table = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
        with open(table) as fh:
            next(fh)
            for row in fh:
                cols = row.split()
                if int(cols[1].split(":")[1], 16) == port:
                    return int(cols[-1])
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return 0
