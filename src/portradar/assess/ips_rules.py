"""Suricata and Snort rules that alert on inbound traffic to a port (and from a campaign).

One rule per port: an alert on connection attempts from ``$EXTERNAL_NET`` to
``$HOME_NET`` on the port (TCP: the SYN of each new connection, ``flags:S,12`` so ECN
bits do not hide it; UDP: every datagram), rate-limited to one alert per source per hour
(``threshold: type limit, track by_src``), so the IPS reports who knocks without
flooding.  With scanners, a second rule alerts on anything from them.  The syntax is the
common subset of Snort 2.9 and Suricata 6/7.

Signature ids are in the range Snort reserves for local rules (1,000,000-1,999,999):
1,000,000 + port for TCP, 1,100,000 + port for UDP, 1,200,000 + port for a campaign's
scanners.  Like the block rules, everything written is validated: the port and protocol,
the addresses (parsed), and the message (reduced to safe characters; no ``;`` or ``"``).

>>> for part in ips_rules(445, "tcp", context="MS05-027").split("; "):
...     print(part)
alert tcp $EXTERNAL_NET any -> $HOME_NET 445 (msg:"PORTRADAR inbound tcp/445 MS05-027"
flow:to_server
flags:S,12
threshold: type limit, track by_src, count 1, seconds 3600
classtype:attempted-recon
sid:1000445
rev:1;)
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Iterable

from portradar.assess.block_rules import block_spec, clean_label, net_text
from portradar.errors import PortradarError

#: Output formats of ``portradar rules PORT --for FORMAT`` (IPS rules).
FORMATS = ("suricata", "snort")
#: One alert per source and rule per hour (Snort/Suricata ``threshold`` limit).
ALERT_PERIOD_SECONDS = 3600
SID_BASE = {"tcp": 1_000_000, "udp": 1_100_000, "scanners": 1_200_000}


def ips_rules(port: int, proto: str = "tcp", *, fmt: str = "suricata",
              scanners: Iterable[str] = (), context: str = "") -> str:
    """The rule text (one rule per line)."""
    if fmt not in FORMATS:
        raise PortradarError(f"unknown IPS format {fmt!r} (use suricata or snort)")
    spec = block_spec(port, proto, scanners=scanners, label=context)
    msg = clean_label(f"PORTRADAR inbound {spec.proto}/{spec.port} {spec.label}", 100)
    limit = (f"threshold: type limit, track by_src, count 1, "
             f"seconds {ALERT_PERIOD_SECONDS};")
    match = "flow:to_server; flags:S,12; " if spec.proto == "tcp" else ""
    rules = [f'alert {spec.proto} $EXTERNAL_NET any -> $HOME_NET {spec.port} (msg:"{msg}"; '
             f"{match}{limit} classtype:attempted-recon; "
             f"sid:{SID_BASE[spec.proto] + spec.port}; rev:1;)"]
    if spec.scanners:
        addrs = ",".join(net_text(n) for n in spec.scanners)
        smsg = clean_label(f"PORTRADAR campaign scanner {spec.proto}/{spec.port}", 100)
        rules.append(f'alert ip [{addrs}] any -> $HOME_NET any (msg:"{smsg}"; {limit} '
                     f"classtype:attempted-recon; sid:{SID_BASE['scanners'] + spec.port}; "
                     f"rev:1;)")
    return "\n".join(rules) + "\n"
