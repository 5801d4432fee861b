"""FIRST EPSS scores (CSV): the probability that a CVE is exploited in the next 30 days.

The daily file (``epss_scores-YYYY-MM-DD.csv[.gz]`` from https://www.first.org/epss/)
starts with a comment line ``#model_version:v2023.03.01,score_date:2023-03-20T00:00:00+0000``
and has the columns ``cve,epss,percentile``.  Rows go to ``intel_epss`` keyed by (CVE,
score date), so a replay of an earlier day sees only the scores of its time.  A file
without the comment line takes its date from its name; without either it is refused.
Scores outside 0..1 are counted and skipped.  Parsed with Polars.

>>> from portradar.ingest.reader import ReadStats
>>> data = b"#model_version:v2023.03.01,score_date:2023-03-20T00:00:00+0000\\n" \\
...        b"cve,epss,percentile\\nCVE-2017-0144,0.97565,0.99996\\n"
>>> feed = EpssImport().parse(data, name="epss.csv", source_ref="e", stats=ReadStats())
>>> feed.version, feed.tables["intel_epss"].column("score_date").to_pylist()
('v2023.03.01 2023-03-20', [datetime.date(2023, 3, 20)])
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path
from typing import ClassVar

import polars as pl

from portradar.errors import FormatError
from portradar.ingest.reader import ReadStats
from portradar.intel.feeds import CVE_RE, ParsedFeed, register_importer
from portradar.intel.vulnerabilities import SCHEMAS, conform

_NAME_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


@register_importer
class EpssImport:
    """FIRST EPSS daily scores (CSV)."""

    name: ClassVar[str] = "epss"
    description: ClassVar[str] = "FIRST EPSS scores (epss_scores-DATE.csv[.gz])"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> float:
        if head.startswith(b"#model_version:"):
            return 0.95
        first = head.split(b"\n", 1)[0].strip().lower()
        return 0.9 if first.startswith(b"cve,epss") else 0.0

    def parse(self, data: bytes, *, name: str, source_ref: str,
              stats: ReadStats) -> ParsedFeed:
        model = score_day = None
        body = data
        if data.startswith(b"#"):
            first, _, body = data.partition(b"\n")
            fields = dict(part.split(":", 1) for part in
                          first[1:].decode("utf-8", "replace").strip().split(",")
                          if ":" in part)
            model = fields.get("model_version")
            if fields.get("score_date"):
                try:
                    score_day = date.fromisoformat(fields["score_date"][:10])
                except ValueError as exc:
                    raise FormatError(f"score_date {fields['score_date']!r} is not a date",
                                      source=name, line=1) from exc
        if score_day is None:
            m = _NAME_DATE.search(Path(name).name)
            if not m:
                raise FormatError("no score date: neither a '#...score_date:' line nor a "
                                  "date in the file name", source=name, line=1)
            score_day = date.fromisoformat(m.group(1))
        try:
            d = pl.read_csv(io.BytesIO(body), infer_schema_length=0)
        except pl.exceptions.PolarsError as exc:
            raise FormatError(f"not an EPSS CSV ({exc})", source=name) from exc
        if not {"cve", "epss", "percentile"} <= set(d.columns):
            raise FormatError(f"not an EPSS CSV: columns {d.columns}, expected cve, epss, "
                              f"percentile", source=name, line=2 if model else 1)
        first_line = 3 if data.startswith(b"#") else 2
        d = d.with_row_index("line", offset=first_line).with_columns(
            pl.col("cve").str.strip_chars().str.to_uppercase(),
            pl.col("epss").cast(pl.Float64, strict=False),
            pl.col("percentile").cast(pl.Float64, strict=False))
        ok = (pl.col("cve").str.contains(CVE_RE.pattern) & pl.col("epss").is_between(0, 1)
              & pl.col("percentile").is_between(0, 1))
        for line in d.filter(~ok.fill_null(False))["line"].to_list():
            stats.skip("not a CVE with scores between 0 and 1", line=line)
        good = d.filter(ok.fill_null(False)).select(
            "cve", "epss", "percentile", pl.lit(score_day).alias("score_date"),
            pl.lit(model).alias("model_version"), pl.lit("epss").alias("source"),
            pl.lit(source_ref).alias("source_ref"))
        stats.records += d.height
        version = " ".join(x for x in (model, score_day.isoformat()) if x)
        return ParsedFeed(tables={"intel_epss": conform(good.to_arrow(), SCHEMAS["intel_epss"])},
                          version=version, records=d.height)
