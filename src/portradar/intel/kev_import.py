"""CISA's Known Exploited Vulnerabilities catalog (JSON, and the same columns as CSV).

KEV lists the CVEs CISA has evidence of exploitation for, with the day each was added
(``dateAdded``) and the day US federal agencies must have remediated it (``dueDate``).
The catalog is CC0 (https://www.cisa.gov/known-exploited-vulnerabilities-catalog); the
JSON layout is the one of ``known_exploited_vulnerabilities_schema.json`` (title,
catalogVersion, dateReleased, count, vulnerabilities[]).  Each entry becomes one
``intel_kev`` row and one ``intel_vulns`` row (``source`` = ``cisa-kev``), so its vendor,
product and name also feed the product → port rules.

>>> import json
>>> feed = {"catalogVersion": "2025.08.25", "vulnerabilities": [
...     {"cveID": "CVE-2017-0144", "vendorProject": "Microsoft", "product": "SMBv1",
...      "vulnerabilityName": "Microsoft SMBv1 Remote Code Execution Vulnerability",
...      "dateAdded": "2022-02-10", "dueDate": "2022-08-10"}]}
>>> from portradar.ingest.reader import ReadStats
>>> parsed = KevImport().parse(json.dumps(feed).encode(), name="kev.json", source_ref="kev",
...                            stats=ReadStats())
>>> parsed.version, parsed.tables["intel_kev"].column("date_added").to_pylist()
('2025.08.25', [datetime.date(2022, 2, 10)])
"""

from __future__ import annotations

import io
import json
from datetime import date
from typing import Any, ClassVar

import polars as pl

from portradar.errors import FormatError
from portradar.ingest.reader import ReadStats
from portradar.intel.feeds import ParsedFeed, clean_cves, register_importer, table
from portradar.intel.vulnerabilities import SCHEMAS

#: KEV's field names, in the JSON and the CSV alike.
_FIELDS = ("cveID", "vendorProject", "product", "vulnerabilityName", "dateAdded",
           "shortDescription", "requiredAction", "dueDate", "knownRansomwareCampaignUse")


def _day(text: Any, what: str, index: int, stats: ReadStats) -> date | None:
    if text in (None, ""):
        return None
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        stats.skip(f"{what} is not a date", line=index, detail=repr(text)[:40])
        return None


@register_importer
class KevImport:
    """CISA Known Exploited Vulnerabilities (JSON or CSV)."""

    name: ClassVar[str] = "cisa-kev"
    description: ClassVar[str] = "CISA Known Exploited Vulnerabilities catalog (JSON or CSV)"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> float:
        text = head[:4096]
        if b'"catalogVersion"' in text or (b'"vulnerabilities"' in text and b'"cveID"' in head):
            return 0.95
        first = head.split(b"\n", 1)[0]
        if first.startswith(b"cveID,vendorProject"):
            return 0.95
        return 0.0

    def parse(self, data: bytes, *, name: str, source_ref: str,
              stats: ReadStats) -> ParsedFeed:
        version = None
        if data.lstrip()[:1] in (b"{", b"["):
            try:
                doc = json.loads(data)
            except json.JSONDecodeError as exc:
                raise FormatError(f"not valid JSON ({exc.msg} at column {exc.colno})",
                                  source=name, line=exc.lineno) from exc
            if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
                raise FormatError("not a KEV catalog: no 'vulnerabilities' list", source=name)
            version = str(doc.get("catalogVersion") or "") or None
            entries = doc["vulnerabilities"]
            if not all(isinstance(e, dict) for e in entries):
                raise FormatError("not a KEV catalog: 'vulnerabilities' holds non-objects",
                                  source=name)
        else:
            try:
                entries = pl.read_csv(io.BytesIO(data), infer_schema_length=0).to_dicts()
            except pl.exceptions.PolarsError as exc:
                raise FormatError(f"not a KEV CSV ({exc})", source=name) from exc
        if entries and "cveID" not in entries[0]:
            raise FormatError("not a KEV catalog: entries have no 'cveID'", source=name)
        cols: dict[str, list[Any]] = {f: [e.get(f) for e in entries] for f in _FIELDS}
        cves = clean_cves(cols["cveID"], stats, first_line=0)
        added = [_day(t, "dateAdded", i, stats) for i, t in enumerate(cols["dateAdded"])]
        due = [_day(t, "dueDate", i, stats) for i, t in enumerate(cols["dueDate"])]
        keep = [i for i, c in enumerate(cves) if c is not None]

        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in keep]

        ref = [source_ref] * len(keep)
        kev = table({"cve": pick(cves), "vendor": pick(cols["vendorProject"]),
                     "product": pick(cols["product"]),
                     "name": pick(cols["vulnerabilityName"]), "date_added": pick(added),
                     "due_date": pick(due),
                     "ransomware": pick(cols["knownRansomwareCampaignUse"]),
                     "required_action": pick(cols["requiredAction"]),
                     "source": ["cisa-kev"] * len(keep), "source_ref": ref},
                    SCHEMAS["intel_kev"])
        vulns = table({"cve": pick(cves), "source": ["cisa-kev"] * len(keep),
                       "source_ref": ref, "vendor": pick(cols["vendorProject"]),
                       "product": pick(cols["product"]),
                       "name": pick(cols["vulnerabilityName"]),
                       "description": pick(cols["shortDescription"])},
                      SCHEMAS["intel_vulns"])
        stats.records += len(entries)
        return ParsedFeed(tables={"intel_kev": kev, "intel_vulns": vulns}, version=version,
                          records=len(entries))
