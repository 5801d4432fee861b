"""Outcome of each probe in a packet capture, from the replies seen in the same capture.

A packet sensor sees no firewall verdict, but it sees what the target said back.  This
module pairs probes with their replies, for a whole capture at once, with one sort and
a few vectorised passes (no per-packet Python):

============================  ===========================================  ============
probe                         first reply within ``timeout`` seconds        outcome
============================  ===========================================  ============
TCP SYN (no ACK, no RST)      SYN-ACK from the target port                 accepted
                              ... then the client's ACK within ``timeout``  established
                              RST from the target port                     rejected
TCP FIN/NULL/Xmas (no SYN,    RST from the target port                     rejected
ACK or RST: nmap -sF/-sN/-sX)
UDP (not itself a reply)      UDP from the target port                     accepted
TCP, UDP, ICMP echo, other    ICMP/ICMPv6 destination unreachable quoting  rejected
IP protocol                   the probe (any code but "fragmentation
                              needed")
ICMP/ICMPv6 echo request      echo reply with the same identifier/sequence  accepted
TCP, UDP, echo request        nothing                                      unanswered
other IP protocol             nothing                                      unknown
============================  ===========================================  ============

Every other packet (SYN-ACKs, RSTs, replies, data, ICMP errors) keeps outcome
``unknown``: replies are still events, which backscatter detection needs.  A UDP packet
is a *reply*, not a probe, when a UDP packet of the reverse direction came less than
``timeout`` before it (the DNS answer to a query).  Packets sent to a multicast or the
limited-broadcast address are never probes (no single target can answer them).
Packets that already carry a verdict (pflog's pass/block) keep it.

Why "other IP protocol" without a reply stays unknown: ``nmap -sO`` probes and tunnel
traffic (GRE, ESP) look alike, and only a "protocol unreachable" tells them apart.

**How.**  Each packet contributes up to two *rows*: its own key (source, destination,
protocol, port word) as a probe or a client ACK, and the key of the probe it answers
(the reverse key for a SYN-ACK, RST, UDP or echo reply, the quoted header for an ICMP
unreachable).  Rows are put in capture-time order, hashed to 64 bits (numba), and
stable-sorted by hash, so each flow's rows end up together and in time order; the
next answer after each probe is found with a reversed running minimum, and matches
are checked against the full key (a hash collision, about 1 in 10**7 for two million
flows, can only lose a pairing, never make a false one).

**Default timeout.**  :data:`DEFAULT_PROBE_TIMEOUT` is 3 seconds, the default of
``ReadOptions.probe_timeout``: a scanner gives up on a probe long before that.  nmap
starts with a 1 s round-trip timeout and never waits more than 10 s
(``--initial-rtt-timeout`` 1000 ms and ``--max-rtt-timeout`` 10000 ms at the default
``-T3`` timing, nmap(1) "Timing and performance"); masscan waits 10 s after its last
probe only.  RFC 6298 sets TCP's initial retransmission timeout to 1 s, so a SYN-ACK
that has not come in 3 s (three initial RTOs) is, for our purposes, not coming.
Probes near the end of a capture are judged on what the capture holds: one whose
reply fell after the end of the file is "unanswered".

>>> import numpy as np
>>> v4 = lambda *octets: 0xFFFF_0000_0000 | int.from_bytes(bytes(octets), "big")
>>> scanner, target = v4(192, 0, 2, 1), v4(198, 51, 100, 7)
>>> cols = {  # SYN to 22 (SYN-ACK), SYN to 23 (RST), SYN to 25 (nothing), the two replies
...     "ts": np.array([0, 10, 20, 30, 40]),
...     "src_lo": np.array([scanner, scanner, scanner, target, target], np.uint64),
...     "dst_lo": np.array([target, target, target, scanner, scanner], np.uint64),
...     "proto": np.full(5, 6, np.uint8), "l4": np.full(5, 2, np.uint8),
...     "sport": np.array([40000, 40000, 40000, 22, 23], np.uint16),
...     "dport": np.array([22, 23, 25, 40000, 40000], np.uint16),
...     "tcp_flags": np.array([0x02, 0x02, 0x02, 0x12, 0x14], np.uint8)}
>>> [Outcome(o).label for o in probe_outcomes(cols, timeout_us=3_000_000)]
['accepted', 'rejected', 'unanswered', 'unknown', 'unknown']
"""

from __future__ import annotations

from collections.abc import Mapping

import numba
import numpy as np

from portradar.events.schema import Outcome

#: Seconds a probe waits for its reply (see the module docstring for the reasons).
DEFAULT_PROBE_TIMEOUT = 3.0

_SYN, _RST, _ACK = 0x02, 0x04, 0x10
_L4_PORTS, _L4_TCP, _L4_ICMP = 1, 2, 3  # the ``l4`` codes of portradar.ingest.pcap_kernel
_UDP_PROTOCOLS = (17, 136)  # UDP, UDP-Lite
_PORT_PROTOCOLS = (6, 17, 132, 136, 33)  # protocols with a port pair
_ICMP_PROTOCOLS = (1, 58)

# row roles and, for answers, what kind of answer
_ROLE_PROBE, _ROLE_ACK, _ROLE_ANSWER = 0, 1, 2
_ANS_SYNACK, _ANS_RST, _ANS_UDP, _ANS_ECHO, _ANS_UNREACH = 1, 2, 3, 4, 5
_ANSWER_OUTCOME = np.array(
    [Outcome.UNKNOWN, Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED,
     Outcome.ACCEPTED, Outcome.REJECTED], np.uint8,
)  # fmt: skip

__all__ = ["DEFAULT_PROBE_TIMEOUT", "probe_outcomes"]


@numba.njit(cache=True, inline="always")
def _fmix64(k: np.uint64) -> np.uint64:  # pragma: no cover - jit
    """MurmurHash3's 64-bit finaliser: every input bit flips each output bit half the time."""
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


@numba.njit(cache=True, nogil=True)
def hash_keys(  # pragma: no cover - jit
    a_hi: np.ndarray, a_lo: np.ndarray, b_hi: np.ndarray, b_lo: np.ndarray,
    proto: np.ndarray, word: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """64-bit hash of each flow key (address a, address b, protocol, port word)."""
    n = a_hi.shape[0]
    out = np.empty(n, np.uint64)
    for i in range(n):
        h = _fmix64(a_hi[i] ^ np.uint64(0x9E3779B97F4A7C15))
        h = _fmix64(h ^ a_lo[i])
        h = _fmix64(h ^ b_hi[i])
        h = _fmix64(h ^ b_lo[i])
        out[i] = _fmix64(h ^ ((np.uint64(proto[i]) << np.uint64(32)) | np.uint64(word[i])))
    return out


def _column(cols: Mapping[str, np.ndarray], name: str, n: int, dtype: type) -> np.ndarray:
    value = cols.get(name)
    if value is None:
        return np.zeros(n, dtype)
    return np.asarray(value)


def _not_broadcast(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """False for IPv4 multicast/limited broadcast and IPv6 multicast destinations."""
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
    octet = (lo >> np.uint64(24)) & np.uint64(0xFF)
    v4_multi = v4 & (((octet >= 224) & (octet <= 239)) | (lo == np.uint64(0xFFFF_FFFF_FFFF)))
    v6_multi = ~v4 & ((hi >> np.uint64(56)) == np.uint64(0xFF))
    return ~(v4_multi | v6_multi)


def probe_outcomes(
    cols: Mapping[str, np.ndarray],
    *,
    timeout_us: int,
    quotes: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Outcome code (:class:`~portradar.events.Outcome`) of every packet of a capture.

    ``cols`` holds one array per packet field, as decoded by
    :func:`portradar.ingest.pcap_kernel.decode_frames`: ``ts`` (microseconds),
    ``src_hi``/``src_lo``/``dst_hi``/``dst_lo`` (``*_hi`` default to 0), ``proto``,
    ``l4`` (what the transport fields hold), ``sport``, ``dport``, ``tcp_flags`` and,
    when present, ``icmp_type``, ``icmp_ident`` (echo identifier << 16 | sequence) and
    ``verdict`` (an outcome the link layer already gave, 0 for none).  ``quotes``
    describes ICMP destination unreachables: ``index`` (the packet), and the quoted
    key ``src_hi``, ``src_lo``, ``dst_hi``, ``dst_lo``, ``proto``, ``ports``.
    """
    ts = np.asarray(cols["ts"], np.int64)
    n = ts.shape[0]
    out = np.zeros(n, np.uint8)
    if n == 0:
        return out
    src_hi = _column(cols, "src_hi", n, np.uint64).astype(np.uint64, copy=False)
    dst_hi = _column(cols, "dst_hi", n, np.uint64).astype(np.uint64, copy=False)
    src_lo = np.asarray(cols["src_lo"]).astype(np.uint64, copy=False)
    dst_lo = np.asarray(cols["dst_lo"]).astype(np.uint64, copy=False)
    proto = np.asarray(cols["proto"]).astype(np.uint8, copy=False)
    l4 = np.asarray(cols["l4"])
    sport = np.asarray(cols["sport"]).astype(np.uint32)
    dport = np.asarray(cols["dport"]).astype(np.uint32)
    flags = np.asarray(cols["tcp_flags"])
    itype = _column(cols, "icmp_type", n, np.uint8)
    ident = _column(cols, "icmp_ident", n, np.uint32).astype(np.uint32, copy=False)
    verdict = _column(cols, "verdict", n, np.uint8)

    # ---- what each packet is
    tcp = l4 == _L4_TCP
    udp = (l4 == _L4_PORTS) & np.isin(proto, _UDP_PROTOCOLS)
    icmp = l4 == _L4_ICMP
    v4icmp, v6icmp = icmp & (proto == 1), icmp & (proto == 58)
    echo_req = (v4icmp & (itype == 8)) | (v6icmp & (itype == 128))
    echo_rep = (v4icmp & (itype == 0)) | (v6icmp & (itype == 129))
    other = (l4 == 0) & ~np.isin(proto, _PORT_PROTOCOLS + _ICMP_PROTOCOLS)
    unicast = _not_broadcast(dst_hi, dst_lo)
    free = verdict == 0
    tcp_probe = tcp & ((flags & (_ACK | _RST)) == 0)
    probe = (tcp_probe | udp | echo_req | other) & unicast & free
    client_ack = tcp & ((flags & _ACK) != 0) & ((flags & (_SYN | _RST)) == 0)
    synack = tcp & ((flags & (_SYN | _ACK)) == (_SYN | _ACK)) & ((flags & _RST) == 0)
    rst = tcp & ((flags & _RST) != 0)
    kind = np.zeros(n, np.uint8)
    kind[synack] = _ANS_SYNACK
    kind[rst] = _ANS_RST
    kind[udp] = _ANS_UDP
    kind[echo_rep] = _ANS_ECHO

    # ---- per packet: own key word, answer key (reverse, or quoted for ICMP unreachable)
    word = np.where(icmp, ident, (sport << 16) | dport).astype(np.uint32)
    word[other] = 0
    rword = np.where(icmp, ident, (dport << 16) | sport).astype(np.uint32)
    ans = (kind != 0).copy()
    a_src_hi, a_src_lo, a_dst_hi, a_dst_lo = dst_hi, dst_lo, src_hi, src_lo  # reversed
    a_proto = proto
    if quotes is not None and len(quotes["index"]):
        qi = np.asarray(quotes["index"], np.int64)
        a_src_hi, a_src_lo = a_src_hi.copy(), a_src_lo.copy()
        a_dst_hi, a_dst_lo, a_proto = a_dst_hi.copy(), a_dst_lo.copy(), a_proto.copy()
        a_src_hi[qi] = quotes["src_hi"]
        a_src_lo[qi] = quotes["src_lo"]
        a_dst_hi[qi] = quotes["dst_hi"]
        a_dst_lo[qi] = quotes["dst_lo"]
        a_proto[qi] = quotes["proto"]
        rword[qi] = quotes["ports"]
        kind[qi] = _ANS_UNREACH
        ans[qi] = True
    own = probe | client_ack

    # ---- rows in capture-time order: row 2r is packet r's own key, 2r + 1 its answer key
    order = None if bool(np.all(ts[1:] >= ts[:-1])) else np.argsort(ts, kind="stable")
    both = np.empty((n, 2), bool)
    both[:, 0] = own if order is None else own[order]
    both[:, 1] = ans if order is None else ans[order]
    rows = np.flatnonzero(both.reshape(-1))
    del both
    m = rows.shape[0]
    if m == 0:
        return _finish(out, probe, other, verdict)
    pkt = rows >> 1
    if order is not None:
        pkt = order[pkt]
    side = (rows & 1).astype(bool)
    del rows
    own_rows, ans_rows = np.flatnonzero(~side), np.flatnonzero(side)
    h = np.empty(m, np.uint64)
    po, pa_ = pkt[own_rows], pkt[ans_rows]
    h[own_rows] = hash_keys(src_hi[po], src_lo[po], dst_hi[po], dst_lo[po], proto[po], word[po])
    h[ans_rows] = hash_keys(a_src_hi[pa_], a_src_lo[pa_], a_dst_hi[pa_], a_dst_lo[pa_],
                            a_proto[pa_], rword[pa_])
    role = np.full(m, _ROLE_ANSWER, np.uint8)
    role[own_rows] = np.where(probe[po], _ROLE_PROBE, _ROLE_ACK)
    del own_rows, ans_rows, po, pa_

    # ---- group flows, keeping time order inside each flow
    s = np.argsort(h, kind="stable")
    h, pkt, side, role = h[s], pkt[s], side[s], role[s]
    del s
    row_ts = ts[pkt]
    pos = np.arange(m, dtype=np.int64)

    key_columns = (
        (src_hi, a_src_hi), (src_lo, a_src_lo), (dst_hi, a_dst_hi), (dst_lo, a_dst_lo),
        (proto, a_proto), (word, rword),
    )  # (own key, answer key) column pairs

    def next_after(mask: np.ndarray) -> np.ndarray:
        """Index of the first row after each row with ``mask`` set (``m`` when none)."""
        nxt = np.where(mask, pos, m)
        nxt = np.minimum.accumulate(nxt[::-1])[::-1]
        return np.append(nxt[1:], m)

    def same_key(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Rows ``i`` and ``j`` (j < m) have the same flow key, hash first then in full."""
        ok = h[i] == h[j]
        pi, pj, si, sj = pkt[i], pkt[j], side[i], side[j]
        for own_col, ans_col in key_columns:
            ki = np.where(si, ans_col[pi], own_col[pi])
            kj = np.where(sj, ans_col[pj], own_col[pj])
            ok &= ki == kj
        return ok

    is_ans = role == _ROLE_ANSWER
    probes = np.flatnonzero(role == _ROLE_PROBE)
    outcome_rows = np.full(probes.shape[0], Outcome.UNANSWERED, np.uint8)

    # answered: the first answer row after the probe, same flow, within the timeout
    nxt = next_after(is_ans)[probes]
    hit = nxt < m
    hit[hit] = (row_ts[nxt[hit]] - row_ts[probes[hit]]) <= timeout_us
    hit[hit] = same_key(probes[hit], nxt[hit])
    answer_kind = kind[pkt[nxt[hit]]]
    outcome_rows[hit] = _ANSWER_OUTCOME[answer_kind]

    # established: after the SYN-ACK, the client's ACK within the timeout
    syn_acked = np.flatnonzero(hit)[answer_kind == _ANS_SYNACK]
    if syn_acked.size:
        j = nxt[syn_acked]
        k = next_after(role == _ROLE_ACK)[j]
        est = k < m
        est[est] = (row_ts[k[est]] - row_ts[j[est]]) <= timeout_us
        est[est] = same_key(j[est], k[est])
        outcome_rows[syn_acked[est]] = Outcome.ESTABLISHED

    # a UDP packet shortly after one of the reverse direction is a reply, not a probe
    udp_probe = udp[pkt[probes]]
    if udp_probe.any():
        udp_rows = probes[udp_probe]
        udp_ans = is_ans & (kind[pkt] == _ANS_UDP)
        prv = np.maximum.accumulate(np.where(udp_ans, pos, -1))
        prv = np.concatenate(([-1], prv[:-1]))[udp_rows]
        reply = prv >= 0
        reply[reply] = (row_ts[udp_rows[reply]] - row_ts[prv[reply]]) <= timeout_us
        reply[reply] = same_key(udp_rows[reply], prv[reply])
        sub = outcome_rows[udp_probe]
        sub[reply] = Outcome.UNKNOWN
        outcome_rows[udp_probe] = sub

    out[pkt[probes]] = outcome_rows
    return _finish(out, probe, other, verdict)


def _finish(out: np.ndarray, probe: np.ndarray, other: np.ndarray,
            verdict: np.ndarray) -> np.ndarray:
    """Unpaired probes of other IP protocols stay unknown; link-layer verdicts win."""
    unpaired_other = probe & other & (out == Outcome.UNANSWERED)
    out[unpaired_other] = Outcome.UNKNOWN
    has_verdict = verdict != 0
    out[has_verdict] = verdict[has_verdict]
    return out
