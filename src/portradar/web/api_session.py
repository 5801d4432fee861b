"""``POST /api/v1/login`` (a user's password for a session token) and ``/api/v1/whoami``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from portradar.web.auth import Authenticator, Principal
from portradar.web.context import RequestContext, request_context
from portradar.web.errors import ApiError
from portradar.web.time_range import iso

router = APIRouter(tags=["session"])


class Login(BaseModel):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Session(BaseModel):
    token: str
    user: str
    role: str
    expires: str | None


class Me(BaseModel):
    user: str
    role: str


@router.post("/login", response_model=Session, summary="Log in (session token)")
def login(request: Request, ctx: Annotated[RequestContext, Depends(request_context)],
          body: Annotated[Login, Body()]) -> dict[str, Any]:
    """A session token for a user's password (send it as ``Authorization: Bearer``)."""
    auth: Authenticator = request.app.state.authenticator
    client = (request.client.host if request.client else "?")
    if auth.blocked(client):
        raise ApiError(429, "too_many_requests", "too many failed authentications; wait a "
                       "minute", headers={"Retry-After": "60"})
    who = auth.password(ctx.store, body.user, body.password)
    if who is None:
        auth.failed(client)
        raise ApiError(401, "unauthorized", "unknown user or wrong password")
    token, expires = auth.new_session(who)
    return {"token": token, "user": who.name, "role": who.role,
            "expires": iso(datetime.fromtimestamp(expires, tz=UTC))}


@router.get("/whoami", response_model=Me, summary="The caller")
def whoami(ctx: Annotated[RequestContext, Depends(request_context)]) -> dict[str, Any]:
    """Who the server thinks the caller is, and the role (the dashboard hides what the
    role may not do)."""
    who: Principal = ctx.principal or Principal("local", "admin")
    return {"user": who.name, "role": who.role}
