"""Webhook sink: POST a JSON payload, plain, Slack-compatible or Teams-compatible.

* ``style = "json"``: ``{"notifications": [...]}`` with every field of each alert;
* ``style = "slack"``: ``{"text": ...}`` (Slack incoming webhooks, also Mattermost and
  Rocket.Chat);
* ``style = "teams"``: a ``MessageCard`` with ``title`` and ``text`` (Teams incoming
  webhooks / Workflows accept it).

A non-2xx answer or a timeout raises; :class:`~portradar.alerts.delivery.SinkWorker`
retries with backoff and records the failure.  ``timeout`` defaults to 5 s: a webhook
receiver that needs longer is down as far as alerting is concerned.

>>> from portradar.alerts.alert import Alert, Notification
>>> a = Alert(1, "spike:6/445", "spike", 6, 445, "open", 1, "t", "t")
>>> WebhookSink("http://127.0.0.1:9/", style="slack").payload([Notification(a, "open", "t")])
{'text': '[open] spike on tcp/445: severity 1, 0 sources vs baseline 0.0 (since t)'}
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any, ClassVar

from portradar.alerts.alert import Notification
from portradar.alerts.sinks import register_sink

TIMEOUT = 5.0


@register_sink
class WebhookSink:
    name: ClassVar[str] = "webhook"

    def __init__(self, url: str, *, style: str = "json", timeout: float = TIMEOUT,
                 headers: dict[str, str] | None = None) -> None:
        if style not in ("json", "slack", "teams"):
            raise ValueError(f"webhook style {style!r}: use json, slack or teams")
        self.url = url
        self.style = style
        self.timeout = timeout
        self.headers = headers or {}

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> WebhookSink:
        return cls(str(table["url"]), style=str(table.get("style", "json")),
                   timeout=float(table.get("timeout", TIMEOUT)),
                   headers=dict(table.get("headers", {})))

    def payload(self, notes: list[Notification]) -> dict[str, Any]:
        text = "\n".join(n.summary() for n in notes)
        if self.style == "slack":
            return {"text": text}
        if self.style == "teams":
            title = notes[0].alert.title() if len(notes) == 1 else (
                f"portradar: {len(notes)} alert notifications")
            return {"@type": "MessageCard", "@context": "http://schema.org/extensions",
                    "summary": title, "title": title, "text": text.replace("\n", "\n\n")}
        return {"source": "portradar", "notifications": [n.as_dict() for n in notes]}

    def send(self, notes: list[Notification]) -> None:
        body = json.dumps(self.payload(notes)).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", **self.headers})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"{self.url}: HTTP {response.status}")
