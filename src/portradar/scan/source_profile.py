"""Per-source summary of probes: what a verdict is explained with.

For every source of a :class:`~portradar.scan.probes.Probes` frame, one pass of a
compiled kernel over the (source, time)-sorted rows gives: first and last time, probes
and packets, distinct hosts, port keys, (host, port) pairs, IP protocols, sensors and
TTLs, answered / established / rejected probes, probes per packet class, probes per
tool mark (:mod:`portradar.scan.fingerprint`), the SYN-probe signs that separate a
connect scan from a SYN scan (:mod:`portradar.scan.scan_type`), and two order-free
signatures the campaign grouping uses: the XOR of a hash of each distinct
(protocol, port key) (the *port set*) and of each distinct destination (the *target
set*).  Distinct values are counted by sorting each source's values in a reused
buffer; a source with one probe (most of them, in background radiation) takes a
shortcut.

>>> import numpy as np
>>> from portradar.scan.probes import Probes
>>> p = Probes.from_columns({"ts": [0, 1, 2, 3], "src_lo": [1, 1, 1, 2], "dst_lo": [5, 5, 6, 5],
...                         "proto": [6, 6, 6, 17], "dport": [22, 23, 22, 53],
...                         "outcome": [1, 3, 1, 1]})
>>> prof = profile(p)
>>> prof["probes"].tolist(), prof["hosts"].tolist(), prof["ports"].tolist(), prof["pairs"].tolist()
([3, 1], [2, 1], [2, 1], [3, 1])
>>> prof["answered"].tolist()
[1, 0]
>>> port_lists(p, np.array([0]))[0].tolist()
[22, 23]
"""

from __future__ import annotations

import numba
import numpy as np

from portradar.events.schema import Outcome
from portradar.scan.fingerprint import MARK_BITS, probe_marks
from portradar.scan.probes import N_CLASSES, Probes, _port_key_one, small_isin
from portradar.scan.segment_set import clear, nonzero, probe, table

_MARKS = np.array(list(MARK_BITS.values()), np.int64)
#: Outcome codes as plain integers, for the compiled loops.
_ACCEPTED, _ESTABLISHED = int(Outcome.ACCEPTED), int(Outcome.ESTABLISHED)
_BLOCKED, _REJECTED, _UNANSWERED = (int(Outcome.BLOCKED), int(Outcome.REJECTED),
                                    int(Outcome.UNANSWERED))
_PORTED = (6, 17, 132, 136)


def profile(probes: Probes) -> dict[str, np.ndarray]:
    """Summary columns, one row per source in :meth:`Probes.grouped` order."""
    ordered, starts = probes.grouped()
    n_src = len(starts) - 1
    key_hi, key_lo, skey = probes.source_keys()
    pkey = np.empty(len(ordered), np.uint64)
    pair = np.empty(len(ordered), np.uint64)
    _port_keys_and_pairs(ordered.proto, ordered.port, ordered.dkey, pkey, pair)
    marks = probe_marks(ordered)
    out_i = np.zeros((n_src, 19), np.int64)
    out_cls = np.zeros((n_src, N_CLASSES), np.int64)
    out_marks = np.zeros((n_src, len(_MARKS)), np.int64)
    out_sig = np.zeros((n_src, 2), np.uint64)
    if n_src:
        keys, mask = table(int(np.diff(starts).max()))
        used = np.empty(keys.size, np.int64)
        _profile(starts, ordered.ts, ordered.dkey, pkey, pair, ordered.proto, ordered.cls,
                 ordered.outcome, ordered.packets, ordered.ttl, ordered.sport, ordered.window,
                 marks, _MARKS, ordered.sensor, keys, mask, used, out_i,
                 out_cls, out_marks, out_sig)
    names = ("probes", "packets", "first_ts", "last_ts", "hosts", "port_keys", "pairs",
             "protocols", "sensors", "ttls", "answered", "established", "rejected",
             "syn_sports", "syn_big_window", "ports", "max_ttl", "min_ttl", "syn_ephemeral")
    out: dict[str, np.ndarray] = {name: out_i[:, i] for i, name in enumerate(names)}
    out.update(key_hi=key_hi, key_lo=key_lo, skey=skey, classes=out_cls, marks=out_marks,
               port_sig=out_sig[:, 0], target_sig=out_sig[:, 1])
    return out


@numba.njit(cache=True, nogil=True)
def _port_keys_and_pairs(proto, port, dkey, pkey, pair):  # pragma: no cover - jit
    """Each probe's (protocol, port key) and the hash of its (destination, that), in one
    pass: ``pkey = port | proto << 32`` (the port's int64 bits) and ``pair =
    mix64(dkey ^ mix64(pkey + 1))``."""
    for i in range(proto.shape[0]):
        k = np.uint64(np.int64(port[i])) | (np.uint64(proto[i]) << np.uint64(32))
        pkey[i] = k
        pair[i] = _mix(dkey[i] ^ _mix(k + np.uint64(1)))


def light_profile(skey: np.ndarray, key_hi: np.ndarray, key_lo: np.ndarray, ts: np.ndarray,
                  pkey: np.ndarray, dkey: np.ndarray, *,
                  presorted: bool = False) -> dict[str, np.ndarray]:
    """The few profile columns the campaigns need, for sources no detector can flag.

    Rows in any order (``presorted``: already sorted by ``skey``); one row per source
    out, sorted by ``skey``: ``key_hi``, ``key_lo``, ``skey``, ``probes``, ``first_ts``,
    ``last_ts``, ``hosts``, ``port_keys``, ``port_sig``, ``target_sig`` (as
    :func:`profile` computes them).  Gathers three columns instead of a whole frame:
    most sources are this kind.
    """
    from portradar.scan.probes import radix_sort

    if presorted:
        k, order = skey, np.arange(skey.size)
    else:
        k, order = radix_sort(skey)
    cut = np.flatnonzero(k[1:] != k[:-1]) + 1
    starts = np.concatenate([[0], cut, [k.size]]).astype(np.int64) if k.size \
        else np.zeros(1, np.int64)
    first = order[starts[:-1]]
    n = len(starts) - 1
    out_i = np.zeros((n, 5), np.int64)
    out_sig = np.zeros((n, 2), np.uint64)
    if n:
        keys, mask = table(int(np.diff(starts).max()))
        used = np.empty(keys.size, np.int64)
        if not presorted:
            ts, pkey, dkey = ts[order], pkey[order], dkey[order]
        _light(starts, ts, pkey, dkey, keys, mask, used, out_i, out_sig)
    return {"key_hi": key_hi[first], "key_lo": key_lo[first], "skey": k[starts[:-1]],
            "probes": out_i[:, 0], "first_ts": out_i[:, 1], "last_ts": out_i[:, 2],
            "hosts": out_i[:, 3], "port_keys": out_i[:, 4], "port_sig": out_sig[:, 0],
            "target_sig": out_sig[:, 1]}


def light_groups(rows: np.ndarray, skey: np.ndarray, ts: np.ndarray, proto: np.ndarray,
                 dport: np.ndarray, icmp_type: np.ndarray, outcome: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """What campaign rule 1 needs of each light source to tell whether it has peers
    (most have none, and their other columns are never written), in one pass over the
    given ``rows`` of a part's columns, each source's rows together:

    * ``starts``: each source's first position in ``rows`` (one more entry than sources);
    * ``first`` (its first row), ``first_ts`` and ``port_sig``, as :func:`light_profile`
      computes them, and ``answered_only`` (see ``detect.answered_only``: some probe
      accepted or established, none blocked, rejected or unanswered);
    * ``pkey``: each row's (protocol, port key), as :func:`light_profile` takes it.

    One compiled pass instead of gathering five columns, computing the keys and two
    ``reduceat`` (0.15 to 0.09 CPU-s for the benchmark's 1.7 M light rows).

    >>> g = light_groups(np.array([2, 0, 1]), np.array([5, 5, 9], np.uint64),
    ...                  np.array([30, 10, 20]), np.array([6, 6, 6], np.int16),
    ...                  np.array([22, 80, 22], np.int32), np.array([-1, -1, -1], np.int16),
    ...                  np.array([5, 3, 1], np.int8))
    >>> g["starts"].tolist(), g["first"].tolist(), g["first_ts"].tolist()
    ([0, 1, 3], [2, 0], [20, 10])
    >>> g["answered_only"].tolist()  # row 2 was blocked; rows 0 and 1 answered
    [False, True]
    >>> bool(g["port_sig"][0] == light_profile(np.array([9], np.uint64), np.zeros(1, np.uint64),
    ...      np.zeros(1, np.uint64), np.array([20]), g["pkey"][:1],
    ...      np.array([0], np.uint64))["port_sig"][0])
    True
    """
    n = rows.shape[0]
    starts = np.empty(n + 1, np.int64)
    first_ts = np.empty(n, np.int64)
    port_sig = np.empty(n, np.uint64)
    answered = np.empty(n, np.bool_)
    pkey = np.empty(n, np.uint64)
    g = 0
    if n:
        width = _widest_group(np.asarray(rows, np.int64), skey)
        keys, mask = table(width)
        used = np.empty(keys.size, np.int64)
        g = _light_groups(np.asarray(rows, np.int64), skey, ts, proto, dport, icmp_type,
                          outcome, keys, mask, used, starts, first_ts, port_sig, answered,
                          pkey)
    starts = starts[:g + 1] if n else np.zeros(1, np.int64)
    return {"starts": starts, "first": np.asarray(rows, np.int64)[starts[:-1]],
            "first_ts": first_ts[:g], "port_sig": port_sig[:g], "answered_only": answered[:g],
            "pkey": pkey}


@numba.njit(cache=True, nogil=True)
def _widest_group(rows, skey):  # pragma: no cover - jit
    """The most rows of one source in ``rows`` (each source's rows together)."""
    most = 1
    run = 1
    for i in range(1, rows.shape[0]):
        if skey[rows[i]] == skey[rows[i - 1]]:
            run += 1
            most = max(most, run)
        else:
            run = 1
    return most


@numba.njit(cache=True, nogil=True)
def _light_groups(rows, skey, ts, proto, dport, icmp_type, outcome, keys, mask, used,
                  starts, first_ts, port_sig, answered, pkey):  # pragma: no cover - jit
    """One pass over ``rows``, each row's columns read once (they are scattered over the
    part: a second read is a second cache miss); a source of one row, most of them,
    needs no hash table."""
    n = rows.shape[0]
    g = 0
    s = 0
    prev = skey[rows[0]]
    lo = ts[rows[0]]
    success = False
    failure = False
    for i in range(n + 1):
        if i < n:
            r = rows[i]
            k = skey[r]
            t = ts[r]
        if i == n or k != prev:  # the source of rows s..i-1 ends
            starts[g] = s
            first_ts[g] = lo
            if i - s == 1:
                port_sig[g] = _mix(pkey[s])
            else:
                _, port_sig[g] = _distinct_xor(pkey, s, i, keys, mask, used)
            answered[g] = success and not failure
            g += 1
            if i == n:
                break
            s = i
            prev = k
            lo = t
            success = False
            failure = False
        lo = min(lo, t)
        oc = outcome[r]
        if oc in (_ACCEPTED, _ESTABLISHED):
            success = True
        elif oc in (_BLOCKED, _REJECTED, _UNANSWERED):
            failure = True
        p = proto[r]
        pkey[i] = np.uint64(np.int64(_port_key_one(p, dport[r], icmp_type[r]))) | \
            (np.uint64(p) << np.uint64(32))
    starts[g] = n
    return g


@numba.njit(cache=True, nogil=True)
def _light(starts, ts, pkey, dkey, keys, mask, used, out_i, out_sig):  # pragma: no cover
    for g in range(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        lo = ts[s]
        hi = ts[s]
        for i in range(s + 1, e):
            lo = min(lo, ts[i])
            hi = max(hi, ts[i])
        out_i[g, 0] = e - s
        out_i[g, 1] = lo
        out_i[g, 2] = hi
        out_i[g, 3], out_sig[g, 1] = _distinct_xor(dkey, s, e, keys, mask, used)
        out_i[g, 4], out_sig[g, 0] = _distinct_xor(pkey, s, e, keys, mask, used)


def port_lists(probes: Probes, sources: np.ndarray) -> list[np.ndarray]:
    """Distinct TCP/UDP/SCTP destination ports of the given sources (grouped order)."""
    ordered, starts = probes.grouped()
    ported = small_isin(ordered.proto, _PORTED)
    out = []
    for g in sources:  # one numpy call per selected (flagged) source
        s, e = starts[g], starts[g + 1]
        sel = ported[s:e]
        out.append(np.unique(ordered.port[s:e][sel]))
    return out


def probes_until(probes: Probes, sources: np.ndarray, when: np.ndarray) -> np.ndarray:
    """How many probes each given source had sent up to and including time ``when``."""
    ordered, starts = probes.grouped()
    return _count_until(starts, ordered.ts, np.asarray(sources, np.int64),
                        np.asarray(when, np.int64))


@numba.njit(cache=True, nogil=True)
def _count_until(starts, ts, sources, when):  # pragma: no cover - jit
    out = np.zeros(sources.shape[0], np.int64)
    for q in range(sources.shape[0]):
        g = sources[q]
        lo = starts[g]
        hi = starts[g + 1]
        s = lo
        t = when[q]
        while lo < hi:  # first row after t (binary search by hand: no slice per source)
            mid = (lo + hi) >> 1
            if ts[mid] <= t:
                lo = mid + 1
            else:
                hi = mid
        out[q] = lo - s
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(v):  # pragma: no cover - jit
    v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return v ^ (v >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _distinct_xor(values, s, e, keys, mask, used):  # pragma: no cover - jit
    """Distinct values of values[s:e] and the XOR of their mixed hashes."""
    n = 0
    x = np.uint64(0)
    for i in range(s, e):
        v = nonzero(values[i])
        slot = probe(keys, mask, v)
        if keys[slot] == 0:
            keys[slot] = v
            used[n] = np.int64(slot)
            n += 1
            x ^= _mix(np.uint64(values[i]))
    clear(keys, used, n)
    return n, x


@numba.njit(cache=True, nogil=True)
def _profile(starts, ts, dkey, pkey, pair, proto, cls, outcome, packets, ttl, sport,
             window, marks, mark_bits, sensor, keys, mask, used, out_i, out_cls, out_marks,
             out_sig):  # pragma: no cover - jit
    small = np.zeros(256, np.bool_)  # protocols, TTLs
    wide = np.zeros(65536, np.bool_)  # ports
    listed = np.empty(65536, np.int64)
    for g in range(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        m = e - s
        o = out_i[g]
        o[0] = m
        o[2] = ts[s]
        o[3] = ts[e - 1]
        npk = 0
        answered = 0
        est = 0
        rej = 0
        nsyn = 0
        big = 0
        nported = 0
        ephemeral = 0
        max_ttl = -1
        min_ttl = 1 << 30
        for i in range(s, e):
            npk += packets[i]
            out_cls[g, cls[i]] += 1
            oc = outcome[i]
            if oc in (3, 5):  # accepted, established
                answered += 1
            if oc == 5:
                est += 1
            if oc == 2:  # rejected
                rej += 1
            mk = marks[i]
            if mk:
                for b in range(mark_bits.shape[0]):
                    if mk & mark_bits[b]:
                        out_marks[g, b] += 1
            if cls[i] == 1:  # SYN
                nsyn += 1
                if window[i] > 4096:
                    big += 1
                if sport[i] >= 32768:
                    ephemeral += 1
            p = proto[i]
            if p in (6, 17, 132, 136):
                nported += 1
            t = ttl[i]
            if t >= 0:
                max_ttl = max(max_ttl, t)
                min_ttl = min(min_ttl, t)
        o[1] = npk
        o[10] = answered
        o[11] = est
        o[12] = rej
        o[14] = big
        o[16] = max_ttl
        o[17] = min_ttl if max_ttl >= 0 else -1
        o[18] = ephemeral
        if m == 1:
            o[4] = 1
            o[5] = 1
            o[6] = 1
            o[7] = 1
            o[8] = 1
            o[9] = 1 if ttl[s] >= 0 else 0
            o[13] = 1 if nsyn else 0
            o[15] = 1 if nported else 0
            out_sig[g, 0] = _mix(pkey[s])
            out_sig[g, 1] = _mix(dkey[s])
            continue
        o[4], out_sig[g, 1] = _distinct_xor(dkey, s, e, keys, mask, used)
        o[5], out_sig[g, 0] = _distinct_xor(pkey, s, e, keys, mask, used)
        o[6], _ = _distinct_xor(pair, s, e, keys, mask, used)
        o[8], _ = _distinct_xor(sensor, s, e, keys, mask, used)
        # small domains: a flag per value, cleared through the list of values set
        k = 0
        for i in range(s, e):
            v = proto[i]
            if not small[v]:
                small[v] = True
                listed[k] = v
                k += 1
        o[7] = k
        for q in range(k):
            small[listed[q]] = False
        k = 0
        for i in range(s, e):
            v = ttl[i]
            if v >= 0 and not small[v]:
                small[v] = True
                listed[k] = v
                k += 1
        o[9] = k
        for q in range(k):
            small[listed[q]] = False
        k = 0
        for i in range(s, e):
            if cls[i] == 1 and sport[i] >= 0 and not wide[sport[i]]:
                wide[sport[i]] = True
                listed[k] = sport[i]
                k += 1
        o[13] = k
        for q in range(k):
            wide[listed[q]] = False
        k = 0
        for i in range(s, e):
            p = proto[i]
            if p in (6, 17, 132, 136):
                v = np.int64(pkey[i] & np.uint64(0xFFFF))
                if not wide[v]:
                    wide[v] = True
                    listed[k] = v
                    k += 1
        o[15] = k
        for q in range(k):
            wide[listed[q]] = False
