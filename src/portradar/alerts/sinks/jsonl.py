"""JSON lines sink: one JSON object per notification appended to a file (fsynced).

>>> import json, os, tempfile
>>> from portradar.alerts.alert import Alert, Notification
>>> p = os.path.join(tempfile.mkdtemp(), "alerts.jsonl")
>>> a = Alert(1, "spike:6/445", "spike", 6, 445, "open", 1, "2026-01-01T00:00:00",
...           "2026-01-01T00:00:00")
>>> JsonlSink(p).send([Notification(a, "open", "2026-01-01T00:00:00", 7)])
>>> json.loads(open(p).read())["outbox_id"]
7
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from portradar.alerts.alert import Notification
from portradar.alerts.sinks import register_sink


@register_sink
class JsonlSink:
    name: ClassVar[str] = "jsonl"

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> JsonlSink:
        return cls(str(table["path"]))

    def send(self, notes: list[Notification]) -> None:
        text = "".join(json.dumps(n.as_dict(), sort_keys=True) + "\n" for n in notes)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
