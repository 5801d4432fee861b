-- portradar scan detection tables (portradar.scan.detect).  Applied idempotently.
-- Sources are address pairs (see docs/event-schema.md); prefix is 128 for one address
-- (IPv4 included, as IPv4-mapped) and 64 for an IPv6 /64 aggregate (lo zeroed).

-- One row per flagged source (and per backscatter source): the verdict and its evidence.
CREATE TABLE IF NOT EXISTS scanners (
    src_hi          UBIGINT NOT NULL,
    src_lo          UBIGINT NOT NULL,
    prefix          UTINYINT NOT NULL,
    source          VARCHAR NOT NULL,   -- text: address, or prefix/64
    status          VARCHAR NOT NULL,   -- scanner | benign | backscatter | loopback | unspecified
    first_seen      TIMESTAMP NOT NULL,
    last_seen       TIMESTAMP NOT NULL,
    probes          BIGINT NOT NULL,    -- probe events (replies and housekeeping excluded)
    packets         BIGINT NOT NULL,
    ports           INTEGER NOT NULL,   -- distinct TCP/UDP/SCTP destination ports
    port_keys       INTEGER NOT NULL,   -- distinct ports, ICMP types and IP protocols
    targets         INTEGER NOT NULL,   -- distinct destination addresses
    pairs           INTEGER NOT NULL,   -- distinct (destination, port key)
    protocols       INTEGER NOT NULL,
    sensors         INTEGER NOT NULL,
    addresses       INTEGER NOT NULL,   -- distinct source addresses (1, or more for a /64)
    port_list       INTEGER[],          -- the distinct ports, ascending
    kind            VARCHAR NOT NULL,   -- single | vertical | horizontal | block | random
    type            VARCHAR NOT NULL,   -- syn | connect | fin | null | xmas | ack | udp | ...
    tool            VARCHAR NOT NULL,   -- masscan | zmap | nmap | mirai | hping3 | ''
    tool_share      DOUBLE NOT NULL,
    detector        VARCHAR NOT NULL,   -- detectors that fired, comma separated
    confidence      DOUBLE NOT NULL,
    answered        BIGINT NOT NULL,    -- probes answered (accepted / established)
    established     BIGINT NOT NULL,
    rejected        BIGINT NOT NULL,
    flagged_at      TIMESTAMP,          -- first time a detector fired
    flagged_probes  BIGINT,             -- probes sent up to then
    psad_level      UTINYINT NOT NULL,  -- psad danger level of the probe count (0-5)
    benign_name     VARCHAR,
    campaign_id     INTEGER,
    -- evidence, per detector (NULL where it did not apply)
    trw_llr         DOUBLE,
    trw_failures    BIGINT,
    trw_successes   BIGINT,
    trw_contacts    BIGINT,
    trw_flagged_after BIGINT,
    fanout_rule     VARCHAR,
    fanout_pairs    BIGINT,             -- most distinct (host, port) in one episode (capped)
    fanout_ports    BIGINT,
    fanout_episodes BIGINT,
    slow_peak       BIGINT,             -- most distinct pairs within the slow window (capped)
    backscatter_replies BIGINT,
    syn_share       DOUBLE,             -- share of probes of the dominant class
    evidence        VARCHAR NOT NULL    -- the above, in words
);

-- Per-source summary of every source seen (flagged or not): campaigns group these.
CREATE TABLE IF NOT EXISTS scan_profiles (
    src_hi     UBIGINT NOT NULL,
    src_lo     UBIGINT NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen  TIMESTAMP NOT NULL,
    probes     BIGINT NOT NULL,
    port_keys  INTEGER NOT NULL,
    targets    INTEGER NOT NULL,
    port_sig   UBIGINT NOT NULL,
    target_sig UBIGINT NOT NULL,
    net_group  UBIGINT NOT NULL,       -- hash of (/24 or /48, port set, first day)
    flagged    BOOLEAN NOT NULL
);

-- Groups of sources probing alike in the same period (portradar.scan.campaigns).
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id INTEGER NOT NULL,
    rule        VARCHAR NOT NULL,      -- network | port-set | target-set
    members     INTEGER NOT NULL,
    first_seen  TIMESTAMP NOT NULL,
    last_seen   TIMESTAMP NOT NULL,
    probes      BIGINT NOT NULL,
    port_keys   INTEGER NOT NULL,
    targets     INTEGER NOT NULL,
    tool        VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    type        VARCHAR NOT NULL,
    network     VARCHAR,               -- the shared /24 or /48 (rule network)
    example     VARCHAR NOT NULL,      -- one member, to look up
    evidence    VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS campaign_members (
    campaign_id INTEGER NOT NULL,
    src_hi      UBIGINT NOT NULL,
    src_lo      UBIGINT NOT NULL
);
