"""``portradar campaigns`` and ``portradar campaign ID`` on a simulated month.

The simulator's background has masscan sweeps by several sources over the same targets,
which scan detection groups into target-set campaigns; the listing, its filters, the
detail with members and flagged scanners, and the API agree with the stored tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from portradar.cli.app import cli


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("campaigns") / "demo.duckdb")
    res = CliRunner().invoke(cli, ["--db", db, "simulate", "--days", "30", "--sensors", "3",
                                   "--seed", "1", "--campaign", "445"])
    assert res.exit_code == 0, res.output
    return db


def _invoke(db: str, *args: str) -> list[dict]:
    res = CliRunner().invoke(cli, ["--db", db, *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_campaigns_list_what_detection_stored(demo_db: str) -> None:
    rows = _invoke(demo_db, "campaigns", "--json")
    with duckdb.connect(demo_db, read_only=True) as con:
        stored = dict(con.execute("SELECT campaign_id, members FROM campaigns").fetchall())
        flagged = con.execute("""SELECT campaign_id, count(*) FROM scanners
                                 WHERE campaign_id IS NOT NULL GROUP BY ALL""").fetchall()
    assert rows and {r["id"]: r["members"] for r in rows} == stored
    assert [r["probes"] for r in rows] == sorted((r["probes"] for r in rows), reverse=True)
    for r in rows:
        assert r["rule"] in {"port-set", "target-set", "network", "tool"}
        assert r["first_seen"] <= r["last_seen"] and r["first_seen"].endswith("+00:00")
        assert r["ports"] and all(p["members"] <= r["members"] for p in r["ports"])
    assert all(n <= stored[c] for c, n in flagged)
    # --limit, and the CSV header
    assert len(_invoke(demo_db, "campaigns", "--json", "-n", "2")) == 2
    csv = CliRunner().invoke(cli, ["--db", demo_db, "campaigns", "--csv"])
    assert csv.stdout.splitlines()[0] == ("id,rule,members,first_seen,last_seen,probes,targets,"
                                          "ports,tool,kind,type,evidence")


def test_campaign_filters(demo_db: str) -> None:
    every = _invoke(demo_db, "campaigns", "--json")
    busiest = every[0]["ports"][0]["port"]
    on_port = _invoke(demo_db, "campaigns", "--json", "--port", str(busiest))
    assert on_port and {r["id"] for r in on_port} <= {r["id"] for r in every}
    with duckdb.connect(demo_db, read_only=True) as con:
        for r in on_port:
            assert con.execute("""SELECT count(*) FROM scanners WHERE campaign_id = ?
                                  AND list_contains(port_list, ?)""",
                               [r["id"], busiest]).fetchone()[0] > 0
    assert _invoke(demo_db, "campaigns", "--json", "--port", "1") == []
    first = min(r["first_seen"] for r in every)
    assert _invoke(demo_db, "campaigns", "--json", "--until", "2000-01-01") == []
    assert len(_invoke(demo_db, "campaigns", "--json", "--since", first[:10])) == len(every)


def test_campaign_detail_members_and_scanners(demo_db: str) -> None:
    top = _invoke(demo_db, "campaigns", "--json")[0]
    (one,) = _invoke(demo_db, "campaign", str(top["id"]), "--json")
    assert one["id"] == top["id"] and len(one["member_list"]) == min(top["members"], 1000)
    assert len(set(one["member_list"])) == len(one["member_list"])
    assert one["scanners"] and {s["source"] for s in one["scanners"]} <= set(one["member_list"])
    table = CliRunner().invoke(cli, ["--db", demo_db, "campaign", str(top["id"])])
    assert table.exit_code == 0 and f"campaign {top['id']}: {top['rule']}" in table.output
    assert one["member_list"][0] in table.output
    missing = CliRunner().invoke(cli, ["--db", demo_db, "campaign", "99999"])
    assert missing.exit_code == 1 and "no campaign 99999" in missing.output


def test_api_lists_the_same_campaigns(demo_db: str) -> None:
    from fastapi.testclient import TestClient

    from portradar.store.duckdb_store import Store
    from portradar.web.app import WebSettings, create_app

    cli_rows = _invoke(demo_db, "campaigns", "--json")
    with Store.open(Path(demo_db)) as store:
        client = TestClient(create_app(store, settings=WebSettings(prepare=False)))
        api = client.get("/api/v1/campaigns", params={"limit": 100}).json()
        detail = client.get(f"/api/v1/campaigns/{cli_rows[0]['id']}").json()
    assert api["total"] == len(cli_rows)
    assert [(r["id"], r["members"], r["ports"]) for r in api["items"]] == \
        [(r["id"], r["members"], r["ports"]) for r in cli_rows]
    assert detail["member_list"] == _invoke(demo_db, "campaign", str(cli_rows[0]["id"]),
                                            "--json")[0]["member_list"]
