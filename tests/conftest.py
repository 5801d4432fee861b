"""Shared fixtures: where the read-only reference data lives, temporary stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ../shared/data beside the repository (read-only in CI).
SHARED = Path(os.environ.get("PORTRADAR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATA = SHARED / "data"
PSAD = DATA / "scans" / "psad-iptables" / "test" / "scans" / "iptables"
CROWDSEC = DATA / "formats" / "crowdsec-hub" / "tests"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not found: {path}")
    return path


@pytest.fixture
def store(tmp_path):
    from portradar.store import Store

    with Store.open(tmp_path / "test.duckdb") as s:
        yield s
