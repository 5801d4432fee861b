"""``/api/v1/scanners`` and ``/api/v1/campaigns``: the scan detectors' stored verdicts.

The rows are those ``portradar scanners`` and ``portradar scanner ADDRESS`` show
(tables ``scanners``, ``campaigns``, ``campaign_members`` of :mod:`portradar.scan`);
detection itself runs when the server starts on a writable store.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from portradar.activity.periods import proto_name
from portradar.events.addresses import address_key
from portradar.scan.campaign_query import (
    campaign_count,
    campaign_members,
    campaign_rows,
)
from portradar.scan.scanner_query import scanner_filter
from portradar.store.duckdb_store import Store
from portradar.web.context import RequestContext, request_context, table_exists
from portradar.web.errors import ApiError
from portradar.web.pagination import Page, PageParams, page, page_params
from portradar.web.time_range import SINCE_DOC, UNTIL_DOC, iso

router = APIRouter(tags=["scanners"])

#: Statuses listed by default: every scan (backscatter is not one), as the CLI.
SCANNER_COLUMNS = ("source, status, first_seen, last_seen, probes, ports, port_list, targets, "
                   "sensors, kind, type, tool, detector, confidence, campaign_id, evidence")
#: Ports listed per scanner in lists (the detail has them all).
PORT_LIST_MAX = 100


class ScannerItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str
    status: str
    first_seen: str | None
    last_seen: str | None
    probes: int
    ports: int
    port_list: list[int]
    targets: int
    kind: str
    type: str
    tool: str
    detector: str
    confidence: float
    campaign_id: int | None
    evidence: str


class CampaignPort(BaseModel):
    proto: str
    port: int
    members: int


class CampaignItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    ports: list[CampaignPort]
    rule: str
    members: int
    first_seen: str | None
    last_seen: str | None
    probes: int
    targets: int
    tool: str
    kind: str
    type: str
    network: str | None
    example: str
    evidence: str


class CampaignDetail(CampaignItem):
    member_list: list[str]
    scanners: list[ScannerItem]


def scanners_ready(store: Store) -> bool:
    return table_exists(store, "scanners")


def scanner_rows(cur: Any, full_ports: bool = False) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(names, r, strict=True))
        for key in ("first_seen", "last_seen", "flagged_at"):
            if key in row:
                row[key] = iso(row[key])
        ports = [int(p) for p in row.get("port_list") or []]
        row["port_list"] = ports if full_ports else ports[:PORT_LIST_MAX]
        row["confidence"] = round(float(row["confidence"]), 4)
        for key in list(row):
            value = row[key]
            if isinstance(value, float) and value != value:  # NaN is not JSON
                row[key] = None
        row.pop("src_hi", None)
        row.pop("src_lo", None)
        out.append(row)
    return out


@router.get("/scanners", response_model=Page[ScannerItem], summary="Flagged scanners")
def list_scanners(
    request: Request,
    ctx: Annotated[RequestContext, Depends(request_context)],
    pages: Annotated[PageParams, Depends(page_params)],
    port: Annotated[int | None, Query(ge=0, le=65535, description="Only sources that "
                                      "probed this port.")] = None,
    kind: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z]+$",
                                      description="Shape: vertical, horizontal, block, "
                                      "random, single.")] = None,
    status: Annotated[str | None, Query(pattern=r"^(scanner|benign|loopback|unspecified|"
                                        r"backscatter|all)$")] = None,
    since: Annotated[str | None, Query(max_length=64, description=SINCE_DOC)] = None,
    until: Annotated[str | None, Query(max_length=64, description=UNTIL_DOC)] = None,
) -> dict[str, Any]:
    """Sources flagged as scanners, busiest first (``portradar scanners``)."""
    store = ctx.store
    if not scanners_ready(store):
        return page(request, pages, [], 0)
    where, params = scanner_filter(status, port, {"kind": kind})
    if since or until:
        rng = ctx.range(since, until)
        where.append("last_seen >= ? AND first_seen < ?")
        params += [rng.since, rng.until]
    sql_where = " AND ".join(where)
    total = store.con.execute(f"SELECT count(*) FROM scanners WHERE {sql_where}",
                              params).fetchall()[0][0]
    cur = store.con.execute(
        f"""SELECT {SCANNER_COLUMNS} FROM scanners WHERE {sql_where}
            ORDER BY probes DESC, src_hi, src_lo LIMIT ? OFFSET ?""",
        [*params, pages.limit, pages.offset])
    return page(request, pages, scanner_rows(cur), int(total))


def _address(text: str) -> tuple[int, int]:
    try:
        ipaddress.ip_address(text)
        return address_key(text)
    except ValueError as exc:
        raise ApiError(422, "validation_error", "not an IP address",
                       {"parameter": "address"}) from exc


@router.get("/scanners/{address}", response_model=ScannerItem, summary="One scanner in full")
def get_scanner(
    ctx: Annotated[RequestContext, Depends(request_context)],
    address: Annotated[str, Path(max_length=45, description="IPv4 or IPv6 address.")],
) -> dict[str, Any]:
    """The verdict, every figure behind it, its campaign and busiest ports
    (``portradar scanner ADDRESS``)."""
    from portradar.scan.detect import event_table

    hi, lo = _address(address)
    store = ctx.store
    if not scanners_ready(store):
        raise ApiError(404, "not_found", "no scan verdicts in this store yet")
    cur = store.con.execute("SELECT * FROM scanners WHERE src_hi = ? AND src_lo = ? "
                            "AND prefix = 128", [hi, lo])
    rows = scanner_rows(cur, full_ports=True)
    if not rows:
        raise ApiError(404, "not_found", "this address was not flagged")
    row = rows[0]
    table, _ = event_table(store.con)
    top = store.con.execute(
        f"""SELECT e.proto, e.dport, count(*) AS probes,
                   count(DISTINCT (e.dst_hi, e.dst_lo)) AS targets
            FROM {table} e WHERE e.src_hi = ? AND e.src_lo = ?
            GROUP BY ALL ORDER BY probes DESC, e.dport LIMIT 10""", [hi, lo]).fetchall()
    row["top_ports"] = [{"proto": proto_name(p), "port": d, "probes": n, "targets": t}
                        for p, d, n, t in top]
    row["campaign"] = None
    if row.get("campaign_id") is not None and table_exists(store, "campaigns"):
        found = _campaigns(store, ["campaign_id = ?"], [row["campaign_id"]], 1, 0)
        row["campaign"] = found[0] if found else None
    return row


def _campaigns(store: Store, where: list[str], params: list[Any], limit: int,
               offset: int) -> list[dict[str, Any]]:
    out = campaign_rows(store, where, params, limit=limit, offset=offset)
    for row in out:
        row["first_seen"] = iso(row["first_seen"])
        row["last_seen"] = iso(row["last_seen"])
    return out


@router.get("/campaigns", response_model=Page[CampaignItem], summary="Scan campaigns")
def list_campaigns(
    request: Request,
    ctx: Annotated[RequestContext, Depends(request_context)],
    pages: Annotated[PageParams, Depends(page_params)],
) -> dict[str, Any]:
    """Groups of sources probing alike in the same period, largest first."""
    if not table_exists(ctx.store, "campaigns"):
        return page(request, pages, [], 0)
    total = campaign_count(ctx.store, [], [])
    return page(request, pages, _campaigns(ctx.store, [], [], pages.limit, pages.offset),
                total)


@router.get("/campaigns/{campaign_id}", response_model=CampaignDetail,
            summary="One campaign and its members")
def get_campaign(
    ctx: Annotated[RequestContext, Depends(request_context)],
    campaign_id: Annotated[int, Path(ge=0, le=2**31 - 1)],
) -> dict[str, Any]:
    """The campaign, its first 1,000 members and the flagged ones among them."""
    store = ctx.store
    if not table_exists(store, "campaigns"):
        raise ApiError(404, "not_found", "no campaigns in this store yet")
    found = _campaigns(store, ["campaign_id = ?"], [campaign_id], 1, 0)
    if not found:
        raise ApiError(404, "not_found", "no such campaign")
    row = found[0]
    row["member_list"] = campaign_members(store, campaign_id, 1000)
    cur = store.con.execute(
        f"""SELECT {SCANNER_COLUMNS} FROM scanners WHERE campaign_id = ?
            ORDER BY probes DESC, src_hi, src_lo LIMIT 100""", [campaign_id])
    row["scanners"] = scanner_rows(cur)
    return row
