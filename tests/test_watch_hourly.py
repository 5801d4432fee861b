"""The watch service with hourly buckets (``period = "hour"``), in process.

Fifteen days of flat background on port 445 (3 sources an hour: the hourly baseline's
warm-up is 14 days), then a rise over three hours (40, 150, 1,200 new sources), then 14
quiet hours (12 end an hourly spike).  One alert: opened in the first hour of the rise
(its onset is that hour, not the day), escalated as it grows, resolved in event time;
at most one notification per hour of event time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.service import WatchService

START = datetime(2026, 2, 1, tzinfo=UTC)
RISE = (40, 150, 1200)


def _line(ts: datetime, src: str, i: int) -> str:
    return (f"{ts.strftime('%Y-%m-%dT%H:%M:%SZ')} fw kernel: DROP IN=eth0 OUT= SRC={src} "
            f"DST=198.51.100.{i % 200 + 1} LEN=40 TTL=50 ID=1 PROTO=TCP SPT=40000 DPT=445 "
            "WINDOW=1024 RES=0x00 SYN URGP=0\n")


def _hour(h: int, sources: int, base: int) -> list[str]:
    t = START + timedelta(hours=h)
    return [_line(t + timedelta(seconds=2 * i), f"{20 + (base + i) // 65536}."
                  f"{(base + i) // 256 % 256}.{(base + i) % 256}.7", i) for i in range(sources)]


def _step_until(svc: WatchService, expected: int) -> None:
    for _ in range(100):  # bounded
        svc.step()
        if svc.inputs[0].events == expected:
            break
    svc.detect()


def test_hourly_rise_opens_escalates_resolves_one_alert(tmp_path: Path) -> None:
    history = 15 * 24
    log = tmp_path / "fw.log"
    lines = [ln for h in range(history) for ln in _hour(h, 3, 1_000_000 + 3 * (h % 200))]
    log.write_text("".join(lines))
    cfg = WatchConfig.from_text(f"""
[watch]
period = "hour"
detect_seconds = 3600
scanners = false
[[input]]
type = "file"
path = "{log}"
""")
    with Store.open(tmp_path / "h.duckdb") as store:
        svc = WatchService(store, cfg, sinks=[])
        _step_until(svc, len(lines))
        assert svc.book.alerts() == []  # flat background: nothing to tell
        seen = []
        base = 0
        for k, n in enumerate(RISE):
            more = _hour(history + k, n, base)
            base += n
            with open(log, "a") as fh:
                fh.writelines(more)
            lines += more
            _step_until(svc, len(lines))
            seen.append([(a.status, a.severity) for a in svc.book.alerts()])
        quiet = [ln for h in range(history + 3, history + 17)
                 for ln in _hour(h, 3, 1_000_000 + 3 * (h % 200))]
        with open(log, "a") as fh:
            fh.writelines(quiet)
        lines += quiet
        _step_until(svc, len(lines))
        alerts = svc.book.alerts()
        outbox = store.con.execute(
            "SELECT transition, at_time FROM alert_outbox ORDER BY outbox_id").fetchall()
        svc.close()
    assert seen == [[("open", 1)], [("open", 2)], [("open", 3)]]
    (alert,) = alerts
    onset = (START + timedelta(hours=history)).replace(tzinfo=None).isoformat()
    assert (alert.kind, alert.port, alert.status, alert.onset) == ("spike", 445, "resolved",
                                                                   onset)
    assert alert.resolved_at is not None and alert.resolved_at > onset
    transitions = [t for t, _ in outbox]
    assert transitions == ["open", "escalate", "escalate", "resolve"]
    hours = [at[:13] for _, at in outbox[:3]]
    assert len(set(hours)) == 3  # one notification per hour of event time
