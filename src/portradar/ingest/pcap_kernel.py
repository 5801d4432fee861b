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
>>> ev = new_event_columns(1)
>>> linktype = np.full(1, LINKTYPE_ETHERNET, np.int32)
>>> got = frame_columns(decode_frames(buf, one, one + len(frame), one + len(frame), linktype,
...                                   one, 0, *ev.values()))
>>> got.count, int(ev["proto"][0]), int(ev["sport"][0]), int(ev["dport"][0])
(1, 6, 54321, 22)
>>> hex(int(ev["src_lo"][0])), int(ev["tcp_flags"][0]), int(ev["ttl"][0])
('0xffffc0000201', 2, 64)
>>> skip_reason(SKIP_NOT_IP_ETHERTYPE, 0x0806)
'not IP (ethertype 0x0806)'
"""

# numba types the kernels' integer arithmetic its own way (int64 unless told); mypy's
# numpy scalar types disagree on every line of it, so these codes are off here only
# mypy: disable-error-code="assignment,return-value,arg-type,operator,misc"

from __future__ import annotations

from typing import NamedTuple

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

#: The event arrays :func:`decode_frames` writes, in its argument order, and their types.
FRAME_FIELDS: dict[str, type] = {
    "ts": np.int64, "family": np.uint8, "src_hi": np.uint64, "src_lo": np.uint64,
    "dst_hi": np.uint64, "dst_lo": np.uint64, "proto": np.uint8, "l4": np.uint8,
    "sport": np.uint16, "dport": np.uint16, "tcp_flags": np.uint8, "tcp_window": np.uint16,
    "tcp_seq": np.uint32, "icmp_type": np.uint8, "icmp_code": np.uint8,
    "icmp_ident": np.uint32, "ttl": np.uint8, "ip_id": np.uint16, "ip_len": np.uint32,
    "verdict": np.uint8,
}  # fmt: skip
#: Columns of the quoted-key side table.
QUOTE_FIELDS = ("row", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "ports")


def new_event_columns(capacity: int) -> dict[str, np.ndarray]:
    """Uninitialised event arrays with room for ``capacity`` rows (untouched pages are free)."""
    return {name: np.empty(capacity, dtype) for name, dtype in FRAME_FIELDS.items()}


class DecodedFrames(NamedTuple):
    """What :func:`decode_frames` says about a block besides the events it wrote."""

    count: int  # events written from row ``start`` on
    status: np.ndarray  # per input frame: 0, or the SKIP_* code
    detail: np.ndarray  # per input frame: the skip's detail value
    quotes: dict[str, np.ndarray]  # QUOTE_FIELDS, one row per quoting ICMP unreachable
    pflog_row: np.ndarray  # event rows with a pflog header ...
    pflog_off: np.ndarray  # ... and where that header is in the buffer


def frame_columns(result: tuple) -> DecodedFrames:
    """Name and trim what :func:`decode_frames` returned."""
    count, status, detail, nq = result[0], result[1], result[2], result[3]
    quotes = {name: arr[:nq] for name, arr in zip(QUOTE_FIELDS, result[4:11], strict=True)}
    npf = result[11]
    return DecodedFrames(count, status, detail, quotes, result[12][:npf], result[13][:npf])


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
                    ts = (
                        _ticks_to_us(
                            ticks,
                            if_ts_mode[iface],
                            if_ts_mul[iface],
                            if_ts_div[iface],
                            if_ts_shift[iface],
                        )
                        + if_ts_offset_us[iface]
                    )
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
def _skip_ipv6_ext(  # pragma: no cover - jit
    buf: np.ndarray, pos: int, end: int, nh: int
) -> tuple[int, int, bool, bool]:
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
def _quoted_key(  # pragma: no cover - jit
    buf: np.ndarray, q: int, end: int
) -> tuple[bool, np.uint64, np.uint64, np.uint64, np.uint64, int, int]:
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
    ts_us: np.ndarray,
    start: int,
    ts: np.ndarray,
    family: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    proto_a: np.ndarray,
    l4_a: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    flags: np.ndarray,
    window: np.ndarray,
    seq: np.ndarray,
    itype: np.ndarray,
    icode: np.ndarray,
    ident: np.ndarray,
    ttl: np.ndarray,
    ip_id: np.ndarray,
    ip_len: np.ndarray,
    verdict: np.ndarray,
) -> tuple:
    """Decode frame ``i``, ``buf[data_off[i]:data_off[i] + caplen[i]]`` of type ``linktype[i]``.

    Frames that give an event are written one after the other into the event arrays
    (:data:`FRAME_FIELDS`, in that order, from :func:`new_event_columns`) from row
    ``start`` on, which must leave room for every frame; the first returned value is
    how many were written.  ``status``/``detail`` say, per input frame, why it gave no
    event (0 when it did).  Addresses are (hi, lo) uint64 pairs, IPv4 mapped to
    ``::ffff:a.b.c.d``; ``ip_len`` is the IP total length (IPv6: payload length + 40;
    the wire length minus the link header when the header says 0, as TSO/GSO captures
    do); ``verdict`` is the pflog verdict as an outcome code (0 when none).
    Two side tables name events by their row: the keys quoted by ICMP destination
    unreachables (not "fragmentation needed") and the offsets of pflog headers in ``buf``.
    """
    n = data_off.shape[0]
    status = np.zeros(n, np.uint8)
    detail = np.zeros(n, np.uint32)
    q_row = np.empty(n, np.int64)
    q_src_hi = np.empty(n, np.uint64)
    q_src_lo = np.empty(n, np.uint64)
    q_dst_hi = np.empty(n, np.uint64)
    q_dst_lo = np.empty(n, np.uint64)
    q_proto = np.empty(n, np.uint8)
    q_ports = np.empty(n, np.uint32)
    pf_row = np.empty(n, np.int64)
    pf_off = np.empty(n, np.int64)
    k = start  # next event row
    nq = 0  # quotes written
    npf = 0  # pflog headers written

    for i in range(n):
        # every field in a local, written once at the end: a frame that fails half-way
        # writes nothing, and each column gets one store per event
        v_src_hi = np.uint64(0)
        v_dst_hi = np.uint64(0)
        v_ip_id = 0
        v_l4 = L4_NONE
        v_sport = 0
        v_dport = 0
        v_flags = 0
        v_window = 0
        v_seq = 0
        v_itype = 0
        v_icode = 0
        v_ident = 0
        v_verdict = 0
        pflog_at = -1
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
                v_verdict = _ACCEPTED
            elif action == _PFLOG_DROP:
                v_verdict = _BLOCKED
            pflog_at = p
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
            v_family = 4
            v_ip_id = _be16(buf, q + 4)
            later = (_be16(buf, q + 6) & 0x1FFF) != 0
            v_ttl = np.int64(buf[q + 8])
            proto = np.int64(buf[q + 9])
            v_src_lo = _V4_MAPPED | np.uint64(_be32(buf, q + 12))
            v_dst_lo = _V4_MAPPED | np.uint64(_be32(buf, q + 16))
            if total >= ihl:
                v_ip_len = total
                l4_end = min(end, q + total)
            else:
                v_ip_len = max(origlen[i] - link_len, 0)
                l4_end = end
            l4 = q + ihl
            complete = True
        else:
            if end - q < 40:
                status[i] = SKIP_TRUNCATED_IP
                continue
            plen = _be16(buf, q + 4)
            v_family = 6
            v_ttl = np.int64(buf[q + 7])
            v_src_hi = _be64(buf, q + 8)
            v_src_lo = _be64(buf, q + 16)
            v_dst_hi = _be64(buf, q + 24)
            v_dst_lo = _be64(buf, q + 32)
            if plen > 0:
                v_ip_len = plen + 40
                l4_end = min(end, q + 40 + plen)
            else:
                v_ip_len = max(origlen[i] - link_len, 0)
                l4_end = end
            proto, l4, later, complete = _skip_ipv6_ext(buf, q + 40, l4_end, np.int64(buf[q + 6]))
        # ---- transport layer
        room = l4_end - l4
        if later or not complete:
            pass
        elif proto == 6:
            if room >= 20:
                v_l4 = L4_TCP
                v_sport = _be16(buf, l4)
                v_dport = _be16(buf, l4 + 2)
                v_seq = _be32(buf, l4 + 4)
                v_flags = np.int64(buf[l4 + 13])
                v_window = _be16(buf, l4 + 14)
            elif room >= 4:
                v_l4 = L4_PORTS
                v_sport = _be16(buf, l4)
                v_dport = _be16(buf, l4 + 2)
        elif proto == 17 or proto == 136 or proto == 132 or proto == 33:
            if room >= 4:
                v_l4 = L4_PORTS
                v_sport = _be16(buf, l4)
                v_dport = _be16(buf, l4 + 2)
        elif (proto == 1 or proto == 58) and room >= 2:
            v_l4 = L4_ICMP
            t = np.int64(buf[l4])
            c = np.int64(buf[l4 + 1])
            v_itype = t
            v_icode = c
            echo = (t == 8 or t == 0) if proto == 1 else (t == 128 or t == 129)
            unreachable = (t == 3 and c != 4) if proto == 1 else t == 1
            if room >= 8 and echo:
                v_ident = _be32(buf, l4 + 4)
            elif room >= 8 and unreachable:
                ok, a, b, cc, d, qp, qw = _quoted_key(buf, l4 + 8, l4_end)
                if ok:
                    q_row[nq] = k
                    q_src_hi[nq] = a
                    q_src_lo[nq] = b
                    q_dst_hi[nq] = cc
                    q_dst_lo[nq] = d
                    q_proto[nq] = qp
                    q_ports[nq] = qw
                    nq += 1
        if pflog_at >= 0:
            pf_row[npf] = k
            pf_off[npf] = pflog_at
            npf += 1
        ts[k] = ts_us[i]
        family[k] = v_family
        src_hi[k] = v_src_hi
        src_lo[k] = v_src_lo
        dst_hi[k] = v_dst_hi
        dst_lo[k] = v_dst_lo
        proto_a[k] = proto
        l4_a[k] = v_l4
        sport[k] = v_sport
        dport[k] = v_dport
        flags[k] = v_flags
        window[k] = v_window
        seq[k] = v_seq
        itype[k] = v_itype
        icode[k] = v_icode
        ident[k] = v_ident
        ttl[k] = v_ttl
        ip_id[k] = v_ip_id
        ip_len[k] = v_ip_len
        verdict[k] = v_verdict
        k += 1
    return (
        k - start, status, detail,
        nq, q_row, q_src_hi, q_src_lo, q_dst_hi, q_dst_lo, q_proto, q_ports,
        npf, pf_row, pf_off,
    )  # fmt: skip
