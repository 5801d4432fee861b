"""Browser tests of the dashboard: Debian's Chromium driven by Playwright over a real server.

The store is filled by the simulator (28 days, 3 sensors, a worm on TCP 445 from day 21, so the
spike is still open at the newest event and inside the default 7-day range) and the alerts a
watch service would have opened over it are recorded; the app is served
by uvicorn on a free 127.0.0.1 port in a thread. Every page is checked for console errors
(a CSP violation is one), failed requests, error answers and any request to a host other than
127.0.0.1; full-page screenshots go to ``test-artifacts/screenshots/`` (or
``$PORTRADAR_ARTIFACTS``). Skips when ``/usr/bin/chromium`` or Playwright is missing (CI: the
Debian ``chromium`` package and ``pip install playwright``; never ``playwright install``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import need_chromium

REPO = Path(__file__).resolve().parent.parent
#: A laptop screen (the most common laptop resolution in StatCounter's 2024 figures).
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
#: How long one page may take to render (API answers included), ms.
READY_MS = 20_000

need_chromium()  # skips the module without Chromium or Playwright
from playwright.sync_api import Browser, Page, ViewportSize  # noqa: E402


def _artifacts() -> Path:
    root = os.environ.get("PORTRADAR_ARTIFACTS")
    out = Path(root) / "screenshots" if root else REPO / "test-artifacts" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("dashboard") / "sim.duckdb"
    subprocess.run(
        [sys.executable, "-m", "portradar", "--db", str(db), "simulate", "--days", "28",
         "--sensors", "3", "--seed", "1", "--campaign", "445@21"],
        check=True, capture_output=True, timeout=120)
    # the alerts a watch service would have opened over this history (its detect step)
    from portradar.alerts.lifecycle import AlertBook
    from portradar.alerts.sightings import spike_sightings
    from portradar.store.duckdb_store import Store

    store = Store.open(str(db))
    try:
        sightings, _ = spike_sightings(store, "day")
        book = AlertBook(store)
        with store.transaction():
            book.observe(sightings)
    finally:
        store.close()
    return db


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[str]:
    import web_store

    from portradar.store.duckdb_store import Store
    from portradar.web.app import WebSettings, create_app

    store = Store.open(str(store_path))
    yield from web_store.serve(create_app(store, settings=WebSettings()))
    store.close()


class Watch:
    """What a page did that it should not: console errors, failures, foreign requests."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(
            f"failed request: {r.url} ({r.failure})"))
        page.on("response", self._response)
        page.on("request", self._request)

    def _response(self, resp: Any) -> None:
        if resp.status >= 400:
            self.problems.append(f"HTTP {resp.status}: {resp.url}")

    def _console(self, msg: Any) -> None:
        text = msg.text
        if msg.type == "error" or "Content Security Policy" in text or "Refused to" in text:
            self.problems.append(f"console {msg.type}: {text}")

    def _request(self, req: Any) -> None:
        url = urlparse(req.url)
        if url.scheme in ("data", "blob", "about"):
            return
        if url.hostname != "127.0.0.1":
            self.problems.append(f"request to another host: {req.url}")


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    ctx = browser.new_context(viewport=VIEWPORT, permissions=["clipboard-read", "clipboard-write"])
    pg = ctx.new_page()
    watch = Watch(pg)
    yield pg, watch
    ctx.close()


def _ready(pg: Page) -> None:
    pg.wait_for_selector("body[data-ready='1']", timeout=READY_MS)
    assert pg.locator("#error").count() == 0, pg.locator("#error").inner_text()


def _shot(pg: Page, name: str) -> None:
    pg.screenshot(path=str(_artifacts() / f"{name}.png"), full_page=True)


def test_overview_shows_the_445_spike_and_leads_to_the_port_page(
        server: str, page: tuple[Page, Watch]) -> None:
    pg, watch = page
    pg.goto(server + "/")
    _ready(pg)
    mover = pg.locator("tr.mover[data-proto='tcp'][data-port='445']")
    assert mover.count() == 1
    assert mover.get_attribute("data-spike") == "true"
    assert mover.locator("svg.spark polyline").count() == 1
    assert pg.locator("#level").get_attribute("data-level") in ("yellow", "orange", "red")
    assert pg.locator(".alert-list li a[href^='/ports/tcp/445']").count() >= 1
    _shot(pg, "overview")

    mover.locator("a.port-link").click()
    pg.wait_for_url("**/ports/tcp/445**")
    _ready(pg)
    chart = pg.locator("#chart-sources")
    assert chart.locator("canvas").count() >= 1
    assert chart.get_attribute("data-drawn") == "1"
    onsets = chart.get_attribute("data-spike-onsets") or ""
    assert onsets.startswith("2025-"), onsets
    markers = chart.locator(".spike-marker[data-onset]")
    assert markers.count() >= 1
    assert markers.first.get_attribute("data-onset") in onsets.split(",")
    box = markers.first.bounding_box()
    assert box is not None and box["width"] >= 2 and box["height"] > 50
    rule = pg.locator("#rule-text[data-dialect='nftables']")
    assert "445" in rule.inner_text() and "drop" in rule.inner_text()

    # hover: a tooltip and the legend show the values under the cursor (the legend shows the
    # newest bucket's values otherwise)
    when = chart.locator(".u-legend .u-series:nth-child(1) .u-value")
    newest = when.inner_text()
    assert newest.startswith("2025-02-02"), newest
    over = chart.locator(".u-over").bounding_box()
    assert over is not None
    pg.mouse.move(over["x"] + over["width"] * 0.4, over["y"] + over["height"] / 2)
    tip = chart.locator(".chart-tip.on")
    tip.wait_for(timeout=5000)
    assert "Sources: " in tip.inner_text() and "Expected: " in tip.inner_text()
    assert when.inner_text() != newest
    value = chart.locator(".u-legend .u-series:nth-child(2) .u-value").inner_text()
    assert value.replace(",", "").replace(".", "").isdigit(), value

    # zoom: drag across the chart, the x scale narrows and the zoom can become the range
    pg.mouse.move(over["x"] + over["width"] * 0.3, over["y"] + 40)
    pg.mouse.down()
    pg.mouse.move(over["x"] + over["width"] * 0.7, over["y"] + 40, steps=5)
    pg.mouse.up()
    pg.wait_for_selector("#zoom-apply:not([hidden])", timeout=5000)

    # copy button puts the rule on the clipboard
    pg.locator("#copy-rule").click()
    assert pg.evaluate("navigator.clipboard.readText()") == rule.inner_text()
    _shot(pg, "port-445")
    assert watch.problems == []


def test_time_range_bucket_and_dialect_change_the_url_and_the_data(
        server: str, page: tuple[Page, Watch]) -> None:
    pg, watch = page
    pg.goto(server + "/ports/tcp/445")
    _ready(pg)
    points_7d = int(pg.locator("#chart-sources").get_attribute("data-points") or 0)
    assert points_7d > 24

    pg.select_option("#range", "30d")
    pg.wait_for_url("**since=30d**")
    _ready(pg)
    points_30d = int(pg.locator("#chart-sources").get_attribute("data-points") or 0)
    assert points_30d > points_7d

    pg.locator(".segmented[aria-label='Bucket'] button[data-value='day']").click()
    pg.wait_for_url("**bucket=day**")
    _ready(pg)
    assert "since=30d" in pg.url
    points_day = int(pg.locator("#chart-sources").get_attribute("data-points") or 0)
    assert 0 < points_day < points_30d

    pg.select_option("#sensor", "sensor-02")
    pg.wait_for_url("**sensor=sensor-02**")
    _ready(pg)
    assert 0 < int(pg.locator("#chart-sources").get_attribute("data-points") or 0) <= points_day
    pg.select_option("#sensor", "")
    pg.wait_for_url(lambda url: "sensor=" not in url)
    _ready(pg)

    pg.locator("button[data-dialect='iptables']").click()
    pg.wait_for_url("**rule=iptables**")
    _ready(pg)
    assert "iptables" in pg.locator("#rule-text[data-dialect='iptables']").inner_text()

    # a custom range: two dates
    pg.select_option("#range", "custom")
    pg.locator("#range-picker input[aria-label='From']").fill("2025-01-25")
    pg.locator("#range-picker input[aria-label='To (inclusive)']").fill("2025-02-01")
    pg.locator("#range-picker button[type='submit']").click()
    pg.wait_for_url("**until=2025-02-02**")  # the API's until is exclusive
    _ready(pg)
    assert "since=2025-01-25" in pg.url
    assert int(pg.locator("#chart-sources").get_attribute("data-points") or 0) == 8
    assert pg.locator("#range-picker input[aria-label='To (inclusive)']").input_value() == (
        "2025-02-01")
    pg.go_back()
    _ready(pg)
    assert "since=30d" in pg.url

    # the URL is the state: reloading it shows the same view, and back undoes the last step
    pg.reload()
    _ready(pg)
    assert pg.locator("#range").input_value() == "30d"
    assert pg.locator("button[data-value='day'][aria-pressed='true']").count() == 1
    pg.go_back()  # the dialect replaced its history entry: back is the step before it
    _ready(pg)
    assert "sensor=sensor-02" in pg.url and "rule=" not in pg.url
    # navigation keeps the range
    assert "since=30d" in (pg.locator(".topbar nav a[href^='/scanners']").get_attribute("href")
                           or "")
    _shot(pg, "port-445-30d-by-day")
    assert watch.problems == []


PAGES = [("overview", "/"), ("ports", "/ports?since=30d"), ("scanners", "/scanners?since=30d"),
         ("campaigns", "/campaigns?since=30d"), ("alerts", "/alerts?status=all"),
         ("sensors", "/sensors")]


def test_every_page_loads_cleanly_at_laptop_width(
        server: str, page: tuple[Page, Watch]) -> None:
    pg, watch = page
    for name, path in PAGES:
        resp = pg.goto(server + path)
        assert resp is not None and resp.status == 200
        # the page ran under the strict CSP (a violation would be a console error)
        csp = resp.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "style-src 'self'" in csp, csp
        _ready(pg)
        assert pg.locator("main .panel").count() >= 1, name
        if name == "alerts":  # the open 445 alert, acknowledged from the page (local admin)
            row = "main tr[data-status='open']:has(a[href^='/ports/tcp/445'])"
            assert pg.locator(row).count() == 1
            pg.locator(f"{row} button.ack").click()
            pg.wait_for_selector(f"{row} button.ack", state="detached", timeout=READY_MS)
            _ready(pg)
            assert "local" in pg.locator(row).inner_text()
        width = pg.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{name} overflows the window: {width}"
        _shot(pg, name)
    # one scanner, reached from the list
    pg.goto(server + "/scanners?since=30d")
    _ready(pg)
    link = pg.locator("main table a[href^='/scanners/']").first
    assert link.count() == 1
    link.click()
    pg.wait_for_url("**/scanners/*")
    _ready(pg)
    _shot(pg, "scanner")
    # one campaign, reached from the scanner's
    pg.locator("main a[href^='/campaigns/']").first.click()
    pg.wait_for_url("**/campaigns/*")
    _ready(pg)
    assert pg.locator("main a[href^='/scanners/']").count() >= 1
    _shot(pg, "campaign")
    # a narrower laptop
    pg.set_viewport_size({"width": 1024, "height": 700})
    pg.goto(server + "/ports/tcp/445")
    _ready(pg)
    width = pg.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"port page overflows at 1024 px: {width}"
    _shot(pg, "port-445-1024px")
    assert watch.problems == []


def test_bad_path_parameters_are_404_pages_not_errors(
        server: str, page: tuple[Page, Watch]) -> None:
    import urllib.error
    import urllib.request

    for path in ("/ports/xyz/445", "/ports/tcp/70000", "/ports/tcp/1%20OR%201=1",
                 "/scanners/1.2.3.4'%20OR%201=1", "/scanners/..%2F..%2Fetc%2Fpasswd",
                 "/campaigns/abc", "/campaigns/1;DROP%20TABLE%20scanners"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server + path, timeout=10)
        assert err.value.code == 404, path
        text = err.value.read().decode()
        assert "data-page=\"notfound\"" in text and "<script>" not in text, path
    pg, watch = page
    resp = pg.goto(server + "/ports/tcp/70000")
    assert resp is not None and resp.status == 404
    _ready(pg)
    assert "Not a port" in pg.locator("#not-found").inner_text()
    # the page's own 404 (and Chromium's console line about it) is the only problem
    assert [p for p in watch.problems if "404" not in p] == []


# -- the dark theme ------------------------------------------------------------------------

#: Mean relative luminance (WCAG) of the opaque pixels in the y axis's label strip of a chart's
#: canvas, and how many there are: the labels drawn by uPlot in the theme's colour (the canvas
#: is transparent elsewhere; the grid and the series are right of this strip).
AXIS_INK_JS = """sel => {
  const c = document.querySelector(sel + " canvas");
  const r = window.devicePixelRatio || 1;
  const d = c.getContext("2d").getImageData(0, 0, Math.round(40 * r), c.height).data;
  const lin = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  let sum = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 200) continue;
    sum += 0.2126 * lin(d[i]) + 0.7152 * lin(d[i + 1]) + 0.0722 * lin(d[i + 2]);
    n += 1;
  }
  return [n, n ? sum / n : null];
}"""

#: The text colour of an element and the colour it is drawn on (its first ancestor, itself
#: included, with an opaque background), both as [r, g, b].
COLOURS_JS = """sel => {
  const el = document.querySelector(sel);
  if (!el) return null;
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  let bg = null;
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
  }
  return { fg: rgb(getComputedStyle(el).color).slice(0, 3), bg: bg || [255, 255, 255] };
}"""


def _luminance(rgb: list[float]) -> float:
    def lin(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: list[float], b: list[float]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _rgb(css: str) -> list[float]:
    import re

    return [float(v) for v in re.findall(r"[\d.]+", css)[:3]]


def _theme_state(pg: Page) -> dict[str, Any]:
    return {
        "body": _luminance(_rgb(pg.evaluate("getComputedStyle(document.body).backgroundColor"))),
        "panel": _luminance(_rgb(pg.evaluate(
            "getComputedStyle(document.querySelector('main .panel')).backgroundColor"))),
        "legend": _luminance(_rgb(pg.evaluate(
            "getComputedStyle(document.querySelector('#chart-sources .u-legend .u-label'))"
            ".color"))),
        "axis": pg.evaluate(AXIS_INK_JS, "#chart-sources"),
        "chart": pg.locator("#chart-sources").get_attribute("data-theme"),
        "html": pg.evaluate("document.documentElement.getAttribute('data-theme')"),
        "stored": pg.evaluate("localStorage.getItem('portradar.theme')"),
        "pressed": pg.locator("#theme-toggle").get_attribute("aria-pressed"),
    }


def _assert_dark(state: dict[str, Any]) -> None:
    assert state["body"] < 0.02 and state["panel"] < 0.03, state  # near black
    assert state["legend"] > 0.3, state                            # light labels
    pixels, ink = state["axis"]
    assert pixels > 30 and ink > 0.45, state                        # light axis labels
    assert state["chart"] == "dark" and state["pressed"] == "true", state


def _assert_light(state: dict[str, Any]) -> None:
    assert state["body"] > 0.85 and state["panel"] > 0.95, state
    assert state["legend"] < 0.15, state
    pixels, ink = state["axis"]
    assert pixels > 30 and ink < 0.12, state
    assert state["chart"] == "light" and state["pressed"] == "false", state


def test_dark_theme_follows_the_os_and_the_toggle_is_remembered(
        server: str, browser: Browser) -> None:
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
    try:
        pg = ctx.new_page()
        watch = Watch(pg)
        pg.goto(server + "/ports/tcp/445")
        _ready(pg)
        state = _theme_state(pg)
        _assert_dark(state)
        assert state["html"] == "dark" and state["stored"] is None  # no choice: the OS's
        _shot(pg, "port-445-dark")

        # the toggle switches at once, charts drawn again in the light colours (zoom kept)
        over = pg.locator("#chart-sources .u-over").bounding_box()
        assert over is not None
        pg.mouse.move(over["x"] + over["width"] * 0.3, over["y"] + 40)
        pg.mouse.down()
        pg.mouse.move(over["x"] + over["width"] * 0.6, over["y"] + 40, steps=5)
        pg.mouse.up()
        pg.wait_for_selector("#zoom-apply:not([hidden])", timeout=5000)
        zoom = pg.locator("#chart-sources").get_attribute("data-zoom") or ""
        assert zoom.count(",") == 1, zoom
        pg.locator("#theme-toggle").click()
        pg.wait_for_selector("#chart-sources[data-theme='light']", timeout=5000)
        state = _theme_state(pg)
        _assert_light(state)
        assert state["html"] == "light" and state["stored"] == "light"
        assert pg.locator("#chart-sources canvas").count() == 1  # redrawn, not added
        assert pg.locator("#chart-sources").get_attribute("data-zoom") == zoom
        assert pg.locator("#zoom-apply:not([hidden])").count() == 1

        # remembered across a reload and on other pages
        pg.reload()
        _ready(pg)
        state = _theme_state(pg)
        _assert_light(state)
        assert state["html"] == "light"
        pg.goto(server + "/")
        _ready(pg)
        assert _luminance(_rgb(pg.evaluate(
            "getComputedStyle(document.body).backgroundColor"))) > 0.85

        # back to what the OS says: the choice is forgotten, the page follows the OS again
        pg.goto(server + "/ports/tcp/445")
        _ready(pg)
        pg.locator("#theme-toggle").click()
        pg.wait_for_selector("#chart-sources[data-theme='dark']", timeout=5000)
        state = _theme_state(pg)
        _assert_dark(state)
        assert state["html"] == "dark" and state["stored"] is None
        assert watch.problems == []
    finally:
        ctx.close()

    # a light OS: light by default; choosing dark is remembered
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    try:
        pg = ctx.new_page()
        watch = Watch(pg)
        pg.goto(server + "/ports/tcp/445")
        _ready(pg)
        _assert_light(_theme_state(pg))
        pg.locator("#theme-toggle").click()
        pg.wait_for_selector("#chart-sources[data-theme='dark']", timeout=5000)
        _assert_dark(_theme_state(pg))
        pg.reload()
        _ready(pg)
        state = _theme_state(pg)
        _assert_dark(state)
        assert state["stored"] == "dark" and state["html"] == "dark"
        assert watch.problems == []
    finally:
        ctx.close()


#: Text on the page and what it sits on, checked for WCAG AA contrast in both themes.
CONTRAST_TARGETS = [
    "main .page-title", "main .page-sub", "main .panel h2", "main th", "main td",
    "main .badge", "main table a", "#chart-sources .u-legend .u-label", ".chart-help",
    ".footer", ".footer a", ".topbar nav a", ".topbar nav a[aria-current='page']",
    "#theme-toggle", "main .segmented [aria-pressed='true']", "main select",
    "pre.rule", ".spike-label", "main .badge.open",
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_wcag_aa_in_both_themes(
        server: str, browser: Browser, scheme: str) -> None:
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)  # type: ignore[arg-type]
    try:
        pg = ctx.new_page()
        low = []
        checked = 0
        for path in ("/ports/tcp/445", "/"):
            pg.goto(server + path)
            _ready(pg)
            for sel in [*CONTRAST_TARGETS, "main .level-badge", "main .stat .k"]:
                found = pg.evaluate(COLOURS_JS, sel)
                if found is None:
                    continue
                checked += 1
                ratio = _contrast(found["fg"], found["bg"])
                if ratio < 4.5:
                    low.append(f"{path} {sel}: {ratio:.2f} ({found})")
        assert checked >= 20
        assert low == []
    finally:
        ctx.close()
