"""Detection over the store (portradar.scan.detect): watermark, settings, /64, backscatter,
replies and campaigns, on synthetic events stored through the ingest pipeline."""

from __future__ import annotations

import pytest
from scan_events import RSTACK, SYNACK, ev, put

from portradar.scan.benign import BenignList
from portradar.scan.detect import ScanConfig, detect, ensure_detection, save_settings
from portradar.store import Store

SCANNER, OTHER = "198.51.100.7", "198.51.100.8"


def _rows(store, where: str = "TRUE") -> dict[str, dict]:
    cur = store.con.execute(f"SELECT * FROM scanners WHERE {where}")
    names = [d[0] for d in cur.description]
    return {r[names.index("source")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def _comparable(rows: dict[str, dict]) -> dict[str, tuple]:
    keep = ("status", "kind", "type", "tool", "detector", "probes", "ports", "targets",
            "flagged_at", "flagged_probes", "evidence", "campaign_id")
    return {k: tuple(v[c] for c in keep) for k, v in rows.items()}


def test_watermark_recomputes_only_new_sources_and_matches_a_full_run(tmp_path):
    part1 = [ev(SCANNER, f"192.0.2.{h}", 445, t=h) for h in range(1, 4)]
    part1 += [ev(OTHER, "192.0.2.1", 1000 + p, t=p) for p in range(30)]
    part2 = [ev(SCANNER, "192.0.2.9", 445, t=50)]
    part2 += [ev("203.0.113.99", f"192.0.2.{h}", 22, t=60 + h) for h in range(1, 6)]
    with Store.open(tmp_path / "a.duckdb") as store:
        put(store, part1)
        first = detect(store)
        assert first.mode == "full"
        assert set(_rows(store)) == {OTHER}  # the scanner has 3 failed contacts so far
        assert ensure_detection(store).mode == "unchanged"
        put(store, part2)
        second = detect(store)
        # the networks of the new events' sources are recomputed: 198.51.100.0/24 (the
        # scanner and OTHER) and 203.0.113.0/24
        assert second.mode == "incremental" and second.sources == 3
        incremental = _rows(store)
    assert set(incremental) == {SCANNER, OTHER, "203.0.113.99"}
    with Store.open(tmp_path / "b.duckdb") as store:
        put(store, part1 + part2)
        detect(store)
        assert _comparable(_rows(store)) == _comparable(incremental)


def test_settings_change_triggers_a_full_run_and_benign_marking(tmp_path):
    rows = [ev("162.142.125.9", f"192.0.2.{h}", 443, t=h) for h in range(1, 8)]
    with Store.open(tmp_path / "s.duckdb") as store:
        put(store, rows)
        detect(store)
        assert _rows(store)["162.142.125.9"]["status"] == "scanner"
        save_settings(store, benign=BenignList.parse("162.142.125.0/24 censys\n"))
        assert detect(store).mode == "full"
        row = _rows(store)["162.142.125.9"]
        assert (row["status"], row["benign_name"]) == ("benign", "censys")
        assert "listed benign: censys" in row["evidence"]
        assert ScanConfig.from_store(store).benign.startswith("162.142.125.0/24")


def test_dark_space_setting_lowers_the_fan_out_threshold(tmp_path):
    rows = [ev(SCANNER, "203.0.113.1", 3000 + p, t=p, outcome="unknown") for p in range(6)]
    rows += [ev(SCANNER, f"203.0.113.{h}", 3000, t=10 + h, outcome="unknown")
             for h in range(2, 6)]
    with Store.open(tmp_path / "d.duckdb") as store:
        put(store, rows)
        detect(store)
        assert SCANNER not in _rows(store)
        save_settings(store, dark=["203.0.113.0/24"])
        detect(store)
        row = _rows(store)[SCANNER]
        assert row["fanout_rule"] == "dark" and "dark hosts" in row["evidence"]
        with pytest.raises(Exception, match="not an IP network"):
            save_settings(store, dark=["not-a-net"])


def test_ipv6_sources_are_also_aggregated_by_64(tmp_path):
    rows = []
    for i, host in enumerate(("2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2::c")):
        rows += [ev(host, f"2001:db8:ff::{2 * i + k + 1}", 22, t=10 * i + k) for k in range(2)]
    with Store.open(tmp_path / "v6.duckdb") as store:
        put(store, rows)
        detect(store)
        found = _rows(store)
    row = found["2001:db8:1:2::/64"]
    assert (row["prefix"], row["addresses"], row["targets"], row["detector"]) == (64, 3, 6, "trw")
    # each address alone made 2 failed contacts: not flagged on its own (the three are a
    # campaign of one /48, probing the same port the same day)
    assert {found[a]["detector"] for a in ("2001:db8:1:2::a", "2001:db8:1:2::b",
                                           "2001:db8:1:2::c")} == {"campaign"}


def test_backscatter_is_labelled_not_flagged_and_replies_are_not_probes(tmp_path):
    victim = "203.0.113.200"
    rows = [ev(victim, f"192.0.2.{h}", 40000 + h, t=h, flags=SYNACK if h % 2 else RSTACK,
               sport=80) for h in range(1, 31)]
    # a capture: our host asks, the remote answers; the answer is a reply, not backscatter
    server = "198.51.100.250"
    for k in range(8):
        rows.append(ev("192.0.2.77", server, 443, t=100 + k, sport=50000 + k,
                       outcome="accepted"))
        rows.append(ev(server, "192.0.2.77", 50000 + k, t=100.01 + k, sport=443, flags=SYNACK,
                       outcome="unknown"))
    with Store.open(tmp_path / "b.duckdb") as store:
        put(store, rows)
        detect(store)
        assert not _rows(store, "status = 'scanner'")
        found = _rows(store)
    assert set(found) == {victim}
    row = found[victim]
    assert (row["status"], row["detector"], row["backscatter_replies"]) == \
        ("backscatter", "backscatter", 30)
    assert "unsolicited replies" in row["evidence"]


def test_target_answers_in_a_capture_do_not_make_the_target_a_scanner(tmp_path):
    scanner, target = "198.51.100.66", "192.0.2.5"
    rows = []
    for p in range(40):  # a SYN scan, each closed port answered by RST-ACK
        rows.append(ev(scanner, target, 1000 + p, t=p, sport=61000, outcome="rejected"))
        rows.append(ev(target, scanner, 61000, t=p + 0.001, sport=1000 + p, flags=RSTACK,
                       outcome="unknown"))
    with Store.open(tmp_path / "c.duckdb") as store:
        put(store, rows)
        detect(store)
        found = _rows(store)
    assert set(found) == {scanner}
    assert found[scanner]["rejected"] == 40


def test_icmp_errors_answering_a_udp_probe_are_replies(tmp_path):
    scanner, target = "198.51.100.66", "192.0.2.5"
    rows = []
    for p in range(30):
        rows.append(ev(scanner, target, 2000 + p, t=p, proto=17, outcome="rejected"))
        rows.append(ev(target, scanner, None, t=p + 0.001, proto=1, icmp_type=3,
                       outcome="unknown"))
    with Store.open(tmp_path / "u.duckdb") as store:
        put(store, rows)
        detect(store)
        found = _rows(store)
    assert set(found) == {scanner} and found[scanner]["type"] == "udp"


def test_campaigns_group_a_network_and_a_shared_port_set(tmp_path):
    rows = []
    # four quiet sources of one /24 probing the same ports on the same day
    for i in range(4):
        rows += [ev(f"203.0.113.{10 + i}", "192.0.2.1", port, t=i * 60 + k)
                 for k, port in enumerate((23, 2323))]
    # three loud scanners, far apart, with the same list of web ports
    for i, src in enumerate(("198.51.100.1", "198.18.0.1", "198.19.0.1")):
        rows += [ev(src, f"192.0.2.{h}", port, t=3600 + i * 600 + h)
                 for h in range(1, 6) for port in (80, 8080, 8443)]
    with Store.open(tmp_path / "camp.duckdb") as store:
        put(store, rows)
        summary = detect(store)
        assert summary.campaigns == 2
        camps = store.con.execute(
            "SELECT rule, members, network, evidence FROM campaigns ORDER BY rule").fetchall()
        found = _rows(store)
    assert camps[0][:3] == ("network", 4, "203.0.113.0/24")
    assert camps[1][:2] == ("port-set", 3)
    quiet = found["203.0.113.10"]
    assert quiet["detector"] == "campaign" and quiet["campaign_id"] is not None
    assert found["198.51.100.1"]["campaign_id"] is not None
    assert found["198.51.100.1"]["campaign_id"] != quiet["campaign_id"]


@pytest.mark.parametrize("clients", [2, 5])  # light sources, and ones TRW sees (4+ probes)
def test_answered_clients_of_one_network_are_no_campaign(tmp_path, clients):
    """A capture's office clients: one /24, the same services, every first contact
    answered.  Rule 1 would group them as a distributed scan; they never join it.  The
    same traffic dropped by a firewall is the quiet distributed scan rule 1 is for."""
    def office(outcome: str) -> list[dict]:
        return [ev(f"10.9.8.{10 + i}", f"192.0.2.{1 + k}", port, t=i * 60 + k,
                   sport=40000 + k, outcome=outcome)
                for i in range(6) for k, port in enumerate([443, 53] * (clients // 2)
                                                           + [443] * (clients % 2))]
    with Store.open(tmp_path / "office.duckdb") as store:
        put(store, office("established"))
        summary = detect(store)
        assert (summary.flagged, summary.campaigns) == (0, 0)
    with Store.open(tmp_path / "dropped.duckdb") as store:
        put(store, office("blocked"))
        assert detect(store).campaigns == 1
        rule = store.con.execute("SELECT rule, members, network FROM campaigns").fetchall()
    assert rule == [("network", 6, "10.9.8.0/24")]


def test_an_empty_store_and_a_read_only_store(tmp_path):
    path = tmp_path / "e.duckdb"
    with Store.open(path) as store:
        assert detect(store).flagged == 0
    with Store.open(path, read_only=True) as store:
        assert ensure_detection(store).mode == "unchanged"


def test_backscatter_counts_merge_like_one_pass():
    from scan_events import probes

    from portradar.scan.backscatter import Backscatter

    rows = [ev(f"203.0.113.{1 + i % 3}", f"192.0.2.{i % 9}", 40000 + i, t=i,
               flags=(SYNACK, RSTACK, 0x02)[i % 3], sport=80) for i in range(60)]
    whole = Backscatter()
    whole.update(probes(rows))
    a, b = Backscatter(), Backscatter()
    a.update(probes(rows[::2]))
    b.update(probes(rows[1::2]))
    assert a.merge(b).result().to_pylist() == whole.result().to_pylist()


def test_may_answer_never_misses_a_source_that_is_a_destination():
    """The loaded columns' check before the reply query: False only when no source is
    any row's destination (exact pairs), whatever the number of destinations."""
    import numpy as np

    from portradar.scan.detect import _may_answer

    rng = np.random.default_rng(3)
    n = 20_000  # more distinct destinations than the first table holds
    dst_hi = np.where(rng.random(n) < 0.1, rng.integers(1, 1 << 63, n), 0).astype(np.uint64)
    dst_lo = rng.integers(0, 1 << 63, n).astype(np.uint64)
    src_hi = np.zeros(n, np.uint64)
    src_lo = rng.integers(0, 1 << 63, n).astype(np.uint64)
    assert not _may_answer(src_hi, src_lo, dst_hi, dst_lo)
    for i in (0, 777, n - 1):  # an IPv4 or IPv6 destination that also sends
        s_hi, s_lo = src_hi.copy(), src_lo.copy()
        s_hi[5], s_lo[5] = dst_hi[i], dst_lo[i]
        assert _may_answer(s_hi, s_lo, dst_hi, dst_lo)
    assert not _may_answer(src_hi[:0], src_lo[:0], dst_hi, dst_lo)
    zero = np.zeros(1, np.uint64)  # :: as source and destination
    assert _may_answer(zero, zero, zero, zero)
    v6 = np.ones(1, np.uint64)  # IPv6 destinations only (no IPv4 span)
    assert not _may_answer(zero, zero, v6, v6)
    assert _may_answer(v6, v6, v6, v6)


def test_trw_evidence_is_the_text_duckdb_printf_writes():
    """The evidence of TRW-only verdicts is joined in the analysis threads; it must be
    the text of the insert's printf, decimals rounded alike (ties to even included)."""
    import duckdb
    import numpy as np

    from portradar.scan.arrow_arrays import strings
    from portradar.scan.detect import _trw_evidence

    rng = np.random.default_rng(11)
    n = 5_000
    llr = np.concatenate([[0.125, 0.375, 2.5, -0.005, 4.595119850134589],
                          rng.normal(0, 8, n - 5)])
    share = np.concatenate([[0.125, 0.375, 0.625, 0.875, 0.005],
                            rng.integers(0, 50, n - 5) / rng.integers(1, 50, n - 5)])
    fail, succ = rng.integers(0, 40, n), rng.integers(0, 40, n)
    probes = rng.integers(1, 10**6, n)
    dominant = ["syn", "udp", "echo"]
    dom = [dominant[i] for i in rng.integers(0, 3, n)]
    rows = rng.random(n) < 0.9
    got = _trw_evidence(rows, fail, succ, fail + succ, llr, probes, share,
                        strings(dom)).to_pylist()
    want = duckdb.execute(
        """SELECT printf('TRW: %d failed and %d successful first contacts of %d, '
                  || 'log-likelihood ratio %.2f; %d probes, %.0f%% %s',
                  f, s, f + s, l, p, 100 * sh, d)
           FROM (SELECT unnest($1::BIGINT[]) f, unnest($2::BIGINT[]) s, unnest($3::DOUBLE[]) l,
                        unnest($4::BIGINT[]) p, unnest($5::DOUBLE[]) sh,
                        unnest($6::VARCHAR[]) d, unnest(range($7)) i) ORDER BY i""",
        [fail.tolist(), succ.tolist(), llr.tolist(), probes.tolist(), share.tolist(), dom, n],
    ).fetchall()
    assert got == [w[0] if r else None for w, r in zip(want, rows, strict=True)]


def test_detection_does_not_import_pandas(tmp_path):
    """pyarrow's pa.array / to_numpy ask its pandas shim, which imports pandas (0.3 s);
    detection builds its Arrow columns from buffers and never needs it."""
    import subprocess
    import sys

    path = tmp_path / "p.duckdb"
    with Store.open(path) as store:
        put(store, [ev(SCANNER, f"192.0.2.{k}", 22, t=k) for k in range(1, 40)]
            + [ev("203.0.113.9", f"192.0.2.{k % 9}", 40000 + k, t=k, flags=SYNACK, sport=80)
               for k in range(30)])
    code = f"""
import sys
from portradar.scan.detect import detect
from portradar.store import Store
with Store.open({str(path)!r}) as store:
    assert "pandas" not in sys.modules
    summary = detect(store)
    assert summary.flagged >= 2, summary
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def _campaign_rows() -> list[dict]:
    rows = []
    for i in range(4):  # a quiet network campaign (campaign-only verdicts)
        rows += [ev(f"203.0.113.{10 + i}", "192.0.2.1", port, t=i * 60 + k)
                 for k, port in enumerate((23, 2323))]
    for i, src in enumerate(("198.51.100.1", "198.18.0.1", "198.19.0.1")):
        rows += [ev(src, f"192.0.2.{h}", port, t=3600 + i * 600 + h)
                 for h in range(1, 6) for port in (80, 8080, 8443)]
    rows += [ev(OTHER, "192.0.2.1", 1000 + p, t=p) for p in range(30)]
    return rows


def _tables(store) -> dict[str, list]:
    return {t: sorted(store.con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("scanners", "scan_profiles", "campaigns", "campaign_members")}


def test_verdicts_written_on_their_own_connection_equal_one_transaction(tmp_path, monkeypatch):
    """The verdicts are written by a second connection while the campaigns are
    regrouped (three transactions); inside a caller's transaction (the watch service's
    snapshot) everything runs on one connection.  Both store the same rows, on a first
    run and on an incremental one that replaces some stored verdicts."""
    from portradar.scan import verdict_writer

    owns: list[bool] = []
    real_init = verdict_writer.VerdictWriter.__init__

    def init(self, *args, **kwargs):
        owns.append(kwargs.get("own", True))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(verdict_writer.VerdictWriter, "__init__", init)
    more = [ev(SCANNER, f"192.0.2.{h}", 445, t=7000 + h) for h in range(1, 9)]
    more += [ev("198.18.0.1", f"192.0.2.{h}", 8443, t=7100 + h) for h in range(6, 9)]
    results = []
    for nested in (False, True):
        with Store.open(tmp_path / f"{nested}.duckdb") as store:
            put(store, _campaign_rows())
            runs = []
            for rows in ([], more):
                if rows:
                    put(store, rows)
                if nested:
                    with store.transaction():
                        runs.append(detect(store))
                else:
                    runs.append(detect(store))
            assert [r.mode for r in runs] == ["full", "incremental"]
            assert runs[0].campaigns == 2 and runs[1].flagged > 0
            assert store.setting("scan.rowid") == str(
                store.con.execute("SELECT max(rowid) FROM event_rows").fetchone()[0])
            results.append(_tables(store))
    assert owns == [True, True, False, False]  # a writer thread, then the caller's one
    assert results[0] == results[1]
    found = {r[3]: r for r in results[0]["scanners"]}  # source -> row
    assert SCANNER in found and "203.0.113.10" in found


def test_a_failed_verdict_write_leaves_the_watermark_for_the_next_run(tmp_path, monkeypatch):
    from portradar.errors import StoreError
    from portradar.scan import detect as detect_module

    with Store.open(tmp_path / "f.duckdb") as store:
        put(store, _campaign_rows())
        real = detect_module._insert_scanners

        def broken(con, rows, config):
            if rows is not None and rows.num_rows > 3:  # the writer's insert, not the
                raise RuntimeError("disk full")        # campaign-only verdicts
            return real(con, rows, config)

        monkeypatch.setattr(detect_module, "_insert_scanners", broken)
        with pytest.raises((StoreError, RuntimeError), match="disk full"):
            detect(store)
        assert store.setting("scan.rowid", "-1") in ("-1", "")
        assert store.con.execute("SELECT count(*) FROM scanners").fetchone() == (0,)
        monkeypatch.setattr(detect_module, "_insert_scanners", real)
        again = detect(store)
        assert again.mode == "full" and again.campaigns == 2
        after = _tables(store)
    with Store.open(tmp_path / "g.duckdb") as store:
        put(store, _campaign_rows())
        detect(store)
        assert _tables(store) == after
