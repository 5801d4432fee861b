"""The one event schema every reader writes and every detector reads."""

from portradar.events.addresses import format_addresses, parse_addresses
from portradar.events.schema import (
    EVENT_SCHEMA,
    PROTO_NUMBERS,
    SCHEMA_VERSION,
    TCP_FLAG_BITS,
    Outcome,
    empty_batch,
    make_batch,
    validate_batch,
)

__all__ = [
    "EVENT_SCHEMA",
    "PROTO_NUMBERS",
    "SCHEMA_VERSION",
    "TCP_FLAG_BITS",
    "Outcome",
    "empty_batch",
    "format_addresses",
    "make_batch",
    "parse_addresses",
    "validate_batch",
]
