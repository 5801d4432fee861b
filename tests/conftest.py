"""Shared fixtures: where the read-only reference data lives, temporary stores, the real
Chromium the web tests drive."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


#: The browser of the dashboard tests: Debian's package, driven by Playwright.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def need_chromium() -> None:
    """Skip the calling test module when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)",
                    allow_module_level=True)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (pip) not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
