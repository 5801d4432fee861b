"""The dashboard and JSON API served from inside ``portradar watch`` (``[serve]``).

DuckDB lets one process write a store file and no other process open it meanwhile, so
``portradar serve`` cannot show a store that ``watch`` holds.  With a ``[serve]`` table
in its configuration, ``watch`` serves the same application itself (the app of
:mod:`portradar.web.app`, in a uvicorn server on a daemon thread), on connections of
its own to the store it already has open: requests read through per-request cursors
and see every batch as soon as it is committed (DuckDB's MVCC), and the one thing the
server writes, alert acknowledgements, goes through its own connection, never the
watch's.  The derived results the views cache are keyed on the store's event and
verdict counts, so new data invalidates them.

A writer that does not keep the derived results current itself (the collector, which
only stores batches and their activity) asks for ``keep_current``: every that many
seconds a thread of the server's, on a connection of its own, brings the new-source
counts and the scan verdicts up to date for the events committed since (what
``portradar serve`` does once at start); a failure is logged and retried next time,
it never stops the writer.

Authentication is what ``portradar serve`` does: not required on loopback unless
``auth = true``, required beyond it, and the server refuses to start beyond loopback
when the store has no token or user (``portradar serve token add``).

>>> from portradar.store.duckdb_store import Store
>>> store = Store.open(":memory:")
>>> server = DashboardServer(store, host="127.0.0.1", port=0).start()
>>> import json, urllib.request
>>> with urllib.request.urlopen(f"{server.url}api/v1/status", timeout=10) as reply:
...     reply.status, json.load(reply)["events"]
(200, 0)
>>> server.stop()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from portradar.errors import PortradarError
from portradar.store.duckdb_store import Store

log = logging.getLogger(__name__)

#: Seconds to wait for the server to bind and start, and to stop.
START_SECONDS = 20.0
STOP_SECONDS = 10.0


class DashboardServer:
    """``portradar serve``'s application on a daemon thread, over a store held elsewhere."""

    def __init__(self, store: Store, *, host: str = "127.0.0.1", port: int = 8080,
                 auth: bool | None = None, keep_current: float | None = None) -> None:
        from portradar.web.app import is_loopback

        if auth is False and not is_loopback(host):
            raise PortradarError("dashboard: authentication can be turned off only on "
                                 "loopback; beyond it it is required")
        self.host, self.port, self.auth = host, port, auth
        self._store = store
        self._web_store: Store | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.keep_current = keep_current
        self._deriver: threading.Thread | None = None
        self._derive_stop = threading.Event()
        self.derived_runs = 0  # rounds of keep_current done (tests, logs)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> DashboardServer:
        """Build the app on a connection of its own, bind, serve; raises if it cannot."""
        import uvicorn

        from portradar.alerts.lifecycle import AlertBook
        from portradar.intel.assets import ensure_tables as assets_tables
        from portradar.intel.vulnerabilities import KnowledgeBase
        from portradar.web.app import WebSettings, create_app
        from portradar.web.auth import ensure_tables, has_credentials

        # the watch keeps activity, verdicts and alerts current itself: the app only
        # needs its tables, it computes nothing at start (prepare=False)
        settings = WebSettings(host=self.host, port=self.port, require_auth=self.auth,
                               prepare=False)
        web_store = self._store.second_connection()
        try:
            ensure_tables(web_store)
            assets_tables(web_store)
            KnowledgeBase.open(web_store)
            AlertBook(web_store)
            if settings.auth_required and not has_credentials(web_store):
                raise PortradarError(
                    f"dashboard on {self.host}: authentication is required there but the "
                    "store has no token or user; create one first ('portradar serve token "
                    "add NAME --role read' or 'portradar serve user add NAME')")
            app = create_app(web_store, settings=settings)
            config = uvicorn.Config(app, host=self.host, port=self.port, server_header=False,
                                    log_level="warning", timeout_keep_alive=5,
                                    lifespan="off")
            server = uvicorn.Server(config)
            thread = threading.Thread(target=_serve, args=(server,), daemon=True,
                                      name="dashboard")
            thread.start()
            deadline = time.monotonic() + START_SECONDS
            while not server.started and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not server.started:
                server.should_exit = True
                thread.join(STOP_SECONDS)
                raise PortradarError(f"dashboard: cannot serve on {self.host}:{self.port} "
                                     "(address in use or not available?)")
        except BaseException:
            web_store.close()
            raise
        if self.port == 0:  # an ephemeral port (tests): the one the socket got
            sockets = [s for srv in server.servers for s in srv.sockets]
            self.port = int(sockets[0].getsockname()[1])
        self._web_store, self._server, self._thread = web_store, server, thread
        if self.keep_current is not None:
            self._derive_stop.clear()
            self._deriver = threading.Thread(target=self._derive, args=(self.keep_current,),
                                             daemon=True, name="dashboard-derived")
            self._deriver.start()
        return self

    def _derive(self, seconds: float) -> None:
        """Every ``seconds``: new-source counts and scan verdicts of the new events."""
        from portradar.activity import new_sources
        from portradar.scan.detect import ensure_detection

        store = self._store.second_connection()
        try:
            while True:
                try:
                    new_sources.sync(store)
                    # one snapshot: the watermark, the ledger and the rows it reads agree
                    # while the writer commits meanwhile
                    with store.transaction():
                        ensure_detection(store)
                except Exception:  # a write conflict or worse: the next round redoes it
                    log.exception("dashboard: updating scan verdicts / new sources failed")
                self.derived_runs += 1
                if self._derive_stop.wait(seconds):
                    return
        finally:
            store.close()

    def stop(self) -> None:
        """Stop serving (open requests get :data:`STOP_SECONDS` to finish)."""
        self._derive_stop.set()
        if self._deriver is not None:
            self._deriver.join(STOP_SECONDS * 6)  # a detection round under way ends first
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)
        if self._web_store is not None:
            self._web_store.close()
        self._server = self._thread = self._web_store = self._deriver = None


def _serve(server: Any) -> None:
    """uvicorn's loop; a failure to bind ends it with ``SystemExit`` (uvicorn's way),
    which :meth:`DashboardServer.start` reports from ``server.started`` instead."""
    with contextlib.suppress(SystemExit):
        server.run()
