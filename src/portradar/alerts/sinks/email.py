"""E-mail sink over SMTP (stdlib ``smtplib``), STARTTLS and authentication optional.

One message per delivery: a single notification, or a digest of all that waited
(see :mod:`portradar.alerts.delivery`).  ``port`` defaults to 25; use 587 with
``starttls = true`` for a submission server.  The 10 s timeout is smtplib's usual
order of magnitude for a local relay; a slower server is retried by the worker.
``cafile`` names the CA certificates to trust for STARTTLS when the relay's certificate
is not signed by a CA the system trusts (an internal relay); the certificate and its
name are always verified.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, ClassVar

from portradar.alerts.alert import Notification
from portradar.alerts.sinks import register_sink


@register_sink
class EmailSink:
    name: ClassVar[str] = "email"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 25, sender: str,
                 to: list[str], starttls: bool = False, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0,
                 cafile: str | None = None) -> None:
        self.host, self.port, self.sender, self.to = host, port, sender, to
        self.starttls, self.username, self.password = starttls, username, password
        self.timeout = timeout
        self.cafile = cafile

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> EmailSink:
        to = table.get("to", [])
        return cls(host=str(table.get("host", "127.0.0.1")), port=int(table.get("port", 25)),
                   sender=str(table.get("from", "portradar@localhost")),
                   to=[to] if isinstance(to, str) else list(to),
                   starttls=bool(table.get("starttls", False)),
                   username=table.get("username"), password=table.get("password"),
                   timeout=float(table.get("timeout", 10.0)), cafile=table.get("cafile"))

    def message(self, notes: list[Notification]) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = (notes[0].alert.title() if len(notes) == 1
                          else f"portradar: digest of {len(notes)} alert notifications")
        lines = []
        for n in notes:
            lines.append(n.summary())
            lines += [f"  why: {r}" for r in n.alert.reasons]
            lines += [f"  do: {a}" for a in n.alert.actions]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, notes: list[Notification]) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=self.cafile))
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.message(notes))
