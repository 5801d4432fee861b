"""Microsoft security-update data as CSV: the first day each CVE was patched, and its KBs.

The layout is the shared ``cve_first_patch_summary.csv`` (one row per CVE or advisory:
``cve, first_date_posted (YYYYMMDD), n_kbs, kbs_sample, components, severity, impact,
products_sample, exploits``), derived from WES-NG's definitions, which are Microsoft's
MSRC CVRF / bulletin metadata (attribute WES-NG, BSD-3-Clause, and Microsoft).  It covers
November 2008 onwards; older bulletins come from the bundled history.

Rows become ``intel_vulns`` (``source`` = ``msrc``): ``patched`` is the first posting
day, ``remote`` is true when the impact is remote code execution (the impact a worm or
a mass attack through a port needs), and the component (``Windows SMB Server``) is what
the product → port rules match.  Advisory ids (``ADV...``) are not CVEs and are counted
as skipped.  Parsed with Polars, no loop per row.

>>> from portradar.ingest.reader import ReadStats
>>> csv = (b"cve,first_date_posted,n_kbs,kbs_sample,components,severity,impact,"
...        b"products_sample,exploits\\n"
...        b"CVE-2017-0144,20170314,11,;4012212;4012213,Windows SMB Server,Critical,"
...        b"Remote Code Execution,Windows 7,\\n")
>>> t = MsrcImport().parse(csv, name="m.csv", source_ref="m", stats=ReadStats()).tables
>>> v = t["intel_vulns"].to_pylist()[0]
>>> str(v["patched"]), v["kbs"], v["remote"]
('2017-03-14', 'KB4012212;KB4012213', True)
"""

from __future__ import annotations

import io
from typing import ClassVar

import polars as pl

from portradar.errors import FormatError
from portradar.ingest.reader import ReadStats
from portradar.intel.feeds import CVE_RE, ParsedFeed, register_importer
from portradar.intel.vulnerabilities import SCHEMAS, conform

_COLUMNS = ("cve", "first_date_posted", "kbs_sample", "components", "severity", "impact",
            "products_sample", "exploits")


@register_importer
class MsrcImport:
    """Microsoft patch dates per CVE (WES-NG / MSRC derived CSV)."""

    name: ClassVar[str] = "msrc"
    description: ClassVar[str] = "Microsoft first-patch dates per CVE (CSV)"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> float:
        first = head.split(b"\n", 1)[0].lower()
        return 0.95 if first.startswith(b"cve,first_date_posted") else 0.0

    def parse(self, data: bytes, *, name: str, source_ref: str,
              stats: ReadStats) -> ParsedFeed:
        try:
            d = pl.read_csv(io.BytesIO(data), infer_schema_length=0)
        except pl.exceptions.PolarsError as exc:
            raise FormatError(f"not a CSV file ({exc})", source=name) from exc
        missing = [c for c in _COLUMNS if c not in d.columns]
        if missing:
            raise FormatError(f"not an MSRC patch CSV: no columns {missing}", source=name,
                              line=1)
        total = d.height
        d = d.with_row_index("line", offset=2).with_columns(
            pl.col("cve").str.strip_chars().str.to_uppercase(),
            pl.col("first_date_posted").str.strptime(pl.Date, "%Y%m%d", strict=False)
            .alias("patched"))
        is_cve = pl.col("cve").str.contains(CVE_RE.pattern)
        advisories = d.filter(~is_cve & pl.col("cve").str.starts_with("ADV")).height
        stats.skip("advisory, not a CVE", count=advisories)
        for line in d.filter(~is_cve & ~pl.col("cve").fill_null("").str.starts_with("ADV"))[
                "line"].to_list():
            stats.skip("not a CVE id", line=line)
        for line in d.filter(is_cve & pl.col("patched").is_null())["line"].to_list():
            stats.skip("first_date_posted is not YYYYMMDD", line=line)
        d = d.filter(is_cve & pl.col("patched").is_not_null())
        kbs = (pl.col("kbs_sample").fill_null("").str.split(";")
               .list.eval(pl.element().str.strip_chars().filter(pl.element().str.len_chars() > 0))
               .list.eval(pl.concat_str(pl.lit("KB"), pl.element())).list.join(";"))
        out = d.select(
            "cve", pl.lit("msrc").alias("source"), pl.lit(source_ref).alias("source_ref"),
            pl.lit("Microsoft").alias("vendor"), pl.col("products_sample").alias("product"),
            pl.col("components").alias("component"),
            pl.concat_str(pl.col("components"), pl.col("impact"), separator=" ").alias("name"),
            "patched", kbs.alias("kbs"),
            "severity", "impact",
            pl.col("impact").fill_null("").str.contains("Remote Code Execution")
            .alias("remote"), pl.col("exploits").alias("exploit_refs"),
        )
        stats.records += total
        return ParsedFeed(tables={"intel_vulns": conform(out.to_arrow(),
                                                         SCHEMAS["intel_vulns"])},
                          records=total)
