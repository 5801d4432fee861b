-- portradar store, schema version 1.  Applied idempotently on every open.
-- Address columns are pairs of UBIGINT (see docs/event-schema.md for why).

CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

-- Raw probe events, one row per log line / packet / flow record.
CREATE TABLE IF NOT EXISTS events (
    ts         TIMESTAMP NOT NULL,    -- UTC (TIMESTAMPTZ arithmetic is several times slower)
    sensor     VARCHAR NOT NULL,
    src_hi     UBIGINT NOT NULL,
    src_lo     UBIGINT NOT NULL,
    dst_hi     UBIGINT NOT NULL,
    dst_lo     UBIGINT NOT NULL,
    proto      UTINYINT NOT NULL,
    sport      USMALLINT,
    dport      USMALLINT,
    tcp_flags  UTINYINT,
    icmp_type  UTINYINT,
    icmp_code  UTINYINT,
    outcome    VARCHAR NOT NULL,
    rule       VARCHAR,
    in_iface   VARCHAR,
    out_iface  VARCHAR,
    packets    UINTEGER NOT NULL,
    bytes      UBIGINT,
    ttl        UTINYINT,
    ip_id      USMALLINT,
    tcp_window USMALLINT,
    tcp_seq    UINTEGER,
    format     VARCHAR NOT NULL,
    input_id   INTEGER NOT NULL
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

-- Days (per sensor) whose aggregates must be recomputed; written in the same
-- transaction as the events, so a crash can never leave activity stale unnoticed.
CREATE TABLE IF NOT EXISTS activity_dirty (
    day    DATE NOT NULL,
    sensor VARCHAR NOT NULL
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
