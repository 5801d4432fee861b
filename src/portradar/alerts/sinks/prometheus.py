"""Prometheus metrics over HTTP (stdlib ``http.server``), text exposition format 0.0.4.

Per input: events stored, records read, records skipped (parse errors), events/s since
start, lag (bytes not read yet of a followed file, bytes waiting in the syslog buffer)
and dropped datagrams; for the service: micro-batches, detector runs, open alerts,
deliveries.  Binds 127.0.0.1 by default; port 9464 is the port the OpenTelemetry
Prometheus exporter uses by convention.

>>> print(exposition([{"input": "fw", "events": 3, "records": 4, "skipped": 1, "rate": 0.5,
...                    "lag": 0, "dropped": 0}], {"open_alerts": 1}).splitlines()[2])
portradar_input_events_total{input="fw"} 3
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_INPUT_METRICS = (
    ("events", "portradar_input_events_total", "counter", "Events stored."),
    ("records", "portradar_input_records_total", "counter", "Records (lines, flows) read."),
    ("skipped", "portradar_input_parse_errors_total", "counter", "Records skipped as bad."),
    ("rate", "portradar_input_events_per_second", "gauge", "Events/s since start."),
    ("lag", "portradar_input_lag_bytes", "gauge", "Bytes arrived but not stored yet."),
    ("dropped", "portradar_input_dropped_total", "counter", "Datagrams dropped (UDP)."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(inputs: list[dict[str, Any]], service: dict[str, float]) -> str:
    """The metrics as Prometheus text."""
    lines: list[str] = []
    for key, name, kind, help_text in _INPUT_METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{input="{_label(str(i["input"]))}"}} {i[key]:g}' for i in inputs]
    for key, value in sorted(service.items()):
        kind = "gauge" if key in ("open_alerts", "scanners") else "counter"
        name = f"portradar_{key}" + ("_total" if kind == "counter" else "")
        lines += [f"# TYPE {name} {kind}", f"{name} {value:g}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serve ``render()`` at ``/metrics`` on a daemon thread."""

    def __init__(self, render: Callable[[], str], *, host: str = "127.0.0.1",
                 port: int = 9464) -> None:
        self.render = render
        self.host, self.port = host, port
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> MetricsServer:
        render = self.render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="metrics").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
