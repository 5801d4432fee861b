"""The 2005 backtest: the documented levels are what the code gives, and follow the story."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from portradar.assess.backtest import doc_section, run_backtest

DOC = Path(__file__).resolve().parents[1] / "docs" / "assessment.md"


@pytest.fixture(scope="module")
def results():
    return {d.day: d for rows in run_backtest().values() for d in rows}


def test_june_2005(results):
    for day in range(10, 17):
        assert results[date(2005, 6, day)].level == "green"
    spike = results[date(2005, 6, 17)]
    assert (spike.level, spike.criterion) == ("yellow", "Y1")
    assert "MS05-027 (patched 3 d ago)" in spike.vulnerabilities
    # the detector's onset estimate may put the start a day early; the spike is open
    assert spike.spike.startswith("new-sources from 06-1") and spike.spike.endswith("(open)")
    assert all(results[date(2005, 6, d)].level != "orange" for d in range(17, 25))
    assert results[date(2005, 6, 23)].level_exposed == "orange"  # MS05-011 exploit


def test_august_2005(results):
    assert results[date(2005, 8, 9)].level == "green"
    assert results[date(2005, 8, 10)].criterion == "Y2"
    for day in range(13, 21):
        r = results[date(2005, 8, day)]
        assert (r.level, r.level_exposed) == ("orange", "red")
    assert results[date(2005, 8, 17)].level_patches_only == "orange"  # the sensors alone


def test_documented_tables_are_current(results):
    rows = re.findall(r"^\| (2005-\d\d-\d\d) \|.*?\| \*\*(\w+)\*\* \((\w\d)\) \| "
                      r"\*\*(\w+)\*\* \((\w\d)\) \| \*\*(\w+)\*\* \((\w\d)\) \|",
                      doc_section(DOC), re.M)
    assert len(rows) == len(results) == 31
    for day, *levels in rows:
        r = results[date.fromisoformat(day)]
        assert levels == [r.level, r.criterion, r.level_exposed, r.criterion_exposed,
                          r.level_patches_only, r.criterion_patches_only], (
            f"{day}: docs/assessment.md is stale; run "
            f"python -m portradar.assess.backtest --write docs/assessment.md")
