"""The bundled history: network-exploitable vulnerabilities and what followed their patches.

``data/history.csv`` is a curated table, one row per event: the CVE and bulletin, the
protocol and ports, and the dates of each step of the usual sequence (Gartner, June 2005:
patch → exploit published → scanning → mass attack): ``patched``, ``exploit_published``,
``scanning`` (a probing spike first reported) and ``mass_attack`` (a worm or bots
exploiting at large), with ``sources`` (URLs) and ``verification`` (what was checked and
what is general knowledge) on every row.  It starts from the shared port-event calendar
(whose rows and verification notes it keeps) and adds rows and exploit dates, each with
its source.  A date is "first widely reported", a UTC day.

The same CSV layout can be imported (``portradar intel import my-history.csv``) to add
local knowledge; those rows carry ``source`` = ``history-file``.

``data/product_ports.csv`` holds the product → port rules (see :mod:`.cve_ports`); both
files load into the knowledge base when it is first opened and whenever they change.

>>> feeds = bundled_feeds()
>>> h = feeds[0].tables["intel_history"].to_pylist()
>>> [(r["event"], str(r["patched"])) for r in h if r["bulletin"] == "MS05-027"]
[('MS05-027 probing spike (no worm followed)', '2005-06-14')]
>>> sorted({r["port"] for r in h if r["bulletin"] == "MS06-040"})
[139, 445]
"""

from __future__ import annotations

import io
from importlib.resources import files
from typing import ClassVar

import polars as pl

from portradar.errors import FormatError
from portradar.ingest.reader import ReadStats
from portradar.intel.feeds import ParsedFeed, register_importer
from portradar.intel.vulnerabilities import SCHEMAS

HISTORY_COLUMNS = ("event", "cve", "bulletin", "vulnerability", "proto", "ports", "patched",
                   "exploit_published", "scanning", "mass_attack", "notes", "sources",
                   "verification")
_DATES = ("patched", "exploit_published", "scanning", "mass_attack")
_PROTO = {"tcp": 6, "udp": 17, "sctp": 132}


def parse_history(data: bytes, *, name: str, source: str, source_ref: str,
                  stats: ReadStats) -> ParsedFeed:
    """History rows → ``intel_history``, ``intel_vulns`` and ``intel_cve_ports`` tables."""
    try:
        d = pl.read_csv(io.BytesIO(data), infer_schema_length=0)
    except pl.exceptions.PolarsError as exc:
        raise FormatError(f"not a CSV file ({exc})", source=name) from exc
    missing = [c for c in HISTORY_COLUMNS if c not in d.columns]
    if missing:
        raise FormatError(f"history CSV without columns {missing}", source=name, line=1)
    d = d.with_row_index("line", offset=2)
    bad_proto = d.filter(~pl.col("proto").str.to_lowercase().is_in(list(_PROTO)))
    for line in bad_proto["line"].to_list():
        stats.skip("protocol is not tcp, udp or sctp", line=line)
    d = d.filter(pl.col("proto").str.to_lowercase().is_in(list(_PROTO)))
    for col in _DATES:
        parsed = pl.col(col).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        bad = d.filter(pl.col(col).is_not_null() & parsed.is_null())
        for line in bad["line"].to_list():
            stats.skip(f"{col} is not a YYYY-MM-DD date", line=line)
        d = d.filter(~(pl.col(col).is_not_null() & parsed.is_null())).with_columns(parsed)
    d = d.with_columns(
        pl.col("proto").str.to_lowercase().replace_strict(_PROTO, return_dtype=pl.UInt8),
        pl.col("ports").str.split(";"),
        pl.col("cve").str.strip_chars().str.to_uppercase(),
    ).explode("ports").with_columns(pl.col("ports").str.strip_chars().cast(pl.Int32,
                                                                           strict=False))
    bad_port = d.filter(pl.col("ports").is_null() | (pl.col("ports") < 1)
                        | (pl.col("ports") > 65535))
    for line in bad_port["line"].unique().to_list():
        stats.skip("port is not 1-65535", line=line)
    d = d.filter(pl.col("ports").is_between(1, 65535)).rename({"ports": "port"})
    d = d.with_columns(pl.lit(source).alias("source"), pl.lit(source_ref).alias("source_ref"))
    hist = d.select(SCHEMAS["intel_history"].names).to_arrow()
    with_cve = d.filter(pl.col("cve").is_not_null())
    vulns = with_cve.unique(["cve"], keep="first").select(
        "cve", "source", "source_ref",
        pl.coalesce(pl.col("vulnerability"), pl.col("event")).alias("name"), "patched", "bulletin",
        pl.lit(True).alias("remote"), pl.col("notes").alias("description"),
        pl.when(pl.col("bulletin").str.starts_with("MS")).then(pl.lit("Microsoft"))
        .alias("vendor"),
    ).to_arrow()
    ports = with_cve.select("cve", "proto", "port", pl.lit(None, pl.Utf8).alias("service"),
                            "source", "source_ref").unique().to_arrow()
    return ParsedFeed(tables={"intel_history": hist, "intel_vulns": vulns,
                              "intel_cve_ports": ports},
                      records=d["line"].n_unique())


def parse_product_rules(data: bytes, *, name: str, source_ref: str) -> ParsedFeed:
    """``product_ports.csv`` → ``intel_product_rules`` (one row per rule and port)."""
    d = pl.read_csv(io.BytesIO(data), infer_schema_length=0)
    d = d.with_columns(
        pl.col("proto").replace_strict(_PROTO, return_dtype=pl.UInt8),
        pl.col("ports").str.split(";"),
    ).explode("ports").with_columns(pl.col("ports").cast(pl.Int32).alias("port"),
                                    pl.lit("bundled").alias("source"),
                                    pl.lit(source_ref).alias("source_ref"))
    return ParsedFeed(tables={"intel_product_rules": d.select(
        SCHEMAS["intel_product_rules"].names).to_arrow()}, records=d.height)


def bundled_feeds() -> list[ParsedFeed]:
    """The bundled history and product rules, ready for the knowledge base."""
    data = files("portradar.intel").joinpath("data")
    stats = ReadStats(source="history.csv", strict=True)
    return [
        parse_history(data.joinpath("history.csv").read_bytes(), name="history.csv",
                      source="history", source_ref="portradar bundled history.csv",
                      stats=stats),
        parse_product_rules(data.joinpath("product_ports.csv").read_bytes(),
                            name="product_ports.csv",
                            source_ref="portradar bundled product_ports.csv"),
    ]


@register_importer
class HistoryImport:
    """A history CSV in the bundled layout (event, cve, bulletin, proto, ports, dates...)."""

    name: ClassVar[str] = "history"
    description: ClassVar[str] = "curated history CSV (the bundled layout)"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> float:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
        return 0.95 if first.startswith("event,") and "mass_attack" in first else 0.0

    def parse(self, data: bytes, *, name: str, source_ref: str,
              stats: ReadStats) -> ParsedFeed:
        return parse_history(data, name=name, source="history-file", source_ref=source_ref,
                             stats=stats)
