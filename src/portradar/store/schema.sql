-- portradar store, schema version 1.  Applied idempotently on every open.
-- Address columns are pairs of UBIGINT (see docs/event-schema.md for why).

CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

-- Names behind the small integer ids of event_rows (kind: sensor, rule, iface).
-- Storing ids instead of strings halves the cost of inserting events (measured).
CREATE TABLE IF NOT EXISTS names (
    kind VARCHAR NOT NULL,
    id   INTEGER NOT NULL,
    text VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS outcomes (
    code  UTINYINT NOT NULL,
    label VARCHAR NOT NULL
);

-- Raw probe events, one row per log line / packet / flow record.  Read them through the
-- view `events`, which has the event schema's column names and values.
CREATE TABLE IF NOT EXISTS event_rows (
    ts           TIMESTAMP NOT NULL,   -- UTC (TIMESTAMPTZ arithmetic is several times slower)
    sensor_id    INTEGER NOT NULL,
    src_hi       UBIGINT NOT NULL,
    src_lo       UBIGINT NOT NULL,
    dst_hi       UBIGINT NOT NULL,
    dst_lo       UBIGINT NOT NULL,
    proto        UTINYINT NOT NULL,
    sport        USMALLINT,
    dport        USMALLINT,
    tcp_flags    UTINYINT,
    icmp_type    UTINYINT,
    icmp_code    UTINYINT,
    outcome      UTINYINT NOT NULL,   -- portradar.events.schema.Outcome
    rule_id      INTEGER,
    in_iface_id  INTEGER,
    out_iface_id INTEGER,
    packets      UINTEGER NOT NULL,
    bytes        UBIGINT,
    ttl          UTINYINT,
    ip_id        USMALLINT,
    tcp_window   USMALLINT,
    tcp_seq      UINTEGER,
    input_id     INTEGER NOT NULL
);

-- The ingest ledger: one row per input lineage (a log and everything it grew into),
-- recognised by the hash of its first bytes, with how far it has been read.
CREATE SEQUENCE IF NOT EXISTS input_ids START 1;
CREATE TABLE IF NOT EXISTS inputs (
    input_id     INTEGER PRIMARY KEY,
    head_len     INTEGER NOT NULL,
    head_sha     VARCHAR NOT NULL,
    first_name   VARCHAR NOT NULL,
    last_name    VARCHAR NOT NULL,
    format       VARCHAR NOT NULL,
    offset_bytes BIGINT NOT NULL,
    records      BIGINT NOT NULL,
    events       BIGINT NOT NULL,
    skipped      BIGINT NOT NULL,
    tail_sha     VARCHAR,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL
);

-- One row per ingest of one input, with what was skipped and why.
CREATE SEQUENCE IF NOT EXISTS run_ids START 1;
CREATE TABLE IF NOT EXISTS ingest_runs (
    run_id       INTEGER PRIMARY KEY,
    input_id     INTEGER,
    name         VARCHAR NOT NULL,
    format       VARCHAR,
    started      TIMESTAMPTZ NOT NULL,
    seconds      DOUBLE NOT NULL,
    records      BIGINT NOT NULL,
    events       BIGINT NOT NULL,
    skipped      BIGINT NOT NULL,
    skip_reasons VARCHAR,     -- JSON object reason -> count
    examples     VARCHAR,     -- JSON list of "file:line: reason"
    resumed_at   BIGINT,      -- record number the run started after (0: from the start)
    status       VARCHAR NOT NULL,
    message      VARCHAR
);

-- Days whose aggregates must be recomputed; written in the same
-- transaction as the events, so a crash can never leave activity stale unnoticed.
CREATE TABLE IF NOT EXISTS activity_dirty (
    day DATE NOT NULL
);

-- DShield-style per-port activity, per sensor and for all sensors together (sensor '*').
--  port: destination port for TCP, UDP, SCTP and
-- UDP-Lite; ICMP type for ICMP and ICMPv6; -1 for protocols without ports.
CREATE TABLE IF NOT EXISTS port_activity_hourly (
    bucket  TIMESTAMP NOT NULL,        -- UTC, start of the hour
    sensor  VARCHAR NOT NULL,
    proto   UTINYINT NOT NULL,
    port    INTEGER NOT NULL,
    records UBIGINT NOT NULL,
    packets UBIGINT NOT NULL,
    sources UBIGINT NOT NULL,
    targets UBIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS port_activity_daily (
    bucket  DATE NOT NULL,
    sensor  VARCHAR NOT NULL,
    proto   UTINYINT NOT NULL,
    port    INTEGER NOT NULL,
    records UBIGINT NOT NULL,
    packets UBIGINT NOT NULL,
    sources UBIGINT NOT NULL,
    targets UBIGINT NOT NULL
);

-- The events with the event schema's names and values (sensor, outcome, rule, interfaces
-- and format as text).  Hot internal queries read event_rows directly.
CREATE OR REPLACE VIEW events AS
SELECT e.ts, s.text AS sensor, e.src_hi, e.src_lo, e.dst_hi, e.dst_lo, e.proto, e.sport,
       e.dport, e.tcp_flags, e.icmp_type, e.icmp_code, o.label AS outcome, r.text AS rule,
       ii.text AS in_iface, oi.text AS out_iface, e.packets, e.bytes, e.ttl, e.ip_id,
       e.tcp_window, e.tcp_seq, i.format, e.input_id
FROM event_rows e
JOIN names s ON s.kind = 'sensor' AND s.id = e.sensor_id
JOIN outcomes o ON o.code = e.outcome
LEFT JOIN names r ON r.kind = 'rule' AND r.id = e.rule_id
LEFT JOIN names ii ON ii.kind = 'iface' AND ii.id = e.in_iface_id
LEFT JOIN names oi ON oi.kind = 'iface' AND oi.id = e.out_iface_id
LEFT JOIN inputs i ON i.input_id = e.input_id;
