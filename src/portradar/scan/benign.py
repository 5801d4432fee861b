"""Known benign scanners: research projects that scan the Internet on purpose, by list.

Censys, Shodan, the University of Michigan's ZMap team, Shadowserver, Rapid7's Project
Sonar and others scan every address daily and publish the networks they scan from.
Their probes are real, so portradar still detects them and shows every figure; a
source inside a listed network is *marked* ``benign`` with the list's name for it,
never hidden: a security manager may still want to block them, and a spike made of
research scanners tells something different from one made of botnets.

The list is the user's (``portradar scanners --benign-list FILE``); portradar ships
none, since such lists change weekly.  Format, one network per line::

    # comment
    162.142.125.0/24  censys
    2602:80d:1000::/36 censys
    71.6.135.131      shodan census.shodan.io

A network in CIDR form or a bare address, then an optional name (the rest of the
line).  Commas also separate the two fields, so a published CSV of ``cidr,name``
imports as it is; a header line whose first field is not a network is skipped.

>>> blist = BenignList.parse("# research\\n162.142.125.0/24 censys\\n192.0.2.7,lab scanner\\n")
>>> from portradar.events.addresses import parse_addresses
>>> hi, lo = parse_addresses(["162.142.125.9", "192.0.2.7", "198.51.100.1"])
>>> blist.names(hi, lo)
['censys', 'lab scanner', '']
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np

from portradar.errors import InputError
from portradar.scan.cidr_set import CidrSet


class BenignList:
    """Named networks of known benign scanners."""

    def __init__(self, networks: list[tuple[str, str]]) -> None:
        self.entries = networks  # (network text, name)
        self._set = CidrSet([ipaddress.ip_network(n, strict=False) for n, _ in networks])

    @classmethod
    def parse(cls, text: str, source: str = "benign list") -> BenignList:
        entries: list[tuple[str, str]] = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.replace(",", " ", 1).split(None, 1)]
            try:
                net = ipaddress.ip_network(parts[0], strict=False)
            except ValueError:
                if not entries:
                    continue  # a header line before the first network
                raise InputError(f"{source}:{number}: {parts[0]!r} is not a network; "
                                 "write one CIDR (or address) and a name per line") from None
            entries.append((str(net), parts[1] if len(parts) > 1 else ""))
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path) -> BenignList:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"{path}: cannot read the benign list ({exc.strerror})") from exc
        return cls.parse(text, source=str(path))

    def to_text(self) -> str:
        return "".join(f"{net} {name}".rstrip() + "\n" for net, name in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def names(self, hi: np.ndarray, lo: np.ndarray) -> list[str]:
        """The list's name for each address ('' when not listed; the network when unnamed)."""
        labels = self._set.label_of(hi, lo)
        names = [name or net for net, name in self.entries]
        return [names[i] if i >= 0 else "" for i in labels]

    def contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return self._set.contains(hi, lo)
