"""Syslog sink: RFC 5424 messages, or CEF (ArcSight Common Event Format) for SIEMs.

Sent over UDP (RFC 5426) or TCP with octet-counted framing (RFC 6587).  Severity maps
to syslog severity warning (4) for severity 1-2 and error (3) above, facility
local0 (16); CEF severity is ``2 + 2 × severity`` (CEF's 0-10 scale).

>>> from portradar.alerts.alert import Alert, Notification
>>> a = Alert(1, "spike:6/445", "spike", 6, 445, "open", 2, "2026-01-01T00:00:00",
...           "2026-01-01T00:00:00")
>>> n = Notification(a, "open", "2026-01-01T00:00:00", 3)
>>> line = SyslogSink(fmt="cef", hostname="fw").render(n)
>>> line[:8], line.split(" fw ", 1)[1][:53]
('<132>1 2', 'portradar - alert - CEF:0|portradar|portradar|1|spike')
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any, ClassVar

from portradar.alerts.alert import Notification
from portradar.alerts.sinks import register_sink

FACILITY = 16  # local0


def _cef_escape(text: str, header: bool) -> str:
    text = text.replace("\\", "\\\\")
    return text.replace("|", "\\|") if header else text.replace("=", "\\=")


@register_sink
class SyslogSink:
    name: ClassVar[str] = "syslog"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 514, proto: str = "udp",
                 fmt: str = "rfc5424", hostname: str | None = None) -> None:
        self.host, self.port, self.proto, self.fmt = host, port, proto, fmt
        self.hostname = hostname or socket.gethostname()

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> SyslogSink:
        fmt = str(table.get("format", "cef" if table.get("type") == "cef" else "rfc5424"))
        return cls(host=str(table.get("host", "127.0.0.1")), port=int(table.get("port", 514)),
                   proto=str(table.get("proto", "udp")), fmt=fmt)

    def render(self, note: Notification) -> str:
        a = note.alert
        sev = 4 if a.severity <= 2 else 3
        pri = FACILITY * 8 + sev
        stamp = datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.fmt == "cef":
            ext = (f"act={note.transition} proto={a.proto_name} dpt={a.port} "
                   f"cnt={int(a.peak_sources)} start={_cef_escape(a.onset or a.opened_at, False)}"
                   f" cs1Label=alertId cs1={a.alert_id}")
            msg = (f"CEF:0|portradar|portradar|1|{a.kind}|"
                   f"{_cef_escape(a.title(), True)}|{min(10, 2 + 2 * a.severity)}|{ext}")
            return f"<{pri}>1 {stamp} {self.hostname} portradar - alert - {msg}"
        sd = (f'[portradar@32473 alert="{a.alert_id}" transition="{note.transition}" '
              f'port="{a.port}" proto="{a.proto_name}" severity="{a.severity}"]')
        return f"<{pri}>1 {stamp} {self.hostname} portradar - alert {sd} {note.summary()}"

    def send(self, notes: list[Notification]) -> None:
        frames = [self.render(n).encode() for n in notes]
        if self.proto == "tcp":
            with socket.create_connection((self.host, self.port), timeout=5) as sock:
                sock.sendall(b"".join(b"%d %s" % (len(f), f) for f in frames))
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for frame in frames:
                sock.sendto(frame, (self.host, self.port))
