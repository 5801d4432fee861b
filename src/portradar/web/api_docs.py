"""Interactive API documentation (Swagger UI) at ``/api/docs``, served entirely by portradar.

FastAPI's own Swagger page loads its script and style from a CDN and starts it with an
inline script; neither is possible here (nothing is fetched from another host, and the
CSP has ``script-src 'self'; style-src 'self'``).  So:

* Swagger UI's files come from the ``swagger-ui-bundle`` package (Swagger UI 4.15.5,
  Apache-2.0, a dependency of portradar): ``/static/swagger-ui/{name}`` answers only the
  two files the page uses (``swagger-ui-bundle.js``, ``swagger-ui.css``) and their source
  maps, straight from the package's directory; the package's ``index.html`` (which would
  point at petstore.swagger.io) and everything else in it are not served.
* **OpenAPI 3.0 for Swagger UI 4**: the package's Swagger UI (4.15.5, the newest the package
  ships) reads OpenAPI 3.0 only, and FastAPI describes the API in 3.1.  The page therefore
  loads ``/api/docs/openapi-3.0.json``, the same description rewritten by
  :func:`openapi_30` (3.1's ``anyOf: [X, {"type": "null"}]`` becomes 3.0's
  ``nullable: true``, and so on; checked against the 3.0 schema by the tests).  The paths,
  parameters and security schemes are the same, so "Try it out" sends the requests the 3.1
  description describes; ``/api/openapi.json`` stays the reference.
* The page is an HTML shell like the dashboard's; Swagger UI is started by
  ``static/api-docs.js`` (a file, not an inline script) with ``validatorUrl: null``, so it
  never asks validator.swagger.io to check the description, and with the base layout (no
  top bar to load another description's URL).
* **CSP**: the page is served under the site's one policy, unchanged (tested in Chromium:
  no violation is reported).  Swagger UI sets element styles through React, that is the
  CSSOM, which ``style-src 'self'`` allows, and its stylesheet's icons are ``data:`` images,
  which ``img-src 'self' data:`` already allows.  Nothing needed scoping to this page.
* **Access**: the page and its files sit behind the same :class:`~portradar.web.auth.AuthMiddleware`
  as the dashboard (not in ``OPEN_PATHS``): on loopback everyone is the local admin;
  beyond it the browser asks for a user and password (HTTP Basic) once, and sends them
  with the page, its files and every "Try it out" request (same-origin ``fetch``).  An API
  token the dashboard was given (the tab's ``sessionStorage``, key ``portradar.token``) is
  sent as ``Authorization: Bearer`` by a request interceptor, and Swagger UI's own
  *Authorize* button takes a token or a user for the bearer and basic schemes the
  description declares.  A state-changing "Try it out" (acknowledging an alert) is a
  same-origin request, so the cross-site check lets it through; the role check still
  applies.

>>> "<script>" in render_docs_page()
False
>>> openapi_30({"openapi": "3.1.0", "components": {"schemas": {"A": {"properties": {"x": {
...     "anyOf": [{"type": "integer"}, {"type": "null"}], "title": "X"}}}}}})
{'openapi': '3.0.3', 'components': {'schemas': {'A': {'properties': {'x': {'type': 'integer', \
'title': 'X', 'nullable': True}}}}}}
>>> sorted(ASSETS)[:2]
['swagger-ui-bundle.js', 'swagger-ui-bundle.js.map']
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from portradar.web.dashboard import asset_version, not_found

__all__ = ["ASSETS", "DOCS_PATH", "openapi_30", "render_docs_page", "router",
           "swagger_ui_dir"]

router = APIRouter(include_in_schema=False)

DOCS_PATH = "/api/docs"
OPENAPI_PATH = "/api/openapi.json"
#: The description as OpenAPI 3.0, which the packaged Swagger UI 4 reads.
OPENAPI_30_PATH = DOCS_PATH + "/openapi-3.0.json"
ASSET_PREFIX = "/static/swagger-ui"

#: The files of the package served, and their media types (nothing else of it is).
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-bundle.js.map": "application/json",
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui.css.map": "application/json",
}


def swagger_ui_dir() -> Path | None:
    """The directory of Swagger UI's files in the ``swagger-ui-bundle`` package, or None."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        return None
    path = Path(str(swagger_ui_path))
    return path if path.is_dir() else None


_NULL = {"type": "null"}


def openapi_30(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAPI 3.1 description ``spec`` written as OpenAPI 3.0.3.

    Only the 3.1 forms FastAPI and Pydantic produce are rewritten: a ``null`` alternative
    of ``anyOf``/``oneOf`` and a list ``type`` become ``nullable: true``, ``const`` becomes a
    one-value ``enum``, a schema's ``examples`` list its first ``example``, and numeric
    ``exclusiveMinimum``/``exclusiveMaximum`` the 3.0 boolean forms.  Values (``default``,
    ``example``, ``enum``) are copied as they are.
    """
    out = _walk_30(spec)
    out["openapi"] = "3.0.3"
    return out


#: Keys of a schema whose value is a schema, a list of schemas, or a map of names to schemas.
_SUBSCHEMA = ("items", "not", "additionalProperties")
_SUBSCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")


def _walk_30(node: Any) -> Any:
    """Outside schemas: copy, converting every schema met (under ``schema`` and
    ``components.schemas``)."""
    if isinstance(node, list):
        return [_walk_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "schema" and isinstance(value, dict):
            out[key] = _schema_30(value)
        elif key == "schemas" and isinstance(value, dict):
            out[key] = {name: _schema_30(s) for name, s in value.items()}
        else:
            out[key] = _walk_30(value)
    return out


def _schema_30(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SUBSCHEMA:
            out[key] = _schema_30(value)
        elif key in _SUBSCHEMAS and isinstance(value, list):
            out[key] = [_schema_30(v) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _schema_30(v) for name, v in value.items()}
        else:
            out[key] = value
    for key in ("anyOf", "oneOf"):
        alternatives = out.get(key)
        if isinstance(alternatives, list) and _NULL in alternatives:
            rest = [a for a in alternatives if a != _NULL]
            del out[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out = {**rest[0], **out}
            elif len(rest) == 1:
                out["allOf"] = rest  # 3.0 ignores the siblings of a bare $ref
            elif rest:
                out[key] = rest
            out["nullable"] = True
    kind = out.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        del out["type"]
        if len(kinds) == 1:
            out["type"] = kinds[0]
        elif kinds:
            out["anyOf"] = [{"type": k} for k in kinds]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[plain] = value
            out[bound] = True
    if "prefixItems" in out:  # no 3.0 form: any items
        out.pop("prefixItems")
        out.setdefault("items", {})
    return out


def render_docs_page() -> str:
    """The HTML shell of the docs page (Swagger UI fills ``#swagger-ui``)."""
    v = html.escape(asset_version())
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>API · portradar</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{ASSET_PREFIX}/swagger-ui.css?v={v}">'
        f'<link rel="stylesheet" href="/static/api-docs.css?v={v}">'
        f'<script src="{ASSET_PREFIX}/swagger-ui-bundle.js?v={v}" defer></script>'
        f'<script src="/static/api-docs.js?v={v}" defer></script>'
        f'</head><body class="api-docs" data-openapi="{OPENAPI_30_PATH}">'
        '<header class="docs-bar"><a class="brand" href="/">'
        '<img src="/static/favicon.svg" alt="" width="22" height="22">portradar</a>'
        '<span class="docs-title">HTTP API</span>'
        '<a href="/">Dashboard</a>'
        f'<a href="{OPENAPI_PATH}">OpenAPI description (JSON)</a></header>'
        '<div id="swagger-ui"><p class="docs-loading">Loading the API description…</p></div>'
        "<noscript><p>Swagger UI needs JavaScript (served by portradar itself); the API's "
        f'description is <a href="{OPENAPI_PATH}">{OPENAPI_PATH}</a>.</p></noscript>'
        "</body></html>\n"
    )


@router.get(DOCS_PATH, response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    """Swagger UI over this server's OpenAPI description."""
    if swagger_ui_dir() is None:  # pragma: no cover - see swagger_ui_dir
        return not_found("Swagger UI is not installed (pip install swagger-ui-bundle); the "
                         f"API's description is {OPENAPI_PATH}.")
    return HTMLResponse(render_docs_page(), headers={"Cache-Control": "no-cache"})


@router.get(OPENAPI_30_PATH)
def openapi_30_description(request: Request) -> JSONResponse:
    """The API's description as OpenAPI 3.0 (see :func:`openapi_30`), for Swagger UI."""
    return JSONResponse(openapi_30(request.app.openapi()))


@router.get(ASSET_PREFIX + "/{name}", response_model=None)
def swagger_asset(name: str) -> FileResponse | HTMLResponse:
    """One of Swagger UI's :data:`ASSETS`, from the package's directory."""
    folder = swagger_ui_dir()
    if name not in ASSETS or folder is None:
        return not_found(f"No such file: {name[:100]!r}.")
    return FileResponse(folder / name, media_type=ASSETS[name])
