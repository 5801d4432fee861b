"""The vulnerability knowledge base: what is known about each CVE, from where, and on which ports.

Kept in the store (DuckDB) beside the events, in tables this module creates:

* ``intel_vulns``: one row per (CVE, source): vendor, product, component, name, dates
  (published, patched), bulletin, KBs, severity, impact, CVSS, whether it is reachable
  over the network;
* ``intel_kev``: CISA's Known Exploited Vulnerabilities (date added, due date);
* ``intel_epss``: FIRST EPSS scores, one row per (CVE, score date) so a replay of the
  past only sees the scores of its time;
* ``intel_history``: the bundled curated history (patch, exploit, scanning and
  mass-attack dates of historic network-exploitable flaws, see :mod:`.history`);
* ``intel_product_rules``: product/component → port rules (bundled);
* ``intel_cve_ports``: the CVE → (protocol, port, service) map, from explicit maps
  (history, nmap NSE, Snort rules) and from the product rules applied to every
  vulnerability row (``source`` = ``rule:NAME``);
* ``intel_imports``: the feeds imported, by SHA-256 (the same file twice is a no-op).

Provenance is on every row: ``source`` (the importer, ``history`` or ``bundled``) and
``source_ref`` (the file, its version and the first 12 hex digits of its SHA-256), and
re-importing a file writes identical rows, so importing twice changes nothing.

Every fact has a date, and questions take an ``as_of`` day: a replay of June 2005 never
sees the KEV entries of 2022 nor a worm of August.  "What was patched recently on the
services behind port 445" is one call, :meth:`KnowledgeBase.port_vulnerabilities`, or one
query on the view ``intel_port_vulns``.

>>> from portradar.store import Store
>>> with Store.open(":memory:") as store:
...     kb = KnowledgeBase.open(store)
...     rows = kb.port_vulnerabilities(445, "tcp", as_of=date(2005, 6, 17), days=30)
>>> [(r["bulletins"], str(r["patched"]), r["days_since_patch"]) for r in rows]
[('MS05-027', '2005-06-14', 3)]
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from portradar.errors import FormatError, StoreError
from portradar.ingest.reader import ReadStats
from portradar.intel.feeds import ParsedFeed, get_importer, read_feed, sniff_feed
from portradar.store.duckdb_store import Store

#: Version of the intel tables' layout; bumped when a column changes meaning.
INTEL_SCHEMA_VERSION = 1

SCHEMAS: dict[str, pa.Schema] = {
    "intel_vulns": pa.schema([
        ("cve", pa.string()), ("source", pa.string()), ("source_ref", pa.string()),
        ("vendor", pa.string()), ("product", pa.string()), ("component", pa.string()),
        ("name", pa.string()), ("description", pa.string()), ("published", pa.date32()),
        ("patched", pa.date32()), ("bulletin", pa.string()), ("kbs", pa.string()),
        ("severity", pa.string()), ("impact", pa.string()), ("cvss", pa.float64()),
        ("remote", pa.bool_()), ("exploit_refs", pa.string()),
    ]),
    "intel_kev": pa.schema([
        ("cve", pa.string()), ("vendor", pa.string()), ("product", pa.string()),
        ("name", pa.string()), ("date_added", pa.date32()), ("due_date", pa.date32()),
        ("ransomware", pa.string()), ("required_action", pa.string()),
        ("source", pa.string()), ("source_ref", pa.string()),
    ]),
    "intel_epss": pa.schema([
        ("cve", pa.string()), ("epss", pa.float64()), ("percentile", pa.float64()),
        ("score_date", pa.date32()), ("model_version", pa.string()),
        ("source", pa.string()), ("source_ref", pa.string()),
    ]),
    "intel_cve_ports": pa.schema([
        ("cve", pa.string()), ("proto", pa.uint8()), ("port", pa.int32()),
        ("service", pa.string()), ("source", pa.string()), ("source_ref", pa.string()),
    ]),
    "intel_history": pa.schema([
        ("event", pa.string()), ("cve", pa.string()), ("bulletin", pa.string()),
        ("proto", pa.uint8()), ("port", pa.int32()), ("patched", pa.date32()),
        ("exploit_published", pa.date32()), ("scanning", pa.date32()),
        ("mass_attack", pa.date32()), ("notes", pa.string()), ("sources", pa.string()),
        ("verification", pa.string()), ("source", pa.string()), ("source_ref", pa.string()),
    ]),
    "intel_product_rules": pa.schema([
        ("rule", pa.string()), ("pattern", pa.string()), ("exclude", pa.string()),
        ("proto", pa.uint8()), ("port", pa.int32()), ("service", pa.string()),
        ("reference", pa.string()), ("source", pa.string()), ("source_ref", pa.string()),
    ]),
}

#: The columns that identify a row of each table (an import replaces rows by these).
KEYS: dict[str, tuple[str, ...]] = {
    "intel_vulns": ("cve", "source"),
    "intel_kev": ("cve",),
    "intel_epss": ("cve", "score_date"),
    "intel_cve_ports": ("cve", "proto", "port", "source"),
    "intel_history": ("event", "port", "source"),
    "intel_product_rules": ("rule", "proto", "port", "source"),
}

_DUCK_TYPES = {pa.string(): "VARCHAR", pa.date32(): "DATE", pa.float64(): "DOUBLE",
               pa.bool_(): "BOOLEAN", pa.uint8(): "UTINYINT", pa.int32(): "INTEGER"}

#: Which source names a CVE when several do (curated history first, then the vendor).
_NAME_PRIORITY = ("CASE source WHEN 'history' THEN 0 WHEN 'msrc' THEN 1 WHEN 'cisa-kev' "
                  "THEN 2 WHEN 'nvd' THEN 3 ELSE 4 END")

_RULE_TEXT = "lower(concat_ws(' ', {a}.vendor, {a}.product, {a}.{c}, {a}.name))"


def _schema_sql() -> str:
    parts = []
    for name, schema in SCHEMAS.items():
        cols = ", ".join(f"{f.name} {_DUCK_TYPES[f.type]}" for f in schema)
        parts.append(f"CREATE TABLE IF NOT EXISTS {name} ({cols});")
    parts.append("""CREATE TABLE IF NOT EXISTS intel_imports (
        sha256 VARCHAR NOT NULL, kind VARCHAR NOT NULL, name VARCHAR NOT NULL,
        version VARCHAR, records BIGINT NOT NULL, skipped BIGINT NOT NULL,
        imported_at TIMESTAMPTZ NOT NULL);""")
    parts.append(f"""CREATE OR REPLACE VIEW intel_port_vulns AS
        SELECT m.proto, m.port, m.cve, string_agg(DISTINCT m.service, ', ') AS services,
               any_value(v.name) AS name, min(v.patched) AS patched,
               string_agg(DISTINCT v.bulletin, ', ') AS bulletins,
               min(k.date_added) AS kev_added, max(e.epss) AS epss,
               string_agg(DISTINCT m.source, ', ') AS port_sources
        FROM intel_cve_ports m
        LEFT JOIN (SELECT cve, arg_min(name, {_NAME_PRIORITY}) AS name, min(patched) AS patched,
                          string_agg(DISTINCT bulletin, ', ') AS bulletin
                   FROM intel_vulns GROUP BY cve) v USING (cve)
        LEFT JOIN intel_kev k USING (cve)
        LEFT JOIN (SELECT cve, arg_max(epss, score_date) AS epss FROM intel_epss GROUP BY cve)
                  e USING (cve)
        GROUP BY ALL;""")
    return "\n".join(parts)


def run(store: Store, sql: str, params: Any = None) -> pa.Table:
    """Run a read query and return Arrow.

    ``execute`` (not the relation API of :meth:`Store.query`) so that a result some
    other code left open on the connection (a ``fetchone()``) never blocks it.
    """
    try:
        store.con.execute("SELECT 1").fetchall()
        return store.con.sql(sql, params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise StoreError(f"{store.path}: query failed ({str(exc).splitlines()[0]})") from exc


def _literal(text: str) -> str:
    """A SQL string literal (rules are data: quotes are doubled, never trusted)."""
    return "'" + text.replace("'", "''") + "'"


def conform(tbl: pa.Table, schema: pa.Schema) -> pa.Table:
    """``tbl`` with exactly ``schema``'s columns (missing ones null) and types."""
    arrays = [tbl.column(f.name).cast(f.type) if f.name in tbl.schema.names
              else pa.nulls(tbl.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def source_ref(name: str, sha256: str, version: str | None = None) -> str:
    """How a row names the file it came from."""
    base = Path(name).name
    return f"{base}{f' {version}' if version else ''} sha256:{sha256[:12]}"


class KnowledgeBase:
    """The intel tables of one store: schema, bundled knowledge, imports and questions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.con = store.con

    # -- opening ------------------------------------------------------------------
    @classmethod
    def open(cls, store: Store) -> KnowledgeBase:
        """The knowledge base of ``store``, creating its tables and the bundled rows."""
        kb = cls(store)
        if store.read_only:
            if not kb._has_tables():
                raise StoreError(f"{store.path}: no knowledge base yet; run "
                                 f"'portradar intel port' or 'portradar intel import' once")
            return kb
        try:
            kb.con.execute("SET enable_progress_bar = false")
            with store.transaction():
                kb.con.execute(_schema_sql())
            kb._sync_bundled()
        except duckdb.Error as exc:
            raise StoreError(f"{store.path}: cannot prepare the knowledge base ({exc})") from exc
        return kb

    def _has_tables(self) -> bool:
        return bool(self._one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'intel_vulns'"
        )[0])

    def _one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
        """The first row of a query (``()`` when none), leaving no unfinished result."""
        rows = self.con.execute(sql, params or []).fetchall()
        return tuple(rows[0]) if rows else ()

    def _sync_bundled(self) -> None:
        """Load (or refresh, when the package's files changed) the bundled knowledge."""
        from portradar.intel import history

        data = files("portradar.intel").joinpath("data")
        raw = b"".join(data.joinpath(n).read_bytes() for n in ("history.csv",
                                                                "product_ports.csv"))
        digest = hashlib.sha256(raw + str(INTEL_SCHEMA_VERSION).encode()).hexdigest()
        if self.store.setting("intel.bundled") == digest:
            return
        feeds = history.bundled_feeds()
        with self.store.transaction():
            for name in SCHEMAS:
                self.con.execute(f"DELETE FROM {name} WHERE source IN ('history', 'bundled')")
            for feed in feeds:
                self._write(feed)
            self._refresh_rule_ports()
            self.store.set_setting("intel.bundled", digest)

    # -- importing ----------------------------------------------------------------
    def import_file(self, path: str | Path, *, kind: str | None = None,
                    strict: bool = False, force: bool = False) -> dict[str, Any]:
        """Parse a feed and apply it in one transaction; returns a summary row.

        The same bytes imported again are recognised by their SHA-256 and skipped
        (``force`` re-applies them, which writes identical rows).
        """
        name = str(path)
        data, sha = read_feed(path)
        kind = kind or sniff_feed(data[:65536], name)
        importer = get_importer(kind)()
        summary: dict[str, Any] = {"file": name, "kind": kind, "status": "imported",
                                   "records": 0, "rows": 0, "skipped": 0, "version": None}
        known = self._one("SELECT version, records FROM intel_imports WHERE sha256 = ? "
                          "AND kind = ?", [sha, kind])
        if known and not force:
            summary.update(status="unchanged", version=known[0], records=known[1])
            return summary
        stats = ReadStats(source=name, strict=strict)
        ref = source_ref(name, sha)
        feed = importer.parse(data, name=name, source_ref=ref, stats=stats)
        if feed.version:
            ref_v = source_ref(name, sha, feed.version)
            feed.tables = {t: tbl.set_column(tbl.schema.get_field_index("source_ref"),
                                             "source_ref", pa.array([ref_v] * tbl.num_rows,
                                                                    pa.string()))
                           if "source_ref" in tbl.schema.names else tbl
                           for t, tbl in feed.tables.items()}
        self.apply(feed, sha=sha, kind=kind, name=name, skipped=stats.skipped_total)
        summary.update(records=feed.records, skipped=stats.skipped_total, version=feed.version,
                       rows=sum(t.num_rows for t in feed.tables.values()),
                       skip_reasons=dict(stats.skipped), examples=list(stats.examples))
        return summary

    def apply(self, feed: ParsedFeed, *, sha: str, kind: str, name: str,
              skipped: int = 0) -> None:
        """Write a parsed feed and refresh the rule-derived port map, all or nothing."""
        try:
            with self.store.transaction():
                self._write(feed)
                self._refresh_rule_ports()
                self.con.execute("DELETE FROM intel_imports WHERE sha256 = ? AND kind = ?",
                                 [sha, kind])
                self.con.execute("INSERT INTO intel_imports VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [sha, kind, name, feed.version, feed.records, skipped,
                                  datetime.now(tz=UTC)])
        except duckdb.Error as exc:
            raise FormatError(f"cannot store this feed ({str(exc).splitlines()[0]}); the "
                              f"knowledge base is unchanged", source=name) from exc

    def _write(self, feed: ParsedFeed) -> None:
        for tname, tbl in feed.tables.items():
            if tname not in SCHEMAS:
                raise StoreError(f"unknown knowledge table {tname!r}")
            if tbl.num_rows == 0:
                continue
            tbl = conform(tbl, SCHEMAS[tname])
            keys = KEYS[tname]
            self.con.register("_intel_in", tbl)
            try:
                on = " AND ".join(f"t.{k} IS NOT DISTINCT FROM i.{k}" for k in keys)
                self.con.execute(f"""CREATE OR REPLACE TEMP TABLE _intel_new AS
                                     SELECT DISTINCT ON ({', '.join(keys)}) * FROM _intel_in""")
                self.con.execute(f"DELETE FROM {tname} t USING _intel_new i WHERE {on}")
                self.con.execute(f"INSERT INTO {tname} BY NAME SELECT * FROM _intel_new")
                self.con.execute("DROP TABLE _intel_new")
            finally:
                self.con.unregister("_intel_in")

    def _refresh_rule_ports(self) -> None:
        """Recompute the ports the product rules give every vulnerability and KEV row.

        One pass per rule (a loop over the few dozen rules, not over rows), each with
        its patterns as constants so DuckDB compiles every regular expression once.
        """
        self.con.execute("DELETE FROM intel_cve_ports WHERE source LIKE 'rule:%'")
        self.con.execute(f"""CREATE OR REPLACE TEMP TABLE _rule_text AS
            SELECT DISTINCT cve, {_RULE_TEXT.format(a='v', c='component')} AS text
            FROM intel_vulns v WHERE coalesce(v.remote, true)
            UNION SELECT DISTINCT cve, {_RULE_TEXT.format(a='k', c='vendor')} FROM intel_kev k""")
        rules = self.con.execute("SELECT DISTINCT rule, pattern, coalesce(exclude, '') "
                                 "FROM intel_product_rules ORDER BY rule").fetchall()
        for rule, pattern, exclude in rules:
            where = f"regexp_matches(text, {_literal(pattern)})"
            if exclude:
                where += f" AND NOT regexp_matches(text, {_literal(exclude)})"
            self.con.execute(f"""
                INSERT INTO intel_cve_ports BY NAME
                SELECT c.cve, r.proto, r.port, r.service, 'rule:' || r.rule AS source,
                       r.source_ref
                FROM (SELECT DISTINCT cve FROM _rule_text WHERE {where}) c
                CROSS JOIN (SELECT * FROM intel_product_rules WHERE rule = ?) r""", [rule])
        self.con.execute("DROP TABLE _rule_text")

    # -- questions ----------------------------------------------------------------
    def port_vulnerabilities(self, port: int, proto: str | int = "tcp", *,
                             as_of: date | None = None, days: int | None = None,
                             ) -> list[dict[str, Any]]:
        """Vulnerabilities of the services behind a port, as known on ``as_of``.

        With ``days``, only those patched (or whose exploit was published, or that
        entered KEV) in the ``days`` days up to ``as_of``; newest patch first.  Each row
        has the CVE, names, bulletins and KBs, the patch date and days since it, the
        exploit / scanning / mass-attack dates the history knows, KEV and EPSS, and
        where the port mapping and the facts came from.
        """
        from portradar.activity.periods import proto_number

        p = proto_number(proto)
        as_of = as_of or date(9999, 12, 31)
        lo = as_of - timedelta(days=days) if days is not None else date(1, 1, 1)
        sql = f"""
        WITH m AS (SELECT cve, string_agg(DISTINCT service, ', ' ORDER BY service) AS services,
                          string_agg(DISTINCT source, ', ' ORDER BY source) AS port_sources
                   FROM intel_cve_ports WHERE port = $port AND proto = $proto GROUP BY cve),
        v AS (SELECT cve, arg_min(name, {_NAME_PRIORITY}) AS name,
                     min(patched) FILTER (WHERE patched <= $as_of) AS patched,
                     min(published) FILTER (WHERE published <= $as_of) AS published,
                     string_agg(DISTINCT bulletin, ', ' ORDER BY bulletin) AS bulletins,
                     string_agg(DISTINCT kbs, ';') AS kbs, max(cvss) AS cvss,
                     string_agg(DISTINCT vendor, ', ') AS vendor,
                     string_agg(DISTINCT product, ', ') AS product,
                     string_agg(DISTINCT source, ', ' ORDER BY source) AS sources,
                     string_agg(DISTINCT source_ref, '; ') AS refs
              FROM intel_vulns WHERE cve IN (SELECT cve FROM m) GROUP BY cve),
        h AS (SELECT cve, min(exploit_published) FILTER (WHERE exploit_published <= $as_of)
                          AS exploit_published,
                     min(scanning) FILTER (WHERE scanning <= $as_of) AS scanning,
                     min(mass_attack) FILTER (WHERE mass_attack <= $as_of) AS mass_attack,
                     string_agg(DISTINCT sources, ' ; ') AS history_sources
              FROM intel_history WHERE cve IN (SELECT cve FROM m) GROUP BY cve),
        k AS (SELECT cve, min(date_added) AS kev_added FROM intel_kev
              WHERE date_added <= $as_of GROUP BY cve),
        e AS (SELECT cve, arg_max(epss, score_date) AS epss,
                     arg_max(percentile, score_date) AS epss_percentile,
                     max(score_date) AS epss_date
              FROM intel_epss WHERE score_date <= $as_of GROUP BY cve)
        SELECT m.cve, v.name, v.vendor, v.product, v.bulletins, v.kbs, v.published, v.patched,
               date_diff('day', v.patched, $as_of::DATE) AS days_since_patch,
               h.exploit_published, h.scanning, h.mass_attack, k.kev_added, e.epss,
               e.epss_percentile, e.epss_date, v.cvss, m.services, m.port_sources,
               v.sources, v.refs, h.history_sources
        FROM m JOIN v USING (cve) LEFT JOIN h USING (cve) LEFT JOIN k USING (cve)
        LEFT JOIN e USING (cve)
        WHERE coalesce(v.patched, v.published, h.exploit_published, k.kev_added) IS NOT NULL
          AND (v.patched > $lo OR v.published > $lo OR h.exploit_published > $lo
               OR k.kev_added > $lo OR h.mass_attack > $lo)
        ORDER BY v.patched DESC NULLS LAST, m.cve"""
        rows = run(self.store, sql, {"port": port, "proto": p, "as_of": as_of,
                                      "lo": lo}).to_pylist()
        if as_of == date(9999, 12, 31):
            for r in rows:
                r["days_since_patch"] = None
        return rows

    def port_history(self, port: int, proto: str | int = "tcp", *,
                     as_of: date | None = None) -> list[dict[str, Any]]:
        """Historic events on a port known by ``as_of`` (worms, probing spikes)."""
        from portradar.activity.periods import proto_number

        as_of = as_of or date(9999, 12, 31)
        return run(self.store,
            """SELECT event, cve, bulletin, patched, exploit_published, scanning, mass_attack,
                      notes, sources, verification
               FROM intel_history WHERE port = ? AND proto = ?
                 AND least(coalesce(patched, DATE '9999-12-31'),
                           coalesce(exploit_published, DATE '9999-12-31'),
                           coalesce(scanning, DATE '9999-12-31'),
                           coalesce(mass_attack, DATE '9999-12-31')) <= ?
               ORDER BY coalesce(patched, scanning, mass_attack)""",
            [port, proto_number(proto), as_of]).to_pylist()

    def counts(self) -> dict[str, int]:
        """Rows per knowledge table (what ``portradar intel`` reports)."""
        return {name: int(self._one(f"SELECT count(*) FROM {name}")[0]) for name in SCHEMAS}

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every knowledge row, sorted: for tests that a failed import changed nothing."""
        out = {}
        for name, schema in SCHEMAS.items():
            cols = ", ".join(schema.names)
            out[name] = self.con.execute(f"SELECT {cols} FROM {name} ORDER BY ALL").fetchall()
        return out
