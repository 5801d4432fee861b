"""Console sink: one line per notification on standard error (the foreground service)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar, TextIO

from portradar.alerts.alert import Notification
from portradar.alerts.sinks import register_sink


@register_sink
class ConsoleSink:
    name: ClassVar[str] = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> ConsoleSink:
        return cls(sys.stdout if table.get("stream") == "stdout" else None)

    def send(self, notes: list[Notification]) -> None:
        out = self.stream or sys.stderr
        for note in notes:
            out.write(f"portradar alert {note.summary()}\n")
        out.flush()
