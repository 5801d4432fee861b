"""Decoder of NetFlow v1, v5, v9 and IPFIX export packets into event columns.

Shared by the file reader (:mod:`portradar.ingest.netflow`) and the UDP listener
(:mod:`portradar.ingest.netflow_listener`): feed it export packets one at a time with
:meth:`NetflowDecoder.feed`, take an event batch with :meth:`NetflowDecoder.take`.
Each flow record becomes one event (mapping and the outcome rule: ``docs/netflow.md``).

Columnar where it counts.  A packet is parsed in Python only down to its sets (one
``struct`` unpack per header and set); the records are not touched there.  Their bytes
are queued per layout (v1, v5, or one v9/IPFIX template) with the header values they
need, and :meth:`~NetflowDecoder.take` turns each queue into columns at once: the
fixed-size records through a numpy structured dtype built from the template
(``np.frombuffer``), templates with variable-length fields through a numba kernel that
drops the variable parts so the same dtype applies.  Events come out in wire order.

Templates (v9, IPFIX) live in a :class:`TemplateCache` keyed by the *session*: exporter
address and UDP port, export version and observation domain (IPFIX) or source id
(v9), which is RFC 7011's Transport Session plus domain (§8) and keeps two exporters
behind one address apart.  A data set that arrives before its template waits in the
cache, up to :data:`MAX_PENDING_SETS` sets and :data:`MAX_PENDING_BYTES` bytes (oldest
dropped first, counted as ``data set before its template``), and is decoded as soon as
the template comes.  Options templates are learnt and their records counted in
:attr:`NetflowDecoder.notes`, not turned into events; the one value read from them is
``systemInitTimeMilliseconds`` (IE 160), which IPFIX exporters such as softflowd send so
that ``flowStartSysUpTime`` (IE 22) can be put on the clock.

A flow that answered a probe flow of the same batch (the target's SYN-ACK or RST flow,
see :func:`reply_outcomes`) sets the probe's outcome and is not an event of its own:
it is counted under :data:`REPLY_REASON` (``NetflowDecoder(keep_replies=True)`` keeps
it, as before).

>>> packet = bytes.fromhex(
...     "0005000100000064" "6553f100" "00000000" "00000001" "00000000"   # v5 header, 1 record
...     "c6336407" "c000020a" "00000000" "00010002" "00000001" "0000002c"  # 198.51.100.7 ->
...     "00000032" "00000032" "d4310016" "00020600" "00000000" "18180000")  # 192.0.2.10:22 SYN
>>> # started at uptime 50 ms, exported at uptime 100 ms = 1700000000 s
>>> decoder = NetflowDecoder()
>>> decoder.feed(packet, "192.0.2.250")
1
>>> row = decoder.take().to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["dport"], row["tcp_flags"], row["outcome"]
('2023-11-14T22:13:19.950000+00:00', '192.0.2.250', 22, 2, 'unanswered')
"""

from __future__ import annotations

import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numba
import numpy as np
import pyarrow as pa

from portradar.events.addresses import V4_MAPPED
from portradar.events.schema import Outcome, empty_batch, make_batch
from portradar.ingest.reader import ReadStats

#: Data sets kept while their template is unknown (all sessions together).  softflowd
#: re-sends templates every 16 packets and Cisco IOS every 20 packets by default, so
#: this covers a full template interval of about fifty exporters.
MAX_PENDING_SETS = 1024
#: Bytes of data sets kept while their template is unknown (about 700 full-size
#: 1,500-byte export packets worth of sets); bounds the memory of a listener facing an
#: exporter that never sends its templates.
MAX_PENDING_BYTES = 1 << 20
#: Templates kept over all sessions (least recently used dropped); 65,279 is the most one
#: session can define, a few hundred is typical of a router.
MAX_TEMPLATES = 1 << 16

V1, V5, V9, IPFIX = 1, 5, 9, 10
VARIABLE_LENGTH = 65535  # IPFIX: the field's length precedes each value (RFC 7011 §7)

_V1_HEADER = struct.Struct("!HHIII")  # version count sysUptime unix_secs unix_nsecs
_V5_HEADER = struct.Struct("!HHIIIIBBH")  # ... flow_sequence engine_type engine_id sampling
_V9_HEADER = struct.Struct("!HHIIII")  # version count sysUptime unix_secs sequence source_id
_IPFIX_HEADER = struct.Struct("!HHIII")  # version length export_time sequence domain
_SET = struct.Struct("!HH")
_U16 = struct.Struct("!H")

#: NetFlow v5 flow record (48 bytes), Cisco's "NetFlow Export Datagram Format".
V5_RECORD = np.dtype([
    ("src", ">u4"), ("dst", ">u4"), ("nexthop", ">u4"), ("input", ">u2"), ("output", ">u2"),
    ("packets", ">u4"), ("bytes", ">u4"), ("first", ">u4"), ("last", ">u4"),
    ("sport", ">u2"), ("dport", ">u2"), ("pad1", "u1"), ("tcp_flags", "u1"), ("proto", "u1"),
    ("tos", "u1"), ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"),
    ("dst_mask", "u1"), ("pad2", ">u2"),
])
#: NetFlow v1 flow record (48 bytes).
V1_RECORD = np.dtype([
    ("src", ">u4"), ("dst", ">u4"), ("nexthop", ">u4"), ("input", ">u2"), ("output", ">u2"),
    ("packets", ">u4"), ("bytes", ">u4"), ("first", ">u4"), ("last", ">u4"),
    ("sport", ">u2"), ("dport", ">u2"), ("pad1", ">u2"), ("proto", "u1"), ("tos", "u1"),
    ("tcp_flags", "u1"), ("pad2", "u1"), ("pad3", ">u2"), ("reserved", ">u4"),
])
assert V5_RECORD.itemsize == 48 and V1_RECORD.itemsize == 48

# --- information elements read (IANA IPFIX registry; v9 uses the same numbers) ----------
IE_OCTETS, IE_PACKETS, IE_PROTO, IE_TCP_FLAGS, IE_SPORT = 1, 2, 4, 6, 7
IE_SRC4, IE_INPUT, IE_DPORT, IE_DST4, IE_OUTPUT = 8, 10, 11, 12, 14
IE_LAST_UPTIME, IE_FIRST_UPTIME, IE_SRC6, IE_DST6 = 21, 22, 27, 28
IE_ICMP4, IE_OCTETS_TOTAL, IE_PACKETS_TOTAL, IE_ICMP6 = 32, 85, 86, 139
IE_START_S, IE_END_S, IE_START_MS, IE_END_MS = 150, 151, 152, 153
IE_START_US, IE_END_US, IE_START_NS, IE_END_NS = 154, 155, 156, 157
IE_START_DELTA_US, IE_END_DELTA_US, IE_SYSTEM_INIT_MS = 158, 159, 160
IE_ICMP4_TYPE, IE_ICMP4_CODE, IE_ICMP6_TYPE, IE_ICMP6_CODE = 176, 177, 178, 179
IE_UDP_SPORT, IE_UDP_DPORT, IE_TCP_SPORT, IE_TCP_DPORT = 180, 181, 182, 183

_ADDRESS_IES = {IE_SRC4: 4, IE_DST4: 4, IE_SRC6: 16, IE_DST6: 16}
_WANTED = {
    IE_OCTETS, IE_PACKETS, IE_PROTO, IE_TCP_FLAGS, IE_SPORT, IE_SRC4, IE_INPUT, IE_DPORT,
    IE_DST4, IE_OUTPUT, IE_LAST_UPTIME, IE_FIRST_UPTIME, IE_SRC6, IE_DST6, IE_ICMP4,
    IE_OCTETS_TOTAL, IE_PACKETS_TOTAL, IE_ICMP6, IE_START_S, IE_END_S, IE_START_MS,
    IE_END_MS, IE_START_US, IE_END_US, IE_START_NS, IE_END_NS, IE_START_DELTA_US,
    IE_END_DELTA_US, IE_SYSTEM_INIT_MS, IE_ICMP4_TYPE, IE_ICMP4_CODE, IE_ICMP6_TYPE,
    IE_ICMP6_CODE, IE_UDP_SPORT, IE_UDP_DPORT, IE_TCP_SPORT, IE_TCP_DPORT,
}
#: Protocols whose flow keys carry ports: TCP, UDP, DCCP, SCTP, UDP-Lite.
PORT_PROTOCOLS = (6, 17, 33, 132, 136)
_NTP_EPOCH_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01 (RFC 7011 §6.1.9)
_U32 = 1 << 32

# --- skip reasons (grouped by these strings in the ingest summary) ----------------------
TOO_SHORT = "packet too short for a NetFlow/IPFIX header"
BAD_VERSION = "not a NetFlow v1/v5/v9 or IPFIX packet"
TRUNCATED = "truncated export packet"
BAD_SET = "malformed set header"
BAD_TEMPLATE = "malformed template record"
OVERRUN = "flow record overruns its set"
NO_TEMPLATE = "data set before its template"
NO_ADDRESSES = "flow record without IPv4/IPv6 addresses"
#: How the reply flows are counted (the flows of the answering side, paired by
#: :func:`reply_outcomes`): not stored (a reply is its probe's outcome; as an event it
#: would count the target as a source probing the scanner's ephemeral port) and never an
#: error, not even in strict mode.
REPLY_REASON = "reply flow to a flow in the export (stored as that flow's outcome)"


class Session(NamedTuple):
    """Where a template is valid: one exporter process's stream for one domain."""

    exporter: str  # address as text
    port: int  # exporter's UDP source port, 0 when unknown
    version: int  # 9 or 10
    domain: int  # IPFIX observation domain id / v9 source id


@dataclass(frozen=True, eq=False)
class Template:
    """One (options) template: its fields in order and the layout derived from them.

    ``fields`` holds ``(element id, length, enterprise number)``; ``length`` is
    :data:`VARIABLE_LENGTH` for a variable-length field; enterprise 0 is IANA.

    >>> t = Template(256, ((8, 4, 0), (12, 4, 0), (1, 65535, 0), (4, 1, 0)))
    >>> t.record_length is None, t.min_length, t.fixed_length, t.dtype.names
    (True, 10, 9, ('ie8', 'ie12', 'ie4'))
    """

    template_id: int
    fields: tuple[tuple[int, int, int], ...]
    is_options: bool = False  # an options template: its records describe the exporter

    @cached_property
    def record_length(self) -> int | None:
        """Bytes per record, or None when a field has a variable length."""
        if any(length == VARIABLE_LENGTH for _, length, _ in self.fields):
            return None
        return sum(length for _, length, _ in self.fields)

    @cached_property
    def fixed_length(self) -> int:
        """Bytes per record once the variable-length fields are dropped."""
        return sum(length for _, length, _ in self.fields if length != VARIABLE_LENGTH)

    @cached_property
    def min_length(self) -> int:
        """The shortest possible record (a variable-length field takes at least one byte)."""
        return sum(1 if length == VARIABLE_LENGTH else length for _, length, _ in self.fields)

    @cached_property
    def field_lengths(self) -> np.ndarray:
        """Length of each field, -1 for variable (the numba kernel's input)."""
        return np.array([-1 if length == VARIABLE_LENGTH else length
                         for _, length, _ in self.fields], np.int64)

    @cached_property
    def dtype(self) -> np.dtype:
        """Structured dtype over the fixed part of a record, one member per element read.

        Enterprise-specific fields, repeats of an element and lengths that make no sense
        for the element are left out (their bytes are still stepped over).
        """
        names: list[str] = []
        formats: list[Any] = []
        offsets: list[int] = []
        offset = 0
        for ie, length, enterprise in self.fields:
            if length == VARIABLE_LENGTH:
                continue
            name = f"ie{ie}"
            if enterprise == 0 and ie in _WANTED and name not in names:
                fmt = _format_for(ie, length)
                if fmt is not None:
                    names.append(name)
                    formats.append(fmt)
                    offsets.append(offset)
            offset += length
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": max(offset, 1)})


def _format_for(ie: int, length: int) -> Any:
    """numpy format of one element of ``length`` bytes, or None to leave it out."""
    if ie in _ADDRESS_IES:
        if length != _ADDRESS_IES[ie]:
            return None
        return ">u4" if length == 4 else (">u8", (2,))
    if length in (1, 2, 4, 8):
        return "u1" if length == 1 else f">u{length}"
    if 2 < length < 8:  # reduced-size encoding (RFC 7011 §6.2) of odd width
        return ("u1", (length,))
    return None


class _PendingSet(NamedTuple):
    key: tuple[Session, int]
    body: bytes
    context: tuple[int, int, int, int, int]  # export ms, sysUptime ms, -, -, sequence


class TemplateCache:
    """Templates, options values and early data sets, per :class:`Session`.

    >>> cache = TemplateCache()
    >>> s = Session("192.0.2.1", 4739, IPFIX, 0)
    >>> cache.learn(s, Template(256, ((8, 4, 0),)))
    >>> cache.template(s, 256).template_id, cache.template(s, 257), len(cache)
    (256, None, 1)
    """

    def __init__(self, *, max_templates: int = MAX_TEMPLATES,
                 max_pending_sets: int = MAX_PENDING_SETS,
                 max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self.max_templates = max_templates
        self.max_pending_sets = max_pending_sets
        self.max_pending_bytes = max_pending_bytes
        self._templates: OrderedDict[tuple[Session, int], Template] = OrderedDict()
        self._pending: deque[_PendingSet] = deque()
        self._pending_keys: Counter[tuple[Session, int]] = Counter()
        self._pending_bytes = 0
        self.system_init_ms: dict[Session, int] = {}

    def __len__(self) -> int:
        return len(self._templates)

    def template(self, session: Session, template_id: int) -> Template | None:
        key = (session, template_id)
        found = self._templates.get(key)
        if found is not None:
            self._templates.move_to_end(key)
        return found

    def learn(self, session: Session, template: Template) -> None:
        """Keep ``template``; a re-sent identical template keeps the object already held
        (exporters refresh templates every few packets, and records of one template
        object are decoded together)."""
        key = (session, template.template_id)
        held = self._templates.get(key)
        if held is None or held.fields != template.fields or (
                held.is_options != template.is_options):
            self._templates[key] = template
        self._templates.move_to_end(key)
        while len(self._templates) > self.max_templates:
            self._templates.popitem(last=False)

    def withdraw(self, session: Session, template_id: int | None) -> int:
        """Forget one template, or all of a session's (``None``); returns how many."""
        keys = [k for k in self._templates
                if k[0] == session and (template_id is None or k[1] == template_id)]
        for k in keys:
            del self._templates[k]
        return len(keys)

    # --- data sets waiting for their template ---------------------------------------
    @property
    def pending_sets(self) -> int:
        return len(self._pending)

    def park(self, item: _PendingSet) -> list[_PendingSet]:
        """Keep a data set until its template comes; returns the sets evicted for room."""
        self._pending.append(item)
        self._pending_keys[item.key] += 1
        self._pending_bytes += len(item.body)
        evicted = []
        while self._pending and (len(self._pending) > self.max_pending_sets
                                 or self._pending_bytes > self.max_pending_bytes):
            evicted.append(self._drop_oldest())
        return evicted

    def unpark(self, key: tuple[Session, int]) -> list[_PendingSet]:
        """The waiting data sets of one template, oldest first, removed from the cache."""
        if not self._pending_keys.get(key):
            return []
        found = [p for p in self._pending if p.key == key]
        self._pending = deque(p for p in self._pending if p.key != key)
        del self._pending_keys[key]
        self._pending_bytes -= sum(len(p.body) for p in found)
        return found

    def drain(self) -> list[_PendingSet]:
        """Every waiting data set, removed (end of input)."""
        items = list(self._pending)
        self._pending.clear()
        self._pending_keys.clear()
        self._pending_bytes = 0
        return items

    def _drop_oldest(self) -> _PendingSet:
        item = self._pending.popleft()
        self._pending_keys[item.key] -= 1
        if self._pending_keys[item.key] <= 0:
            del self._pending_keys[item.key]
        self._pending_bytes -= len(item.body)
        return item


@numba.njit(cache=True, nogil=True)
def _walk_records(body: np.ndarray, lengths: np.ndarray, min_length: int, out: np.ndarray,
                  fill: bool) -> tuple[int, int]:  # pragma: no cover - jit
    """Count (and with ``fill`` copy the fixed fields of) variable-length records."""
    size = body.shape[0]
    count = 0
    pos = 0
    while size - pos >= min_length:
        p = pos
        k = 0
        for j in range(lengths.shape[0]):
            n = lengths[j]
            if n < 0:
                if p >= size:
                    return count, 1
                n = np.int64(body[p])
                p += 1
                if n == 255:
                    if p + 2 > size:
                        return count, 1
                    n = (np.int64(body[p]) << 8) | np.int64(body[p + 1])
                    p += 2
                if p + n > size:
                    return count, 1
            else:
                if p + n > size:
                    return count, 1
                if fill:
                    for b in range(n):
                        out[count, k + b] = body[p + b]
                k += n
            p += n
        count += 1
        pos = p
    return count, 0


def compact_records(body: np.ndarray, lengths: np.ndarray, fixed_length: int,
                    min_length: int) -> tuple[np.ndarray, int]:
    """Records of a template with variable-length fields, the variable parts dropped.

    Returns a ``(records, fixed_length)`` uint8 matrix and a status: 0 when the set
    ended on a record boundary or in padding shorter than ``min_length``, 1 when a
    record overran the set (the records before it are returned).

    >>> body = bytes([1, 2, 0xAA, 0xBB,  9, 0,  4, 255, 0, 1, 0xCC,  7])  # 1 byte, then var
    >>> out, status = compact_records(np.frombuffer(body, np.uint8), np.array([1, -1]), 1, 2)
    >>> out.ravel().tolist(), status  # the lone last byte is padding
    ([1, 9, 4], 0)
    """
    lengths = lengths.astype(np.int64)
    n, status = _walk_records(body, lengths, min_length, np.empty((0, fixed_length), np.uint8),
                              False)
    out = np.empty((n, fixed_length), np.uint8)
    _walk_records(body, lengths, min_length, out, True)
    return out, status


def _uint(rec: np.ndarray, ie: int) -> np.ndarray | None:
    """Values of one element as uint64 (None when the template lacks it)."""
    name = f"ie{ie}"
    if rec.dtype.names is None or name not in rec.dtype.names:
        return None
    col = rec[name]
    if col.ndim == 2:  # odd-width integer: big-endian bytes
        acc = np.zeros(len(col), np.uint64)
        for i in range(col.shape[1]):
            acc = (acc << np.uint64(8)) | col[:, i].astype(np.uint64)
        return acc
    return col.astype(np.uint64)


def _ntp_to_us(value: np.ndarray) -> np.ndarray:
    """NTP-format timestamps (dateTimeMicro/Nanoseconds) to µs since 1970."""
    seconds = (value >> np.uint64(32)).astype(np.int64) - _NTP_EPOCH_OFFSET_S
    fraction = ((value & np.uint64(0xFFFF_FFFF)) * np.uint64(1_000_000)) >> np.uint64(32)
    return seconds * 1_000_000 + fraction.astype(np.int64)


def outcome_for_flags(proto: np.ndarray, flags: np.ndarray | None) -> np.ndarray:
    """The outcome of each flow judged alone, from its protocol and OR of TCP flags.

    * TCP with SYN and without ACK or RST → unanswered: the sender never acknowledged a
      SYN-ACK in this record, so no handshake completed for this probe (a silent drop
      and a RST cannot be told apart from one direction; :func:`reply_outcomes` tells
      them apart when the reverse flow is at hand);
    * TCP with SYN, ACK and PSH or FIN → established: handshake, then data or a close;
    * everything else → unknown (SYN+RST is the half-open scan of an *open* port, or an
      aborted connect; SYN+ACK alone is a responder's SYN-ACK, perhaps reset by a
      scanner).

    >>> outcome_for_flags(np.array([6, 6, 6, 6, 17]), np.array([0x02, 0x1b, 0x06, 0x12, 0]))
    array([4, 5, 0, 0, 0], dtype=int32)
    """
    out = np.zeros(len(proto), np.int32)
    if flags is None:
        return out
    tcp = proto == 6
    syn = (flags & 0x02) != 0
    ack = (flags & 0x10) != 0
    rst = (flags & 0x04) != 0
    data_or_fin = (flags & 0x09) != 0
    out[tcp & syn & ~ack & ~rst] = int(Outcome.UNANSWERED)
    out[tcp & syn & ack & data_or_fin] = int(Outcome.ESTABLISHED)
    return out


#: How long after a probe flow starts its reply flow may start: Linux retries an
#: unanswered SYN 6 times (``tcp_syn_retries``) after 1, 2, 4, 8, 16 and 32 s, so a
#: reply to any of the SYNs of one flow record starts within 63 s.
REPLY_WINDOW_US = 63_000_000
#: A reply may appear to start this much *before* its probe: flow starts are rounded to
#: milliseconds, v9 times go through sysUptime, and one record may hold SYN retries.
REPLY_SKEW_US = 1_000_000


def reply_outcomes(outcome: np.ndarray, ts: np.ndarray, src_hi: np.ndarray,
                   src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
                   sport: np.ndarray, dport: np.ndarray, proto: np.ndarray,
                   flags: np.ndarray, replies: np.ndarray | None = None, *,
                   icmp_type: np.ndarray | None = None, icmp_code: np.ndarray | None = None,
                   packets: np.ndarray | None = None) -> np.ndarray:
    """Refine the outcome of probes whose reply flow is in the same batch.

    NetFlow records are one-way, but an exporter that sees both directions (softflowd,
    a router on a symmetric path) exports the reply as its own record.  Three kinds of
    reply, each starting within :data:`REPLY_WINDOW_US` after its probe (less
    :data:`REPLY_SKEW_US`):

    * **TCP**: a probe is a flow with SYN and without ACK; its reply is the flow with the
      reversed 5-tuple: with SYN+ACK → accepted (the target answered; a half-open scan's
      SYN+RST probe is the usual case); with RST (and no SYN) → rejected (closed port).
    * **Conversations (TCP and UDP)**: flows of both directions of one 5-tuple; the side
      that sent first started it (on the same millisecond, the side sending *to* the
      lower port, the service's), and the other side's flows are its replies (the
      server's half of a completed TCP connection, a DNS answer): a UDP starter's flow
      is accepted (as a UDP reply is in a capture: something listens); a TCP starter's
      keeps the outcome its own flags or its SYN-ACK / RST gave.
    * **ICMP/ICMPv6 echo**: an echo reply flow (type 0, ICMPv6 129; needs ``icmp_type``)
      from B to A answers A's echo request flow to B (type 8, ICMPv6 128): accepted.
    * **ICMP/ICMPv6 destination unreachable** (type 3 but "fragmentation needed", ICMPv6
      type 1; needs ``icmp_type``) from B to A is a reply when A sent B a flow less than
      the window before it.  NetFlow aggregates A's errors from B into one flow whose
      ``packets`` counts them: when the unanswered UDP, other-protocol and TCP SYN
      probes A sent B in that span are no more than those packets, each got its error
      and is rejected; when there are more, which ones did cannot be told and their
      outcomes stand.  An error from a router on the path (another source than B)
      answers nothing here and stays an event.
    * no reply in the batch → the single-flow outcome stands.

    ``flags`` is -1 where unknown.  The joins run in Polars over the probes and replies
    only, so they cost nothing on batches without them.

    ``replies`` (a boolean array, one per flow), when given, gets True for every flow
    that was paired as the reply of a probe (the readers drop those: they are the
    probe's outcome, not probes).  A reply-like flow that answers no probe of the batch
    (backscatter, or a reply later than the window) stays False.

    >>> z = np.zeros(3, np.uint64)
    >>> a, b = np.full(3, 0xFFFF_0A00_0001, np.uint64), np.full(3, 0xFFFF_0A00_0002, np.uint64)
    >>> src_lo, dst_lo = np.array([a[0], b[0], a[0]]), np.array([b[0], a[0], b[0]])
    >>> seen = np.zeros(3, np.bool_)
    >>> reply_outcomes(np.array([4, 0, 4]), np.array([0, 1000, 0]), z, src_lo, z, dst_lo,
    ...                np.array([40000, 22, 40001]), np.array([22, 40000, 22]),
    ...                np.full(3, 6), np.array([0x02, 0x14, 0x02]), replies=seen).tolist()
    [2, 0, 4]
    >>> seen.tolist()  # the RST flow answered the first probe
    [False, True, False]
    """
    if replies is not None and (replies.shape != (len(outcome),)
                                or replies.dtype != np.bool_):
        raise ValueError("replies must be a boolean array with one entry per flow")
    out = outcome
    paired = replies if replies is not None else np.zeros(len(outcome), np.bool_)
    tcp = (proto == 6) & (flags >= 0)
    syn = (flags & 0x02) != 0
    ack = (flags & 0x10) != 0
    rst = (flags & 0x04) != 0
    probe = np.flatnonzero(tcp & syn & ~ack)
    reply = np.flatnonzero(tcp & ((syn & ack) | (rst & ~syn)))
    if len(probe) and len(reply):
        out = _tcp_replies(out, ts, src_hi, src_lo, dst_hi, dst_lo, sport, dport, syn,
                           probe, reply, paired)
    conv = np.flatnonzero(((proto == 17) | (proto == 6)) & (sport >= 0) & (dport >= 0))
    if len(conv) > 1:
        out = _conversation_replies(out, ts, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
                                    proto, conv, paired)
    if icmp_type is not None:
        request = np.flatnonzero(((proto == 1) & (icmp_type == 8))
                                 | ((proto == 58) & (icmp_type == 128)))
        echo = np.flatnonzero(((proto == 1) & (icmp_type == 0))
                              | ((proto == 58) & (icmp_type == 129)))
        if len(request) and len(echo):
            out = _echo_replies(out, ts, src_hi, src_lo, dst_hi, dst_lo, request, echo,
                                paired)
        code = icmp_code if icmp_code is not None else np.zeros(len(outcome), np.int64)
        error = np.flatnonzero(((proto == 1) & (icmp_type == 3) & (code != 4))
                               | ((proto == 58) & (icmp_type == 1)))
        if len(error):
            count = packets if packets is not None else np.ones(len(outcome), np.int64)
            out = _icmp_replies(out, ts, src_hi, src_lo, dst_hi, dst_lo, proto, flags,
                                error, count, paired)
    return out


def _tcp_replies(outcome: np.ndarray, ts: np.ndarray, src_hi: np.ndarray,
                 src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
                 sport: np.ndarray, dport: np.ndarray, syn: np.ndarray, probe: np.ndarray,
                 reply: np.ndarray, paired: np.ndarray) -> np.ndarray:
    import polars as pl  # only when there is something to pair

    keys = ["a_hi", "a_lo", "b_hi", "b_lo", "a_port", "b_port"]
    probes = pl.DataFrame({
        "a_hi": src_hi[probe], "a_lo": src_lo[probe], "b_hi": dst_hi[probe],
        "b_lo": dst_lo[probe], "a_port": sport[probe], "b_port": dport[probe],
        "ts": ts[probe], "i": probe})
    backs = pl.DataFrame({
        "a_hi": dst_hi[reply], "a_lo": dst_lo[reply], "b_hi": src_hi[reply],
        "b_lo": src_lo[reply], "a_port": dport[reply], "b_port": sport[reply],
        "ts_reply": ts[reply], "accepted": syn[reply], "j": reply})
    matched = (
        probes.join(backs, on=keys, how="inner")
        .filter((pl.col("ts_reply") >= pl.col("ts") - REPLY_SKEW_US)
                & (pl.col("ts_reply") <= pl.col("ts") + REPLY_WINDOW_US))
    )
    if matched.height == 0:
        return outcome
    paired[matched["j"].to_numpy()] = True
    answered = matched.group_by("i").agg(pl.col("accepted").any())
    out = outcome.copy()
    out[answered["i"].to_numpy()] = np.where(answered["accepted"].to_numpy(),
                                             int(Outcome.ACCEPTED), int(Outcome.REJECTED))
    return out


def _conversation_replies(outcome: np.ndarray, ts: np.ndarray, src_hi: np.ndarray,
                          src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
                          sport: np.ndarray, dport: np.ndarray, proto: np.ndarray,
                          conv: np.ndarray, paired: np.ndarray) -> np.ndarray:
    """TCP and UDP conversations: the starter's flows answered by the other side's (see
    :func:`reply_outcomes`)."""
    import polars as pl

    s_hi, s_lo, d_hi, d_lo = src_hi[conv], src_lo[conv], dst_hi[conv], dst_lo[conv]
    sp, dp = sport[conv].astype(np.int64), dport[conv].astype(np.int64)
    # one key per conversation: its two ends in a fixed order; ``fwd``: this flow goes
    # from the first end to the second
    fwd = (s_hi < d_hi) | ((s_hi == d_hi) & ((s_lo < d_lo) | ((s_lo == d_lo) & (sp <= dp))))
    df = pl.DataFrame({
        "e1_hi": np.where(fwd, s_hi, d_hi), "e1_lo": np.where(fwd, s_lo, d_lo),
        "e2_hi": np.where(fwd, d_hi, s_hi), "e2_lo": np.where(fwd, d_lo, s_lo),
        "e1_port": np.where(fwd, sp, dp), "e2_port": np.where(fwd, dp, sp),
        "proto": proto[conv].astype(np.int16), "fwd": fwd, "ts": ts[conv],
        "to_service": dp < sp, "i": conv})
    keys = ["proto", "e1_hi", "e1_lo", "e2_hi", "e2_lo", "e1_port", "e2_port"]
    both = (df.group_by(keys).agg(pl.col("fwd").n_unique().alias("sides"))
            .filter(pl.col("sides") == 2).drop("sides"))
    if both.height == 0:
        return outcome
    df = df.join(both, on=keys, how="semi")
    starter = (df.sort(["ts", "to_service", "i"], descending=[False, True, False])
               .group_by(keys, maintain_order=True).first()
               .select([*keys, pl.col("fwd").alias("starter_fwd")]))
    df = df.join(starter, on=keys, how="inner")
    starts = df.filter(pl.col("fwd") == pl.col("starter_fwd")).select([*keys, "ts", "i"])
    backs = (df.filter(pl.col("fwd") != pl.col("starter_fwd"))
             .select([*keys, pl.col("ts").alias("ts_reply"), pl.col("i").alias("j")]))
    matched = starts.join(backs, on=keys, how="inner").filter(
        (pl.col("ts_reply") >= pl.col("ts") - REPLY_SKEW_US)
        & (pl.col("ts_reply") <= pl.col("ts") + REPLY_WINDOW_US))
    if matched.height == 0:
        return outcome
    paired[matched["j"].unique().to_numpy()] = True
    starters = matched.filter(pl.col("proto") == 17)["i"].unique().to_numpy()
    if not len(starters):
        return outcome
    out = outcome.copy()
    out[starters] = np.where(out[starters] == int(Outcome.UNKNOWN), int(Outcome.ACCEPTED),
                             out[starters])
    return out


def _echo_replies(outcome: np.ndarray, ts: np.ndarray, src_hi: np.ndarray,
                  src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
                  request: np.ndarray, echo: np.ndarray, paired: np.ndarray) -> np.ndarray:
    """Echo replies from B answering A's echo requests to B (see :func:`reply_outcomes`)."""
    import polars as pl

    keys = ["a_hi", "a_lo", "b_hi", "b_lo"]
    asked = pl.DataFrame({"a_hi": src_hi[request], "a_lo": src_lo[request],
                          "b_hi": dst_hi[request], "b_lo": dst_lo[request],
                          "ts": ts[request], "i": request})
    answers = pl.DataFrame({"a_hi": dst_hi[echo], "a_lo": dst_lo[echo],
                            "b_hi": src_hi[echo], "b_lo": src_lo[echo],
                            "ts_reply": ts[echo], "j": echo})
    matched = asked.join(answers, on=keys, how="inner").filter(
        (pl.col("ts_reply") >= pl.col("ts") - REPLY_SKEW_US)
        & (pl.col("ts_reply") <= pl.col("ts") + REPLY_WINDOW_US))
    if matched.height == 0:
        return outcome
    paired[matched["j"].unique().to_numpy()] = True
    out = outcome.copy()
    out[matched["i"].unique().to_numpy()] = int(Outcome.ACCEPTED)
    return out


#: Outcomes a probe may have before an ICMP error makes it rejected: none known yet
#: (UDP, other protocols) or a TCP SYN nobody answered in the batch.
_OPEN_OUTCOMES = (int(Outcome.UNKNOWN), int(Outcome.UNANSWERED))


def _icmp_replies(outcome: np.ndarray, ts: np.ndarray, src_hi: np.ndarray,
                  src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
                  proto: np.ndarray, flags: np.ndarray, error: np.ndarray,
                  count: np.ndarray, paired: np.ndarray) -> np.ndarray:
    """ICMP destination unreachables from a probed host (see :func:`reply_outcomes`)."""
    import polars as pl

    is_error = np.zeros(len(outcome), np.bool_)
    is_error[error] = True
    sent = np.flatnonzero(~is_error & ~paired & (proto != 1) & (proto != 58))
    if not len(sent):
        return outcome
    keys = ["a_hi", "a_lo", "b_hi", "b_lo"]
    probes = pl.DataFrame({
        "a_hi": src_hi[sent], "a_lo": src_lo[sent], "b_hi": dst_hi[sent],
        "b_lo": dst_lo[sent], "ts": ts[sent], "i": sent,
        "open": np.isin(outcome[sent], _OPEN_OUTCOMES)
        & ((proto[sent] != 6) | (((flags[sent] & 0x02) != 0) & ((flags[sent] & 0x10) == 0)))})
    errors = pl.DataFrame({
        "a_hi": dst_hi[error], "a_lo": dst_lo[error], "b_hi": src_hi[error],
        "b_lo": src_lo[error], "ts_error": ts[error], "j": error,
        "n": np.maximum(count[error], 1).astype(np.int64)})
    matched = probes.join(errors, on=keys, how="inner").filter(
        (pl.col("ts_error") >= pl.col("ts") - REPLY_SKEW_US)
        & (pl.col("ts_error") <= pl.col("ts") + REPLY_WINDOW_US))
    if matched.height == 0:
        return outcome
    paired[matched["j"].unique().to_numpy()] = True
    # per pair of hosts: the errors that answered something, and the open probes they may
    # have answered; all of those rejected when the errors are enough for each
    host_errors = (matched.unique("j").group_by(keys).agg(pl.col("n").sum().alias("errors")))
    open_probes = (matched.filter(pl.col("open")).unique("i")
                   .join(host_errors, on=keys, how="inner"))
    enough = open_probes.filter(pl.len().over(keys) <= pl.col("errors"))
    if enough.height == 0:
        return outcome
    out = outcome.copy()
    out[enough["i"].to_numpy()] = int(Outcome.REJECTED)
    return out


@dataclass
class _Columns:
    """Event columns of one group of records, before they become a batch."""

    seq: np.ndarray
    ts: np.ndarray
    exporter: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    proto: np.ndarray
    sport: np.ndarray  # int32, -1 null
    dport: np.ndarray
    tcp_flags: np.ndarray  # int16, -1 null
    icmp_type: np.ndarray
    icmp_code: np.ndarray
    packets: np.ndarray
    bytes: np.ndarray  # int64, -1 null
    in_if: np.ndarray  # int64, -1 null
    out_if: np.ndarray


@dataclass
class _Queue:
    """Record bytes of one layout waiting for :meth:`NetflowDecoder.take`."""

    bodies: list[bytes] = field(default_factory=list)
    # per set: sequence, records, export time (ms), sysUptime (ms), exporter, session
    context: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    records: int = 0


class NetflowDecoder:
    """Export packets in, event batches out; keeps templates between packets.

    ``sensor`` names every event; by default each event is named for its exporter's
    address.  Counters kept for the listener and the docs: :attr:`notes` (templates
    learnt, options records, flows timed by export time, ...) and
    :attr:`skipped_by_exporter` (skip reasons per exporter address).

    ``keep_replies``: a flow paired by :func:`reply_outcomes` as the reply that decided
    a probe flow's outcome (the target's SYN-ACK or RST flow) is, by default, counted
    under :data:`REPLY_REASON` and not made an event, because as an event it would count
    the target as a source probing the scanner's ephemeral port; ``keep_replies=True``
    makes it an event too, outcome ``unknown`` (the pairing tests use it).  The probe
    keeps its own ``packets`` and ``bytes``: the reply's are not added.
    """

    def __init__(self, *, cache: TemplateCache | None = None, sensor: str | None = None,
                 keep_replies: bool = False) -> None:
        self.cache = cache if cache is not None else TemplateCache()
        self.sensor = sensor
        self.keep_replies = keep_replies
        self.notes: Counter[str] = Counter()
        self.skipped_by_exporter: dict[str, Counter[str]] = {}
        self._exporters: list[str] = []
        self._exporter_index: dict[str, int] = {}
        self._sessions: list[Session] = []
        self._session_index: dict[Session, int] = {}
        self._legacy: dict[int, _Queue] = {V1: _Queue(), V5: _Queue()}
        self._groups: dict[Template, _Queue] = {}
        self._seq = 0
        self._records = 0

    @property
    def pending_records(self) -> int:
        """Flow records fed and not yet taken (those waiting for a template excluded)."""
        return self._records

    @property
    def pending_sets(self) -> int:
        """Data sets waiting for their template."""
        return self.cache.pending_sets

    # --- feeding ----------------------------------------------------------------------
    def feed(self, packet: bytes, exporter: str, *, port: int = 0,
             stats: ReadStats | None = None, learn_only: bool = False) -> int:
        """Queue the flow records of one export packet; returns how many were queued.

        ``exporter`` is the sender's address (the sensor name by default) and ``port`` its
        UDP source port (0 if unknown).  ``learn_only`` keeps templates and options
        values and ignores flow records (re-reading the part of a file already stored).
        """
        stats = stats if stats is not None else ReadStats()
        before = self._records
        if len(packet) < 4:
            self._skip(stats, exporter, TOO_SHORT, detail=f"{len(packet)} bytes")
            return 0
        version = _U16.unpack_from(packet)[0]
        if version in (V1, V5):
            self._feed_legacy(packet, version, exporter, stats, learn_only)
        elif version in (V9, IPFIX):
            self._feed_templated(packet, version, exporter, port, stats, learn_only)
        else:
            self._skip(stats, exporter, BAD_VERSION, detail=f"version word 0x{version:04x}")
        return self._records - before

    def _feed_legacy(self, packet: bytes, version: int, exporter: str, stats: ReadStats,
                     learn_only: bool) -> None:
        header = _V5_HEADER if version == V5 else _V1_HEADER
        if len(packet) < header.size:
            self._skip(stats, exporter, TOO_SHORT, detail=f"v{version}, {len(packet)} bytes")
            return
        fields = header.unpack_from(packet)
        count, uptime, secs, nsecs = fields[1], fields[2], fields[3], fields[4]
        end = header.size + 48 * count
        if end > len(packet):
            self._skip(stats, exporter, TRUNCATED,
                       detail=f"v{version} header says {count} records, "
                              f"{len(packet)} bytes hold {(len(packet) - header.size) // 48}")
            return
        if learn_only or count == 0:
            return
        queue = self._legacy[version]
        queue.bodies.append(packet[header.size:end])
        queue.context.append((self._next_seq(), count, secs * 1000 + nsecs // 1_000_000,
                              uptime, self._exporter(exporter), -1))
        queue.records += count
        self._records += count
        stats.records += count

    def _feed_templated(self, packet: bytes, version: int, exporter: str, port: int,
                        stats: ReadStats, learn_only: bool) -> None:
        if version == V9:
            if len(packet) < _V9_HEADER.size:
                self._skip(stats, exporter, TOO_SHORT, detail=f"v9, {len(packet)} bytes")
                return
            _, _, uptime, secs, _, domain = _V9_HEADER.unpack_from(packet)
            pos, end = _V9_HEADER.size, len(packet)
            template_set, options_set = 0, 1
        else:
            if len(packet) < _IPFIX_HEADER.size:
                self._skip(stats, exporter, TOO_SHORT, detail=f"IPFIX, {len(packet)} bytes")
                return
            _, length, secs, _, domain = _IPFIX_HEADER.unpack_from(packet)
            uptime = 0
            if length > len(packet) or length < _IPFIX_HEADER.size:
                self._skip(stats, exporter, TRUNCATED,
                           detail=f"IPFIX header says {length} bytes, packet has {len(packet)}")
                return
            pos, end = _IPFIX_HEADER.size, length
            template_set, options_set = 2, 3
        session = Session(exporter, port, version, domain)
        context = (secs * 1000, uptime)
        while end - pos >= _SET.size:
            set_id, set_length = _SET.unpack_from(packet, pos)
            if set_length < _SET.size or pos + set_length > end:
                if version == V9 and set_id == 0 and set_length == 0 and not any(
                        packet[pos:end]):
                    break  # zero padding after the last flowset (seen from some exporters)
                self._skip(stats, exporter, BAD_SET,
                           detail=f"set id {set_id} length {set_length} at byte {pos}")
                return
            body = packet[pos + _SET.size:pos + set_length]
            pos += set_length
            if set_id == template_set:
                self._learn_templates(body, session, False, stats, learn_only)
            elif set_id == options_set:
                self._learn_templates(body, session, True, stats, learn_only)
            elif set_id >= 256:
                self._data_set(session, set_id, body, context, stats, learn_only)
            else:
                self.notes[f"sets with reserved id {set_id}"] += 1

    def _learn_templates(self, body: bytes, session: Session, options: bool, stats: ReadStats,
                         learn_only: bool) -> None:
        ipfix = session.version == IPFIX
        pos, end = 0, len(body)
        while end - pos >= 4:
            template_id, count = _U16.unpack_from(body, pos)[0], _U16.unpack_from(body, pos + 2)[0]
            pos += 4
            if options and ipfix and count:  # scope field count: the scope comes first
                if end - pos < 2:
                    self._skip(stats, session.exporter, BAD_TEMPLATE,
                               detail=f"options template {template_id} cut short")
                    return
                pos += 2
            elif options and not ipfix:  # v9: byte lengths of the scope and option fields
                if end - pos < 2:
                    self._skip(stats, session.exporter, BAD_TEMPLATE,
                               detail=f"options template {template_id} cut short")
                    return
                count = (count + _U16.unpack_from(body, pos)[0]) // 4
                pos += 2
            if count == 0:
                if not ipfix:  # v9 has no withdrawal; a zero here is padding
                    return
                dropped = self.cache.withdraw(
                    session, None if template_id in (2, 3) else template_id)
                self.notes["templates withdrawn"] += dropped
                continue
            if template_id < 256:
                self._skip(stats, session.exporter, BAD_TEMPLATE,
                           detail=f"template id {template_id} is below 256")
                return
            fields: list[tuple[int, int, int]] = []
            for _ in range(count):
                if end - pos < 4:
                    self._skip(stats, session.exporter, BAD_TEMPLATE,
                               detail=f"template {template_id} cut short")
                    return
                ie, length = _U16.unpack_from(body, pos)[0], _U16.unpack_from(body, pos + 2)[0]
                pos += 4
                enterprise = 0
                if ipfix and ie & 0x8000:
                    if end - pos < 4:
                        self._skip(stats, session.exporter, BAD_TEMPLATE,
                                   detail=f"template {template_id} cut short")
                        return
                    enterprise = struct.unpack_from("!I", body, pos)[0]
                    pos += 4
                    ie &= 0x7FFF
                if length == 0 or (length == VARIABLE_LENGTH and not ipfix):
                    self._skip(stats, session.exporter, BAD_TEMPLATE,
                               detail=f"template {template_id} field {ie} length {length}")
                    return
                fields.append((ie, length, enterprise))
            template = Template(template_id, tuple(fields), options)
            self.cache.learn(session, template)
            self.notes["options templates learnt" if options else "templates learnt"] += 1
            for waiting in self.cache.unpark((session, template_id)):
                self._data_set(session, template_id, waiting.body, waiting.context[:2], stats,
                               learn_only, seq=waiting.context[4])

    def _data_set(self, session: Session, template_id: int, body: bytes,
                  context: tuple[int, int], stats: ReadStats, learn_only: bool,
                  seq: int | None = None) -> None:
        template = self.cache.template(session, template_id)
        if template is None:
            if learn_only:
                return
            item = _PendingSet((session, template_id), body,
                               (*context, 0, 0, self._next_seq()))
            for old in self.cache.park(item):
                self._skip(stats, old.key[0].exporter, NO_TEMPLATE,
                           detail=f"template {old.key[1]}, {len(old.body)} bytes; "
                                  f"the wait is bounded to {self.cache.max_pending_sets} sets")
            return
        if template.record_length is not None:
            n = len(body) // template.record_length if template.record_length else 0
            records = body[:n * template.record_length]
        else:
            matrix, status = compact_records(np.frombuffer(body, np.uint8),
                                             template.field_lengths, template.fixed_length,
                                             template.min_length)
            n = matrix.shape[0]
            records = matrix.tobytes()
            if status:
                self._skip(stats, session.exporter, OVERRUN, detail=f"template {template_id}")
        if n == 0:
            return
        if template.is_options:
            self.notes["options records"] += n
            init = _uint(np.frombuffer(records, template.dtype), IE_SYSTEM_INIT_MS)
            if init is not None:
                self.cache.system_init_ms[session] = int(init[-1])
            return
        if learn_only:
            return
        queue = self._groups.get(template)
        if queue is None:
            queue = self._groups[template] = _Queue()
        queue.bodies.append(records)
        queue.context.append((self._next_seq() if seq is None else seq, n, context[0],
                              context[1], self._exporter(session.exporter),
                              self._session(session)))
        queue.records += n
        self._records += n
        stats.records += n

    # --- taking -----------------------------------------------------------------------
    def take(self, stats: ReadStats | None = None) -> pa.RecordBatch:
        """Every queued flow record as one event batch, in wire order; empties the queue.

        Reply flows paired with a probe of the batch are counted in ``stats`` under
        :data:`REPLY_REASON` rather than returned (unless ``keep_replies``).
        """
        stats = stats if stats is not None else ReadStats()
        parts: list[_Columns] = []
        for version, queue in self._legacy.items():
            if queue.records:
                parts.append(self._legacy_columns(version, queue))
        for template, queue in self._groups.items():
            if queue.records:
                part = self._template_columns(template, queue, stats)
                if part is not None:
                    parts.append(part)
        self._legacy = {V1: _Queue(), V5: _Queue()}
        self._groups = {}
        self._records = 0
        if not parts:
            return empty_batch()
        return self._batch(parts, stats)

    def finish(self, stats: ReadStats | None = None) -> None:
        """Count the data sets still waiting for a template as skipped (end of input)."""
        stats = stats if stats is not None else ReadStats()
        left = self.cache.drain()
        by_key = Counter(item.key for item in left)
        for (session, template_id), n in by_key.items():
            self._skip(stats, session.exporter, NO_TEMPLATE, count=n,
                       detail=f"template {template_id} never arrived ({n} sets)")

    def _legacy_columns(self, version: int, queue: _Queue) -> _Columns:
        rec = np.frombuffer(b"".join(queue.bodies), V5_RECORD if version == V5 else V1_RECORD)
        ctx = np.array(queue.context, np.int64)
        counts = ctx[:, 1]
        export_ms = np.repeat(ctx[:, 2], counts)
        uptime = np.repeat(ctx[:, 3], counts)
        first = rec["first"].astype(np.int64)
        start_ms = export_ms - ((uptime - first) % _U32)
        proto = rec["proto"]
        dport = rec["dport"].astype(np.int32)
        sport = rec["sport"].astype(np.int32)
        icmp_type, icmp_code = _icmp_from_port(proto, dport)
        sport, dport = _ports_for(proto, sport, dport)
        flags = rec["tcp_flags"].astype(np.int16)
        return _Columns(
            seq=np.repeat(ctx[:, 0], counts), ts=start_ms * 1000,
            exporter=np.repeat(ctx[:, 4], counts).astype(np.int32),
            src_hi=np.zeros(len(rec), np.uint64),
            src_lo=rec["src"].astype(np.uint64) | np.uint64(V4_MAPPED),
            dst_hi=np.zeros(len(rec), np.uint64),
            dst_lo=rec["dst"].astype(np.uint64) | np.uint64(V4_MAPPED),
            proto=proto.astype(np.uint8), sport=sport, dport=dport,
            tcp_flags=np.where(proto == 6, flags, -1).astype(np.int16),
            icmp_type=icmp_type, icmp_code=icmp_code,
            packets=rec["packets"].astype(np.int64), bytes=rec["bytes"].astype(np.int64),
            in_if=_interface(rec["input"]), out_if=_interface(rec["output"]),
        )

    def _template_columns(self, template: Template, queue: _Queue,
                          stats: ReadStats) -> _Columns | None:
        rec = np.frombuffer(b"".join(queue.bodies), template.dtype)
        n = len(rec)
        ctx = np.array(queue.context, np.int64)
        counts = ctx[:, 1]
        seq = np.repeat(ctx[:, 0], counts)
        exporter = np.repeat(ctx[:, 4], counts).astype(np.int32)
        session_idx = np.repeat(ctx[:, 5], counts)

        src_hi, src_lo, dst_hi, dst_lo, ok = _addresses(rec)
        if ok is None:
            for e in np.unique(exporter):
                self._skip(stats, self._exporters[e], NO_ADDRESSES,
                           count=int(np.count_nonzero(exporter == e)),
                           detail=f"template {template.template_id} has no address fields")
            return None

        ts = self._start_times(template, rec, ctx, counts, session_idx)
        proto = _protocol(rec, template)
        sport = _first_of(rec, (IE_SPORT, IE_TCP_SPORT, IE_UDP_SPORT), -1)
        dport = _first_of(rec, (IE_DPORT, IE_TCP_DPORT, IE_UDP_DPORT), -1)
        icmp_type, icmp_code = _icmp_from_port(proto, dport)
        for typecode, t_ie, c_ie, p in ((IE_ICMP4, IE_ICMP4_TYPE, IE_ICMP4_CODE, 1),
                                        (IE_ICMP6, IE_ICMP6_TYPE, IE_ICMP6_CODE, 58)):
            value = _uint(rec, typecode)
            is_p = proto == p
            if value is not None:
                icmp_type = np.where(is_p, (value >> np.uint64(8)).astype(np.int16), icmp_type)
                icmp_code = np.where(is_p, (value & np.uint64(0xFF)).astype(np.int16), icmp_code)
            t_v, c_v = _uint(rec, t_ie), _uint(rec, c_ie)
            if t_v is not None:
                icmp_type = np.where(is_p, t_v.astype(np.int16), icmp_type)
            if c_v is not None:
                icmp_code = np.where(is_p, c_v.astype(np.int16), icmp_code)
        sport, dport = _ports_for(proto, sport, dport)
        flags_v = _uint(rec, IE_TCP_FLAGS)
        tcp_flags = (np.full(n, -1, np.int16) if flags_v is None else
                     np.where(proto == 6, (flags_v & np.uint64(0xFF)).astype(np.int16), -1))
        packets = _first_of(rec, (IE_PACKETS, IE_PACKETS_TOTAL), 1)
        octets = _first_of(rec, (IE_OCTETS, IE_OCTETS_TOTAL), -1)
        in_v, out_v = _uint(rec, IE_INPUT), _uint(rec, IE_OUTPUT)
        cols = _Columns(
            seq=seq, ts=ts, exporter=exporter, src_hi=src_hi, src_lo=src_lo,
            dst_hi=dst_hi, dst_lo=dst_lo, proto=proto, sport=sport, dport=dport,
            tcp_flags=tcp_flags.astype(np.int16), icmp_type=icmp_type.astype(np.int16),
            icmp_code=icmp_code.astype(np.int16), packets=packets, bytes=octets,
            in_if=_interface(in_v) if in_v is not None else np.full(n, -1, np.int64),
            out_if=_interface(out_v) if out_v is not None else np.full(n, -1, np.int64),
        )
        if ok is not True:
            bad = ~ok
            for e in np.unique(exporter[bad]):
                self._skip(stats, self._exporters[e], NO_ADDRESSES,
                           count=int(np.count_nonzero(exporter[bad] == e)),
                           detail=f"template {template.template_id}: all address fields zero")
            cols = _Columns(**{k: v[ok] for k, v in vars(cols).items()})
        return cols

    def _start_times(self, template: Template, rec: np.ndarray, ctx: np.ndarray,
                     counts: np.ndarray, session_idx: np.ndarray) -> np.ndarray:
        """Flow start in µs since 1970 from the best time element the template has."""
        export_ms = np.repeat(ctx[:, 2], counts)
        for start, end in ((IE_START_MS, IE_END_MS), (IE_START_S, IE_END_S),
                           (IE_START_US, IE_END_US), (IE_START_NS, IE_END_NS),
                           (IE_START_DELTA_US, IE_END_DELTA_US),
                           (IE_FIRST_UPTIME, IE_LAST_UPTIME)):
            value, ie = _uint(rec, start), start
            if value is None:
                value, ie = _uint(rec, end), end
            if value is None:
                continue
            if ie != start:
                self.notes["flows timed by their end (no start element)"] += len(rec)
            if ie in (IE_START_MS, IE_END_MS):
                return value.astype(np.int64) * 1000
            if ie in (IE_START_S, IE_END_S):
                return value.astype(np.int64) * 1_000_000
            if ie in (IE_START_US, IE_END_US, IE_START_NS, IE_END_NS):
                return _ntp_to_us(value)
            if ie in (IE_START_DELTA_US, IE_END_DELTA_US):
                return export_ms * 1000 - value.astype(np.int64)
            return self._uptime_times(value.astype(np.int64), ctx, counts, session_idx,
                                      export_ms)
        self.notes["flows timed by the export time (no time element)"] += len(rec)
        return export_ms * 1000

    def _uptime_times(self, value: np.ndarray, ctx: np.ndarray, counts: np.ndarray,
                      session_idx: np.ndarray, export_ms: np.ndarray) -> np.ndarray:
        """``flowStartSysUpTime``: v9 against the header's sysUptime, IPFIX against IE 160."""
        uptime = np.repeat(ctx[:, 3], counts)
        versions = np.array([s.version for s in self._sessions], np.int64)[session_idx]
        v9_ms = export_ms - ((uptime - value) % _U32)
        init = np.array([self.cache.system_init_ms.get(s, -1) for s in self._sessions],
                        np.int64)[session_idx]
        ipfix_ms = np.where(init >= 0, init + value, export_ms)
        unknown = int(np.count_nonzero((versions == IPFIX) & (init < 0)))
        if unknown:
            self.notes["IPFIX flows timed by the export time (no systemInitTime yet)"] += unknown
        return np.where(versions == V9, v9_ms, ipfix_ms) * 1000

    def _batch(self, parts: list[_Columns], stats: ReadStats) -> pa.RecordBatch:
        cols = {k: np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])}
        order = np.argsort(cols["seq"], kind="stable")
        if not np.array_equal(order, np.arange(len(order))):
            cols = {k: v[order] for k, v in cols.items()}
        n = len(order)
        flags = cols["tcp_flags"]
        replies = None if self.keep_replies else np.zeros(n, np.bool_)
        outcome = reply_outcomes(
            outcome_for_flags(cols["proto"], np.where(flags < 0, 0, flags)), cols["ts"],
            cols["src_hi"], cols["src_lo"], cols["dst_hi"], cols["dst_lo"], cols["sport"],
            cols["dport"], cols["proto"], flags.astype(np.int64), replies=replies,
            icmp_type=cols["icmp_type"], icmp_code=cols["icmp_code"], packets=cols["packets"])
        if replies is not None and (n_replies := int(np.count_nonzero(replies))):
            # the target's reply flows are the probes' outcomes, not probes of their own
            per_exporter = np.bincount(cols["exporter"][replies],
                                       minlength=len(self._exporters))
            for e in np.flatnonzero(per_exporter):
                self.skipped_by_exporter.setdefault(
                    self._exporters[e], Counter())[REPLY_REASON] += int(per_exporter[e])
            stats.skipped[REPLY_REASON] += n_replies  # counted, never an error
            keep = np.flatnonzero(~replies)
            cols = {k: v[keep] for k, v in cols.items()}
            outcome = outcome[keep]
            n = len(keep)
        if self.sensor is not None:
            sensor: Any = self.sensor
        else:
            sensor = pa.DictionaryArray.from_arrays(
                pa.array(cols["exporter"], pa.int32()), pa.array(self._exporters, pa.string()))
        proto = cols["proto"]
        flags = cols["tcp_flags"]
        return make_batch({
            "ts": cols["ts"],
            "sensor": sensor,
            "src_hi": cols["src_hi"], "src_lo": cols["src_lo"],
            "dst_hi": cols["dst_hi"], "dst_lo": cols["dst_lo"],
            "proto": proto,
            "sport": _nullable(cols["sport"], pa.uint16()),
            "dport": _nullable(cols["dport"], pa.uint16()),
            "tcp_flags": _nullable(flags, pa.uint8()),
            "icmp_type": _nullable(cols["icmp_type"], pa.uint8()),
            "icmp_code": _nullable(cols["icmp_code"], pa.uint8()),
            "outcome": outcome,
            "in_iface": _interface_names(cols["in_if"]),
            "out_iface": _interface_names(cols["out_if"]),
            "packets": np.minimum(cols["packets"], 0xFFFF_FFFF).astype(np.uint32),
            "bytes": _nullable(cols["bytes"], pa.uint64()),
            "format": "netflow",
        }, n=n)

    # --- bookkeeping ------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _exporter(self, name: str) -> int:
        idx = self._exporter_index.get(name)
        if idx is None:
            idx = self._exporter_index[name] = len(self._exporters)
            self._exporters.append(name)
        return idx

    def _session(self, session: Session) -> int:
        idx = self._session_index.get(session)
        if idx is None:
            idx = self._session_index[session] = len(self._sessions)
            self._sessions.append(session)
        return idx

    def _skip(self, stats: ReadStats, exporter: str, reason: str, *, count: int = 1,
              detail: str | None = None) -> None:
        self.skipped_by_exporter.setdefault(exporter, Counter())[reason] += count
        stats.skip(reason, count=count, detail=f"exporter {exporter}: {detail}"
                   if detail else f"exporter {exporter}")


def _addresses(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          Any]:
    """Address pairs of each record, and which records have one (True: all, None: none)."""
    n = len(rec)
    names = rec.dtype.names or ()
    has4 = "ie8" in names and "ie12" in names
    has6 = "ie27" in names and "ie28" in names
    zeros = np.zeros(n, np.uint64)
    if not has4 and not has6:
        return zeros, zeros, zeros, zeros, None
    if has4:
        s4 = rec["ie8"].astype(np.uint64)
        d4 = rec["ie12"].astype(np.uint64)
        v4 = (zeros, s4 | np.uint64(V4_MAPPED), zeros, d4 | np.uint64(V4_MAPPED))
        if not has6:
            return (*v4, True)
    if has6:
        s6 = rec["ie27"].astype(np.uint64)
        d6 = rec["ie28"].astype(np.uint64)
        v6 = (s6[:, 0].copy(), s6[:, 1].copy(), d6[:, 0].copy(), d6[:, 1].copy())
        if not has4:
            return (*v6, True)
    # both families in one template: the one whose fields are set, per record
    use6 = (s4 == 0) & (d4 == 0)
    pick = tuple(np.where(use6, a6, a4) for a4, a6 in zip(v4, v6, strict=True))
    ok = ~(use6 & (s6[:, 0] == 0) & (s6[:, 1] == 0) & (d6[:, 0] == 0) & (d6[:, 1] == 0))
    return (*pick, True if ok.all() else ok)  # type: ignore[return-value]


#: Elements that imply the protocol when a template has no ``protocolIdentifier``
#: (softflowd's ICMP templates carry 32 or 139 and no IE 4).
_PROTOCOL_HINTS = ((IE_ICMP4, 1), (IE_ICMP4_TYPE, 1), (IE_ICMP4_CODE, 1), (IE_ICMP6, 58),
                   (IE_ICMP6_TYPE, 58), (IE_ICMP6_CODE, 58), (IE_TCP_SPORT, 6),
                   (IE_TCP_DPORT, 6), (IE_UDP_SPORT, 17), (IE_UDP_DPORT, 17))


def _protocol(rec: np.ndarray, template: Template) -> np.ndarray:
    """protocolIdentifier, else the protocol the template's elements imply, else 0."""
    value = _uint(rec, IE_PROTO)
    if value is not None:
        return value.astype(np.uint8)
    names = rec.dtype.names or ()
    for ie, proto in _PROTOCOL_HINTS:
        if f"ie{ie}" in names:
            return np.full(len(rec), proto, np.uint8)
    return np.zeros(len(rec), np.uint8)


def _first_of(rec: np.ndarray, ies: Iterable[int], missing: int) -> np.ndarray:
    for ie in ies:
        value = _uint(rec, ie)
        if value is not None:
            return np.minimum(value, np.uint64(np.iinfo(np.int64).max)).astype(np.int64)
    return np.full(len(rec), missing, np.int64)


def _icmp_from_port(proto: np.ndarray, dport: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICMP type and code from the destination port (Cisco's ``type << 8 | code``)."""
    icmp = ((proto == 1) | (proto == 58)) & (dport >= 0)
    return (np.where(icmp, dport >> 8, -1).astype(np.int16),
            np.where(icmp, dport & 0xFF, -1).astype(np.int16))


def _ports_for(proto: np.ndarray, sport: np.ndarray,
               dport: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    has_ports = np.isin(proto, PORT_PROTOCOLS)
    return (np.where(has_ports, sport, -1).astype(np.int32),
            np.where(has_ports, dport, -1).astype(np.int32))


def _interface(values: np.ndarray) -> np.ndarray:
    """SNMP ifIndex, with 0 (unknown, RFC 3954) as -1."""
    v = values.astype(np.int64)
    return np.where(v == 0, -1, v)


def _interface_names(values: np.ndarray) -> pa.Array:
    """ifIndex numbers (-1: none) as dictionary strings, formatted by Arrow per distinct."""
    missing = values < 0
    if missing.all():
        return pa.nulls(len(values), pa.dictionary(pa.int32(), pa.string()))
    encoded = pa.array(values, mask=missing if missing.any() else None).dictionary_encode()
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(pa.int32()),
                                          encoded.dictionary.cast(pa.string()))


def _nullable(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    missing = values < 0
    clean = np.where(missing, 0, values)
    return pa.array(clean, mask=missing if missing.any() else None).cast(arrow_type)


def decode_packets(packets: Iterable[bytes], exporter: str = "127.0.0.1", *,
                   stats: ReadStats | None = None,
                   decoder: NetflowDecoder | None = None) -> pa.RecordBatch:
    """Decode a sequence of export packets from one exporter into one batch (tests, tools).

    >>> decode_packets([b"\\xff\\xff" * 8]).num_rows
    0
    """
    decoder = decoder if decoder is not None else NetflowDecoder()
    stats = stats if stats is not None else ReadStats()
    for packet in packets:
        decoder.feed(packet, exporter, stats=stats)
    batch = decoder.take(stats)
    stats.events += batch.num_rows
    return batch
