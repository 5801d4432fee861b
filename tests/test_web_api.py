"""The HTTP API in process: every endpoint, pagination, the error shape, hostile input,
the read-only (reopen per request) mode with a concurrent writer, parallel requests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import web_store
from fastapi.testclient import TestClient

from portradar.store.duckdb_store import Store
from portradar.web.app import WebSettings, create_app
from portradar.web.security_headers import CSP


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return web_store.fresh_copy(tmp_path_factory, "api")


@pytest.fixture(scope="module")
def client(store_path: Path) -> Any:
    store = Store.open(store_path)
    app = create_app(store, settings=WebSettings())
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    store.close()


def ok(client: TestClient, url: str, **params: Any) -> Any:
    r = client.get(url, params=params)
    assert r.status_code == 200, (url, r.status_code, r.text[:500])
    return r.json()


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"status", "code", "message", "detail"}
    assert err["status"] == status
    if code:
        assert err["code"] == code
    return err


# -- every endpoint ----------------------------------------------------------------------


def test_overview_shows_the_445_campaign(client: TestClient) -> None:
    body = ok(client, "/api/v1/overview")
    assert body["level"]["level"] in ("yellow", "orange", "red")
    assert any("445" in r for r in body["level"]["reasons"])
    mover = next(m for m in body["movers"] if m["port"] == 445 and m["proto"] == "tcp")
    assert mover["spike"] is True and mover["ratio"] > 2 and mover["service"] == "microsoft-ds"
    assert len(mover["sparkline"]) == 7  # the default range: 7 days of event time
    assert body["newest_event"].startswith("2025-01-26")
    assert body["events_total"] > 0 and body["events_per_s"] > 0
    assert [a["port"] for a in body["open_alerts"]] == [445]
    assert len(body["sensors"]) == 3 and body["period"] == "day"
    hourly = ok(client, "/api/v1/overview", period="hour")
    assert hourly["period"] == "hour"


def test_ports_ranked_and_paginated(client: TestClient) -> None:
    first = ok(client, "/api/v1/ports", limit=5)
    assert [p["rank"] for p in first["items"]] == [1, 2, 3, 4, 5]
    assert first["total"] > 5 and first["next"] == "/api/v1/ports?limit=5&offset=5"
    second = ok(client, "/api/v1/ports", limit=5, offset=5)
    assert [p["rank"] for p in second["items"]] == [6, 7, 8, 9, 10]
    by_sources = ok(client, "/api/v1/ports", by="sources", period="hour", limit=3)
    counts = [p["sources"] for p in by_sources["items"]]
    assert counts == sorted(counts, reverse=True)
    last = ok(client, "/api/v1/ports", limit=1000)
    assert last["next"] is None and len(last["items"]) == last["total"]
    assert ok(client, "/api/v1/ports", until="2025-01-20")["items"][0]["bucket"] == \
        "2025-01-19T00:00:00Z"


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_port_page(client: TestClient, bucket: str) -> None:
    body = ok(client, "/api/v1/ports/tcp/445", bucket=bucket)
    assert body["service"] == "microsoft-ds"
    assert len(body["series"]) == (7 * 24 if bucket == "hour" else 7)
    point = body["series"][-1]
    assert point["band_low"] <= point["expected"] <= point["band_high"]
    assert body["spikes"] and body["spikes"][0]["onset"] >= "2025-01-19"
    assert "445" in body["rules"]["nftables"] and set(body["rules"]) == {
        "nftables", "iptables", "pf", "windows", "cisco"}
    assert body["actions"] and body["level"] in ("yellow", "orange", "red")
    assert body["top_scanners"] and all(445 in s["port_list"] for s in body["top_scanners"])
    assert isinstance(body["vulnerabilities"], list) and body["vulnerabilities"]
    assert "known" in body["exposure"]
    sensor = ok(client, "/api/v1/ports/tcp/445", bucket=bucket, sensor="sensor-01")
    assert sum(p["sources"] for p in sensor["series"]) <= sum(
        p["sources"] for p in body["series"])
    # the day detector's spikes are on the hourly view too, each with its period
    days = [s for s in body["spikes"] if s["period"] == "day"]
    assert days and all(s["onset"].endswith("T00:00:00Z") for s in days)
    if bucket == "day":
        assert all(s["period"] == "day" for s in body["spikes"])
    assert all("doubling_hours" in s and "growth" not in s for s in body["spikes"])


def test_port_page_of_a_quiet_port_and_ranges(client: TestClient) -> None:
    quiet = ok(client, "/api/v1/ports/udp/4", bucket="day")
    assert quiet["series"] == [] or all(p["sources"] >= 0 for p in quiet["series"])
    ranged = ok(client, "/api/v1/ports/tcp/445", bucket="day", since="2025-01-10",
                until="2025-01-13T00:00:00Z")
    assert [p["ts"] for p in ranged["series"]] == [
        "2025-01-10T00:00:00Z", "2025-01-11T00:00:00Z", "2025-01-12T00:00:00Z"]
    relative = ok(client, "/api/v1/ports/tcp/445", bucket="hour", since="24h")
    assert len(relative["series"]) == 24
    icmp = ok(client, "/api/v1/ports/icmp/8")
    assert icmp["rules"] == {} and icmp["actions"] == []


def test_spikes(client: TestClient) -> None:
    body = ok(client, "/api/v1/spikes", since="21d")
    spike = next(s for s in body["items"] if s["port"] == 445)
    assert spike["status"] == "open" and spike["end"] is None and spike["kind"]
    assert ok(client, "/api/v1/spikes", port=445, status="open")["total"] >= 1
    assert all(s["status"] == "ended" for s in
               ok(client, "/api/v1/spikes", status="ended", since="21d")["items"])
    assert ok(client, "/api/v1/spikes", port=1, proto="udp")["total"] == 0
    assert ok(client, "/api/v1/spikes", period="hour", port=445)["total"] >= 0


def test_scanners_and_campaigns(client: TestClient) -> None:
    body = ok(client, "/api/v1/scanners", limit=3)
    assert len(body["items"]) == 3 and body["total"] > 3
    probes = [s["probes"] for s in body["items"]]
    assert probes == sorted(probes, reverse=True)
    one = ok(client, f"/api/v1/scanners/{body['items'][0]['source']}")
    assert one["source"] == body["items"][0]["source"] and one["top_ports"]
    on_445 = ok(client, "/api/v1/scanners", port=445, kind="horizontal", since="7d")
    assert all(445 in s["port_list"] for s in on_445["items"])
    assert_error(client.get("/api/v1/scanners/192.0.2.1"), 404, "not_found")
    assert_error(client.get("/api/v1/scanners/not-an-address"), 422)
    campaigns = ok(client, "/api/v1/campaigns")
    assert campaigns["total"] >= 1
    cid = campaigns["items"][0]["id"]
    detail = ok(client, f"/api/v1/campaigns/{cid}")
    assert len(detail["member_list"]) == detail["members"]
    # each campaign names the ports its members probed, most members first (this
    # store's one campaign is a shared target list, most of its members on 22)
    ports = campaigns["items"][0]["ports"]
    assert ports and all(set(p) == {"proto", "port", "members"} for p in ports)
    assert (ports[0]["proto"], ports[0]["port"]) == ("tcp", 22)
    assert all(1 <= p["members"] <= campaigns["items"][0]["members"] for p in ports)
    assert [p["members"] for p in ports] == sorted((p["members"] for p in ports), reverse=True)
    assert detail["ports"] == ports
    assert_error(client.get("/api/v1/campaigns/99999"), 404)


def test_alerts_and_ack(client: TestClient) -> None:
    body = ok(client, "/api/v1/alerts", status="open")
    assert body["total"] == 1 and body["items"][0]["acknowledged"] is False
    # times ISO UTC with "Z", as every other time of the API (the overview's too)
    item = body["items"][0]
    assert item["opened_at"] == "2025-01-24T00:00:00Z" and item["onset"] == "2025-01-20T00:00:00Z"
    assert item["evidence"]["spike"]["onset"] == "2025-01-20T00:00:00Z"
    assert ok(client, "/api/v1/overview")["open_alerts"][0]["opened_at"].endswith("Z")
    alert_id = body["items"][0]["alert_id"]
    assert ok(client, f"/api/v1/alerts/{alert_id}")["port"] == 445
    assert ok(client, "/api/v1/alerts", status="resolved")["total"] == 0
    r = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "blocked at the edge"})
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged"] is True and r.json()["ack_note"] == "blocked at the edge"
    assert r.json()["acked_by"] == "local"
    assert_error(client.post("/api/v1/alerts/4242/ack"), 404)
    assert_error(client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "x" * 5000}), 422)


def test_assessment_rules_sensors_status(client: TestClient) -> None:
    body = ok(client, "/api/v1/assessment")
    assert body["level"] in ("yellow", "orange", "red")
    port = next(p for p in body["ports"] if p["port"] == 445)
    assert port["actions"] and port["reasons"]
    for dialect, needle in (("nftables", "dport 445"), ("iptables", "--dport 445"),
                            ("pf", "port 445"), ("windows", "445"), ("cisco", "eq 445"),
                            ("suricata", "445")):
        rule = ok(client, "/api/v1/rules/tcp/445", dialect=dialect)
        assert rule["dialect"] == dialect and needle in rule["text"], (dialect, rule["text"])
    assert_error(client.get("/api/v1/rules/icmp/8"), 422)
    sensors = ok(client, "/api/v1/sensors")
    assert [s["sensor"] for s in sensors["items"]] == sorted(
        [s["sensor"] for s in sensors["items"]], key=lambda n: -next(
            x["events"] for x in sensors["items"] if x["sensor"] == n))
    # no collector in this store: every sensor known from its activity only
    assert sensors["total"] == 3 and all(
        s["source"] == "activity" and s["last_seen"] is None and s["last_activity"]
        for s in sensors["items"])
    status = ok(client, "/api/v1/status")
    assert status["events"] == 40803 and status["inputs"] and status["runs"]
    assert status["first_event"] < status["last_event"]


def test_one_pass_answers_equal_the_per_port_ones(client: TestClient) -> None:
    """The overview's shortcuts change no answer: the detector over every port with the
    per-sensor rows that can matter equals it over the whole per-sensor matrix, and the
    levels assessed in one pass (one exposure scan, vulnerability queries only for ports
    with fresh facts) equal those decided port by port from the knowledge base's and the
    exposure's own per-port answers, on the store's last day and on days of the bundled
    history when 445 and 139 have fresh vulnerabilities."""
    from datetime import date

    from portradar.assess.spike_evidence import from_spike
    from portradar.assess.threat_level import AssessParams, assess_ports, decide
    from portradar.intel.exposure import port_exposure
    from portradar.spikes.activity_matrix import from_store
    from portradar.spikes.spike_detector import SpikeDetector
    from portradar.web import derived

    access = client.app.state.access  # type: ignore[attr-defined]
    with access.read() as store:
        detection = derived.detect_all(store, "day")
        full = SpikeDetector.for_period("day").detect(
            from_store(store, period="day", scope="all"),
            from_store(store, period="day", scope="sensors"))
        assert detection.spikes and repr(detection.spikes) == repr(full)
        total = detection.total
        last = total.bucket_time(total.n_buckets - 1).date()
        targets = derived.candidate_ports(store, last)
        assert (6, 445) in targets
        kb = derived.knowledge(store)
        window = AssessParams().window_days
        spikes = {t: [from_spike(s, total) for s in detection.spikes
                      if (s.proto, s.port) == t] for t in targets}
        for as_of in (last, date(2005, 6, 20), date(2006, 8, 20)):
            batch = assess_ports(store, targets, as_of=as_of, spikes=spikes, kb=kb)
            for (proto, port), got in zip(targets, batch, strict=True):
                vulns = kb.port_vulnerabilities(port, proto, as_of=as_of, days=window)
                one = decide(as_of=as_of, port=port, proto=proto, vulns=vulns,
                             spikes=spikes[(proto, port)], service=got.service,
                             exposure=port_exposure(store, port, proto, vulns=vulns,
                                                    as_of=as_of))
                assert got.as_dict() == one.as_dict(), (as_of, proto, port)
            if as_of != last:
                assert any(a.vulnerabilities for a in batch if a.port == 445)
        assert derived.assess_many(store, targets, last, detection) == assess_ports(
            store, targets, as_of=last, spikes=spikes, kb=kb)


# -- errors -------------------------------------------------------------------------------


def test_one_error_shape(client: TestClient) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.get("/no/such/page"), 404, "not_found")
    assert_error(client.delete("/api/v1/overview"), 405, "method_not_allowed")
    err = assert_error(client.get("/api/v1/ports", params={"limit": 0}), 422,
                       "validation_error")
    assert err["detail"][0]["loc"] == ["query", "limit"]
    assert_error(client.get("/api/v1/ports", params={"limit": 1001}), 422)
    assert_error(client.get("/api/v1/scanners", params={"offset": -1}), 422)
    assert_error(client.get("/api/v1/ports/tcp/445", params={"since": "2025-02-01",
                                                              "until": "2025-01-01"}), 422)
    assert_error(client.get("/api/v1/ports/tcp/445", params={"sensor": "nobody"}), 404)
    assert_error(client.post("/api/v1/alerts/1/ack", content=b"x" * 70_000,
                             headers={"content-type": "application/json"}), 413, "too_large")

    def chunks() -> Any:
        for _ in range(20):
            yield b" " * 8192

    assert_error(client.post("/api/v1/login", content=chunks(),
                             headers={"content-type": "application/json"}), 413)


def test_unexpected_exception_is_a_500_without_the_detail(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from portradar.web import derived

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret /etc/shadow SELECT * FROM web_tokens")

    monkeypatch.setattr(derived, "port_series", boom)
    r = client.get("/api/v1/ports/tcp/7", params={"since": "3d"})
    err = assert_error(r, 500, "internal_error")
    assert "secret" not in r.text and "Traceback" not in r.text and "shadow" not in r.text
    assert err["detail"] is None
    assert r.headers["content-security-policy"] == CSP


def test_secure_headers_everywhere(client: TestClient) -> None:
    for r in (client.get("/api/v1/status"), client.get("/api/v1/nope"), client.get("/"),
              client.get("/api/openapi.json"), client.get("/static/dashboard.css"),
              client.post("/api/v1/status")):
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "server" not in r.headers


ATTACKS = ["' OR 1=1--", "1;DROP TABLE event_rows", "../../etc/passwd", "%2e%2e%2f",
           "99999999999999999999999", "-99999999999999999999", "ẞ🙂\u202e", "\x00", "NaN",
           "1e309", "*' UNION SELECT token_sha256 FROM web_tokens--"]
#: Every endpoint with every parameter it takes (path parameters as ``{name}``).
ENDPOINTS: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/overview", {"since": "7d", "until": "2025-01-27", "period": "day"}),
    ("/api/v1/ports", {"by": "records", "period": "day", "since": "7d", "until": "1d",
                       "sensor": "*", "proto": "tcp", "limit": "5", "offset": "0"}),
    ("/api/v1/ports/{proto}/{port}", {"proto": "tcp", "port": "445", "bucket": "day",
                                      "since": "7d", "until": "1d", "sensor": "*"}),
    ("/api/v1/spikes", {"port": "445", "proto": "tcp", "status": "open", "period": "day",
                        "since": "7d", "until": "1d", "limit": "5", "offset": "0"}),
    ("/api/v1/scanners", {"port": "445", "kind": "horizontal", "status": "scanner",
                          "since": "7d", "until": "1d", "limit": "5", "offset": "0"}),
    ("/api/v1/scanners/{address}", {"address": "192.0.2.1"}),
    ("/api/v1/campaigns", {"limit": "5", "offset": "0"}),
    ("/api/v1/campaigns/{campaign_id}", {"campaign_id": "1"}),
    ("/api/v1/alerts", {"status": "open", "limit": "5", "offset": "0"}),
    ("/api/v1/alerts/{alert_id}", {"alert_id": "1"}),
    ("/api/v1/assessment", {"since": "7d", "until": "1d"}),
    ("/api/v1/rules/{proto}/{port}", {"proto": "tcp", "port": "445", "dialect": "pf"}),
    ("/api/v1/sensors", {"since": "7d", "until": "1d", "limit": "5", "offset": "0"}),
]


def _url(template: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    from urllib.parse import quote

    query = dict(params)
    path = template
    for name in list(query):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", quote(query.pop(name), safe=""))
    return path, query


def test_hostile_input_in_every_parameter_is_a_4xx(client: TestClient) -> None:
    for template, params in ENDPOINTS:
        for name in params:
            for attack in ATTACKS:
                path, query = _url(template, {**params, name: attack})
                r = client.get(path, params=query, follow_redirects=False)
                assert 400 <= r.status_code < 500, (template, name, attack, r.status_code,
                                                    r.text[:200])
                body = r.json()
                assert set(body) == {"error"}, (template, name, attack)
                assert "token_sha256" not in r.text and "root:" not in r.text


@pytest.mark.parametrize("path", [
    "/api/v1/ports/tcp/..%2f..%2fetc%2fpasswd", "/static/../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fpyproject.toml",
    "/api/v1/scanners/..%2f..%2fetc%2fpasswd", "/api/v1/campaigns/1%20OR%201=1",
    "/api/v1/alerts/1;DROP%20TABLE%20alerts", "/api/v1/ports/tcp/445%27%20OR%20%271",
])
def test_path_traversal_and_injection_in_paths(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert 400 <= r.status_code < 500, (path, r.status_code)
    assert "root:" not in r.text and "[project]" not in r.text


# -- concurrency and the read-only mode ----------------------------------------------------


def test_parallel_requests(client: TestClient) -> None:
    urls = ["/api/v1/overview", "/api/v1/ports/tcp/445?bucket=day", "/api/v1/scanners",
            "/api/v1/sensors", "/api/v1/status", "/api/v1/ports?by=sources",
            "/api/v1/ports/tcp/22?bucket=hour", "/api/v1/campaigns"] * 6
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda u: client.get(u).status_code, urls))
    assert codes == [200] * len(urls)


def test_read_only_server_reopens_per_request(store_path: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from portradar.web import store_access

    path = tmp_path / "ro.duckdb"
    shutil.copy(store_path, path)
    store = Store.open(path, read_only=True)
    app = create_app(store, settings=WebSettings(reopen=True))
    store.close()  # the server opens the file for each request from now on
    with TestClient(app, raise_server_exceptions=False) as c:
        before = ok(c, "/api/v1/status")["events"]
        first = ok(c, "/api/v1/overview")
        assert first["movers"]
        assert_error(c.post("/api/v1/alerts/1/ack"), 409, "read_only")
        # between requests a writer (an ingest) can take the file ...
        from portradar.events.schema import make_batch

        with Store.open(path) as writer, writer.transaction():
            writer.append_events(make_batch({"ts": [1_737_935_999_000_000], "src_lo": [1],
                                             "dst_lo": [2], "proto": [6], "dport": [445]}),
                                 input_id=1)
        # ... and the next request sees its events
        assert ok(c, "/api/v1/status")["events"] == before + 1
        # the overview answers at once with the previous one while it is recomputed
        assert ok(c, "/api/v1/overview")["newest_event"] == first["newest_event"]
        for _ in range(200):
            fresh = ok(c, "/api/v1/overview")
            if fresh["newest_event"] != first["newest_event"]:
                break
            time.sleep(0.05)
        assert fresh["newest_event"] == "2025-01-26T23:59:59Z"
        # while another process holds the write lock, requests wait, then answer 503
        monkeypatch.setattr(store_access, "OPEN_RETRY_SECONDS", 0.3)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
             "print('locked', flush=True); sys.stdin.read()", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            started = time.monotonic()
            r = c.get("/api/v1/status")
            assert_error(r, 503, "store_busy")
            assert r.headers["retry-after"] == "2" and time.monotonic() - started >= 0.3
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=10)
        assert ok(c, "/api/v1/status")["events"] == before + 1


def test_warm_up_computes_the_first_pages(store_path: Path, tmp_path: Path) -> None:
    from portradar.web.app import warm

    path = tmp_path / "warm.duckdb"
    shutil.copy(store_path, path)
    with Store.open(path) as store:
        app = create_app(store, settings=WebSettings())
        warm(app)
        cache = app.state.cache
        misses = cache.misses
        with TestClient(app) as c:
            for url in ("/api/v1/overview", "/api/v1/ports/tcp/445?bucket=hour",
                        "/api/v1/ports/tcp/445?bucket=day"):
                assert c.get(url).status_code == 200
        assert cache.misses == misses  # every answer was ready
