"""Swagger UI at ``/api/docs`` in Debian's Chromium (Playwright) over a real server.

The page must render every operation of the API from the server alone (no request to any
other host, no CSP violation), reach it from the dashboard's footer, run "Try it out" on a GET
operation with the browser's own credentials, and be refused without them exactly like the
dashboard. The store is the small simulated one of ``web_store``; one uvicorn server is bound
to loopback (no login), one requires authentication (a user with HTTP Basic, an admin token).
Skips when ``/usr/bin/chromium`` or Playwright is missing.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import web_store
from conftest import need_chromium

VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
READY_MS = 30_000

need_chromium()  # skips the module without Chromium or Playwright
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402

from portradar.store.duckdb_store import Store  # noqa: E402
from portradar.web import auth  # noqa: E402
from portradar.web.app import WebSettings, create_app  # noqa: E402
from portradar.web.security_headers import CSP  # noqa: E402

#: The operation block of GET /api/v1/ports (Swagger UI's id: tag and operationId).
PORTS_OP = "#operations-ports-list_ports_api_v1_ports_get"
WHOAMI_OP = "#operations-session-whoami_api_v1_whoami_get"
ACK_OP = "#operations-alerts-ack_alert_api_v1_alerts__alert_id__ack_post"


def _serve(store: Store, settings: WebSettings) -> Iterator[str]:
    yield from web_store.serve(create_app(store, settings=settings))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    st = Store.open(web_store.fresh_copy(tmp_path_factory, "docs"))
    yield st
    st.close()


@pytest.fixture(scope="module")
def local(store: Store) -> Iterator[str]:
    """A loopback server: no login, every caller is the local admin."""
    yield from _serve(store, WebSettings(prepare=False))


@pytest.fixture(scope="module")
def guarded(store: Store) -> Iterator[tuple[str, str]]:
    """(url, admin token) of a server that requires authentication; user alice/read."""
    auth.add_user(store, "alice", "alice-password", "read", n=2**14)
    token = auth.add_token(store, "boss", "admin")
    for url in _serve(store, WebSettings(require_auth=True, prepare=False)):
        yield url, token


class Record:
    """Every request, response and console message of a page."""

    def __init__(self, page: Page) -> None:
        self.requests: list[str] = []
        self.responses: list[tuple[int, str]] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("response", lambda r: self.responses.append((r.status, r.url)))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def foreign(self, base: str) -> list[str]:
        """Requests to anything but the test server (scheme, host and port)."""
        own = urlparse(base)
        out = []
        for url in self.requests:
            u = urlparse(url)
            if u.scheme in ("data", "blob", "about"):
                continue
            if (u.scheme, u.hostname, u.port) != (own.scheme, own.hostname, own.port):
                out.append(url)
        return out

    def csp_violations(self) -> list[str]:
        return [m for m in self.console
                if "Content Security Policy" in m or "Refused to" in m]


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT)
    yield ctx
    ctx.close()


def _rendered(pg: Page) -> None:
    pg.wait_for_selector("body[data-ready='1']", timeout=READY_MS)
    pg.wait_for_selector(PORTS_OP, timeout=READY_MS)


def _try_it_out(pg: Page, op: str, **params: str) -> tuple[str, str]:
    """Open an operation, press "Try it out", fill ``params`` and "Execute"; (status, body)
    shown."""
    block = pg.locator(op)
    if "is-open" not in (block.get_attribute("class") or ""):  # deep links open it on reload
        block.locator(".opblock-summary").first.click()
    block.locator("button.try-out__btn").click()
    for name, value in params.items():
        block.locator(f"tr[data-param-name='{name}'] input").fill(value)
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=READY_MS)
    body = block.locator(".live-responses-table .response-col_description pre").first
    return status.inner_text().strip(), body.inner_text()


def test_swagger_ui_renders_the_api_from_the_server_alone(
        local: str, context: BrowserContext) -> None:
    pg = context.new_page()
    rec = Record(pg)
    # reached from the dashboard's footer
    pg.goto(local + "/")
    link = pg.locator("footer a#api-docs-link")
    assert link.get_attribute("href") == "/api/docs"
    with pg.expect_navigation():
        link.click()
    assert urlparse(pg.url).path == "/api/docs"
    resp = pg.reload()
    assert resp is not None and resp.status == 200
    # the site's one policy, not weakened for this page
    assert resp.headers["content-security-policy"] == CSP
    _rendered(pg)

    spec = json.loads(urllib.request.urlopen(local + "/api/openapi.json", timeout=10).read())
    n_ops = sum(len(ops) for ops in spec["paths"].values())
    assert n_ops >= 17
    blocks = pg.locator("#swagger-ui .opblock")
    assert blocks.count() == n_ops
    ports = pg.locator(PORTS_OP)
    assert ports.is_visible()
    assert ports.locator(".opblock-summary-method").inner_text() == "GET"
    assert ports.locator(".opblock-summary-path").inner_text().replace("\u200b", "") == (
        "/api/v1/ports")
    assert pg.locator(".info .title").inner_text().startswith("portradar")

    status, body = _try_it_out(pg, PORTS_OP)
    assert status == "200", body[:300]
    answer = json.loads(body)
    assert answer["total"] >= 1 and {"proto", "port", "records"} <= set(answer["items"][0])
    api_calls = [(s, u) for s, u in rec.responses if urlparse(u).path == "/api/v1/ports"]
    assert api_calls and all(s == 200 for s, _ in api_calls), api_calls

    # everything came from the server: Swagger UI's files, its start-up script, the description
    paths = {urlparse(u).path for u in rec.requests}
    assert {"/static/swagger-ui/swagger-ui-bundle.js", "/static/swagger-ui/swagger-ui.css",
            "/static/api-docs.js", "/api/docs/openapi-3.0.json"} <= paths, paths
    assert rec.foreign(local) == []
    assert rec.csp_violations() == []
    assert [m for m in rec.console if m.startswith("error")] == []
    assert rec.errors == []
    assert all(s < 400 for s, _ in rec.responses), rec.responses


def test_try_it_out_uses_the_users_login(guarded: tuple[str, str], browser: Browser) -> None:
    url, token = guarded
    # no credentials: refused like the dashboard, with the challenge that makes a browser ask
    # (Chromium without a password to give abandons the navigation)
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        pg = ctx.new_page()
        rec = Record(pg)
        for path in ("/api/docs", "/"):
            with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                pg.goto(url + path)
        assert [s for s, _ in rec.responses] == [401, 401]
        for path in ("/api/docs", "/api/docs/openapi-3.0.json", "/static/api-docs.js",
                     "/static/swagger-ui/swagger-ui-bundle.js", "/"):
            r = ctx.request.get(url + path)
            assert r.status == 401, path
            assert r.headers["www-authenticate"].startswith("Basic"), path
            assert r.json()["error"]["code"] == "unauthorized", path
    finally:
        ctx.close()

    # the user's password (HTTP Basic, as a browser sends it): page, files and "Try it out"
    ctx = browser.new_context(viewport=VIEWPORT, http_credentials={
        "username": "alice", "password": "alice-password"})
    try:
        pg = ctx.new_page()
        rec = Record(pg)
        resp = pg.goto(url + "/api/docs")
        assert resp is not None and resp.status == 200
        _rendered(pg)
        status, body = _try_it_out(pg, WHOAMI_OP)
        assert status == "200", body[:300]
        assert json.loads(body) == {"user": "alice", "role": "read"}
        # a state-changing request from the page is same-origin: refused for the role only
        alert_id = str(ctx.request.get(url + "/api/v1/alerts", headers={
            "Authorization": f"Bearer {token}"}).json()["items"][0]["alert_id"])
        status, body = _try_it_out(pg, ACK_OP, alert_id=alert_id)
        assert status == "403" and json.loads(body)["error"]["code"] == "forbidden", body
        assert rec.foreign(url) == [] and rec.csp_violations() == []

        # a token given to the dashboard (this tab's session storage) is used too
        pg.evaluate("t => sessionStorage.setItem('portradar.token', t)", token)
        pg.reload()
        _rendered(pg)
        status, body = _try_it_out(pg, WHOAMI_OP)
        assert status == "200", body[:300]
        assert json.loads(body) == {"user": "boss", "role": "admin"}
        status, body = _try_it_out(pg, ACK_OP, alert_id=alert_id)
        assert status == "200", body[:300]
        assert json.loads(body)["acked_by"] == "boss"
    finally:
        ctx.close()


def test_docs_page_without_the_package_files_it_does_not_serve(local: str) -> None:
    """Only the two files the page uses (and their maps) are served from the package."""
    import urllib.error

    for name in ("index.html", "swagger-initializer.js", "oauth2-redirect.html",
                 "..%2F..%2F__init__.py", "swagger-ui.js"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{local}/static/swagger-ui/{name}", timeout=10)
        assert err.value.code == 404, name
    with urllib.request.urlopen(local + "/static/swagger-ui/swagger-ui.css", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/css")
        assert b".swagger-ui" in r.read(5000)
