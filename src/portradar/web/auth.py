"""Who may use the web server: bearer tokens and user accounts, each with a role.

Bound to loopback (the default) the server trusts its local users and needs nothing.
Bound to any other address it refuses to start until a token or a user exists, and
then every request (API, pages and static files alike) must authenticate:

* **Bearer tokens** (``Authorization: Bearer prt_...``), for scripts: 256 random bits
  (``secrets.token_urlsafe(32)``), shown once by ``portradar serve token add``; the store
  keeps only their SHA-256 (a random 256-bit secret needs no slow hash: there is nothing
  to guess a dictionary from).
* **Users** with passwords, for people: HTTP Basic (the browser asks once and sends it
  with every page and API call of the dashboard) or ``POST /api/v1/login`` for a session
  token valid :data:`SESSION_SECONDS`.  Passwords are stored as ``hashlib.scrypt`` with a
  16-byte random salt and OWASP's minimum parameters for scrypt (N=2^17, r=8, p=1:
  128 MiB and about a third of a second per check).  A checked Basic password is
  remembered for :data:`BASIC_CACHE_SECONDS` (keyed by a SHA-256 of the credentials with
  a per-process secret) so a page's dozen API calls cost one scrypt, not twelve.

Roles: ``read`` may read everything; ``admin`` may also change state (acknowledge an
alert).  Any method but GET/HEAD/OPTIONS from a ``read`` caller is answered 403, and
from another site's page (an ``Origin`` that is not this server) 403 as well, so a
browser holding Basic credentials cannot be used to acknowledge alerts cross-site.
More than :data:`MAX_FAILURES` failed authentications from one client within
:data:`FAILURE_WINDOW` seconds are answered 429 until the window passes.

>>> h = hash_password("correct horse", n=2**10)
>>> verify_password("correct horse", h), verify_password("wrong", h)
(True, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from portradar.errors import PortradarError
from portradar.store.duckdb_store import Store

ROLES = ("read", "admin")
#: scrypt cost parameters: OWASP Password Storage Cheat Sheet's minimum for scrypt.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
#: A login session lasts a working day.
SESSION_SECONDS = 12 * 3600
#: How long a verified Basic password is remembered in memory.
BASIC_CACHE_SECONDS = 300
#: Failed authentications per client and window before 429 (a person mistyping never
#: gets near it; a password guesser gets 20 guesses a minute).
MAX_FAILURES = 20
FAILURE_WINDOW = 60.0
#: Paths reachable without credentials: the login itself.
OPEN_PATHS = ("/api/v1/login",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOKEN_PREFIX = "prt_"

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_tokens (
    name VARCHAR PRIMARY KEY, token_sha256 VARCHAR NOT NULL, role VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL, last_used TIMESTAMP);
CREATE TABLE IF NOT EXISTS web_users (
    name VARCHAR PRIMARY KEY, password VARCHAR NOT NULL, role VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL);
"""


class AuthError(PortradarError):
    """A token or user cannot be created or changed as asked."""


# -- secrets ------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                            maxmem=256 * 1024 * 1024, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8", "surrogatepass"),
                             salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=256 * 1024 * 1024, dklen=32)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# -- the tables -------------------------------------------------------------------------


def ensure_tables(store: Store) -> None:
    if not store.read_only:
        store.con.execute(SCHEMA)


def _tables_exist(store: Store) -> bool:
    rows = store.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name IN "
                             "('web_tokens', 'web_users')").fetchall()
    return bool(rows and rows[0][0] == 2)


def _check_name(name: str, role: str) -> None:
    if not name or len(name) > 64 or not name.isprintable():
        raise AuthError("a name has 1 to 64 printable characters")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r} (use {' or '.join(ROLES)})")


def _now() -> datetime:
    return datetime.now(tz=UTC).replace(tzinfo=None)


def add_token(store: Store, name: str, role: str = "read") -> str:
    """Create (or replace) the token ``name``; returns it (the only time it is shown)."""
    _check_name(name, role)
    ensure_tables(store)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    store.con.execute("INSERT OR REPLACE INTO web_tokens VALUES (?, ?, ?, ?, NULL)",
                      [name, token_hash(token), role, _now()])
    return token


def list_tokens(store: Store) -> list[dict[str, Any]]:
    if not _tables_exist(store):
        return []
    rows = store.con.execute("SELECT name, role, created, last_used FROM web_tokens "
                             "ORDER BY name").fetchall()
    return [{"name": n, "role": r, "created": c, "last_used": u} for n, r, c, u in rows]


def revoke_token(store: Store, name: str) -> bool:
    if not _tables_exist(store):
        return False
    found = store.con.execute("SELECT count(*) FROM web_tokens WHERE name = ?",
                              [name]).fetchall()[0][0]
    store.con.execute("DELETE FROM web_tokens WHERE name = ?", [name])
    return bool(found)


def add_user(store: Store, name: str, password: str, role: str = "read", *,
             n: int = SCRYPT_N) -> None:
    """Create (or change the password and role of) the user ``name``."""
    _check_name(name, role)
    if len(password) < 8:
        raise AuthError("a password has at least 8 characters")
    ensure_tables(store)
    store.con.execute("INSERT OR REPLACE INTO web_users VALUES (?, ?, ?, ?)",
                      [name, hash_password(password, n=n), role, _now()])


def list_users(store: Store) -> list[dict[str, Any]]:
    if not _tables_exist(store):
        return []
    rows = store.con.execute("SELECT name, role, created FROM web_users ORDER BY name"
                             ).fetchall()
    return [{"name": n, "role": r, "created": c} for n, r, c in rows]


def remove_user(store: Store, name: str) -> bool:
    if not _tables_exist(store):
        return False
    found = store.con.execute("SELECT count(*) FROM web_users WHERE name = ?",
                              [name]).fetchall()[0][0]
    store.con.execute("DELETE FROM web_users WHERE name = ?", [name])
    return bool(found)


def has_credentials(store: Store) -> bool:
    """Whether any token or user exists (the server refuses to start beyond loopback
    without one)."""
    return bool(list_tokens(store) or list_users(store))


# -- checking -----------------------------------------------------------------------------


@dataclass
class Principal:
    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Authenticator:
    """Checks credentials against the store; keeps sessions and a Basic cache in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[Principal, float]] = {}
        self._basic: dict[str, tuple[Principal, float]] = {}
        self._secret = secrets.token_bytes(32)
        self._failures: dict[str, deque[float]] = {}

    # sessions ---------------------------------------------------------------------
    def new_session(self, who: Principal) -> tuple[str, float]:
        token = TOKEN_PREFIX + "s_" + secrets.token_urlsafe(32)
        expires = time.time() + SESSION_SECONDS
        with self._lock:
            now = time.time()
            self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
            self._sessions[token_hash(token)] = (who, expires)
        return token, expires

    def _session(self, token: str) -> Principal | None:
        with self._lock:
            found = self._sessions.get(token_hash(token))
        if found is None or found[1] < time.time():
            return None
        return found[0]

    # checks -----------------------------------------------------------------------
    def bearer(self, store: Store, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        session = self._session(token)
        if session is not None:
            return session
        if not _tables_exist(store):
            return None
        rows = store.con.execute("SELECT name, role FROM web_tokens WHERE token_sha256 = ?",
                                 [token_hash(token)]).fetchall()
        return Principal(rows[0][0], rows[0][1]) if rows else None

    def password(self, store: Store, name: str, password: str) -> Principal | None:
        key = hmac.new(self._secret, f"{name}\0{password}".encode("utf-8", "surrogatepass"),
                       hashlib.sha256).hexdigest()
        with self._lock:
            cached = self._basic.get(key)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        if not _tables_exist(store) or len(name) > 64 or len(password) > 1024:
            return None
        rows = store.con.execute("SELECT password, role FROM web_users WHERE name = ?",
                                 [name]).fetchall()
        if not rows or not verify_password(password, rows[0][0]):
            return None
        who = Principal(name, rows[0][1])
        with self._lock:
            if len(self._basic) > 1000:
                self._basic.clear()
            self._basic[key] = (who, time.time() + BASIC_CACHE_SECONDS)
        return who

    # failures ---------------------------------------------------------------------
    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            q = self._failures.get(client)
            while q and q[0] < now - FAILURE_WINDOW:
                q.popleft()
            return q is not None and len(q) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 10000:
                self._failures.clear()
            self._failures.setdefault(client, deque()).append(time.monotonic())


def parse_basic(value: str) -> tuple[str, str] | None:
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = text.partition(":")
    return (name, password) if sep else None


def identify(auth: Authenticator, store: Store, header: str) -> Principal | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return auth.bearer(store, value.strip())
    if scheme.lower() == "basic":
        pair = parse_basic(value)
        return auth.password(store, *pair) if pair else None
    return None


#: Basic first: browsers take the first scheme they know and then ask for a password.
CHALLENGE = 'Basic realm="portradar", charset="UTF-8", Bearer realm="portradar"'


class AuthMiddleware:
    """ASGI middleware: identify the caller, refuse what they may not do.

    Puts the :class:`Principal` in ``scope["state"]["principal"]``.  Without required
    authentication the caller is the local ``admin``.
    """

    def __init__(self, app: ASGIApp, *, required: bool, access: Any,
                 authenticator: Authenticator) -> None:
        self.app = app
        self.required = required
        self.access = access
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from portradar.web.errors import error_response

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        state = scope.setdefault("state", {})
        if method not in SAFE_METHODS and not _same_origin(headers):
            await error_response(403, "cross_origin", "state-changing requests must come "
                                 "from this server's own pages")(scope, receive, send)
            return
        who: Principal | None = Principal("local", "admin")
        if self.required and path not in OPEN_PATHS:
            client = (scope.get("client") or ("?", 0))[0]
            if self.auth.blocked(client):
                await error_response(429, "too_many_requests", "too many failed "
                                     "authentications; wait a minute",
                                     headers={"Retry-After": str(int(FAILURE_WINDOW))})(
                    scope, receive, send)
                return
            header = headers.get("authorization", "")
            who = None
            if header:
                from portradar.web.store_access import StoreBusy

                try:
                    who = await anyio.to_thread.run_sync(self._identify, header)
                except StoreBusy:
                    await error_response(503, "store_busy", "the store is being written by "
                                         "another process; retry shortly",
                                         headers={"Retry-After": "2"})(scope, receive, send)
                    return
            if who is None:
                if header:
                    self.auth.failed(client)
                await error_response(401, "unauthorized", "authentication required: a bearer "
                                     "token or a user's password",
                                     headers={"WWW-Authenticate": CHALLENGE})(
                    scope, receive, send)
                return
            if method not in SAFE_METHODS and not who.admin:
                await error_response(403, "forbidden", f"{who.name} has the read role; "
                                     "this needs admin")(scope, receive, send)
                return
        state["principal"] = who
        await self.app(scope, receive, send)

    def _identify(self, header: str) -> Principal | None:
        with self.access.read() as store:
            return identify(self.auth, store, header)


def _same_origin(headers: dict[str, str]) -> bool:
    origin = headers.get("origin")
    if origin is None:  # not a browser's cross-site request (curl, scripts)
        return True
    host = headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host
