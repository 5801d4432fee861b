"""The ``portradar watch`` configuration: a TOML file with any number of inputs and sinks.

>>> cfg = WatchConfig.from_text('''
... [watch]
... batch_seconds = 0.5
... [[input]]
... type = "file"
... path = "/var/log/kern.log"
... [[input]]
... type = "syslog"
... udp = 5514
... [[sink]]
... type = "console"
... [serve]
... port = 8080
... ''')
>>> [i.name for i in cfg.inputs], cfg.batch_seconds, cfg.sinks[0]["type"], cfg.serve
(['file:/var/log/kern.log', 'syslog'], 0.5, 'console', {'port': 8080})
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

from portradar.errors import PortradarError

#: Seconds between micro-batches: one second keeps alerts within the issue's 5 s budget
#: with room for the detectors.
BATCH_SECONDS = 1.0
#: The kinds of ``[[input]]``.
INPUT_TYPES: tuple[str, ...] = ("file", "syslog", "netflow", "capture")
#: Seconds between detector runs (spikes, scanners) while events flow.
DETECT_SECONDS = 2.0
#: Seconds between scanner detection runs (within the detection rounds).  Scanner
#: detection recomputes the whole history of every /24 that sent new events, and
#: regroups every campaign, so its cost follows the store, not the new events
#: (measured by bench/syslog_bench.py: 9 s a round at 6 million stored events); a scan
#: verdict half a minute later costs nothing, a spike alert must be within the issue's
#: 5 s.
SCAN_SECONDS = 30.0
#: Seconds between re-checks of the threat level of the ports with an open alert (one
#: assessment takes about 45 ms, measured at 6 million stored events: with 30 open
#: alerts, 1.4 s a round when done every round).  Ports with vulnerability news are
#: still checked once per event-time day, and a new alert is assessed when it opens.
LEVEL_SECONDS = 30.0


@dataclass
class InputConfig:
    type: str  # file | syslog | netflow | capture
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class WatchConfig:
    inputs: list[InputConfig]
    sinks: list[dict[str, Any]] = field(default_factory=list)
    batch_seconds: float = BATCH_SECONDS
    detect_seconds: float = DETECT_SECONDS
    scan_seconds: float = SCAN_SECONDS
    level_seconds: float = LEVEL_SECONDS
    period: str = "hour"
    tz: str | None = "UTC"
    year: int | None = None
    sensor: str | None = None
    scanners: bool = True
    stix_path: str | None = None
    metrics: dict[str, Any] | None = None
    serve: dict[str, Any] | None = None
    update_interval: float = 3600.0

    @classmethod
    def from_text(cls, text: str, source: str = "<config>") -> WatchConfig:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PortradarError(f"{source}: not valid TOML ({exc})") from exc
        watch = raw.get("watch", {})
        inputs = []
        for i, table in enumerate(raw.get("input", [])):
            kind = table.get("type")
            if kind not in INPUT_TYPES:
                raise PortradarError(f"{source}: input {i + 1}: type must be file, syslog, "
                                     f"netflow or capture, not {kind!r}")
            if kind == "file" and "path" not in table:
                raise PortradarError(f"{source}: input {i + 1}: a file input needs a path")
            if kind == "capture" and "interface" not in table:
                raise PortradarError(f"{source}: input {i + 1}: a capture input needs an "
                                     "interface (interface = \"eth0\")")
            name = table.get("name") or (f"file:{table['path']}" if kind == "file" else
                                         f"capture:{table['interface']}" if kind == "capture"
                                         else kind)
            inputs.append(InputConfig(kind, name, dict(table)))
        if not inputs:
            raise PortradarError(f"{source}: no [[input]]; add a file, syslog, netflow or "
                                 "capture input")
        names = [i.name for i in inputs]
        if len(set(names)) != len(names):
            raise PortradarError(f"{source}: input names must be unique (add name = ...)")
        alerts = raw.get("alerts", {})
        serve = raw.get("serve")
        if serve is not None:
            if not isinstance(serve, dict):
                raise PortradarError(f"{source}: [serve] must be a table (host, port, auth)")
            unknown = sorted(set(serve) - {"host", "port", "auth"})
            if unknown:
                raise PortradarError(f"{source}: [serve]: unknown key(s) {', '.join(unknown)} "
                                     "(known: host, port, auth)")
            port = serve.get("port", 8080)
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise PortradarError(f"{source}: [serve]: port must be 0-65535, not {port!r}")
            if "auth" in serve and not isinstance(serve["auth"], bool):
                raise PortradarError(f"{source}: [serve]: auth must be true or false")
        return cls(inputs=inputs, sinks=list(raw.get("sink", [])),
                   batch_seconds=float(watch.get("batch_seconds", BATCH_SECONDS)),
                   detect_seconds=float(watch.get("detect_seconds", DETECT_SECONDS)),
                   scan_seconds=float(watch.get("scan_seconds", SCAN_SECONDS)),
                   level_seconds=float(watch.get("level_seconds", LEVEL_SECONDS)),
                   period=str(watch.get("period", "hour")), tz=watch.get("tz", "UTC"),
                   year=watch.get("year"), sensor=watch.get("sensor"),
                   scanners=bool(watch.get("scanners", True)),
                   stix_path=raw.get("stix", {}).get("path"),
                   metrics=raw.get("metrics"), serve=serve,
                   update_interval=float(alerts.get("update_interval", 3600.0)))

    @classmethod
    def load(cls, path: str) -> WatchConfig:
        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_text(fh.read(), source=path)
        except OSError as exc:
            raise PortradarError(f"{path}: cannot read the config ({exc.strerror})") from exc
