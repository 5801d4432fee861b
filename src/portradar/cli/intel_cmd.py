"""``portradar intel``, ``assets``, ``exposure``, ``assess``, ``rules``: from spike to decision.

* ``portradar intel import FILE...``: CISA KEV, NVD JSON 2.0, MSRC patch CSV, FIRST EPSS,
  CVE → port maps, history CSV (the kind is recognised from the content);
* ``portradar intel port 445``: what is known about the services behind a port;
* ``portradar assets import FILE``: nmap XML (``nmap -oX``) or an asset CSV;
* ``portradar exposure 445``: my hosts reachable on the port and the patches they lack;
* ``portradar assess [PORT]``: the level (green/yellow/orange/red) with reasons and actions;
* ``portradar rules 445 --for nftables``: the rules to apply.

The day every question is asked about (``--as-of``) defaults to the day of the newest
event in the store (event time, so a replay gives the same answers); with no events at
all it is today.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click

from portradar.cli.options import err, friendly, open_store, output_format, output_options

LEVEL_STYLE = {"green": "green", "yellow": "yellow", "orange": "dark_orange", "red": "red"}


def _proto(text: str) -> int:
    from portradar.assess.block_rules import validate_proto

    return {"tcp": 6, "udp": 17}[validate_proto(text)]


def _as_of(store: Any, text: str | None) -> date:
    from portradar.assess.threat_level import latest_day

    if text:
        try:
            return date.fromisoformat(text[:10])
        except ValueError as exc:
            raise click.BadParameter(f"{text!r} is not an ISO date", param_hint="--as-of") \
                from exc
    return latest_day(store) or datetime.now(tz=UTC).date()


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()}
            for r in rows]


as_of_option = click.option("--as-of", "as_of", help="The day to ask about (ISO date; "
                            "default: the newest event's day).")
proto_option = click.option("--proto", default="tcp", show_default=True,
                            type=click.Choice(["tcp", "udp"]))
port_argument = click.argument("port", type=click.IntRange(1, 65535))


# --- intel -------------------------------------------------------------------------


@click.group()
def intel() -> None:
    """Vulnerability knowledge: import feeds, ask about a port."""


@intel.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--kind", help="Skip recognition: cisa-kev, nvd, msrc, epss, cve-port-map, "
                             "history.")
@click.option("--strict", is_flag=True, help="A bad record fails the whole file.")
@click.option("--force", is_flag=True, help="Apply a file even if it was imported before.")
@output_options
@click.pass_context
@friendly
def intel_import(ctx: click.Context, files: tuple[str, ...], kind: str | None, strict: bool,
                 force: bool, as_json: bool, as_csv: bool) -> None:
    """Import knowledge feeds, each in one transaction (a bad file changes nothing)."""
    from portradar.cli.render import render
    from portradar.intel.vulnerabilities import KnowledgeBase

    rows = []
    with open_store(ctx) as store:
        kb = KnowledgeBase.open(store)
        for f in files:
            rows.append(kb.import_file(f, kind=kind, strict=strict, force=force))
    render(rows, ["file", "kind", "version", "status", "records", "rows", "skipped"],
           output_format(as_json, as_csv), title="knowledge imported")
    for r in rows:
        for example in r.get("examples", [])[:5]:
            err.print(f"  skipped {example}", markup=False)


@intel.command("status")
@output_options
@click.pass_context
@friendly
def intel_status(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """Rows per knowledge table and the feeds imported."""
    from portradar.cli.render import render
    from portradar.intel.vulnerabilities import KnowledgeBase, run

    with open_store(ctx) as store:
        kb = KnowledgeBase.open(store)
        rows = [{"table": k, "rows": v} for k, v in kb.counts().items()]
        feeds = run(store, "SELECT kind, name, version, records, skipped, imported_at "
                           "FROM intel_imports ORDER BY imported_at").to_pylist()
    fmt = output_format(as_json, as_csv)
    render(rows, ["table", "rows"], fmt, title="knowledge base")
    if fmt == "table":
        render(_plain(feeds), ["kind", "name", "version", "records", "skipped", "imported_at"],
               fmt, title="feeds")


@intel.command("port")
@port_argument
@proto_option
@as_of_option
@click.option("--days", type=click.IntRange(1, 100000),
              help="Only vulnerabilities patched or newly exploited in these days.")
@output_options
@click.pass_context
@friendly
def intel_port(ctx: click.Context, port: int, proto: str, as_of: str | None, days: int | None,
               as_json: bool, as_csv: bool) -> None:
    """The services behind a port and their known vulnerabilities, newest patch first."""
    from rich.console import Console

    from portradar.cli.render import render
    from portradar.intel.port_registry import PortRegistry
    from portradar.intel.vulnerabilities import KnowledgeBase

    with open_store(ctx) as store:
        kb = KnowledgeBase.open(store)
        when = date.fromisoformat(as_of) if as_of else None
        rows = kb.port_vulnerabilities(port, proto, as_of=when, days=days)
        history = kb.port_history(port, proto, as_of=when)
    fmt = output_format(as_json, as_csv)
    reg = PortRegistry.bundled()
    if fmt == "table":
        services = reg.lookup(port, proto)
        freq = reg.open_frequency(port, proto)
        desc = "; ".join(f"{s.name} ({s.description})" for s in services) or "unregistered"
        Console().print(f"[bold]{proto}/{port}[/bold]: {desc}"
                        + (f"; nmap open frequency {freq:.4f}" if freq is not None else ""))
    render(_plain(rows), ["cve", "bulletins", "name", "patched", "exploit_published",
                          "mass_attack", "kev_added", "epss", "port_sources", "sources"], fmt,
           title=f"vulnerabilities behind {proto}/{port}")
    if fmt == "table" and history:
        render(_plain(history), ["event", "bulletin", "patched", "exploit_published",
                                 "scanning", "mass_attack"], fmt, title="history")


# --- assets and exposure -----------------------------------------------------------


@click.group()
def assets() -> None:
    """Your hosts, their open ports and installed patches."""


@assets.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["nmap", "csv"]),
              help="nmap XML (nmap -oX) or CSV (host, open_ports, os, installed_patches); "
                   "default: from the content.")
@click.option("--strict", is_flag=True, help="A bad row fails the whole file.")
@output_options
@click.pass_context
@friendly
def assets_import(ctx: click.Context, files: tuple[str, ...], fmt: str | None, strict: bool,
                  as_json: bool, as_csv: bool) -> None:
    """Import assets; a host imported again replaces what was known about it."""
    from portradar.cli.render import render
    from portradar.intel.assets import import_assets

    with open_store(ctx) as store:
        rows = [import_assets(store, f, fmt=fmt, strict=strict) for f in files]
    render(rows, ["file", "format", "hosts", "open_ports", "patches", "skipped"],
           output_format(as_json, as_csv), title="assets imported")


@assets.command("list")
@output_options
@click.pass_context
@friendly
def assets_list(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """Every host with its open ports and patches."""
    from portradar.cli.render import render
    from portradar.intel.assets import list_assets

    with open_store(ctx) as store:
        rows = list_assets(store)
    render(rows, ["host", "hostname", "os", "open_ports", "patches", "source"],
           output_format(as_json, as_csv), title="assets")


@click.command()
@port_argument
@proto_option
@as_of_option
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 100000),
              help="Relevant vulnerabilities: patched or newly exploited in these days.")
@click.option("--internal", multiple=True, metavar="CIDR",
              help="Your networks: connections from them are not 'from outside'.")
@output_options
@click.pass_context
@friendly
def exposure(ctx: click.Context, port: int, proto: str, as_of: str | None, days: int,
             internal: tuple[str, ...], as_json: bool, as_csv: bool) -> None:
    """Which of my hosts are reachable on PORT from outside, and which lack the patches."""
    from portradar.cli.render import render
    from portradar.intel.exposure import port_exposure
    from portradar.intel.vulnerabilities import KnowledgeBase

    with open_store(ctx) as store:
        day = _as_of(store, as_of)
        kb = KnowledgeBase.open(store)
        vulns = kb.port_vulnerabilities(port, proto, as_of=day, days=days)
        exp = port_exposure(store, port, _proto(proto), vulns=vulns, as_of=day,
                            internal=internal)
    rows = [h.as_row() for h in exp.hosts]
    fmt = output_format(as_json, as_csv)
    if fmt == "table" and not exp.known:
        err.print("exposure unknown: no accepted connections in the logs and no assets; "
                  "run 'portradar assets import'")
    render(_plain(rows), ["host", "hostname", "os", "evidence", "connections", "sources",
                          "last_seen", "missing", "unknown"], fmt,
           title=f"exposure of {proto}/{port} on {day} ({len(vulns)} relevant vulnerabilities)")


# --- assessment and rules ----------------------------------------------------------


@click.command()
@click.argument("port", required=False, type=click.IntRange(1, 65535))
@proto_option
@as_of_option
@click.option("--internal", multiple=True, metavar="CIDR",
              help="Your networks: connections from them are not 'from outside'.")
@output_options
@click.pass_context
@friendly
def assess(ctx: click.Context, port: int | None, proto: str, as_of: str | None,
           internal: tuple[str, ...], as_json: bool, as_csv: bool) -> None:
    """The threat level of PORT (or of the busiest and your open ports), with reasons.

    Levels follow documented criteria (docs/assessment.md): a new threat, and an action
    you can take.  Spikes come from the spike detector run over the stored activity.
    """
    import json

    from rich.console import Console

    from portradar.assess.threat_level import LEVELS, assess_ports, candidate_ports
    from portradar.cli.render import render
    from portradar.intel.vulnerabilities import KnowledgeBase

    with open_store(ctx) as store:
        day = _as_of(store, as_of)
        kb = KnowledgeBase.open(store)
        targets = [(_proto(proto), port)] if port else candidate_ports(store, day)
        results = assess_ports(store, targets, as_of=day, internal=internal, kb=kb)
    results.sort(key=lambda a: (-LEVELS.index(a.level), a.port))
    fmt = output_format(as_json, as_csv)
    if fmt == "json":
        json.dump([a.as_dict() for a in results], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    if fmt == "csv" or not port:
        rows = [{"proto": d["proto"], "port": d["port"], "service": d["service"],
                 "level": d["level"], "criterion": d["criterion"], "stage": d["stage"],
                 "vulnerabilities": ", ".join(v.get("bulletins") or v["cve"]
                                              for v in d["vulnerabilities"]),
                 "spikes": len(d["spikes"])} for d in (a.as_dict() for a in results)]
        render(rows, ["proto", "port", "service", "level", "criterion", "stage",
                      "vulnerabilities", "spikes"], fmt, title=f"assessment on {day}")
        if fmt == "csv":
            return
    console = Console(highlight=False)
    for a in results if port else [r for r in results if r.level != "green"]:
        style = LEVEL_STYLE[a.level]
        console.print(f"\n[bold]{a.as_dict()['proto']}/{a.port}[/bold] {a.service} on "
                      f"{a.as_of}: [bold {style}]{a.level.upper()}[/] ({a.criterion}, "
                      f"stage {a.stage})")
        console.print("why:", markup=False)
        for r in a.reasons:
            console.print(f"  - {r}", markup=False)
        console.print("do:", markup=False)
        for r in a.actions:
            console.print(f"  * {r}", markup=False)


@click.command()
@port_argument
@click.option("--for", "fmt", required=True,
              type=click.Choice(["nftables", "iptables", "ip6tables", "pf", "windows-powershell",
                                 "windows-netsh", "cisco-ios", "suricata", "snort",
                                 "patch-list"]),
              help="What to write.")
@proto_option
@click.option("--interface", help="The outside interface (default: every interface).")
@click.option("--scanners", is_flag=True,
              help="Also block the sources of the port's latest spike, with an expiry.")
@click.option("--expire-days", default=7, show_default=True, type=click.IntRange(1, 365),
              help="Scanners stay blocked this many days after they were last seen.")
@as_of_option
@click.pass_context
@friendly
def rules(ctx: click.Context, port: int, fmt: str, proto: str, interface: str | None,
          scanners: bool, expire_days: int, as_of: str | None) -> None:
    """Rules that block PORT at the perimeter (or alert on it in an IPS), or the patch list."""
    from portradar.assess import block_rules, ips_rules
    from portradar.assess.patch_list import patch_list
    from portradar.assess.spike_evidence import port_spikes
    from portradar.assess.threat_level import AssessParams, assess_port, relevant_spikes
    from portradar.cli.render import render

    p = _proto(proto)
    addrs: list[str] = []
    expires = None
    context = ""
    with open_store(ctx) as store:
        day = _as_of(store, as_of)
        if scanners or fmt in ("suricata", "snort", "patch-list"):
            assessment = assess_port(store, port, p, as_of=day)
            context = ", ".join(v.get("bulletins") or v["cve"]
                                for v in assessment.vulnerabilities[:3])
            if fmt == "patch-list":
                render(_plain(patch_list(assessment)), ["host", "os", "bulletin", "cve",
                                                        "kbs", "state", "evidence"], "table",
                       title=f"patches for hosts exposed on {proto}/{port}")
                return
        if scanners:
            spikes = relevant_spikes(port_spikes(store, port, p, as_of=day), day,
                                     AssessParams())
            if not spikes:
                err.print(f"no recent spike on {proto}/{port}: no scanners to block")
            else:
                s = spikes[0]
                since = datetime(s.onset.year, s.onset.month, s.onset.day, tzinfo=UTC)
                last = s.end or day + timedelta(days=1)
                until = datetime(last.year, last.month, last.day, tzinfo=UTC)
                addrs = block_rules.campaign_scanners(store, port, p, since=since,
                                                      until=until)
                expires = until + timedelta(days=expire_days)
    if fmt in ips_rules.FORMATS:
        click.echo(ips_rules.ips_rules(port, proto, fmt=fmt, scanners=addrs, context=context),
                   nl=False)
        return
    spec = block_rules.block_spec(port, proto, interface=interface, scanners=addrs,
                                  expires=expires, label=context)
    click.echo(block_rules.render_block(spec, fmt), nl=False)


commands: list[click.Command] = [intel, assets, exposure, assess, rules]
