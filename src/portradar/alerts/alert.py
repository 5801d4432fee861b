"""The alert model: one alert per rise on one port, from open to resolved.

An alert carries what a reader needs to act without opening another tool: the port,
when it started (event time), how strong it is, the reasons and the recommended actions
of the assessment (:mod:`portradar.assess.threat_level`).

>>> a = Alert(alert_id=1, key="spike:tcp/445", kind="spike", proto=6, port=445,
...           status="open", severity=2, opened_at="2026-11-26T10:00:00",
...           updated_at="2026-11-26T10:00:00")
>>> a.title()
'portradar: spike on tcp/445 (open, severity 2)'
>>> Notification(a, "open", "2026-11-26T10:00:00").as_dict()["transition"]
'open'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The transitions an alert goes through, each one a notification.
TRANSITIONS: tuple[str, ...] = ("open", "update", "escalate", "resolve")

_PROTO = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}


@dataclass
class Alert:
    """One alert (times are event times, ISO text, UTC)."""

    alert_id: int
    key: str
    kind: str
    proto: int
    port: int
    status: str  # open | resolved
    severity: int
    opened_at: str
    updated_at: str
    resolved_at: str | None = None
    onset: str | None = None
    score: float = 0.0
    peak_sources: float = 0.0
    baseline_sources: float = 0.0
    spike_kind: str = ""
    level: str = ""
    reasons: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    updates: int = 0
    #: What the alert rests on, by kind (``spike``, ``campaign``, ``level``): onset,
    #: end (None while going on), severity and a line of evidence.
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def proto_name(self) -> str:
        return _PROTO.get(self.proto, str(self.proto))

    def title(self) -> str:
        return (f"portradar: {self.kind} on {self.proto_name}/{self.port} "
                f"({self.status}, severity {self.severity})")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["proto"] = self.proto_name
        return out


@dataclass
class Notification:
    """A transition of an alert to tell the sinks about; ``outbox_id`` once stored."""

    alert: Alert
    transition: str
    at: str
    outbox_id: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"outbox_id": self.outbox_id, "transition": self.transition, "at": self.at,
                "alert": self.alert.as_dict()}

    def summary(self) -> str:
        a = self.alert
        text = (f"[{self.transition}] {a.kind} on {a.proto_name}/{a.port}: severity "
                f"{a.severity}, {a.peak_sources:.0f} sources vs baseline "
                f"{a.baseline_sources:.1f} (since {a.onset or a.opened_at})")
        if a.level:
            text += f", level {a.level}"
        others = [f"{kind}: {ev.get('detail', '')}" for kind, ev in a.evidence.items()
                  if kind != a.kind and ev.get("detail")]
        if others:
            text += "; " + "; ".join(others)
        if self.transition == "resolve":
            text += f", back to normal at {a.resolved_at}"
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        alert = dict(data["alert"])
        alert["proto"] = {v: k for k, v in _PROTO.items()}.get(alert["proto"], 0) if isinstance(
            alert["proto"], str) else alert["proto"]
        return cls(Alert(**alert), data["transition"], data["at"], data.get("outbox_id", 0))
