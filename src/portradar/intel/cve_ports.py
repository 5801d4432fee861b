"""The CVE → port map: which ports reach the service a CVE is in.

Two kinds of knowledge fill ``intel_cve_ports``:

* **explicit maps**, imported by this module: the shared ``nmap_nse_cve_ports.csv``
  (nmap NSE scripts citing a CVE and the ports of their port rule; ``source`` =
  ``nmap-nse``), ``snort_legacy_rules_cve_ports.csv`` (Snort 2.3-era rules with a CVE
  reference and their destination port; ``snort-rules``; ``$HTTP_PORTS`` read as 80,
  ``any`` and ranges skipped as they name no port), or a plain ``cve,proto,port[,service]``
  CSV of your own (``cve-port-map``).  These files are read from where they are, never
  bundled (the nmap and Snort sources are under the NPSL and the GPL);
* **product rules** (bundled ``data/product_ports.csv``): regular expressions over a
  vulnerability's vendor, product, component and name, such as "SMB / Server service →
  tcp/445 and tcp/139", "Remote Desktop → tcp/3389", "SQL Server → tcp/1433 and
  udp/1434", each citing the port assignment it relies on (IANA; Microsoft KB 832017).
  The knowledge base applies them to every vulnerability after each import
  (``source`` = ``rule:NAME``); rows of client software are excluded by each rule's
  ``exclude`` pattern and only remotely reachable flaws are mapped.

>>> from portradar.ingest.reader import ReadStats
>>> data = b"cve,proto,port,service\\nCVE-2005-1206,tcp,445,microsoft-ds\\n"
>>> t = CvePortsImport().parse(data, name="my.csv", source_ref="m", stats=ReadStats())
>>> t.tables["intel_cve_ports"].to_pylist()[0]["port"]
445
"""

from __future__ import annotations

import io
from typing import ClassVar

import polars as pl

from portradar.errors import FormatError
from portradar.ingest.reader import ReadStats
from portradar.intel.feeds import CVE_RE, ParsedFeed, register_importer
from portradar.intel.vulnerabilities import SCHEMAS, conform

_PROTO = {"tcp": 6, "udp": 17, "sctp": 132}
#: Snort's port variables that name one usual port (snort.conf defaults of the era).
_SNORT_VARS = {"$HTTP_PORTS": "80", "$ORACLE_PORTS": "1521", "$SHELLCODE_PORTS": ""}


def _layout(columns: list[str]) -> str:
    if {"nse_script", "cves", "ports_from_portrule"} <= set(columns):
        return "nmap-nse"
    if {"rules_file", "sid", "proto", "dst_port_expr", "cves"} <= set(columns):
        return "snort-rules"
    if {"cve", "proto", "port"} <= set(columns):
        return "cve-port-map"
    return ""


@register_importer
class CvePortsImport:
    """CVE → port maps (nmap NSE, Snort rules, or cve,proto,port CSV)."""

    name: ClassVar[str] = "cve-port-map"
    description: ClassVar[str] = "CVE → port map CSV (nmap NSE / Snort rules / cve,proto,port)"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> float:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
        return 0.9 if _layout([c.strip() for c in first.split(",")]) else 0.0

    def parse(self, data: bytes, *, name: str, source_ref: str,
              stats: ReadStats) -> ParsedFeed:
        try:
            d = pl.read_csv(io.BytesIO(data), infer_schema_length=0)
        except pl.exceptions.PolarsError as exc:
            raise FormatError(f"not a CSV file ({exc})", source=name) from exc
        layout = _layout(d.columns)
        if not layout:
            raise FormatError(f"not a CVE-port map: columns {d.columns}", source=name, line=1)
        total = d.height
        d = d.with_row_index("line", offset=2)
        if layout == "nmap-nse":
            d = d.select("line", pl.col("cves").alias("cve"),
                         pl.col("ports_from_portrule").alias("port"),
                         pl.lit("tcp").alias("proto"),
                         pl.col("services_from_portrule").alias("service"))
        elif layout == "snort-rules":
            d = d.select("line", pl.col("cves").alias("cve"),
                         pl.col("dst_port_expr").replace(_SNORT_VARS).alias("port"),
                         "proto", pl.lit(None, pl.Utf8).alias("service"))
        elif "service" not in d.columns:
            d = d.with_columns(pl.lit(None, pl.Utf8).alias("service"))
        d = (d.with_columns(pl.col("cve").str.split(";"), pl.col("port").fill_null("")
                            .str.split(";"))
             .explode("cve").explode("port")
             .with_columns(pl.col("cve").str.strip_chars().str.to_uppercase(),
                           pl.col("port").str.strip_chars().cast(pl.Int32, strict=False),
                           pl.col("proto").str.strip_chars().str.to_lowercase()))
        ok = (pl.col("cve").str.contains(CVE_RE.pattern) & pl.col("port").is_between(1, 65535)
              & pl.col("proto").is_in(list(_PROTO)))
        bad = d.filter(~ok.fill_null(False))
        if bad.height:
            stats.skip("no single port 1-65535, known protocol and CVE id",
                       count=bad["line"].n_unique())
        good = d.filter(ok.fill_null(False)).select(
            "cve", pl.col("proto").replace_strict(_PROTO, return_dtype=pl.UInt8), "port",
            pl.col("service").str.split(";").list.first().alias("service"),
            pl.lit(layout).alias("source"), pl.lit(source_ref).alias("source_ref"),
        ).unique(["cve", "proto", "port"], keep="first")
        stats.records += total
        return ParsedFeed(tables={"intel_cve_ports": conform(good.to_arrow(),
                                                             SCHEMAS["intel_cve_ports"])},
                          records=total)
