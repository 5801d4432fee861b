"""One error shape for every error the HTTP API gives, whatever raised it.

``{"error": {"status": 404, "code": "not_found", "message": "...", "detail": ... | null}}``
for an unknown route, a wrong method, a parameter that does not validate, a refused
request and an unexpected exception alike.  An unexpected exception is logged with its
traceback on the server and answered 500 with a fixed message: nothing of the
exception (paths, SQL, values) reaches the client.

>>> error_body(404, "not_found", "no such port")["error"]["code"]
'not_found'
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portradar.errors import PortradarError

log = logging.getLogger("portradar.web")

#: Codes of the plain HTTP statuses (used when nothing more specific is known).
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large", 414: "uri_too_long",
         422: "validation_error", 429: "too_many_requests", 500: "internal_error",
         503: "unavailable"}


class ApiError(Exception):
    """An error to answer with the shared shape."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers


class ErrorInfo(BaseModel):
    status: int
    code: str
    message: str
    detail: Any = None


class ErrorResponse(BaseModel):
    """What every error response holds (documented on every operation)."""

    error: ErrorInfo


def error_body(status: int, code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "detail": detail}}


def error_response(status: int, code: str, message: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, detail), status_code=status,
                        headers=headers)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, without echoing the input back (it may be an attack string)."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in exc.errors()[:20]]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the shared shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = {404: "no such resource", 405: "method not allowed"}.get(
            status, str(exc.detail) if exc.detail else "error")
        return error_response(status, CODES.get(status, "error"), message,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "validation_error", "a parameter is not valid",
                              _validation_detail(exc))

    @app.exception_handler(PortradarError)
    async def portradar_error(_: Request, exc: PortradarError) -> JSONResponse:
        from portradar.web.store_access import StoreBusy

        if isinstance(exc, StoreBusy):
            return error_response(503, "store_busy", "the store is being written by another "
                                  "process; retry shortly", headers={"Retry-After": "2"})
        log.warning("request refused: %s", exc)
        return error_response(400, "bad_request", _first_line(str(exc)))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "bad request"


#: Largest request body: the API's only bodies are a login and an acknowledgement note
#: (1,000 characters), so 64 KiB is generous and keeps memory per request small.
MAX_BODY = 64 * 1024


class CatchAll:
    """ASGI middleware: an exception no handler took becomes a 500 in the shared shape,
    and a body over :data:`MAX_BODY` a 413.

    Starlette's own last-resort handler sits outside every user middleware, so its 500
    would miss the security headers; this one sits inside them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            await error_response(413, "too_large", f"request body over {MAX_BODY} bytes"
                                 if length.isdigit() else "bad Content-Length")(
                scope, receive, send)
            return
        body_receive = receive
        if b"content-length" not in headers and scope.get("method") not in ("GET", "HEAD"):
            # chunked: read it all here (bounded) and hand it on, or refuse it whole
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = bool(message.get("more_body"))
                if size > MAX_BODY:
                    await error_response(413, "too_large", f"request body over {MAX_BODY} "
                                         "bytes")(scope, receive, send)
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

            body_receive = replay

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, body_receive, tracking_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(500, "internal_error",
                                      "unexpected server error; the server log has the detail")
            await response(scope, receive, send)
