"""NVD CVE JSON 2.0 feed files (the ``nvdcve-2.0-YEAR.json`` feeds and API pages alike).

Each ``vulnerabilities[].cve`` object becomes one ``intel_vulns`` row (``source`` =
``nvd``): the id, the publication day, the English description, the CVSS base score
(v3.1, v3.0 or v2, the newest present), whether the attack vector is ``NETWORK`` (what
makes a flaw reachable through a port), the first CPE's vendor and product (which the
product → port rules read), and a Microsoft bulletin id when a reference names one.
NVD has no patch date; the vendor feeds and the history give those.

Records are Python dicts (the feed is JSON): a loop per vulnerability, which is fine for
the tens of thousands of CVEs of a year, not per event.

>>> import json
>>> from portradar.ingest.reader import ReadStats
>>> doc = {"format": "NVD_CVE", "version": "2.0", "timestamp": "2024-01-01T00:00:00",
...        "vulnerabilities": [{"cve": {"id": "CVE-2005-1206",
...            "published": "2005-06-14T04:00:00.000",
...            "descriptions": [{"lang": "en", "value": "SMB buffer overflow"}],
...            "metrics": {"cvssMetricV2": [{"cvssData": {"baseScore": 10.0,
...                                                         "accessVector": "NETWORK"}}]},
...            "references": [{"url": "https://learn.microsoft.com/ms05-027"}]}}]}
>>> t = NvdImport().parse(json.dumps(doc).encode(), name="nvd.json", source_ref="nvd",
...                       stats=ReadStats()).tables["intel_vulns"]
>>> t.column("bulletin").to_pylist(), t.column("remote").to_pylist(), t.column("cvss").to_pylist()
(['MS05-027'], [True], [10.0])
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, ClassVar

from portradar.errors import FormatError
from portradar.ingest.reader import ReadStats
from portradar.intel.feeds import ParsedFeed, clean_cves, register_importer, table
from portradar.intel.vulnerabilities import SCHEMAS

_BULLETIN = re.compile(r"ms(\d\d)-(\d{3})", re.IGNORECASE)
_METRICS = ("cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2")


def _score(metrics: dict[str, Any]) -> tuple[float | None, bool | None]:
    for key in _METRICS:
        entries = metrics.get(key) or []
        if entries and isinstance(entries[0], dict):
            data = entries[0].get("cvssData") or {}
            vector = data.get("attackVector") or data.get("accessVector")
            score = data.get("baseScore")
            return (float(score) if isinstance(score, int | float) else None,
                    None if vector is None else vector == "NETWORK")
    return None, None


def _cpe(cve: dict[str, Any]) -> tuple[str | None, str | None]:
    for conf in cve.get("configurations") or []:
        for node in conf.get("nodes") or []:
            for match in node.get("cpeMatch") or []:
                parts = str(match.get("criteria", "")).split(":")
                if len(parts) > 4:
                    return parts[3], parts[4]
    return None, None


@register_importer
class NvdImport:
    """NVD CVE JSON 2.0 feed files."""

    name: ClassVar[str] = "nvd"
    description: ClassVar[str] = "NVD CVE JSON 2.0 feed (nvdcve-2.0-*.json[.gz])"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> float:
        if b'"NVD_CVE"' in head[:4096]:
            return 0.95
        if b'"vulnerabilities"' in head and b'"cve"' in head and b'"published"' in head:
            return 0.7
        return 0.0

    def parse(self, data: bytes, *, name: str, source_ref: str,
              stats: ReadStats) -> ParsedFeed:
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise FormatError(f"not valid JSON ({exc.msg} at column {exc.colno})",
                              source=name, line=exc.lineno) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
            raise FormatError("not an NVD CVE JSON 2.0 feed: no 'vulnerabilities' list",
                              source=name)
        if doc.get("format") not in (None, "NVD_CVE") or str(doc.get("version", "2.0")) \
                not in ("2.0",):
            raise FormatError(f"NVD feed format {doc.get('format')!r} version "
                              f"{doc.get('version')!r}; portradar reads NVD_CVE 2.0",
                              source=name)
        cols: dict[str, list[Any]] = {k: [] for k in (
            "cve", "vendor", "product", "description", "published", "bulletin", "cvss",
            "remote")}
        for i, item in enumerate(doc["vulnerabilities"]):
            cve = item.get("cve") if isinstance(item, dict) else None
            if not isinstance(cve, dict):
                stats.skip("entry without a 'cve' object", line=i)
                continue
            published = None
            try:
                if cve.get("published"):
                    published = date.fromisoformat(str(cve["published"])[:10])
            except ValueError:
                stats.skip("published is not a date", line=i, detail=str(cve["published"]))
                continue
            desc = next((d.get("value") for d in cve.get("descriptions") or []
                         if isinstance(d, dict) and d.get("lang") == "en"), None)
            score, remote = _score(cve.get("metrics") or {})
            vendor, product = _cpe(cve)
            bulletin = None
            for ref in cve.get("references") or []:
                m = _BULLETIN.search(str(ref.get("url", ""))) if isinstance(ref, dict) else None
                if m:
                    bulletin = f"MS{m.group(1)}-{m.group(2)}"
                    break
            for key, value in (("cve", cve.get("id")), ("vendor", vendor), ("product", product),
                               ("description", desc), ("published", published),
                               ("bulletin", bulletin), ("cvss", score), ("remote", remote)):
                cols[key].append(value)
        cols["cve"] = clean_cves(cols["cve"], stats, first_line=0)
        keep = [i for i, c in enumerate(cols["cve"]) if c is not None]
        cols = {k: [v[i] for i in keep] for k, v in cols.items()}
        cols["source"] = ["nvd"] * len(keep)
        cols["source_ref"] = [source_ref] * len(keep)
        stats.records += len(doc["vulnerabilities"])
        return ParsedFeed(tables={"intel_vulns": table(cols, SCHEMAS["intel_vulns"])},
                          version=str(doc.get("timestamp") or "") or None,
                          records=len(doc["vulnerabilities"]))
