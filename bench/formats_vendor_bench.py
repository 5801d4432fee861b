"""Throughput of the vendor log readers against a line-by-line Python regex baseline.

For each reader (Cisco ASA, Juniper SRX, NetScreen, MikroTik, Palo Alto, FortiGate,
CEF) this generates ``--lines`` realistic lines from a fixed seed (random public-looking
sources probing documentation-space targets on Zipf-like ports, with the mix of
messages a perimeter firewall writes: mostly denies, some permits and teardowns), then
times

* **reader**: the registered reader's full ``read`` (chunking, parsing, time and address
  resolution, range checks, Arrow event batch), best of ``--repeat`` runs;
* **py match**: one compiled ``re`` search per line for the format's main messages,
  groups kept as strings: the least a line-by-line reader does;
* **py events**: the same, plus what an event needs per line: ports as ``int``,
  addresses by :mod:`ipaddress`, the timestamp by ``datetime.strptime`` (still no zone
  or year resolution, no outcome, no validation, no Arrow batch).

Prints lines/s and the reader's speed-up over each baseline.  Numbers on the 2-core
reference machine are in ``docs/formats-vendors.md``.

Usage::

    python bench/formats_vendor_bench.py --lines 200000 --seed 7
    python bench/formats_vendor_bench.py --only cisco_asa fortigate
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import re
import time
from collections.abc import Callable
from datetime import datetime

import numpy as np

from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader

PORTS = np.array([445, 23, 22, 3389, 80, 443, 8080, 1433, 5900, 25, 53, 161, 6379, 9200])


class Traffic:
    """Seeded random fields for ``n`` probes, as Python lists of strings."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        octets = rng.integers(1, 224, size=(n, 4))
        self.src = [f"{a}.{b}.{c}.{d}" for a, b, c, d in octets]
        self.dst = [f"192.0.2.{x}" for x in rng.integers(1, 255, n)]
        zipf = np.minimum(rng.zipf(1.6, n) - 1, len(PORTS) * 4)
        ports = np.where(zipf < len(PORTS), PORTS[np.minimum(zipf, len(PORTS) - 1)],
                         rng.integers(1, 65536, n))
        self.dport = ports.tolist()
        self.sport = rng.integers(1024, 65536, n).tolist()
        self.kind = rng.choice(4, size=n, p=[0.8, 0.1, 0.07, 0.03]).tolist()
        self.sec = np.sort(rng.integers(0, 86400, n)).tolist()
        self.bytes = rng.integers(40, 100000, n).tolist()
        self.n = n

    def clock(self, i: int) -> str:
        s = self.sec[i]
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def gen_cisco_asa(t: Traffic) -> list[str]:
    out = []
    for i in range(t.n):
        head = f"Jun 21 2023 {t.clock(i)} fw1 : "
        k = t.kind[i]
        if k == 0:
            out.append(f"{head}%ASA-4-106023: Deny tcp src outside:{t.src[i]}/{t.sport[i]} "
                       f"dst inside:{t.dst[i]}/{t.dport[i]} by access-group \"outside_in\" "
                       "[0x0, 0x0]")
        elif k == 1:
            out.append(f"{head}%ASA-6-302013: Built inbound TCP connection {i} for "
                       f"outside:{t.src[i]}/{t.sport[i]} ({t.src[i]}/{t.sport[i]}) to "
                       f"inside:{t.dst[i]}/{t.dport[i]} ({t.dst[i]}/{t.dport[i]})")
        elif k == 2:
            out.append(f"{head}%ASA-6-302014: Teardown TCP connection {i} for "
                       f"outside:{t.src[i]}/{t.sport[i]} to inside:{t.dst[i]}/{t.dport[i]} "
                       f"duration 0:00:01 bytes {t.bytes[i]} TCP FINs")
        else:
            out.append(f"{head}%ASA-6-106100: access-list outside_in denied udp "
                       f"outside/{t.src[i]}({t.sport[i]}) -> inside/{t.dst[i]}({t.dport[i]}) "
                       "hit-cnt 1 first hit [0x0, 0x0]")
    return out


def gen_juniper_srx(t: Traffic) -> list[str]:
    out = []
    for i in range(t.n):
        head = f"Jun 21 {t.clock(i)} srx1 RT_FLOW: "
        pair = f"{t.src[i]}/{t.sport[i]}->{t.dst[i]}/{t.dport[i]}"
        if t.kind[i] in (0, 3):
            out.append(f"{head}RT_FLOW_SESSION_DENY: session denied {pair} junos-any 6(0) "
                       "default-deny(global) untrust trust UNKNOWN UNKNOWN N/A(N/A) "
                       "ge-0/0/0.0 UNKNOWN policy deny")
        elif t.kind[i] == 1:
            out.append(f"{head}RT_FLOW_SESSION_CREATE: session created {pair} junos-any {pair} "
                       f"None None 6 allow-in untrust trust {i} N/A(N/A) ge-0/0/0.0")
        else:
            out.append(f"{head}RT_FLOW_SESSION_CLOSE: session closed TCP FIN: {pair} junos-any "
                       f"{pair} None None 6 allow-in untrust trust {i} 5(400) "
                       f"4({t.bytes[i]}) 2 UNKNOWN UNKNOWN N/A(N/A) ge-0/0/0.0 No ")
    return out


def gen_netscreen(t: Traffic) -> list[str]:
    action = ["Deny", "Permit", "Permit", "Deny"]
    return [f"Jun 21 {t.clock(i)} fw ns1: NetScreen device_id=ns1  [Root]system-notification-"
            f"00257(traffic): start_time=\"2023-06-21 {t.clock(i)}\" duration=0 policy_id=120 "
            f"service=tcp/port:{t.dport[i]} proto=6 src zone=Untrust dst zone=Trust "
            f"action={action[t.kind[i]]} sent=0 rcvd=0 src={t.src[i]} dst={t.dst[i]} "
            f"src_port={t.sport[i]} dst_port={t.dport[i]}" for i in range(t.n)]


def gen_mikrotik(t: Traffic) -> list[str]:
    prefix = ["drop-in ", "", "drop-tcp ", ""]
    return [f"2023-06-21T{t.clock(i)}.000000+02:00 10.0.0.1 firewall,info {prefix[t.kind[i]]}"
            f"input: in:ether1-WAN out:(unknown 0), connection-state:new src-mac "
            f"00:17:10:88:bc:02, proto TCP (SYN), {t.src[i]}:{t.sport[i]}->{t.dst[i]}:"
            f"{t.dport[i]}, len 40" for i in range(t.n)]


def gen_palo_alto(t: Traffic) -> list[str]:
    sub = [("drop", "deny"), ("start", "allow"), ("end", "allow"), ("deny", "reset-both")]
    out = []
    for i in range(t.n):
        subtype, action = sub[t.kind[i]]
        stamp = f"2023/06/21 {t.clock(i)}"
        out.append(
            f"<14>Jun 21 {t.clock(i)} PA-VM 1,{stamp},0128,TRAFFIC,{subtype},2560,{stamp},"
            f"{t.src[i]},{t.dst[i]},0.0.0.0,0.0.0.0,rule1,,,incomplete,vsys1,untrust,trust,"
            f"ethernet1/1,ethernet1/2,fwd,{stamp},{i},1,{t.sport[i]},{t.dport[i]},0,0,0x0,tcp,"
            f"{action},{t.bytes[i]},60,0,2,{stamp},0,any,,{i},0x0,US,10.0.0.0-10.255.255.255,,"
            "1,1,policy-deny,0,0,0,0,,PA-VM,from-policy,,,0,,0,,N/A,0,0,0,0")
    return out


def gen_fortigate(t: Traffic) -> list[str]:
    action = ['"deny"', '"accept"', '"close"', '"timeout"']
    return [f"date=2023-06-21 time={t.clock(i)} devname=\"FGT60E\" devid=\"FGT60E4Q16000000\" "
            f"eventtime=1687334400000000000 tz=\"+0200\" logid=\"0000000013\" type=\"traffic\" "
            f"subtype=\"forward\" level=\"notice\" vd=\"root\" srcip={t.src[i]} "
            f"srcport={t.sport[i]} srcintf=\"wan1\" srcintfrole=\"wan\" dstip={t.dst[i]} "
            f"dstport={t.dport[i]} dstintf=\"internal\" dstintfrole=\"lan\" sessionid={i} "
            f"proto=6 action={action[t.kind[i]]} policyid=0 policytype=\"policy\" "
            f"service=\"tcp/{t.dport[i]}\" trandisp=\"noop\" duration=0 sentbyte=60 "
            f"rcvdbyte={t.bytes[i] if t.kind[i] == 2 else 0} sentpkt=1 appcat=\"unscanned\" "
            "crscore=30 craction=131072 crlevel=\"high\"" for i in range(t.n)]


def gen_cef(t: Traffic) -> list[str]:
    act = ["blocked", "allowed", "blocked", "reset"]
    return [f"Jun 21 {t.clock(i)} gw CEF:0|Ubiquiti|UniFi Network|9.4.19|201|Threat Detected "
            f"and Blocked|7|proto=TCP src={t.src[i]} spt={t.sport[i]} dst={t.dst[i]} "
            f"dpt={t.dport[i]} act={act[t.kind[i]]} UNIFIcategory=Security UNIFIsubCategory="
            "Intrusion Prevention UNIFIhost=Express 7 UNIFIdeviceName=Express 7 "
            "UNIFIipsSignature=ET DROP Dshield Block Listed Source group 1 "
            "msg=A network intrusion attempt has been detected and blocked." for i in range(t.n)]


#: Reader name → (line generator, baseline regex with the groups ts, src, sport, dst,
#: dport, and the ``strptime`` format of ``ts``; None: ISO 8601).
FORMATS: dict[str, tuple[Callable[[Traffic], list[str]], str, str | None]] = {
    "cisco_asa": (gen_cisco_asa,
                  r"^(?P<ts>\w{3} \d+ \d{4} [\d:]+) \S+ : %ASA-\d-\d{6}: "
                  r"(?:Deny \S+ src [^:]+:(?P<src>[^/\s]+)/(?P<sport>\d+) dst [^:]+:"
                  r"(?P<dst>[^/\s]+)/(?P<dport>\d+) by access-group \"[^\"]*\""
                  r"|Built \w+ \S+ connection \d+ for [^:]+:(?P<src2>[^/\s]+)/(?P<sport2>\d+) "
                  r".*? to [^:]+:(?P<dst2>[^/\s]+)/(?P<dport2>\d+)"
                  r"|Teardown \S+ connection \d+ for [^:]+:(?P<src3>[^/\s]+)/(?P<sport3>\d+) "
                  r"to [^:]+:(?P<dst3>[^/\s]+)/(?P<dport3>\d+) duration \S+ bytes \d+"
                  r"|access-list \S+ \S+ \S+ [^/]+/(?P<src4>[^(]+)\((?P<sport4>\d+)\) -> "
                  r"[^/]+/(?P<dst4>[^(]+)\((?P<dport4>\d+)\))", "%b %d %Y %H:%M:%S"),
    "juniper_srx": (gen_juniper_srx,
                    r"^(?P<ts>\w{3} \d+ [\d:]+) \S+ RT_FLOW: RT_FLOW_SESSION_\w+: session \w+ "
                    r"(?:.*?: )?(?P<src>[^/\s]+)/(?P<sport>\d+)->(?P<dst>[^/\s]+)/(?P<dport>\d+) "
                    r"\S+ .*?(\d+)(?:\(\d+\))? (\S+) (\S+) (\S+)", "%b %d %H:%M:%S"),
    "netscreen": (gen_netscreen,
                  r"NetScreen device_id=\S+ .*?start_time=\"(?P<ts>[^\"]*)\" .*?proto=\d+ "
                  r"src zone=\S+ dst zone=\S+ action=\w+ sent=\d+ rcvd=\d+ src=(?P<src>\S+) "
                  r"dst=(?P<dst>\S+)(?: src_port=(?P<sport>\d+) dst_port=(?P<dport>\d+))?",
                  "%Y-%m-%d %H:%M:%S"),
    "mikrotik": (gen_mikrotik,
                 r"^(?P<ts>\S+) \S+ firewall,\w+ (?:.*? )?\S+: in:.*? out:.*?, .*?proto \w+"
                 r"(?: \([^)]*\))?, (?P<src>[\d.]+):(?P<sport>\d+)->(?P<dst>[\d.]+):"
                 r"(?P<dport>\d+), len \d+", None),
    "palo_alto": (gen_palo_alto,
                  r"\d,[^,]*,[^,]*,(?:TRAFFIC|THREAT),[^,]*,[^,]*,(?P<ts>[^,]*),(?P<src>[^,]*),"
                  r"(?P<dst>[^,]*),(?:[^,]*,){15}(?P<sport>\d+),(?P<dport>\d+),",
                  "%Y/%m/%d %H:%M:%S"),
    "fortigate": (gen_fortigate,
                  r"date=(?P<ts>\S+ time=\S+) .*?srcip=(?P<src>\S+) srcport=(?P<sport>\d+) "
                  r".*?dstip=(?P<dst>\S+) dstport=(?P<dport>\d+) .*?proto=\d+ "
                  r"action=\"?\w+\"? policyid=\d+", "%Y-%m-%d time=%H:%M:%S"),
    "cef": (gen_cef,
            r"^(?P<ts>\w{3} \d+ [\d:]+) \S+ CEF:\d+\|[^|]*\|[^|]*\|[^|]*\|[^|]*\|[^|]*\|"
            r"[^|]*\|.*?\bsrc=(?P<src>\S+) spt=(?P<sport>\d+) dst=(?P<dst>\S+) "
            r"dpt=(?P<dport>\d+)", "%b %d %H:%M:%S"),
}


def baseline_match(lines: list[str], pattern: str) -> int:
    """Line by line: one ``re`` search per line, the groups kept (no conversion)."""
    regex = re.compile(pattern)
    rows = []
    for line in lines:
        m = regex.search(line)
        if m is not None:
            rows.append(m.groups())
    return len(rows)


def baseline_events(lines: list[str], pattern: str, time_format: str | None) -> int:
    """Line by line, the work an event needs: match, ports as ints, addresses, time."""
    regex = re.compile(pattern)
    rows = []
    for line in lines:
        m = regex.search(line)
        if m is None:
            continue
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        src = g.get("src") or next(v for k, v in g.items() if k.startswith("src"))
        dst = g.get("dst") or next(v for k, v in g.items() if k.startswith("dst"))
        sport = g.get("sport") or next(v for k, v in g.items() if k.startswith("sport"))
        dport = g.get("dport") or next(v for k, v in g.items() if k.startswith("dport"))
        ts = (datetime.fromisoformat(g["ts"]) if time_format is None
              else datetime.strptime(g["ts"], time_format))
        rows.append((ts, ipaddress.ip_address(src), ipaddress.ip_address(dst), int(sport),
                     int(dport)))
    return len(rows)


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_reader(name: str, data: bytes) -> int:
    stats = ReadStats(source=name)
    events = 0
    for chunk in get_reader(name)().read(io.BytesIO(data), start_offset=0,
                                        options=ReadOptions(tz="UTC", year=2023), stats=stats):
        events += chunk.batch.num_rows
    assert stats.skipped_total == 0, stats.examples
    return events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=sorted(FORMATS))
    args = parser.parse_args(argv)
    traffic = Traffic(args.lines, args.seed)
    print(f"{'reader':12s} {'lines':>9s} {'reader/s':>10s} {'py match/s':>11s} "
          f"{'py events/s':>12s} {'vs match':>9s} {'vs events':>10s}")
    for name in args.only or FORMATS:
        generate, pattern, time_format = FORMATS[name]
        lines = generate(traffic)
        data = ("\n".join(lines) + "\n").encode()
        run_reader(name, data[: 1 << 16].rsplit(b"\n", 1)[0] + b"\n")  # warm up (JIT, regex)
        assert baseline_events(lines[:1000], pattern, time_format) == 1000, name
        fast = best_of(args.repeat, lambda d=data, n=name: run_reader(n, d))
        match = best_of(args.repeat, lambda ls=lines, p=pattern: baseline_match(ls, p))
        events = best_of(args.repeat, lambda ls=lines, p=pattern, f=time_format:
                         baseline_events(ls, p, f))
        n = len(lines)
        print(f"{name:12s} {n:9,d} {n / fast:10,.0f} {n / match:11,.0f} {n / events:12,.0f} "
              f"{match / fast:9.1f} {events / fast:10.1f}")


if __name__ == "__main__":
    main()
