"""numba kernels of the pcap reader: walk capture records and decode packet headers.

Two kinds of kernel, both compiled with ``cache=True`` and run without the GIL:

* **Walkers** find the packets in a block of raw capture bytes.
  :func:`walk_pcap_records` walks classic pcap record headers;
  :func:`walk_pcapng_blocks` walks pcapng blocks, returns at every control block
  (section header, interface description) so the reader can parse it in Python (there
  are a handful per file), and turns per-interface timestamps (``if_tsresol``,
  ``if_tsoffset``) into microseconds.  A walker is called twice on the same bytes:
  once to count the records (``fill=False``), once to fill arrays of exactly that
  size, so no block ever allocates for the worst case.  It stops at the first record
  that is not complete in the block and says why (:data:`WALK_NEED_MORE` and the
  corrupt-framing codes).
* **The decoder** :func:`decode_frames` turns each packet into event fields: link
  layer (Ethernet with any number of 802.1Q/802.1ad tags up to
  :data:`MAX_VLAN_TAGS`, Linux SLL and SLL2, raw IP, BSD null/loop, pflog), IPv4 and
  IPv6 (extension headers skipped, up to :data:`MAX_IPV6_EXT_HEADERS`), then TCP, UDP
  (and UDP-Lite, SCTP, DCCP ports), ICMP and ICMPv6.  For an ICMP destination
  unreachable it also decodes the quoted header of the packet that caused it, which
  is how a UDP probe is paired with its "port unreachable" in
  :mod:`portradar.ingest.probe_outcome`.  A frame that yields no event gets a
  ``status`` code (:data:`SKIP_REASONS`) and a ``detail`` (the ethertype, address
  family, ...); the reader counts them by reason.

The decoder is shared by every container: the walkers and any other source of frames
(``bench/pcap_candidates.py`` feeds it pcapy-ng's ``next_batch`` output) only have to
say where each frame starts, its captured and original length and its link type.

>>> import numpy as np
>>> frame = bytes.fromhex(
...     "ffffffffffff" "020000000001" "0800"                    # Ethernet, IPv4
...     "4500002c1c4640004006" "0000" "c0000201" "c6336402"    # 192.0.2.1 -> 198.51.100.2
...     "d431" "0016" "00000064" "00000000" "6002" "0400" "0000" "0000" "020405b4")
>>> buf = np.frombuffer(frame, np.uint8)
>>> one = np.zeros(1, np.int64)
>>> cols = frame_columns(decode_frames(buf, one, one + len(frame), one + len(frame),
...                                    np.full(1, LINKTYPE_ETHERNET, np.int32)))
>>> int(cols["status"][0]), int(cols["proto"][0]), int(cols["sport"][0]), int(cols["dport"][0])
(0, 6, 54321, 22)
>>> hex(int(cols["src_lo"][0])), int(cols["tcp_flags"][0]), int(cols["ttl"][0]), int(cols["ip_len"][0])
('0xffffc0000201', 2, 64, 44)
>>> skip_reason(SKIP_NOT_IP_ETHERTYPE, 0x0806)
'not IP (ethertype 0x0806)'
"""

from __future__ import annotations

import numba
import numpy as np

from portradar.events.schema import Outcome

# --- link types (https://www.tcpdump.org/linktypes.html) ---------------------------------
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_BSD = 12  # DLT_RAW on most BSDs, written as-is by some tools
LINKTYPE_RAW_OPENBSD = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_PFLOG = 117
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
#: Link type given to a pcapng packet whose interface was never described.
LINKTYPE_UNDECLARED = -1

#: The link types the decoder understands, with the names tcpdump gives them.
SUPPORTED_LINKTYPES: dict[int, str] = {
    LINKTYPE_NULL: "NULL (BSD loopback)",
    LINKTYPE_ETHERNET: "EN10MB (Ethernet)",
    LINKTYPE_RAW_BSD: "RAW (BSD, 12)",
    LINKTYPE_RAW_OPENBSD: "RAW (OpenBSD, 14)",
    LINKTYPE_RAW: "RAW (raw IP)",
    LINKTYPE_LOOP: "LOOP (OpenBSD loopback)",
    LINKTYPE_LINUX_SLL: "LINUX_SLL (Linux cooked v1)",
    LINKTYPE_PFLOG: "PFLOG (OpenBSD/FreeBSD pf)",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2 (Linux cooked v2)",
}

# --- tuning bounds (every loop in a kernel is bounded) ------------------------------------
#: 802.1Q/802.1ad tags peeled off one frame.  QinQ uses two; four leaves room for
#: provider backbone stacks and stops a frame of repeated 0x8100 from looping.
MAX_VLAN_TAGS = 4
#: IPv6 extension headers followed before giving up on the transport header.  RFC 8200
#: section 4.1 recommends at most one of each of about six kinds; eight is generous.
MAX_IPV6_EXT_HEADERS = 8
#: Shortest pflog header a decoder accepts (tcpdump's ``MIN_PFLOG_HDRLEN``, 45 bytes:
#: the header up to and including the rule fields).
MIN_PFLOG_HDRLEN = 45

# --- walker results ------------------------------------------------------------------------
WALK_NEED_MORE = 0  # next record incomplete in this block; detail = bytes it needs
WALK_CONTROL = 1  # pcapng section header / interface description at stop position
WALK_CORRUPT_LENGTH = 2  # record or block length impossible; detail = the length
WALK_OVER_SNAPLEN = 3  # caplen above the file's snaplen (reported in strict mode only)
WALK_BAD_TRAILER = 4  # pcapng trailing block length differs; detail = trailing length
WALK_PACKET_OVERRUN = 5  # pcapng packet data longer than its block; detail = caplen

# --- address families in null/loop/pflog headers ------------------------------------------
AF_INET = 2
#: AF_INET6 is 10 on Linux, 24 on OpenBSD/NetBSD, 28 on FreeBSD and 30 on macOS;
#: a capture carries the value of the machine that wrote it.
AF_INET6_VALUES = (10, 24, 28, 30)

# --- why a frame gave no event --------------------------------------------------------------
SKIP_NONE = 0
SKIP_UNSUPPORTED_LINKTYPE = 1
SKIP_NOT_IP_ETHERTYPE = 2
SKIP_NOT_IP_LLC = 3
SKIP_NOT_IP_FAMILY = 4
SKIP_NOT_IP_VERSION = 5
SKIP_TRUNCATED_LINK = 6
SKIP_TRUNCATED_IP = 7
SKIP_BAD_IP_VERSION = 8
SKIP_BAD_IPV4_IHL = 9
SKIP_BAD_PFLOG = 10
SKIP_UNDECLARED_INTERFACE = 11
SKIP_TOO_MANY_VLAN_TAGS = 12

#: Text of each skip code; ``{}`` takes the frame's detail value.
SKIP_REASONS: dict[int, str] = {
    SKIP_UNSUPPORTED_LINKTYPE: "unsupported link type {}",
    SKIP_NOT_IP_ETHERTYPE: "not IP (ethertype 0x{:04x})",
    SKIP_NOT_IP_LLC: "not IP (802.3/LLC frame)",
    SKIP_NOT_IP_FAMILY: "not IP (address family {})",
    SKIP_NOT_IP_VERSION: "not IP (IP version {})",
    SKIP_TRUNCATED_LINK: "truncated link-layer header (link type {})",
    SKIP_TRUNCATED_IP: "truncated IP header",
    SKIP_BAD_IP_VERSION: "IP header with version {} where the link layer says otherwise",
    SKIP_BAD_IPV4_IHL: "IPv4 header length {} below 20 bytes",
    SKIP_BAD_PFLOG: "pflog header length {} below 45 bytes",
    SKIP_UNDECLARED_INTERFACE: "pcapng packet on an undeclared interface",
    SKIP_TOO_MANY_VLAN_TAGS: "more than 4 VLAN tags",
}

#: Codes of frames that are fine but carry no IP (ARP, STP, ...): counted as ignored,
#: never an error, even in strict mode.  Every other code is a malformed frame.
NOT_IP_CODES = frozenset(
    {
        SKIP_UNSUPPORTED_LINKTYPE,
        SKIP_NOT_IP_ETHERTYPE,
        SKIP_NOT_IP_LLC,
        SKIP_NOT_IP_FAMILY,
        SKIP_NOT_IP_VERSION,
    }
)

# --- what the transport fields of a frame hold (the ``l4`` column) -------------------------
L4_NONE = 0  # no transport header: unknown protocol, later fragment, cut by snaplen
L4_PORTS = 1  # ports only: UDP, UDP-Lite, SCTP, DCCP, or a TCP header cut short
L4_TCP = 2  # full TCP header: ports, flags, window, sequence number
L4_ICMP = 3  # ICMP or ICMPv6 type and code

_PFLOG_PASS = 0  # pf's PF_PASS
_PFLOG_DROP = 1  # pf's PF_DROP
_ACCEPTED = int(Outcome.ACCEPTED)
_BLOCKED = int(Outcome.BLOCKED)
_UNKNOWN = int(Outcome.UNKNOWN)
_V4_MAPPED = np.uint64(0xFFFF_0000_0000)

#: Names of the arrays :func:`decode_frames` returns, in order.
FRAME_FIELDS = (
    "status", "detail", "family", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "l4",
    "sport", "dport", "tcp_flags", "tcp_window", "tcp_seq", "icmp_type", "icmp_code",
    "icmp_ident", "ttl", "ip_id", "ip_len", "verdict", "link_off",
    "q_ok", "q_src_hi", "q_src_lo", "q_dst_hi", "q_dst_lo", "q_proto", "q_ports",
)  # fmt: skip


def frame_columns(arrays: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """Name the arrays returned by :func:`decode_frames`."""
    return dict(zip(FRAME_FIELDS, arrays, strict=True))


def skip_reason(code: int, detail: int) -> str:
    """The human reason for skip ``code`` with its ``detail`` value."""
    text = SKIP_REASONS.get(code, "undecodable frame (code {})")
    if code == SKIP_UNSUPPORTED_LINKTYPE:
        name = SUPPORTED_LINKTYPES.get(detail)
        return text.format(detail) + (f" ({name})" if name else "")
    return text.format(detail if code in SKIP_REASONS else code)


# --- byte access -----------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _be16(buf: np.ndarray, i: int) -> int:  # pragma: no cover - jit
    return (np.int64(buf[i]) << 8) | np.int64(buf[i + 1])


@numba.njit(cache=True, inline="always")
def _be32(buf: np.ndarray, i: int) -> int:  # pragma: no cover - jit
    return (
        (np.int64(buf[i]) << 24)
        | (np.int64(buf[i + 1]) << 16)
        | (np.int64(buf[i + 2]) << 8)
        | np.int64(buf[i + 3])
    )


@numba.njit(cache=True, inline="always")
def _le32(buf: np.ndarray, i: int) -> int:  # pragma: no cover - jit
    return (
        (np.int64(buf[i + 3]) << 24)
        | (np.int64(buf[i + 2]) << 16)
        | (np.int64(buf[i + 1]) << 8)
        | np.int64(buf[i])
    )


@numba.njit(cache=True, inline="always")
def _u32(buf: np.ndarray, i: int, big: bool) -> int:  # pragma: no cover - jit
    return _be32(buf, i) if big else _le32(buf, i)


@numba.njit(cache=True, inline="always")
def _u16(buf: np.ndarray, i: int, big: bool) -> int:  # pragma: no cover - jit
    if big:
        return _be16(buf, i)
    return (np.int64(buf[i + 1]) << 8) | np.int64(buf[i])


@numba.njit(cache=True, inline="always")
def _be64(buf: np.ndarray, i: int) -> np.uint64:  # pragma: no cover - jit
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[i + k])
    return v


@numba.njit(cache=True, inline="always")
def _is_inet6(af: int) -> bool:  # pragma: no cover - jit
    return af == 10 or af == 24 or af == 28 or af == 30


# --- walkers ----------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def walk_pcap_records(  # pragma: no cover - jit
    buf: np.ndarray,
    pos: int,
    end: int,
    big: bool,
    nano: bool,
    snaplen: int,
    max_caplen: int,
    strict: bool,
    fill: bool,
    data_off: np.ndarray,
    caplen: np.ndarray,
    origlen: np.ndarray,
    ts_us: np.ndarray,
) -> tuple[int, int, int, int]:
    """Walk classic pcap records in ``buf[pos:end]``.

    Returns ``(records, status, stop, detail)``: how many complete records were found
    (and, with ``fill``, written to the arrays), why the walk stopped, the offset of
    the record it stopped at, and a detail (bytes needed, or the bad length).
    """
    n = 0
    while True:
        if end - pos < 16:
            return n, WALK_NEED_MORE, pos, 16
        cl = _u32(buf, pos + 8, big)
        if cl > max_caplen:
            return n, WALK_CORRUPT_LENGTH, pos, cl
        if strict and snaplen > 0 and cl > snaplen:
            return n, WALK_OVER_SNAPLEN, pos, cl
        if end - pos - 16 < cl:
            return n, WALK_NEED_MORE, pos, 16 + cl
        if fill:
            sec = _u32(buf, pos, big)
            frac = _u32(buf, pos + 4, big)
            ts_us[n] = sec * 1_000_000 + (frac // 1000 if nano else frac)
            data_off[n] = pos + 16
            caplen[n] = cl
            origlen[n] = _u32(buf, pos + 12, big)
        n += 1
        pos += 16 + cl


@numba.njit(cache=True, inline="always")
def _ticks_to_us(ticks: int, mode: int, mul: int, div: int, shift: int) -> int:  # pragma: no cover
    if mode == 0:  # if_tsresol a power of ten
        return ticks * mul // div
    # a power of two, 2**-shift seconds: whole seconds, then the fraction with at most
    # 43 fraction bits so that fraction * 10**6 stays below 2**63
    whole = ticks >> shift
    frac = ticks & ((np.int64(1) << shift) - 1)
    drop = shift - 43 if shift > 43 else 0
    return whole * 1_000_000 + (((frac >> drop) * 1_000_000) >> (shift - drop))


@numba.njit(cache=True, nogil=True)
def walk_pcapng_blocks(  # pragma: no cover - jit
    buf: np.ndarray,
    pos: int,
    end: int,
    big: bool,
    n_if: int,
    if_linktype: np.ndarray,
    if_snaplen: np.ndarray,
    if_ts_mode: np.ndarray,
    if_ts_mul: np.ndarray,
    if_ts_div: np.ndarray,
    if_ts_shift: np.ndarray,
    if_ts_offset_us: np.ndarray,
    max_block: int,
    emit_from: int,
    last_ts: np.ndarray,
    fill: bool,
    data_off: np.ndarray,
    caplen: np.ndarray,
    origlen: np.ndarray,
    ts_us: np.ndarray,
    linktype: np.ndarray,
) -> tuple[int, int, int, int]:
    """Walk pcapng blocks of one section in ``buf[pos:end]``.

    Enhanced (6), simple (3) and obsolete (2) packet blocks become records; section
    headers and interface descriptions stop the walk (:data:`WALK_CONTROL`) so the
    caller can parse them; every other block is stepped over.  Packet blocks that
    start before ``emit_from`` are walked but not emitted (resuming inside a file).
    A simple packet block has no timestamp: it takes the last one seen
    (``last_ts[0]``, updated in place).  Returns like :func:`walk_pcap_records`.
    """
    n = 0
    while True:
        if end - pos < 12:
            return n, WALK_NEED_MORE, pos, 12
        btype = _u32(buf, pos, big)
        if btype == 0x0A0D0D0A:
            return n, WALK_CONTROL, pos, 0
        total = _u32(buf, pos + 4, big)
        if total < 12 or total % 4 != 0 or total > max_block:
            return n, WALK_CORRUPT_LENGTH, pos, total
        if end - pos < total:
            return n, WALK_NEED_MORE, pos, total
        trailer = _u32(buf, pos + total - 4, big)
        if trailer != total:
            return n, WALK_BAD_TRAILER, pos, trailer
        if btype == 1:
            return n, WALK_CONTROL, pos, 0
        if btype == 6 or btype == 2 or btype == 3:
            lt = LINKTYPE_UNDECLARED
            if btype == 3:  # simple packet block: interface 0, no timestamp
                if total < 16:
                    return n, WALK_CORRUPT_LENGTH, pos, total
                ol = _u32(buf, pos + 8, big)
                cl = min(ol, total - 16)
                if n_if > 0:
                    lt = if_linktype[0]
                    if if_snaplen[0] > 0:
                        cl = min(cl, if_snaplen[0])
                start = pos + 12
                ts = last_ts[0]
            else:
                if total < 32:
                    return n, WALK_CORRUPT_LENGTH, pos, total
                iface = _u32(buf, pos + 8, big) if btype == 6 else _u16(buf, pos + 8, big)
                cl = _u32(buf, pos + 20, big)
                ol = _u32(buf, pos + 24, big)
                if cl > total - 32:
                    return n, WALK_PACKET_OVERRUN, pos, cl
                start = pos + 28
                ts = 0
                if iface < n_if:
                    lt = if_linktype[iface]
                    ticks = (_u32(buf, pos + 12, big) << 32) | _u32(buf, pos + 16, big)
                    ts = _ticks_to_us(
                        ticks,
                        if_ts_mode[iface],
                        if_ts_mul[iface],
                        if_ts_div[iface],
                        if_ts_shift[iface],
                    ) + if_ts_offset_us[iface]
                    last_ts[0] = ts
            if pos >= emit_from:
                if fill:
                    data_off[n] = start
                    caplen[n] = cl
                    origlen[n] = ol
                    ts_us[n] = ts
                    linktype[n] = lt
                n += 1
        pos += total


# --- decoding -----------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _skip_ipv6_ext(buf: np.ndarray, pos: int, end: int, nh: int) -> tuple[int, int, bool, bool]:  # pragma: no cover
    """Step over IPv6 extension headers: ``(next header, position, later fragment, complete)``."""
    for _ in range(MAX_IPV6_EXT_HEADERS):
        if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
            if end - pos < 2:
                return nh, pos, False, False
            length = (np.int64(buf[pos + 1]) + 1) * 8
            nh = np.int64(buf[pos])
            pos += length
        elif nh == 51:  # authentication header counts 4-byte words, minus 2
            if end - pos < 2:
                return nh, pos, False, False
            length = (np.int64(buf[pos + 1]) + 2) * 4
            nh = np.int64(buf[pos])
            pos += length
        elif nh == 44:  # fragment header
            if end - pos < 8:
                return nh, pos, False, False
            later = (_be16(buf, pos + 2) >> 3) != 0
            nh = np.int64(buf[pos])
            pos += 8
            if later:
                return nh, pos, True, True
        else:
            return nh, pos, False, pos <= end
    return nh, pos, False, False


@numba.njit(cache=True, inline="always")
def _quoted_key(buf: np.ndarray, q: int, end: int) -> tuple[bool, np.uint64, np.uint64, np.uint64, np.uint64, int, int]:  # pragma: no cover
    """Key of the packet quoted in an ICMP error: ok, src, dst, protocol, port word.

    The port word is ``sport << 16 | dport`` for TCP/UDP/SCTP/UDP-Lite/DCCP, ``id << 16 |
    seq`` for an echo request, 0 for any other protocol (an IP protocol scan probe).
    """
    zero = np.uint64(0)
    if end - q < 20:
        return False, zero, zero, zero, zero, 0, 0
    ver = np.int64(buf[q]) >> 4
    if ver == 4:
        ihl = (np.int64(buf[q]) & 15) * 4
        if ihl < 20:
            return False, zero, zero, zero, zero, 0, 0
        proto = np.int64(buf[q + 9])
        s_hi = zero
        s_lo = _V4_MAPPED | np.uint64(_be32(buf, q + 12))
        d_hi = zero
        d_lo = _V4_MAPPED | np.uint64(_be32(buf, q + 16))
        later = (_be16(buf, q + 6) & 0x1FFF) != 0
        l4 = q + ihl
    elif ver == 6:
        if end - q < 40:
            return False, zero, zero, zero, zero, 0, 0
        s_hi = _be64(buf, q + 8)
        s_lo = _be64(buf, q + 16)
        d_hi = _be64(buf, q + 24)
        d_lo = _be64(buf, q + 32)
        proto, l4, later, complete = _skip_ipv6_ext(buf, q + 40, end, np.int64(buf[q + 6]))
        if not complete:
            return False, zero, zero, zero, zero, 0, 0
    else:
        return False, zero, zero, zero, zero, 0, 0
    if later:
        return False, zero, zero, zero, zero, 0, 0
    if proto == 6 or proto == 17 or proto == 132 or proto == 136 or proto == 33:
        if end - l4 < 4:
            return False, zero, zero, zero, zero, 0, 0
        return True, s_hi, s_lo, d_hi, d_lo, proto, (_be16(buf, l4) << 16) | _be16(buf, l4 + 2)
    if proto == 1 or proto == 58:
        if end - l4 < 8:
            return False, zero, zero, zero, zero, 0, 0
        t = np.int64(buf[l4])
        if (proto == 1 and t == 8) or (proto == 58 and t == 128):
            return True, s_hi, s_lo, d_hi, d_lo, proto, _be32(buf, l4 + 4)
        return False, zero, zero, zero, zero, 0, 0
    return True, s_hi, s_lo, d_hi, d_lo, proto, 0


@numba.njit(cache=True, nogil=True)
def decode_frames(  # pragma: no cover - jit
    buf: np.ndarray,
    data_off: np.ndarray,
    caplen: np.ndarray,
    origlen: np.ndarray,
    linktype: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Decode frame ``i`` at ``buf[data_off[i]:data_off[i] + caplen[i]]`` of link type ``linktype[i]``.

    Returns the arrays named in :data:`FRAME_FIELDS` (see :func:`frame_columns`).
    Addresses are (hi, lo) uint64 pairs, IPv4 mapped to ``::ffff:a.b.c.d``.
    ``ip_len`` is the IP total length (IPv6: payload length + 40; the wire length
    minus the link header when the header says 0, as TSO/GSO captures do).
    ``verdict`` is the pflog verdict as an outcome code (0 when none), ``link_off``
    the offset of the pflog header (-1 otherwise).  ``q_*`` is the key of the packet
    quoted by an ICMP destination unreachable (not "fragmentation needed").
    """
    n = data_off.shape[0]
    status = np.zeros(n, np.uint8)
    detail = np.zeros(n, np.uint32)
    family = np.zeros(n, np.uint8)
    src_hi = np.zeros(n, np.uint64)
    src_lo = np.zeros(n, np.uint64)
    dst_hi = np.zeros(n, np.uint64)
    dst_lo = np.zeros(n, np.uint64)
    proto_a = np.zeros(n, np.uint8)
    l4_a = np.zeros(n, np.uint8)
    sport = np.zeros(n, np.uint16)
    dport = np.zeros(n, np.uint16)
    flags = np.zeros(n, np.uint8)
    window = np.zeros(n, np.uint16)
    seq = np.zeros(n, np.uint32)
    itype = np.zeros(n, np.uint8)
    icode = np.zeros(n, np.uint8)
    ident = np.zeros(n, np.uint32)
    ttl = np.zeros(n, np.uint8)
    ip_id = np.zeros(n, np.uint16)
    ip_len = np.zeros(n, np.uint32)
    verdict = np.zeros(n, np.uint8)
    link_off = np.full(n, -1, np.int64)
    q_ok = np.zeros(n, np.uint8)
    q_src_hi = np.zeros(n, np.uint64)
    q_src_lo = np.zeros(n, np.uint64)
    q_dst_hi = np.zeros(n, np.uint64)
    q_dst_lo = np.zeros(n, np.uint64)
    q_proto = np.zeros(n, np.uint8)
    q_ports = np.zeros(n, np.uint32)

    for i in range(n):
        p = data_off[i]
        end = p + caplen[i]
        lt = linktype[i]
        # ---- link layer: find the IP header (q) and what it should be (want 4/6, 0 any)
        q = p
        want = 0
        et = -1  # ethertype to resolve, -1 when the link type says it otherwise
        if lt == LINKTYPE_ETHERNET:
            if caplen[i] < 14:
                status[i] = SKIP_TRUNCATED_LINK
                detail[i] = lt
                continue
            et = _be16(buf, p + 12)
            q = p + 14
        elif lt == LINKTYPE_LINUX_SLL:
            if caplen[i] < 16:
                status[i] = SKIP_TRUNCATED_LINK
                detail[i] = lt
                continue
            et = _be16(buf, p + 14)
            q = p + 16
        elif lt == LINKTYPE_LINUX_SLL2:
            if caplen[i] < 20:
                status[i] = SKIP_TRUNCATED_LINK
                detail[i] = lt
                continue
            et = _be16(buf, p)
            q = p + 20
        elif lt == LINKTYPE_RAW or lt == LINKTYPE_RAW_BSD or lt == LINKTYPE_RAW_OPENBSD:
            want = 0
        elif lt == LINKTYPE_IPV4:
            want = 4
        elif lt == LINKTYPE_IPV6:
            want = 6
        elif lt == LINKTYPE_NULL or lt == LINKTYPE_LOOP:
            if caplen[i] < 4:
                status[i] = SKIP_TRUNCATED_LINK
                detail[i] = lt
                continue
            if lt == LINKTYPE_LOOP:
                af = _be32(buf, p)
            else:
                # host byte order of the capturing machine: take whichever order is small
                af = _le32(buf, p)
                if af > 0xFFFF:
                    af = _be32(buf, p)
            q = p + 4
            if af == AF_INET:
                want = 4
            elif _is_inet6(af):
                want = 6
            else:
                status[i] = SKIP_NOT_IP_FAMILY
                detail[i] = af
                continue
        elif lt == LINKTYPE_PFLOG:
            if caplen[i] < 4:
                status[i] = SKIP_TRUNCATED_LINK
                detail[i] = lt
                continue
            hlen = np.int64(buf[p])
            if hlen < MIN_PFLOG_HDRLEN:
                status[i] = SKIP_BAD_PFLOG
                detail[i] = hlen
                continue
            hlen = (hlen + 3) & ~3  # BPF_WORDALIGN
            if caplen[i] < hlen:
                status[i] = SKIP_TRUNCATED_LINK
                detail[i] = lt
                continue
            af = np.int64(buf[p + 1])
            action = np.int64(buf[p + 2])
            if action == _PFLOG_PASS:
                verdict[i] = _ACCEPTED
            elif action == _PFLOG_DROP:
                verdict[i] = _BLOCKED
            link_off[i] = p
            q = p + hlen
            if af == AF_INET:
                want = 4
            elif _is_inet6(af):
                want = 6
            else:
                status[i] = SKIP_NOT_IP_FAMILY
                detail[i] = af
                continue
        elif lt == LINKTYPE_UNDECLARED:
            status[i] = SKIP_UNDECLARED_INTERFACE
            continue
        else:
            status[i] = SKIP_UNSUPPORTED_LINKTYPE
            detail[i] = lt
            continue
        if et >= 0:
            tags = 0
            while (et == 0x8100 or et == 0x88A8 or et == 0x9100) and tags <= MAX_VLAN_TAGS:
                if end - q < 4:
                    tags = -1
                    break
                et = _be16(buf, q + 2)
                q += 4
                tags += 1
            if tags < 0:
                status[i] = SKIP_TRUNCATED_LINK
                detail[i] = lt
                continue
            if tags > MAX_VLAN_TAGS:
                status[i] = SKIP_TOO_MANY_VLAN_TAGS
                continue
            if et == 0x0800:
                want = 4
            elif et == 0x86DD:
                want = 6
            elif et < 0x0600:
                status[i] = SKIP_NOT_IP_LLC
                detail[i] = et
                continue
            else:
                status[i] = SKIP_NOT_IP_ETHERTYPE
                detail[i] = et
                continue
        # ---- network layer
        if end - q < 1:
            status[i] = SKIP_TRUNCATED_IP
            continue
        ver = np.int64(buf[q]) >> 4
        if want == 0:
            if ver != 4 and ver != 6:
                status[i] = SKIP_NOT_IP_VERSION
                detail[i] = ver
                continue
        elif ver != want:
            status[i] = SKIP_BAD_IP_VERSION
            detail[i] = ver
            continue
        link_len = q - p
        later = False
        if ver == 4:
            if end - q < 20:
                status[i] = SKIP_TRUNCATED_IP
                continue
            ihl = (np.int64(buf[q]) & 15) * 4
            if ihl < 20:
                status[i] = SKIP_BAD_IPV4_IHL
                detail[i] = ihl
                continue
            if end - q < ihl:
                status[i] = SKIP_TRUNCATED_IP
                continue
            total = _be16(buf, q + 2)
            family[i] = 4
            ip_id[i] = _be16(buf, q + 4)
            later = (_be16(buf, q + 6) & 0x1FFF) != 0
            ttl[i] = buf[q + 8]
            proto = np.int64(buf[q + 9])
            src_lo[i] = _V4_MAPPED | np.uint64(_be32(buf, q + 12))
            dst_lo[i] = _V4_MAPPED | np.uint64(_be32(buf, q + 16))
            if total >= ihl:
                ip_len[i] = total
                l4_end = min(end, q + total)
            else:
                ip_len[i] = max(origlen[i] - link_len, 0)
                l4_end = end
            l4 = q + ihl
            complete = True
        else:
            if end - q < 40:
                status[i] = SKIP_TRUNCATED_IP
                continue
            plen = _be16(buf, q + 4)
            family[i] = 6
            ttl[i] = buf[q + 7]
            src_hi[i] = _be64(buf, q + 8)
            src_lo[i] = _be64(buf, q + 16)
            dst_hi[i] = _be64(buf, q + 24)
            dst_lo[i] = _be64(buf, q + 32)
            if plen > 0:
                ip_len[i] = plen + 40
                l4_end = min(end, q + 40 + plen)
            else:
                ip_len[i] = max(origlen[i] - link_len, 0)
                l4_end = end
            proto, l4, later, complete = _skip_ipv6_ext(buf, q + 40, l4_end, np.int64(buf[q + 6]))
        proto_a[i] = proto
        if later or not complete:
            continue
        # ---- transport layer
        room = l4_end - l4
        if proto == 6:
            if room >= 20:
                l4_a[i] = L4_TCP
                sport[i] = _be16(buf, l4)
                dport[i] = _be16(buf, l4 + 2)
                seq[i] = _be32(buf, l4 + 4)
                flags[i] = buf[l4 + 13]
                window[i] = _be16(buf, l4 + 14)
            elif room >= 4:
                l4_a[i] = L4_PORTS
                sport[i] = _be16(buf, l4)
                dport[i] = _be16(buf, l4 + 2)
        elif proto == 17 or proto == 136 or proto == 132 or proto == 33:
            if room >= 4:
                l4_a[i] = L4_PORTS
                sport[i] = _be16(buf, l4)
                dport[i] = _be16(buf, l4 + 2)
        elif proto == 1 or proto == 58:
            if room >= 2:
                l4_a[i] = L4_ICMP
                t = np.int64(buf[l4])
                c = np.int64(buf[l4 + 1])
                itype[i] = t
                icode[i] = c
                if room >= 8:
                    if (proto == 1 and (t == 8 or t == 0)) or (proto == 58 and (t == 128 or t == 129)):
                        ident[i] = _be32(buf, l4 + 4)
                    elif (proto == 1 and t == 3 and c != 4) or (proto == 58 and t == 1):
                        ok, a, b, cc, d, qp, qw = _quoted_key(buf, l4 + 8, l4_end)
                        if ok:
                            q_ok[i] = 1
                            q_src_hi[i] = a
                            q_src_lo[i] = b
                            q_dst_hi[i] = cc
                            q_dst_lo[i] = d
                            q_proto[i] = qp
                            q_ports[i] = qw
    return (
        status, detail, family, src_hi, src_lo, dst_hi, dst_lo, proto_a, l4_a,
        sport, dport, flags, window, seq, itype, icode, ident, ttl, ip_id, ip_len,
        verdict, link_off, q_ok, q_src_hi, q_src_lo, q_dst_hi, q_dst_lo, q_proto, q_ports,
    )  # fmt: skip
