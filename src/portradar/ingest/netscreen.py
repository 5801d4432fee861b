"""Reader of Juniper NetScreen (ScreenOS) traffic logs.

ScreenOS logs a session (policy with ``log`` enabled) as message 00257 of type
``traffic``, key=value pairs after a syslog header and the device name::

    Jun  2 14:53:31 fire00 aka1: NetScreen device_id=aka1  [Root]system-notification-00257
    (traffic): start_time="2006-06-02 14:53:30" duration=0 policy_id=120
    service=udp/port:17210 proto=17 src zone=Trust dst zone=DMZ action=Deny sent=0 rcvd=0
    src=192.168.2.2 dst=1.2.3.4 src_port=53 dst_port=17210 session_id=0 reason=Traffic Denied

(ScreenOS *Message Log Reference*, 00257.)  Keys are read one by one, so an absent pair
(no ports, no NAT, no ``session_id``) is simply null.

Mapping: ``ts`` is ``start_time`` (it carries the year; the syslog time is the fallback),
local time of ``--tz``; the sensor is the device name before ``NetScreen``, else the
syslog host; ``rule`` is the policy id; ``in_iface``/``out_iface`` are the source and
destination zones; ``bytes`` is ``sent + rcvd``.  Outcome from ``action``: ``Deny``
blocked, ``Reject`` rejected, ``Permit`` accepted for a session being created (or no
``reason``), established once closed (``reason=Close - ...``), or unanswered when it
closed with nothing received (``rcvd=0``).  For ICMP (``proto=1``) the ports are
dropped and ``icmp type=`` is kept.

Skipped: lines without ``NetScreen device_id=`` and NetScreen messages other than
``(traffic)`` ones (admin logins, alarms ...).

>>> line = (b'Jun  2 14:53:31 fire00 aka1: NetScreen device_id=aka1  [Root]system-notification-'
...         b'00257(traffic): start_time="2006-06-02 14:53:30" duration=0 policy_id=120 '
...         b'service=udp/port:17210 proto=17 src zone=Trust dst zone=DMZ action=Deny sent=0 '
...         b'rcvd=0 src=192.168.2.2 dst=1.2.3.4 src_port=53 dst_port=17210\\n')
>>> row = NetscreenReader().parse_bytes(line, ReadOptions(tz="UTC")).to_pylist()[0]
>>> row["ts"].isoformat(), row["sensor"], row["dport"], row["outcome"], row["in_iface"]
('2006-06-02T14:53:30+00:00', 'aka1', 17210, 'blocked', 'Trust')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from portradar.events.schema import Outcome
from portradar.ingest.polars_lines import PolarsLineReader, first_present
from portradar.ingest.reader import ReadOptions
from portradar.ingest.registry import register_reader
from portradar.ingest.syslog_header import TIME_COLUMNS, with_header, with_time
from portradar.ingest.text_fields import KeyValueStyle, key_values, string_buffers

if TYPE_CHECKING:
    import polars as pl
else:
    from portradar.ingest.lazy_polars import pl

#: Where the ScreenOS message starts (the text before it is syslog framing).
TAG = "NetScreen device_id="

#: key (as ScreenOS writes it) → column.
KEYS = {
    "NetScreen device_id": "device_id", "start_time": "start_time", "policy_id": "policy_id",
    "proto": "proto", "src zone": "fz", "dst zone": "tz", "action": "action",
    "sent": "sent", "rcvd": "rcvd", "src": "src", "dst": "dst", "src_port": "sport",
    "dst_port": "dport", "icmp type": "itype", "reason": "why",
}


@register_reader
class NetscreenReader(PolarsLineReader):
    """Juniper NetScreen / ScreenOS traffic logs (message 00257)."""

    name: ClassVar[str] = "netscreen"
    sniff_pattern: ClassVar[re.Pattern[bytes]] = re.compile(rb"NetScreen device_id=")

    def parse_frame(self, lines: pl.Series, options: ReadOptions) -> pl.DataFrame:
        frame = with_header(lines.to_frame(), TAG)
        arr = string_buffers(lines.to_arrow())[0]
        pairs = key_values(arr, list(KEYS), KeyValueStyle(to_next_key=True, two_word_keys=True),
                           start=frame["marker_pos"].fill_null(-1).to_numpy())
        frame = frame.with_columns([pl.Series(KEYS[key], values).cast(pl.String)
                                    for key, values in pairs.items()]).drop("line")
        frame = frame.with_columns(ts_src=pl.col("start_time"))
        timed = with_time(frame, "ts_src")
        # start_time carries the year; the syslog header's time is the fallback
        has_start = (timed["ts_kind"] != 0).to_numpy()
        frame = frame.with_columns([
            pl.Series(c, np.where(has_start, timed[c].to_numpy(), frame[c].to_numpy()))
            for c in TIME_COLUMNS])
        body = pl.col("device_id")
        i64 = pl.Int64
        proto = pl.col("proto").cast(i64, strict=False)
        icmp = proto.is_in([1, 58])
        action = pl.col("action").fill_null("").str.to_lowercase()
        why = pl.col("why").fill_null("").str.to_lowercase()
        rcvd = pl.col("rcvd").cast(i64, strict=False)
        outcome = (
            pl.when(action == "deny").then(int(Outcome.BLOCKED))
            .when(action == "reject").then(int(Outcome.REJECTED))
            .when(why.str.starts_with("close") & (rcvd == 0)).then(int(Outcome.UNANSWERED))
            .when(why.str.starts_with("close")).then(int(Outcome.ESTABLISHED))
            .when(action.is_in(["permit", "tunnel"])).then(int(Outcome.ACCEPTED))
            .otherwise(int(Outcome.UNKNOWN))
        )
        reason = (
            pl.when(pl.col("marker_pos").is_null()).then(pl.lit("not a NetScreen log"))
            .when(~body.str.contains("(traffic)", literal=True).fill_null(False))
            .then(pl.lit("NetScreen message is not a traffic log"))
        )
        return frame.with_columns(
            reason=reason,
            host=first_present(pl.col("before_marker"), pl.col("host")),
            proto=proto,
            sport=pl.when(icmp).then(None).otherwise(pl.col("sport").cast(i64, strict=False)),
            dport=pl.when(icmp).then(None).otherwise(pl.col("dport").cast(i64, strict=False)),
            icmp_type=pl.when(icmp).then(pl.col("itype").cast(i64, strict=False)),
            outcome=outcome,
            rule=pl.col("policy_id"),
            in_iface=pl.col("fz"),
            out_iface=pl.col("tz"),
            bytes=pl.col("sent").cast(i64, strict=False) + rcvd,
        )
