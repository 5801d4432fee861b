"""Reader of Suricata's ``eve.json``: flow records, alerts and IPS drops as probe events.

``eve.json`` holds one JSON object per line with an ``event_type``.  Three kinds carry a
probe:

* ``flow`` (one per flow, written when it ends or times out) → one event.  Time is
  ``flow.start`` (when the probe began; ``timestamp`` if absent), packets and bytes are
  ``flow.pkts_toserver`` / ``flow.bytes_toserver``, ``tcp_flags`` is the union of the
  flags the client sent (``tcp.tcp_flags_ts``, hexadecimal).  Outcome, first match wins:

  1. no packet to the client (``flow.pkts_toclient`` 0: states ``new``, or ``closed``
     with reason ``timeout``) → unanswered;
  2. TCP, the server's flags (``tcp.tcp_flags_tc``) have RST but no SYN → rejected
     (the port is closed: RST to the SYN);
  3. TCP, the server sent SYN-ACK and the client ACKed → established; SYN-ACK but the
     client never ACKed (a half-open ``nmap -sS`` probe of an open port) → accepted;
  4. other protocols with replies, or state ``established``/``closed`` without TCP flag
     detail → established;
  5. otherwise unknown.
* ``alert`` → one event with ``rule`` ``sid:<signature_id> <signature>`` (the evidence of
  an exploitation attempt, kept whole); outcome unknown, or blocked when
  ``alert.action`` is ``blocked`` (Suricata in IPS mode dropped it); packets 1.
* ``drop`` (IPS mode) → one blocked event with the dropped packet's TTL, IP id, length,
  TCP window, sequence number and flags from the ``drop`` object.

Every other event type (``http``, ``dns``, ``tls``, ``stats``, ``anomaly``, ``netflow``,
...) is well formed but no probe: it is counted under ``event_type X not a probe``,
never an error even with ``--strict``.

Common fields: ``src_ip``/``src_port`` → source, ``dest_ip``/``dest_port`` → destination,
``proto`` (name or number) → ``proto``, ``icmp_type``/``icmp_code``, ``in_iface``; the
sensor is ``--sensor``, else the event's ``host`` (Suricata's ``sensor-name``), else
``suricata``.

>>> line = (b'{"timestamp":"2022-07-11T05:52:18.378379+0000","event_type":"flow",'
...         b'"src_ip":"1.2.3.6","src_port":56814,"dest_ip":"127.0.0.1","dest_port":2352,'
...         b'"proto":"TCP","flow":{"pkts_toserver":2,"pkts_toclient":1,'
...         b'"start":"2022-07-11T05:48:21.714860+0000","state":"closed"},'
...         b'"tcp":{"tcp_flags_ts":"06","tcp_flags_tc":"14"}}\\n')
>>> row = SuricataEveReader().parse_bytes(line).to_pylist()[0]
>>> row["ts"].isoformat(), row["dport"], row["outcome"], row["packets"], row["tcp_flags"]
('2022-07-11T05:48:21.714860+00:00', 2352, 'rejected', 2, 6)
>>> SuricataEveReader.sniff(line)
1.0
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.events.schema import PROTO_NUMBERS, TCP_FLAG_BITS, Outcome, make_batch
from portradar.ingest import fields as f
from portradar.ingest import json_lines as jl
from portradar.ingest.lines import LineReader, head_lines
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_time import YearState, reference_time, resolve, zone

PATHS = {
    "timestamp": jl.json_path("timestamp"),
    "event_type": jl.json_path("event_type"),
    "src_ip": jl.json_path("src_ip"),
    "src_port": jl.json_path("src_port"),
    "dest_ip": jl.json_path("dest_ip"),
    "dest_port": jl.json_path("dest_port"),
    "proto": jl.json_path("proto"),
    "icmp_type": jl.json_path("icmp_type"),
    "icmp_code": jl.json_path("icmp_code"),
    "in_iface": jl.json_path("in_iface"),
    "host": jl.json_path("host"),
    "flow_start": jl.json_path("flow", "start"),
    "flow_state": jl.json_path("flow", "state"),
    "pkts_toserver": jl.json_path("flow", "pkts_toserver"),
    "pkts_toclient": jl.json_path("flow", "pkts_toclient"),
    "bytes_toserver": jl.json_path("flow", "bytes_toserver"),
    "flags_ts": jl.json_path("tcp", "tcp_flags_ts"),
    "flags_tc": jl.json_path("tcp", "tcp_flags_tc"),
    "sid": jl.json_path("alert", "signature_id"),
    "signature": jl.json_path("alert", "signature"),
    "alert_action": jl.json_path("alert", "action"),
    "drop_len": jl.json_path("drop", "len"),
    "drop_ttl": jl.json_path("drop", "ttl"),
    "drop_ipid": jl.json_path("drop", "ipid"),
    "drop_win": jl.json_path("drop", "tcpwin"),
    "drop_seq": jl.json_path("drop", "tcpseq"),
    **{f"drop_{flag}": jl.json_path("drop", flag)
       for flag in ("fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr")},
}

# statuses; 0 is an event
BLANK, NOT_UTF8, NOT_JSON, NOT_OBJECT, NO_TYPE, OTHER_TYPE = 1, 2, 3, 4, 5, 6
BAD_TS, BAD_SRC, BAD_DST, BAD_PROTO, BAD_PORT, BAD_NUMBER = 7, 8, 9, 10, 11, 12
REASONS = {
    NOT_UTF8: jl.REASONS[jl.NOT_UTF8],
    NOT_JSON: jl.REASONS[jl.NOT_JSON],
    NOT_OBJECT: jl.REASONS[jl.NOT_OBJECT],
    NO_TYPE: "no event_type",
    BAD_TS: "timestamp (or flow.start) missing or not ISO 8601",
    BAD_SRC: "src_ip missing or not an IP address",
    BAD_DST: "dest_ip missing or not an IP address",
    BAD_PROTO: "proto missing or not a protocol name or number",
    BAD_PORT: "src_port or dest_port is not a port number 0-65535",
    BAD_NUMBER: "a count, flag or ICMP field is out of range",
}
_JSON_STATUS = {jl.BLANK: BLANK, jl.NOT_UTF8: NOT_UTF8, jl.NOT_JSON: NOT_JSON,
                jl.NOT_OBJECT: NOT_OBJECT}

FLOW, ALERT, DROP, OTHER = 0, 1, 2, 3
_KINDS = {"flow": FLOW, "alert": ALERT, "drop": DROP}

SYN, RST, ACK = TCP_FLAG_BITS["SYN"], TCP_FLAG_BITS["RST"], TCP_FLAG_BITS["ACK"]

_SNIFF = re.compile(rb'^\s*\{.*"event_type"\s*:\s*"[a-z_]+"')


def _proto_number(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        return value if value <= 255 else None
    return PROTO_NUMBERS.get(text.upper())


def _parse(col: pa.Array, kind: str, maxval: int = 0) -> tuple[np.ndarray, np.ndarray]:
    buf, s, e = f.string_spans(col)
    if kind == "hex":
        return f.hex_uints(buf, s, e, maxval)
    return f.uints(buf, s, e, maxval, f.NO_TOKEN)


def _is_true(col: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.equal(col, "true"), False).to_numpy(
        zero_copy_only=False), bool)


@register_reader
class SuricataEveReader(LineReader):
    """Suricata eve.json: flow records, alerts and IPS drops."""

    name: ClassVar[str] = "suricata_eve"
    unit: ClassVar[str] = "lines"

    def __init__(self) -> None:
        self._json: jl.JsonFields | None = None
        self._years = YearState()

    @classmethod
    def sniff(cls, head: bytes) -> float:
        lines = head_lines(head, 50)
        if not lines:
            return 0.0
        return sum(1 for ln in lines if _SNIFF.match(ln)) / len(lines)


    def parse_lines(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    first_line: int, options: ReadOptions, stats: ReadStats) -> pa.RecordBatch:
        if self._json is None:
            self._json = jl.JsonFields(PATHS)
        js, c = self._json.extract(buf, starts, ends)
        n = len(starts)
        status = np.zeros(n, np.int8)
        for code, ours in _JSON_STATUS.items():
            status[js == code] = ours

        types = c["event_type"].dictionary_encode()
        names = types.dictionary.to_pylist()
        kind = f.decode(types, lambda t: _KINDS.get(t, OTHER), -1, np.int64)
        status[(status == 0) & (kind < 0)] = NO_TYPE
        other = (status == 0) & (kind == OTHER)
        status[other] = OTHER_TYPE
        if other.any():
            idx = np.asarray(types.indices.to_numpy(zero_copy_only=False))[other]
            for code, count in zip(*np.unique(idx, return_counts=True), strict=True):
                f.count_quietly(stats, f"event_type {names[int(code)]} not a probe", int(count))
        is_flow = kind == FLOW

        # time: flow.start for flows, timestamp otherwise
        when = pc.if_else(pa.array(is_flow) if n else pa.array([], pa.bool_()),
                          pc.coalesce(c["flow_start"], c["timestamp"]), c["timestamp"])
        matrix, ts_st = f.iso_times(*f.string_spans(when))
        ts, bad_ts = resolve(matrix, tz=zone(options.tz or "UTC"),
                             reference=reference_time(None, options.reference_time),
                             state=self._years)
        src_hi, src_lo, src_st = f.addresses(*f.string_spans(c["src_ip"]))
        dst_hi, dst_lo, dst_st = f.addresses(*f.string_spans(c["dest_ip"]))
        proto = f.decode(c["proto"].dictionary_encode(), _proto_number, -1, np.int64)
        sport, sport_st = _parse(c["src_port"], "dec", 65535)
        dport, dport_st = _parse(c["dest_port"], "dec", 65535)
        itype, itype_st = _parse(c["icmp_type"], "dec", 255)
        icode, icode_st = _parse(c["icmp_code"], "dec", 255)
        pkts_ts, pkts_ts_st = _parse(c["pkts_toserver"], "dec", 0xFFFF_FFFF)
        pkts_tc, pkts_tc_st = _parse(c["pkts_toclient"], "dec", 1 << 62)
        nbytes, bytes_st = _parse(c["bytes_toserver"], "dec", 1 << 62)
        fl_ts, fl_ts_st = _parse(c["flags_ts"], "hex", 255)
        fl_tc, fl_tc_st = _parse(c["flags_tc"], "hex", 255)
        d_len, d_len_st = _parse(c["drop_len"], "dec", 1 << 62)
        d_ttl, d_ttl_st = _parse(c["drop_ttl"], "dec", 255)
        d_id, d_id_st = _parse(c["drop_ipid"], "dec", 65535)
        d_win, d_win_st = _parse(c["drop_win"], "dec", 65535)
        d_seq, d_seq_st = _parse(c["drop_seq"], "dec", 0xFFFF_FFFF)

        def bad(mask: np.ndarray, code: int) -> None:
            status[(status == 0) & mask] = code

        bad((ts_st != f.OK) | bad_ts, BAD_TS)
        bad(src_st != f.OK, BAD_SRC)
        bad(dst_st != f.OK, BAD_DST)
        bad(proto < 0, BAD_PROTO)
        bad((sport_st == f.BAD) | (dport_st == f.BAD), BAD_PORT)
        numbers = (itype_st, icode_st, pkts_ts_st, pkts_tc_st, bytes_st, fl_ts_st, fl_tc_st,
                   d_len_st, d_ttl_st, d_id_st, d_win_st, d_seq_st)
        bad(np.logical_or.reduce([st == f.BAD for st in numbers]), BAD_NUMBER)

        outcome = self._outcomes(kind, proto, c, pkts_tc, pkts_tc_st, fl_ts, fl_ts_st,
                                 fl_tc, fl_tc_st)
        drop_flags = np.zeros(n, np.int64)
        for flag in ("fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"):
            bit = TCP_FLAG_BITS["ECE" if flag == "ecn" else flag.upper()]
            drop_flags |= np.where(_is_true(c[f"drop_{flag}"]), bit, 0)
        is_drop = kind == DROP
        is_tcp = proto == 6
        tcp_flags = np.where(is_drop, drop_flags, fl_ts)
        flags_st = np.where(is_drop, np.where(is_tcp, f.OK, f.MISSING), fl_ts_st)
        packets = np.where(is_flow & (pkts_ts_st == f.OK), pkts_ts, 1)
        bytes_ = np.where(is_drop, d_len, nbytes)
        bytes_st = np.where(is_drop, d_len_st, np.where(is_flow, bytes_st, f.MISSING))

        f.report_skips(status, REASONS, buf, starts, ends, first_line, stats)
        keep = np.flatnonzero(status == 0)
        take = pa.array(keep, pa.int64())

        sensor: object = options.sensor
        if sensor is None:
            sensor = pc.fill_null(c["host"].take(take), "suricata")
        sid = pc.binary_join_element_wise("sid:", c["sid"], "")
        rule = pc.binary_join_element_wise(sid, pc.fill_null(c["signature"], ""), " ")
        rule = pc.if_else(pa.array(kind == ALERT) if n else pa.array([], pa.bool_()),
                          pc.utf8_trim_whitespace(rule), pa.scalar(None, pa.string()))

        def col(values: np.ndarray, st: np.ndarray, dtype: type) -> pa.Array:
            return f.nullable(values[keep], st[keep], dtype)

        columns = {
            "ts": ts[keep],
            "sensor": sensor,
            "src_hi": src_hi[keep], "src_lo": src_lo[keep],
            "dst_hi": dst_hi[keep], "dst_lo": dst_lo[keep],
            "proto": proto[keep].astype(np.uint8),
            "sport": col(sport, sport_st, np.uint16),
            "dport": col(dport, dport_st, np.uint16),
            "tcp_flags": col(tcp_flags, flags_st, np.uint8),
            "icmp_type": col(itype, itype_st, np.uint8),
            "icmp_code": col(icode, icode_st, np.uint8),
            "outcome": outcome[keep].astype(np.int32),
            "rule": rule.take(take),
            "in_iface": c["in_iface"].take(take),
            "packets": np.minimum(packets[keep], 0xFFFF_FFFF).astype(np.uint32),
            "bytes": col(bytes_, bytes_st, np.uint64),
            "ttl": col(d_ttl, np.where(is_drop, d_ttl_st, f.MISSING), np.uint8),
            "ip_id": col(d_id, np.where(is_drop, d_id_st, f.MISSING), np.uint16),
            "tcp_window": col(d_win, np.where(is_drop, d_win_st, f.MISSING), np.uint16),
            "tcp_seq": col(d_seq, np.where(is_drop, d_seq_st, f.MISSING), np.uint32),
            "format": self.name,
        }
        return make_batch(columns, n=len(keep))

    @staticmethod
    def _outcomes(kind: np.ndarray, proto: np.ndarray, c: dict[str, pa.Array],
                  pkts_tc: np.ndarray, pkts_tc_st: np.ndarray, fl_ts: np.ndarray,
                  fl_ts_st: np.ndarray, fl_tc: np.ndarray, fl_tc_st: np.ndarray) -> np.ndarray:
        """Outcome of every line (see the module doc for the rules)."""
        n = len(kind)
        state = f.decode(c["flow_state"].dictionary_encode(), lambda s: s, "", object) \
            if n else np.zeros(0, object)
        answered_state = np.isin(state, ["established", "closed"])
        tcp = proto == 6
        has_tc = fl_tc_st == f.OK
        tc_syn = has_tc & ((fl_tc & SYN) != 0)
        tc_rst = has_tc & ((fl_tc & RST) != 0)
        ts_ack = (fl_ts_st == f.OK) & ((fl_ts & ACK) != 0)
        flow = np.select(
            [(pkts_tc_st == f.OK) & (pkts_tc == 0),
             tcp & tc_rst & ~tc_syn,
             tcp & tc_syn & ts_ack,
             tcp & tc_syn,
             (pkts_tc_st == f.OK) & (pkts_tc > 0) & (~tcp | ~has_tc),
             answered_state & ~has_tc],
            [int(Outcome.UNANSWERED), int(Outcome.REJECTED), int(Outcome.ESTABLISHED),
             int(Outcome.ACCEPTED), int(Outcome.ESTABLISHED), int(Outcome.ESTABLISHED)],
            int(Outcome.UNKNOWN))
        blocked_alert = np.asarray(pc.fill_null(pc.equal(c["alert_action"], "blocked"), False)
                                   .to_numpy(zero_copy_only=False), bool)
        alert = np.where(blocked_alert, int(Outcome.BLOCKED), int(Outcome.UNKNOWN))
        return np.select([kind == FLOW, kind == ALERT, kind == DROP],
                         [flow, alert, np.full(n, int(Outcome.BLOCKED))], int(Outcome.UNKNOWN))
