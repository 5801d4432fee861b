"""Per-source state of a sequential detector, as columns sorted by the source key.

A sequential detector (the TRW walk, the slow-scan window) keeps a few numbers per
source between ``update`` calls.  Python dictionaries of objects would cost hundreds of
bytes and a Python step per source; here the state is a set of numpy columns kept in
``skey`` order (see :func:`portradar.scan.probes.address_key`), found for a batch's
sources with one ``searchsorted`` and written back with one scatter.  A batch's new
sources are appended and the columns re-sorted once per batch.

>>> state = KeyedState({"count": np.int64})
>>> idx = state.locate(np.array([7, 3], np.uint64), np.zeros(2, np.uint64),
...                    np.array([7, 3], np.uint64))
>>> state.columns["count"][idx] += np.array([1, 2])
>>> idx = state.locate(np.array([3, 9], np.uint64), np.zeros(2, np.uint64),
...                    np.array([3, 9], np.uint64))
>>> state.columns["count"][idx] += 10
>>> state.skey.tolist(), state.columns["count"].tolist()
([3, 7, 9], [12, 1, 10])

A first batch whose keys come sorted (a frame's sources) becomes the state as it is:

>>> fresh = KeyedState({"count": np.int64}, defaults={"count": 5})
>>> fresh.locate(np.array([3, 9], np.uint64), np.zeros(2, np.uint64),
...              np.array([3, 9], np.uint64)).tolist(), fresh.columns["count"].tolist()
([0, 1], [5, 5])
"""

from __future__ import annotations

from typing import Any

import numpy as np


class KeyedState:
    """Columns of per-source state; ``columns`` maps a name to an array, one row per source.

    ``defaults`` gives the value a new source starts with (0 unless named).
    """

    def __init__(self, dtypes: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
        self._dtypes = dict(dtypes)
        self._defaults = dict(defaults or {})
        self.skey = np.empty(0, np.uint64)
        self.key_hi = np.empty(0, np.uint64)
        self.key_lo = np.empty(0, np.uint64)
        self.columns: dict[str, np.ndarray] = {
            name: np.empty(0, dtype) for name, dtype in self._dtypes.items()
        }

    def __len__(self) -> int:
        return int(self.skey.shape[0])

    def locate(self, skey: np.ndarray, key_hi: np.ndarray, key_lo: np.ndarray) -> np.ndarray:
        """Row of each given source (distinct keys), adding the new ones; returns rows.

        Rows are valid until the next :meth:`locate` (adding sources re-sorts).
        """
        skey = np.asarray(skey, np.uint64)
        n = len(self)
        if not n and not (skey[1:] <= skey[:-1]).any():
            # the first batch, its keys sorted and distinct (a frame's sources): they
            # are the state, in their order
            self.skey = skey.copy()
            self.key_hi = np.array(key_hi, np.uint64)
            self.key_lo = np.array(key_lo, np.uint64)
            self.columns = {name: np.full(skey.size, self._defaults.get(name, 0), dtype)
                            for name, dtype in self._dtypes.items()}
            return np.arange(skey.size)
        pos = np.searchsorted(self.skey, skey) if n else np.zeros(skey.shape, np.int64)
        found = pos < n
        found[found] = self.skey[pos[found]] == skey[found]
        if found.all():
            return pos
        new = ~found
        self.skey = np.concatenate([self.skey, skey[new]])
        self.key_hi = np.concatenate([self.key_hi, np.asarray(key_hi, np.uint64)[new]])
        self.key_lo = np.concatenate([self.key_lo, np.asarray(key_lo, np.uint64)[new]])
        for name, arr in self.columns.items():
            fill = np.full(int(new.sum()), self._defaults.get(name, 0), self._dtypes[name])
            self.columns[name] = np.concatenate([arr, fill])
        if (self.skey[1:] < self.skey[:-1]).any():  # a batch's keys arrive sorted: often in order
            order = np.argsort(self.skey, kind="stable")
            self.skey = self.skey[order]
            self.key_hi = self.key_hi[order]
            self.key_lo = self.key_lo[order]
            for name in self.columns:
                self.columns[name] = self.columns[name][order]
        return np.searchsorted(self.skey, skey)

    def nbytes(self) -> int:
        return int(self.skey.nbytes + self.key_hi.nbytes + self.key_lo.nbytes
                   + sum(a.nbytes for a in self.columns.values()))
