"""Reader of nfcapd flow files (nfdump's binary format), through the ``nfdump`` program.

nfcapd is the collector most NetFlow users run; its files are LZO/LZ4/ZSTD/BZ2
compressed blocks of a format that changes between nfdump releases (layout 1 up to
1.6, layout 2 from 1.7).  Rather than re-implement every layout, this reader runs the
installed ``nfdump`` with a fixed argument list (no shell) and parses what it prints::

    nfdump -q -N -6 -r FILE -o "fmt:%tsr,%pr,%sa,%da,%sp,%dp,%it,%ic,%flg,%ipkt,%ibyt,%in,%out,%ra"

A ``fmt:`` line rather than ``-o csv``: nfdump 1.7 calls ``csv`` legacy and due for
removal, and its ``ts`` column has whole seconds, where ``%tsr`` has milliseconds;
``%it``/``%ic`` give ICMP type and code directly; ``-6`` prints IPv6 addresses whole
(the default abbreviates them), ``-N`` prints plain numbers.  The output is read as CSV
with pyarrow's streaming reader, one batch at a time, with columns converted per batch
(addresses, flags and protocol names once per distinct value).

Each flow record is one event, with the outcome rules of the NetFlow decoder
(:func:`~portradar.ingest.netflow_decoder.outcome_for_flags`, then
:func:`~portradar.ingest.netflow_decoder.reply_outcomes` within each batch of
:data:`BLOCK_BYTES` of nfdump's output), except the reply flows that decided a probe's
outcome: those are counted under
:data:`~portradar.ingest.netflow_decoder.REPLY_REASON` and not stored (never an error;
``NfdumpReader(keep_replies=True)`` stores them too).  The sensor is
``--sensor``, else the exporter's address nfcapd stored (``%ra``), else ``default``
(nfpcapd, which builds flows from a capture, stores none).

An nfcapd file is written once and read whole: a resumed read (a file that grew, like
``nfcapd.current``) runs nfdump again and skips the records already stored.  The
sniffer recognises the file magic (``0xA50C``, layouts 1 and 2), so a missing ``nfdump``
is reported as such rather than as an unknown format.

>>> NfdumpReader.sniff(bytes.fromhex("0ca50200") + bytes(60))
1.0
>>> NfdumpReader.sniff(b"\\xd4\\xc3\\xb2\\xa1" + bytes(60))
0.0
"""

from __future__ import annotations

import codecs
import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import IO, Any, BinaryIO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from portradar.errors import InputError
from portradar.events.addresses import address_key
from portradar.events.schema import PROTO_NUMBERS, empty_batch, make_batch
from portradar.ingest.netflow_decoder import (
    PORT_PROTOCOLS,
    REPLY_REASON,
    outcome_for_flags,
    reply_outcomes,
)
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import register_reader

#: nfdump's output line: one field per column of :data:`COLUMNS`.
NFDUMP_FORMAT = "fmt:%tsr,%pr,%sa,%da,%sp,%dp,%it,%ic,%flg,%ipkt,%ibyt,%in,%out,%ra"
COLUMNS = ("ts", "proto", "src", "dst", "sport", "dport", "icmp_type", "icmp_code",
           "flags", "packets", "bytes", "in_if", "out_if", "exporter")
#: nfcapd file magic (``0xA50C``, written in the host's byte order) and the layout
#: versions nfdump 1.6 (1) and 1.7 (2) write.
MAGICS = (b"\x0c\xa5", b"\xa5\x0c")
LAYOUTS = (1, 2)
#: Bytes of nfdump's CSV parsed per batch (pyarrow's block size).
BLOCK_BYTES = 4 << 20
#: nfdump's flag letters, most significant bit first (nfdump's ``FlagsString``).
FLAG_LETTERS = "CEUAPRSF"

BAD_LINE = "nfdump output line not understood"
NO_EXPORTER = ("0.0.0.0", "::", "")


def nfdump_command(path: str, program: str = "nfdump") -> list[str]:
    """The fixed argument list run for ``path``.

    >>> nfdump_command("/data/nfcapd.202601010000")[:6]
    ['nfdump', '-q', '-N', '-6', '-r', '/data/nfcapd.202601010000']
    """
    return [program, "-q", "-N", "-6", "-r", path, "-o", NFDUMP_FORMAT]


def flag_bits(text: str) -> int | None:
    """TCP flag bits from nfdump's flag string (``...A..S.``), hex or decimal.

    >>> flag_bits("...A..S."), flag_bits("0x12"), flag_bits("........"), flag_bits("?")
    (18, 18, 0, None)
    """
    text = text.strip()
    if len(text) == 8 and all(c == "." or c == FLAG_LETTERS[i] for i, c in enumerate(text)):
        return sum(1 << (7 - i) for i, c in enumerate(text) if c != ".")
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


@register_reader
class NfdumpReader:
    """nfdump collector (nfcapd) files, read through the nfdump program (sniffed).

    ``keep_replies``: a reply flow that decided a probe flow's outcome (the target's
    SYN-ACK or RST flow) is, by default, counted under
    :data:`~portradar.ingest.netflow_decoder.REPLY_REASON` and not stored, because as
    an event it would count the target as a source probing the scanner's ephemeral
    port; ``keep_replies=True`` stores it too, outcome ``unknown``.  The probe keeps its
    own packets and bytes.
    """

    name: ClassVar[str] = "nfdump"
    unit: ClassVar[str] = "flows"
    program: ClassVar[str] = "nfdump"

    def __init__(self, *, keep_replies: bool = False) -> None:
        self.keep_replies = keep_replies

    @classmethod
    def sniff(cls, head: bytes) -> float:
        if len(head) >= 4 and head[:2] in MAGICS:
            little = head[:2] == MAGICS[0]
            if int.from_bytes(head[2:4], "little" if little else "big") in LAYOUTS:
                return 1.0
        return 0.0

    def read(
        self,
        stream: BinaryIO,
        *,
        start_offset: int,
        options: ReadOptions,
        stats: ReadStats,
        start_line: int = 1,
    ) -> Iterator[ReadChunk]:
        program = shutil.which(self.program)
        if program is None:
            raise InputError(
                f"{stats.source}: reading nfcapd files needs the nfdump program, which is not "
                "installed (Debian/Ubuntu: apt-get install nfdump); or export the flows to "
                "portradar's NetFlow listener instead")
        with _LocalFile(stream) as (path, size):
            if start_offset >= size > 0:
                return
            yield from self._run(program, path, size, options, stats, start_line - 1)

    def _run(self, program: str, path: str, size: int, options: ReadOptions,
             stats: ReadStats, already: int) -> Iterator[ReadChunk]:
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(nfdump_command(path, program), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=errors,
                                    env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})
            assert proc.stdout is not None
            try:
                yield from self._parse(proc.stdout, options, stats, already)
            finally:
                proc.stdout.close()
                code = proc.wait()
            if code != 0:
                errors.seek(0)
                message = errors.read().decode("utf-8", "replace").strip().splitlines()
                raise InputError(f"{stats.source}: nfdump failed (exit {code}): "
                                 f"{message[-1] if message else 'no message'}")
        with open(path, "rb") as f:
            f.seek(max(0, size - 256))
            tail = f.read(256)
        yield ReadChunk(batch=empty_batch(), offset=size,
                        records=0, tail=tail)

    def _parse(self, out: IO[bytes], options: ReadOptions, stats: ReadStats,
               already: int) -> Iterator[ReadChunk]:
        bad_rows: list[tuple[int, str]] = []

        def invalid(row: pacsv.InvalidRow) -> str:
            bad_rows.append((row.number or 0, row.text))
            return "skip"

        try:
            reader = pacsv.open_csv(
                _Utf8(out),
                read_options=pacsv.ReadOptions(column_names=list(COLUMNS),
                                               block_size=BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in COLUMNS}),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV" in str(exc):
                return  # no flows (or nfdump failed: the exit status says)
            raise InputError(f"{stats.source}: nfdump's output is not CSV ({exc})") from exc
        line = 0
        for batch in reader:
            n = batch.num_rows
            first = line
            line += n
            self._report_bad_rows(bad_rows, stats)
            if line <= already:
                continue
            if first < already:  # the batch's first lines were stored by an earlier run
                batch = batch.slice(already - first)
                first = already
            stats.records += batch.num_rows
            events = self.parse_batch(batch, options, stats, first_line=first + 1)
            stats.events += events.num_rows
            yield ReadChunk(batch=events, offset=None, records=batch.num_rows)
        self._report_bad_rows(bad_rows, stats)

    @staticmethod
    def _report_bad_rows(bad_rows: list[tuple[int, str]], stats: ReadStats) -> None:
        """Count the lines pyarrow could not split into the columns (counted again when a
        resumed read passes them a second time: nfdump prints none in practice)."""
        if not bad_rows:
            return
        stats.records += len(bad_rows)
        stats.skip(BAD_LINE, line=bad_rows[0][0] or None, count=len(bad_rows),
                   detail=repr(bad_rows[0][1][:100]))
        bad_rows.clear()

    def parse_batch(self, raw: pa.RecordBatch, options: ReadOptions, stats: ReadStats,
                    first_line: int = 1) -> pa.RecordBatch:
        """Turn a batch of nfdump's lines (all strings, :data:`COLUMNS`) into events.

        >>> raw = pa.RecordBatch.from_pylist([dict(zip(COLUMNS, [
        ...     "1700000000.123", "6    ", "  10.9.0.1", "2001:db8::2", " 40000", "22", "0",
        ...     "0", "......S.", "1", "40", "0", "0", "0.0.0.0"]))])
        >>> row = NfdumpReader().parse_batch(raw, ReadOptions(), ReadStats()).to_pylist()[0]
        >>> row["ts"].isoformat(), row["dport"], row["tcp_flags"], row["outcome"], row["sensor"]
        ('2023-11-14T22:13:20.123000+00:00', 22, 2, 'unanswered', 'default')
        """
        col = {name: pc.utf8_trim_whitespace(raw.column(name)) for name in COLUMNS}
        seconds = pc.cast(_numeric(col["ts"], r"^\d+(\.\d+)?$"), pa.float64())
        ts_ms = pc.round(pc.multiply(seconds, 1000.0))
        proto = _proto_numbers(col["proto"])
        src_hi, src_lo, src_ok = _addresses(col["src"])
        dst_hi, dst_lo, dst_ok = _addresses(col["dst"])
        ok = (~np.isnan(_np_float(ts_ms))) & (proto >= 0) & src_ok & dst_ok
        bad = np.flatnonzero(~ok)
        if len(bad):
            stats.skip(BAD_LINE, line=first_line + int(bad[0]), count=len(bad),
                       detail=", ".join(str(raw.column(c)[int(bad[0])]) for c in COLUMNS[:4]))
        keep = np.flatnonzero(ok)
        proto_k = proto[keep].astype(np.uint8)
        flags = _flags(col["flags"])[keep]
        flags = np.where(proto_k == 6, flags, -1)
        ts = _np_float(ts_ms)[keep].astype(np.int64) * 1000
        sport, dport = _ints(col["sport"])[keep], _ints(col["dport"])[keep]
        replies = None if self.keep_replies else np.zeros(len(keep), np.bool_)
        outcome = reply_outcomes(
            outcome_for_flags(proto_k, np.where(flags < 0, 0, flags)), ts, src_hi[keep],
            src_lo[keep], dst_hi[keep], dst_lo[keep], sport, dport, proto_k, flags,
            replies=replies, icmp_type=_ints(col["icmp_type"])[keep],
            icmp_code=_ints(col["icmp_code"])[keep], packets=_ints(col["packets"])[keep])
        if replies is not None and (n_replies := int(np.count_nonzero(replies))):
            # the target's reply flows are the probes' outcomes, not probes of their own
            stats.skipped[REPLY_REASON] += n_replies  # counted, never an error
            sel = np.flatnonzero(~replies)
            keep, proto_k, flags, ts = keep[sel], proto_k[sel], flags[sel], ts[sel]
            sport, dport, outcome = sport[sel], dport[sel], outcome[sel]
        has_ports = np.isin(proto_k, PORT_PROTOCOLS)
        icmp = (proto_k == 1) | (proto_k == 58)
        exporters = col["exporter"].take(pa.array(keep))
        if options.sensor:
            sensor: object = options.sensor
        else:
            sensor = pc.if_else(pc.is_in(exporters, pa.array(NO_EXPORTER)), "default", exporters)
        packets = _ints(col["packets"])[keep]
        return make_batch({
            "ts": ts,
            "sensor": sensor,
            "src_hi": src_hi[keep], "src_lo": src_lo[keep],
            "dst_hi": dst_hi[keep], "dst_lo": dst_lo[keep],
            "proto": proto_k,
            "sport": _masked(sport, has_ports, pa.uint16()),
            "dport": _masked(dport, has_ports, pa.uint16()),
            "tcp_flags": _masked(flags, flags >= 0, pa.uint8()),
            "icmp_type": _masked(_ints(col["icmp_type"])[keep], icmp, pa.uint8()),
            "icmp_code": _masked(_ints(col["icmp_code"])[keep], icmp, pa.uint8()),
            "outcome": outcome,
            "in_iface": _interfaces(_ints(col["in_if"])[keep]),
            "out_iface": _interfaces(_ints(col["out_if"])[keep]),
            "packets": np.clip(np.where(packets < 0, 1, packets), 0, 0xFFFF_FFFF)
            .astype(np.uint32),
            "bytes": _masked(_ints(col["bytes"])[keep], None, pa.uint64()),
            "format": "nfdump",
        }, n=len(keep))


class _Utf8(io.RawIOBase):
    """A byte stream with invalid UTF-8 replaced, so pyarrow can hand bad rows to us.

    pyarrow decodes an invalid row's text for the handler and fails outright on bytes
    that are not UTF-8 (found by fuzzing): replaced, they become an ordinary bad row.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            data = self._raw.read(len(buffer))
            final = not data
            self._pending = self._decoder.decode(data, final=final).encode("utf-8")
            if final:
                break
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _LocalFile:
    """The input as a file nfdump can open: its own path, or a temporary copy.

    The stream's path is used only when the file on disk starts with an nfcapd magic
    (a gzip-wrapped copy, or standard input, is spooled to a temporary file).
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.temp: str | None = None

    def __enter__(self) -> tuple[str, int]:
        name = getattr(self.stream, "name", None)
        if isinstance(name, str) and os.path.isfile(name):
            with open(name, "rb") as f:
                if NfdumpReader.sniff(f.read(4)) > 0:
                    return name, os.path.getsize(name)
        fd, self.temp = tempfile.mkstemp(prefix="portradar-nfcapd-")
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(self.stream, out, 1 << 20)
            size = out.tell()
        return self.temp, size

    def __exit__(self, *exc: object) -> None:
        if self.temp is not None:
            os.unlink(self.temp)


def _numeric(arr: pa.Array, pattern: str) -> pa.Array:
    """Strings matching ``pattern``, others null."""
    return pc.if_else(pc.match_substring_regex(arr, pattern), arr,
                      pa.scalar(None, pa.string()))


def _np_float(arr: pa.Array) -> np.ndarray:
    return pc.fill_null(arr, float("nan")).to_numpy(zero_copy_only=False)


def _ints(arr: pa.Array) -> np.ndarray:
    """Decimal strings as int64, -1 where not a number."""
    values = pc.cast(_numeric(arr, r"^\d{1,18}$"), pa.int64())
    return pc.fill_null(values, -1).to_numpy(zero_copy_only=False)


def _proto_numbers(arr: pa.Array) -> np.ndarray:
    """Protocol numbers from numbers or names, -1 where neither; per distinct value."""
    encoded = pc.dictionary_encode(arr)
    words = encoded.dictionary.to_pylist()
    codes = []
    for word in words:
        if word is not None and word.isdigit() and int(word) < 256:
            codes.append(int(word))
        else:
            codes.append(PROTO_NUMBERS.get((word or "").upper(), -1))
    lookup = np.array([*codes, -1], np.int64)
    idx = pc.fill_null(encoded.indices, len(codes)).to_numpy(zero_copy_only=False)
    return lookup[idx]


def _addresses(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Address pairs and a validity mask; each distinct text parsed once."""
    encoded = pc.dictionary_encode(arr)
    words = encoded.dictionary.to_pylist()
    his = np.zeros(len(words) + 1, np.uint64)
    los = np.zeros(len(words) + 1, np.uint64)
    valid = np.zeros(len(words) + 1, bool)
    for i, word in enumerate(words):
        try:
            his[i], los[i] = address_key(word or "")
        except ValueError:
            continue
        valid[i] = True
    idx = pc.fill_null(encoded.indices, len(words)).to_numpy(zero_copy_only=False)
    return his[idx], los[idx], valid[idx]


def _flags(arr: pa.Array) -> np.ndarray:
    encoded = pc.dictionary_encode(arr)
    bits = [flag_bits(w) if w is not None else None for w in encoded.dictionary.to_pylist()]
    lookup = np.array([-1 if b is None else b for b in bits] + [-1], np.int64)
    idx = pc.fill_null(encoded.indices, len(bits)).to_numpy(zero_copy_only=False)
    return lookup[idx]


def _masked(values: np.ndarray, keep: np.ndarray | None, arrow_type: pa.DataType) -> pa.Array:
    missing = values < 0 if keep is None else (values < 0) | ~keep
    return pa.array(np.where(missing, 0, values),
                    mask=missing if missing.any() else None).cast(arrow_type)


def _interfaces(values: np.ndarray) -> pa.Array:
    """SNMP ifIndex numbers as dictionary strings; 0 (unknown) is null."""
    missing = values <= 0
    if missing.all():
        return pa.nulls(len(values), pa.dictionary(pa.int32(), pa.string()))
    uniq, inverse = np.unique(np.where(missing, 0, values), return_inverse=True)
    words = [str(int(u)) for u in uniq]
    return pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32), mask=missing),
                                          pa.array(words, pa.string()))
