"""Alerts: the model, the lifecycle (open, update, escalate, resolve), delivery to sinks.

See ``docs/watch.md``.  The lifecycle decides in event time only; delivery runs each
sink on its own worker thread so a slow channel delays nobody else.
"""

from portradar.alerts.alert import Alert, Notification
from portradar.alerts.lifecycle import AlertBook, LifecycleParams

__all__ = ["Alert", "AlertBook", "LifecycleParams", "Notification"]
