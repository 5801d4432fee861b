"""Which tool sent the probes, from header fields the scanners set in their own way.

Stateless scanners build packets from templates and leave marks in fields an operating
system would fill differently.  Each rule below was read from the tool's source:

* **masscan** sets the IP ID to ``ip_them ^ port_them ^ seqno`` (low 16 bits), where
  ``seqno`` is its SYN cookie (robertdavidgraham/masscan ``src/templ-pkt.c``,
  ``tcp_create_packet`` and ``template_set_target``); its TCP template has TTL 255 and
  a window of 1024.  With the sequence number visible (a capture, or iptables
  ``--log-tcp-sequence``) the IP ID test is decisive (chance match 1 in 65536); without
  it, TTL above 128 with window 1024 is taken as masscan at lower confidence.
* **ZMap** sets the IP ID to 54321 and the window to 65535, TTL 255
  (zmap/zmap ``src/probe_modules/packet.c``, ``make_ip_header`` / ``make_tcp_header``).
  The same constant is in the raw-socket tutorial many home-made scanners copy, so
  "zmap" here means "ZMap or a tool built like it".
* **nmap** raw scans (-sS, -sF, -sN, -sX, -sA, -sU, -sO) draw a new TTL for every
  packet, ``(random % 23) + 37`` (nmap ``tcpip.cc`` / libnetutil ``build_*_raw``), and
  its TCP probes carry a window of 1024, 2048, 3072 or 4096 (older releases
  ``1024 * (ttl % 4 + 1)``, current ones 1024) with a random IP ID.  So: observed TTL
  at most 59, TCP window in that set, and at least 3 distinct TTLs among the source's
  probes (an operating system keeps one).  A connect scan (-sT) goes through the
  operating system and carries no nmap mark.
* **Mirai** and its descendants put the target's IPv4 address in the TCP sequence
  number (``tcph->seq = iph->daddr`` in ``mirai/bot/scanner.c`` of the published
  source; Antonakakis et al., USENIX Security 2017) and pick 23 or 2323.
* **hping3** sends TCP with a window of 512 and TTL 64 by default (``hping2.h``:
  ``DEFAULT_SRCWINSIZE 512``, ``DEFAULT_TTL 64``; its ``--help`` text claims a window of
  64, but the packets of Debian's hping3 3.a2 carry 512, as its source says), from a
  random base source port incremented by one per packet.

A source gets the tool that at least half of its probes match (nmap: 80 %, since a TTL
of 59 or less is common on its own), checked in the order above; otherwise none.

>>> import numpy as np
>>> from portradar.scan.probes import Probes
>>> dst = 0xC0000201  # 192.0.2.1
>>> seq = 0x12345678
>>> masscan_id = (dst ^ 80 ^ seq) & 0xFFFF
>>> p = Probes.from_columns({"ts": [0, 1, 2], "src_lo": [1, 2, 3],
...     "dst_lo": [0xFFFF_0000_0000 | dst] * 3, "proto": [6, 6, 6], "dport": [80, 80, 23],
...     "tcp_flags": [2, 2, 2], "ip_id": [masscan_id, 54321, 7], "tcp_seq": [seq, 1, dst],
...     "tcp_window": [1024, 65535, 5840], "ttl": [250, 240, 60]})
>>> marks = probe_marks(p)
>>> [name for name, bit in MARK_BITS.items() if marks[0] & bit]
['masscan']
>>> [name for name, bit in MARK_BITS.items() if marks[1] & bit]
['zmap']
>>> [name for name, bit in MARK_BITS.items() if marks[2] & bit]
['mirai']
"""

from __future__ import annotations

import numba
import numpy as np

from portradar.scan.probes import SYN, Probes

TOOLS = ("", "masscan", "zmap", "nmap", "mirai", "hping3")
MIRAI, MASSCAN, MASSCAN_NOSEQ, ZMAP, NMAP, HPING3 = 1, 2, 4, 8, 16, 32
MARK_BITS = {"mirai": MIRAI, "masscan": MASSCAN, "masscan-noseq": MASSCAN_NOSEQ,
             "zmap": ZMAP, "nmap": NMAP, "hping3": HPING3}
#: ZMap's fixed IP ID (packet.c ``make_ip_header``).
ZMAP_IP_ID = 54321
#: TCP windows of nmap's raw probes.
NMAP_WINDOWS = (1024, 2048, 3072, 4096)
#: hping3's default TCP window (hping2.h DEFAULT_SRCWINSIZE).
HPING3_WINDOW = 512
#: Largest TTL an nmap raw packet can arrive with: it draws 37..59.
NMAP_MAX_TTL = 59
#: Shares of a source's probes a tool's mark must cover.
TOOL_SHARE = 0.5
NMAP_SHARE = 0.8
#: Distinct TTLs that show nmap's per-packet TTL (an OS keeps one per path).
NMAP_MIN_TTLS = 3


@numba.vectorize(["int64(int16, int8, int64, uint64, uint64, int32, int32, int16, int32)"],
                 nopython=True, cache=True)
def _marks(proto, cls, seq, dst_hi, dst_lo, ip_id, window, ttl, port):  # pragma: no cover
    m = 0
    tcp = proto == 6
    v4 = dst_hi == 0 and (dst_lo >> np.uint64(32)) == np.uint64(0xFFFF)
    dst4 = np.int64(dst_lo & np.uint64(0xFFFFFFFF))
    has_seq = seq >= 0
    if tcp and cls == SYN and v4 and has_seq and seq == dst4:
        m |= MIRAI
    if tcp and v4 and has_seq and ip_id >= 0 and ((dst4 ^ port ^ seq) & 0xFFFF) == ip_id:
        m |= MASSCAN
    zmap = ip_id == ZMAP_IP_ID
    if zmap:
        m |= ZMAP
    if tcp and not has_seq and window == 1024 and ttl > 128 and not zmap:
        m |= MASSCAN_NOSEQ
    if 1 <= ttl <= NMAP_MAX_TTL and not zmap and (
            not tcp or window == 1024 or window == 2048 or window == 3072 or window == 4096):
        m |= NMAP
    if tcp and window == HPING3_WINDOW and 1 <= ttl <= 64:
        m |= HPING3
    return m


def probe_marks(p: Probes) -> np.ndarray:
    """Bit mask per probe of the tool marks it carries (:data:`MARK_BITS`)."""
    if not len(p):
        return np.zeros(0, np.int64)
    return _marks(p.proto.astype(np.int16, copy=False), p.cls.astype(np.int8, copy=False),
                  p.seq.astype(np.int64, copy=False), p.dst_hi, p.dst_lo,
                  p.ip_id.astype(np.int32, copy=False), p.window.astype(np.int32, copy=False),
                  p.ttl.astype(np.int16, copy=False), p.port.astype(np.int32, copy=False))


def tool_of(counts: np.ndarray, probes: np.ndarray, ttls: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Tool code (index in :data:`TOOLS`) and the share of probes behind it, per source.

    ``counts`` is (sources × 6): probes carrying each mark, in :data:`MARK_BITS` order;
    ``probes`` the number of probes and ``ttls`` the distinct TTLs of each source.
    """
    n = np.maximum(probes, 1).astype(np.float64)
    share = counts / n[:, None]
    tool = np.zeros(len(probes), np.int64)
    best = np.zeros(len(probes), np.float64)
    rules = (
        (4, share[:, 0] >= TOOL_SHARE),  # mirai
        (1, share[:, 1] >= TOOL_SHARE),  # masscan
        (2, share[:, 3] >= TOOL_SHARE),  # zmap
        (5, share[:, 5] >= TOOL_SHARE),  # hping3
        (3, (share[:, 4] >= NMAP_SHARE) & (ttls >= NMAP_MIN_TTLS)),  # nmap
        (1, share[:, 2] >= TOOL_SHARE),  # masscan without sequence numbers
    )
    columns = {4: 0, 1: 1, 2: 3, 5: 5, 3: 4}
    for i, (code, ok) in enumerate(rules):
        col = 2 if i == 5 else columns[code]
        take = ok & (tool == 0)
        tool[take] = code
        best[take] = share[take, col]
    return tool, best
