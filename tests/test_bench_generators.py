"""Tests of the benchmark input generator (``bench/gen_iptables_log.py``).

The generator feeds the ingest benchmark and the bundled example, and its truth file is
what detector tests will be scored against, so it must be exact: deterministic for a
seed, exactly the requested line count, every line in the kernel's ``LOG`` grammar, and
a truth that agrees with counts recomputed from the text.  All tests run in seconds.
"""

from __future__ import annotations

import doctest
import gzip
import hashlib
import importlib.util
import re
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_LOG = ROOT / "examples" / "firewall.log.gz"
EXAMPLE_TRUTH = ROOT / "examples" / "firewall.truth.json"


def _load() -> ModuleType:
    name = "gen_iptables_log"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "gen_iptables_log.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


gen = _load()

_N16 = rb"(?:0|[1-9]\d{0,4})"
_N8 = rb"(?:0|[1-9]\d{0,2})"
_OCTET = rb"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_V4 = rb"(?:" + _OCTET + rb"\.){3}" + _OCTET
_V6 = rb"(?:[0-9a-f]{4}:){7}[0-9a-f]{4}"  # %pI6: full form, leading zeros kept
#: The netfilter LOG line grammar (nf_log_syslog.c) inside the generator's syslog framings.
LINE = re.compile(
    rb"^(?:(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?P<day>[ 12]\d|3[01])"
    rb" (?P<hms>(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)"
    rb"|(?P<iso>\d{4}-\d\d-\d\dT[0-2]\d:[0-5]\d:[0-5]\d\.\d{6}\+00:00))"
    rb" (?P<host>[A-Za-z0-9][A-Za-z0-9.-]*) kernel: (?P<uptime>\[ *\d+\.\d{6}\] )?"
    rb"(?P<prefix>\[UFW BLOCK\] |\[UFW ALLOW\] |DROP |IPTABLES-DROP: )"
    rb"IN=(?P<iface>[a-z0-9]+) OUT= MAC=(?:[0-9a-f]{2}:){12}(?P<ethertype>08:00|86:dd) "
    rb"(?:SRC=(?P<src4>" + _V4 + rb") DST=(?P<dst4>" + _V4 + rb") LEN=(?P<len4>" + _N16
    + rb") TOS=0x(?:0[02468ACE]|1[02468ACE]) PREC=0x[02468ACE]0 TTL=" + _N8
    + rb" ID=" + _N16 + rb" (?:DF )?"
    rb"|SRC=(?P<src6>" + _V6 + rb") DST=(?P<dst6>" + _V6 + rb") LEN=(?P<len6>" + _N16
    + rb") TC=" + _N8 + rb" HOPLIMIT=" + _N8 + rb" FLOWLBL=(?:0|[1-9]\d{0,6}) )"
    rb"(?:PROTO=(?P<tcp>TCP) SPT=" + _N16 + rb" DPT=(?P<tdpt>" + _N16 + rb") WINDOW=" + _N16
    + rb" RES=0x00 (?P<flags>(?:CWR )?(?:ECE )?(?:URG )?(?:ACK )?(?:PSH )?(?:RST )?(?:SYN )?"
    rb"(?:FIN )?)URGP=0 (?:OPT \((?P<opt>(?:[0-9A-F]{2})+)\) )?"
    rb"|PROTO=(?P<udp>UDP) SPT=" + _N16 + rb" DPT=(?P<udpt>" + _N16 + rb") LEN=(?P<ulen>"
    + _N16 + rb") "
    rb"|PROTO=(?P<icmp>ICMP) TYPE=8 CODE=0 ID=" + _N16 + rb" SEQ=" + _N16 + rb" "
    rb"|PROTO=(?P<icmp6>ICMPv6) TYPE=128 CODE=0 ID=" + _N16 + rb" SEQ=" + _N16 + rb" )$"
)
_MONTH = {m.encode(): i + 1 for i, m in enumerate(gen._MONTHS)}


def _parse(text: bytes) -> list[re.Match[bytes]]:
    lines = text.split(b"\n")
    assert lines[-1] == b"", "the file must end with a newline"
    out = []
    for number, line in enumerate(lines[:-1], 1):
        m = LINE.match(line)
        assert m, f"line {number} breaks the LOG grammar: {line!r}"
        out.append(m)
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_module_doctests() -> None:
    assert doctest.testmod(gen).failed == 0


def test_same_seed_same_bytes_across_slices(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "SLICE_LINES", 3_000)  # exercise the multi-slice path cheaply
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    gen.generate(a, 10_000, seed=11)
    gen.generate(b, 10_000, seed=11)
    assert _sha(a.read_bytes()) == _sha(b.read_bytes())
    assert gen.generate_bytes(10_000, seed=11) == a.read_bytes()
    assert gen.generate_bytes(10_000, seed=12) != a.read_bytes()


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log.gz", tmp_path / "b.log.gz"
    gen.generate(a, 3_000, seed=5)
    gen.generate(b, 3_000, seed=5)
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()) == gen.generate_bytes(3_000, seed=5)


@pytest.mark.parametrize("lines", [0, 1, 2, 7, 999, 12_345])
def test_line_count_is_exact(lines: int) -> None:
    text = gen.generate_bytes(lines, seed=3)
    assert text.count(b"\n") == lines
    assert not text or text.endswith(b"\n")


def test_every_line_matches_the_kernel_grammar() -> None:
    text = gen.generate_bytes(20_000, seed=21, formats=gen.FORMATS,
                              sensors=("fw1", "fw2", "edge-01", "dmz-gw", "fw5"))
    matches = _parse(text)
    seen: Counter[str | bytes] = Counter()
    for m in matches:
        v6 = m["src6"] is not None
        assert m["ethertype"] == (b"86:dd" if v6 else b"08:00")
        ip_len = int(m["len6"] if v6 else m["len4"])
        if m["udp"]:
            assert ip_len == int(m["ulen"]) + (40 if v6 else 20)
        if m["opt"]:
            assert ip_len == (40 if v6 else 20) + 20 + len(m["opt"]) // 2
        if m["iso"]:
            assert m["uptime"] is None  # rsyslog's ISO format comes through journald
        seen[m["prefix"]] += 1
        seen["v6" if v6 else "v4"] += 1
        for kind in ("tcp", "udp", "icmp", "icmp6"):
            if m[kind]:
                seen[kind] += 1
        if m["uptime"]:
            assert len(m["uptime"]) >= len(b"[12345.678901] ")  # printk's "%5lu.%06lu"
    # All the variants appear: framings, prefixes, protocols, both families.
    assert {b"[UFW BLOCK] ", b"[UFW ALLOW] ", b"DROP ", b"IPTABLES-DROP: "} <= set(seen)
    assert all(seen[k] for k in ("tcp", "udp", "icmp", "icmp6"))
    assert 0.01 < seen["v6"] / len(matches) < 0.04
    assert any(m["iso"] for m in matches) and any(m["uptime"] for m in matches)
    assert any(m["mon"] and not m["uptime"] for m in matches)


def test_timestamps_never_go_back() -> None:
    text = gen.generate_bytes(15_000, seed=8, days=3.0)
    keys = [(_MONTH[m["mon"]], int(m["day"]), m["hms"]) for m in _parse(text)]
    assert keys == sorted(keys)
    assert keys[0][:2] == (11, 18) and keys[-1][:2] == (11, 20)


def test_truth_agrees_with_the_file() -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    text, truth = gen.generate_truth(25_000, seed=4, start=start, days=5.0,
                                     formats=("syslog", "rfc3339"))
    matches = _parse(text)
    totals: Counter[str] = Counter()
    records: Counter[tuple[str, int]] = Counter()
    allowed: Counter[tuple[str, int]] = Counter()
    sources: defaultdict[tuple[str, int], set[bytes]] = defaultdict(set)
    targets: defaultdict[tuple[str, int], set[bytes]] = defaultdict(set)
    by_src: defaultdict[bytes, list[re.Match[bytes]]] = defaultdict(list)
    daily: Counter[tuple[str, int, str]] = Counter()
    for m in matches:
        v6 = m["src6"] is not None
        src, dst = (m["src6"], m["dst6"]) if v6 else (m["src4"], m["dst4"])
        totals["lines"] += 1
        totals["ipv6" if v6 else "ipv4"] += 1
        is_allow = m["prefix"] == b"[UFW ALLOW] "
        totals["allowed" if is_allow else "blocked"] += 1
        by_src[src].append(m)
        for kind, name in (("tcp", "tcp"), ("udp", "udp"), ("icmp", "icmp"), ("icmp6", "icmpv6")):
            if m[kind]:
                totals[name] += 1
        if m["tcp"] or m["udp"]:
            key = ("tcp" if m["tcp"] else "udp", int(m["tdpt"] or m["udpt"]))
            records[key] += 1
            allowed[key] += is_allow
            sources[key].add(src)
            targets[key].add(dst)
            if m["iso"]:
                day = m["iso"][:10].decode()
            else:
                day = f"2024-{_MONTH[m['mon']]:02d}-{int(m['day']):02d}"
            daily[(*key, day)] += 1
    for name in ("lines", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "allowed", "blocked"):
        assert truth["totals"][name] == totals[name], name
    assert truth["totals"]["lines"] == 25_000
    assert sum(s["lines"] for s in truth["sensors"]) == 25_000

    assert len(truth["per_port"]) >= 100
    for entry in truth["per_port"]:
        key = (entry["proto"], entry["port"])
        assert entry["records"] == records[key], key
        assert entry["sources"] == len(sources[key]), key
        assert entry["targets"] == len(targets[key]), key
        assert entry["allowed"] == allowed[key], key
    top = sorted(records.values(), reverse=True)[:100]
    assert [e["records"] for e in truth["per_port"][:100]] == top

    kinds = Counter(c["kind"] for c in truth["campaigns"])
    assert kinds == {"vertical": 3, "horizontal": 3, "surge": 1}
    for c in truth["campaigns"]:
        if c["kind"] == "surge":
            for d in c["daily"]:
                assert d["records"] == daily[(c["proto"], c["port"], d["day"])]
            assert c["daily"][-1]["records"] > 2 * c["daily"][0]["records"]  # it rises
            continue
        lines = by_src[c["src"].encode()]
        assert len(lines) == c["probes"] > 0
        ports = {int(m["tdpt"] or m["udpt"]) for m in lines}
        assert ports == set(c["ports"])
        if c["kind"] == "vertical":
            assert {m["dst4"].decode() for m in lines} == set(c["targets"])
            assert c["probes"] == len(c["ports"]) * len(c["targets"])
            assert len(c["ports"]) >= 200
        else:
            assert len({m["dst4"] for m in lines}) == c["targets"] == c["probes"]


def test_example_regenerates_identically() -> None:
    """The committed example is exactly what the documented command produces.

    Compares the decompressed text (gzip bytes also depend on the zlib build) and checks
    the gzip header carries no time or name, so equal text gives equal files.
    """
    if not EXAMPLE_LOG.exists():
        pytest.skip("examples/firewall.log.gz not generated")
    packed = EXAMPLE_LOG.read_bytes()
    assert len(packed) < 3_000_000
    assert packed[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # no name, mtime 0, -9
    params = dict(gen.EXAMPLE)
    lines = params.pop("lines")
    assert _sha(gen.generate_bytes(lines, **params)) == _sha(gzip.decompress(packed))


def test_example_truth_is_current() -> None:
    if not EXAMPLE_TRUTH.exists():
        pytest.skip("examples/firewall.truth.json not generated")
    import json

    params = dict(gen.EXAMPLE)
    lines = params.pop("lines")
    _, truth = gen.generate_truth(lines, **params)
    assert json.loads(EXAMPLE_TRUTH.read_text()) == json.loads(json.dumps(truth))
