"""Dashboard pages: one HTML shell per page, filled in the browser from the ``/api/v1`` JSON API.

Every page is the same small document: the navigation, a ``<main>`` the script fills, a footer
linking the API docs (``/api/docs``), and links to the assets under ``/static``
(``theme.js``, which applies a remembered light/dark choice before the first paint,
``dashboard.css``, ``dashboard.js`` and the vendored uPlot, see
``static/vendor/uplot/SOURCE.md``). Nothing is fetched from another host, so the dashboard works
on an air-gapped analyst box, and there is no inline script or style, so it runs under the strict
CSP the app sends (``script-src 'self'; style-src 'self'``). The page's own state (time range,
bucket, metric, dialect, filters, paging) lives in the query string, which the script reads and
rewrites, so every view is a link. The path parameters are checked here (a bad port, protocol,
address or id is a 404 page saying what was wrong, never passed on), and everything put in the
page is HTML-escaped.

Pages: ``/`` (overview), ``/ports``, ``/ports/{proto}/{port}``, ``/scanners``,
``/scanners/{address}``, ``/campaigns``, ``/campaigns/{id}``, ``/alerts``, ``/sensors``.

>>> "data-page=\\"port\\"" in render_page("port", "tcp/445", {"proto": "tcp", "port": "445"})
True
>>> "<script>" in render_page("overview", "<script>", {})
False
"""

from __future__ import annotations

import html
import ipaddress
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["PROTOCOLS", "asset_version", "render_page", "router"]

router = APIRouter(include_in_schema=False)

#: Transport names a port page accepts (the ones with ports; the API maps them to numbers).
PROTOCOLS = ("tcp", "udp", "sctp")

#: The navigation bar: (page key, label, path).
NAV = (
    ("overview", "Overview", "/"),
    ("ports", "Ports", "/ports"),
    ("scanners", "Scanners", "/scanners"),
    ("campaigns", "Campaigns", "/campaigns"),
    ("alerts", "Alerts", "/alerts"),
    ("sensors", "Sensors", "/sensors"),
)

#: Which navigation entry a detail page belongs to.
SECTION = {"port": "ports", "scanner": "scanners", "campaign": "campaigns"}

try:
    _ASSET_VERSION = version("portradar")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    _ASSET_VERSION = "dev"


def asset_version() -> str:
    """The version put in asset URLs (``?v=``), so an upgrade is never served stale files."""
    return _ASSET_VERSION


def render_page(page: str, title: str, data: dict[str, str]) -> str:
    """The HTML shell of one page; ``data`` becomes ``data-*`` attributes the script reads."""
    esc = html.escape
    attrs = "".join(f' data-{esc(k)}="{esc(v)}"' for k, v in data.items())
    section = SECTION.get(page, page)
    current = ' aria-current="page"'
    nav = "".join(
        f'<a href="{path}"{current if key == section else ""}>{label}</a>'
        for key, label, path in NAV
    )
    v = esc(_ASSET_VERSION)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · portradar</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        # not deferred: the remembered theme applies before the first paint
        f'<script src="/static/theme.js?v={v}"></script>'
        f'<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css?v={v}">'
        f'<link rel="stylesheet" href="/static/dashboard.css?v={v}">'
        f'<script src="/static/vendor/uplot/uPlot.iife.min.js?v={v}" defer></script>'
        f'<script src="/static/dashboard.js?v={v}" defer></script>'
        f'</head><body data-page="{esc(page)}"{attrs}>'
        '<header class="topbar"><a class="brand" href="/">'
        '<img src="/static/favicon.svg" alt="" width="22" height="22">portradar</a>'
        f'<nav aria-label="Sections">{nav}</nav></header>'
        f'<main id="main"><h1 class="page-title">{esc(title)}</h1>'
        '<p class="loading">Loading…</p>'
        "<noscript><p>The dashboard needs JavaScript (served by portradar itself); "
        "the same data is in the JSON API under /api/v1.</p></noscript></main>"
        '<footer class="footer">portradar · times are UTC, event time · '
        '<a href="/api/docs" id="api-docs-link">API docs</a> · '
        '<a href="/api/openapi.json">OpenAPI description</a></footer>'
        "</body></html>\n"
    )


def _page(page: str, title: str, **data: str) -> HTMLResponse:
    return HTMLResponse(render_page(page, title, data), headers={"Cache-Control": "no-cache"})


def not_found(message: str) -> HTMLResponse:
    """A 404 page saying what was wrong with the link (a page, not the API's JSON error).

    >>> r = not_found("Not a port: 'x'.")
    >>> r.status_code, b"Not a port" in r.body
    (404, True)
    """
    return HTMLResponse(render_page("notfound", "Not found", {"message": message}),
                        status_code=404, headers={"Cache-Control": "no-cache"})


def _integer(text: str, low: int, high: int) -> int | None:
    """``text`` as a decimal integer within ``[low, high]``, else None.

    >>> _integer("445", 0, 65535), _integer("70000", 0, 65535), _integer("1 OR 1=1", 0, 9)
    (445, None, None)
    """
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if low <= value <= high else None


@router.get("/", response_class=HTMLResponse)
def overview_page() -> HTMLResponse:
    """Current level and why, movers, open alerts, events/s and sensors."""
    return _page("overview", "Overview")


@router.get("/ports", response_class=HTMLResponse)
def ports_page() -> HTMLResponse:
    """The top ports of the period."""
    return _page("ports", "Ports")


@router.get("/ports/{proto}/{port}", response_class=HTMLResponse)
def port_page(proto: str, port: str) -> HTMLResponse:
    """One port's history, spikes, scanners, vulnerabilities, actions and rules."""
    proto = proto.lower()
    if proto not in PROTOCOLS:
        return not_found(f"Unknown protocol {proto!r}: use one of {', '.join(PROTOCOLS)}.")
    number = _integer(port, 0, 65535)
    if number is None:
        return not_found(f"Not a port: {port!r} (0-65535).")
    return _page("port", f"{proto}/{number}", proto=proto, port=str(number))


@router.get("/scanners", response_class=HTMLResponse)
def scanners_page() -> HTMLResponse:
    """Flagged scanners, filterable by port and kind."""
    return _page("scanners", "Scanners")


@router.get("/scanners/{address:path}", response_class=HTMLResponse)
def scanner_page(address: str) -> HTMLResponse:
    """One scanner: an address, or an IPv6 /64 aggregate written ``prefix/64``."""
    try:
        text = str(ipaddress.ip_network(address, strict=False) if "/" in address
                   else ipaddress.ip_address(address))
    except ValueError:
        return not_found(f"Not an IP address or network: {address[:100]!r}.")
    return _page("scanner", text, address=text)


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns_page() -> HTMLResponse:
    """Campaigns: scanners grouped by what they scan and when."""
    return _page("campaigns", "Campaigns")


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(campaign_id: str) -> HTMLResponse:
    """One campaign."""
    number = _integer(campaign_id, 0, 2**31 - 1)
    if number is None:
        return not_found(f"Not a campaign id: {campaign_id[:100]!r}.")
    return _page("campaign", f"Campaign {number}", id=str(number))


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page() -> HTMLResponse:
    """Alerts, open or resolved."""
    return _page("alerts", "Alerts")


@router.get("/sensors", response_class=HTMLResponse)
def sensors_page() -> HTMLResponse:
    """Per-sensor health as the collector sees it."""
    return _page("sensors", "Sensors")
