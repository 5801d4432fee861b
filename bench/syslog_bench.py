"""Syslog listener benchmark: 100,000 lines/s for 60 s over TCP and UDP, and alert latency.

The speed requirement of issue #7: *the syslog listener sustains 100,000 lines/s from a
local sender for 60 seconds with no loss (TCP) and reports what it dropped (UDP); the
time from a line's arrival to an alert is under 5 seconds at that rate.*

What runs, for each protocol asked for (``--proto tcp,udp``):

1. The real service, ``portradar --db TMP/bench.duckdb watch --config TMP/watch.toml``,
   as a subprocess: one syslog input on 127.0.0.1, the shipped defaults
   (``batch_seconds`` 1, ``detect_seconds`` 2, hourly buckets, scanner detection on), a
   JSON-lines alert sink and the Prometheus endpoint, which this script polls.
2. A sender subprocess (this script, ``--role sender``) replaying pre-built wire lines
   at ``--rate`` lines/s, paced every 10 ms, for ``--duration`` seconds.  The lines are
   ``bench/gen_iptables_log.py`` output (4 firewalls, 21 days of event time by
   default), half of the firewalls as RFC 3164 (``<4>Oct  1 00:00:08 fw1 kernel: ...``)
   and half as RFC 5424 (``<4>1 2026-10-01T00:00:02.094436+00:00 fw2 kernel - - - ...``),
   cached in ``bench/data/``.  TCP: two connections, one newline-framed and one
   octet-counted (RFC 6587), alternating every tick.  UDP: one datagram per line, sent
   ``sendmmsg(2)`` 1,024 at a time (Python's per-datagram ``sendto`` would cost the
   sender a whole core).
3. **The campaign.**  At ``--campaign-at`` of the run (default 0.8) the sender slips
   ``--campaign-sources`` lines (default 2,000) into the stream, each from a new source
   (198.18.0.0/15, RFC 2544's benchmarking block) to TCP port 40404, with the event time
   of the stream at that point.  The script watches the JSONL sink; the latency is from
   the send of the first campaign line (and, second figure, the last) to the moment the
   ``open`` notification for port 40404 is in the file.

Why 21 days of event time in 60 s: the spike detector needs weeks of baseline, and a
real 100,000 lines/s firewall has them at that rate too (8.6 billion lines a day), which
no benchmark can store.  The replay is a log collector catching up at 100,000 lines/s:
every line is still received, framed, parsed, stored and detected on in real time.  The
rounds read the newest days' activity from memory (``portradar.watch.open_buckets``), so
the replay's quick succession of days costs them nothing; it does cost the store
refresh (its own thread), which recounts each day once it is dirty.

The report adds the rate from the first stored line to the last (the service's own
pace; counted from the first *send*, the last micro-batch's wait is in it) and the
detection rounds' mean time and CPU, broken down, from the service's counters.

Stages, to tell the listener's cost from the service's:

* ``--stage service`` (default): the whole service as above;
  ``--watch "detect_seconds = 1e9" --watch "scanners = false"`` measures its ingest
  path alone (listener, parser, DuckDB; no detection rounds, so no latency figure);
* ``--stage listener``: :class:`~portradar.watch.syslog_listener.SyslogListener` alone
  in a subprocess, drained every 0.2 s and its lines counted (``--parse``: parsed with
  the iptables reader too), no store.

Accounting printed, each beside its target: lines sent, stored (``event_rows``),
skipped by the parser, and for UDP the listener's own drops (buffer full) and the
kernel's (``/proc/net/udp``'s ``drops`` of the listening socket), which must add up to
the lines sent; lines/s sent and stored (first send to last line stored); the
service's CPU seconds and peak RSS (``VmHWM``) and the sender's CPU; the load average
and the CPU seconds other processes used meanwhile (the machine is shared).

Usage::

    python bench/syslog_bench.py                       # TCP then UDP, 60 s each
    python bench/syslog_bench.py --proto tcp --duration 10 --json out.json
    python bench/syslog_bench.py --watch "detect_seconds = 1e9" --watch "scanners = false"
    python bench/syslog_bench.py --stage listener --parse
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

TARGET_RATE = 100_000
TARGET_SECONDS = 60.0
TARGET_LATENCY_S = 5.0

#: Pacing tick of the sender: 1,000 lines per tick at 100,000 lines/s.
TICK = 0.01
#: A quiet TCP port for the campaign (not among the generator's popular ports).
CAMPAIGN_PORT = 40404
#: Version of the wire file's layout (bump when the same arguments change the bytes).
WIRE_VERSION = 1
#: Event time of the replay starts here, and the generator's RFC 3164 lines have no year.
START = datetime(2026, 10, 1, tzinfo=UTC)

_RFC5424 = re.compile(rb"(?m)^(\d{4}-\d\d-\d\dT\S+) (\S+) kernel: ")
_RFC3164 = re.compile(rb"(?m)^([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ kernel: )")
_HEADER = re.compile(rb"^.*? kernel(?::| - - -) ")


# -- the input ------------------------------------------------------------------------------
def wire_file(lines: int, seed: int, days: float) -> Path:
    """Cached syslog wire lines (one per LF): half RFC 3164, half RFC 5424."""
    sys.path.insert(0, str(HERE))
    import gen_iptables_log as gen

    path = DATA / f"syslog-wire-{lines}-seed{seed}-days{days:g}.log"
    meta_path = path.with_suffix(".meta.json")
    meta = {"lines": lines, "seed": seed, "days": days, "wire_version": WIRE_VERSION,
            "generator_version": gen.GENERATOR_VERSION, "start": START.isoformat()}
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".raw")
    print(f"generating {lines:,} lines ({days:g} days) into {path} ...", file=sys.stderr)
    gen.generate(raw, lines, seed=seed, start=START, days=days,
                 formats=("syslog", "rfc3339"), compress=False)
    with open(raw, "rb") as src, open(path, "wb") as dst:
        rest = b""
        while True:
            block = src.read(64 << 20)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            block, rest = block[:cut], block[cut:]
            block = _RFC5424.sub(rb"<4>1 \1 \2 kernel - - - ", block)
            dst.write(_RFC3164.sub(rb"<4>\1", block))
        dst.write(rest)
    raw.unlink()
    meta_path.write_text(json.dumps(meta) + "\n")
    return path


def campaign_lines(header: bytes, n: int) -> bytes:
    """``n`` probes of TCP ``CAMPAIGN_PORT`` from ``n`` new sources, under ``header``."""
    src = np.arange(n)
    out = []
    for i in src.tolist():  # set-up, a few thousand lines once
        a = f"198.{18 + (i >> 16 & 1)}.{i >> 8 & 255}.{i & 255}"
        out.append(header + (
            f"[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:90:ab:2c:00:00:5e:00:01:cb:08:00 SRC={a} "
            f"DST=192.0.2.{i % 250 + 1} LEN=40 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP "
            f"SPT=61000 DPT={CAMPAIGN_PORT} WINDOW=1024 RES=0x00 SYN URGP=0 \n").encode())
    return b"".join(out)


# -- the sender -----------------------------------------------------------------------------
@numba.njit(cache=True)
def _octet_frame(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, a: int, b: int,
                 out: np.ndarray) -> int:  # pragma: no cover - jit
    """Lines ``a:b`` of ``buf`` as RFC 6587 octet-counted frames in ``out``."""
    o = 0
    digits = np.empty(20, np.uint8)
    for k in range(a, b):
        length = ends[k] - starts[k]
        d = 0
        v = length
        while True:
            digits[d] = 48 + v % 10
            d += 1
            v //= 10
            if v == 0:
                break
        for j in range(d - 1, -1, -1):
            out[o] = digits[j]
            o += 1
        out[o] = 32
        o += 1
        out[o:o + length] = buf[starts[k]:ends[k]]
        o += length
    return o


class _Sendmmsg:
    """``sendmmsg(2)`` of many lines of one buffer on a connected UDP socket."""

    def __init__(self, sock: socket.socket) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fn = libc.sendmmsg
        self.fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self.fn.restype = ctypes.c_int
        self.fd = sock.fileno()
        self.iov = np.zeros((1024, 2), np.uint64)  # struct iovec {base, len}
        self.hdr = np.zeros((1024, 8), np.uint64)  # struct mmsghdr, 64 bytes on 64-bit Linux
        self.hdr[:, 2] = self.iov.ctypes.data + 16 * np.arange(1024, dtype=np.uint64)
        self.hdr[:, 3] = 1

    def send(self, base: int, starts: np.ndarray, ends: np.ndarray) -> int:
        sent = 0
        for i in range(0, len(starts), 1024):  # one call per 1,024 datagrams
            s, e = starts[i:i + 1024], ends[i:i + 1024]
            n = len(s)
            self.iov[:n, 0] = base + s.astype(np.uint64)
            self.iov[:n, 1] = (e - s).astype(np.uint64)
            done = 0
            for _ in range(1000):  # bounded: a partial send only when a buffer is full
                r = self.fn(self.fd, self.hdr.ctypes.data + 64 * done, n - done, 0)
                if r < 0:
                    err = ctypes.get_errno()
                    if err in (11, 4, 105):  # EAGAIN, EINTR, ENOBUFS
                        time.sleep(0.0005)
                        continue
                    raise OSError(err, "sendmmsg")
                done += r
                if done >= n:
                    break
            sent += done
        return sent


def run_sender(args: argparse.Namespace) -> dict[str, Any]:
    """Replay the wire file at ``rate`` with the campaign inside; returns the timings."""
    from portradar.ingest.lines import line_bounds

    mm = np.memmap(args.wire, np.uint8, mode="r")
    total = int(args.rate * args.duration)
    starts_all, ends_all = line_bounds(mm)
    k = args.campaign_sources
    n_bg = min(total - k, len(starts_all))
    c_at = int(args.campaign_at * total)
    line = bytes(mm[starts_all[c_at]:ends_all[c_at]])
    m = _HEADER.match(line)
    header = m.group(0) if m else b"<4>" + line[:40]
    camp = np.frombuffer(campaign_lines(header, k), np.uint8)
    c_starts, c_ends = line_bounds(camp)
    # the stream: background lines [0, c_at), the campaign, background [c_at, n_bg)
    segments = [(mm, starts_all, ends_all, 0, c_at), (camp, c_starts, c_ends, 0, k),
                (mm, starts_all, ends_all, c_at, n_bg)]
    bounds = np.cumsum([0] + [b - a for _, _, _, a, b in segments])
    n_total = int(bounds[-1])
    host, port = args.host, args.port
    out = np.empty(64 << 20, np.uint8)
    socks: list[socket.socket] = []
    mmsg = None
    if args.proto == "tcp":
        socks = [socket.create_connection((host, port)) for _ in range(2)]
    else:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        u.connect((host, port))
        socks = [u]
        mmsg = _Sendmmsg(u)
    cpu0 = os.times()
    t0 = time.monotonic()
    sent = accepted = 0
    tick = 0
    t_first = t_last = None
    deadline = t0 + args.duration * 3 + 30
    while sent < n_total and time.monotonic() < deadline:
        now = time.monotonic()
        due = min(n_total, int(args.rate * (now - t0)) + 1)
        due = min(due, sent + int(args.rate * 0.05))  # at most 50 ms of lines at once
        if due <= sent:
            time.sleep(max(0.0, t0 + (sent + 1) / args.rate - now))
            continue
        if t_first is None and sent <= bounds[1] < due:
            t_first = time.monotonic()
        for si, (buf, st, en, a, _b) in enumerate(segments):
            lo, hi = max(sent, int(bounds[si])), min(due, int(bounds[si + 1]))
            if lo >= hi:
                continue
            la, lb = a + lo - int(bounds[si]), a + hi - int(bounds[si])
            if mmsg is not None:  # datagrams the kernel took, not the ones planned
                accepted += mmsg.send(buf.ctypes.data, st[la:lb], en[la:lb])
            elif tick % 2 == 0:  # newline framing: the lines as they are, LF included
                socks[0].sendall(buf[st[la]:en[lb - 1] + 1].data)
            else:
                o = _octet_frame(buf, st, en, la, lb, out)
                socks[1].sendall(out[:o].data)
        if t_last is None and sent < bounds[2] <= due:
            t_last = time.monotonic()
        sent = due
        tick += 1
        pause = t0 + tick * TICK - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    t_end = time.monotonic()
    for s in socks:
        s.close()
    cpu1 = os.times()
    if mmsg is not None:
        sent = accepted
    return {"sent": sent, "planned": n_total, "t0": t0, "t_end": t_end,
            "campaign_first": t_first, "campaign_last": t_last, "campaign_lines": k,
            "campaign_header": header.decode(errors="replace"),
            "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)}


# -- the service and the measurement ------------------------------------------------------
def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for row in text.splitlines():
        if row and not row.startswith("#"):
            name, _, value = row.rpartition(" ")
            out[name.split("{")[0]] = float(value)
    return out


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_hwm_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return 0.0


def _busy_cpu() -> float:
    """CPU seconds all processes used since boot (``/proc/stat``, not idle or iowait)."""
    cols = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(cols) - cols[3] - cols[4]) / os.sysconf("SC_CLK_TCK")


def _udp_drops(port: int) -> int:
    for row in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = row.split()
        if int(cols[1].split(":")[1], 16) == port:
            return int(cols[-1])
    return 0


@dataclass
class Run:
    proto: str
    rate: int
    duration: float
    stage: str = "service"
    detection_off: bool = False
    sent: int = 0
    planned: int = 0
    stored: int = 0
    records: int = 0
    skipped: int = 0
    dropped_listener: int = 0
    dropped_kernel: int = 0
    send_seconds: float = 0.0
    store_seconds: float = 0.0
    first_stored_s: float | None = None  # after the first send
    last_stored_s: float | None = None  # after the first send
    rounds: dict[str, float] = field(default_factory=dict)
    service_cpu_s: float = 0.0
    sender_cpu_s: float = 0.0
    others_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    load: list[float] = field(default_factory=list)
    latency_first_s: float | None = None
    latency_last_s: float | None = None
    alerts_opened: int = 0
    max_lag_mb: float = 0.0
    receive_buffer: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def sent_rate(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds else 0.0

    @property
    def stored_rate(self) -> float:
        return self.stored / self.store_seconds if self.store_seconds else 0.0

    @property
    def storing_rate(self) -> float:
        """Lines stored per second from the first stored to the last stored (the
        service's own pace: the first and last micro-batch's wait are not in it)."""
        if self.first_stored_s is None or self.last_stored_s is None:
            return 0.0
        return self.stored / max(1e-9, self.last_stored_s - self.first_stored_s)


def bench(proto: str, args: argparse.Namespace, wire: Path) -> Run:
    run = Run(proto, args.rate, args.duration,
              detection_off=any(w.replace(" ", "").startswith("detect_seconds=1e")
                                for w in args.watch))
    if args.watch:
        run.notes.append(f"[watch] overrides: {'; '.join(args.watch)}")
    tmp = Path(tempfile.mkdtemp(prefix="syslog-bench-"))
    port = _free_port(socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    mport = _free_port(socket.SOCK_STREAM)
    sink = tmp / "alerts.jsonl"
    (tmp / "watch.toml").write_text(f"""
[watch]
tz = "UTC"
year = {START.year}
{chr(10).join(args.watch)}
[[input]]
type = "syslog"
host = "127.0.0.1"
{proto} = {port}
[[sink]]
type = "jsonl"
path = "{sink}"
[metrics]
host = "127.0.0.1"
port = {mport}
""")
    exe = shutil.which("portradar")
    cmd = ([exe] if exe else [sys.executable, "-m", "portradar"]) + [
        "--db", str(tmp / "bench.duckdb"), "watch", "--config", str(tmp / "watch.toml")]
    log = open(tmp / "service.log", "wb")  # noqa: SIM115 - closed below
    service = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # up to 60 s for the service to listen
            try:
                _metrics(mport)
                break
            except OSError:
                if service.poll() is not None:
                    text = (tmp / "service.log").read_text()
                    raise RuntimeError(f"service exited: {text}") from None
                time.sleep(0.1)
        # the alert watcher: polls the JSONL sink every 10 ms
        seen: dict[str, float] = {}
        kinds: dict[str, str] = {}
        stop = threading.Event()

        def watch_alerts() -> None:
            pos = 0
            while not stop.is_set():
                if sink.exists():
                    with open(sink, "rb") as fh:
                        fh.seek(pos)
                        chunk = fh.read()
                    cut = chunk.rfind(b"\n") + 1
                    pos += cut
                    now = time.monotonic()
                    for row in chunk[:cut].splitlines():
                        note = json.loads(row)
                        if note["transition"] == "open":  # one open alert per port
                            run.alerts_opened += 1
                            alert = note["alert"]
                            seen.setdefault(f"{alert['proto']}/{alert['port']}", now)
                            kinds.setdefault(f"{alert['proto']}/{alert['port']}",
                                             alert["kind"])
                stop.wait(0.01)

        watcher = threading.Thread(target=watch_alerts, daemon=True)
        watcher.start()
        load0 = os.getloadavg()
        busy0, cpu0 = _busy_cpu(), _proc_cpu(service.pid)
        sender = subprocess.Popen(
            [sys.executable, __file__, "--role", "sender", "--proto", proto,
             "--port", str(port), "--rate", str(args.rate), "--duration", str(args.duration),
             "--wire", str(wire), "--campaign-at", str(args.campaign_at),
             "--campaign-sources", str(args.campaign_sources)],
            stdout=subprocess.PIPE)
        lag = 0.0
        m: dict[str, float] = {}
        t_first_stored = None
        while sender.poll() is None:  # every 0.1 s: when the first line was stored
            try:
                m = _metrics(mport)
                lag = max(lag, m.get("portradar_input_lag_bytes", 0.0))
                if t_first_stored is None and m.get("portradar_input_records_total", 0) > 0:
                    t_first_stored = time.monotonic()
            except OSError:
                pass
            time.sleep(0.1)
        result = json.loads(sender.communicate(timeout=60)[0])
        run.sent, run.planned = result["sent"], result["planned"]
        run.send_seconds = result["t_end"] - result["t0"]
        run.sender_cpu_s = result["cpu_s"]
        # wait until every line is accounted for (TCP) or nothing moves any more (UDP)
        last, still, t_stored = -1.0, 0, time.monotonic()
        for _ in range(6000):  # bounded: 10 min at 0.1 s
            m = _metrics(mport)
            lag = max(lag, m.get("portradar_input_lag_bytes", 0.0))
            done = m["portradar_input_records_total"]
            if done != last:
                last, still, t_stored = done, 0, time.monotonic()
            else:
                still += 1
            lost = m.get("portradar_input_dropped_total", 0)  # listener's + kernel's
            if done + lost >= run.sent and still >= 10 and m["portradar_input_lag_bytes"] == 0:
                break
            if still >= 600:  # a minute without progress
                run.notes.append(f"gave up waiting: {done:.0f} records of {run.sent}")
                break
            time.sleep(0.1)
        run.store_seconds = t_stored - result["t0"]
        run.last_stored_s = t_stored - result["t0"]
        if t_first_stored is not None:
            run.first_stored_s = t_first_stored - result["t0"]
        run.rounds = {k.removeprefix("portradar_").removesuffix("_total"): v
                      for k, v in m.items() if any(w in k for w in (
                          "detections", "detect_", "round_", "refresh", "scan_seconds",
                          "batches"))}
        run.service_cpu_s = _proc_cpu(service.pid) - cpu0
        run.others_cpu_s = max(0.0, _busy_cpu() - busy0 - run.service_cpu_s - run.sender_cpu_s)
        run.peak_rss_mb = _proc_hwm_mb(service.pid)
        run.load = [round(x, 2) for x in (*load0, *os.getloadavg())]
        run.max_lag_mb = lag / (1 << 20)
        if proto == "udp":  # both read now, with nothing moving any more
            m = _metrics(mport)
            run.dropped_kernel = _udp_drops(port)
            run.dropped_listener = int(m.get("portradar_input_dropped_total", 0)
                                       - run.dropped_kernel)
        # the alert: wait a little longer if the campaign has not shown yet
        key = f"tcp/{CAMPAIGN_PORT}"
        for _ in range(300):  # up to 30 s
            if key in seen:
                break
            time.sleep(0.1)
        if key in seen and result["campaign_first"] is not None:
            run.latency_first_s = seen[key] - result["campaign_first"]
            run.latency_last_s = seen[key] - result["campaign_last"]
            run.notes.append(f"the campaign's alert is a {kinds[key]!r} alert")
        stop.set()
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=300)
        except subprocess.TimeoutExpired:
            run.notes.append("service did not stop in 300 s: killed")
            service.kill()
            service.wait()
        import duckdb

        con = duckdb.connect(str(tmp / "bench.duckdb"), read_only=True)
        (stored,) = con.execute("SELECT count(*) FROM event_rows").fetchone() or (0,)
        run.stored = int(stored)
        row = con.execute("SELECT records, skipped FROM watch_positions").fetchone() or (0, 0)
        run.records, run.skipped = int(row[0]), int(row[1])
        con.close()
        return run
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        log.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_listener(args: argparse.Namespace) -> dict[str, Any]:
    """``--role listener``: the listener alone, drained every 0.2 s, lines counted (parsed
    too with ``--parse``), until SIGTERM; prints its port first, then the counts."""
    from portradar.watch.syslog_listener import SyslogListener

    ports = {"udp_port": 0} if args.proto == "udp" else {"tcp_port": 0}
    lis = SyslogListener(host="127.0.0.1", **ports).start()
    addr = lis.udp_address if args.proto == "udp" else lis.tcp_address
    print(json.dumps({"port": addr[1]}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reader = stats = options = None
    if args.parse:
        from portradar.ingest.iptables import IptablesReader
        from portradar.ingest.reader import ReadOptions, ReadStats

        reader, stats, options = IptablesReader(), ReadStats(), ReadOptions(tz="UTC",
                                                                           year=START.year)
    lines = events = 0
    pending = 0
    deadline = time.monotonic() + args.duration * 10 + 300
    while not stop.is_set() and time.monotonic() < deadline:
        pending = max(pending, lis.pending_bytes())
        data = lis.drain()
        lines += data.count(b"\n")  # C code, no Python per line
        if reader is not None and data:
            events += reader.parse_bytes(cast(bytes, data), options, stats).num_rows
        stop.wait(0.2)
    lis.stop()
    data = lis.drain()
    lines += data.count(b"\n")
    if reader is not None and data:
        events += reader.parse_bytes(cast(bytes, data), options, stats).num_rows
    return {"lines": lines, "events": events, "max_pending": pending,
            "counts": dict(lis.counts), "kernel_drops": lis.kernel_drops()}


def bench_listener(proto: str, args: argparse.Namespace, wire: Path) -> Run:
    """The listener alone (and the parser with ``--parse``), no store, no detection."""
    run = Run(proto, args.rate, args.duration, stage="listener+parse" if args.parse
              else "listener")
    cmd = [sys.executable, __file__, "--role", "listener", "--proto", proto,
           "--duration", str(args.duration)] + (["--parse"] if args.parse else [])
    lis = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert lis.stdout is not None
        port = json.loads(lis.stdout.readline())["port"]
        load0 = os.getloadavg()
        busy0, cpu0 = _busy_cpu(), _proc_cpu(lis.pid)
        sender = subprocess.run(
            [sys.executable, __file__, "--role", "sender", "--proto", proto,
             "--port", str(port), "--rate", str(args.rate), "--duration", str(args.duration),
             "--wire", str(wire), "--campaign-at", str(args.campaign_at),
             "--campaign-sources", str(args.campaign_sources)],
            stdout=subprocess.PIPE, check=True, timeout=args.duration * 4 + 120)
        result = json.loads(sender.stdout)
        time.sleep(1.0)  # the last reads
        run.service_cpu_s = _proc_cpu(lis.pid) - cpu0
        run.peak_rss_mb = _proc_hwm_mb(lis.pid)
        lis.send_signal(signal.SIGTERM)
        out, _ = lis.communicate(timeout=120)
        got = json.loads(out.strip().splitlines()[-1])
        run.sent, run.planned = result["sent"], result["planned"]
        run.send_seconds = run.store_seconds = result["t_end"] - result["t0"]
        run.sender_cpu_s = result["cpu_s"]
        run.others_cpu_s = max(0.0, _busy_cpu() - busy0 - run.service_cpu_s - run.sender_cpu_s)
        run.load = [round(x, 2) for x in (*load0, *os.getloadavg())]
        run.stored = got["events"] if args.parse else got["lines"]
        run.records = got["lines"]
        run.max_lag_mb = got["max_pending"] / (1 << 20)
        counts = got["counts"]
        run.dropped_listener = int(counts.get("udp_dropped", 0))
        run.dropped_kernel = int(got["kernel_drops"])
        run.skipped = got["lines"] - got["events"] if args.parse else 0
        run.notes.append(f"listener counts: {counts}")
        return run
    finally:
        if lis.poll() is None:
            lis.kill()
            lis.wait()


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(runs: list[Run]) -> str:
    rows = []
    for r in runs:
        target_n = int(r.rate * r.duration)
        accounted = r.stored + r.skipped + r.dropped_listener + r.dropped_kernel
        rows.append(f"\n== {r.proto.upper()} {r.stage}: {r.rate:,} lines/s x {r.duration:g} s ==")
        rows.append(f"{'figure':32} {'measured':>16}   target")
        rows.append(f"{'lines sent':32} {r.sent:>16,}   {target_n:,}")
        rows.append(f"{'lines/s sent':32} {r.sent_rate:>16,.0f}   >= {r.rate:,} "
                    f"({_verdict(r.sent_rate >= 0.99 * r.rate)})")
        rows.append(f"{'events stored':32} {r.stored:>16,}   "
                    + ("= sent" if r.proto == "tcp" else "sent - dropped"))
        rows.append(f"{'lines/s stored (1st send..last)':32} {r.stored_rate:>16,.0f}   "
                    f"~ lines/s sent")
        if r.first_stored_s is not None and r.last_stored_s is not None:
            rows.append(f"{'lines/s stored (1st..last stored)':32} {r.storing_rate:>16,.0f}   "
                        f">= {r.rate:,} ({_verdict(r.storing_rate >= 0.99 * r.rate)})")
            rows.append(f"{'last stored after last send s':32} "
                        f"{r.last_stored_s - r.send_seconds:>16.2f}   <= batch_seconds + poll")
        n = r.rounds.get("detections", 0)
        if n:
            per = {k: v / n for k, v in r.rounds.items() if k.startswith(("detect_", "round_"))}
            rows.append(f"{'detection rounds':32} {n:>16.0f}")
            rows.append(f"{'round wall s (mean)':32} {per.get('detect_seconds', 0):>16.3f}   "
                        f"cells {per.get('round_cells_seconds', 0):.3f}, spikes "
                        f"{per.get('round_spikes_seconds', 0):.3f}, campaigns+levels "
                        f"{per.get('round_others_seconds', 0):.3f}, alerts "
                        f"{per.get('round_alerts_seconds', 0):.3f}")
            rows.append(f"{'round CPU s (mean)':32} {per.get('detect_cpu_seconds', 0):>16.3f}")
        if r.rounds.get("refreshes"):
            rows.append(f"{'store refreshes, s each':32} {r.rounds['refreshes']:>16.0f}   "
                        f"{r.rounds.get('refresh_seconds', 0) / r.rounds['refreshes']:.2f} s "
                        f"(own thread)")
        if r.rounds.get("scan_seconds"):
            rows.append(f"{'scanner detection s (total)':32} "
                        f"{r.rounds['scan_seconds']:>16.1f}   (own thread)")
        rows.append(f"{'skipped by the parser':32} {r.skipped:>16,}   0")
        if r.proto == "udp":
            rows.append(f"{'dropped by the listener':32} {r.dropped_listener:>16,}   reported")
            rows.append(f"{'dropped by the kernel':32} {r.dropped_kernel:>16,}   reported")
            rows.append(f"{'stored+skipped+dropped':32} {accounted:>16,}   = sent "
                        f"({_verdict(accounted == r.sent)})")
        else:
            rows.append(f"{'loss':32} {r.sent - r.stored:>16,}   0 "
                        f"({_verdict(r.sent == r.stored and r.sent >= target_n)})")
        if r.stage == "service" and not r.detection_off:
            lat = "none" if r.latency_first_s is None else f"{r.latency_first_s:.2f} s"
            lat2 = "none" if r.latency_last_s is None else f"{r.latency_last_s:.2f} s"
            ok = r.latency_first_s is not None and r.latency_first_s < TARGET_LATENCY_S
            rows.append(f"{'alert latency (1st line)':32} {lat:>16}   < {TARGET_LATENCY_S:g} s "
                        f"({_verdict(ok)})")
            rows.append(f"{'alert latency (last line)':32} {lat2:>16}")
            rows.append(f"{'alerts opened':32} {r.alerts_opened:>16}")
        rows.append(f"{r.stage + ' CPU s':32} {r.service_cpu_s:>16.1f}   "
                    f"({r.service_cpu_s / max(r.store_seconds, 1e-9):.2f} cores)")
        rows.append(f"{'sender CPU s':32} {r.sender_cpu_s:>16.1f}")
        rows.append(f"{'other processes CPU s':32} {r.others_cpu_s:>16.1f}   (shared machine)")
        rows.append(f"{r.stage + ' peak RSS MB':32} {r.peak_rss_mb:>16.0f}")
        rows.append(f"{'max bytes waiting MB':32} {r.max_lag_mb:>16.1f}")
        rows.append(f"{'load avg 1/5/15 before, after':32} {r.load}")
        rows.extend(f"note: {n}" for n in r.notes)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--proto", default="tcp,udp", help="tcp, udp or both (default)")
    p.add_argument("--duration", type=float, default=TARGET_SECONDS)
    p.add_argument("--rate", type=int, default=TARGET_RATE)
    p.add_argument("--days", type=float, default=21.0, help="event time the replay covers")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--campaign-at", type=float, default=0.8)
    p.add_argument("--campaign-sources", type=int, default=2000)
    p.add_argument("--stage", default="service", choices=["service", "listener"],
                   help="the whole service (default) or the listener alone")
    p.add_argument("--parse", action="store_true",
                   help="with --stage listener: parse the lines too (iptables reader)")
    p.add_argument("--watch", action="append", default=[], metavar="KEY=VALUE",
                   help="override a [watch] setting of the service (TOML value)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--keep", action="store_true", help="keep the temporary store")
    p.add_argument("--role", default="bench", choices=["bench", "sender", "listener"],
                   help=argparse.SUPPRESS)
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--wire", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "sender":
        print(json.dumps(run_sender(args)))
        return 0
    if args.role == "listener":
        print(json.dumps(run_listener(args)))
        return 0
    wire = wire_file(int(args.rate * args.duration), args.seed, args.days)
    with open(wire, "rb") as fh:  # warm the page cache
        while fh.read(64 << 20):
            pass
    runs = []
    for proto in args.proto.split(","):
        measure = bench_listener if args.stage == "listener" else bench
        runs.append(measure(proto.strip(), args, wire))
        print(report(runs[-1:]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{**r.__dict__, "sent_rate": r.sent_rate, "stored_rate": r.stored_rate,
              "storing_rate": r.storing_rate}
             for r in runs], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
