"""Access to the web server: authentication beyond loopback, tokens, users, roles,
cross-site and brute-force refusals, and ``portradar serve`` refusing to start unguarded.

The app is built with ``require_auth`` (what binding beyond loopback means) instead of
binding a real non-loopback address.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import web_store
from click.testing import CliRunner
from fastapi.testclient import TestClient

from portradar.store.duckdb_store import Store
from portradar.web import auth
from portradar.web.app import WebSettings, create_app, is_loopback
from portradar.web.security_headers import CSP


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return web_store.fresh_copy(tmp_path_factory, "auth")


@pytest.fixture(scope="module")
def guarded(store_path: Path) -> Any:
    """(client, tokens, store): an app that requires authentication."""
    store = Store.open(store_path)
    tokens = {"reader": auth.add_token(store, "reader", "read"),
              "boss": auth.add_token(store, "boss", "admin"),
              "gone": auth.add_token(store, "gone", "read")}
    assert auth.revoke_token(store, "gone")
    # N=2^14 keeps the test quick; the default (2^17) is checked in test_password_hash
    auth.add_user(store, "alice", "alice-password", "read", n=2**14)
    auth.add_user(store, "root", "root-password!", "admin", n=2**14)
    app = create_app(store, settings=WebSettings(require_auth=True))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens, store
    store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_refused(r: Any, status: int) -> None:
    assert r.status_code == status, r.text[:200]
    assert r.json()["error"]["status"] == status
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-frame-options"] == "DENY"


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.10")
    assert not is_loopback("::") and not is_loopback("example.org")
    assert WebSettings(host="0.0.0.0").auth_required
    assert not WebSettings(host="127.0.0.1").auth_required
    assert WebSettings(host="127.0.0.2", require_auth=True).auth_required


@pytest.mark.parametrize("path", ["/api/v1/overview", "/api/v1/ports/tcp/445",
                                  "/api/v1/scanners", "/api/v1/alerts", "/api/openapi.json",
                                  "/", "/static/dashboard.css", "/api/v1/nowhere",
                                  "/api/docs", "/api/docs/openapi-3.0.json",
                                  "/static/swagger-ui/swagger-ui-bundle.js",
                                  "/static/swagger-ui/swagger-ui.css", "/static/api-docs.js",
                                  "/static/theme.js"])
def test_no_credentials_no_answer(guarded: Any, path: str) -> None:
    client, _, _ = guarded
    r = client.get(path)
    assert_refused(r, 401)
    assert "Bearer" in r.headers["www-authenticate"] and "Basic" in r.headers["www-authenticate"]
    assert "items" not in r.text and "445" not in r.text


def test_tokens(guarded: Any) -> None:
    client, tokens, store = guarded
    assert client.get("/api/v1/status", headers=bearer(tokens["reader"])).status_code == 200
    assert client.get("/", headers=bearer(tokens["reader"])).status_code == 200
    for wrong in (tokens["gone"], tokens["reader"] + "x", "prt_" + "A" * 43, "", "' OR 1=1--"):
        assert_refused(client.get("/api/v1/status", headers=bearer(wrong)), 401)
    # only the hash is stored
    stored = {r[0] for r in store.con.execute("SELECT token_sha256 FROM web_tokens").fetchall()}
    assert hashlib.sha256(tokens["reader"].encode()).hexdigest() in stored
    assert not any(tokens["reader"] in str(v) for v in stored)
    assert [t["name"] for t in auth.list_tokens(store)] == ["boss", "reader"]


def test_roles(guarded: Any) -> None:
    client, tokens, _ = guarded
    alert = client.get("/api/v1/alerts", headers=bearer(tokens["reader"])).json()["items"][0]
    url = f"/api/v1/alerts/{alert['alert_id']}/ack"
    assert_refused(client.post(url, headers=bearer(tokens["reader"])), 403)
    assert_refused(client.post(url, headers=basic("alice", "alice-password")), 403)
    r = client.post(url, headers=bearer(tokens["boss"]), json={"note": "on it"})
    assert r.status_code == 200 and r.json()["acked_by"] == "boss"
    r = client.post(url, headers=basic("root", "root-password!"))
    assert r.status_code == 200 and r.json()["acked_by"] == "root"
    me = client.get("/api/v1/whoami", headers=basic("alice", "alice-password")).json()
    assert me == {"user": "alice", "role": "read"}


def test_api_docs_behind_the_same_login(guarded: Any) -> None:
    """The Swagger UI page, its files and its description answer a user or a token exactly
    as the dashboard does (the refusals are in test_no_credentials_no_answer)."""
    client, tokens, _ = guarded
    for headers in (basic("alice", "alice-password"), bearer(tokens["reader"])):
        page = client.get("/api/docs", headers=headers)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'src="/static/swagger-ui/swagger-ui-bundle.js' in page.text
        assert page.headers["content-security-policy"] == CSP  # not weakened for the docs
        js = client.get("/static/swagger-ui/swagger-ui-bundle.js", headers=headers)
        assert js.status_code == 200 and "SwaggerUIBundle" in js.text[:2000]
        spec = client.get("/api/docs/openapi-3.0.json", headers=headers).json()
        assert spec["openapi"] == "3.0.3" and "/api/v1/whoami" in spec["paths"]
    assert_refused(client.get("/api/docs", headers=basic("alice", "wrong")), 401)
    assert_refused(client.get("/api/docs", headers=bearer(tokens["gone"])), 401)


def test_users_basic_and_login(guarded: Any) -> None:
    client, _, store = guarded
    assert client.get("/api/v1/sensors", headers=basic("alice", "alice-password")
                      ).status_code == 200
    assert_refused(client.get("/api/v1/sensors", headers=basic("alice", "wrong")), 401)
    assert_refused(client.get("/api/v1/sensors", headers=basic("mallory", "x")), 401)
    assert_refused(client.get("/api/v1/sensors",
                              headers={"Authorization": "Basic !!notbase64"}), 401)
    r = client.post("/api/v1/login", json={"user": "alice", "password": "alice-password"})
    assert r.status_code == 200 and r.json()["role"] == "read"
    session = r.json()["token"]
    assert client.get("/api/v1/status", headers=bearer(session)).status_code == 200
    assert_refused(client.post("/api/v1/login", json={"user": "alice", "password": "no"}), 401)
    assert_refused(client.post("/api/v1/login", json={"user": "alice"}), 422)
    for hostile in ("' OR 1=1--", "alice'; DROP TABLE web_users;--", "../../etc/passwd", "🙂"):
        assert_refused(client.post("/api/v1/login", json={"user": hostile,
                                                          "password": hostile}), 401)
        assert_refused(client.get("/api/v1/status", headers=basic(hostile, hostile)), 401)
    stored = store.con.execute("SELECT password FROM web_users WHERE name = 'alice'"
                               ).fetchall()[0][0]
    assert stored.startswith("scrypt$16384$8$1$") and "alice-password" not in stored


def test_cross_site_post_is_refused(guarded: Any) -> None:
    client, tokens, _ = guarded
    r = client.post("/api/v1/alerts/1/ack", headers={**bearer(tokens["boss"]),
                                                     "Origin": "http://evil.example"})
    assert_refused(r, 403)
    assert r.json()["error"]["code"] == "cross_origin"
    same = client.post("/api/v1/alerts/1/ack", headers={**bearer(tokens["boss"]),
                                                        "Origin": "http://testserver"})
    assert same.status_code == 200


def test_password_guessing_is_slowed(store_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "guess.duckdb"
    shutil.copy(store_path, path)
    store = Store.open(path)
    try:
        auth.add_user(store, "bob", "bob-password", "read", n=2**10)
        app = create_app(store, settings=WebSettings(require_auth=True, prepare=False))
        with TestClient(app, raise_server_exceptions=False) as client:
            for _ in range(auth.MAX_FAILURES):
                assert client.get("/api/v1/status", headers=basic("bob", "guess")
                                  ).status_code == 401
            r = client.get("/api/v1/status", headers=basic("bob", "bob-password"))
            assert_refused(r, 429)
            assert r.headers["retry-after"] == "60"
    finally:
        store.close()


def test_password_hash() -> None:
    stored = auth.hash_password("s3cret-enough")  # the default cost: one check only
    assert stored.startswith(f"scrypt${2**17}$8$1$")
    assert auth.verify_password("s3cret-enough", stored)
    cheap = auth.hash_password("s3cret-enough", n=2**10)
    assert not auth.verify_password("s3cret-enougH", cheap)
    assert not auth.verify_password("x", "garbage") and not auth.verify_password("x", "a$b$c")
    with pytest.raises(auth.AuthError):
        auth.add_user(Store.open(":memory:"), "short", "1234567", "read")
    with pytest.raises(auth.AuthError):
        auth.add_token(Store.open(":memory:"), "x", "root")


def test_serve_refuses_to_start_unguarded(tmp_path: Path, store_path: Path) -> None:
    from portradar.cli.app import cli

    path = tmp_path / "cli.duckdb"
    shutil.copy(store_path, path)
    with Store.open(path) as store:  # a store with no token and no user
        store.con.execute("DROP TABLE IF EXISTS web_tokens")
        store.con.execute("DROP TABLE IF EXISTS web_users")
    runner = CliRunner()
    r = runner.invoke(cli, ["--db", str(path), "serve", "--host", "0.0.0.0", "--port", "1"])
    assert r.exit_code == 1 and "no token or user" in r.output
    r = runner.invoke(cli, ["--db", str(path), "serve", "--host", "0.0.0.0", "--no-auth"])
    assert r.exit_code == 2
    # behind a TLS proxy the loopback server is published: authentication is required
    r = runner.invoke(cli, ["--db", str(path), "serve", "--proxy", "127.0.0.1", "--port", "1"])
    assert r.exit_code == 1 and "no token or user" in r.output
    r = runner.invoke(cli, ["--db", str(path), "serve", "token", "add", "ci", "--role", "admin"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("prt_") and len(token) > 40
    r = runner.invoke(cli, ["--db", str(path), "serve", "token", "list", "--json"])
    assert r.exit_code == 0 and '"ci"' in r.stdout and token not in r.stdout
    r = runner.invoke(cli, ["--db", str(path), "serve", "user", "add", "carol",
                            "--role", "read", "--password-stdin"], input="carol-password\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--db", str(path), "serve", "user", "list", "--csv"])
    assert "carol,read" in r.stdout
    assert runner.invoke(cli, ["--db", str(path), "serve", "token", "revoke", "ci"]).exit_code == 0
    assert runner.invoke(cli, ["--db", str(path), "serve", "token", "revoke", "ci"]).exit_code == 1
    assert runner.invoke(cli, ["--db", str(path), "serve", "user", "remove", "carol"]
                         ).exit_code == 0
