"""The scanners the formats issue names, found end to end from the vendors' own logs.

CrowdSec's hub tests expect its multi-port scan scenario to trip on 10.0.2.2 in the pf
sample and on 36.97.161.219 in the MikroTik sample; portradar's detectors must flag the
same sources after reading those files with the pf and MikroTik readers.
"""

from __future__ import annotations

import pytest
from conftest import CROWDSEC, need

from portradar.ingest.pipeline import ingest_input
from portradar.scan.detect import detect
from portradar.store import Store


@pytest.mark.parametrize("case,log,fmt,source", [
    ("pf-scan-multi-port", "pf-scan-multi-port.log", "pf_filterlog", "10.0.2.2"),
    ("mikrotik-scan-multi_ports", "mikrotik-scan-multi_ports.log", "mikrotik",
     "36.97.161.219"),
])
def test_vendor_scan_samples_flag_the_scanner(tmp_path, case, log, fmt, source):
    path = need(CROWDSEC / case / log)
    with Store.open(tmp_path / "s.duckdb") as store:
        result = ingest_input(store, path)
        assert result.format == fmt and result.events > 0
        detect(store)
        rows = {r[0]: r[1:] for r in store.con.execute(
            "SELECT source, status, ports FROM scanners").fetchall()}
    assert source in rows
    assert rows[source][0] == "scanner" and rows[source][1] >= 15
