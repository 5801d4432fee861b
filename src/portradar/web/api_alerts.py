"""``/api/v1/alerts``: the alerts ``portradar watch`` opened, and acknowledging them.

Alerts live in the lifecycle's table (:mod:`portradar.alerts.lifecycle`); an
acknowledgement is the web's own fact (who, when, a note) kept beside it in
``web_alert_acks``, so the lifecycle's records are never rewritten.  Acknowledging
changes state: ``admin`` role only, and only when the server has the store writable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from portradar.web.api_overview import AlertItem, alert_rows
from portradar.web.context import RequestContext, request_context, table_exists
from portradar.web.errors import ApiError
from portradar.web.pagination import Page, PageParams, page, page_params

router = APIRouter(tags=["alerts"])

ACK_SCHEMA = """CREATE TABLE IF NOT EXISTS web_alert_acks (
    alert_id INTEGER PRIMARY KEY, acked_by VARCHAR NOT NULL, acked_at TIMESTAMP NOT NULL,
    note VARCHAR)"""

AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class AlertDetail(AlertItem):
    model_config = ConfigDict(extra="allow")
    reasons: list[str]
    actions: list[str]


class Ack(BaseModel):
    note: str | None = Field(default=None, max_length=1000)


@router.get("/alerts", response_model=Page[AlertItem], summary="Alerts")
def list_alerts(
    request: Request,
    ctx: Annotated[RequestContext, Depends(request_context)],
    pages: Annotated[PageParams, Depends(page_params)],
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
) -> dict[str, Any]:
    """Stored alerts, newest first."""
    where, params = ("WHERE a.status = ?", [status]) if status else ("", [])
    rows, total = alert_rows(ctx.store, where, params, pages.limit, pages.offset)
    return page(request, pages, rows, total)


def _one(ctx: RequestContext, alert_id: int) -> dict[str, Any]:
    rows, _ = alert_rows(ctx.store, "WHERE a.alert_id = ?", [alert_id], 1, 0)
    if not rows:
        raise ApiError(404, "not_found", "no such alert")
    return rows[0]


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="One alert")
def get_alert(ctx: Annotated[RequestContext, Depends(request_context)],
              alert_id: AlertId) -> dict[str, Any]:
    """One alert with its reasons and recommended actions."""
    return _one(ctx, alert_id)


@router.post("/alerts/{alert_id}/ack", response_model=AlertDetail,
             summary="Acknowledge an alert (admin)")
def ack_alert(ctx: Annotated[RequestContext, Depends(request_context)],
              alert_id: AlertId,
              body: Annotated[Ack | None, Body()] = None) -> dict[str, Any]:
    """Mark an alert as seen by someone; acknowledging again replaces the note."""
    who = ctx.principal
    if who is None or not who.admin:
        raise ApiError(403, "forbidden", "acknowledging needs the admin role")
    _one(ctx, alert_id)
    if not ctx.access.writable:
        raise ApiError(409, "read_only", "the server has the store open read-only")
    with ctx.access.write() as store:
        store.con.execute(ACK_SCHEMA)
        store.con.execute("INSERT OR REPLACE INTO web_alert_acks VALUES (?, ?, ?, ?)",
                          [alert_id, who.name, datetime.now(tz=UTC).replace(tzinfo=None),
                           body.note if body else None])
    ctx.cache.clear()  # the overview lists open alerts with their acknowledgement
    return _one(ctx, alert_id)


def acks_ready(ctx: RequestContext) -> bool:
    return table_exists(ctx.store, "web_alert_acks")
