"""The patch list, restricted to the hosts that are exposed on the port.

For each exposed host (observed accepting connections from outside, or declared open
in the asset inventory) and each relevant vulnerability (by default those driving the
assessment: patched or newly exploited in the window), one row saying what to install
(bulletin, KBs, CVE) and the host's state: ``missing``, ``unknown`` (the inventory has
no patch list for it) or ``patched``; hosts where the patch does not apply are left out.
Rows are ordered by urgency: missing before unknown, observed before declared.
"""

from __future__ import annotations

from typing import Any

from portradar.assess.threat_level import Assessment

_ORDER = {"missing": 0, "unknown": 1, "patched": 2}


def patch_list(assessment: Assessment, *, include_patched: bool = False
               ) -> list[dict[str, Any]]:
    """Rows of (host, vulnerability, what to install, state, evidence)."""
    exp = assessment.exposure
    if exp is None:
        return []
    vulns = {v["cve"]: v for v in assessment.vulnerabilities}
    rows = []
    for h in exp.hosts:
        for cve, state in h.patch_state.items():
            if state == "not-applicable" or (state == "patched" and not include_patched):
                continue
            v = vulns.get(cve, {"cve": cve})
            rows.append({
                "host": h.host, "hostname": h.hostname, "os": h.os, "cve": cve,
                "bulletin": v.get("bulletins"), "kbs": v.get("kbs"),
                "patched_on": v.get("patched"), "state": state,
                "evidence": h.as_row()["evidence"], "connections": h.connections,
            })
    rows.sort(key=lambda r: (_ORDER[r["state"]], "observed" not in r["evidence"], r["host"],
                             r["cve"]))
    return rows
