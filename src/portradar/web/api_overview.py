"""``/api/v1/overview``, ``/api/v1/assessment``, ``/api/v1/sensors``, ``/api/v1/status``.

The overview is what the dashboard's first page needs in one call: the level and why
(``portradar assess``), the ports moving most against their baseline (the spike
detector's own baseline), open alerts, events per second and the sensors.

Sensor health: a sensor reporting through ``portradar collect`` has its row in
``collector_sensors`` (batches, rejected batches, clock skew, ``last_seen``: the last
batch received) and ``source: "collector"``; every sensor also has its events and
``last_activity`` (end of its last hour with events) from the per-port activity, so
stores filled by ``portradar ingest`` or the simulator list their sensors too, with
``source: "activity"`` and no ``last_seen``.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from portradar.activity.periods import proto_name
from portradar.alerts.alert import Alert
from portradar.store.duckdb_store import Store
from portradar.web import derived
from portradar.web.api_ports import cached_detection
from portradar.web.context import RequestContext, request_context, table_exists
from portradar.web.pagination import Page, PageParams, page, page_params, window
from portradar.web.time_range import SINCE_DOC, UNTIL_DOC, TimeRange, iso

router = APIRouter(tags=["overview"])

SinceQ = Annotated[str | None, Query(max_length=64, description=SINCE_DOC)]
UntilQ = Annotated[str | None, Query(max_length=64, description=UNTIL_DOC)]
#: Open alerts shown on the overview (the alerts page lists them all).
OVERVIEW_ALERTS = 20
ALERT_COLUMNS = [f.name for f in fields(Alert)]


class Level(BaseModel):
    level: str
    reasons: list[str]


class Mover(BaseModel):
    model_config = ConfigDict(extra="allow")
    port: int
    proto: str
    service: str
    sources: int
    baseline: float
    ratio: float
    spike: bool
    sparkline: list[int]


class Sensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    sensor: str
    #: ``collector``: the sensor reports through ``portradar collect``; ``activity``:
    #: known only from the stored events (no batches, skew or receipt time).
    source: Literal["collector", "activity"]
    #: When the collector last received a batch from it (None for ``activity``).
    last_seen: str | None
    #: End of its last hour with events (event time).
    last_activity: str | None
    events: int
    events_per_s: float | None
    skew_s: float | None = None
    rejected: int | None = None
    batches: int | None = None


class AlertItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    alert_id: int
    kind: str
    proto: str
    port: int
    status: str
    severity: int
    opened_at: str
    updated_at: str
    resolved_at: str | None
    onset: str | None
    acknowledged: bool


class Overview(BaseModel):
    level: Level
    movers: list[Mover]
    open_alerts: list[AlertItem]
    events_per_s: float
    events_total: int
    sensors: list[Sensor]
    newest_event: str | None
    period: str
    since: str
    until: str


class PortLevel(BaseModel):
    model_config = ConfigDict(extra="allow")
    port: int
    proto: str
    level: str
    reasons: list[str]
    actions: list[str]


class Assessment(BaseModel):
    level: str
    reasons: list[str]
    as_of: str
    ports: list[PortLevel]


class Status(BaseModel):
    model_config = ConfigDict(extra="allow")
    events: int
    first_event: str | None
    last_event: str | None
    inputs: list[dict[str, Any]]
    runs: list[dict[str, Any]]


# -- pieces shared with the alerts API ----------------------------------------------------


def alert_rows(store: Store, where: str = "", params: list[Any] | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Stored alerts (newest first) with their acknowledgement, and how many match."""
    import json

    if not table_exists(store, "alerts"):
        return [], 0
    acks = table_exists(store, "web_alert_acks")
    ack_cols = ", k.acked_by, k.acked_at, k.note" if acks else ", NULL, NULL, NULL"
    ack_join = "LEFT JOIN web_alert_acks k USING (alert_id)" if acks else ""
    total = store.con.execute(f"SELECT count(*) FROM alerts a {where}",
                              params or []).fetchall()[0][0]
    rows = store.con.execute(
        f"""SELECT {', '.join('a.' + c for c in ALERT_COLUMNS)}{ack_cols}
            FROM alerts a {ack_join} {where}
            ORDER BY a.alert_id DESC LIMIT ? OFFSET ?""",
        [*(params or []), limit, offset]).fetchall()
    out = []
    n = len(ALERT_COLUMNS)
    for r in rows:
        data = dict(zip(ALERT_COLUMNS, r[:n], strict=True))
        data["reasons"] = json.loads(data["reasons"] or "[]")
        data["actions"] = json.loads(data["actions"] or "[]")
        if isinstance(data.get("evidence"), str):
            data["evidence"] = json.loads(data["evidence"] or "{}")
        for key in ("score", "peak_sources", "baseline_sources"):
            data[key] = float(data[key] or 0.0)
        data["updates"] = int(data["updates"] or 0)
        data["spike_kind"] = data["spike_kind"] or ""
        data["level"] = data["level"] or ""
        row = Alert(**data).as_dict()
        for key in ("opened_at", "updated_at", "resolved_at", "onset"):
            row[key] = alert_time(row[key])
        for evidence in (row.get("evidence") or {}).values():
            for key in ("onset", "end", "at"):
                if isinstance(evidence, dict) and key in evidence:
                    evidence[key] = alert_time(evidence[key])
        row["acknowledged"] = r[n] is not None
        row["acked_by"], row["acked_at"], row["ack_note"] = r[n], iso(r[n + 1]), r[n + 2]
        out.append(row)
    return out, int(total)


def alert_time(value: Any) -> Any:
    """An alert's time (ISO text of event time, UTC, as the lifecycle stores it) as
    every other time of the API: ``2025-01-20T00:00:00Z``; anything else unchanged.

    >>> alert_time("2025-01-20T00:00:00"), alert_time("2025-01-20"), alert_time(None)
    ('2025-01-20T00:00:00Z', '2025-01-20T00:00:00Z', None)
    """
    from datetime import datetime

    if not isinstance(value, str):
        return value
    try:
        return iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return value


def _sensor_activity(store: Store) -> dict[str, Any]:
    """Per sensor: the end of its last hour with events (from the hourly activity)."""
    rows = store.con.execute(
        """SELECT sensor, max(bucket) FROM port_activity_hourly WHERE sensor <> '*'
           GROUP BY sensor""").fetchall()
    return {s: b + timedelta(hours=1) for s, b in rows}


def sensors(ctx: RequestContext, rng: TimeRange) -> list[dict[str, Any]]:
    """Sensor health over the range, busiest first."""
    store = ctx.store
    last = ctx.cached(("sensor_last",), lambda: _sensor_activity(store))
    counts = dict(store.con.execute(
        """SELECT sensor, sum(records) FROM port_activity_hourly
           WHERE sensor <> '*' AND bucket >= ? AND bucket < ? GROUP BY sensor""",
        [rng.since.replace(minute=0, second=0, microsecond=0), rng.until]).fetchall())
    seconds = _seconds(ctx, rng)
    collector: dict[str, dict[str, Any]] = {}
    if table_exists(store, "collector_sensors"):
        cur = store.con.execute(
            """SELECT sensor, last_seen, batches, events, rejected, last_skew
               FROM collector_sensors""")
        for s, seen, batches, events, rejected, skew in cur.fetchall():
            collector[s] = {"received_last": iso(seen), "batches": int(batches or 0),
                            "received_events": int(events or 0),
                            "rejected": int(rejected or 0),
                            "skew_s": None if skew is None else round(float(skew), 3)}
    out = []
    for name in sorted(set(last) | set(counts) | set(collector)):
        events = int(counts.get(name) or 0)
        heard = collector.get(name)
        row: dict[str, Any] = {
            "sensor": name, "source": "collector" if heard else "activity",
            "last_seen": heard["received_last"] if heard else None,
            "last_activity": iso(last.get(name)), "events": events,
            "events_per_s": round(events / seconds, 3) if seconds > 0 else None,
            "skew_s": None, "rejected": None, "batches": None}
        row.update(heard or {})
        out.append(row)
    out.sort(key=lambda r: (-r["events"], r["sensor"]))
    return out


def _seconds(ctx: RequestContext, rng: TimeRange) -> float:
    """Seconds of the range that hold data (up to the newest event)."""
    newest = ctx.newest()
    if newest is None:
        return 0.0
    end = min(rng.until, newest + timedelta(microseconds=1))
    return max(0.0, (end - rng.since).total_seconds())


def _events(store: Store, rng: TimeRange) -> int:
    rows = store.con.execute(
        """SELECT coalesce(sum(records), 0) FROM port_activity_hourly
           WHERE sensor = '*' AND bucket >= ? AND bucket < ?""",
        [rng.since.replace(minute=0, second=0, microsecond=0), rng.until]).fetchall()
    return int(rows[0][0])


def _given(value: Any) -> Any:
    return value


def assessments(ctx: RequestContext, rng: TimeRange) -> tuple[Any, list[Any]]:
    """The levels of the ports ``portradar assess`` looks at, on the range's last day,
    from one pass (:func:`derived.assess_many`); each level is also cached for the port
    page."""
    newest = ctx.newest()
    as_of = rng.last_day if newest is None else min(rng.last_day, newest.date())

    def compute() -> list[Any]:
        detection = cached_detection(ctx, "day")  # its spikes stand in for detection
        targets = derived.candidate_ports(ctx.store, as_of)
        found = derived.assess_many(ctx.store, targets, as_of, detection)
        for (proto, port), level in zip(targets, found, strict=True):
            ctx.cached(("assess", proto, port, as_of), partial(_given, level))
        return derived.by_level(found)

    return as_of, ctx.cached(("assess_all", as_of), compute)


# -- endpoints ------------------------------------------------------------------------


@router.get("/overview", response_model=Overview, summary="Overview")
def overview(
    ctx: Annotated[RequestContext, Depends(request_context)],
    since: SinceQ = None,
    until: UntilQ = None,
    period: Literal["hour", "day"] = "day",
) -> dict[str, Any]:
    """The level and why, the movers with sparklines, open alerts, events/s, sensors.

    After new data arrives the previous overview is answered (its ``newest_event``
    says how old it is) while the new one is computed in the background."""
    ctx.range(since, until)  # refuse a bad range before anything is looked up
    return ctx.cached(("overview", period, since, until),
                      lambda: overview_data(ctx, period, since, until),
                      refresh=lambda: _refresh_overview(ctx, period, since, until))


def overview_data(ctx: RequestContext, period: str, since: str | None,
                  until: str | None) -> dict[str, Any]:
    rng = ctx.range(since, until)
    d = cached_detection(ctx, period)
    as_of, found = assessments(ctx, rng)
    alerts, _ = alert_rows(ctx.store, "WHERE a.status = 'open'", [], limit=OVERVIEW_ALERTS)
    total = _events(ctx.store, rng)
    seconds = _seconds(ctx, rng)
    return {
        "level": derived.overall_level(found, as_of),
        "movers": derived.movers(d, rng.since, rng.until),
        "open_alerts": alerts,
        "events_total": total,
        "events_per_s": round(total / seconds, 3) if seconds > 0 else 0.0,
        "sensors": sensors(ctx, rng)[:50],
        "newest_event": iso(ctx.newest()), "period": period,
        "since": iso(rng.since), "until": iso(rng.until),
    }


def _refresh_overview(ctx: RequestContext, period: str, since: str | None,
                      until: str | None) -> tuple[Any, dict[str, Any]]:
    """Recompute the overview in the background with a store of its own (the request
    that started it has answered with the previous one and released its store)."""
    with ctx.access.read() as store:
        fresh = RequestContext(store, ctx.access, ctx.cache, ctx.principal)
        return fresh.version(), overview_data(fresh, period, since, until)


@router.get("/assessment", response_model=Assessment, summary="Threat level")
def assessment(
    ctx: Annotated[RequestContext, Depends(request_context)],
    since: SinceQ = None,
    until: UntilQ = None,
) -> dict[str, Any]:
    """The level of the busiest and the declared open ports on the range's last day."""
    rng = ctx.range(since, until)
    as_of, found = assessments(ctx, rng)
    overall = derived.overall_level(found, as_of)
    ports = []
    for a in found:
        d = a.as_dict()
        ports.append({"port": a.port, "proto": proto_name(a.proto), "service": a.service,
                      "level": a.level, "criterion": a.criterion, "stage": a.stage,
                      "reasons": d["reasons"], "actions": d["actions"]})
    return {**overall, "as_of": as_of.isoformat(), "ports": ports}


@router.get("/sensors", response_model=Page[Sensor], summary="Sensor health")
def list_sensors(
    request: Request,
    ctx: Annotated[RequestContext, Depends(request_context)],
    pages: Annotated[PageParams, Depends(page_params)],
    since: SinceQ = None,
    until: UntilQ = None,
) -> dict[str, Any]:
    """Every sensor: last seen, events and events/s in the range, and for sensors of
    ``portradar collect`` batches, rejected batches and clock skew."""
    rows = sensors(ctx, ctx.range(since, until))
    return page(request, pages, window(rows, pages), len(rows))


@router.get("/status", response_model=Status, summary="Ingest status")
def status(ctx: Annotated[RequestContext, Depends(request_context)]) -> dict[str, Any]:
    """Events stored, their time span, the inputs read and the last ingest runs."""
    import json

    store = ctx.store
    events, first, last = store.con.execute(
        "SELECT count(*), min(ts), max(ts) FROM event_rows").fetchall()[0]
    inputs = store.con.execute(
        """SELECT input_id, last_name, format, records, events, skipped, offset_bytes,
                  last_seen FROM inputs ORDER BY input_id DESC LIMIT 100""").fetchall()
    runs = store.con.execute(
        """SELECT run_id, input_id, name, format, started, seconds, records, events, skipped,
                  status, message, skip_reasons FROM ingest_runs
           ORDER BY run_id DESC LIMIT 20""").fetchall()
    dirty = store.con.execute("SELECT count(*) FROM activity_dirty").fetchall()[0][0]
    return {
        "events": int(events), "first_event": iso(first), "last_event": iso(last),
        "activity_stale_days": int(dirty), "read_only": not ctx.access.writable,
        "inputs": [{"id": i, "input": n, "format": f, "records": r, "events": e,
                    "skipped": s, "bytes_read": b, "last_read": iso(t)}
                   for i, n, f, r, e, s, b, t in inputs],
        "runs": [{"id": i, "input_id": inp, "name": n, "format": f, "started": iso(st),
                  "seconds": round(float(sec), 3), "records": r, "events": e, "skipped": sk,
                  "status": stt, "message": msg,
                  "skip_reasons": json.loads(reasons) if reasons else {}}
                 for i, inp, n, f, st, sec, r, e, sk, stt, msg, reasons in runs],
    }
