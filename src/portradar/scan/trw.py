"""Threshold Random Walk: a scanner fails its first contacts, a client succeeds.

Jung, Paxson, Berger and Balakrishnan, "Fast Portscan Detection Using Sequential
Hypothesis Testing", IEEE Symposium on Security and Privacy 2004.  Each time a source
contacts a destination it has not contacted before (a *first contact*), the outcome
is a Bernoulli trial: a benign host succeeds with probability ``theta0``, a scanner
with probability ``theta1`` (it probes addresses and ports that mostly do not answer).
The log-likelihood ratio of "scanner" against "benign" walks up by
``ln((1 - theta1) / (1 - theta0))`` on a failure and down by ``ln(theta1 / theta0)``
on a success.  Wald's sequential probability ratio test stops at the upper threshold
``ln(beta / alpha)`` (scanner) or the lower one ``ln((1 - beta) / (1 - alpha))``
(benign), where ``alpha`` is the false-positive and ``1 - beta`` the missed-detection
probability the test aims at.

Defaults are the paper's: theta0 = 0.8, theta1 = 0.2, alpha = 0.01, beta = 0.99.  Each
step is then ±ln 4 ≈ 1.386 and each threshold ±ln 99 ≈ 4.595, so **4 failed first
contacts flag a scanner and 4 successful ones clear a client** (the paper reports 4 to
5 on its traces, where successes and failures mix).

What counts, in portradar's events:

* a first contact is the first event from the source to a destination *address*
  (the paper's unit: local hosts, not ports - a vertical scan of one host is one first
  contact, and the fan-out detector catches it instead);
* success = the destination answered: outcome ``accepted`` or ``established``;
* failure = ``rejected`` (RST, ICMP unreachable, REJECT), ``unanswered`` (no reply in
  a capture) or ``blocked``: a firewall drop seen by the sensor is a failed first
  contact, since the prober got nothing back;
* ``unknown`` outcomes carry no information: the contact is remembered (it is no longer
  a *first* contact later) but does not move the walk.  A contact's outcome is that of
  its first event, so the walk never looks ahead in time and a run cut into pieces
  gives the same walk as one run.

After a benign decision the walk restarts from zero (the source is watched again; the
paper stops, but a client that later starts scanning should still be caught).  A
scanner decision is final.

The state is sequential and keyed by source, so it is not mergeable across shards
(route each source to one place instead); across ``update`` calls it is exact as long
as each source's events arrive in time order.

>>> import numpy as np
>>> from portradar.scan.probes import Probes
>>> t = np.arange(5) * 1_000_000
>>> scanner = Probes.from_columns({"ts": t, "src_lo": np.full(5, 1), "dst_lo": np.arange(10, 15),
...                                "proto": np.full(5, 6), "dport": np.full(5, 22),
...                                "tcp_flags": np.full(5, 2), "outcome": np.full(5, 2)})
>>> walk = ThresholdRandomWalk()
>>> walk.update(scanner)
>>> row = walk.result().to_pylist()[0]
>>> row["decision"], row["flagged_after"], round(row["llr"], 2)
('scanner', 4, 5.55)
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pyarrow as pa

from portradar.events.schema import Outcome
from portradar.scan.keyed_state import KeyedState
from portradar.scan.probes import Probes, mix64, small_isin
from portradar.scan.segment_set import clear, nonzero, probe, table

#: Decision codes in the state (and their names in :meth:`ThresholdRandomWalk.result`).
PENDING, SCANNER, BENIGN = 0, 1, 2
DECISIONS = ("pending", "scanner", "benign")


class ThresholdRandomWalk:
    """Sequential hypothesis test per source over first-contact outcomes.

    Parameters (defaults from Jung et al. 2004, section 4):
        theta0: probability that a benign source's first contact succeeds (0.8).
        theta1: probability that a scanner's first contact succeeds (0.2).
        alpha: target false-positive rate (0.01).
        beta: target detection rate (0.99).
        keep_contacts: keep the (source, destination) pairs seen, which a later batch
            needs to tell a first contact.  A detection's part is one batch: it skips
            them (two hashes and a copy of every probe's pair), and a second
            :meth:`update` of such a walk raises.
    """

    def __init__(self, theta0: float = 0.8, theta1: float = 0.2, alpha: float = 0.01,
                 beta: float = 0.99, *, keep_contacts: bool = True) -> None:
        if not (0 < theta1 < theta0 < 1):
            raise ValueError("need 0 < theta1 < theta0 < 1")
        if not (0 < alpha < beta < 1):
            raise ValueError("need 0 < alpha < beta < 1")
        self.theta0, self.theta1, self.alpha, self.beta = theta0, theta1, alpha, beta
        self.step_success = math.log(theta1 / theta0)
        self.step_failure = math.log((1 - theta1) / (1 - theta0))
        self.eta1 = math.log(beta / alpha)
        self.eta0 = math.log((1 - beta) / (1 - alpha))
        self.keep_contacts = keep_contacts
        self._updated = False
        self._state = KeyedState(
            {"llr": np.float64, "decision": np.int8, "contacts": np.int64,
             "failures": np.int64, "successes": np.int64, "probes": np.int64,
             "flagged_ts": np.int64, "flagged_after": np.int64, "flagged_probes": np.int64,
             "cleared_ts": np.int64, "cleared_after": np.int64, "clearings": np.int64},
            defaults={"flagged_ts": -1, "cleared_ts": -1},
        )
        self._contacts = np.empty(0, np.uint64)  # sorted hashes of (source, destination)
        self._pending: list[np.ndarray] = []  # contact hashes not merged in yet

    @property
    def min_probes(self) -> int:
        """Fewest probes that can flag a source: one failed first contact each."""
        return math.ceil(self.eta1 / self.step_failure - 1e-9)

    def update(self, probes: Probes) -> None:
        """Walk every source of ``probes`` over its new first contacts, in time order."""
        if not len(probes):
            return
        if self._updated and not self.keep_contacts:
            raise ValueError("a walk built with keep_contacts=False takes one batch")
        self._updated = True
        ordered, starts = probes.grouped()
        contacts = self._contact_set()
        pair: np.ndarray | None = None  # each probe's (source, destination) hash
        if contacts.size or self.keep_contacts:
            pair = np.asarray(mix64(ordered.skey ^ mix64(ordered.dkey)), np.uint64)
        if contacts.size and pair is not None:
            pos = np.searchsorted(contacts, pair)
            pos[pos >= contacts.size] = 0
            seen = contacts[pos] == pair
        else:
            seen = np.zeros(len(ordered), np.bool_)
        obs = np.full(len(ordered), -1, np.int8)
        obs[small_isin(ordered.outcome, (Outcome.ACCEPTED, Outcome.ESTABLISHED))] = 1
        obs[small_isin(ordered.outcome, (Outcome.BLOCKED, Outcome.REJECTED,
                                      Outcome.UNANSWERED))] = 0
        key_hi, key_lo, skey = probes.source_keys()
        rows = self._state.locate(skey, key_hi, key_lo)
        c = self._state.columns
        keys, mask = table(int(np.diff(starts).max()))
        used = np.empty(keys.size, np.int64)
        _walk(starts, ordered.ts, ordered.dkey, obs, seen, rows, keys, mask, used,
              c["llr"], c["decision"], c["contacts"], c["failures"], c["successes"],
              c["probes"], c["flagged_ts"], c["flagged_after"], c["flagged_probes"],
              c["cleared_ts"], c["cleared_after"], c["clearings"],
              self.step_success, self.step_failure, self.eta0, self.eta1)
        if pair is not None and self.keep_contacts:
            self._pending.append(pair[~seen])

    def _contact_set(self) -> np.ndarray:
        if self._pending:
            self._contacts = np.unique(np.concatenate([self._contacts, *self._pending]))
            self._pending = []
        return self._contacts

    def result_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`result` as numpy columns, sorted by ``skey`` (``decision`` as a code,
        times -1 when not reached)."""
        s = self._state
        return {"key_hi": s.key_hi, "key_lo": s.key_lo, "skey": s.skey, **s.columns}

    def result(self) -> pa.Table:
        """One row per source seen: decision, walk value, counts and when it was decided.

        ``flagged_after`` is the number of observed first contacts at the decision,
        ``flagged_probes`` the number of the source's probes up to and including it.
        """
        s = self._state
        c = s.columns
        return pa.table({
            "key_hi": s.key_hi, "key_lo": s.key_lo, "skey": s.skey,
            "decision": np.array(DECISIONS)[c["decision"]],
            "decision_code": c["decision"],
            "llr": c["llr"], "contacts": c["contacts"], "failures": c["failures"],
            "successes": c["successes"], "probes": c["probes"],
            "flagged_ts": _nullable(c["flagged_ts"]), "flagged_after": c["flagged_after"],
            "flagged_probes": c["flagged_probes"], "cleared_ts": _nullable(c["cleared_ts"]),
            "cleared_after": c["cleared_after"], "clearings": c["clearings"],
        })

    def nbytes(self) -> int:
        """Bytes of state held (per-source columns and the contact set)."""
        return self._state.nbytes() + self._contacts.nbytes + sum(p.nbytes for p in self._pending)


def _nullable(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=values < 0)


@numba.njit(cache=True, nogil=True)
def _step(r, o, t, base_probes, pos, llr, decision, failures, successes, flagged_ts,
          flagged_after, flagged_probes, cleared_ts, cleared_after, clearings, step_success,
          step_failure, eta0, eta1):  # pragma: no cover - jit
    """One observed first contact; returns True once the source is a scanner."""
    if o == 1:
        successes[r] += 1
        llr[r] += step_success
    else:
        failures[r] += 1
        llr[r] += step_failure
    if llr[r] >= eta1:
        decision[r] = SCANNER
        flagged_ts[r] = t
        flagged_after[r] = successes[r] + failures[r]
        flagged_probes[r] = base_probes + pos + 1
        return True
    if llr[r] <= eta0:
        if cleared_ts[r] < 0:
            cleared_ts[r] = t
            cleared_after[r] = successes[r] + failures[r]
        clearings[r] += 1
        decision[r] = BENIGN
        llr[r] = 0.0
    return False


@numba.njit(cache=True, nogil=True)
def _walk(starts, ts, dkey, obs, seen, rows, keys, mask, used, llr, decision,  # pragma: no cover
          contacts, failures, successes, probes, flagged_ts, flagged_after, flagged_probes,
          cleared_ts, cleared_after, clearings, step_success, step_failure, eta0, eta1):
    longest = 1
    for g in range(starts.shape[0] - 1):
        longest = max(longest, starts[g + 1] - starts[g])
    firsts = np.empty(longest, np.int64)
    first_obs = np.empty(longest, np.int8)
    first_new = np.empty(longest, np.bool_)
    for g in range(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        r = rows[g]
        base_probes = probes[r]
        probes[r] += e - s
        if decision[r] == SCANNER:
            continue
        if e - s == 1:  # most sources: one probe, one possible first contact
            if not seen[s]:
                contacts[r] += 1
                if obs[s] >= 0:
                    _step(r, obs[s], ts[s], base_probes, 0, llr, decision, failures,
                          successes, flagged_ts, flagged_after, flagged_probes, cleared_ts,
                          cleared_after, clearings, step_success, step_failure, eta0, eta1)
            continue
        # contacts in the order of their first event, with that event's outcome
        nf = 0
        for i in range(s, e):
            v = nonzero(dkey[i])
            slot = probe(keys, mask, v)
            if keys[slot] == 0:
                keys[slot] = v
                used[nf] = np.int64(slot)
                firsts[nf] = i - s
                first_obs[nf] = obs[i]
                first_new[nf] = not seen[i]
                nf += 1
        clear(keys, used, nf)
        for c in range(nf):
            if not first_new[c]:
                continue
            contacts[r] += 1
            o = first_obs[c]
            if o < 0:
                continue
            if _step(r, o, ts[s + firsts[c]], base_probes, firsts[c], llr, decision, failures,
                     successes, flagged_ts, flagged_after, flagged_probes, cleared_ts,
                     cleared_after, clearings, step_success, step_failure, eta0, eta1):
                break
