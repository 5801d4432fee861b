"""Scoring scanner verdicts against labelled truth: precision, recall, time to detection.

**Labels file**: CSV with a header row and the columns ``source,ports,start,end``::

    source,ports,start,end
    192.168.10.55,1000-1500,2024-03-11T20:35:00Z,2024-03-11T20:36:00Z
    198.51.100.0/24,445,,
    2001:db8::7,22;80;443,2024-11-18,

* ``source``: an address, or a network (CIDR) when the labelled scanner is a block;
* ``ports``: the ports it probed, as ``;``-separated numbers and ``a-b`` ranges, or
  empty / ``*`` for "any";
* ``start``, ``end``: ISO times (UTC unless an offset is given) or dates; either may be
  empty for an open end.

A label is **detected** when a verdict (status scanner, benign, loopback or unspecified;
backscatter is not a scan) exists for a source inside ``source`` whose activity
overlaps ``[start, end]`` and whose ports meet ``ports``.  For each label the report
gives the verdict, the probes the source had sent when it was first flagged and the
seconds from its first probe (or the label's start, if later) to the flag.

**Precision** is over the verdicts active within the labels' overall time span (all
verdicts when no label has times): a verdict matching some label is a true positive,
any other a false positive.  **Recall** is detected labels over labels.  So a labels
file should list every scanner of the period it covers, or precision is understated.

>>> labels = parse_labels("source,ports,start,end\\n192.0.2.1,1000-1002;22,,\\n")
>>> labels[0].ports
[22, 1000, 1001, 1002]
"""

from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from portradar.errors import InputError
from portradar.scan.cidr_set import CidrSet
from portradar.store.duckdb_store import Store

#: Statuses that count as "flagged" (a scan was detected).
FLAGGED_STATUSES = ("scanner", "benign", "loopback", "unspecified")


@dataclass
class Label:
    """One labelled scanner."""

    source: str
    ports: list[int] | None  # None: any
    start: datetime | None
    end: datetime | None
    line: int = 0


@dataclass
class LabelResult:
    label: Label
    detected: bool
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        first = self.verdicts[0] if self.verdicts else {}
        return {
            "source": self.label.source,
            "ports": port_text(self.label.ports) if self.label.ports else "*",
            "detected": self.detected,
            "verdict_source": first.get("source"),
            "status": first.get("status"),
            "kind": first.get("kind"), "type": first.get("type"), "tool": first.get("tool"),
            "detector": first.get("detector"),
            "probes_to_flag": first.get("probes_to_flag"),
            "seconds_to_flag": first.get("seconds_to_flag"),
            "matches": len(self.verdicts),
        }


@dataclass
class Evaluation:
    labels: list[LabelResult]
    true_positives: int
    false_positives: int

    @property
    def detected(self) -> int:
        return sum(r.detected for r in self.labels)

    @property
    def recall(self) -> float | None:
        return self.detected / len(self.labels) if self.labels else None

    @property
    def precision(self) -> float | None:
        total = self.true_positives + self.false_positives
        return self.true_positives / total if total else None

    def summary(self) -> dict[str, Any]:
        delays = [r.verdicts[0]["seconds_to_flag"] for r in self.labels
                  if r.detected and r.verdicts[0].get("seconds_to_flag") is not None]
        probes = [r.verdicts[0]["probes_to_flag"] for r in self.labels
                  if r.detected and r.verdicts[0].get("probes_to_flag") is not None]
        return {
            "labels": len(self.labels), "detected": self.detected,
            "missed": len(self.labels) - self.detected,
            "true_positives": self.true_positives, "false_positives": self.false_positives,
            "precision": self.precision, "recall": self.recall,
            "median_seconds_to_flag": float(np.median(delays)) if delays else None,
            "median_probes_to_flag": float(np.median(probes)) if probes else None,
        }


def parse_ports(text: str) -> list[int] | None:
    """``22;80;1000-1002`` to a sorted list; empty or ``*`` to None (any port)."""
    text = (text or "").strip()
    if text in ("", "*"):
        return None
    ports: set[int] = set()
    for part in text.replace(",", ";").replace(" ", ";").split(";"):
        if not part:
            continue
        a, sep, b = part.partition("-")
        lo, hi = int(a), int(b) if sep else int(a)
        if not (0 <= lo <= hi <= 65535):
            raise ValueError(f"{part!r} is not a port or port range")
        ports.update(range(lo, hi + 1))
    return sorted(ports)


def port_text(ports: list[int] | np.ndarray | None, limit: int = 12) -> str:
    """Ports as compact ranges: ``[22, 80, 81, 82]`` -> ``22,80-82``.

    >>> port_text([22, 80, 81, 82, 1000])
    '22,80-82,1000'
    """
    if ports is None:
        return "*"
    values = sorted(int(p) for p in ports)
    ranges: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        ranges.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    if len(ranges) > limit:
        return ",".join(ranges[:limit]) + f",... ({len(values)} ports)"
    return ",".join(ranges)


def _when(text: str, line: int, source: str) -> datetime | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{source}:{line}: {text!r} is not an ISO date or time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None)


def parse_labels(text: str, source: str = "labels") -> list[Label]:
    """Labels from CSV text (format in the module docstring)."""
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "source" not in fields:
        raise InputError(f"{source}: the first line must be the header 'source,ports,start,end'")
    reader.fieldnames = fields
    labels = []
    for number, row in enumerate(reader, 2):
        src = (row.get("source") or "").strip()
        if not src or src.startswith("#"):
            continue
        try:
            ipaddress.ip_network(src, strict=False)
        except ValueError:
            raise InputError(f"{source}:{number}: {src!r} is not an address or network") from None
        try:
            ports = parse_ports(row.get("ports") or "")
        except ValueError as exc:
            raise InputError(f"{source}:{number}: {exc}") from None
        labels.append(Label(src, ports, _when(row.get("start") or "", number, source),
                            _when(row.get("end") or "", number, source), number))
    return labels


def load_labels(path: str | Path) -> list[Label]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the labels ({exc.strerror})") from exc
    return parse_labels(text, str(path))


def evaluate(store: Store, labels: list[Label]) -> Evaluation:
    """Match the store's verdicts to ``labels`` (see the module docstring)."""
    statuses = ", ".join(f"'{s}'" for s in FLAGGED_STATUSES)
    rows = store.con.execute(
        f"""SELECT src_hi, src_lo, source, status, first_seen, last_seen, port_list, kind, type,
                   tool, detector, flagged_at, flagged_probes
            FROM scanners WHERE status IN ({statuses}) AND prefix = 128"""
    ).fetchall()
    names = ("src_hi", "src_lo", "source", "status", "first_seen", "last_seen", "port_list",
             "kind", "type", "tool", "detector", "flagged_at", "flagged_probes")
    verdicts = [dict(zip(names, r, strict=True)) for r in rows]
    hi = np.array([v["src_hi"] for v in verdicts], np.uint64)
    lo = np.array([v["src_lo"] for v in verdicts], np.uint64)
    nets = CidrSet.parse([lab.source for lab in labels]) if labels else None
    matched = np.zeros(len(verdicts), np.bool_)
    results = []
    for index, lab in enumerate(labels):  # one pass per label over its network's verdicts
        inside: Any = CidrSet([nets.networks[index]]).contains(hi, lo) if nets else []
        found = []
        for j in np.flatnonzero(inside):
            v = verdicts[j]
            if lab.end is not None and v["first_seen"] > lab.end:
                continue
            if lab.start is not None and v["last_seen"] < lab.start:
                continue
            if lab.ports is not None and v["port_list"] and \
                    not set(lab.ports).intersection(v["port_list"]):
                continue
            matched[j] = True
            start = v["first_seen"] if lab.start is None else max(v["first_seen"], lab.start)
            delay = (v["flagged_at"] - start).total_seconds() if v["flagged_at"] else None
            found.append({**{k: v[k] for k in ("source", "status", "kind", "type", "tool",
                                               "detector")},
                          "probes_to_flag": v["flagged_probes"],
                          "seconds_to_flag": None if delay is None else max(delay, 0.0)})
        found.sort(key=lambda f: (f["seconds_to_flag"] is None, f["seconds_to_flag"] or 0))
        results.append(LabelResult(lab, bool(found), found))
    starts = [lab.start for lab in labels if lab.start is not None]
    ends = [lab.end for lab in labels if lab.end is not None]
    span_lo = min(starts) if starts else None
    span_hi = max(ends) if ends else None
    in_span = np.array([
        (span_hi is None or v["first_seen"] <= span_hi)
        and (span_lo is None or v["last_seen"] >= span_lo) for v in verdicts
    ], np.bool_)
    tp = int((matched & in_span).sum()) if verdicts else 0
    fp = int((~matched & in_span).sum()) if verdicts else 0
    return Evaluation(results, tp, fp)


def labels_from_truth(truth: dict[str, Any]) -> str:
    """Labels CSV for the scanners of a generator truth file (bench/gen_iptables_log.py)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["source", "ports", "start", "end"])
    for c in truth.get("campaigns", []):
        if "src" not in c:
            continue
        ports = c.get("ports") or []
        writer.writerow([c["src"], ";".join(str(p) for p in ports), c.get("first", ""),
                         c.get("last", "")])
    return out.getvalue()

