"""Perimeter rules that block a port, and a blocklist of a campaign's scanners with an expiry.

One :class:`BlockSpec` (port, protocol, optional outside interface, scanners, expiry) is
written out for: nftables (``nft -f``), iptables / ip6tables (``iptables-restore
--noflush``), OpenBSD/FreeBSD pf (``pf.conf``), Windows Firewall (PowerShell
``New-NetFirewallRule`` and ``netsh advfirewall``) and Cisco IOS (extended ACL).

Safety first: nothing of what a user or a log gave is written into a rule unchecked.
The port is an ``int`` in 1..65535, the protocol ``tcp`` or ``udp``, addresses and
networks are parsed by :mod:`ipaddress` and written back in its canonical form, an
interface name must match :data:`IFACE_RE`, and the only free text (the label) is
reduced to letters, digits, space, dot, underscore and hyphen.  A bad value raises
:class:`~portradar.errors.PortradarError` before any text is produced.

Expiry where the firewall has one: nftables set element timeouts, iptables' ``time``
match (``--datestop``, UTC), Cisco IOS ``time-range ... absolute end``; pf and Windows
get the command that removes the entries, as a comment.

>>> spec = block_spec(445, "tcp", scanners=["198.51.100.7", "198.51.100.0/24"])
>>> print(render_block(spec, "cisco-ios"))
! portradar: block inbound tcp/445 at the perimeter
! and 2 campaign scanner(s), until no expiry
! load: paste in config mode, merge with your inbound ACL (it ends with permit any)
ip access-list extended PORTRADAR-IN
 remark portradar block TCP 445 inbound
 deny ip 198.51.100.0 0.0.0.255 any
 deny ip host 198.51.100.7 any
 deny tcp any any eq 445
 permit ip any any
!
<BLANKLINE>
>>> block_spec(70000, "tcp")
Traceback (most recent call last):
portradar.errors.PortradarError: port 70000 is not 1-65535
>>> block_spec(445, "tcp", interface='eth0"; drop')
Traceback (most recent call last):
portradar.errors.PortradarError: interface 'eth0"; drop' is not an interface name
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from portradar.errors import PortradarError

#: Interface names: letters, digits and ``_ . : / -`` (Cisco's ``GigabitEthernet0/0``).
IFACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,47}$")
_LABEL_RE = re.compile(r"[^A-Za-z0-9 ._/-]")
PROTOCOLS = ("tcp", "udp")

#: How long a campaign's scanners stay blocked by default: a week, long enough to
#: cover the follow-up waves of a campaign, short enough that reassigned (dynamic)
#: addresses are not blocked for long.  A choice; fail2ban and CrowdSec default to
#: minutes or hours for single offenders, a campaign lasts days.
DEFAULT_EXPIRY = timedelta(days=7)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class BlockSpec:
    """What to block; build it with :func:`block_spec`, which validates everything."""

    port: int
    proto: str
    interface: str | None = None
    scanners: tuple[Network, ...] = ()
    expires: datetime | None = None
    label: str = ""

    @property
    def v4(self) -> list[Network]:
        return [n for n in self.scanners if n.version == 4]

    @property
    def v6(self) -> list[Network]:
        return [n for n in self.scanners if n.version == 6]

    @property
    def title(self) -> str:
        return f"portradar block {self.proto.upper()} {self.port} inbound"


def validate_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise PortradarError(f"port {port!r} is not an integer")
    if not 1 <= port <= 65535:
        raise PortradarError(f"port {port} is not 1-65535")
    return port


def validate_proto(proto: Any) -> str:
    p = str(proto).strip().lower()
    if p not in PROTOCOLS:
        raise PortradarError(f"protocol {proto!r} cannot be blocked by port (use tcp or udp)")
    return p


def clean_label(text: str, limit: int = 48) -> str:
    """Free text reduced to what every rule language accepts inside quotes.

    >>> clean_label('MS05-027; "drop" $(rm)')
    'MS05-027 drop rm'
    """
    return re.sub(r"\s+", " ", _LABEL_RE.sub("", text)).strip()[:limit]


def block_spec(port: Any, proto: Any = "tcp", *, interface: str | None = None,
               scanners: Iterable[str] = (), expires: datetime | date | None = None,
               label: str = "") -> BlockSpec:
    """A validated :class:`BlockSpec` (raises on any bad value)."""
    if interface is not None and not IFACE_RE.match(interface):
        raise PortradarError(f"interface {interface!r} is not an interface name")
    nets = []
    for text in scanners:
        try:
            nets.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError as exc:
            raise PortradarError(f"scanner {text!r} is not an address or network") from exc
    when = expires
    if isinstance(when, date) and not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day, tzinfo=UTC)
    if isinstance(when, datetime) and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return BlockSpec(port=validate_port(port), proto=validate_proto(proto), interface=interface,
                     scanners=tuple(sorted(set(nets), key=lambda n: (n.version, n))),
                     expires=when, label=clean_label(label))


def net_text(net: Network) -> str:
    """An address (no ``/32``) or a network in canonical form."""
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _header(spec: BlockSpec, comment: str, load: str) -> list[str]:
    lines = [f"{comment} portradar: block inbound {spec.proto}/{spec.port} at the perimeter"
             + (f" ({spec.label})" if spec.label else "")]
    if spec.scanners:
        until = spec.expires.strftime("%Y-%m-%d %H:%M UTC") if spec.expires else "no expiry"
        lines.append(f"{comment} and {len(spec.scanners)} campaign scanner(s), until {until}")
    lines.append(f"{comment} load: {load}")
    return lines


def _timeout(spec: BlockSpec, now: datetime | None) -> int | None:
    if spec.expires is None:
        return None
    now = now or datetime.now(tz=UTC)
    return int((spec.expires - now).total_seconds())


def nftables(spec: BlockSpec, now: datetime | None = None) -> str:
    """An ``nft -f`` file: its own table, replaced as a whole on every load."""
    iface = f'iifname "{spec.interface}" ' if spec.interface else ""
    if spec.interface and ("/" in spec.interface or len(spec.interface) > 15):
        raise PortradarError(f"{spec.interface!r} is not a Linux interface name")
    timeout = _timeout(spec, now)
    lines = ["#!/usr/sbin/nft -f", *_header(spec, "#", "nft -f FILE (replaces table inet "
                                                       "portradar_block)"),
             "table inet portradar_block", "delete table inet portradar_block",
             "table inet portradar_block {"]
    live = timeout is None or timeout > 0
    if spec.scanners and not live:
        lines.insert(-3, "# the scanners' block has already expired: they are not written")
    for version, nets in ((4, spec.v4), (6, spec.v6)):
        if not nets or not live:
            continue
        hosts_only = all(n.prefixlen == n.max_prefixlen for n in nets)
        # networks need an interval set; timeouts on interval sets need a recent kernel
        # (checked here on Linux 6.x); host-only sets stay plain for older ones
        flags = ", ".join(f for f, on in (("interval", not hosts_only),
                                          ("timeout", bool(timeout))) if on)
        lines += [f"\tset scanners_v{version} {{",
                  f"\t\ttype ipv{version}_addr"]
        if flags:
            lines.append(f"\t\tflags {flags}")
        items = [net_text(n) + (f" timeout {timeout}s" if timeout else "") for n in nets]
        lines.append("\t\telements = { " + ", ".join(items) + " }")
        lines.append("\t}")
    for chain, hook in (("input", "input"), ("forward", "forward")):
        lines += [f"\tchain {chain} {{",
                  f"\t\ttype filter hook {hook} priority filter - 5; policy accept;"]
        for version, nets in ((4, spec.v4), (6, spec.v6)):
            if nets and live:
                fam = "ip" if version == 4 else "ip6"
                lines.append(f"\t\t{iface}{fam} saddr @scanners_v{version} counter drop "
                             f'comment "portradar campaign scanners"')
        lines.append(f"\t\t{iface}{spec.proto} dport {spec.port} counter drop "
                     f'comment "{spec.title}"')
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _iptables(spec: BlockSpec, version: int) -> str:
    if spec.interface and ("/" in spec.interface or len(spec.interface) > 15):
        raise PortradarError(f"{spec.interface!r} is not a Linux interface name")
    tool = "iptables-restore" if version == 4 else "ip6tables-restore"
    iface = f"-i {spec.interface} " if spec.interface else ""
    lines = [*_header(spec, "#", f"{tool} --noflush < FILE (adds the chain PORTRADAR-BLOCK "
                                 f"and jumps to it from INPUT and FORWARD)"),
             "*filter", ":PORTRADAR-BLOCK - [0:0]"]
    stop = ""
    if spec.expires is not None:
        stop = f"-m time --datestop {spec.expires.astimezone(UTC):%Y-%m-%dT%H:%M:%S} "
    for net in spec.v4 if version == 4 else spec.v6:
        lines.append(f"-A PORTRADAR-BLOCK -s {net} {stop}-m comment --comment "
                     f'"portradar campaign scanner" -j DROP')
    lines.append(f"-A PORTRADAR-BLOCK -p {spec.proto} -m {spec.proto} --dport {spec.port} "
                 f'-m comment --comment "{spec.title}" -j DROP')
    lines += [f"-I INPUT 1 {iface}-j PORTRADAR-BLOCK", f"-I FORWARD 1 {iface}-j PORTRADAR-BLOCK",
              "COMMIT"]
    return "\n".join(lines) + "\n"


def iptables(spec: BlockSpec, now: datetime | None = None) -> str:
    """``iptables-restore --noflush`` input (IPv4 scanners)."""
    return _iptables(spec, 4)


def ip6tables(spec: BlockSpec, now: datetime | None = None) -> str:
    """``ip6tables-restore --noflush`` input (IPv6 scanners)."""
    return _iptables(spec, 6)


def pf(spec: BlockSpec, now: datetime | None = None) -> str:
    """pf.conf lines (a table of scanners and two quick block rules)."""
    on = f"on {spec.interface} " if spec.interface else ""
    lines = _header(spec, "#", "add to /etc/pf.conf (or an anchor), then pfctl -f /etc/pf.conf")
    if spec.scanners:
        lines.append("table <portradar_scanners> persist { "
                     + " ".join(str(n.network_address) if n.prefixlen == n.max_prefixlen
                                else str(n) for n in spec.scanners) + " }")
        if spec.expires is not None:
            lines.append(f"# at {spec.expires:%Y-%m-%d %H:%M} UTC remove them: "
                         f"pfctl -t portradar_scanners -T flush")
        lines.append(f"block drop in quick {on}from <portradar_scanners> to any")
    lines.append(f"block drop in quick {on}proto {spec.proto} from any to any port {spec.port}")
    return "\n".join(lines) + "\n"


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def windows_powershell(spec: BlockSpec, now: datetime | None = None) -> str:
    """PowerShell ``New-NetFirewallRule`` commands (run elevated)."""
    iface = f" -InterfaceAlias {_ps_quote(spec.interface)}" if spec.interface else ""
    lines = _header(spec, "#", "run in an elevated PowerShell")
    if spec.scanners:
        until = f" until {spec.expires:%Y-%m-%d}" if spec.expires else ""
        name = f"portradar scanners{until}"
        lines.append(f"New-NetFirewallRule -DisplayName {_ps_quote(name)} -Group 'portradar' "
                     f"-Direction Inbound -Action Block -RemoteAddress "
                     + ",".join(net_text(n) for n in spec.scanners) + f" -Profile Any{iface}")
        if spec.expires:
            lines.append(f"# at {spec.expires:%Y-%m-%d %H:%M} UTC: "
                         f"Remove-NetFirewallRule -DisplayName {_ps_quote(name)}")
    lines.append(f"New-NetFirewallRule -DisplayName {_ps_quote(spec.title)} -Group 'portradar' "
                 f"-Direction Inbound -Action Block -Protocol {spec.proto.upper()} "
                 f"-LocalPort {spec.port} -Profile Any{iface}")
    return "\n".join(lines) + "\n"


def windows_netsh(spec: BlockSpec, now: datetime | None = None) -> str:
    """``netsh advfirewall firewall add rule`` commands (run as administrator)."""
    lines = _header(spec, "rem", "run in an administrator command prompt")
    if spec.interface:
        lines.append("rem netsh rules apply to every interface (no per-interface option)")
    if spec.scanners:
        until = f" until {spec.expires:%Y-%m-%d}" if spec.expires else ""
        name = f"portradar scanners{until}"
        lines.append(f'netsh advfirewall firewall add rule name="{name}" dir=in action=block '
                     f"remoteip=" + ",".join(net_text(n) for n in spec.scanners) + " profile=any")
        if spec.expires:
            lines.append(f"rem at {spec.expires:%Y-%m-%d %H:%M} UTC: "
                         f'netsh advfirewall firewall delete rule name="{name}"')
    lines.append(f'netsh advfirewall firewall add rule name="{spec.title}" dir=in action=block '
                 f"protocol={spec.proto.upper()} localport={spec.port} profile=any")
    return "\n".join(lines) + "\n"


def _cisco_host(net: Network) -> str:
    if net.prefixlen == net.max_prefixlen:
        return f"host {net.network_address}"
    if net.version == 4:
        return f"{net.network_address} {net.hostmask}"
    return str(net)


def cisco_ios(spec: BlockSpec, now: datetime | None = None) -> str:
    """Cisco IOS extended ACLs (IPv4, and IPv6 when there are IPv6 scanners)."""
    lines = _header(spec, "!", "paste in config mode, merge with your inbound ACL "
                               "(it ends with permit any)")
    tr = ""
    if spec.scanners and spec.expires is not None:
        lines += ["time-range PORTRADAR-SCANNERS",
                  f" absolute end {spec.expires:%H:%M} {spec.expires.day} "
                  f"{spec.expires:%B %Y}", "!"]
        tr = " time-range PORTRADAR-SCANNERS"
    lines += ["ip access-list extended PORTRADAR-IN",
              f" remark {spec.title}"]
    lines += [f" deny ip {_cisco_host(n)} any{tr}" for n in spec.v4]
    lines += [f" deny {spec.proto} any any eq {spec.port}", " permit ip any any", "!"]
    if spec.v6:
        lines += ["ipv6 access-list PORTRADAR-IN6", f" remark {spec.title}"]
        lines += [f" deny ipv6 {_cisco_host(n)} any{tr}" for n in spec.v6]
        lines += [f" deny {spec.proto} any any eq {spec.port}", " permit ipv6 any any", "!"]
    if spec.interface:
        lines += [f"interface {spec.interface}", " ip access-group PORTRADAR-IN in"]
        if spec.v6:
            lines.append(" ipv6 traffic-filter PORTRADAR-IN6 in")
        lines.append("!")
    return "\n".join(lines) + "\n"


Renderer = Callable[[BlockSpec, datetime | None], str]

#: Output formats of ``portradar rules PORT --for FORMAT`` (block rules).
FORMATS: dict[str, Renderer] = {
    "nftables": nftables, "iptables": iptables, "ip6tables": ip6tables, "pf": pf,
    "windows-powershell": windows_powershell, "windows-netsh": windows_netsh,
    "cisco-ios": cisco_ios,
}


def render_block(spec: BlockSpec, fmt: str, *, now: datetime | None = None) -> str:
    if fmt not in FORMATS:
        raise PortradarError(f"unknown rule format {fmt!r} (known: {', '.join(FORMATS)})")
    return FORMATS[fmt](spec, now)


def campaign_scanners(store: Any, port: int, proto: int, *, since: datetime,
                      until: datetime, limit: int = 1000,
                      min_probes: int = 1) -> list[str]:
    """Sources that probed the port between ``since`` and ``until``, busiest first."""
    from portradar.events.addresses import format_addresses
    from portradar.intel.vulnerabilities import run

    tbl = run(store, """SELECT src_hi, src_lo, count(*) AS n FROM event_rows
                        WHERE dport = ? AND proto = ? AND ts >= ? AND ts < ?
                        GROUP BY ALL HAVING count(*) >= ? ORDER BY n DESC, src_hi, src_lo
                        LIMIT ?""",
              [validate_port(port), int(proto), since.replace(tzinfo=None),
               until.replace(tzinfo=None), int(min_probes), int(limit)])
    return format_addresses(tbl.column("src_hi").to_numpy(zero_copy_only=False),
                            tbl.column("src_lo").to_numpy(zero_copy_only=False))


def scanners_spec(port: int, proto: str, scanners: Sequence[str], *,
                  last_seen: datetime, ttl: timedelta = DEFAULT_EXPIRY,
                  interface: str | None = None, label: str = "") -> BlockSpec:
    """A spec whose scanners expire ``ttl`` after the campaign was last seen."""
    return block_spec(port, proto, interface=interface, scanners=scanners,
                      expires=last_seen + ttl, label=label)
