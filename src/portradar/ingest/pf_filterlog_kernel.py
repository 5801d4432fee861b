"""Compiled (numba) parser of pfSense / OPNsense ``filterlog`` lines: bytes in, columns out.

The hot path of the ``pf_filterlog`` reader.  Like :mod:`portradar.ingest.iptables_kernel`
it fills one row of an ``int64`` matrix and one row of a ``uint64`` address matrix per
line and reports where strings are instead of copying them.  The first
:data:`portradar.ingest.fields.TIME_COLUMNS` columns are the iptables kernel's time
columns, so :func:`portradar.ingest.syslog_time.resolve` turns them into UTC.

Framing understood: ``<PRI>`` (optional), then either RFC 5424 (``1 TIMESTAMP HOST
APP PROCID MSGID [SD...] MSG``) or a BSD / ISO syslog timestamp, an optional host and a
tag (``filterlog:``, ``filterlog[123]:``, ``pf:``).  The message is either filterlog's
CSV (parsed here, field positions from the netgate "Raw Filter Log Format" page and
OPNsense's ``filterlog/files/description.txt``) or a ``tcpdump -e`` print of a
``pflog`` packet (``rule 1/(match) block in on em0: ...``), whose span is reported for
the Polars regex pass in :mod:`portradar.ingest.pf_filterlog`.
"""

from __future__ import annotations

import numba
import numpy as np

from portradar.ingest import iptables_kernel as k

# --- the int64 output matrix ----------------------------------------------------------
# 0..7 are the iptables kernel's ST, TK, YR, MO, DY, SOD, TZ, UP
KIND, HS, HE, BS, BE, RS, RE, IFS, IFE, ACT, DIR = 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18
PR, SP, DP, FL, TTL, ID, LEN, WIN, SEQ, ITS, ITE, ICS, ICE, TGS, TGE = 19, 20, 21, 22, 23, 24, \
    25, 26, 27, 28, 29, 30, 31, 32, 33
NCOL = 34

# --- actions and directions (ACT, DIR columns) ------------------------------------------
A_OTHER, A_BLOCK, A_PASS = 0, 1, 2
D_OTHER, D_IN, D_OUT = 0, 1, 2

# --- line kinds -------------------------------------------------------------------------
K_NONE, K_CSV, K_PF = 0, 1, 2

# --- statuses; 0 is a good line (k.OK) --------------------------------------------------
BLANK = k.BLANK
NO_TIMESTAMP = k.NO_TIMESTAMP
BAD_TIMESTAMP = k.BAD_TIMESTAMP
OTHER_PROGRAM = 20  # a syslog line of another program
NOT_FILTERLOG = 21  # no recognisable filterlog or pf message
BAD_CSV = 22  # too few fields, IP version not 4 or 6, rule not a number
BAD_SRC = 23
BAD_DST = 24
BAD_PROTO = 25
BAD_PORT = 26
BAD_NUMBER = 27

#: TCP flag letters as pf prints them (``E`` ECE, ``W`` CWR).
FLAG_BITS = np.zeros(256, np.int64)
for _letter, _bit in (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), ("A", 0x10),
                      ("U", 0x20), ("E", 0x40), ("W", 0x80), ("C", 0x80)):
    FLAG_BITS[ord(_letter)] = _bit

_FILTERLOG = np.frombuffer(b"filterlog", np.uint8).copy()
_RULE = np.frombuffer(b"rule ", np.uint8).copy()
_DATALENGTH = np.frombuffer(b"datalength=", np.uint8).copy()
_BLOCK = np.frombuffer(b"block", np.uint8).copy()
_PASS = np.frombuffer(b"pass", np.uint8).copy()
_IN = np.frombuffer(b"in", np.uint8).copy()
_OUT = np.frombuffer(b"out", np.uint8).copy()

#: Most CSV fields a filterlog line has (TCP over IPv4: 29; options may add a few).
MAX_FIELDS = 48


@numba.njit(cache=True, inline="always")
def _starts_with(buf, p, e, word):  # pragma: no cover - jit
    m = word.shape[0]
    if e - p < m:
        return False
    for j in range(m):
        if buf[p + j] != word[j]:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _is(buf, s, e, word):  # pragma: no cover - jit
    return e - s == word.shape[0] and _starts_with(buf, s, e, word)


@numba.njit(cache=True)
def _num(buf, s, e, maxval):  # pragma: no cover - jit
    """Decimal in [s, e): value, -1 when empty, -2 when not a number or above maxval."""
    if e <= s:
        return -1
    if e - s > 18:
        return -2
    v = 0
    for q in range(s, e):
        c = buf[q]
        if c < 48 or c > 57:
            return -2
        v = v * 10 + (c - 48)
    if v > maxval:
        return -2
    return v


@numba.njit(cache=True)
def _skip_sd(buf, p, e):  # pragma: no cover - jit
    """Skip RFC 5424 structured data (``-`` or ``[id k="v"]...``, quotes and escapes)."""
    if p < e and buf[p] == 45:
        return p + 1
    while p < e and buf[p] == 91:
        p += 1
        quoted = False
        while p < e:
            c = buf[p]
            if c == 92:
                p += 2
                continue
            if c == 34:
                quoted = not quoted
            elif c == 93 and not quoted:
                break
            p += 1
        p += 1
    return min(p, e)


@numba.njit(cache=True)
def _frame(buf, s, e, row, out):  # pragma: no cover - jit
    """Parse the syslog framing; set the time, host and tag; return the message start."""
    p = k._skip_spaces(buf, s, e)
    if p < e and buf[p] == 60:
        v, q = k._digits(buf, p + 1, e, 3)
        if v >= 0 and q < e and buf[q] == 62:
            p = q + 1
            if p + 1 < e and buf[p] == 49 and buf[p + 1] == 32:
                # RFC 5424: VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG
                q = k._iso_ts(buf, p + 2, e, row, out)
                if q < 0:
                    return -1
                p = k._skip_spaces(buf, q, e)
                he = k._token_end(buf, p, e)
                if he > p and not (he - p == 1 and buf[p] == 45):
                    out[row, HS] = p
                    out[row, HE] = he
                p = k._skip_spaces(buf, he, e)
                te = k._token_end(buf, p, e)
                out[row, TGS] = p
                out[row, TGE] = te
                p = k._skip_spaces(buf, te, e)
                p = k._skip_spaces(buf, k._token_end(buf, p, e), e)  # PROCID
                p = k._skip_spaces(buf, k._token_end(buf, p, e), e)  # MSGID
                p = k._skip_spaces(buf, _skip_sd(buf, p, e), e)
                if p + 3 <= e and buf[p] == 0xEF and buf[p + 1] == 0xBB and buf[p + 2] == 0xBF:
                    p += 3
                return p
    q = k._timestamp(buf, p, e, row, out)
    if q < 0:
        return -1
    p = k._skip_spaces(buf, q, e)
    # up to two tokens before the tag: host, then "tag:"; or "rule" right away
    for _ in range(3):
        if p >= e or _starts_with(buf, p, e, _RULE):
            return p
        te = k._token_end(buf, p, e)
        if buf[te - 1] == 58:
            out[row, TGS] = p
            out[row, TGE] = te - 1
            return k._skip_spaces(buf, te, e)
        if out[row, HS] >= 0:
            return p
        out[row, HS] = p
        out[row, HE] = te
        p = k._skip_spaces(buf, te, e)
    return p


@numba.njit(cache=True)
def _skip_inner_time(buf, p, e, row, out):  # pragma: no cover - jit
    """Skip a timestamp tcpdump printed inside a syslog message (``00:00:00.012 rule``)."""
    q = p
    while q < e and (48 <= buf[q] <= 57 or buf[q] == 58 or buf[q] == 46):
        q += 1
    if q > p and q < e and buf[q] == 32:
        return k._skip_spaces(buf, q, e)
    saved = out[row, 0:k.UP + 1].copy()
    r = k._timestamp(buf, p, e, row, out)
    if r >= 0 and r < e and buf[r] == 32:
        return k._skip_spaces(buf, r, e)
    out[row, 0:k.UP + 1] = saved
    return p


@numba.njit(cache=True)
def _set(out, row, code):  # pragma: no cover - jit
    if out[row, k.ST] == k.OK:
        out[row, k.ST] = code


@numba.njit(cache=True)
def _csv(buf, p, e, row, out, addr, fs, fe):  # pragma: no cover - jit
    """Parse filterlog's CSV message at [p, e); ``fs``/``fe`` are scratch arrays."""
    nf = 0
    begin = p
    for q in range(p, e + 1):
        if q == e or buf[q] == 44:
            if nf < MAX_FIELDS:
                fs[nf] = begin
                fe[nf] = q
            nf += 1
            begin = q + 1
    nf = min(nf, MAX_FIELDS)
    if nf < 17 or _num(buf, fs[0], fe[0], 1 << 40) < 0:
        _set(out, row, BAD_CSV)
        return
    out[row, RS] = fs[0]
    out[row, RE] = fe[3]
    out[row, IFS] = fs[4]
    out[row, IFE] = fe[4]
    out[row, ACT] = (A_BLOCK if _is(buf, fs[6], fe[6], _BLOCK)
                     else A_PASS if _is(buf, fs[6], fe[6], _PASS) else A_OTHER)
    out[row, DIR] = (D_IN if _is(buf, fs[7], fe[7], _IN)
                     else D_OUT if _is(buf, fs[7], fe[7], _OUT) else D_OTHER)
    version = _num(buf, fs[8], fe[8], 9)
    if version == 4:
        ttl = _num(buf, fs[11], fe[11], 255)
        ipid = _num(buf, fs[12], fe[12], 65535)
        proto = _num(buf, fs[15], fe[15], 255)
        length = _num(buf, fs[17], fe[17], 1 << 40)
        src, dst, data = 18, 19, 20
    elif version == 6:
        ttl = _num(buf, fs[11], fe[11], 255)
        ipid = -1
        proto = _num(buf, fs[13], fe[13], 255)
        length = _num(buf, fs[14], fe[14], 1 << 40)
        src, dst, data = 15, 16, 17
    else:
        _set(out, row, BAD_CSV)
        return
    if nf <= dst:
        _set(out, row, BAD_CSV)
        return
    if proto < 0:
        _set(out, row, BAD_PROTO)
        return
    out[row, PR] = proto
    if ttl == -2 or ipid == -2 or length == -2:
        _set(out, row, BAD_NUMBER)
    out[row, TTL] = ttl
    out[row, ID] = ipid
    out[row, LEN] = length
    ok, hi, lo = k._address(buf, fs[src], fe[src])
    if not ok:
        _set(out, row, BAD_SRC)
        return
    addr[row, 0] = hi
    addr[row, 1] = lo
    ok, hi, lo = k._address(buf, fs[dst], fe[dst])
    if not ok:
        _set(out, row, BAD_DST)
        return
    addr[row, 2] = hi
    addr[row, 3] = lo
    if proto == 6 or proto == 17 or proto == 132 or proto == 136:
        if nf < data + 2:
            _set(out, row, BAD_PORT)
            return
        sport = _num(buf, fs[data], fe[data], 65535)
        dport = _num(buf, fs[data + 1], fe[data + 1], 65535)
        if sport == -2 or dport == -2:
            _set(out, row, BAD_PORT)
            return
        out[row, SP] = sport
        out[row, DP] = dport
        if proto == 6 and nf > data + 6:
            flags = 0
            for q in range(fs[data + 3], fe[data + 3]):
                bit = FLAG_BITS[buf[q]]
                if bit == 0:
                    _set(out, row, BAD_NUMBER)
                flags |= bit
            if fe[data + 3] > fs[data + 3]:
                out[row, FL] = flags
            # the sequence number may be a range "first:last"
            se = fs[data + 4]
            while se < fe[data + 4] and buf[se] != 58:
                se += 1
            seq = _num(buf, fs[data + 4], se, 0xFFFF_FFFF)
            win = _num(buf, fs[data + 6], fe[data + 6], 65535)
            if seq == -2 or win == -2:
                _set(out, row, BAD_NUMBER)
            out[row, SEQ] = seq
            out[row, WIN] = win
    elif (proto == 1 or proto == 58) and nf > data:
        t = data
        if _starts_with(buf, fs[t], fe[t], _DATALENGTH):
            t += 1  # OPNsense: datalength=N, type, code, id, seq, mtu
            if nf > t + 1:
                out[row, ICS] = fs[t + 1]
                out[row, ICE] = fe[t + 1]
        if nf > t:
            out[row, ITS] = fs[t]
            out[row, ITE] = fe[t]


@numba.njit(cache=True)
def _parse_line(buf, s, e, row, out, addr, fs, fe):  # pragma: no cover - jit
    for c in range(NCOL):
        out[row, c] = -1
    out[row, k.ST] = k.OK
    out[row, k.TK] = k.TS_NONE
    out[row, k.TZ] = 0
    out[row, KIND] = K_NONE
    for c in range(4):
        addr[row, c] = 0
    p = k._skip_spaces(buf, s, e)
    if p >= e:
        out[row, k.ST] = BLANK
        return
    p = _frame(buf, p, e, row, out)
    if p < 0:
        out[row, k.ST] = NO_TIMESTAMP
        return
    tagged_filterlog = out[row, TGS] >= 0 and _starts_with(buf, out[row, TGS], out[row, TGE],
                                                           _FILTERLOG)
    if out[row, TGS] >= 0 and not _starts_with(buf, p, e, _RULE):
        p = _skip_inner_time(buf, p, e, row, out)
    if _starts_with(buf, p, e, _RULE):
        out[row, KIND] = K_PF
        out[row, BS] = p
        out[row, BE] = e
        return
    if p < e and 48 <= buf[p] <= 57 and (tagged_filterlog or out[row, TGS] < 0):
        out[row, KIND] = K_CSV
        out[row, BS] = p
        out[row, BE] = e
        _csv(buf, p, e, row, out, addr, fs, fe)
        return
    if out[row, TGS] >= 0 and not tagged_filterlog:
        _set(out, row, OTHER_PROGRAM)
    else:
        _set(out, row, NOT_FILTERLOG)


@numba.njit(cache=True, parallel=True)
def parse_lines(buf, starts, ends):  # pragma: no cover - jit
    """Parse every line; return the ``int64`` field matrix and the ``uint64`` address matrix."""
    n = starts.shape[0]
    out = np.empty((n, NCOL), np.int64)
    addr = np.empty((n, 4), np.uint64)
    blocks = (n + 4095) // 4096
    for b in numba.prange(blocks):
        fs = np.empty(MAX_FIELDS, np.int64)  # scratch, allocated once per block of lines
        fe = np.empty(MAX_FIELDS, np.int64)
        for i in range(b * 4096, min(n, (b + 1) * 4096)):
            _parse_line(buf, starts[i], ends[i], i, out, addr, fs, fe)
    return out, addr
