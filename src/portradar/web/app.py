"""The web application: the JSON API under ``/api/v1``, the dashboard and its static files.

:func:`create_app` wires the pieces, outermost first:

1. :class:`~portradar.web.security_headers.SecurityHeaders` - secure headers on every
   response, including errors and static files;
2. :class:`~portradar.web.errors.CatchAll` - any unexpected exception becomes a 500 in
   the shared error shape, with nothing of the exception in it;
3. :class:`~portradar.web.auth.AuthMiddleware` - who is calling, and what they may do
   (required when the server is bound beyond loopback);
4. the routers: ``/api/v1/...`` (``api_*`` modules), the dashboard pages
   (:mod:`portradar.web.dashboard`), the API docs (:mod:`portradar.web.api_docs`) and
   ``/static``.

The OpenAPI description is at ``/api/openapi.json``; Swagger UI over it at ``/api/docs``,
served from the ``swagger-ui-bundle`` package with its start-up script a static file (FastAPI's
own docs page loads Swagger UI from a CDN and starts it inline, which the offline dashboard
and its CSP rule out; see :mod:`portradar.web.api_docs`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from portradar import __version__
from portradar.store.duckdb_store import Store
from portradar.web import errors
from portradar.web.auth import Authenticator, AuthMiddleware
from portradar.web.derived import ResultCache
from portradar.web.errors import CatchAll, ErrorResponse
from portradar.web.security_headers import SecurityHeaders
from portradar.web.store_access import StoreAccess

STATIC_DIR = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"

#: Error responses documented on every operation (the shared shape).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in ((400, "Bad request"), (401, "Authentication required"),
                         (403, "Not allowed"), (404, "Not found"),
                         (409, "Conflict (read-only server)"), (413, "Body too large"),
                         (422, "Invalid parameter"),
                         (429, "Too many failed authentications"),
                         (500, "Unexpected error"), (503, "Store busy"))
}


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebSettings:
    """How the server runs.

    ``require_auth`` None means: required exactly when ``host`` is not loopback.
    ``reopen`` opens the store read-only per request (``serve --read-only``), leaving
    the file free for an ingest between requests.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    require_auth: bool | None = None
    reopen: bool = False
    prepare: bool = True

    @property
    def auth_required(self) -> bool:
        if self.require_auth is not None:
            return self.require_auth
        return not is_loopback(self.host)


def create_app(store: Store, *, settings: WebSettings | None = None) -> FastAPI:
    """The ASGI application over ``store`` (see the module doc)."""
    from portradar.web import (
        api_alerts,
        api_docs,
        api_overview,
        api_ports,
        api_scanners,
        api_session,
        dashboard,
    )

    settings = settings or WebSettings()
    if settings.reopen and store.path != ":memory:":
        access = StoreAccess.reopening(store.path)
    else:
        access = StoreAccess.shared(store)
        if settings.prepare:
            access.prepare()
    app = FastAPI(title="portradar", version=__version__,
                  description="Port scanners and per-port spikes from your own logs.",
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None, redirect_slashes=False)
    authenticator = Authenticator()
    app.state.access = access
    app.state.cache = ResultCache()
    app.state.settings = settings
    app.state.authenticator = authenticator
    errors.install(app)
    for module in (api_overview, api_ports, api_scanners, api_alerts, api_session):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(dashboard.router)
    app.include_router(api_docs.router)  # before /static: it serves /static/swagger-ui/...
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    app.add_middleware(AuthMiddleware, required=settings.auth_required, access=access,
                       authenticator=authenticator)
    app.add_middleware(CatchAll)
    app.add_middleware(SecurityHeaders)
    _document_security(app)
    return app


def _document_security(app: FastAPI) -> None:
    """Declare the bearer and Basic schemes in the OpenAPI description."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain()
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A token of 'portradar serve token add' or of "
                                      "POST /api/v1/login."},
            "basic": {"type": "http", "scheme": "basic",
                      "description": "A user of 'portradar serve user add'."},
        }
        # optional on loopback, required beyond it: either scheme, or none
        schema["security"] = [{}, {"bearer": []}, {"basic": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


#: Port pages computed at start-up: those of the overview's first movers (where a
#: visitor clicks first), by hour and by day.
WARM_PORT_PAGES = 5


def warm(app: FastAPI) -> None:
    """Compute the default overview (detection over every port, the levels) and the
    port pages of its first movers before the first request, so nobody waits for them."""
    from portradar.web.api_overview import overview
    from portradar.web.api_ports import get_port
    from portradar.web.auth import Principal
    from portradar.web.context import RequestContext

    state = app.state
    with state.access.read() as store:
        ctx = RequestContext(store, state.access, state.cache, Principal("warm", "admin"))
        shown = overview(ctx, None, None, "day")
        for mover in shown["movers"][:WARM_PORT_PAGES]:
            for bucket in ("hour", "day"):
                get_port(ctx, mover["proto"], mover["port"], bucket, None, None, "*")
