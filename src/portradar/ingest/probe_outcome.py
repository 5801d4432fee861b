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

**How.**  One numba pass gives every packet its role (probe, client ACK, answer, or
none) and hashes its flow key to 64 bits: a probe's own key (source, destination,
protocol, port word), an answer's key of the probe it answers (the reverse key of a
SYN-ACK, RST, UDP or echo reply; the quoted header of an ICMP unreachable).  Then it is
a sort-merge join: the answers, a small share of a scan capture, are sorted by (flow,
capture time) and every probe finds the first answer after it with one
``searchsorted``; client ACKs after a SYN-ACK and, for UDP, an earlier packet of the
reverse direction are found the same way.  Matches are checked against the full key
afterwards, so a hash collision (about 1 in 10**7 for two million flows) can only lose
a pairing, never make a false one.

**Default timeout.**  :data:`DEFAULT_PROBE_TIMEOUT` is 3 seconds, the default of
``ReadOptions.probe_timeout``.  nmap allows a reply 1 s at first and never more than
10 s (``INITIAL_RTT_TIMEOUT`` 1000 ms and ``MAX_RTT_TIMEOUT`` 10000 ms in ``nmap.h``,
the ``-T3`` defaults; ``-T4`` caps it at 1.25 s), masscan waits 10 s after its *last*
probe only (its ``--wait`` default), and RFC 6298 sets TCP's initial retransmission
timeout to 1 s: a reply that has not come in 3 s (three initial RTOs) is, for our
purposes, not coming, and a longer window only pairs more stale packets.
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

# what a packet's own key is used for
OWN_NONE, OWN_TCP_PROBE, OWN_UDP_PROBE, OWN_ECHO_PROBE, OWN_OTHER_PROBE, OWN_CLIENT_ACK = range(6)
# what a packet answers, keyed as the probe it answers
ANS_NONE, ANS_SYNACK, ANS_RST, ANS_UDP, ANS_ECHO, ANS_UNREACH = range(6)
#: Outcome of a packet before pairing, by its own role: probes are unanswered until an
#: answer is found, probes of other IP protocols unknown unless rejected.
_DEFAULT_OUTCOME = np.array(
    [Outcome.UNKNOWN, Outcome.UNANSWERED, Outcome.UNANSWERED, Outcome.UNANSWERED,
     Outcome.UNKNOWN, Outcome.UNKNOWN], np.uint8,
)  # fmt: skip
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


@numba.njit(cache=True, inline="always")
def _key_hash(  # pragma: no cover - jit
    a_hi: np.uint64, a_lo: np.uint64, b_hi: np.uint64, b_lo: np.uint64, proto: int,
    word: int | np.unsignedinteger,
) -> np.uint64:  # fmt: skip
    h = _fmix64(a_hi ^ np.uint64(0x9E3779B97F4A7C15))
    h = _fmix64(h ^ a_lo)
    h = _fmix64(h ^ b_hi)
    h = _fmix64(h ^ b_lo)
    return _fmix64(h ^ ((np.uint64(proto) << np.uint64(32)) | np.uint64(word)))


@numba.njit(cache=True, nogil=True)
def hash_keys(  # pragma: no cover - jit
    a_hi: np.ndarray, a_lo: np.ndarray, b_hi: np.ndarray, b_lo: np.ndarray,
    proto: np.ndarray, word: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """64-bit hash of each flow key (address a, address b, protocol, port word)."""
    n = a_hi.shape[0]
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = _key_hash(a_hi[i], a_lo[i], b_hi[i], b_lo[i], proto[i], word[i])
    return out


@numba.njit(cache=True, nogil=True)
def classify_packets(  # pragma: no cover - jit
    src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
    proto: np.ndarray, l4: np.ndarray, sport: np.ndarray, dport: np.ndarray,
    flags: np.ndarray, itype: np.ndarray, ident: np.ndarray, verdict: np.ndarray,
    default_outcome: np.ndarray,
) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Sort every packet into the roles of the module docstring's table.

    Returns the outcome each packet has before pairing (``default_outcome`` by own
    role, or its link-layer verdict), then three tables: probes (packet, own role,
    hash of its key), answers (packet, kind, hash of the key of the probe it answers)
    and client ACKs (packet, hash of its key), each in packet order.
    """
    n = src_lo.shape[0]
    out = np.empty(n, np.uint8)
    # room for every packet in every table: pages never written cost no memory
    p_pkt = np.empty(n, np.int64)
    p_role = np.empty(n, np.uint8)
    p_h = np.empty(n, np.uint64)
    a_pkt = np.empty(n, np.int64)
    a_kind = np.empty(n, np.uint8)
    a_h = np.empty(n, np.uint64)
    k_pkt = np.empty(n, np.int64)
    k_h = np.empty(n, np.uint64)
    n_probe = n_ans = n_ack = 0
    for i in range(n):
        pr = proto[i]
        kind = l4[i]
        f = flags[i]
        o = OWN_NONE
        a = ANS_NONE
        if kind == _L4_TCP:
            if f & (_ACK | _RST) == 0:
                o = OWN_TCP_PROBE
            elif f & (_SYN | _RST) == 0:
                o = OWN_CLIENT_ACK
            if f & _RST:
                a = ANS_RST
            elif f & (_SYN | _ACK) == (_SYN | _ACK):
                a = ANS_SYNACK
        elif kind == _L4_PORTS:
            if pr == 17 or pr == 136:
                o = OWN_UDP_PROBE
                a = ANS_UDP
        elif kind == _L4_ICMP:
            t = itype[i]
            if (pr == 1 and t == 8) or (pr == 58 and t == 128):
                o = OWN_ECHO_PROBE
            elif (pr == 1 and t == 0) or (pr == 58 and t == 129):
                a = ANS_ECHO
        elif not (pr == 6 or pr == 17 or pr == 132 or pr == 136 or pr == 33 or pr == 1
                  or pr == 58):  # fmt: skip
            o = OWN_OTHER_PROBE
        if o != OWN_NONE and o != OWN_CLIENT_ACK:
            # never a probe: a verdict from the link layer, or no single target
            hi = dst_hi[i]
            lo = dst_lo[i]
            if verdict[i] != 0:
                o = OWN_NONE
            elif hi == 0 and (lo >> np.uint64(32)) == np.uint64(0xFFFF):
                octet = np.int64((lo >> np.uint64(24)) & np.uint64(0xFF))
                if (octet >= 224 and octet <= 239) or lo == np.uint64(0xFFFF_FFFF_FFFF):
                    o = OWN_NONE
            elif (hi >> np.uint64(56)) == np.uint64(0xFF):
                o = OWN_NONE
        out[i] = max(default_outcome[o], verdict[i])
        if o == OWN_NONE and a == ANS_NONE:
            continue
        if kind == _L4_ICMP:
            word = np.uint32(ident[i])
            rword = word
        else:
            word = (np.uint32(sport[i]) << np.uint32(16)) | np.uint32(dport[i])
            rword = (np.uint32(dport[i]) << np.uint32(16)) | np.uint32(sport[i])
        if o == OWN_OTHER_PROBE:
            word = np.uint32(0)
        if o == OWN_CLIENT_ACK:
            k_pkt[n_ack] = i
            k_h[n_ack] = _key_hash(src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], pr, word)
            n_ack += 1
        elif o != OWN_NONE:
            p_pkt[n_probe] = i
            p_role[n_probe] = o
            p_h[n_probe] = _key_hash(src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], pr, word)
            n_probe += 1
        if a != ANS_NONE:
            a_pkt[n_ans] = i
            a_kind[n_ans] = a
            a_h[n_ans] = _key_hash(dst_hi[i], dst_lo[i], src_hi[i], src_lo[i], pr, rword)
            n_ans += 1
    return (
        out, p_pkt[:n_probe], p_role[:n_probe], p_h[:n_probe], a_pkt[:n_ans],
        a_kind[:n_ans], a_h[:n_ans], k_pkt[:n_ack], k_h[:n_ack],
    )  # fmt: skip


def _column(cols: Mapping[str, np.ndarray], name: str, n: int, dtype: type) -> np.ndarray:
    value = cols.get(name)
    if value is None:
        return np.zeros(n, dtype)
    return np.ascontiguousarray(value, dtype)


#: Slots of the lookup table per distinct answer key: with 8, about 6% of the keys share
#: a slot with another and take the binary-search path ...
TABLE_SLOTS_PER_KEY = 8
#: ... and its bounds, 2**16 to 2**24 slots of 4 bytes (256 KB to 64 MB).
TABLE_MIN_LOG2, TABLE_MAX_LOG2 = 16, 24
_EMPTY, _SHARED = -1, -2


class _FlowIndex:
    """The distinct answer-key hashes, and a direct-mapped table from hash to group.

    A scan capture has many more probes than answers, and most probes' keys have no
    answer.  The table, indexed by a hash's low bits, holds the group of the one answer
    key in that slot; one vectorised gather tells most probes apart, and only slots
    shared by several keys fall back to a binary search of the sorted hashes.
    """

    def __init__(self, hashes: np.ndarray) -> None:
        s = np.sort(hashes)
        first = np.ones(s.shape[0], bool)
        first[1:] = s[1:] != s[:-1]
        self.groups = s[first]
        count = self.groups.shape[0]
        want = max(1, count * TABLE_SLOTS_PER_KEY).bit_length()
        log2 = min(TABLE_MAX_LOG2, max(TABLE_MIN_LOG2, want))
        self.mask = np.uint64((1 << log2) - 1)
        slot = (self.groups & self.mask).astype(np.intp)
        self.table = np.full(1 << log2, _EMPTY, np.int32)
        ids = np.arange(count, dtype=np.int32)
        self.table[slot] = ids  # the last key written to a slot wins ...
        shared = slot[self.table[slot] != ids]
        self.table[shared] = _SHARED  # ... so slots where another lost are marked shared

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Group number of each hash, and whether it is one of the answer keys."""
        slot = np.bitwise_and(hashes, self.mask).view(np.int64)  # below 2**24: a valid index
        found = self.table[slot]
        maybe = np.flatnonzero(found >= 0)
        group = np.zeros(hashes.shape[0], np.int64)
        present = np.zeros(hashes.shape[0], bool)
        same = self.groups[found[maybe]] == hashes[maybe]
        group[maybe[same]] = found[maybe[same]]
        present[maybe[same]] = True
        shared = np.flatnonzero(found == _SHARED)
        if shared.shape[0]:
            g = np.searchsorted(self.groups, hashes[shared])
            ok = g < self.groups.shape[0]
            ok[ok] = self.groups[g[ok]] == hashes[shared[ok]]
            group[shared[ok]] = g[ok]
            present[shared[ok]] = True
        return group, present


class _Order:
    """Rank of each packet in capture-time order, the capture's order breaking ties.

    Indexing it with packet numbers gives their ranks; a capture already in time order
    (the usual case) needs no array at all.
    """

    def __init__(self, ts: np.ndarray) -> None:
        self.rank: np.ndarray | None = None
        if not bool(np.all(ts[1:] >= ts[:-1])):
            n = ts.shape[0]
            self.rank = np.empty(n, np.int64)
            self.rank[np.argsort(ts, kind="stable")] = np.arange(n, dtype=np.int64)

    def __getitem__(self, pkt: np.ndarray) -> np.ndarray:
        return pkt.astype(np.int64, copy=False) if self.rank is None else self.rank[pkt]


class _Flows:
    """Rows of one role, sorted by (flow, capture time), for searchsorted joins."""

    def __init__(self, index: _FlowIndex, hashes: np.ndarray, pkt: np.ndarray,
                 when: np.ndarray | _Order, width: int) -> None:  # fmt: skip
        g, present = index.lookup(hashes)
        comp = g[present] * width + when[pkt[present]]
        order = np.argsort(comp)
        self.pkt = pkt[present][order]
        self.comp = comp[order]
        self.group = g[present][order]
        per_group = np.bincount(self.group, minlength=index.groups.shape[0])
        self.end = np.cumsum(per_group)  # one past each group's last row
        self.start = self.end - per_group

    def first_after(self, group: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of the first entry of ``group`` after ``comp``, and whether there is one."""
        j = self.start[group]
        ok = j < self.end[group]
        # usually the group's first row already comes later; search only the others
        late = np.flatnonzero(ok)
        late = late[self.comp[j[late]] <= comp[late]]
        j[late] = np.searchsorted(self.comp, comp[late], side="right")
        ok[late] = j[late] < self.end[group[late]]
        return j, ok

    def last_before(self, group: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of the last entry of ``group`` before ``comp``, and whether there is one."""
        j = self.end[group] - 1
        ok = j >= self.start[group]
        early = np.flatnonzero(ok)
        early = early[self.comp[j[early]] >= comp[early]]
        j[early] = np.searchsorted(self.comp, comp[early], side="left") - 1
        ok[early] = j[early] >= self.start[group[early]]
        return j, ok


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
    describes ICMP destination unreachables: ``row`` (the packet) and the quoted key
    ``src_hi``, ``src_lo``, ``dst_hi``, ``dst_lo``, ``proto``, ``ports``.
    """
    ts = np.ascontiguousarray(cols["ts"], np.int64)
    n = ts.shape[0]
    if n == 0:
        return np.zeros(0, np.uint8)
    src_hi = _column(cols, "src_hi", n, np.uint64)
    dst_hi = _column(cols, "dst_hi", n, np.uint64)
    src_lo = _column(cols, "src_lo", n, np.uint64)
    dst_lo = _column(cols, "dst_lo", n, np.uint64)
    proto = _column(cols, "proto", n, np.uint8)
    sport = _column(cols, "sport", n, np.uint16)
    dport = _column(cols, "dport", n, np.uint16)
    ident = _column(cols, "icmp_ident", n, np.uint32)
    verdict = _column(cols, "verdict", n, np.uint8)
    out, p, p_role, p_h, a_pkt, a_kind, a_h, k_pkt, k_h = classify_packets(
        src_hi, src_lo, dst_hi, dst_lo, proto, _column(cols, "l4", n, np.uint8), sport, dport,
        _column(cols, "tcp_flags", n, np.uint8), _column(cols, "icmp_type", n, np.uint8),
        ident, verdict, _DEFAULT_OUTCOME,
    )  # fmt: skip
    when = _Order(ts)  # capture-time order (the capture's order breaks ties)

    # the answers: packet, kind and the key of the probe answered (reverse, or quoted)
    key = [dst_hi[a_pkt], dst_lo[a_pkt], src_hi[a_pkt], src_lo[a_pkt], proto[a_pkt],
           _words(a_kind == ANS_ECHO, ident[a_pkt], dport[a_pkt], sport[a_pkt])]  # fmt: skip
    if quotes is not None and len(quotes["row"]):
        q_pkt = np.asarray(quotes["row"], np.int64)
        q = [np.asarray(quotes[c]) for c in ("src_hi", "src_lo", "dst_hi", "dst_lo", "proto",
                                             "ports")]  # fmt: skip
        a_pkt = np.concatenate([a_pkt, q_pkt])
        a_kind = np.concatenate([a_kind, np.full(q_pkt.shape[0], ANS_UNREACH, np.uint8)])
        a_h = np.concatenate([a_h, hash_keys(q[0].astype(np.uint64), q[1].astype(np.uint64),
                                             q[2].astype(np.uint64), q[3].astype(np.uint64),
                                             q[4], q[5])])  # fmt: skip
        key = [np.concatenate([k, v.astype(k.dtype)]) for k, v in zip(key, q, strict=True)]
    if a_pkt.shape[0] == 0 or p.shape[0] == 0:
        return out
    index = _FlowIndex(a_h)
    answers = _Flows(index, a_h, np.arange(a_pkt.shape[0]), when[a_pkt], n)
    a_row = answers.pkt  # rows of the answer table, in (flow, time) order
    a_pkt_sorted = a_pkt[a_row]

    def own_key(pkt: np.ndarray, role: np.ndarray) -> list[np.ndarray]:
        """The full own key of packets ``pkt`` (as :func:`classify_packets` hashes it)."""
        word = _words(role == OWN_ECHO_PROBE, ident[pkt], sport[pkt], dport[pkt])
        word[role == OWN_OTHER_PROBE] = 0
        return [src_hi[pkt], src_lo[pkt], dst_hi[pkt], dst_lo[pkt], proto[pkt], word]

    # every probe: the first answer of its flow after it, within the timeout
    g, has = index.lookup(p_h)
    p, p_role, pg = p[has], p_role[has], g[has]
    j, hit = answers.first_after(pg, pg * n + when[p])
    hit[hit] = ts[a_pkt_sorted[j[hit]]] - ts[p[hit]] <= timeout_us
    hit[hit] = _same_key(own_key(p[hit], p_role[hit]), [k[a_row[j[hit]]] for k in key])
    matched, mj = p[hit], j[hit]
    kind = a_kind[a_row[mj]]
    out[matched] = _ANSWER_OUTCOME[kind]

    # established: the client's ACK after the SYN-ACK, within the timeout
    syn_acked = kind == ANS_SYNACK
    if syn_acked.any() and k_pkt.shape[0]:
        acks = _Flows(index, k_h, k_pkt, when, n)
        sj = mj[syn_acked]
        k_row, est = acks.first_after(answers.group[sj], answers.comp[sj])
        ack = acks.pkt[k_row[est]]
        est[est] = (ts[ack] - ts[a_pkt_sorted[sj[est]]] <= timeout_us) & _same_key(
            own_key(ack, np.full(ack.shape[0], OWN_CLIENT_ACK, np.uint8)),
            [k[a_row[sj[est]]] for k in key],
        )
        out[matched[syn_acked][est]] = Outcome.ESTABLISHED

    # a UDP packet shortly after one of the reverse direction is a reply, not a probe
    udp = p_role == OWN_UDP_PROBE
    if udp.any():
        u_rows = a_row[a_kind[a_row] == ANS_UDP]
        udp_answers = _Flows(index, a_h[u_rows], u_rows, when[a_pkt], n)
        up, ug = p[udp], pg[udp]
        u, reply = udp_answers.last_before(ug, ug * n + when[up])
        prev = udp_answers.pkt[u[reply]]
        reply[reply] = (ts[up[reply]] - ts[a_pkt[prev]] <= timeout_us) & _same_key(
            own_key(up[reply], p_role[udp][reply]), [k[prev] for k in key]
        )
        out[up[reply]] = Outcome.UNKNOWN
    return out


def _words(echo: np.ndarray, ident: np.ndarray, first: np.ndarray,
           second: np.ndarray) -> np.ndarray:  # fmt: skip
    """Port word ``first << 16 | second``, or the echo identifier where ``echo``."""
    ports = (first.astype(np.uint32) << np.uint32(16)) | second.astype(np.uint32)
    return np.where(echo, ident, ports).astype(np.uint32)


def _same_key(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Element-wise equality of two keys given as column lists."""
    ok = np.ones(a[0].shape[0], bool)
    for x, y in zip(a, b, strict=True):
        ok &= x == y.astype(x.dtype)
    return ok
