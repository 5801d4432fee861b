"""``portradar campaigns`` and ``portradar campaign ID``: distributed scans, grouped.

A campaign is many sources probing alike in the same period (the same port set, the
same targets, one network, one tool; :mod:`portradar.scan.campaigns`).  The listing
shows each with its rule, members, span, probes, targets, busiest ports, commonest
tool / shape / type and evidence; ``campaign ID`` adds the members and the flagged
scanners among them.  Like ``scanners``, detection first brings the verdicts up to
date with the events.
"""

from __future__ import annotations

from typing import Any

import click

from portradar.cli.options import (
    err,
    friendly,
    open_store,
    output_format,
    output_options,
    parse_when,
)
from portradar.cli.scanners_cmd import _naive, _run_detection, _ts, print_fields

LIST_COLUMNS = ["id", "rule", "members", "first_seen", "last_seen", "probes", "targets",
                "ports", "tool", "kind", "type", "evidence"]
#: Members printed by ``campaign ID`` as a table (JSON and CSV give up to 1,000).
MEMBERS_SHOWN = 20


def _ports_text(ports: list[dict[str, Any]]) -> str:
    """``tcp/445 (120), tcp/139 (80)``: the busiest ports and how many members probed each.

    >>> _ports_text([{"proto": "tcp", "port": 445, "members": 120}])
    'tcp/445 (120)'
    """
    return ", ".join(f"{p['proto']}/{p['port']} ({p['members']:,})" for p in ports)


def _row_out(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    out = dict(row)
    out.pop("port_keys", None)
    if fmt == "json":
        out["first_seen"] = _iso(row["first_seen"])
        out["last_seen"] = _iso(row["last_seen"])
        return out
    out["ports"] = _ports_text(row["ports"])
    out["first_seen"], out["last_seen"] = _ts(row["first_seen"]), _ts(row["last_seen"])
    if fmt == "table":
        out["evidence"] = str(row.get("evidence") or "").split("; ")[0]
    return out


def _n(count: int, noun: str) -> str:
    """``1 port``, ``2 ports``, ``1,000 ports``.

    >>> _n(1, "port"), _n(1000, "port")
    ('1 port', '1,000 ports')
    """
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _iso(value: Any) -> Any:
    return value.isoformat() + "+00:00" if hasattr(value, "isoformat") else value


@click.command()
@click.option("--port", "port_", type=click.IntRange(0, 65535),
              help="Only campaigns whose flagged members probed this port.")
@click.option("--since", help="Only campaigns active from this time (ISO).")
@click.option("--until", help="Only campaigns active up to this time (ISO).")
@click.option("--limit", "-n", default=50, show_default=True)
@output_options
@click.pass_context
@friendly
def campaigns(ctx: click.Context, port_: int | None, since: str | None, until: str | None,
              limit: int, as_json: bool, as_csv: bool) -> None:
    """Distributed scans: groups of sources probing alike in the same period.

    Lists each campaign's id, rule (port-set, target-set, network, tool), members,
    span, probes, targets, busiest ports (with how many members probed each), the
    commonest tool, shape and scan type, and the evidence.
    """
    from portradar.cli.render import render
    from portradar.scan.campaign_query import campaign_count, campaign_filter, campaign_rows

    fmt = output_format(as_json, as_csv)
    where, params = campaign_filter(port_, _naive(parse_when(since)) if since else None,
                                    _naive(parse_when(until)) if until else None)
    with open_store(ctx) as store:
        _run_detection(store, False)
        rows = campaign_rows(store, where, params, limit=limit)
        total = campaign_count(store, where, params)
    out = [_row_out(r, fmt) for r in rows]
    render(out, LIST_COLUMNS if fmt != "json" or not out else list(out[0].keys()), fmt,
           title=f"campaigns ({len(out):,} of {total:,})" if fmt == "table" else None)
    if fmt == "table" and not out:
        err.print("no campaigns: no group of flagged sources probed alike")


@click.command()
@click.argument("campaign_id", type=click.IntRange(0, 2**31 - 1))
@output_options
@click.pass_context
@friendly
def campaign(ctx: click.Context, campaign_id: int, as_json: bool, as_csv: bool) -> None:
    """One campaign in full: the figures, its members and the flagged scanners among them."""
    from portradar.cli.render import render
    from portradar.scan.campaign_query import campaign_members, campaign_rows

    fmt = output_format(as_json, as_csv)
    with open_store(ctx) as store:
        _run_detection(store, False)
        found = campaign_rows(store, ["campaign_id = ?"], [campaign_id], limit=1)
        if not found:
            raise click.ClickException(f"no campaign {campaign_id} (see 'portradar campaigns')")
        row = _row_out(found[0], fmt)
        row["member_list"] = campaign_members(store, campaign_id, 1000)
        flagged = store.con.execute(
            """SELECT source, probes, ports, targets, kind, type, tool, detector
               FROM scanners WHERE campaign_id = ? ORDER BY probes DESC, src_hi, src_lo
               LIMIT 100""", [campaign_id]).fetchall()
    row["scanners"] = [dict(zip(("source", "probes", "ports", "targets", "kind", "type", "tool",
                                 "detector"), r, strict=True)) for r in flagged]
    if fmt == "json":
        render([row], list(row.keys()), "json")
        return
    if fmt == "csv":
        row["member_list"] = ";".join(row["member_list"])
        row["scanners"] = ";".join(s["source"] for s in row["scanners"])
        render([row], list(row.keys()), "csv")
        return
    members = row["member_list"]
    shown = ", ".join(members[:MEMBERS_SHOWN])
    if row["members"] > MEMBERS_SHOWN:
        shown += f", ... ({row['members']:,} in all; --json lists up to 1,000)"
    print_fields(f"campaign {campaign_id}: {row['rule']}", (
        ("seen", f"{row['first_seen']} .. {row['last_seen']}"),
        ("members", f"{row['members']:,}"),
        ("probes", f"{row['probes']:,} to {_n(row['targets'], 'target')}"),
        ("ports", row["ports"] or "-"),
        ("tool", row["tool"] or "-"), ("kind", row["kind"] or "-"),
        ("type", row["type"] or "-"), ("network", row.get("network") or "-"),
        ("evidence", str(row["evidence"]).replace("; ", "\n")),
        ("member list", shown),
        ("scanners", "\n".join(
            f"{s['source']}: {_n(s['probes'], 'probe')}, {_n(s['ports'], 'port')}, "
            f"{_n(s['targets'], 'target')}, {s['kind']} {s['type']} {s['tool'] or ''}".rstrip()
            for s in row["scanners"][:MEMBERS_SHOWN]) or "-"),
    ))


commands = [campaigns, campaign]
