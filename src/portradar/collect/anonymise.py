"""Hide the sensor's own (target) addresses before events leave it, as DShield clients do.

DShield's client scripts let a contributor mask their target addresses (the
``dst`` of a probe) or leave them out; the Storm Center only needs the sources.  Two
modes, on the ``dst_hi``/``dst_lo`` columns, vectorised:

* **mask** to a prefix: IPv4 keeps its first ``v4_prefix`` bits (default /24, the
  granularity DShield publishes), IPv6 its first ``v6_prefix`` (default /48, a site).
* **hash**: each distinct address is replaced by a keyed BLAKE2b of it (the key stays on
  the sensor), so targets stay distinct and countable but cannot be recovered or
  guessed by hashing the address space.  IPv4 stays IPv4-mapped (32 hashed bits).

>>> import numpy as np
>>> from portradar.events.schema import make_batch
>>> b = make_batch({"ts": [1, 2], "src_lo": [5, 5], "proto": [6, 6],
...                 "dst_lo": [0xFFFF_C000_0201, 0xFFFF_C000_02FE]})
>>> [hex(v) for v in mask_targets(b).column("dst_lo").to_pylist()]
['0xffffc0000200', '0xffffc0000200']
>>> h = hash_targets(b, key=b"k").column("dst_lo").to_pylist()
>>> h[0] != h[1] and h[0] >> 32 == 0xFFFF
True
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from portradar.events.schema import EVENT_SCHEMA

#: DShield publishes target networks at /24; a /48 is one IPv6 site (RFC 6177).
V4_PREFIX = 24
V6_PREFIX = 48

_V4_MAPPED = np.uint64(0xFFFF_0000_0000)
_ALL = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def _columns(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hi = batch.column("dst_hi").to_numpy(zero_copy_only=False).astype(np.uint64)
    lo = batch.column("dst_lo").to_numpy(zero_copy_only=False).astype(np.uint64)
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
    return hi, lo, v4


def _replace(batch: pa.RecordBatch, hi: np.ndarray, lo: np.ndarray) -> pa.RecordBatch:
    arrays = list(batch.columns)
    arrays[EVENT_SCHEMA.get_field_index("dst_hi")] = pa.array(hi, pa.uint64())
    arrays[EVENT_SCHEMA.get_field_index("dst_lo")] = pa.array(lo, pa.uint64())
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def _mask(bits: int) -> np.uint64:
    """The top ``bits`` of a 64-bit word set."""
    bits = max(0, min(64, bits))
    return np.uint64(0) if bits == 0 else np.uint64((0xFFFF_FFFF_FFFF_FFFF << (64 - bits))
                                                    & 0xFFFF_FFFF_FFFF_FFFF)


def mask_targets(batch: pa.RecordBatch, *, v4_prefix: int = V4_PREFIX,
                 v6_prefix: int = V6_PREFIX) -> pa.RecordBatch:
    """Targets cut to their network prefix (host bits zeroed)."""
    hi, lo, v4 = _columns(batch)
    v4_lo = _V4_MAPPED | (lo & (_mask(32 + v4_prefix) & np.uint64(0xFFFF_FFFF)))
    hi_masked = hi & _mask(v6_prefix)
    lo_masked = lo & _mask(v6_prefix - 64) if v6_prefix > 64 else np.zeros_like(lo)
    new_lo = np.where(v4, v4_lo, lo_masked)
    new_hi = np.where(v4, hi, hi_masked)
    return _replace(batch, new_hi, new_lo)


def hash_targets(batch: pa.RecordBatch, *, key: bytes) -> pa.RecordBatch:
    """Targets replaced by a keyed hash (a loop over *distinct* targets only)."""
    hi, lo, v4 = _columns(batch)
    if not len(hi):
        return batch
    pairs = np.stack([hi, lo], axis=1)
    distinct, inverse = np.unique(pairs, axis=0, return_inverse=True)
    digests = np.empty((len(distinct), 2), np.uint64)
    for i, (h, lw) in enumerate(distinct):
        d = hashlib.blake2b(int(h).to_bytes(8, "big") + int(lw).to_bytes(8, "big"),
                            key=key[:64], digest_size=16).digest()
        digests[i] = (int.from_bytes(d[:8], "big"), int.from_bytes(d[8:], "big"))
    out = digests[inverse.reshape(-1)]
    new_hi = np.where(v4, np.uint64(0), out[:, 0])
    new_lo = np.where(v4, _V4_MAPPED | (out[:, 1] & np.uint64(0xFFFF_FFFF)), out[:, 1])
    return _replace(batch, new_hi, new_lo)
