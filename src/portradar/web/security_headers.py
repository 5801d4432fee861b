"""Secure headers on every response, errors and static files included.

* ``Content-Security-Policy``: scripts, styles and everything else from the server
  itself only (the dashboard is fully offline: no CDN), images also as ``data:`` URLs
  (chart exports, and Swagger UI's icons), no framing (``frame-ancestors 'none'``) - as the
  API contract says.  One policy for every path: the dashboard, and the Swagger UI page at
  ``/api/docs`` too, which runs under it unchanged (its files are served by portradar, its
  start-up script is a static file; see :mod:`portradar.web.api_docs`);
* ``X-Content-Type-Options: nosniff``: a JSON or text answer is never run as script;
* ``X-Frame-Options: DENY``: clickjacking defence for browsers without CSP level 2;
* ``Referrer-Policy: no-referrer``: page URLs (which carry addresses and ports in their
  query) never leak to other sites;
* ``Cross-Origin-Opener-Policy: same-origin`` and ``Cache-Control: no-store`` on the API
  (answers hold the network's findings);
* no ``Server`` header (uvicorn's is switched off by ``portradar serve``; any left is
  removed here), so the version is not advertised.

The headers follow the OWASP Secure Headers Project's recommendations.  HSTS is the TLS
proxy's job (the server itself speaks plain HTTP on loopback; see docs/web.md).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'")

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_REPLACED = {name for name, _ in HEADERS} | {b"server"}


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` (and ``no-store`` under ``/api/``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _REPLACED]
                headers.extend(HEADERS)
                if api:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
