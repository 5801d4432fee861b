"""Syslog receiver: UDP and TCP, RFC 3164 and RFC 5424 messages, both TCP framings.

Firewalls forward their LOG lines to a collector by syslog (rsyslog ``omfwd``,
syslog-ng, ``logger --server``).  This listener accepts them and hands the messages, as
newline-separated bytes, to the service, which parses them with the iptables reader's
byte parser (:meth:`~portradar.ingest.iptables.IptablesReader.parse_bytes`, which reads
the ``<PRI>`` of both RFC 3164 and RFC 5424 headers itself).

* **UDP** (RFC 5426): one message per datagram.  A datagram that arrives while the
  buffer is full is dropped and counted, and so are the datagrams the kernel dropped
  for this socket (``/proc/net/udp``'s ``drops`` column): UDP loss is reported, never
  hidden.
* **TCP** (RFC 6587): each connection is either *octet-counted* (``LEN SP MSG``, what
  rsyslog's ``TCP_Framing="octet-counted"`` and RELP-less forwarders send) or
  *non-transparent* (messages ended by LF), decided per frame by its first byte, as
  rsyslog's imtcp does.  When the buffer is full the receiving thread stops reading, so
  TCP's flow control slows the sender down and nothing is lost.

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
...     for _ in range(100):
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
import logging
import re
import socket
import threading
from collections import Counter
from types import TracebackType

log = logging.getLogger(__name__)

#: Default syslog port (RFC 5426 / RFC 6587 use 514; an unprivileged port needs none
#: of the root rights 514 needs, so the config usually names its own).
DEFAULT_PORT = 514
#: Bytes held for the service before UDP drops and TCP back-pressure start: 64 MiB is
#: several seconds at 100,000 lines/s of ~200-byte iptables lines (the issue's rate).
BUFFER_BYTES = 64 << 20
#: Kernel receive buffer asked for on the UDP socket, to absorb bursts between reads.
RECEIVE_BUFFER = 8 << 20
#: Longest frame accepted (RFC 5425 asks receivers for at least 2 KiB; rsyslog's
#: default maxMessageSize is 8 KiB): longer frames are cut and counted.
MAX_FRAME = 64 << 10
POLL_SECONDS = 0.2

_OCTET_COUNT = re.compile(rb"([1-9][0-9]{0,9}) ")
_DIGITS = re.compile(rb"[0-9]{1,10}")


class SyslogListener:
    """UDP and/or TCP syslog on ``host``; :meth:`drain` returns the messages received."""

    def __init__(self, *, host: str = "127.0.0.1", udp_port: int | None = None,
                 tcp_port: int | None = None, buffer_bytes: int = BUFFER_BYTES) -> None:
        self.host = host
        self.udp_port = udp_port
        self.tcp_port = tcp_port
        self.buffer_bytes = buffer_bytes
        self.counts: Counter[str] = Counter()
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
            with contextlib.suppress(OSError):
                self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self._udp.bind(addr)
            self._udp.settimeout(POLL_SECONDS)
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

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name,  # type: ignore[arg-type]
                                  daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
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
    def drain(self, max_bytes: int = 8 << 20) -> bytes:
        """Whole messages received so far (newline-separated), at most about ``max_bytes``."""
        with self._cond:
            if len(self._buf) <= max_bytes:
                data = bytes(self._buf)
                self._buf.clear()
            else:
                cut = self._buf.rfind(b"\n", 0, max_bytes) + 1 or len(self._buf)
                data = bytes(self._buf[:cut])
                del self._buf[:cut]
            self._cond.notify_all()
        return data

    def pending_bytes(self) -> int:
        with self._cond:
            return len(self._buf)

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on the UDP socket (Linux ``/proc/net/udp``)."""
        if self._udp is None:
            return 0
        port = self._udp.getsockname()[1]
        table = "/proc/net/udp6" if self._udp.family == socket.AF_INET6 else "/proc/net/udp"
        try:
            with open(table) as fh:
                next(fh)
                for row in fh:
                    cols = row.split()
                    if int(cols[1].split(":")[1], 16) == port:
                        return int(cols[-1])
        except (OSError, ValueError, IndexError, StopIteration):
            pass
        return 0

    # -- receivers ------------------------------------------------------------------------
    def _put(self, data: bytes | bytearray, *, block: bool) -> bool:
        with self._cond:
            while len(self._buf) + len(data) > self.buffer_bytes:
                if not block or self._stop.is_set():
                    return False
                self._cond.wait(POLL_SECONDS)
            self._buf += data
            return True

    def _receive_udp(self) -> None:
        sock = self._udp
        assert sock is not None
        while not self._stop.is_set():
            try:
                data = sock.recv(MAX_FRAME)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                continue
            if not data.endswith(b"\n"):
                data += b"\n"
            if self._put(data, block=False):
                self.counts["udp_messages"] += 1
            else:
                self.counts["udp_dropped"] += 1

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
            self._conns.add(conn)
            self.counts["tcp_connections"] += 1
            self._spawn(self._receive_tcp, "syslog-tcp-conn", conn)

    def _receive_tcp(self, conn: socket.socket) -> None:
        pending = b""
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(1 << 20)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                out, pending = self.split_frames(pending + data)
                if out:
                    self._put(out, block=True)
            if pending.strip():
                out, _ = self.split_frames(pending + b"\n")
                self._put(out, block=True)
        finally:
            self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def split_frames(self, data: bytes) -> tuple[bytes, bytes]:
        """Complete frames of ``data`` as LF-ended messages, and the unfinished rest.

        Newline-framed runs are passed through whole (no per-message work); only
        octet-counted frames are cut one by one.

        >>> SyslogListener().split_frames(b"5 <1>ab<2>x\\n3 <3")
        (b'<1>ab\\n<2>x\\n', b'3 <3')
        """
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if 48 <= data[i] <= 57:  # a digit: maybe an octet-counted frame "LEN SP MSG"
                m = _OCTET_COUNT.match(data, i)
                if m is None and _DIGITS.fullmatch(data, i) is not None:
                    break  # only digits so far: wait for the rest of the length
                if m is not None:
                    length = int(m.group(1))
                    start = m.end()
                    if start + length > n:
                        if length <= MAX_FRAME:
                            break  # wait for the rest of the frame
                        self.counts["framing_errors"] += 1  # cut an oversized frame
                    msg = data[start:start + length]
                    out += msg.replace(b"\n", b" ").rstrip(b" ") + b"\n"
                    self.counts["tcp_messages"] += 1
                    i = start + length
                    continue
            # non-transparent framing: everything up to the last LF of the run
            nl = data.rfind(b"\n", i)
            if nl < 0:
                break
            run = data[i:nl + 1]
            out += run
            self.counts["tcp_messages"] += run.count(b"\n")
            i = nl + 1
        return bytes(out), data[i:]
