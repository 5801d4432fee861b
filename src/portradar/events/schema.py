"""The versioned Arrow schema of one probe event.

Every reader yields :class:`pyarrow.RecordBatch` objects in exactly this schema and
everything downstream (store, detectors, exports) reads only it.  The full
description, with the reasons behind each representation, is in
``docs/event-schema.md``.

Addresses are two unsigned 64-bit integers per address (``src_hi``/``src_lo``),
the 128 bits of an IPv6 address in network order; IPv4 is stored IPv4-mapped
(``::ffff:a.b.c.d``, so ``hi == 0`` and ``lo == 0xffff_0000_0000 | v4``).  This was
chosen by measurement (``bench/address_repr.py``): grouping by source and counting
distinct addresses is faster on an integer pair than on strings, 16-byte blobs or
DuckDB's 128-bit integers.

>>> EVENT_SCHEMA.field("dport").type
DataType(uint16)
>>> int(Outcome.BLOCKED), Outcome.BLOCKED.label
(1, 'blocked')
>>> batch = make_batch({"ts": [0], "src_lo": [0xFFFF_C000_0201], "dst_lo": [0xFFFF_C000_0202],
...                     "proto": [6], "dport": [445], "outcome": [int(Outcome.BLOCKED)]})
>>> batch.num_rows, batch.schema.equals(EVENT_SCHEMA)
(1, True)
>>> batch.column("outcome").to_pylist()
['blocked']
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from portradar.errors import SchemaError

#: Bumped whenever a field is added, removed or changes meaning.  Stored with every
#: table and Parquet export so an old archive is never misread.
SCHEMA_VERSION = 1


class Outcome(enum.IntEnum):
    """What happened to a probe, as far as the sensor could tell.

    The integer is the index in the ``outcome`` dictionary column.
    """

    UNKNOWN = 0
    BLOCKED = 1  # dropped by a firewall: the prober got nothing back
    REJECTED = 2  # refused: RST, ICMP unreachable, firewall REJECT
    ACCEPTED = 3  # let through or answered (SYN-ACK, firewall ACCEPT)
    UNANSWERED = 4  # seen on the wire, no reply within the timeout
    ESTABLISHED = 5  # a full conversation took place

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def labels(cls) -> list[str]:
        return [m.label for m in cls]


#: IANA protocol numbers for the names firewalls print.
PROTO_NUMBERS: dict[str, int] = {
    "ICMP": 1,
    "IGMP": 2,
    "TCP": 6,
    "UDP": 17,
    "GRE": 47,
    "ESP": 50,
    "AH": 51,
    "ICMPV6": 58,
    "IPV6-ICMP": 58,
    "SCTP": 132,
    "UDPLITE": 136,
}

#: Bits of the ``tcp_flags`` column, as in the TCP header.
TCP_FLAG_BITS: dict[str, int] = {
    "FIN": 0x01,
    "SYN": 0x02,
    "RST": 0x04,
    "PSH": 0x08,
    "ACK": 0x10,
    "URG": 0x20,
    "ECE": 0x40,
    "CWR": 0x80,
}

_DICT = pa.dictionary(pa.int32(), pa.string())


@functools.cache
def _outcome_dictionary() -> pa.Array:
    """The outcome labels as an Arrow array (built on first use: see
    :mod:`portradar.cli.startup_imports` for why nothing here converts at import)."""
    return pa.array(Outcome.labels(), pa.string())


EVENT_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("sensor", _DICT, nullable=False),
        pa.field("src_hi", pa.uint64(), nullable=False),
        pa.field("src_lo", pa.uint64(), nullable=False),
        pa.field("dst_hi", pa.uint64(), nullable=False),
        pa.field("dst_lo", pa.uint64(), nullable=False),
        pa.field("proto", pa.uint8(), nullable=False),
        pa.field("sport", pa.uint16()),
        pa.field("dport", pa.uint16()),
        pa.field("tcp_flags", pa.uint8()),
        pa.field("icmp_type", pa.uint8()),
        pa.field("icmp_code", pa.uint8()),
        pa.field("outcome", _DICT, nullable=False),
        pa.field("rule", _DICT),
        pa.field("in_iface", _DICT),
        pa.field("out_iface", _DICT),
        pa.field("packets", pa.uint32(), nullable=False),
        pa.field("bytes", pa.uint64()),
        pa.field("ttl", pa.uint8()),
        pa.field("ip_id", pa.uint16()),
        pa.field("tcp_window", pa.uint16()),
        pa.field("tcp_seq", pa.uint32()),
        pa.field("format", _DICT, nullable=False),
    ],
    metadata={b"portradar.schema_version": str(SCHEMA_VERSION).encode()},
)

_DEFAULTS: dict[str, Any] = {
    "sensor": "default",
    "src_hi": 0,
    "dst_hi": 0,
    "outcome": int(Outcome.UNKNOWN),
    "packets": 1,
    "format": "unknown",
}


def _dictionary_column(values: Any, n: int, field: pa.Field) -> pa.Array:
    """Build a dictionary<int32, string> column from strings, codes or a DictionaryArray."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.DictionaryArray):
        if values.type != _DICT:
            values = pa.DictionaryArray.from_arrays(
                values.indices.cast(pa.int32()), values.dictionary.cast(pa.string())
            )
        return values
    if isinstance(values, str):
        return pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int32)), pa.array([values], pa.string())
        )
    if field.name == "outcome":
        arr = np.full(n, values) if isinstance(values, int) else np.asarray(values)
        if arr.dtype.kind in "iu":
            return pa.DictionaryArray.from_arrays(
                pa.array(arr.astype(np.int32)), _outcome_dictionary()
            )
    arr = pa.array(values, pa.string()) if not isinstance(values, pa.Array) else values
    return arr.cast(pa.string()).dictionary_encode().cast(_DICT)


def make_batch(columns: Mapping[str, Any], n: int | None = None) -> pa.RecordBatch:
    """Assemble a batch in :data:`EVENT_SCHEMA` order from whatever columns a reader has.

    Missing nullable columns become nulls, missing required ones take their documented
    default (``packets`` 1, ``outcome`` unknown, ``sensor`` "default", ``*_hi`` 0).
    ``ts`` may be an int64 array of microseconds since the epoch, UTC.  A dictionary
    column may be given as one string (same for every row), strings, or codes
    (``outcome`` only).
    """
    unknown = set(columns) - set(EVENT_SCHEMA.names)
    if unknown:
        raise SchemaError(f"unknown event columns: {sorted(unknown)}")
    if n is None:
        for value in columns.values():
            if not isinstance(value, str):
                n = len(value)
                break
        else:
            raise SchemaError("cannot tell the number of rows")
    arrays: list[pa.Array] = []
    for field in EVENT_SCHEMA:
        values = columns.get(field.name, _DEFAULTS.get(field.name))
        if values is None:
            if not field.nullable:
                raise SchemaError(f"missing required event column {field.name!r}")
            arrays.append(pa.nulls(n, field.type))
            continue
        if pa.types.is_dictionary(field.type):
            arrays.append(_dictionary_column(values, n, field))
            continue
        if isinstance(values, int):
            values = np.full(n, values)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if not isinstance(values, pa.Array):
            values = pa.array(values)
        if field.name == "ts" and pa.types.is_integer(values.type):
            values = values.cast(pa.int64()).view(pa.timestamp("us", tz="UTC"))
        arrays.append(values.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)


def empty_batch() -> pa.RecordBatch:
    """A batch with no rows, in the event schema."""
    return pa.RecordBatch.from_pylist([], schema=EVENT_SCHEMA)


def validate_batch(batch: pa.RecordBatch | pa.Table) -> None:
    """Raise :class:`SchemaError` unless ``batch`` has the event schema and sane values.

    >>> validate_batch(make_batch({"ts": [1], "src_lo": [1], "dst_lo": [2], "proto": [17]}))
    >>> validate_batch(make_batch({"ts": [1], "src_lo": [1], "dst_lo": [2], "proto": [17]})
    ...                .drop_columns(["ttl"]))
    Traceback (most recent call last):
    portradar.errors.SchemaError: batch columns differ from the event schema: missing ['ttl']
    """
    names = batch.schema.names
    if names != EVENT_SCHEMA.names:
        missing = [n for n in EVENT_SCHEMA.names if n not in names]
        extra = [n for n in names if n not in EVENT_SCHEMA.names]
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"unexpected {extra}")
        if not detail:
            detail.append("columns out of order")
        raise SchemaError("batch columns differ from the event schema: " + ", ".join(detail))
    for field in EVENT_SCHEMA:
        got = batch.schema.field(field.name).type
        if got != field.type:
            raise SchemaError(f"column {field.name!r} is {got}, expected {field.type}")
        if not field.nullable and batch.column(field.name).null_count:
            raise SchemaError(f"column {field.name!r} has nulls")
    outcome = batch.column("outcome")
    if isinstance(outcome, pa.ChunkedArray):
        outcome = outcome.combine_chunks()
    bad = set(outcome.dictionary.to_pylist()) - set(Outcome.labels())
    if bad:
        raise SchemaError(f"unknown outcome values {sorted(bad)}")


def column_names(fields: Sequence[str] | None = None) -> list[str]:
    """The schema's column names, or the subset given, in schema order."""
    if fields is None:
        return list(EVENT_SCHEMA.names)
    return [n for n in EVENT_SCHEMA.names if n in set(fields)]
