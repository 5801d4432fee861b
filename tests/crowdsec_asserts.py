"""Read CrowdSec hub ``parser.assert`` files into Python structures (test helper).

Lines look like
``results["s01-parse"]["crowdsecurity/iptables-logs"][0].Evt.Parsed["src_ip"] == "1.2.3.4"``.
Returns ``{parser: {index: {"Success": bool, "Parsed.x": str, ...}}}``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

_LINE = re.compile(
    r'^results\["(?P<stage>[^"]+)"\]\["(?P<parser>[^"]+)"\]\[(?P<idx>\d+)\]\.'
    r'(?:(?P<success>Success)|Evt\.(?P<kind>Parsed|Meta|Unmarshaled)\[(?P<key>.+?)\])'
    r"\s*==\s*(?P<value>.+)$"
)


def parse_assert_file(
    path: Path, stage: str = "s01-parse"
) -> dict[str, dict[int, dict[str, object]]]:
    out: dict[str, dict[int, dict[str, object]]] = defaultdict(lambda: defaultdict(dict))
    for line in path.read_text().splitlines():
        m = _LINE.match(line.strip())
        if not m or m["stage"] != stage:
            continue
        raw = m["value"].strip()
        value: object = raw
        if raw in ("true", "false"):
            value = raw == "true"
        elif raw.startswith('"'):
            value = json.loads(raw)
        key = "Success" if m["success"] else f"{m['kind']}.{m['key'].strip(chr(34))}"
        out[m["parser"]][int(m["idx"])][key] = value
    return out
