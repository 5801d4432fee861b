"""Run every scan detector over the store's events and keep the verdicts in the store.

What it does, for the sources that have new events since the last run (or all of them
the first time, or after the configuration changed):

1. load their events from DuckDB as numpy columns (in partitions of about
   :data:`PARTITION_EVENTS` events by a hash of the source, so memory stays bounded
   whatever the store's size); mark replies (:mod:`~portradar.scan.replies`);
2. split them into probes and unsolicited reply-like packets
   (:mod:`~portradar.scan.probes`), sort the probes once by (source, time), and feed the
   same frame to the Threshold Random Walk (:mod:`~portradar.scan.trw`), the fan-out
   (:mod:`~portradar.scan.fanout`), the slow-scan window (:mod:`~portradar.scan.slow_scan`)
   and the per-source profile (:mod:`~portradar.scan.source_profile`); the reply-like
   packets to the backscatter detector (:mod:`~portradar.scan.backscatter`);
3. do the same for IPv6 sources aggregated by /64 (a scanner rotating through the
   addresses of its /64 is one source there);
4. classify each flagged source (shape :mod:`~portradar.scan.scan_shape`, type
   :mod:`~portradar.scan.scan_type`, tool :mod:`~portradar.scan.fingerprint`), apply the
   loopback policy (:mod:`~portradar.scan.loopback`) and the benign list
   (:mod:`~portradar.scan.benign`), and write ``scanners`` and ``scan_profiles``;
5. regroup campaigns over all profiles (:mod:`~portradar.scan.campaigns`);
6. move the watermark.

**Watermark.**  Events are only ever appended, each with a DuckDB ``rowid`` larger than
any before.  The store keeps the largest ``rowid`` processed and the ledger's event
total at that moment (``meta`` keys ``scan.rowid`` and ``scan.ledger``).  A run then
reads the sources of ``rowid > watermark`` and recomputes exactly those sources from
their whole history, so the result never depends on how ingestion was split.  If the
count of new rows disagrees with the ledger (rows renumbered after retention deleted
old events), or more than :data:`FULL_SHARE` of the sources are affected, or the
detector configuration changed, the run recomputes every source present instead.
Verdicts on sources whose events were all purged by retention are kept.

**Confidence** is a ranking aid: TRW's is the posterior probability of "scanner" at an
even prior, 1/(1 + e^-llr) (0.99 at its threshold); the fan-out's and slow scan's are
1 - 0.1 (T/n)² for n distinct pairs against threshold T (0.9 at the threshold, 0.975
at twice it); a campaign-only member gets 0.8; a verdict takes its detectors' maximum.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.errors import StoreError
from portradar.events.addresses import key_to_text
from portradar.scan.backscatter import Backscatter
from portradar.scan.benign import BenignList
from portradar.scan.campaigns import Campaigns
from portradar.scan.cidr_set import CidrSet
from portradar.scan.fanout import FanOut, psad_danger_level
from portradar.scan.fingerprint import TOOLS, tool_of
from portradar.scan.loopback import STATUS as SPECIAL_STATUS
from portradar.scan.loopback import special_source
from portradar.scan.probes import (
    CLASS_NAMES,
    PROBE_CLASSES,
    REPLY_CLASSES,
    Probes,
    is_ipv4,
    is_multicast,
)
from portradar.scan.replies import DEFAULT_REPLY_WINDOW, reply_rowids
from portradar.scan.scan_shape import SHAPES, scan_shape
from portradar.scan.scan_type import TYPES, scan_type
from portradar.scan.slow_scan import SlowScan
from portradar.scan.source_profile import probes_until, profile
from portradar.scan.trw import ThresholdRandomWalk
from portradar.store.duckdb_store import Store

#: Bumped when a change of the detectors makes stored verdicts stale.
DETECTOR_VERSION = 1
#: Events loaded and processed at once; bigger stores are split by source hash.
#: 3 million events take about 600 MB of numpy columns at the peak of a partition.
PARTITION_EVENTS = 3_000_000
#: Above this share of sources with new events, recompute everything (cheaper).
FULL_SHARE = 0.3

_META_ROWID = "scan.rowid"
_META_LEDGER = "scan.ledger"
_META_CONFIG = "scan.config"
_META_DARK = "scan.dark"
_META_BENIGN = "scan.benign"


@dataclass
class ScanConfig:
    """Every parameter of the detection; defaults and their sources are in each module."""

    trw: dict[str, float] = field(default_factory=dict)
    fanout: dict[str, float] = field(default_factory=dict)
    slow_scan: dict[str, float] = field(default_factory=dict)
    backscatter: dict[str, float] = field(default_factory=dict)
    campaigns: dict[str, float] = field(default_factory=dict)
    reply_window: float = DEFAULT_REPLY_WINDOW
    dark: list[str] = field(default_factory=list)  # the user's dark address space
    benign: str = ""  # the user's benign list, as text (see portradar.scan.benign)

    @classmethod
    def from_store(cls, store: Store) -> ScanConfig:
        dark = store.setting(_META_DARK, "") or ""
        return cls(dark=[d for d in dark.split(",") if d.strip()],
                   benign=store.setting(_META_BENIGN, "") or "")

    def fingerprint(self) -> str:
        return json.dumps({"version": DETECTOR_VERSION, **asdict(self)}, sort_keys=True)


@dataclass
class DetectionSummary:
    """What a detection run did."""

    mode: str  # "unchanged", "incremental" or "full"
    events: int = 0  # events read
    sources: int = 0  # sources (re)computed
    flagged: int = 0  # verdicts written (scanners, benign, loopback, backscatter)
    campaigns: int = 0
    seconds: float = 0.0
    state_bytes: int = 0  # largest detector state held at once
    partitions: int = 0


def save_settings(store: Store, *, dark: list[str] | None = None,
                  benign: BenignList | None = None) -> None:
    """Remember the user's dark space and benign list in the store (next run uses them)."""
    if dark is not None:
        CidrSet.parse(dark)  # fail now on a bad network, not at detection time
        store.set_setting(_META_DARK, ",".join(d.strip() for d in dark))
    if benign is not None:
        store.set_setting(_META_BENIGN, benign.to_text())


def ensure_detection(store: Store, config: ScanConfig | None = None) -> DetectionSummary:
    """Bring the verdicts up to date with the events (a no-op when nothing is new)."""
    if store.read_only:
        return DetectionSummary(mode="unchanged")
    return detect(store, config)


def detect(store: Store, config: ScanConfig | None = None, *, full: bool = False,
           partition_events: int = PARTITION_EVENTS) -> DetectionSummary:
    """Run the detectors over new events (or all, with ``full``) and store the verdicts."""
    started = time.perf_counter()
    config = config or ScanConfig.from_store(store)
    con = store.con
    _apply_schema(store)
    previous_bar = _progress_bar(con, False)
    try:
        summary = _detect(store, config, full, partition_events)
    except duckdb.Error as exc:
        raise StoreError(f"{store.path}: scan detection failed ({exc})") from exc
    finally:
        _progress_bar(con, previous_bar)
    summary.seconds = time.perf_counter() - started
    return summary


def _apply_schema(store: Store) -> None:
    from importlib.resources import files

    if store.read_only:
        return
    store.con.execute(files("portradar.scan").joinpath("schema.sql").read_text())


def _progress_bar(con: duckdb.DuckDBPyConnection, on: bool | None) -> bool | None:
    try:
        row = con.execute("SELECT current_setting('enable_progress_bar')").fetchone()
        before = bool(row[0]) if row else None
        if on is not None:
            con.execute(f"SET enable_progress_bar = {'true' if on else 'false'}")
        return before
    except duckdb.Error:
        return None


def _detect(store: Store, config: ScanConfig, full: bool,
            partition_events: int) -> DetectionSummary:
    con = store.con
    fingerprint = config.fingerprint()
    table, _ = event_table(con)
    row = con.execute(f"SELECT max(rowid), count(*) FROM {table}").fetchone()
    max_rowid = -1 if not row or row[0] is None else int(row[0])
    ledger_row = con.execute("SELECT coalesce(sum(events), 0) FROM inputs").fetchone()
    ledger = int(ledger_row[0]) if ledger_row else 0
    wm = int(store.setting(_META_ROWID, "-1") or -1)
    wm_ledger = int(store.setting(_META_LEDGER, "-1") or -1)
    same_config = store.setting(_META_CONFIG) == fingerprint
    if not full and same_config and max_rowid <= wm and ledger == wm_ledger:
        return DetectionSummary(mode="unchanged")
    mode = "full"
    if not full and same_config and wm >= 0:
        new = con.execute(f"SELECT count(*) FROM {table} WHERE rowid > ?", [wm]).fetchone()
        n_new = int(new[0]) if new else 0
        if n_new == ledger - wm_ledger:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _affected AS
                   SELECT DISTINCT src_hi, src_lo FROM {table} WHERE rowid > ?""", [wm])
            n_aff = con.execute("SELECT count(*) FROM _affected").fetchone()
            known = con.execute("SELECT count(*) FROM scan_profiles").fetchone()
            if n_aff and known and n_aff[0] <= FULL_SHARE * max(known[0], 1):
                mode = "incremental"
    with store.transaction():
        summary = _run(store, config, mode, partition_events)
        store.set_setting(_META_ROWID, str(max_rowid))
        store.set_setting(_META_LEDGER, str(ledger))
        store.set_setting(_META_CONFIG, fingerprint)
    con.execute("DROP TABLE IF EXISTS _affected")
    return summary


# --- the run ---------------------------------------------------------------------------


_LOAD_COLUMNS = """e.rowid AS rid, epoch_us(e.ts) AS ts, e.src_hi, e.src_lo, e.dst_hi, e.dst_lo,
    CAST(e.proto AS SMALLINT) AS proto, coalesce(CAST(e.sport AS INTEGER), -1) AS sport,
    coalesce(CAST(e.dport AS INTEGER), -1) AS dport,
    coalesce(CAST(e.tcp_flags AS SMALLINT), -1) AS tcp_flags,
    coalesce(CAST(e.icmp_type AS SMALLINT), -1) AS icmp_type,
    {outcome} AS outcome,
    CAST(e.packets AS BIGINT) AS packets, coalesce(CAST(e.ttl AS SMALLINT), -1) AS ttl,
    coalesce(CAST(e.ip_id AS INTEGER), -1) AS ip_id,
    coalesce(CAST(e.tcp_window AS INTEGER), -1) AS tcp_window,
    coalesce(CAST(e.tcp_seq AS BIGINT), -1) AS tcp_seq,
    {sensor} AS sensor"""

_OUTCOME_FROM_LABEL = """CAST(CASE e.outcome WHEN 'blocked' THEN 1 WHEN 'rejected' THEN 2
    WHEN 'accepted' THEN 3 WHEN 'unanswered' THEN 4 WHEN 'established' THEN 5 ELSE 0 END
    AS TINYINT)"""


def event_table(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """The table holding raw events and the columns to load from it.

    The store keeps events in ``event_rows`` (integer codes, read directly as the
    store's own hot queries do) behind an ``events`` view; an older store has an
    ``events`` table with text columns.
    """
    row = con.execute(
        """SELECT count(*) FROM duckdb_tables()
           WHERE table_name = 'event_rows' AND NOT temporary"""
    ).fetchone()
    if row and row[0]:
        return "event_rows", _LOAD_COLUMNS.format(outcome="CAST(e.outcome AS TINYINT)",
                                                  sensor="CAST(e.sensor_id AS INTEGER)")
    return "events", _LOAD_COLUMNS.format(outcome=_OUTCOME_FROM_LABEL,
                                          sensor="CAST(hash(e.sensor) >> 33 AS INTEGER)")


def _run(store: Store, config: ScanConfig, mode: str, partition_events: int) -> DetectionSummary:
    con = store.con
    summary = DetectionSummary(mode=mode)
    table, load = event_table(con)
    if mode == "incremental":
        scope = "(e.src_hi, e.src_lo) IN (SELECT src_hi, src_lo FROM _affected)"
        con.execute("DELETE FROM scanners WHERE (src_hi, src_lo) IN "
                    "(SELECT src_hi, src_lo FROM _affected) AND prefix = 128")
        con.execute("DELETE FROM scanners WHERE prefix = 64 AND src_hi IN "
                    "(SELECT src_hi FROM _affected WHERE src_hi <> 0)")
        con.execute("DELETE FROM scan_profiles WHERE (src_hi, src_lo) IN "
                    "(SELECT src_hi, src_lo FROM _affected)")
    else:
        scope = "TRUE"
        if _count(con, "SELECT count(*) FROM scanners"):
            con.execute("DELETE FROM scanners WHERE prefix = 64 OR (src_hi, src_lo) IN "
                        f"(SELECT DISTINCT src_hi, src_lo FROM {table})")
            con.execute("DELETE FROM scan_profiles WHERE (src_hi, src_lo) IN "
                        f"(SELECT DISTINCT src_hi, src_lo FROM {table})")
    n_events = _count(con, f"SELECT count(*) FROM {table} e WHERE {scope}")
    parts = max(1, math.ceil(n_events / max(partition_events, 1)))
    replies = reply_rowids(con, scope, config.reply_window, table=table)
    dark = CidrSet.parse(config.dark) if config.dark else None
    benign = BenignList.parse(config.benign) if config.benign else None
    for part in range(parts):
        where = scope if parts == 1 else f"{scope} AND hash(e.src_hi, e.src_lo) % {parts} = {part}"
        cols = con.sql(f"SELECT {load} FROM {table} e WHERE {where}").fetchnumpy()
        summary.events += len(cols["ts"])
        rows, profiles, nbytes, n_src = _analyse(cols, replies, config, dark, benign,
                                                 prefix64=False)
        summary.state_bytes = max(summary.state_bytes, nbytes)
        summary.sources += n_src
        _insert(con, "scan_profiles", profiles)
        summary.flagged += _insert_scanners(con, rows, config)
        del cols
    # IPv6 sources by /64
    v6_scope = "e.src_hi <> 0" if mode == "full" else \
        "e.src_hi IN (SELECT src_hi FROM _affected WHERE src_hi <> 0)"
    cols = con.sql(f"SELECT {load} FROM {table} e WHERE {v6_scope}").fetchnumpy()
    if len(cols["ts"]):
        if mode != "full":
            replies = reply_rowids(con, v6_scope, config.reply_window, table=table)
        rows, _, nbytes, _ = _analyse(cols, replies, config, dark, benign, prefix64=True)
        summary.flagged += _insert_scanners(con, rows, config)
    summary.partitions = parts
    summary.campaigns = _campaigns(store, config, dark, benign)
    return summary


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _analyse(cols: dict[str, np.ndarray], replies: np.ndarray, config: ScanConfig,
             dark: CidrSet | None, benign: BenignList | None, *, prefix64: bool,
             only_campaign: bool = False) -> tuple[pa.Table | None, pa.Table | None, int, int]:
    """Detectors over one partition; returns (verdict rows, profiles, state bytes, sources)."""
    frame = Probes.from_columns(cols, prefix64=prefix64)
    rid = np.asarray(cols["rid"], np.int64)
    is_reply = np.zeros(len(rid), np.bool_)
    if replies.size:
        pos = np.searchsorted(replies, rid)
        pos[pos >= replies.size] = 0
        is_reply = replies[pos] == rid
    ok = ~is_reply & ~is_multicast(frame.dst_hi, frame.dst_lo)
    probe_mask = ok & np.isin(frame.cls, PROBE_CLASSES)
    reply_like = ok & np.isin(frame.cls, REPLY_CLASSES)
    n_addresses = None
    if prefix64:
        v6 = ~is_ipv4(frame.key_hi, np.asarray(cols["src_lo"], np.uint64))
        probe_mask &= v6
        reply_like &= v6
        n_addresses = _addresses_per_prefix(frame.skey[probe_mask],
                                            np.asarray(cols["src_lo"], np.uint64)[probe_mask])
    probes = frame.take(probe_mask)
    trw = ThresholdRandomWalk(**config.trw)
    fan = FanOut(**config.fanout, dark=dark)
    slow = SlowScan(**config.slow_scan)
    for detector in (trw, fan, slow):
        detector.update(probes)
    prof = profile(probes)
    state = trw.nbytes() + fan.nbytes() + slow.nbytes()
    # backscatter: reply-like packets, with the probes of the sources that sent them
    back_rows = None
    if reply_like.any():
        senders = np.unique(frame.skey[reply_like])
        pos = np.searchsorted(senders, frame.skey)
        pos[pos >= senders.size] = 0
        mine = senders[pos] == frame.skey
        back_frame = frame.take(reply_like | (probe_mask & mine))
        back = Backscatter(**config.backscatter)
        back.update(back_frame)
        back_rows = _backscatter_rows(back, back_frame, prof, config)
    rows = _verdicts(probes, prof, trw, fan, slow, config, benign, n_addresses,
                     prefix64=prefix64, only_campaign=only_campaign)
    if back_rows is not None:
        rows = pa.concat_tables([rows, back_rows]) if rows is not None else back_rows
    profiles = None if prefix64 else _profile_table(prof, trw, fan, slow)
    return rows, profiles, state, len(prof["skey"])


def _addresses_per_prefix(skey: np.ndarray, src_lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prefix key, distinct addresses) of each /64 key."""
    if not skey.size:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    order = np.lexsort((src_lo, skey))
    k, lo = skey[order], src_lo[order]
    new_addr = np.r_[True, (k[1:] != k[:-1]) | (lo[1:] != lo[:-1])]
    new_key = np.r_[True, k[1:] != k[:-1]]
    starts = np.flatnonzero(new_key)
    return k[starts], np.add.reduceat(new_addr.astype(np.int64), starts)


def _align(ref: np.ndarray, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Row of ``table`` (sorted by ``skey``) for each reference key, and a found mask."""
    keys = table.column("skey").to_numpy()
    if not keys.size:
        return np.zeros(ref.size, np.int64), np.zeros(ref.size, np.bool_)
    pos = np.searchsorted(keys, ref)
    pos[pos >= keys.size] = 0
    return pos, keys[pos] == ref


def _num(table: pa.Table, name: str, rows: np.ndarray, fill: Any = 0) -> np.ndarray:
    col = table.column(name)
    arr = col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
        col.fill_null(fill).to_numpy(zero_copy_only=False)
    return arr[rows] if arr.size else np.full(rows.size, fill)


def _confidence_breadth(n: np.ndarray, threshold: float) -> np.ndarray:
    n = np.maximum(n.astype(np.float64), threshold)
    return 1.0 - 0.1 * (threshold / n) ** 2


def _verdicts(probes: Probes, prof: dict[str, np.ndarray], trw: ThresholdRandomWalk,
              fan: FanOut, slow: SlowScan, config: ScanConfig, benign: BenignList | None,
              n_addresses: tuple[np.ndarray, np.ndarray] | None, *, prefix64: bool,
              only_campaign: bool) -> pa.Table | None:
    skey = prof["skey"]
    if not skey.size:
        return None
    t_res, f_res, s_res = trw.result(), fan.result(), slow.result()
    t_pos, t_ok = _align(skey, t_res)
    f_pos, f_ok = _align(skey, f_res)
    s_pos, s_ok = _align(skey, s_res)
    big = np.iinfo(np.int64).max
    trw_hit = t_ok & (_num(t_res, "decision", t_pos, "pending").astype(str) == "scanner")
    fan_hit = f_ok & _num(f_res, "flagged", f_pos, False).astype(bool)
    slow_hit = s_ok & _num(s_res, "flagged", s_pos, False).astype(bool) & ~fan_hit
    hit = trw_hit | fan_hit | slow_hit
    if only_campaign:
        hit = np.ones(skey.size, np.bool_)
    addresses = np.ones(skey.size, np.int64)
    if prefix64 and n_addresses is not None:
        pos = np.searchsorted(n_addresses[0], skey)
        pos[pos >= n_addresses[0].size] = 0
        addresses = np.where(n_addresses[0][pos] == skey, n_addresses[1][pos], 1)
        hit &= addresses >= 2  # a /64 with one address is that address's own verdict
    sel = np.flatnonzero(hit)
    if not sel.size:
        return None
    t_at = np.where(trw_hit, _num(t_res, "flagged_ts", t_pos, -1), big)[sel]
    f_at = np.where(fan_hit, _num(f_res, "flagged_ts", f_pos, -1), big)[sel]
    s_at = np.where(slow_hit, _num(s_res, "flagged_ts", s_pos, -1), big)[sel]
    flagged_at = np.minimum(np.minimum(t_at, f_at), s_at)
    has_at = flagged_at < big
    flagged_probes = np.where(has_at, probes_until(probes, sel, np.where(has_at, flagged_at, 0)),
                              -1)
    g = lambda name: prof[name][sel]  # noqa: E731
    tool, tool_share = tool_of(prof["marks"][sel], g("probes"), g("ttls"))
    kind = scan_shape(g("hosts"), g("port_keys"), g("pairs"))
    typ = scan_type(prof["classes"][sel], protocols=g("protocols"),
                    established=g("established"), syn_sports=g("syn_sports"),
                    syn_big_window=g("syn_big_window"), tool=tool,
                    syn_ephemeral=g("syn_ephemeral"))
    classes = prof["classes"][sel][:, list(PROBE_CLASSES)]
    dominant_share = classes.max(axis=1) / np.maximum(classes.sum(axis=1), 1)
    llr = _num(t_res, "llr", t_pos)[sel]
    fan_threshold = float(config.fanout.get("threshold", 25))
    slow_threshold = float(config.slow_scan.get("threshold", 25))
    conf = np.zeros(sel.size)
    conf = np.where(trw_hit[sel], np.maximum(conf, 1 / (1 + np.exp(-llr))), conf)
    conf = np.where(fan_hit[sel], np.maximum(conf, _confidence_breadth(g("pairs"), fan_threshold)),
                    conf)
    conf = np.where(slow_hit[sel],
                    np.maximum(conf, _confidence_breadth(g("pairs"), slow_threshold)), conf)
    detectors = [
        ",".join(name for name, on in (("trw", a), ("fanout", b), ("slow_scan", c)) if on)
        or "campaign"
        for a, b, c in zip(trw_hit[sel], fan_hit[sel], slow_hit[sel], strict=True)
    ]
    conf = np.where(conf == 0, 0.8, conf)
    key_hi, key_lo = prof["key_hi"][sel], prof["key_lo"][sel]
    status, benign_name = _status(key_hi, key_lo, benign, prefix64)
    offsets, values = _port_csr(probes, sel)
    return pa.table({
        "src_hi": key_hi, "src_lo": key_lo,
        "prefix": np.full(sel.size, 64 if prefix64 else 128, np.uint8),
        "source": _source_texts(key_hi, key_lo, prefix64),
        "status": status,
        "first_seen": g("first_ts"), "last_seen": g("last_ts"),
        "probes": g("probes"), "packets": g("packets"), "ports": g("ports"),
        "port_keys": g("port_keys"), "targets": g("hosts"), "pairs": g("pairs"),
        "protocols": g("protocols"), "sensors": g("sensors"), "addresses": addresses[sel],
        "port_list": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                              pa.array(values, pa.int32())),
        "kind": np.array(SHAPES)[kind], "type": np.array(TYPES)[typ],
        "tool": np.array(TOOLS)[tool], "tool_share": tool_share,
        "detector": detectors, "confidence": conf,
        "answered": g("answered"), "established": g("established"), "rejected": g("rejected"),
        "flagged_at": pa.array(np.where(has_at, flagged_at, 0), mask=~has_at),
        "flagged_probes": pa.array(flagged_probes, mask=~has_at),
        "psad_level": psad_danger_level(g("packets")).astype(np.uint8),
        "benign_name": benign_name,
        "trw_llr": pa.array(llr, mask=~t_ok[sel]),
        "trw_failures": pa.array(_num(t_res, "failures", t_pos)[sel], mask=~t_ok[sel]),
        "trw_successes": pa.array(_num(t_res, "successes", t_pos)[sel], mask=~t_ok[sel]),
        "trw_contacts": pa.array(_num(t_res, "contacts", t_pos)[sel], mask=~t_ok[sel]),
        "trw_flagged_after": pa.array(_num(t_res, "flagged_after", t_pos)[sel],
                                      mask=~trw_hit[sel]),
        "fanout_rule": pa.array(_num(f_res, "rule", f_pos, "").astype(str)[sel],
                                mask=~fan_hit[sel]),
        "fanout_pairs": pa.array(_num(f_res, "pairs", f_pos)[sel], mask=~f_ok[sel]),
        "fanout_ports": pa.array(_num(f_res, "ports", f_pos)[sel], mask=~f_ok[sel]),
        "fanout_episodes": pa.array(_num(f_res, "episodes", f_pos)[sel], mask=~f_ok[sel]),
        "slow_peak": pa.array(_num(s_res, "peak", s_pos)[sel], mask=~s_ok[sel]),
        "backscatter_replies": pa.nulls(sel.size, pa.int64()),
        "syn_share": dominant_share,
        "dominant": np.array(CLASS_NAMES)[np.array(PROBE_CLASSES)[classes.argmax(axis=1)]],
    })


def _status(key_hi: np.ndarray, key_lo: np.ndarray, benign: BenignList | None,
            prefix64: bool) -> tuple[np.ndarray, list[str | None]]:
    special = special_source(key_hi, key_lo) if not prefix64 else np.zeros(key_hi.size, int)
    status = np.array(SPECIAL_STATUS, dtype=object)[special]
    names: list[str | None] = [None] * key_hi.size
    if benign is not None and len(benign):
        listed = benign.names(key_hi, key_lo)
        for i, name in enumerate(listed):  # over flagged sources only
            if name and special[i] == 0:
                status[i] = "benign"
                names[i] = name
    return status.astype(str), names


def _source_texts(key_hi: np.ndarray, key_lo: np.ndarray, prefix64: bool) -> list[str]:
    if prefix64:
        return [key_to_text(int(h), 0) + "/64" for h in key_hi]
    return [key_to_text(int(h), int(lo)) for h, lo in zip(key_hi, key_lo, strict=True)]


def _port_csr(probes: Probes, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ordered, starts = probes.grouped()
    ported = np.isin(ordered.proto, (6, 17, 132, 136)) & (ordered.port >= 0)
    counts = _port_counts(starts, ordered.port, ported, groups)
    offsets = np.zeros(groups.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    values = np.empty(int(offsets[-1]), np.int32)
    _port_fill(starts, ordered.port, ported, groups, offsets, values)
    return offsets, values


@numba.njit(cache=True, nogil=True)
def _port_counts(starts, port, ported, groups):  # pragma: no cover - jit
    out = np.zeros(groups.shape[0], np.int64)
    for q in range(groups.shape[0]):
        g = groups[q]
        vals = port[starts[g]:starts[g + 1]][ported[starts[g]:starts[g + 1]]]
        if vals.shape[0]:
            v = np.sort(vals)
            c = 1
            for i in range(1, v.shape[0]):
                if v[i] != v[i - 1]:
                    c += 1
            out[q] = c
    return out


@numba.njit(cache=True, nogil=True)
def _port_fill(starts, port, ported, groups, offsets, values):  # pragma: no cover - jit
    for q in range(groups.shape[0]):
        g = groups[q]
        vals = port[starts[g]:starts[g + 1]][ported[starts[g]:starts[g + 1]]]
        if vals.shape[0]:
            v = np.sort(vals)
            k = offsets[q]
            values[k] = v[0]
            k += 1
            for i in range(1, v.shape[0]):
                if v[i] != v[i - 1]:
                    values[k] = v[i]
                    k += 1


def _backscatter_rows(back: Backscatter, frame: Probes, prof: dict[str, np.ndarray],
                      config: ScanConfig) -> pa.Table | None:
    res = back.result()
    label = res.column("backscatter").to_numpy(zero_copy_only=False)
    if not label.any():
        return None
    # sources whose probes were flagged keep their scanner verdict (with this evidence)
    bprof = profile(frame)
    skey = res.column("skey").to_numpy()
    pos = np.searchsorted(bprof["skey"], skey)
    pos[pos >= bprof["skey"].size] = 0
    sel = np.flatnonzero(label)
    rows = pos[sel]
    g = lambda name: bprof[name][rows]  # noqa: E731
    replies = res.column("replies").to_numpy()[sel]
    classes = bprof["classes"][rows][:, list(REPLY_CLASSES)]
    dominant = np.array(CLASS_NAMES)[np.array(REPLY_CLASSES)[classes.argmax(axis=1)]]
    key_hi, key_lo = g("key_hi"), g("key_lo")
    n = sel.size
    offsets, values = _port_csr(frame, rows)
    return pa.table({
        "src_hi": key_hi, "src_lo": key_lo, "prefix": np.full(n, 128, np.uint8),
        "source": _source_texts(key_hi, key_lo, False),
        "status": np.full(n, "backscatter"),
        "first_seen": g("first_ts"), "last_seen": g("last_ts"),
        "probes": g("probes"), "packets": g("packets"), "ports": g("ports"),
        "port_keys": g("port_keys"), "targets": g("hosts"), "pairs": g("pairs"),
        "protocols": g("protocols"), "sensors": g("sensors"), "addresses": np.ones(n, np.int64),
        "port_list": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                              pa.array(values, pa.int32())),
        "kind": np.array(SHAPES)[scan_shape(g("hosts"), g("port_keys"), g("pairs"))],
        "type": dominant, "tool": np.full(n, ""), "tool_share": np.zeros(n),
        "detector": np.full(n, "backscatter"),
        "confidence": replies / np.maximum(g("probes"), 1),
        "answered": g("answered"), "established": g("established"), "rejected": g("rejected"),
        "flagged_at": pa.nulls(n, pa.int64()), "flagged_probes": pa.nulls(n, pa.int64()),
        "psad_level": psad_danger_level(g("packets")).astype(np.uint8),
        "benign_name": pa.nulls(n, pa.string()),
        "trw_llr": pa.nulls(n, pa.float64()), "trw_failures": pa.nulls(n, pa.int64()),
        "trw_successes": pa.nulls(n, pa.int64()), "trw_contacts": pa.nulls(n, pa.int64()),
        "trw_flagged_after": pa.nulls(n, pa.int64()), "fanout_rule": pa.nulls(n, pa.string()),
        "fanout_pairs": pa.nulls(n, pa.int64()), "fanout_ports": pa.nulls(n, pa.int64()),
        "fanout_episodes": pa.nulls(n, pa.int64()), "slow_peak": pa.nulls(n, pa.int64()),
        "backscatter_replies": replies,
        "syn_share": replies / np.maximum(g("probes"), 1), "dominant": dominant,
    })


def _profile_table(prof: dict[str, np.ndarray], trw: ThresholdRandomWalk, fan: FanOut,
                   slow: SlowScan) -> pa.Table:
    tool, _ = tool_of(prof["marks"], prof["probes"], prof["ttls"])
    kind = scan_shape(prof["hosts"], prof["port_keys"], prof["pairs"])
    typ = scan_type(prof["classes"], protocols=prof["protocols"],
                    established=prof["established"], syn_sports=prof["syn_sports"],
                    syn_big_window=prof["syn_big_window"], tool=tool,
                    syn_ephemeral=prof["syn_ephemeral"])
    skey = prof["skey"]
    t_res, f_res, s_res = trw.result(), fan.result(), slow.result()
    t_pos, t_ok = _align(skey, t_res)
    f_pos, f_ok = _align(skey, f_res)
    s_pos, s_ok = _align(skey, s_res)
    flagged = (t_ok & (_num(t_res, "decision", t_pos, "pending").astype(str) == "scanner")) | \
        (f_ok & _num(f_res, "flagged", f_pos, False).astype(bool)) | \
        (s_ok & _num(s_res, "flagged", s_pos, False).astype(bool))
    return pa.table({
        "src_hi": prof["key_hi"], "src_lo": prof["key_lo"],
        "first_seen": prof["first_ts"], "last_seen": prof["last_ts"],
        "probes": prof["probes"], "port_keys": prof["port_keys"], "targets": prof["hosts"],
        "kind": kind.astype(np.uint8), "type": typ.astype(np.uint8), "tool": tool.astype(np.uint8),
        "port_sig": prof["port_sig"], "target_sig": prof["target_sig"], "flagged": flagged,
    })


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table | None) -> int:
    if rows is None or not rows.num_rows:
        return 0
    con.register("_rows", rows)
    try:
        cols = [c for c in rows.column_names]
        exprs = [f"make_timestamp({c})" if c in ("first_seen", "last_seen", "flagged_at")
                 else c for c in cols]
        con.execute(f"INSERT INTO {table} ({', '.join(cols)}) "
                    f"SELECT {', '.join(exprs)} FROM _rows")
    finally:
        con.unregister("_rows")
    return rows.num_rows


def _insert_scanners(con: duckdb.DuckDBPyConnection, rows: pa.Table | None,
                     config: ScanConfig) -> int:
    if rows is None or not rows.num_rows:
        return 0
    fan_t = int(config.fanout.get("threshold", 25))
    port_t = int(config.fanout.get("port_threshold", 15))
    slow_t = int(config.slow_scan.get("threshold", 25))
    slow_w = float(config.slow_scan.get("window", 86400)) / 3600
    idle = float(config.fanout.get("idle_timeout", 900)) / 60
    evidence = f"""concat_ws('; ',
        CASE WHEN detector LIKE '%trw%' THEN printf(
            'TRW: %d failed and %d successful first contacts of %d, log-likelihood ratio %.2f',
            trw_failures, trw_successes, trw_contacts, trw_llr) END,
        CASE WHEN detector LIKE '%fanout%' THEN CASE fanout_rule
            WHEN 'ports' THEN printf('fan-out: %d distinct ports in one burst (> {port_t})',
                                     fanout_ports)
            WHEN 'dark' THEN printf('fan-out: %d distinct host:port pairs with dark hosts hit',
                                    fanout_pairs)
            ELSE printf('fan-out: %d distinct host:port pairs without {idle:g} quiet minutes'
                        || ' (>= {fan_t})', fanout_pairs) END END,
        CASE WHEN detector LIKE '%slow_scan%' THEN printf(
            'slow scan: %d distinct host:port pairs within {slow_w:g} h (>= {slow_t})',
            slow_peak) END,
        CASE WHEN status = 'backscatter' THEN printf(
            'backscatter: %d unsolicited replies (%s) out of %d packets', backscatter_replies,
            dominant, probes) END,
        CASE WHEN detector = 'campaign' THEN 'member of a campaign' END,
        printf('%d probes, %.0f%% %s', probes, 100 * syn_share, dominant),
        CASE WHEN tool <> '' THEN printf('%s fingerprint on %.0f%% of probes', tool,
                                         100 * tool_share) END,
        CASE WHEN answered > 0 THEN printf('%d probes answered', answered) END,
        CASE WHEN status = 'loopback' THEN 'loopback source: the host itself or spoofed, '
                                           || 'never block' END,
        CASE WHEN status = 'unspecified' THEN 'unspecified source address: spoofed, '
                                              || 'never block' END,
        CASE WHEN status = 'benign' THEN 'listed benign: ' || benign_name END)"""
    con.register("_rows", rows)
    try:
        cols = [c for c in rows.column_names if c != "dominant"]
        exprs = [f"make_timestamp({c})" if c in ("first_seen", "last_seen", "flagged_at")
                 else c for c in cols]
        con.execute(f"""INSERT INTO scanners ({', '.join(cols)}, evidence)
                        SELECT {', '.join(exprs)}, {evidence} FROM _rows""")
    finally:
        con.unregister("_rows")
    return rows.num_rows


def _campaigns(store: Store, config: ScanConfig, dark: CidrSet | None,
               benign: BenignList | None) -> int:
    """Regroup campaigns; give campaign-only members a verdict; fill texts."""
    con = store.con
    con.execute("DELETE FROM scanners WHERE detector = 'campaign'")
    n = Campaigns(**config.campaigns).run(con)
    con.execute("UPDATE scanners SET campaign_id = NULL WHERE campaign_id IS NOT NULL")
    if not n:
        return 0
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _lonely AS
           SELECT m.src_hi, m.src_lo FROM campaign_members m
           WHERE NOT EXISTS (SELECT 1 FROM scanners s WHERE s.src_hi = m.src_hi
                             AND s.src_lo = m.src_lo AND s.prefix = 128)""")
    if _count(con, "SELECT count(*) FROM _lonely"):
        table, load = event_table(con)
        lonely = "(e.src_hi, e.src_lo) IN (SELECT src_hi, src_lo FROM _lonely)"
        cols = con.sql(f"SELECT {load} FROM {table} e WHERE {lonely}").fetchnumpy()
        replies = reply_rowids(con, lonely, config.reply_window, table=table)
        rows, _, _, _ = _analyse(cols, replies, config, dark, benign, prefix64=False,
                                 only_campaign=True)
        if rows is not None:
            rows = rows.filter(pc.equal(rows.column("detector"), "campaign"))
            _insert_scanners(con, rows, config)
    con.execute("DROP TABLE IF EXISTS _lonely")
    con.execute(
        """UPDATE scanners s SET campaign_id = m.campaign_id FROM campaign_members m
           WHERE s.src_hi = m.src_hi AND s.src_lo = m.src_lo AND s.prefix = 128""")
    # texts: an example member, the shared network, and the evidence in words
    rows = con.execute(
        """SELECT c.campaign_id, c.rule, min(m.src_hi), min(m.src_lo)
           FROM campaigns c JOIN campaign_members m USING (campaign_id) GROUP BY ALL"""
    ).fetchall()
    updates = []
    for cid, rule, hi, lo in rows:  # one per campaign
        example = key_to_text(int(hi), int(lo))
        network = None
        if rule == "network":
            network = (key_to_text(0, (int(lo) >> 8) << 8) + "/24" if hi == 0
                       else key_to_text((int(hi) >> 16) << 16, 0) + "/48")
        updates.append((example, network, cid))
    con.executemany("UPDATE campaigns SET example = ?, network = ? WHERE campaign_id = ?",
                    updates)
    con.execute(
        """UPDATE campaigns SET evidence = CASE rule
             WHEN 'network' THEN printf('%d sources of %s probed the same %d port keys on the '
                                        || 'same day', members, network, port_keys)
             WHEN 'port-set' THEN printf('%d flagged sources probed the same %d port keys%s, '
                                         || 'active within a day of each other', members,
                                         port_keys, CASE WHEN tool <> '' THEN ' with ' || tool
                                         ELSE '' END)
             ELSE printf('%d flagged sources probed the same %d targets, active within a day '
                         || 'of each other', members, targets) END""")
    return n

