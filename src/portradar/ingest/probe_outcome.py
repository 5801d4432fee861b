"""Outcome of each probe in a packet capture, from the replies seen in the same capture.

A packet sensor sees no firewall verdict, but it sees what the target said back.  This
module pairs probes with their replies, for a whole capture at once, in two compiled
passes and a hash table (no per-packet Python; see **How** below):

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
``unknown``.  The answer a probe's outcome came from is marked (``answers=``: the reader
does not store it, it *is* the outcome); replies that answer no probe of the capture
stay events, which backscatter detection needs.  A UDP packet is a *reply*, not a
probe, when a UDP packet of the reverse direction came less than ``timeout`` before it
(the DNS answer to a query), and the next packet of its conversation is not its answer.
Packets sent to a multicast or the limited-broadcast address are never probes (no
single target can answer them).  Packets that already carry a verdict (pflog's
pass/block) keep it.

**Return traffic** (:func:`return_traffic`, after pairing): the later packets of a
conversation travelling against the direction of the side that started it in the
capture (TCP: the side that sent the SYN without ACK; UDP: the first packet of the
5-tuple; ICMP echo: the requests of one identifier) are not probes either: the server's
data, ACKs and FIN, the second and later UDP replies, duplicate echo replies.  A
conversation ends after an idle timeout (:data:`TCP_IDLE_TIMEOUT` 300 s,
:data:`UDP_IDLE_TIMEOUT` and :data:`ICMP_IDLE_TIMEOUT` 60 s, Zeek's defaults) or, for TCP,
:data:`TCP_CLOSE_DELAY` (5 s) after an RST or both sides' FINs.  Conversations whose start
the capture did not see (mid-stream) are not followed: all their packets stay events.
Two compiled passes (a two-bit-per-key filter keeps only the packets of keys seen from
both sides, answers left out) and a conversation hash table, kept across rounds by the
live capture (:class:`Conversations`); details in ``docs/pcap-reader.md``.

Why "other IP protocol" without a reply stays unknown: ``nmap -sO`` probes and tunnel
traffic (GRE, ESP) look alike, and only a "protocol unreachable" tells them apart.

**How.**  Two numba passes over the capture, no sort of the packets and no Python per
packet.  The first gives every packet its role (probe, client ACK, answer, or none) and
lists the answers with the key of the probe each answers (the reverse key of a
SYN-ACK, RST, UDP or echo reply; the quoted header of an ICMP unreachable).  The
answers, a small share of a scan capture, go into an open-addressing hash table on
their full key (source, destination, protocol, port word), and a counting sort lays
each key's answers out in capture-time order.  The second pass looks every probe up
in that table: most probes of a scan have no answer key and cost one table probe; the
rest binary-search their key's answers for the first one after the probe.  Client
ACKs after a SYN-ACK and, for UDP, an earlier packet of the reverse direction are
found the same way.  Keys are compared in full, so a hash collision costs time, never
a pairing.

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
>>> answers = np.zeros(5, np.bool_)
>>> [Outcome(o).label for o in probe_outcomes(cols, timeout_us=3_000_000, answers=answers)]
['accepted', 'rejected', 'unanswered', 'unknown', 'unknown']
>>> answers.tolist()  # the SYN-ACK and the RST answered a probe of the capture
[False, False, False, True, True]
>>> conversation = {  # SYN, SYN-ACK, ACK, the server's data, the client's ACK
...     "ts": np.arange(5) * 1000,
...     "src_lo": np.array([scanner, target, scanner, target, scanner], np.uint64),
...     "dst_lo": np.array([target, scanner, target, scanner, target], np.uint64),
...     "proto": np.full(5, 6, np.uint8), "l4": np.full(5, 2, np.uint8),
...     "sport": np.array([40000, 80, 40000, 80, 40000], np.uint16),
...     "dport": np.array([80, 40000, 80, 40000, 80], np.uint16),
...     "tcp_flags": np.array([0x02, 0x12, 0x10, 0x18, 0x10], np.uint8)}
>>> answers = np.zeros(5, np.bool_)
>>> [Outcome(o).label for o in probe_outcomes(conversation, timeout_us=3_000_000,
...                                           answers=answers)][0]
'established'
>>> return_traffic(conversation, answers=answers).tolist()  # server's data; client's ACKs
[0, 0, 2, 1, 2]
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
_UNKNOWN, _ESTABLISHED = int(Outcome.UNKNOWN), int(Outcome.ESTABLISHED)

#: Slots of the answer-key hash table per answer, at least.  Linear probing in a table at
#: most half full takes about 1.5 probes to find a key and 2.5 to miss one (Knuth, TAOCP
#: vol. 3, section 6.4), and most lookups are misses: the probes nobody answered.
TABLE_SLOTS_PER_ANSWER = 2
#: Fewest slots: a small capture's table stays in the L1 cache either way.
TABLE_MIN_SLOTS = 1 << 10

__all__ = ["DEFAULT_PROBE_TIMEOUT", "Conversations", "probe_outcomes", "return_traffic"]


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
    """64-bit hash of a flow key: each part times its own odd constant, summed, then mixed.

    The five products are independent (the CPU overlaps them) and one finaliser spreads
    every input bit over the whole word; keys are compared in full after a hash match.
    """
    h = (a_lo * np.uint64(0x9E3779B97F4A7C15) + b_lo * np.uint64(0xC2B2AE3D27D4EB4F)
         + a_hi * np.uint64(0x165667B19E3779F9) + b_hi * np.uint64(0xD6E8FEB86659FD93)
         + ((np.uint64(proto) << np.uint64(32)) | np.uint64(word))
         * np.uint64(0xFF51AFD7ED558CCD))
    return _fmix64(h)


@numba.njit(cache=True, inline="always")
def _when(i: int, rank: np.ndarray, in_order: bool) -> int:  # pragma: no cover - jit
    """Capture-time rank of packet ``i`` (its index when the capture is in time order)."""
    return i if in_order else rank[i]


@numba.njit(cache=True, nogil=True)
def classify_packets(  # pragma: no cover - jit
    src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
    proto: np.ndarray, l4: np.ndarray, sport: np.ndarray, dport: np.ndarray,
    flags: np.ndarray, itype: np.ndarray, ident: np.ndarray, verdict: np.ndarray,
    q_row: np.ndarray, q_src_hi: np.ndarray, q_src_lo: np.ndarray, q_dst_hi: np.ndarray,
    q_dst_lo: np.ndarray, q_proto: np.ndarray, q_word: np.ndarray,
    default_outcome: np.ndarray,
) -> tuple:  # fmt: skip
    """Sort every packet into the roles of the module docstring's table.

    Returns the outcome each packet has before pairing (``default_outcome`` by own
    role, or its link-layer verdict), then three tables, each in packet order: probes
    (packet, own role, port word, hash of its key), answers (packet, kind, hash, and
    the key of the probe it answers: a, b, protocol, port word) and client ACKs
    (packet, hash of its key).  ``q_*`` are the ICMP unreachables' quoted keys, sorted
    by ``q_row``; each becomes an answer in its packet's place.
    """
    n = src_lo.shape[0]
    nq = q_row.shape[0]
    out = np.empty(n, np.uint8)
    # room for every packet in every table: pages never written cost no memory
    p_pkt = np.empty(n, np.int64)
    p_role = np.empty(n, np.uint8)
    p_word = np.empty(n, np.uint32)
    p_h = np.empty(n, np.uint64)
    a_pkt = np.empty(n + nq, np.int64)
    a_kind = np.empty(n + nq, np.uint8)
    a_h = np.empty(n + nq, np.uint64)
    ka_hi = np.empty(n + nq, np.uint64)
    ka_lo = np.empty(n + nq, np.uint64)
    kb_hi = np.empty(n + nq, np.uint64)
    kb_lo = np.empty(n + nq, np.uint64)
    k_proto = np.empty(n + nq, np.uint8)
    k_word = np.empty(n + nq, np.uint32)
    c_pkt = np.empty(n, np.int64)
    c_h = np.empty(n, np.uint64)
    n_probe = n_ans = n_ack = 0
    qi = 0
    for i in range(n):
        while qi < nq and q_row[qi] <= i:  # the quotes of this packet (rows below 0: none)
            if q_row[qi] == i:
                a_pkt[n_ans] = i
                a_kind[n_ans] = ANS_UNREACH
                ka_hi[n_ans] = q_src_hi[qi]
                ka_lo[n_ans] = q_src_lo[qi]
                kb_hi[n_ans] = q_dst_hi[qi]
                kb_lo[n_ans] = q_dst_lo[qi]
                k_proto[n_ans] = q_proto[qi]
                k_word[n_ans] = q_word[qi]
                a_h[n_ans] = _key_hash(q_src_hi[qi], q_src_lo[qi], q_dst_hi[qi], q_dst_lo[qi],
                                       q_proto[qi], q_word[qi])  # fmt: skip
                n_ans += 1
            qi += 1
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
            c_pkt[n_ack] = i
            c_h[n_ack] = _key_hash(src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], pr, word)
            n_ack += 1
        elif o != OWN_NONE:
            p_pkt[n_probe] = i
            p_role[n_probe] = o
            p_word[n_probe] = word
            p_h[n_probe] = _key_hash(src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], pr, word)
            n_probe += 1
        if a != ANS_NONE:
            a_pkt[n_ans] = i
            a_kind[n_ans] = a
            ka_hi[n_ans] = dst_hi[i]
            ka_lo[n_ans] = dst_lo[i]
            kb_hi[n_ans] = src_hi[i]
            kb_lo[n_ans] = src_lo[i]
            k_proto[n_ans] = pr
            k_word[n_ans] = rword
            a_h[n_ans] = _key_hash(dst_hi[i], dst_lo[i], src_hi[i], src_lo[i], pr, rword)
            n_ans += 1
    return (
        out,
        p_pkt[:n_probe], p_role[:n_probe], p_word[:n_probe], p_h[:n_probe],
        a_pkt[:n_ans], a_kind[:n_ans], a_h[:n_ans], ka_hi[:n_ans], ka_lo[:n_ans],
        kb_hi[:n_ans], kb_lo[:n_ans], k_proto[:n_ans], k_word[:n_ans],
        c_pkt[:n_ack], c_h[:n_ack],
    )  # fmt: skip


@numba.njit(cache=True, inline="always")
def _find_flow(  # pragma: no cover - jit
    h: np.uint64, a_hi: np.uint64, a_lo: np.uint64, b_hi: np.uint64, b_lo: np.uint64,
    pr: int, word: int, slot_h: np.ndarray, slot_f: np.ndarray, mask: int,
    flow_key: np.ndarray, ka_hi: np.ndarray, ka_lo: np.ndarray, kb_hi: np.ndarray,
    kb_lo: np.ndarray, k_proto: np.ndarray, k_word: np.ndarray,
) -> int:  # fmt: skip
    """The answer flow with exactly this key, or -1 (linear probing from the hash's slot)."""
    s = np.int64(h & np.uint64(mask))
    while True:  # ends: the table is at most half full, so an empty slot comes
        f = slot_f[s]
        if f < 0:
            return -1
        if slot_h[s] == h:
            r = flow_key[f]
            if (ka_lo[r] == a_lo and kb_lo[r] == b_lo and ka_hi[r] == a_hi and kb_hi[r] == b_hi
                    and k_proto[r] == pr and k_word[r] == word):  # fmt: skip
                return f
        s = (s + 1) & mask


@numba.njit(cache=True, inline="always")
def _first_above(w: np.ndarray, lo: int, hi: int, x: int) -> int:  # pragma: no cover - jit
    """First position in ``w[lo:hi]`` (ascending) holding more than ``x``; ``hi`` if none."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if w[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, inline="always")
def _first_from(w: np.ndarray, lo: int, hi: int, x: int) -> int:  # pragma: no cover - jit
    """First position in ``w[lo:hi]`` (ascending) holding ``x`` or more; ``hi`` if none."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if w[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, inline="always")
def _time_order(  # pragma: no cover - jit
    pkts: np.ndarray, rank: np.ndarray, in_order: bool,
) -> np.ndarray:
    """Positions of ``pkts`` (packet numbers) in capture-time order, ties in packet order."""
    if in_order:
        return np.arange(pkts.shape[0])
    when = np.empty(pkts.shape[0], np.int64)
    for j in range(pkts.shape[0]):
        when[j] = rank[pkts[j]]
    return np.argsort(when, kind="mergesort")


@numba.njit(cache=True, nogil=True)
def pair_probes(  # pragma: no cover - jit
    ts: np.ndarray, rank: np.ndarray, in_order: bool, src_hi: np.ndarray, src_lo: np.ndarray,
    dst_hi: np.ndarray, dst_lo: np.ndarray, proto: np.ndarray, sport: np.ndarray,
    dport: np.ndarray, out: np.ndarray,
    p_pkt: np.ndarray, p_role: np.ndarray, p_word: np.ndarray, p_h: np.ndarray,
    a_pkt: np.ndarray, a_kind: np.ndarray, a_h: np.ndarray, ka_hi: np.ndarray,
    ka_lo: np.ndarray, kb_hi: np.ndarray, kb_lo: np.ndarray, k_proto: np.ndarray,
    k_word: np.ndarray, c_pkt: np.ndarray, c_h: np.ndarray, timeout: int,
    answer_outcome: np.ndarray, answered: np.ndarray,
) -> None:  # fmt: skip
    """Give every probe of :func:`classify_packets`' tables its outcome, in ``out``, and
    mark in ``answered`` (one flag per packet) each packet that is the answer a probe's
    outcome was taken from.

    ``rank`` is each packet's place in capture-time order (ignored when ``in_order``:
    the capture is in time order and the rank is the index).
    """
    na = a_pkt.shape[0]
    if na == 0 or p_pkt.shape[0] == 0:
        return
    # the answers in time order (in packet order already when the capture is)
    a_order = _time_order(a_pkt, rank, in_order)
    # hash table of the distinct answer keys ("flows"): slot -> (hash, flow)
    size = TABLE_MIN_SLOTS
    while size < TABLE_SLOTS_PER_ANSWER * na:
        size <<= 1
    mask = size - 1
    slot_h = np.empty(size, np.uint64)
    slot_f = np.full(size, -1, np.int32)
    flow_key = np.empty(na, np.int64)  # an answer holding the flow's key
    a_flow = np.empty(na, np.int64)
    nf = 0
    for j in range(na):
        h = a_h[j]
        f = _find_flow(h, ka_hi[j], ka_lo[j], kb_hi[j], kb_lo[j], k_proto[j], k_word[j],
                       slot_h, slot_f, mask, flow_key, ka_hi, ka_lo, kb_hi, kb_lo, k_proto,
                       k_word)  # fmt: skip
        if f < 0:
            s = np.int64(h & np.uint64(mask))
            while slot_f[s] >= 0:
                s = (s + 1) & mask
            slot_f[s] = nf
            slot_h[s] = h
            flow_key[nf] = j
            f = nf
            nf += 1
        a_flow[j] = f
    # counting sort: each flow's answers side by side, in time order
    start = np.zeros(nf + 1, np.int64)
    for j in range(na):
        start[a_flow[j] + 1] += 1
    for f in range(nf):
        start[f + 1] += start[f]
    fill = start[:nf].copy()
    row = np.empty(na, np.int64)  # answer at each place
    when = np.empty(na, np.int64)  # its time rank
    for t in range(na):
        j = a_order[t]
        at = fill[a_flow[j]]
        fill[a_flow[j]] += 1
        row[at] = j
        when[at] = _when(a_pkt[j], rank, in_order)
    last_udp = np.empty(na, np.int64)  # last UDP answer of the flow up to each place
    for f in range(nf):
        prev = -1
        for at in range(start[f], start[f + 1]):
            if a_kind[row[at]] == ANS_UDP:
                prev = at
            last_udp[at] = prev

    # every probe: the first answer of its key after it, within the timeout
    n_probe = p_pkt.shape[0]
    syn_pkt = np.empty(n_probe, np.int64)  # probes answered by a SYN-ACK ...
    syn_ans = np.empty(n_probe, np.int64)  # ... and that answer
    replies = np.empty(n_probe, np.int64)  # UDP "probes" that answer an earlier packet
    n_syn = n_reply = 0
    for t in range(n_probe):
        p = p_pkt[t]
        f = _find_flow(p_h[t], src_hi[p], src_lo[p], dst_hi[p], dst_lo[p], proto[p], p_word[t],
                       slot_h, slot_f, mask, flow_key, ka_hi, ka_lo, kb_hi, kb_lo, k_proto,
                       k_word)  # fmt: skip
        if f < 0:
            continue
        lo, hi = start[f], start[f + 1]
        wp = _when(p, rank, in_order)
        at = _first_above(when, lo, hi, wp)
        is_reply = False
        if p_role[t] == OWN_UDP_PROBE:
            before = _first_from(when, lo, at, wp) - 1
            if (before >= lo and last_udp[before] >= 0
                    and ts[p] - ts[a_pkt[row[last_udp[before]]]] <= timeout):
                replies[n_reply] = p
                n_reply += 1
                is_reply = True
        if at < hi:
            j = row[at]
            # a reply's own "answer" (the next packet of a UDP conversation) answers
            # nothing: the reply is no probe (its outcome is reset below)
            if ts[a_pkt[j]] - ts[p] <= timeout and not (is_reply and a_kind[j] == ANS_UDP):
                out[p] = answer_outcome[a_kind[j]]
                answered[a_pkt[j]] = True
                if a_kind[j] == ANS_SYNACK:
                    syn_pkt[n_syn] = p
                    syn_ans[n_syn] = j
                    n_syn += 1

    # established: the client's ACK after the SYN-ACK, within the timeout
    n_ack = c_pkt.shape[0]
    if n_syn and n_ack:
        c_flow = np.empty(n_ack, np.int64)
        c_start = np.zeros(nf + 1, np.int64)
        for t in range(n_ack):
            c = c_pkt[t]
            word = (np.uint32(sport[c]) << np.uint32(16)) | np.uint32(dport[c])
            f = _find_flow(c_h[t], src_hi[c], src_lo[c], dst_hi[c], dst_lo[c], proto[c], word,  # type: ignore[arg-type]
                           slot_h, slot_f, mask, flow_key, ka_hi, ka_lo, kb_hi, kb_lo, k_proto,
                           k_word)  # fmt: skip
            c_flow[t] = f
            if f >= 0:
                c_start[f + 1] += 1
        for f in range(nf):
            c_start[f + 1] += c_start[f]
        c_order = _time_order(c_pkt, rank, in_order)
        c_fill = c_start[:nf].copy()
        c_row = np.empty(c_start[nf], np.int64)
        c_rank = np.empty(c_start[nf], np.int64)
        for u in range(n_ack):
            t = c_order[u]
            f = c_flow[t]
            if f >= 0:
                at = c_fill[f]
                c_fill[f] += 1
                c_row[at] = c_pkt[t]
                c_rank[at] = _when(c_pkt[t], rank, in_order)
        for s in range(n_syn):  # type: ignore[assignment]
            j = syn_ans[s]
            f = a_flow[j]
            lo, hi = c_start[f], c_start[f + 1]
            at = _first_above(c_rank, lo, hi, _when(a_pkt[j], rank, in_order))
            if at < hi and ts[c_row[at]] - ts[a_pkt[j]] <= timeout:
                out[syn_pkt[s]] = _ESTABLISHED

    # a UDP packet shortly after one of the reverse direction is a reply, not a probe
    for r in range(n_reply):
        out[replies[r]] = _UNKNOWN


def _column(cols: Mapping[str, np.ndarray], name: str, n: int, dtype: type) -> np.ndarray:
    value = cols.get(name)
    if value is None:
        return np.zeros(n, dtype)
    return np.ascontiguousarray(value, dtype)


def probe_outcomes(
    cols: Mapping[str, np.ndarray],
    *,
    timeout_us: int,
    quotes: Mapping[str, np.ndarray] | None = None,
    answers: np.ndarray | None = None,
) -> np.ndarray:
    """Outcome code (:class:`~portradar.events.Outcome`) of every packet of a capture.

    ``answers`` (a boolean array, one per packet), when given, gets True for every
    packet that answered a probe of the capture (the SYN-ACK, RST, UDP reply, echo
    reply or ICMP error its outcome comes from): the target's side of the probe, not
    traffic of its own.

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
    if answers is not None and (answers.shape != (n,) or answers.dtype != np.bool_):
        raise ValueError("answers must be a boolean array with one entry per packet")
    if n == 0:
        return np.zeros(0, np.uint8)
    src_hi = _column(cols, "src_hi", n, np.uint64)
    dst_hi = _column(cols, "dst_hi", n, np.uint64)
    src_lo = _column(cols, "src_lo", n, np.uint64)
    dst_lo = _column(cols, "dst_lo", n, np.uint64)
    proto = _column(cols, "proto", n, np.uint8)
    sport = _column(cols, "sport", n, np.uint16)
    dport = _column(cols, "dport", n, np.uint16)
    q = _quote_columns(quotes)
    tables = classify_packets(  # type: ignore[call-arg]
        src_hi, src_lo, dst_hi, dst_lo, proto, _column(cols, "l4", n, np.uint8), sport, dport,
        _column(cols, "tcp_flags", n, np.uint8), _column(cols, "icmp_type", n, np.uint8),
        _column(cols, "icmp_ident", n, np.uint32), _column(cols, "verdict", n, np.uint8),
        *q, _DEFAULT_OUTCOME,
    )  # fmt: skip
    # capture-time order, the capture's order breaking ties: the index when it is sorted
    in_order = bool(np.all(ts[1:] >= ts[:-1]))
    rank = np.zeros(1, np.int64)
    if not in_order:
        rank = np.empty(n, np.int64)
        rank[np.argsort(ts, kind="stable")] = np.arange(n, dtype=np.int64)
    out = tables[0]
    answered = answers if answers is not None else np.zeros(n, np.bool_)
    pair_probes(ts, rank, in_order, src_hi, src_lo, dst_hi, dst_lo, proto, sport, dport, out,  # type: ignore[call-arg]
                *tables[1:], timeout_us, _ANSWER_OUTCOME, answered)  # fmt: skip
    return out


def _quote_columns(quotes: Mapping[str, np.ndarray] | None) -> tuple[np.ndarray, ...]:
    """The quoted keys as :func:`classify_packets` takes them: typed, sorted by row."""
    if quotes is None or len(quotes["row"]) == 0:
        z64 = np.zeros(0, np.uint64)
        return (np.zeros(0, np.int64), z64, z64, z64, z64, np.zeros(0, np.uint8),
                np.zeros(0, np.uint32))  # fmt: skip
    row = np.asarray(quotes["row"], np.int64)
    order = None if bool(np.all(row[1:] >= row[:-1])) else np.argsort(row, kind="stable")
    names = ("src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "ports")
    types = (np.uint64, np.uint64, np.uint64, np.uint64, np.uint8, np.uint32)
    out = [row]
    for name, dtype in zip(names, types, strict=True):
        out.append(np.ascontiguousarray(quotes[name], dtype))
    if order is not None:
        out = [np.ascontiguousarray(c[order]) for c in out]
    return tuple(out)


# ---- return traffic: the later packets of a conversation the other side started ----------

#: Idle timeouts of a conversation, in seconds: Zeek's defaults (``tcp_inactivity_timeout``
#: 5 min, ``udp_inactivity_timeout`` and ``icmp_inactivity_timeout`` 1 min in
#: ``init-bare.zeek``), the reference for what a packet sensor calls one connection.
#: Linux conntrack keeps an established TCP connection 5 days
#: (``nf_conntrack_tcp_timeout_established``) and UDP 30 s, 120 s once both sides spoke
#: (``nf_conntrack_udp_timeout``, ``_stream``): a firewall's state table, too long for a
#: sensor whose live table must stay small.
TCP_IDLE_TIMEOUT = 300.0
UDP_IDLE_TIMEOUT = 60.0
ICMP_IDLE_TIMEOUT = 60.0
#: Seconds a TCP conversation lives on after an RST or both sides' FINs: Zeek's
#: ``tcp_close_delay`` and ``tcp_reset_delay`` (5 s), time for the last ACKs and
#: retransmissions.  One FIN alone (a half-close) keeps the idle timeout.
TCP_CLOSE_DELAY = 5.0

# what a packet is to conversation tracking
CONV_NONE, CONV_SYN, CONV_TCP, CONV_UDP, CONV_ECHO_REQUEST, CONV_ECHO_REPLY = range(6)
#: What :func:`return_traffic` says of a packet: a probe or other event (0), the other
#: side's later packet of a conversation (1), the starter's own later packet (2: the
#: client's ACKs and data after its SYN, the next datagrams or echo requests of a
#: conversation already answered; what a firewall that logs new connections never logs).
EVENT, RETURN, CONTINUES = 0, 1, 2
_FIN = 0x01
# conversation flags: FIN seen from side a, from side b, an RST seen
_C_FIN_A, _C_FIN_B, _C_RST = 1, 2, 4
#: Marks a packet conversation tracking does not look at (a real key hashing to it, one
#: in 2^63, would only stay an event).
_NOT_TRACKED = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
#: Fewest slots of the conversation table.
CONV_MIN_SLOTS = 1 << 10
#: Filter bits per packet and direction (see :func:`conversation_filter`): with 8, a
#: one-sided conversation passes the filter about 6 % of the time (1 - e^(-1/16) for a
#: capture whose packets go either way), which costs one table look-up, never a result.
CONV_FILTER_BITS = 8


@numba.njit(cache=True, inline="always")
def _conv_key(  # pragma: no cover - jit
    s_hi: np.uint64, s_lo: np.uint64, d_hi: np.uint64, d_lo: np.uint64, pr: int, t: int,
    sport: int, dport: int, f: int, it: int, ident: np.uint32, verdict: int,
) -> tuple:  # fmt: skip
    """What a packet is to a conversation: (kind, sender side, a_hi, a_lo, b_hi, b_lo,
    port word, hash), the key in canonical order (side a is the lesser endpoint), so both
    directions of a conversation have one key; kind ``CONV_NONE`` when not tracked.

    Takes the packet's fields, not the arrays: array arguments would cost two atomic
    reference-count updates each per call where numba cannot prune them.
    """
    kind = CONV_NONE
    if verdict != 0:
        kind = CONV_NONE  # a firewall's log (pflog): what it logged is what it chose to
    elif t == _L4_TCP:
        kind = CONV_SYN if f & (_SYN | _ACK | _RST) == _SYN else CONV_TCP
    elif t == _L4_PORTS:
        if pr == 17 or pr == 136:
            kind = CONV_UDP
    elif t == _L4_ICMP:
        if (pr == 1 and it == 8) or (pr == 58 and it == 128):
            kind = CONV_ECHO_REQUEST
        elif (pr == 1 and it == 0) or (pr == 58 and it == 129):
            kind = CONV_ECHO_REPLY
    if kind == CONV_ECHO_REQUEST or kind == CONV_ECHO_REPLY:  # noqa: SIM109 (numba)
        sp = np.uint32(ident >> np.uint32(16))  # the echo identifier, both ways
        dp = sp
    else:
        sp = np.uint32(sport)
        dp = np.uint32(dport)
    side = 0
    if s_hi > d_hi or (s_hi == d_hi and (s_lo > d_lo or (s_lo == d_lo and sp > dp))):
        side = 1
    if side == 0:
        a_hi, a_lo, b_hi, b_lo, word = s_hi, s_lo, d_hi, d_lo, (sp << np.uint32(16)) | dp
    else:
        a_hi, a_lo, b_hi, b_lo, word = d_hi, d_lo, s_hi, s_lo, (dp << np.uint32(16)) | sp
    h = _key_hash(a_hi, a_lo, b_hi, b_lo, pr, word)
    return kind, side, a_hi, a_lo, b_hi, b_lo, word, h


@numba.njit(cache=True, inline="always")
def _conv_slot(h: np.uint64, mask: int | np.integer) -> tuple:  # pragma: no cover - jit
    """Byte and bit shift of a hash's two filter bits (one per direction)."""
    s = np.int64((h >> np.uint64(17)) & np.uint64(mask))  # other bits than the table's
    return s >> 2, (s & 3) << 1


@numba.njit(cache=True, nogil=True)
def conversation_filter(  # pragma: no cover - jit
    ts: np.ndarray, src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray,
    dst_lo: np.ndarray, proto: np.ndarray, l4: np.ndarray, sport: np.ndarray,
    dport: np.ndarray, flags: np.ndarray, itype: np.ndarray, ident: np.ndarray,
    verdict: np.ndarray, answered: np.ndarray, since: int, until: int, answers_count: bool,
    e_h: np.ndarray, n_entries: int,
) -> np.ndarray:  # fmt: skip
    """The packets that conversation tracking has to look at, in packet order.

    Return traffic needs packets from both sides of a conversation (the starter and the
    reply), answers to probes left out (they are the probes' outcomes).  One pass sets,
    per packet, the bit of its key's hash and its direction; a second keeps the packets
    whose key has both bits: in a scan capture, where few probes are answered, that
    leaves little to track.  With ``answers_count`` the answers that accept (SYN-ACK,
    UDP, echo reply) set their bit too (so the starter's later packets of an answered
    conversation are judged), and the ``n_entries`` conversations already in the table
    (the live capture's, whose later rounds bring the rest) set both.  Only packets with
    ``since < ts <= until`` are kept.
    """
    n = ts.shape[0]
    slots = np.int64(4)
    while slots < CONV_FILTER_BITS * (n + n_entries):
        slots <<= 1
    mask = slots - 1
    bits = np.zeros(slots >> 2, np.uint8)
    # per packet: its key's hash with the sender's side in bit 0 (the filter's slot uses
    # the upper bits), or _NOT_TRACKED; the second pass reads it back, cheaper than
    # classifying and hashing again
    hs = np.empty(n, np.uint64)
    for i in range(n):
        hs[i] = _NOT_TRACKED
        if answered[i] and (not answers_count or (l4[i] == _L4_TCP and flags[i] & _RST)):
            continue  # an answer; in the live capture, one that accepts counts
        kind, side, _a_hi, _a_lo, _b_hi, _b_lo, _word, h = _conv_key(
            src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], proto[i], l4[i], sport[i], dport[i],
            flags[i], itype[i], ident[i], verdict[i])  # fmt: skip
        if kind == CONV_NONE:
            continue
        byte, shift = _conv_slot(h, mask)
        bits[byte] |= np.uint8(1 << (shift + side))
        if not answered[i]:
            hs[i] = (h & ~np.uint64(1)) | np.uint64(side)
    for e in range(n_entries):
        byte, shift = _conv_slot(e_h[e], mask)
        bits[byte] |= np.uint8(3 << shift)
    keep = np.empty(n, np.int64)
    nk = 0
    windowed = since > -(1 << 62) or until < (1 << 62)
    for i in range(n):
        h = hs[i]
        if h == _NOT_TRACKED or (windowed and (ts[i] <= since or ts[i] > until)):
            continue
        byte, shift = _conv_slot(h, mask)
        if (bits[byte] >> shift) & 3 == 3:
            keep[nk] = i
            nk += 1
    return keep[:nk]


@numba.njit(cache=True, inline="always")
def _conv_timeout(  # pragma: no cover - jit
    pr: int, fl: int, tcp: int, udp: int, icmp: int, closed: int,
) -> int:  # fmt: skip
    """Idle timeout (µs) of a conversation of protocol ``pr`` with flags ``fl``."""
    if pr == 6:
        if fl & _C_RST or fl & (_C_FIN_A | _C_FIN_B) == (_C_FIN_A | _C_FIN_B):
            return closed
        return tcp
    if pr == 1 or pr == 58:
        return icmp
    return udp


@numba.njit(cache=True, nogil=True)
def track_conversations(  # pragma: no cover - jit
    order: np.ndarray, start: int, ts: np.ndarray, src_hi: np.ndarray, src_lo: np.ndarray,
    dst_hi: np.ndarray, dst_lo: np.ndarray, proto: np.ndarray, l4: np.ndarray,
    sport: np.ndarray, dport: np.ndarray, flags: np.ndarray, itype: np.ndarray,
    ident: np.ndarray, verdict: np.ndarray, timeouts: np.ndarray, returning: np.ndarray,
    slot_h: np.ndarray, slot_e: np.ndarray, e_h: np.ndarray, e_ahi: np.ndarray,
    e_alo: np.ndarray, e_bhi: np.ndarray, e_blo: np.ndarray, e_proto: np.ndarray,
    e_word: np.ndarray, e_last: np.ndarray, e_init: np.ndarray, e_flags: np.ndarray,
    n_entries: int,
) -> tuple:  # fmt: skip
    """Walk the packets ``order[start:]`` (capture-time order) through the conversation
    table, marking return traffic (:data:`RETURN`) and the starter's later packets
    (:data:`CONTINUES`) in ``returning``; return (position reached, entries).

    Stops early, at the position of the packet that would need a new entry, when the
    entry arrays are full: the caller grows the table (dropping expired conversations)
    and calls again from there.  Rules, per packet of side ``s`` and its conversation
    ``c`` (alive: its last packet no longer ago than its idle timeout):

    * TCP SYN without ACK/RST: never return traffic; (re)starts ``c`` with ``s`` as the
      initiator.  Any other TCP packet: return traffic when ``c`` is alive and ``s`` is
      not its initiator, a continuation when it is; refreshes an alive ``c`` and notes
      FINs and RSTs; a dead or unknown ``c`` stays so (its start was not seen:
      mid-stream).
    * UDP: return traffic when ``c`` is alive and ``s`` is not its initiator, a
      continuation when it is; otherwise a dead or unknown ``c`` starts with ``s`` as
      the initiator.
    * Echo request: a continuation when ``c`` is alive and ``s`` is its initiator,
      otherwise (re)starts ``c``.  Echo reply: return traffic when ``c`` is alive and
      ``s`` is not its initiator.
    """
    cap = e_h.shape[0]
    mask = slot_h.shape[0] - 1
    # scalars, not the array, in the loop's helpers (no reference counting per call)
    t_tcp, t_udp, t_icmp, t_closed = timeouts[0], timeouts[1], timeouts[2], timeouts[3]
    for k in range(start, order.shape[0]):
        i = order[k]
        kind, side, a_hi, a_lo, b_hi, b_lo, word, h = _conv_key(
            src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], proto[i], l4[i], sport[i], dport[i],
            flags[i], itype[i], ident[i], verdict[i])  # fmt: skip
        pr = proto[i]
        t = ts[i]
        s = np.int64(h & np.uint64(mask))
        e = -1
        while True:  # ends: the table is at most half full
            f = slot_e[s]
            if f < 0:
                break
            if (slot_h[s] == h and e_alo[f] == a_lo and e_blo[f] == b_lo and e_ahi[f] == a_hi
                    and e_bhi[f] == b_hi and e_proto[f] == pr and e_word[f] == word):  # fmt: skip
                e = f
                break
            s = (s + 1) & mask
        alive = e >= 0 and t - e_last[e] <= _conv_timeout(pr, e_flags[e], t_tcp, t_udp,
                                                           t_icmp, t_closed)
        start_new = False
        if kind == CONV_SYN:
            start_new = True
        elif kind == CONV_TCP:
            if alive:
                returning[i] = RETURN if side != e_init[e] else CONTINUES
                e_last[e] = t
                fl = flags[i]
                if fl & _RST:
                    e_flags[e] |= _C_RST
                elif fl & _FIN:
                    e_flags[e] |= _C_FIN_B if side else _C_FIN_A
        elif kind == CONV_UDP or kind == CONV_ECHO_REPLY:  # noqa: SIM109 (numba)
            if alive:
                if side != e_init[e]:
                    returning[i] = RETURN
                elif kind == CONV_UDP:
                    returning[i] = CONTINUES
                e_last[e] = t
            elif kind == CONV_UDP:
                start_new = True
        elif kind == CONV_ECHO_REQUEST:
            if alive and side == e_init[e]:
                returning[i] = CONTINUES
                e_last[e] = t
            else:
                start_new = True
        if not start_new:
            continue
        if e < 0:
            if n_entries == cap:
                return k, n_entries
            e = n_entries
            n_entries += 1
            slot_e[s] = e
            slot_h[s] = h
            e_h[e] = h
            e_ahi[e] = a_hi
            e_alo[e] = a_lo
            e_bhi[e] = b_hi
            e_blo[e] = b_lo
            e_proto[e] = pr
            e_word[e] = word
        e_last[e] = t
        e_init[e] = side
        e_flags[e] = 0
    return order.shape[0], n_entries


@numba.njit(cache=True, nogil=True)
def _conv_rehash(  # pragma: no cover - jit
    slot_h: np.ndarray, slot_e: np.ndarray, e_h: np.ndarray, n_entries: int,
) -> None:  # fmt: skip
    mask = slot_h.shape[0] - 1
    for e in range(n_entries):
        h = e_h[e]
        s = np.int64(h & np.uint64(mask))
        while slot_e[s] >= 0:
            s = (s + 1) & mask
        slot_e[s] = e
        slot_h[s] = h


_ENTRY_FIELDS = (("h", np.uint64), ("ahi", np.uint64), ("alo", np.uint64), ("bhi", np.uint64),
                 ("blo", np.uint64), ("proto", np.uint8), ("word", np.uint32),
                 ("last", np.int64), ("init", np.uint8), ("flags", np.uint8))  # fmt: skip


class Conversations:
    """The conversations seen so far, to tell return traffic (see :func:`return_traffic`).

    A whole-file read uses a fresh one per read; the live capture keeps one across its
    rounds and sets :attr:`since_us` / :attr:`until_us` each round to the packets it
    stores for the first time, so every packet is judged once, in time order.  Expired
    conversations are dropped whenever the table grows, so it holds about the
    conversations alive at once (about 60 bytes each, plus twice 12 bytes of slots).
    Timeouts are in seconds; the defaults are :data:`TCP_IDLE_TIMEOUT`,
    :data:`UDP_IDLE_TIMEOUT`, :data:`ICMP_IDLE_TIMEOUT` and :data:`TCP_CLOSE_DELAY`.
    """

    def __init__(self, *, tcp_timeout: float = TCP_IDLE_TIMEOUT,
                 udp_timeout: float = UDP_IDLE_TIMEOUT, icmp_timeout: float = ICMP_IDLE_TIMEOUT,
                 tcp_close_delay: float = TCP_CLOSE_DELAY, live: bool = False) -> None:  # fmt: skip
        self.timeouts = np.array([round(x * 1e6) for x in (tcp_timeout, udp_timeout,
                                                           icmp_timeout, tcp_close_delay)],
                                 np.int64)  # fmt: skip
        #: Whether later rounds may bring the rest of a conversation (the live capture):
        #: then the answers to probes and the table's conversations count for the filter.
        self.live = live
        self.since_us = -(1 << 62)  # packets at or before it were judged already
        self.until_us = 1 << 62  # packets after it are judged in a later round
        self.n_entries = 0
        self._alloc(0, CONV_MIN_SLOTS)

    def _alloc(self, keep: int, slots: int) -> None:
        old = getattr(self, "entries", None)
        self.entries = {name: np.empty(slots // 2, dtype) for name, dtype in _ENTRY_FIELDS}
        if old is not None and keep:
            for name, column in old.items():
                self.entries[name][:keep] = column[:keep]
        self.slot_h = np.empty(slots, np.uint64)
        self.slot_e = np.full(slots, -1, np.int32)
        self.n_entries = keep
        if keep:
            _conv_rehash(self.slot_h, self.slot_e, self.entries["h"], keep)

    def make_room(self, now_us: int) -> None:
        """Drop the conversations expired at ``now_us``; double the room if still half full."""
        n = self.n_entries
        e = self.entries
        fl = e["flags"][:n].astype(np.int64)
        closed = ((fl & _C_RST) != 0) | ((fl & (_C_FIN_A | _C_FIN_B)) == (_C_FIN_A | _C_FIN_B))
        pr = e["proto"][:n]
        t = self.timeouts
        timeout = np.where(pr == 6, np.where(closed, t[3], t[0]),
                           np.where((pr == 1) | (pr == 58), t[2], t[1]))  # fmt: skip
        alive = np.flatnonzero(now_us - e["last"][:n] <= timeout)
        keep = alive.shape[0]
        for column in e.values():
            column[:keep] = column[alive]
        capacity = e["h"].shape[0]
        if keep > capacity // 2:
            capacity *= 2
        self._alloc(keep, 2 * capacity)

    def table(self) -> tuple[np.ndarray, ...]:
        e = self.entries
        return (self.slot_h, self.slot_e, *(e[name] for name, _ in _ENTRY_FIELDS))


def return_traffic(
    cols: Mapping[str, np.ndarray],
    *,
    answers: np.ndarray,
    conversations: Conversations | None = None,
) -> np.ndarray:
    """One code per packet: :data:`RETURN` for return traffic of a conversation the
    other side started in the capture, :data:`CONTINUES` for a later packet of the side
    that started it, :data:`EVENT` for the rest (see ``docs/pcap-reader.md``).

    ``cols`` as for :func:`probe_outcomes`; ``answers`` is the mask that function filled
    (answers are the probes' outcomes, never return traffic, and do not refresh a
    conversation).  ``conversations`` is the state to judge against and update (the live
    capture's, across rounds); a fresh one, for the whole capture, when None.
    """
    ts = np.ascontiguousarray(cols["ts"], np.int64)
    n = ts.shape[0]
    returning = np.zeros(n, np.uint8)
    if n == 0:
        return returning
    conv = conversations if conversations is not None else Conversations()
    args = (
        _column(cols, "src_hi", n, np.uint64), _column(cols, "src_lo", n, np.uint64),
        _column(cols, "dst_hi", n, np.uint64), _column(cols, "dst_lo", n, np.uint64),
        _column(cols, "proto", n, np.uint8), _column(cols, "l4", n, np.uint8),
        _column(cols, "sport", n, np.uint16), _column(cols, "dport", n, np.uint16),
        _column(cols, "tcp_flags", n, np.uint8), _column(cols, "icmp_type", n, np.uint8),
        _column(cols, "icmp_ident", n, np.uint32), _column(cols, "verdict", n, np.uint8),
    )  # fmt: skip
    live = conv.live
    # the answers that accept count as the other side (a SYN-ACK makes the scanner's RST
    # after it a later packet of that conversation, not a probe)
    order = conversation_filter(ts, *args, np.ascontiguousarray(answers, np.bool_),
                                conv.since_us, conv.until_us, True, conv.entries["h"],
                                conv.n_entries if live else 0)  # fmt: skip
    if order.shape[0] == 0:
        return returning
    when = ts[order]
    if not bool(np.all(when[1:] >= when[:-1])):  # capture-time order, ties in packet order
        order = order[np.argsort(when, kind="stable")]
    at = 0
    while at < order.shape[0]:
        at, conv.n_entries = track_conversations(  # type: ignore[call-arg]
            order, at, ts, *args, conv.timeouts, returning, *conv.table(),  # type: ignore[arg-type]
            conv.n_entries)
        if at < order.shape[0]:  # the table is full: drop the expired, grow
            conv.make_room(int(ts[order[at]]))
    return returning
