"""CrowdSec's hub test for its multi-port scan scenario, and the loopback policy.

``iptables-scan-multi-port``: CrowdSec flags 62.34.17.168 (17 ports) and 127.0.0.2 (16
ports, [UFW BLOCK]).  portradar flags both as scanners; 127.0.0.1 (16 ports, [UFW AUDIT],
the host's own traffic to its DNS stub) is detected too but, by the loopback policy,
gets status ``loopback`` with its explanation rather than ``scanner``.
"""

from __future__ import annotations

from conftest import CROWDSEC, need

from portradar.ingest.pipeline import ingest_input
from portradar.scan.detect import detect
from portradar.store import Store


def test_crowdsec_multi_port_scan_sources(tmp_path):
    path = need(CROWDSEC / "iptables-scan-multi-port" / "iptables-scan-multi-port.log")
    with Store.open(tmp_path / "s.duckdb") as store:
        assert ingest_input(store, path).events == 49
        detect(store)
        rows = {r[0]: r[1:] for r in store.con.execute(
            "SELECT source, status, kind, ports, targets, evidence FROM scanners").fetchall()}
    assert set(rows) == {"62.34.17.168", "127.0.0.2", "127.0.0.1"}
    assert rows["62.34.17.168"][:4] == ("scanner", "vertical", 17, 1)
    assert rows["127.0.0.2"][:4] == ("scanner", "vertical", 16, 1)
    assert rows["127.0.0.1"][0] == "loopback"
    assert "never block" in rows["127.0.0.1"][4]
    assert "(> 15)" in rows["62.34.17.168"][4]  # CrowdSec's distinct-port rule
