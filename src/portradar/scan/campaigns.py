"""Campaigns: many sources probing alike in the same period, grouped with their members.

One botnet, one research project or one rented block scanning together shows up as
many sources, each perhaps too quiet to flag alone.  Three rules group them, from the
per-source profiles the detection keeps for every source (``scan_profiles``), in this
order (a source joins the first campaign it qualifies for):

1. **network** - at least ``min_members`` sources of the same /24 (IPv4) or /48 (IPv6),
   first seen the same day, probing exactly the same port set (protocol and port keys).
   This is the distributed scan: a block splitting the work so that each address stays
   under every per-source threshold.  Members need not be flagged on their own; those
   that were not get a verdict with detector ``campaign``.  /24 and /48 are the usual
   units of address allocation and of the smallest BGP announcements (RIPE-399 /
   common filtering practice), so one operator rarely spans less.
2. **port-set** - at least ``min_members`` *flagged* sources with the same port set and
   the same tool fingerprint whose activity chains in time (each starts within ``gap``
   of the group's latest end).  The port set must hold at least ``min_port_keys`` (3)
   port keys, a list rather than a pair: measured on the 5-million-line benchmark, sets
   of 2 (445 and 23, 22 and 2222) are so common in background radiation that they
   fused 38,000 unrelated flagged sources into 2,900 "campaigns"; single ports and
   pairs group through rule 1 only.
3. **target-set** - at least ``min_members`` flagged sources that probed exactly the
   same set of at least ``min_targets`` (10) addresses, chained in time the same way:
   a shared target list.

Defaults: ``min_members`` = 3 (two sources alike can be chance; three is the smallest
"group" that is not a pair), ``gap`` = 24 hours (the reporting day, as for slow scans),
``min_port_keys`` = 3, ``min_targets`` = 10.  Loopback, unspecified and backscatter
sources never join.

All of it is SQL over the store (:meth:`Campaigns.run`), so it sees every source,
including those of earlier runs, and is recomputed whole after each detection.
"""

from __future__ import annotations

from typing import Any

import duckdb


class Campaigns:
    """Groups sources into campaigns (rules and defaults in the module docstring)."""

    def __init__(self, min_members: int = 3, gap: float = 86400.0, min_port_keys: int = 3,
                 min_targets: int = 10) -> None:
        if min_members < 2:
            raise ValueError("a campaign needs at least 2 members")
        self.min_members = min_members
        self.gap = gap
        self.min_port_keys = min_port_keys
        self.min_targets = min_targets

    def run(self, con: duckdb.DuckDBPyConnection, verdicts: str = "scanners") -> int:
        """Recompute ``campaigns`` and ``campaign_members`` from ``scan_profiles``.

        ``verdicts`` names the relation the sources' verdicts are read from (``src_hi``,
        ``src_lo``, ``prefix``, ``status`` and ``tool``): ``scanners``, or the tags the
        detection passes while another connection rewrites ``scanners``.  Returns the
        number of campaigns.  Runs inside the caller's transaction.
        """
        gap_us = int(self.gap * 1_000_000)
        m = int(self.min_members)
        # sources that may join: not loopback, unspecified or backscatter (few rows)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _excluded AS
               SELECT src_hi, src_lo FROM {verdicts}
               WHERE prefix = 128 AND status IN ('loopback', 'unspecified', 'backscatter')"""
        )
        # rule 1: same /24 or /48, same day, same port set (``net_group``, hashed when the
        # profile was written); grouped first, then the members of big enough groups
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _camp AS
                SELECT p.src_hi, p.src_lo, 1 AS rule_no, p.net_group AS grp
                FROM scan_profiles p
                SEMI JOIN (SELECT net_group FROM scan_profiles GROUP BY net_group
                           HAVING count(*) >= {m}) g USING (net_group)
                ANTI JOIN _excluded x USING (src_hi, src_lo)"""
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _cand AS
               SELECT p.src_hi, p.src_lo, p.first_seen, p.last_seen, p.port_keys, p.targets,
                      s.tool, p.port_sig, p.target_sig
               FROM scan_profiles p JOIN {verdicts} s USING (src_hi, src_lo)
               WHERE p.flagged AND s.prefix = 128 AND s.status IN ('scanner', 'benign')"""
        )
        # rules 2 and 3: flagged sources chained in time on a shared signature
        for rule_no, sig, extra in (
            (2, "hash(port_sig, tool)", f"port_keys >= {int(self.min_port_keys)}"),
            (3, "target_sig", f"targets >= {int(self.min_targets)}"),
        ):
            con.execute(
                f"""INSERT INTO _camp
                    WITH _base AS MATERIALIZED (
                        SELECT c.*, {sig} AS sig
                        FROM _cand c ANTI JOIN _camp x USING (src_hi, src_lo)
                        WHERE {extra})
                    SELECT src_hi, src_lo, rule_no, grp FROM (
                    SELECT src_hi, src_lo, {rule_no} AS rule_no,
                           hash(sig, sum(new_group) OVER (PARTITION BY sig
                                ORDER BY first_seen, src_hi, src_lo
                                ROWS UNBOUNDED PRECEDING)) AS grp
                    FROM (
                        SELECT c.*,
                               CASE WHEN epoch_us(first_seen) > max(epoch_us(last_seen))
                                    OVER (PARTITION BY sig ORDER BY first_seen, src_hi, src_lo
                                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                                    + {gap_us} THEN 1 ELSE 0 END AS new_group
                        -- a signature fewer than m sources share forms no group: the
                        -- windows sort only the others
                        FROM _base c SEMI JOIN (SELECT sig FROM _base GROUP BY sig
                                                HAVING count(*) >= {m}) USING (sig)))
                    QUALIFY count(*) OVER (PARTITION BY grp) >= {m}"""
            )
        con.execute("DELETE FROM campaign_members")
        con.execute("DELETE FROM campaigns")
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _camp_ids AS
               SELECT rule_no, grp, row_number() OVER (ORDER BY min(p.first_seen), rule_no, grp)
                      AS campaign_id
               FROM _camp c JOIN scan_profiles p USING (src_hi, src_lo)
               GROUP BY rule_no, grp"""
        )
        con.execute(
            """INSERT INTO campaign_members
               SELECT i.campaign_id, c.src_hi, c.src_lo
               FROM _camp c JOIN _camp_ids i USING (rule_no, grp)"""
        )
        rules = ("(CASE i.rule_no WHEN 1 THEN 'network' WHEN 2 THEN 'port-set' "
                 "ELSE 'target-set' END)")
        con.execute(
            f"""INSERT INTO campaigns
                SELECT i.campaign_id, {rules}, count(*), min(p.first_seen), max(p.last_seen),
                       sum(p.probes), max(p.port_keys), max(p.targets),
                       '', '', '',
                       NULL,
                       '', ''
                FROM _camp c JOIN _camp_ids i USING (rule_no, grp)
                JOIN scan_profiles p USING (src_hi, src_lo)
                GROUP BY i.campaign_id, i.rule_no"""
        )
        n = _first(con.execute("SELECT count(*) FROM campaigns"))
        for table in ("_cand", "_camp", "_camp_ids", "_excluded"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        return int(n[0]) if n else 0

    def describe(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fill each campaign's commonest tool, shape and type (from its members'
        verdicts, once every member has one) and its evidence in words.

        A tie goes to the smallest value (DuckDB's ``mode`` breaks ties by row order,
        which made the answer depend on the order verdicts were stored in)."""
        commonest = " ".join(
            f"""JOIN (SELECT campaign_id, first({c} ORDER BY n DESC, {c}) AS {c}
                      FROM (SELECT campaign_id, {c}, count(*) AS n FROM _members GROUP BY ALL)
                      GROUP BY campaign_id) USING (campaign_id)"""
            for c in ("tool", "kind", "type"))
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _members AS
               SELECT m.campaign_id, s.tool, s.kind, s.type
               FROM campaign_members m JOIN scanners s
                 ON s.src_hi = m.src_hi AND s.src_lo = m.src_lo AND s.prefix = 128"""
        )
        con.execute(
            f"""UPDATE campaigns SET tool = x.tool, kind = x.kind, type = x.type
                FROM (SELECT * FROM (SELECT DISTINCT campaign_id FROM _members) ids
                      {commonest}) AS x
                WHERE campaigns.campaign_id = x.campaign_id"""
        )
        con.execute("DROP TABLE _members")
        con.execute(
            """UPDATE campaigns SET evidence = CASE rule
                 WHEN 'network' THEN printf('%d sources of %s probed the same %d port keys on '
                                            || 'the same day', members, network, port_keys)
                 WHEN 'port-set' THEN printf('%d flagged sources probed the same %d port keys%s, '
                                             || 'active within a day of each other', members,
                                             port_keys, CASE WHEN tool <> '' THEN ' with ' || tool
                                             ELSE '' END)
                 ELSE printf('%d flagged sources probed the same %d targets, active within a '
                             || 'day of each other', members, targets) END"""
        )


def _first(cursor: Any) -> Any:
    """The first row of a result, fetching all of it (DuckDB 2 keeps an unfinished
    result open and refuses the next query)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None
