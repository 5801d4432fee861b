"""The light sources' signatures (``light_groups``), read in one pass from a part's
columns, against what ``light_profile`` and the outcome rule compute from gathered
columns."""

from __future__ import annotations

import numpy as np

from portradar.scan.probes import port_key
from portradar.scan.source_profile import light_groups, light_profile


def test_light_groups_match_light_profile_and_the_outcome_rule() -> None:
    rng = np.random.default_rng(11)
    n = 4_000
    skey = rng.integers(1, 600, n).astype(np.uint64)  # sources with 1 to ~15 rows
    ts = rng.integers(0, 10_000, n).astype(np.int64)
    proto = rng.choice(np.array([1, 6, 17], np.int16), n)
    dport = rng.integers(-1, 6, n).astype(np.int32)  # few ports: repeats within a source
    icmp_type = np.where(proto == 1, 8, -1).astype(np.int16)
    outcome = rng.integers(0, 6, n).astype(np.int8)
    rows = np.flatnonzero(rng.random(n) < 0.7)
    rows = rows[np.argsort(skey[rows], kind="stable")]  # each source's rows together

    g = light_groups(rows, skey, ts, proto, dport, icmp_type, outcome)

    keys = skey[rows]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    assert g["starts"].tolist() == [*starts.tolist(), rows.size]
    assert g["first"].tolist() == rows[starts].tolist()
    pkey = port_key(proto[rows], dport[rows], icmp_type[rows]).astype(np.int64).astype(
        np.uint64) | (proto[rows].astype(np.uint64) << np.uint64(32))
    assert g["pkey"].tolist() == pkey.tolist()
    expected = light_profile(keys, np.zeros(rows.size, np.uint64), keys, ts[rows], pkey,
                             np.zeros(rows.size, np.uint64), presorted=True)
    assert g["first_ts"].tolist() == expected["first_ts"].tolist()
    assert g["port_sig"].tolist() == expected["port_sig"].tolist()
    oc = outcome[rows]
    success = np.logical_or.reduceat(np.isin(oc, (3, 5)), starts)
    failure = np.logical_or.reduceat(np.isin(oc, (1, 2, 4)), starts)
    assert g["answered_only"].tolist() == (success & ~failure).tolist()
    assert 0 < g["answered_only"].sum() < starts.size  # both kinds were met


def test_no_rows_no_sources() -> None:
    empty = np.empty(0, np.int64)
    g = light_groups(empty, np.empty(0, np.uint64), empty, np.empty(0, np.int16),
                     np.empty(0, np.int32), np.empty(0, np.int16), np.empty(0, np.int8))
    assert g["starts"].tolist() == [0] and g["first_ts"].size == 0
