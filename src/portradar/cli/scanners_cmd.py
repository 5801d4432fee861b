"""``portradar scanners``, ``portradar scanner ADDRESS`` and ``portradar evaluate scanners``.

Detection runs by itself when a view is asked for and the store has events the
verdicts do not cover yet (:func:`portradar.scan.detect.ensure_detection`), so the
listing is always current; only new events' sources are recomputed.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from portradar.cli.options import (
    err,
    friendly,
    open_store,
    output_format,
    output_options,
    parse_when,
)
from portradar.scan.scanner_query import SCAN_STATUSES, scanner_filter

#: What --status accepts: the default set, backscatter, or all of them.
STATUS_CHOICES = (*SCAN_STATUSES, "backscatter", "all")
SORTS = {"probes": "probes DESC", "first": "first_seen", "last": "last_seen DESC",
         "confidence": "confidence DESC, probes DESC", "targets": "targets DESC",
         "ports": "ports DESC", "flagged": "flagged_at"}
LIST_COLUMNS = ["source", "first_seen", "last_seen", "ports", "targets", "probes", "kind",
                "type", "tool", "detector", "confidence", "answered", "status", "evidence"]


def _settings(store: Any, dark: tuple[str, ...], benign_list: str | None) -> None:
    from portradar.scan.benign import BenignList
    from portradar.scan.detect import save_settings

    if dark:
        nets = [] if [d.lower() for d in dark] == ["none"] else list(dark)
        save_settings(store, dark=nets)
        err.print(f"dark space: {', '.join(nets) or 'none'} (kept in the store)")
    if benign_list:
        blist = BenignList.load(benign_list) if benign_list.lower() != "none" else BenignList([])
        save_settings(store, benign=blist)
        err.print(f"benign list: {len(blist)} networks (kept in the store)")


def _run_detection(store: Any, recompute: bool) -> None:
    from portradar.scan.detect import detect, ensure_detection

    summary = detect(store, full=True) if recompute else ensure_detection(store)
    if summary.mode != "unchanged":
        err.print(f"[dim]scan detection ({summary.mode}): {summary.events:,} events, "
                  f"{summary.sources:,} sources, {summary.flagged:,} verdicts, "
                  f"{summary.campaigns:,} campaigns in {summary.seconds:.1f} s[/dim]")


def _ts(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


def _row_out(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    from portradar.scan.evaluation import port_text

    out = dict(row)
    ports = row.get("port_list") or []
    if fmt == "table":
        out["ports"] = port_text(ports, limit=4) if ports else f"({row.get('port_keys', 0)} keys)"
        out["confidence"] = round(float(row["confidence"]), 3)
        out["evidence"] = str(row.get("evidence") or "").split("; ")[0]
        for key in ("first_seen", "last_seen", "flagged_at"):
            out[key] = _ts(row.get(key))
    elif fmt == "csv":
        out["ports"] = port_text(ports, limit=10**6)
        out["port_list"] = ";".join(str(p) for p in ports)
    return out


@click.command()
@click.option("--port", "port_", type=click.IntRange(0, 65535),
              help="Only sources that probed this port.")
@click.option("--since", help="Only sources active from this time (ISO).")
@click.option("--until", help="Only sources active up to this time (ISO).")
@click.option("--status", type=click.Choice(STATUS_CHOICES), default=None,
              help="Only this verdict (default: every scan; 'backscatter' for DoS echoes).")
@click.option("--kind", help="Only this shape (vertical, horizontal, block, random).")
@click.option("--type", "type_", help="Only this scan type (syn, connect, udp, ...).")
@click.option("--tool", help="Only this tool fingerprint (masscan, zmap, nmap, ...).")
@click.option("--sort", type=click.Choice(list(SORTS)), default="probes", show_default=True)
@click.option("--limit", "-n", default=50, show_default=True)
@click.option("--dark", multiple=True, metavar="CIDR",
              help="Declare unused address space (lower fan-out thresholds); 'none' clears. "
                   "Kept in the store.")
@click.option("--benign-list", metavar="FILE",
              help="Networks of known benign scanners ('CIDR name' per line); 'none' clears. "
                   "Kept in the store.")
@click.option("--recompute", is_flag=True, help="Recompute every verdict from all events.")
@output_options
@click.pass_context
@friendly
def scanners(ctx: click.Context, port_: int | None, since: str | None, until: str | None,
             status: str | None, kind: str | None, type_: str | None, tool: str | None,
             sort: str, limit: int, dark: tuple[str, ...], benign_list: str | None,
             recompute: bool, as_json: bool, as_csv: bool) -> None:
    """Who is probing us: sources flagged as scanners, how, with what, and why.

    Lists source, first and last seen, ports, targets, probes, shape (kind), scan type,
    tool, the detectors that fired, confidence, answered probes and the evidence.
    """
    from portradar.cli.render import render

    fmt = output_format(as_json, as_csv)
    where, params = scanner_filter(status, port_, {
        column: value.lower() if value else None
        for column, value in (("kind", kind), ("type", type_), ("tool", tool))})
    if since:
        where.append("last_seen >= ?")
        params.append(_naive(parse_when(since)))
    if until:
        where.append("first_seen <= ?")
        params.append(_naive(parse_when(until)))
    with open_store(ctx) as store:
        _settings(store, dark, benign_list)
        _run_detection(store, recompute)
        cur = store.con.execute(
            f"""SELECT * FROM scanners WHERE {' AND '.join(where)}
                ORDER BY {SORTS[sort]}, src_hi, src_lo LIMIT ?""", [*params, limit])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        total = _first(store.con.execute(
            f"SELECT count(*) FROM scanners WHERE {' AND '.join(where)}", params))
    out = [_row_out(r, fmt) for r in rows]
    if fmt == "json":
        for r in out:
            for key in ("src_hi", "src_lo"):
                r.pop(key, None)
        render(out, list(out[0].keys()) if out else LIST_COLUMNS, fmt)
        return
    columns = LIST_COLUMNS if fmt == "table" else [c for c in LIST_COLUMNS] + [
        "port_list", "flagged_at", "flagged_probes", "campaign_id", "benign_name"]
    shown = total[0] if total else 0
    render(out, columns, fmt,
           title=f"scanners ({len(out):,} of {shown:,})" if fmt == "table" else None)


def _naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    return value.astimezone(UTC).replace(tzinfo=None)


def _address_key(text: str) -> tuple[int, int, int]:
    """(hi, lo, prefix) of ADDRESS or of an IPv6 /64 network."""
    from portradar.events.addresses import address_key

    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            if net.version != 6 or net.prefixlen != 64:
                raise click.BadParameter("only an IPv6 /64 names an aggregate; give an address",
                                         param_hint="ADDRESS")
            value = int(net.network_address)
            return value >> 64, 0, 64
        hi, lo = address_key(text)
        return hi, lo, 128
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an IP address", param_hint="ADDRESS") from exc


@click.command()
@click.argument("address")
@output_options
@click.pass_context
@friendly
def scanner(ctx: click.Context, address: str, as_json: bool, as_csv: bool) -> None:
    """One source in full: the verdict, every figure behind it, and its busiest ports."""
    from portradar.cli.render import render
    from portradar.scan.detect import event_table
    from portradar.scan.evaluation import port_text

    fmt = output_format(as_json, as_csv)
    hi, lo, prefix = _address_key(address)
    with open_store(ctx) as store:
        _run_detection(store, False)
        cur = store.con.execute(
            "SELECT * FROM scanners WHERE src_hi = ? AND src_lo = ? AND prefix = ?",
            [hi, lo, prefix])
        names = [d[0] for d in cur.description]
        found = _first(cur)
        table, _ = event_table(store.con)
        match = "e.src_hi = ? AND e.src_lo = ?" if prefix == 128 else "e.src_hi = ?"
        args = [hi, lo] if prefix == 128 else [hi]
        top = store.con.execute(
            f"""SELECT e.proto, e.dport, count(*) AS probes,
                       count(DISTINCT (e.dst_hi, e.dst_lo)) AS targets
                FROM {table} e WHERE {match} GROUP BY ALL ORDER BY probes DESC, e.dport LIMIT 10""",
            args).fetchall()
        campaign = None
        if found is not None:
            row = dict(zip(names, found, strict=True))
            if row.get("campaign_id") is not None:
                c = _first(store.con.execute("SELECT rule, members, evidence FROM campaigns "
                                      "WHERE campaign_id = ?", [row["campaign_id"]]))
                campaign = None if c is None else f"#{row['campaign_id']} ({c[0]}): {c[2]}"
        else:
            seen = _first(store.con.execute(
                f"SELECT count(*), min(ts), max(ts) FROM {table} e WHERE {match}", args
            ))
    if found is None:
        if seen and seen[0]:
            err.print(f"{address}: {seen[0]:,} events from {_ts(seen[1])} to {_ts(seen[2])}, "
                      "no detector flagged it")
        else:
            err.print(f"{address}: never seen in this store")
        sys.exit(1)
    row["campaign"] = campaign
    row["top_ports"] = [{"proto": p, "port": d, "probes": n, "targets": t}
                        for p, d, n, t in top]
    for key in ("src_hi", "src_lo"):
        row.pop(key, None)
    if fmt == "json":
        render([row], list(row.keys()), "json")
        return
    if fmt == "csv":
        row["port_list"] = ";".join(str(p) for p in row.get("port_list") or [])
        row["top_ports"] = ";".join(f"{t['proto']}/{t['port']}:{t['probes']}"
                                    for t in row["top_ports"])
        render([row], list(row.keys()), "csv")
        return
    fields = [
        ("status", row["status"] + (f" ({row['benign_name']})" if row.get("benign_name") else "")),
        ("seen", f"{_ts(row['first_seen'])} .. {_ts(row['last_seen'])}"),
        ("flagged", f"{_ts(row['flagged_at'])} after {row['flagged_probes']} probes"
         if row.get("flagged_at") else "-"),
        ("detector", row["detector"]), ("confidence", f"{row['confidence']:.3f}"),
        ("kind", row["kind"]), ("type", row["type"]),
        ("tool", f"{row['tool']} ({row['tool_share']:.0%} of probes)" if row["tool"] else "-"),
        ("probes", f"{row['probes']:,} ({row['packets']:,} packets, psad danger level "
                   f"{row['psad_level']})"),
        ("targets", f"{row['targets']:,}"),
        ("ports", f"{row['ports']:,}: {port_text(row.get('port_list') or [], limit=30)}"),
        ("pairs", f"{row['pairs']:,} distinct (host, port); {row['protocols']} protocols; "
                  f"{row['sensors']} sensors" + (f"; {row['addresses']} addresses"
                                                  if row["prefix"] == 64 else "")),
        ("answered", f"{row['answered']:,} (established {row['established']:,}, "
                     f"rejected {row['rejected']:,})"),
        ("campaign", campaign or "-"),
        ("evidence", row["evidence"].replace("; ", "\n")),
        ("busiest", "\n".join(f"{t['proto']}/{t['port']}: {t['probes']:,} probes, "
                              f"{t['targets']:,} targets" for t in row["top_ports"])),
    ]
    print_fields(f"{row['source']}: {row['status']}", fields)


def print_fields(title: str, fields: Iterable[tuple[str, Any]]) -> None:
    """One record as a two-column table (name, value), 200 columns wide off a terminal."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 200
    grid = Table(title=title, title_justify="left", show_header=False)
    grid.add_column("field", style="bold")
    grid.add_column("value")
    for name, value in fields:
        grid.add_row(name, str(value))
    console.print(grid)


@click.command("scanners")
@click.option("--labels", "labels_path", required=True, metavar="FILE",
              help="CSV 'source,ports,start,end' (see docs/scanners.md).")
@output_options
@click.pass_context
@friendly
def evaluate_scanners(ctx: click.Context, labels_path: str, as_json: bool, as_csv: bool) -> None:
    """Score the scanner verdicts against labels: precision, recall, probes and seconds
    until each labelled scanner was flagged."""
    from portradar.cli.render import render
    from portradar.scan.evaluation import evaluate, load_labels

    fmt = output_format(as_json, as_csv)
    labels = load_labels(labels_path)
    with open_store(ctx) as store:
        _run_detection(store, False)
        result = evaluate(store, labels)
    rows = [r.as_dict() for r in result.labels]
    summary = result.summary()
    if fmt == "json":
        import json

        json.dump({"summary": summary, "labels": rows}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    columns = ["source", "ports", "detected", "verdict_source", "kind", "type", "tool",
               "detector", "probes_to_flag", "seconds_to_flag"]
    render(rows, columns, fmt, title="labelled scanners" if fmt == "table" else None)
    if fmt == "table":
        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v:.1%}"

        Console(highlight=False).print(
            f"precision {pct(summary['precision'])} ({summary['true_positives']} true, "
            f"{summary['false_positives']} false positives), recall {pct(summary['recall'])} "
            f"({summary['detected']} of {summary['labels']} labels); median "
            f"{summary['median_probes_to_flag'] or '-'} probes, "
            f"{summary['median_seconds_to_flag'] or '-'} s to flag")


commands = [scanners, scanner]
evaluate_commands = [evaluate_scanners]


def _first(cursor: Any) -> Any:
    """The first row of a result, fetching all of it (DuckDB 2 keeps an unfinished
    result open and refuses the next query)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None
