"""``/api/v1/ports``, ``/api/v1/ports/{proto}/{port}``, ``/api/v1/spikes``, ``/api/v1/rules``.

Top ports come from :func:`portradar.activity.top_ports.top_ports` (``portradar
ports``), a port's history and band from the spike detector over its stored activity
(``portradar port``), spikes from the detector over every port (``portradar spikes``),
the level, exposure and actions from :func:`portradar.assess.threat_level.assess_port`
(``portradar assess PORT``) and rules from :mod:`portradar.assess.block_rules` and
:mod:`portradar.assess.ips_rules` (``portradar rules``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from portradar.activity.periods import proto_name, table_for
from portradar.web import derived
from portradar.web.context import RequestContext, protocol, request_context
from portradar.web.errors import ApiError
from portradar.web.pagination import Page, PageParams, page, page_params, window
from portradar.web.time_range import SINCE_DOC, UNTIL_DOC

router = APIRouter(tags=["ports"])

Period = Literal["hour", "day"]
#: Rule dialects of the port page: the contract's names → ``portradar rules --for``.
DIALECTS = {"nftables": "nftables", "iptables": "iptables", "pf": "pf",
            "windows": "windows-powershell", "cisco": "cisco-ios", "suricata": "suricata",
            "snort": "snort", "ip6tables": "ip6tables", "windows-netsh": "windows-netsh"}
PAGE_DIALECTS = ("nftables", "iptables", "pf", "windows", "cisco")

ProtoPath = Annotated[str, Path(max_length=8, description="tcp, udp, icmp, ... or a number.")]
PortPath = Annotated[int, Path(ge=-1, le=65535, description="Port (ICMP type for ICMP; "
                                                            "-1 for protocols without ports).")]
SinceQ = Annotated[str | None, Query(max_length=64, description=SINCE_DOC)]
UntilQ = Annotated[str | None, Query(max_length=64, description=UNTIL_DOC)]
#: Sensor names as sensors and collectors name themselves (host names, ids); anything
#: else is refused before it reaches a query.
SENSOR_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127})$"
SensorQ = Annotated[str, Query(min_length=1, max_length=128, pattern=SENSOR_PATTERN,
                               description="One sensor, or * for all.")]


class PortItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    rank: int
    port: int
    proto: str
    service: str
    records: int
    sources: int
    targets: int
    change: float | None
    bucket: str


class SeriesPoint(BaseModel):
    ts: str
    records: int
    sources: int
    targets: int
    expected: float
    band_low: float
    band_high: float


class SpikeItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    proto: str
    port: int
    kind: str
    onset: str
    peak: str | None
    end: str | None
    status: str
    peak_sources: int
    baseline_sources: float
    period: str = Field(description="The detector that found it: hour or day.")
    doubling_hours: float | None = Field(
        description="Doubling time of the sources, in hours (growth spikes; else null).")


class Vulnerability(BaseModel):
    model_config = ConfigDict(extra="allow")
    cve: str
    title: str
    patched: str | None
    kev: bool
    wormable: bool
    age_days: int | None


class PortDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    port: int
    proto: str
    service: str
    bucket: str
    since: str | None
    until: str | None
    series: list[SeriesPoint]
    spikes: list[SpikeItem]
    top_scanners: list[dict[str, Any]]
    vulnerabilities: list[Vulnerability]
    exposure: dict[str, Any]
    level: str | None
    actions: list[str]
    rules: dict[str, str]


class RuleText(BaseModel):
    dialect: str
    text: str


def known_sensor(store: Any, sensor: str) -> None:
    """404 for a sensor the store has never heard of."""
    if sensor == "*":
        return
    rows = store.con.execute("SELECT count(*) FROM names WHERE kind = 'sensor' AND text = ?",
                             [sensor]).fetchall()
    if not rows[0][0]:
        raise ApiError(404, "not_found", "no such sensor", {"parameter": "sensor"})


def _bucket_at(rng_until: datetime, period: str) -> date | datetime:
    last = rng_until - timedelta(microseconds=1)
    if period == "day":
        return last.date()
    return last.replace(minute=0, second=0, microsecond=0)


@router.get("/ports", response_model=Page[PortItem], summary="Top ports")
def list_ports(
    request: Request,
    ctx: Annotated[RequestContext, Depends(request_context)],
    pages: Annotated[PageParams, Depends(page_params)],
    by: Literal["records", "sources", "targets"] = "records",
    period: Period = "day",
    since: SinceQ = None,
    until: UntilQ = None,
    sensor: SensorQ = "*",
    proto: Annotated[str | None, Query(max_length=8)] = None,
) -> dict[str, Any]:
    """The busiest ports of the range's last bucket, with the change against the bucket
    before (DShield's Top 10; ``portradar ports``)."""
    from portradar.activity.top_ports import latest_bucket, top_ports

    store = ctx.store
    proto_n = protocol(proto) if proto else None
    known_sensor(store, sensor)
    if since:
        ctx.range(since, until)  # validated even though only the last bucket is ranked
    latest = latest_bucket(store, period, sensor)
    if latest is None:
        return page(request, pages, [], 0)
    at: Any = latest
    if until:
        wanted = _bucket_at(ctx.range(since, until).until, period)
        at = min(wanted, latest)
    table = table_for(period)
    cast = "TIMESTAMP" if period == "hour" else "DATE"
    extra, params = ("AND proto = ?", [proto_n]) if proto_n is not None else ("", [])
    total = store.con.execute(
        f"SELECT count(*) FROM {table} WHERE bucket = CAST(? AS {cast}) AND sensor = ? {extra}",
        [at, sensor, *params]).fetchall()[0][0]
    rows = top_ports(store, period=period, at=at, by=by,
                     proto=proto_name(proto_n) if proto_n is not None else None,
                     sensor=sensor, limit=pages.offset + pages.limit)
    items = []
    for r in window(rows, pages):
        number = {"tcp": 6, "udp": 17}.get(r["proto"], 0)
        items.append({**r, "service": derived.service(r["port"], number) if number else "",
                      "change": r[f"change_{by}"], "bucket": _bucket_text(at, period)})
    return page(request, pages, items, int(total))


def _bucket_text(at: Any, period: str) -> str:
    if isinstance(at, datetime):
        return at.isoformat() + "Z"
    if isinstance(at, date):
        return at.isoformat() + "T00:00:00Z"
    return str(at)


def _rules(port: int, proto: int) -> dict[str, str]:
    from portradar.assess import block_rules

    if proto not in (6, 17) or not 1 <= port <= 65535:
        return {}
    spec = block_rules.block_spec(port, proto_name(proto))
    return {name: block_rules.render_block(spec, DIALECTS[name]) for name in PAGE_DIALECTS}


def assessed(ctx: RequestContext, port: int, proto: int, as_of: date) -> Any:
    """The level of one port on ``as_of`` (cached per data version, shared by the
    overview and the port page)."""
    def compute() -> Any:
        detection = ctx.cache.peek(ctx.version(), ("detect", "day"))
        return derived.assess_one(ctx.store, port, proto, as_of, detection)

    return ctx.cached(("assess", proto, port, as_of), compute)


def port_detail(ctx: RequestContext, proto: int, port: int, bucket: str, sensor: str,
                since: str | None, until: str | None) -> dict[str, Any]:
    """The port page; every piece but the series cached on its own (a new range only
    slices the cached model)."""
    rng = ctx.range(since, until)
    store = ctx.store
    newest = ctx.newest()
    model = ctx.cached(("model", proto, port, bucket, sensor),
                       lambda: derived.port_model(store, port, proto, bucket, sensor))
    shown = derived.port_series(model, bucket, rng.since, rng.until)
    if bucket == "hour":  # the day detector's spikes too, each marked with its period
        day = ctx.cached(("model", proto, port, "day", sensor),
                         lambda: derived.port_model(store, port, proto, "day", sensor))
        shown["spikes"] = sorted(
            shown["spikes"] + derived.spikes_overlapping(day, "day", rng.since, rng.until),
            key=lambda s: (s["onset"], s["period"]))
    as_of = rng.last_day if newest is None else min(rng.last_day, newest.date())
    assessment = assessed(ctx, port, proto, as_of)
    exposure: dict[str, Any] = {"known": False, "exposed": [], "vulnerable": []}
    actions: list[str] = []
    level = None
    if assessment is not None:
        data = assessment.as_dict()
        exposure = data["exposure"] or exposure
        actions = data["actions"]
        level = data["level"]
    return {
        "port": port, "proto": proto_name(proto), "service": derived.service(port, proto),
        "bucket": bucket, "sensor": sensor, "since": derived_iso(rng.since),
        "until": derived_iso(rng.until), **shown,
        "top_scanners": ctx.cached(("scanners", port),
                                   lambda: derived.top_scanners(store, port)),
        "vulnerabilities": ctx.cached(("vulns", proto, port, as_of),
                                      lambda: derived.vulnerabilities(store, port, proto,
                                                                      as_of)),
        "exposure": exposure, "level": level, "actions": actions,
        "rules": _rules(port, proto),
    }


def derived_iso(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat() + "Z"


@router.get("/ports/{proto}/{port}", response_model=PortDetail, summary="One port")
def get_port(
    ctx: Annotated[RequestContext, Depends(request_context)],
    proto: ProtoPath,
    port: PortPath,
    bucket: Period = "hour",
    since: SinceQ = None,
    until: UntilQ = None,
    sensor: SensorQ = "*",
) -> dict[str, Any]:
    """History by hour or day with the baseline band, spikes, top scanners,
    vulnerabilities, exposure, actions and rules to copy.

    By hour, ``spikes`` also holds the day detector's spikes that overlap the range
    (``period`` says which detector found each): a worm doubling daily is a spike to
    the day detector but too smooth for the hour one.

    After new data arrives the previous page is answered (``since``/``until`` say
    which range it shows) while the new one is computed in the background."""
    number = protocol(proto)
    known_sensor(ctx.store, sensor)
    ctx.range(since, until)  # refuse a bad range before anything is looked up
    key = ("port", number, port, bucket, sensor, since, until)
    return ctx.cached(key, lambda: port_detail(ctx, number, port, bucket, sensor, since, until),
                      refresh=lambda: _refresh_port(ctx, number, port, bucket, sensor, since,
                                                    until))


def _refresh_port(ctx: RequestContext, proto: int, port: int, bucket: str, sensor: str,
                  since: str | None, until: str | None) -> tuple[Any, dict[str, Any]]:
    """Recompute a port page in the background after new data (the previous one is
    answered meanwhile), with a store of its own."""
    with ctx.access.read() as store:
        fresh = RequestContext(store, ctx.access, ctx.cache, ctx.principal)
        return fresh.version(), port_detail(fresh, proto, port, bucket, sensor, since, until)


@router.get("/spikes", response_model=Page[SpikeItem], summary="Port spikes")
def list_spikes(
    request: Request,
    ctx: Annotated[RequestContext, Depends(request_context)],
    pages: Annotated[PageParams, Depends(page_params)],
    port: Annotated[int | None, Query(ge=-1, le=65535)] = None,
    proto: Annotated[str | None, Query(max_length=8)] = None,
    status: Literal["open", "ended"] | None = None,
    period: Period = "day",
    since: SinceQ = None,
    until: UntilQ = None,
) -> dict[str, Any]:
    """Spikes overlapping the range, newest first (``portradar spikes``)."""
    proto_n = protocol(proto) if proto else None
    rng = ctx.range(since, until)
    d = cached_detection(ctx, period)
    lo, hi = derived.bucket_span(d.total, rng.since, rng.until)
    chosen = [s for s in d.spikes
              if s.onset < hi and (s.end is None or s.end > lo)
              and (port is None or s.port == port) and (proto_n is None or s.proto == proto_n)
              and (status is None or (status == "open") == (s.end is None))]
    chosen.sort(key=lambda s: (s.alarm, s.score), reverse=True)
    items = [derived.spike_row(s, d.total, period) for s in window(chosen, pages)]
    return page(request, pages, items, len(chosen))


@router.get("/rules/{proto}/{port}", response_model=RuleText, summary="Rules for a port")
def get_rules(
    proto: ProtoPath,
    port: Annotated[int, Path(ge=1, le=65535)],
    dialect: Literal["nftables", "iptables", "pf", "windows", "cisco", "suricata", "snort",
                     "ip6tables", "windows-netsh"] = "nftables",
) -> dict[str, Any]:
    """Rules that block the port inbound (or alert on it in an IPS), to copy."""
    from portradar.assess import block_rules, ips_rules

    number = protocol(proto)
    if number not in (6, 17):
        raise ApiError(422, "validation_error", "only tcp and udp ports can be blocked by port",
                       {"parameter": "proto"})
    fmt = DIALECTS[dialect]
    if fmt in ips_rules.FORMATS:
        text = ips_rules.ips_rules(port, proto_name(number), fmt=fmt)
    else:
        text = block_rules.render_block(block_rules.block_spec(port, proto_name(number)), fmt)
    return {"dialect": dialect, "text": text}


def cached_detection(ctx: RequestContext, period: str) -> derived.Detection:
    """The detector over every port of ``period`` (cached per data version)."""
    return ctx.cached(("detect", period),
                      lambda: derived.detect_all(ctx.store, period))
