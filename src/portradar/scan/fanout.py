"""Fan-out: how many distinct (host, port) a source tried without success, with idle expiry.

Where only drops are visible (most firewall logs) there is no success to weigh a
failure against; what gives a scanner away is breadth.  This detector follows Zeek's
``simple-scan`` (ncsa/bro-simple-scan ``scripts/scan.zeek``, the scan detector Zeek
recommends): a source's failed attempts are kept as a set of distinct
``(destination, port key)`` until the source has been quiet for ``idle_timeout``
(Zeek's ``scan_timeout``, a ``&read_expire`` on the source's entry); a new burst
starts a new *episode*.  A source is flagged in an episode as soon as

* it has ``threshold`` distinct (host, port) attempts (Zeek's ``scan_threshold`` = 25);
* or it has hit ``dark_hosts`` distinct addresses of user-declared dark space (Zeek's
  ``dark_host_threshold`` = 3) and has ``dark_threshold`` distinct attempts (Zeek's
  ``scan_threshold_with_darknet_hits`` = 10): unused space has nothing to offer, so
  any probe there is unsolicited;
* or it has tried more than ``port_threshold`` distinct TCP / UDP / SCTP ports (any
  hosts; ICMP types and IP protocols do not count here): CrowdSec's
  ``iptables-scan-multi_ports`` scenario (a leaky bucket of capacity 15 over distinct
  destination ports).  CrowdSec leaks one port per 5 s; here the ports count over the
  same idle-expiry episode as the rest, which is more patient.

"Failed" means any outcome but ``accepted`` / ``established``: a drop, a reject, no
answer, or unknown (a log line without a verdict).  Zeek likewise counts only
attempts that were not answered or were reset.  The port key is the destination port,
the ICMP type or the IP protocol (:mod:`portradar.scan.probes`).

psad's danger levels (5 / 15 / 150 / 1500 / 10000 packets, ``psad.conf``) are not a
detector here: they grade how loud a flagged source was and are reported with it
(:func:`psad_danger_level`).

**Mergeable state.**  Per episode the detector keeps its first and last time, its
attempt count, and the *bottom-k* distinct pairs, ports and dark hosts by the time they
were first seen (k = the largest threshold that reads them).  Two states merge exactly:
episodes of a source that lie within ``idle_timeout`` of each other coalesce (the
union of two idle-connected runs of events is idle-connected), counts add, and the k
earliest distinct items of a union are among the k earliest of each side.  So a state
built per shard or per sensor and merged equals one pass over all the events
(``tests/test_scan_fanout.py`` checks it), and the time each rule fired is exact.
A state from one update keeps the sketch sizes and rule times its scan found; only a
merged state counts its entries again (the two are tested to agree).

>>> import numpy as np
>>> from portradar.scan.probes import Probes
>>> n = 30
>>> p = Probes.from_columns({"ts": np.arange(n) * 1_000_000, "src_lo": np.full(n, 7),
...                          "dst_lo": np.full(n, 100), "proto": np.full(n, 6),
...                          "dport": np.arange(1, n + 1), "outcome": np.full(n, 1)})
>>> f = FanOut()
>>> f.update(p)
>>> row = f.result().to_pylist()[0]
>>> row["flagged"], row["rule"], row["flagged_ts"]  # 16 distinct ports beat 25 pairs
(True, 'ports', 15000000)
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from portradar.scan.cidr_set import CidrSet
from portradar.scan.probes import Probes, small_isin

#: Entry kinds in the bottom-k sketches.
PAIR, PORT, DARK = 0, 1, 2
RULES = ("", "pairs", "ports", "dark")
#: psad's default danger levels, in packets (psad.conf DANGER_LEVEL1..5).
PSAD_DANGER_LEVELS = (5, 15, 150, 1500, 10000)


def psad_danger_level(packets: np.ndarray) -> np.ndarray:
    """psad's danger level 0-5 for a packet count.

    >>> psad_danger_level(np.array([1, 5, 200, 20000])).tolist()
    [0, 1, 3, 5]
    """
    return np.searchsorted(np.array(PSAD_DANGER_LEVELS), np.asarray(packets), side="right")


class FanOut:
    """Distinct failed (host, port) attempts per source and idle-expiry episode.

    Parameters (defaults and their sources in the module docstring):
        threshold: distinct (host, port) attempts that flag a source (Zeek: 25).
        dark_threshold: distinct attempts that flag a source once it has hit
            ``dark_hosts`` dark addresses (Zeek: 10).
        dark_hosts: dark addresses that lower the threshold (Zeek: 3).
        port_threshold: flagged above this many distinct ports (CrowdSec: 15).
        idle_timeout: seconds of silence that end an episode (Zeek: 15 min).
        dark: the user's dark (unused) address space, or None.
        mergeable: keep the sketch entries :meth:`merge` needs.  A detection's part
            is analysed by one update and never merged: it skips them (on the 5 M-line
            benchmark, 17 MB written per part for nothing), and :meth:`merge` and a
            second :meth:`update` refuse such a state.
    """

    def __init__(self, threshold: int = 25, dark_threshold: int = 10, dark_hosts: int = 3,
                 port_threshold: int = 15, idle_timeout: float = 900.0,
                 dark: CidrSet | None = None, *, mergeable: bool = True) -> None:
        if min(threshold, dark_threshold, dark_hosts, port_threshold) < 1:
            raise ValueError("thresholds must be positive")
        self.threshold = threshold
        self.dark_threshold = dark_threshold
        self.dark_hosts = dark_hosts
        self.port_threshold = port_threshold
        self.idle_timeout = idle_timeout
        self.dark = dark if dark else None
        self.mergeable = mergeable
        self._k = np.array([max(threshold, dark_threshold), port_threshold + 1, dark_hosts],
                           np.int64)
        self._ep = _empty_episodes()
        self._en = _empty_entries()
        # per episode (pairs, ports, dark hosts, flagged_ts, rule), computed by the scan
        # while the state is one scan's output (a detection's part); None after a merge,
        # when the entries are counted again (_episode_arrays)
        self._fast: tuple[np.ndarray, ...] | None = None

    @property
    def min_probes(self) -> int:
        """Fewest probes that can flag a source (one per distinct pair or port)."""
        least = min(self.threshold, self.port_threshold + 1)
        if self.dark is not None:
            least = min(least, max(self.dark_threshold, self.dark_hosts))
        return least

    # -- updating and merging ---------------------------------------------------------
    def update(self, probes: Probes) -> None:
        """Add a batch of probes (any order; each batch is sorted by source and time).
        A state that is not ``mergeable`` takes one batch (a second would merge)."""
        if not len(probes):
            return
        if not self.mergeable and len(self._ep["skey"]):
            raise ValueError("a fan-out state built with mergeable=False takes one batch")
        self._absorb(*self._from_probes(probes))

    def merge(self, other: FanOut) -> FanOut:
        """A new detector holding both states, as if one had seen all the events."""
        if not (self.mergeable and other.mergeable):
            raise ValueError("a fan-out state built with mergeable=False cannot merge")
        if (other.threshold, other.dark_threshold, other.dark_hosts, other.port_threshold,
                other.idle_timeout) != (self.threshold, self.dark_threshold, self.dark_hosts,
                                        self.port_threshold, self.idle_timeout):
            raise ValueError("cannot merge fan-out states with different parameters")
        out = FanOut(self.threshold, self.dark_threshold, self.dark_hosts, self.port_threshold,
                     self.idle_timeout, self.dark)
        out._ep, out._en, out._fast = self._ep, self._en, self._fast
        out._absorb(other._ep, other._en, other._fast)
        return out

    def _from_probes(self, probes: Probes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                    tuple[np.ndarray, ...]]:
        ordered, starts = probes.grouped()
        counted = ordered.failed()
        pair = ordered.port_pairs()
        port = ordered.port.astype(np.uint64)
        ported = small_isin(ordered.proto, (6, 17, 132, 136)) & (ordered.port >= 0)
        if self.dark is not None:
            is_dark = self.dark.contains(ordered.dst_hi, ordered.dst_lo)
        else:
            is_dark = np.zeros(len(ordered), np.bool_)
        idle = int(self.idle_timeout * 1_000_000)
        # one pass into arrays of the most it can emit (each episode holds a counted
        # probe, and a counted probe adds at most one entry of each kind), against a
        # counting pass first (0.13 -> 0.08 CPU-s on the 5 M-event benchmark); pages
        # never written are never touched
        n_counted = int(np.count_nonzero(counted))
        out = _alloc_out(n_counted, n_counted * min(3, int(self._k.sum()))
                         if self.mergeable else 0)
        rule_params = np.array([self.threshold, self.port_threshold, self.dark_hosts,
                                self.dark_threshold], np.int64)
        n_ep, n_en = _scan(starts, ordered.ts, counted, pair, port, ported, ordered.dkey,
                           is_dark, idle, self._k, True, out, rule_params, self.mergeable)
        ep_src, start, end, attempts = (a[:n_ep] for a in out[:4])
        en_ep, en_kind, en_hash, en_ts = (a[:n_en] for a in out[4:8])
        fast = tuple(a[:n_ep] for a in out[8:])
        first = starts[:-1]
        ep = {"skey": ordered.skey[first][ep_src], "key_hi": ordered.key_hi[first][ep_src],
              "key_lo": ordered.key_lo[first][ep_src], "start": start, "end": end,
              "attempts": attempts}
        en = {"ep": en_ep, "kind": en_kind, "hash": en_hash, "ts": en_ts}
        return ep, en, fast

    def _absorb(self, ep2: dict[str, np.ndarray], en2: dict[str, np.ndarray],
                fast: tuple[np.ndarray, ...] | None = None) -> None:
        if not len(self._ep["skey"]):
            self._ep, self._en, self._fast = ep2, en2, fast
            return
        if not len(ep2["skey"]):
            return
        self._fast = None  # merged episodes: their counts come from the entries
        n1 = len(self._ep["skey"])
        ep = {k: np.concatenate([self._ep[k], ep2[k]]) for k in self._ep}
        en = {k: np.concatenate([self._en[k], en2[k] + (n1 if k == "ep" else 0)])
              for k in self._en}
        order = np.lexsort((ep["start"], ep["skey"]))
        ep = {k: v[order] for k, v in ep.items()}
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        en["ep"] = rank[en["ep"]]
        idle = int(self.idle_timeout * 1_000_000)
        group = _coalesce(ep["skey"], ep["start"], ep["end"], idle)
        n_groups = int(group[-1]) + 1 if group.size else 0
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        merged = {
            "skey": ep["skey"][first], "key_hi": ep["key_hi"][first],
            "key_lo": ep["key_lo"][first],
            "start": np.minimum.reduceat(ep["start"], first),
            "end": np.maximum.reduceat(ep["end"], first),
            "attempts": np.add.reduceat(ep["attempts"], first),
        }
        assert merged["skey"].size == n_groups
        # entries: keep each distinct item once (earliest), then the k earliest per kind
        e_group = group[en["ep"]]
        order = np.lexsort((en["ts"], en["hash"], en["kind"], e_group))
        g, kind, h, ts = e_group[order], en["kind"][order], en["hash"][order], en["ts"][order]
        keep = np.r_[True, (g[1:] != g[:-1]) | (kind[1:] != kind[:-1]) | (h[1:] != h[:-1])]
        g, kind, h, ts = g[keep], kind[keep], h[keep], ts[keep]
        order = np.lexsort((h, ts, kind, g))
        g, kind, h, ts = g[order], kind[order], h[order], ts[order]
        new_block = np.r_[True, (g[1:] != g[:-1]) | (kind[1:] != kind[:-1])]
        block_start = np.maximum.accumulate(np.where(new_block, np.arange(g.size), 0))
        within = np.arange(g.size) - block_start
        keep = within < self._k[kind]
        self._ep = merged
        self._en = {"ep": g[keep], "kind": kind[keep], "hash": h[keep], "ts": ts[keep]}

    # -- results ----------------------------------------------------------------------
    def _episode_arrays(self) -> dict[str, np.ndarray]:
        ep, en = self._ep, self._en
        if self._fast is not None:  # what the scan counted, the same as below
            pairs, ports, darks, flagged_ts, rule = self._fast
            return {**ep, "pairs": pairs, "ports": ports, "dark_hosts": darks,
                    "flagged_ts": flagged_ts, "rule": rule}
        n = len(ep["skey"])
        counts = np.bincount(en["ep"] * 3 + en["kind"], minlength=3 * n).reshape(n, 3) \
            if n else np.zeros((0, 3), np.int64)
        flagged_ts, rule = _rules(n, en["ep"], en["kind"], en["ts"], self.threshold,
                                  self.port_threshold, self.dark_hosts, self.dark_threshold)
        return {**ep, "pairs": counts[:, PAIR], "ports": counts[:, PORT],
                "dark_hosts": counts[:, DARK], "flagged_ts": flagged_ts, "rule": rule}

    def episodes(self) -> pa.Table:
        """One row per episode: source, span, attempts, sketch sizes and the rule fired."""
        a = self._episode_arrays()
        ft = a["flagged_ts"]
        a["rule"] = np.array(RULES)[a["rule"]]
        return pa.table({**{k: v for k, v in a.items() if k != "flagged_ts"},
                         "flagged_ts": pa.array(ft, mask=ft < 0)})

    def result_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`result` as numpy columns (``flagged_ts`` -1 and ``rule`` 0 when not
        flagged; ``rule`` is an index in :data:`RULES`)."""
        a = self._episode_arrays()
        skey = a["skey"]
        if not skey.size:
            return {name: np.empty(0, np.uint64 if name in ("key_hi", "key_lo", "skey")
                                   else np.int64)
                    for name in ("key_hi", "key_lo", "skey", "flagged", "flagged_ts", "rule",
                                 "episodes", "attempts", "pairs", "ports", "dark_hosts")}
        first = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
        if first.size == skey.size:  # one episode per source: it is the source's row
            flagged = a["flagged_ts"] >= 0
            return {
                "key_hi": a["key_hi"], "key_lo": a["key_lo"], "skey": skey,
                "flagged": flagged, "flagged_ts": a["flagged_ts"],
                "rule": np.where(flagged, a["rule"], 0), "episodes": np.ones(skey.size, np.int64),
                "attempts": a["attempts"], "pairs": a["pairs"], "ports": a["ports"],
                "dark_hosts": a["dark_hosts"],
            }
        big = np.iinfo(np.int64).max
        ft = np.where(a["flagged_ts"] < 0, big, a["flagged_ts"])
        earliest = np.minimum.reduceat(ft, first)
        sizes = np.diff(np.r_[first, skey.size])
        hit = np.where(ft == np.repeat(earliest, sizes), np.arange(skey.size), big)
        first_hit = np.minimum.reduceat(hit, first)
        flagged = earliest < big
        rule = np.where(flagged, a["rule"][np.minimum(first_hit, skey.size - 1)], 0)
        return {
            "key_hi": a["key_hi"][first], "key_lo": a["key_lo"][first], "skey": skey[first],
            "flagged": flagged, "flagged_ts": np.where(flagged, earliest, -1), "rule": rule,
            "episodes": sizes, "attempts": np.add.reduceat(a["attempts"], first),
            "pairs": np.maximum.reduceat(a["pairs"], first),
            "ports": np.maximum.reduceat(a["ports"], first),
            "dark_hosts": np.maximum.reduceat(a["dark_hosts"], first),
        }

    def result(self) -> pa.Table:
        """One row per source: flagged or not, when and by which rule first, episodes.

        ``pairs`` and ``ports`` are the most seen in one episode, capped at the
        sketch size (a count at the cap means "at least").
        """
        r = self.result_arrays()
        if not r["skey"].size:
            return _empty_result()
        flagged = r["flagged"]
        return pa.table({**r, "flagged_ts": pa.array(r["flagged_ts"], mask=~flagged),
                         "rule": np.array(RULES)[r["rule"]]})

    def nbytes(self) -> int:
        """Bytes of state held (episodes and sketch entries)."""
        return int(sum(v.nbytes for v in self._ep.values())
                   + sum(v.nbytes for v in self._en.values()))


def _empty_episodes() -> dict[str, np.ndarray]:
    return {"skey": np.empty(0, np.uint64), "key_hi": np.empty(0, np.uint64),
            "key_lo": np.empty(0, np.uint64), "start": np.empty(0, np.int64),
            "end": np.empty(0, np.int64), "attempts": np.empty(0, np.int64)}


def _empty_entries() -> dict[str, np.ndarray]:
    return {"ep": np.empty(0, np.int64), "kind": np.empty(0, np.int8),
            "hash": np.empty(0, np.uint64), "ts": np.empty(0, np.int64)}


def _alloc_out(n_ep: int, n_en: int) -> tuple[np.ndarray, ...]:
    return (np.empty(n_ep, np.int64), np.empty(n_ep, np.int64), np.empty(n_ep, np.int64),
            np.empty(n_ep, np.int64), np.empty(n_en, np.int64), np.empty(n_en, np.int8),
            np.empty(n_en, np.uint64), np.empty(n_en, np.int64),
            # per episode: pairs, ports, dark hosts, flagged_ts, rule
            np.empty(n_ep, np.int64), np.empty(n_ep, np.int64), np.empty(n_ep, np.int64),
            np.empty(n_ep, np.int64), np.empty(n_ep, np.int64))


def _empty_result() -> pa.Table:
    return pa.table({
        "key_hi": pa.array([], pa.uint64()), "key_lo": pa.array([], pa.uint64()),
        "skey": pa.array([], pa.uint64()), "flagged": pa.array([], pa.bool_()),
        "flagged_ts": pa.array([], pa.int64()), "rule": pa.array([], pa.string()),
        "episodes": pa.array([], pa.int64()), "attempts": pa.array([], pa.int64()),
        "pairs": pa.array([], pa.int64()), "ports": pa.array([], pa.int64()),
        "dark_hosts": pa.array([], pa.int64()),
    })


@numba.njit(cache=True, nogil=True)
def _add_item(items, count, k, h):  # pragma: no cover - jit
    """Add ``h`` to the first-seen list ``items[:count]`` (at most ``k``); new count."""
    if count >= k:
        return count, False
    for i in range(count):
        if items[i] == h:
            return count, False
    items[count] = h
    return count + 1, True


@numba.njit(cache=True, nogil=True)
def _scan(starts, ts, counted, pair, port, ported, dkey, is_dark, idle, k, fill,
          out, rule_params, entries):  # pragma: no cover - jit
    """Split each source's failed probes into episodes and fill the bottom-k sketches;
    each episode's sketch sizes and the rule it fired (as :func:`_rules` finds them in
    the entries: the items are added in time order, so the n-th is the n-th first seen).

    With ``fill`` False only counts episodes and entries (to size ``out``); with
    ``entries`` False the entries are not written (a state that will not merge).
    """
    ep_src, ep_start, ep_end, ep_att, en_ep, en_kind, en_hash, en_ts = out[:8]
    ep_pairs, ep_ports, ep_darks, ep_flagged, ep_rule = out[8:]
    pairs = np.empty(k[0], np.uint64)
    ports = np.empty(k[1], np.uint64)
    darks = np.empty(k[2], np.uint64)
    pair_ts = np.empty(k[0], np.int64)
    port_ts = np.empty(k[1], np.int64)
    dark_ts = np.empty(k[2], np.int64)
    n_ep = 0
    n_en = 0
    for g in range(starts.shape[0] - 1):
        open_ep = False
        last = 0
        npair = nport = ndark = 0
        for i in range(starts[g], starts[g + 1] + 1):
            end_here = i == starts[g + 1]
            if not end_here and not counted[i]:
                continue
            if open_ep and (end_here or ts[i] - last > idle):
                # close the episode: emit it and its entries
                if fill:
                    ep_src[n_ep] = g
                    ep_end[n_ep] = last
                    ep_pairs[n_ep] = npair
                    ep_ports[n_ep] = nport
                    ep_darks[n_ep] = ndark
                    ep_flagged[n_ep], ep_rule[n_ep] = _episode_rule(
                        npair, nport, ndark, pair_ts, port_ts, dark_ts, rule_params)
                if fill and entries:
                    for q in range(npair):
                        en_ep[n_en] = n_ep
                        en_kind[n_en] = PAIR
                        en_hash[n_en] = pairs[q]
                        en_ts[n_en] = pair_ts[q]
                        n_en += 1
                    for q in range(nport):
                        en_ep[n_en] = n_ep
                        en_kind[n_en] = PORT
                        en_hash[n_en] = ports[q]
                        en_ts[n_en] = port_ts[q]
                        n_en += 1
                    for q in range(ndark):
                        en_ep[n_en] = n_ep
                        en_kind[n_en] = DARK
                        en_hash[n_en] = darks[q]
                        en_ts[n_en] = dark_ts[q]
                        n_en += 1
                elif not fill:
                    n_en += npair + nport + ndark
                n_ep += 1
                open_ep = False
            if end_here:
                break
            if not open_ep:
                open_ep = True
                npair = nport = ndark = 0
                if fill:
                    ep_start[n_ep] = ts[i]
                    ep_att[n_ep] = 0
            if fill:
                ep_att[n_ep] += 1
            last = ts[i]
            npair, added = _add_item(pairs, npair, k[0], pair[i])
            if added:
                pair_ts[npair - 1] = ts[i]
            if ported[i]:
                nport, added = _add_item(ports, nport, k[1], port[i])
                if added:
                    port_ts[nport - 1] = ts[i]
            if is_dark[i]:
                ndark, added = _add_item(darks, ndark, k[2], dkey[i])
                if added:
                    dark_ts[ndark - 1] = ts[i]
    return n_ep, n_en


@numba.njit(cache=True, nogil=True, inline="always")
def _episode_rule(npair, nport, ndark, pair_ts, port_ts, dark_ts,
                  rule_params):  # pragma: no cover - jit
    """When an episode was flagged (-1: never) and the rule's code, from the first-seen
    times of its items: :func:`_rules_kernel` for one episode."""
    threshold, port_threshold, dark_hosts, dark_threshold = (
        rule_params[0], rule_params[1], rule_params[2], rule_params[3])
    t_pair = pair_ts[threshold - 1] if npair >= threshold else -1
    t_pair_dark = pair_ts[dark_threshold - 1] if npair >= dark_threshold else -1
    t_port = port_ts[port_threshold] if nport >= port_threshold + 1 else -1
    t_dark = dark_ts[dark_hosts - 1] if ndark >= dark_hosts else -1
    return _first_rule(t_pair, t_pair_dark, t_port, t_dark)


@numba.njit(cache=True, nogil=True, inline="always")
def _first_rule(t_pair, t_pair_dark, t_port, t_dark):  # pragma: no cover - jit
    """The earliest rule to fire and when (-1, 0: none), from the time each count was
    reached (-1: never): the pairs, the pairs with dark hosts, the ports, the dark
    hosts (the dark rule needs both of its counts)."""
    best = -1
    c = 0
    if t_pair >= 0:
        best = t_pair
        c = 1
    if t_port >= 0 and (best < 0 or t_port < best):
        best = t_port
        c = 2
    if t_dark >= 0 and t_pair_dark >= 0:
        td = max(t_dark, t_pair_dark)
        if best < 0 or td < best:
            best = td
            c = 3
    return best, c


@numba.njit(cache=True, nogil=True)
def _coalesce(skey, start, end, idle):  # pragma: no cover - jit
    """Group id of each episode (sorted by source, start): idle-connected ones share one."""
    n = skey.shape[0]
    group = np.empty(n, np.int64)
    gid = -1
    reach = 0
    for i in range(n):
        if i == 0 or skey[i] != skey[i - 1] or start[i] - reach > idle:
            gid += 1
            reach = end[i]
        else:
            reach = max(reach, end[i])
        group[i] = gid
    return group


def _rules(n, en_ep, en_kind, en_ts, threshold, port_threshold, dark_hosts, dark_threshold):
    """Time each episode was flagged (-1: never) and the code (in RULES) of the rule."""
    return _rules_kernel(n, en_ep, en_kind, en_ts, threshold, port_threshold, dark_hosts,
                         dark_threshold)


@numba.njit(cache=True, nogil=True)
def _rules_kernel(n, en_ep, en_kind, en_ts, threshold, port_threshold, dark_hosts,
                  dark_threshold):  # pragma: no cover - jit
    # entries are sorted by (episode, kind, first-seen time)
    flagged = np.full(n, -1, np.int64)
    code = np.zeros(n, np.int64)
    t_pair = np.full(n, -1, np.int64)  # time of the threshold-th pair
    t_pair_dark = np.full(n, -1, np.int64)  # time of the dark_threshold-th pair
    t_port = np.full(n, -1, np.int64)
    t_dark = np.full(n, -1, np.int64)
    i = 0
    m = en_ep.shape[0]
    while i < m:
        j = i
        while j + 1 < m and en_ep[j + 1] == en_ep[i] and en_kind[j + 1] == en_kind[i]:
            j += 1
        e = en_ep[i]
        cnt = j - i + 1
        kind = en_kind[i]
        if kind == PAIR:
            if cnt >= threshold:
                t_pair[e] = en_ts[i + threshold - 1]
            if cnt >= dark_threshold:
                t_pair_dark[e] = en_ts[i + dark_threshold - 1]
        elif kind == PORT:
            if cnt >= port_threshold + 1:
                t_port[e] = en_ts[i + port_threshold]
        else:
            if cnt >= dark_hosts:
                t_dark[e] = en_ts[i + dark_hosts - 1]
        i = j + 1
    for e in range(n):
        flagged[e], code[e] = _first_rule(t_pair[e], t_pair_dark[e], t_port[e], t_dark[e])
    return flagged, code
