"""The 2005 backtest: the level portradar would have raised each day on 445/tcp.

Two cases from the bundled history, both on port 445:

* **MS05-027** (SMB), patched 2005-06-14; Symantec DeepSight saw a one-day probing spike
  on 2005-06-17 that returned to normal; no exploit was public, no worm followed, ISC's
  InfoCon stayed green;
* **MS05-039** (Plug and Play), patched 2005-08-09; the houseofdabus exploit on
  2005-08-10; the Zotob worm from 2005-08-13.

The traffic is the simulator's reconstruction (:func:`portradar.sim.ms05`: ten sensors,
445/tcp background from 2005-05-02, a one-day sweep on 06-17 and a worm doubling every
18 hours from 08-13).  Every day ``D`` the spike detector runs over the activity up to
``D`` only, the knowledge base answers as of ``D`` (facts dated later are invisible), and
the criteria of :mod:`portradar.assess.threat_level` decide, twice: with the exposure
unknown (no assets, no accepted connections: what a sensor-only deployment knows) and
for a network with one Windows 2000 host open on 445 from outside and no 2005 patches.

``python -m portradar.assess.backtest --write docs/assessment.md`` regenerates the
tables between the ``backtest`` markers of that page; a test checks they are current.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from portradar.assess.spike_evidence import from_spike
from portradar.assess.threat_level import AssessParams, decide
from portradar.intel.assets import import_assets
from portradar.intel.exposure import port_exposure
from portradar.intel.vulnerabilities import KnowledgeBase
from portradar.store.duckdb_store import Store

#: The documented windows (inclusive).
CASES: dict[str, tuple[date, date]] = {
    "MS05-027 (June 2005)": (date(2005, 6, 10), date(2005, 6, 24)),
    "MS05-039 / Zotob (August 2005)": (date(2005, 8, 5), date(2005, 8, 20)),
}
#: The simulator seed of the documented run (the ``ms05`` preset's default).
SEED = 5
EXPOSED_HOST = "192.0.2.10"
BEGIN, END = "<!-- backtest:begin -->", "<!-- backtest:end -->"


@dataclass
class Day:
    """One day of the backtest."""

    day: date
    level: str
    criterion: str
    level_exposed: str
    criterion_exposed: str
    level_patches_only: str
    criterion_patches_only: str
    stage: str
    spike: str
    vulnerabilities: str
    sources: int
    why: str


def _days(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def run_backtest(seed: int = SEED, params: AssessParams | None = None
                 ) -> dict[str, list[Day]]:
    """The day-by-day levels of both cases."""
    from portradar.sim import ms05, simulate
    from portradar.spikes import detect_spikes

    params = params or AssessParams()
    sim = simulate(ms05(seed))
    total = sim.total.take(sim.total.rows_of(6, 445))
    by = sim.by_sensor.take(sim.by_sensor.rows_of(6, 445))
    out: dict[str, list[Day]] = {}
    with tempfile.TemporaryDirectory() as tmp, Store.open(":memory:") as store:
        kb = KnowledgeBase.open(store)
        assets = Path(tmp) / "assets.csv"
        assets.write_text("host,open_ports,os,installed_patches\n"
                          f"{EXPOSED_HOST},445;139,Windows 2000,KB823980\n")
        import_assets(store, assets)
        for case, (first, last) in CASES.items():
            rows = []
            for day in _days(first, last):
                upto = total.bucket_index(day) + 1
                t = _truncate(total, upto)
                b = _truncate(by, upto)
                spikes = [from_spike(s, t) for s in detect_spikes(t, b)
                          if (s.proto, s.port) == (6, 445)]
                vulns = kb.port_vulnerabilities(445, 6, as_of=day, days=params.window_days)
                blind = decide(as_of=day, port=445, proto=6, vulns=vulns, spikes=spikes,
                               exposure=None, params=params)
                bare = [{**v, "exploit_published": None, "scanning": None,
                         "mass_attack": None, "kev_added": None, "epss": None} for v in vulns]
                alone = decide(as_of=day, port=445, proto=6, vulns=bare, spikes=spikes,
                               exposure=None, params=params)
                exposure = port_exposure(store, 445, 6, vulns=vulns, as_of=day)
                seen = decide(as_of=day, port=445, proto=6, vulns=vulns, spikes=spikes,
                              exposure=exposure, params=params)
                rows.append(Day(
                    day=day, level=blind.level, criterion=blind.criterion,
                    level_exposed=seen.level, criterion_exposed=seen.criterion,
                    level_patches_only=alone.level, criterion_patches_only=alone.criterion,
                    stage=blind.stage, spike=_spike_text(blind.spikes, day),
                    vulnerabilities=_vuln_text(blind.vulnerabilities, day),
                    sources=int(total.sources[0, upto - 1]),
                    why=_why(blind.criterion, seen.criterion, alone.criterion)))
            out[case] = rows
    return out


def _truncate(m: Any, upto: int) -> Any:
    from dataclasses import replace

    def cut(a: Any) -> Any:
        return None if a is None else a[:, :upto]

    return replace(m, sources=cut(m.sources), records=cut(m.records),
                   new_sources=cut(m.new_sources), targets=cut(m.targets))


def _spike_text(spikes: list[Any], day: date) -> str:
    if not spikes:
        return "-"
    s = spikes[0]
    state = "open" if s.active_on(day) else f"ended {s.end:%m-%d}"
    return f"{s.kind} from {s.onset:%m-%d} ({state})"


def _vuln_text(vulns: list[dict[str, Any]], day: date) -> str:
    parts = []
    for v in vulns:
        facts = []
        if v.get("patched"):
            facts.append(f"patched {(day - v['patched']).days} d ago")
        if v.get("exploit_published"):
            facts.append(f"exploit {v['exploit_published']:%m-%d}")
        if v.get("mass_attack"):
            facts.append(f"worm {v['mass_attack']:%m-%d}")
        parts.append(f"{v.get('bulletins') or v['cve']} ({', '.join(facts)})")
    return "; ".join(parts) or "-"


_WHY = {
    "G1": "no new threat with an action beyond routine patching",
    "Y1": "a spike on 445 and a fresh vulnerability or exploit on its services",
    "Y2": "a vulnerability patched this month now has a public exploit",
    "Y3": "a fresh exploit and exposed hosts missing the patch",
    "Y4": "a mass attack, but nothing exposed",
    "O1": "a mass attack (worm) on 445, exposure not known to be nil",
    "O2": "spike + public exploit + exposed unpatched hosts",
    "R1": "a mass attack and exposed hosts missing the patch",
}


def _why(blind: str, exposed: str, alone: str) -> str:
    text = f"{blind}: {_WHY[blind]}"
    if exposed != blind:
        text += f"; with the exposed host {exposed}: {_WHY[exposed]}"
    if alone != blind:
        text += f"; from the sensors and patch dates alone {alone}: {_WHY[alone]}"
    return text


def markdown(results: dict[str, list[Day]]) -> str:
    """The tables of ``docs/assessment.md`` (between the backtest markers)."""
    lines = [f"Generated by `python -m portradar.assess.backtest --write docs/assessment.md` "
             f"(simulator seed {SEED}); do not edit by hand.", ""]
    for case, rows in results.items():
        lines += [f"#### {case}", "",
                  "| day | 445 sources | spike (detector, data up to the day) | "
                  "vulnerabilities known that day | stage | exposure unknown | "
                  "one exposed unpatched host | sensors + patch dates only | why |",
                  "|---|---:|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.day} | {r.sources:,} | {r.spike} | {r.vulnerabilities} | "
                         f"{r.stage} | **{r.level}** ({r.criterion}) | "
                         f"**{r.level_exposed}** ({r.criterion_exposed}) | "
                         f"**{r.level_patches_only}** ({r.criterion_patches_only}) | {r.why} |")
        lines.append("")
    return "\n".join(lines)


def write_doc(path: Path, text: str) -> bool:
    """Replace the text between the markers; returns whether the file changed."""
    doc = path.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n{text}\n{END}{tail}"
    if new != doc:
        path.write_text(new)
        return True
    return False


def doc_section(path: Path) -> str:
    doc = path.read_text()
    return doc.partition(BEGIN)[2].partition(END)[0].strip("\n")


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - maintenance entry
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="update the tables in this Markdown file")
    args = parser.parse_args(argv)
    text = markdown(run_backtest())
    if args.write:
        print("updated" if write_doc(args.write, text) else "unchanged", args.write)
    else:
        print(text)


if __name__ == "__main__":  # pragma: no cover
    main()
