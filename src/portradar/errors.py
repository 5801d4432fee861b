"""One exception tree for everything a user can hit.

Foreign exceptions (OSError from a file, duckdb.Error from the store, ...) are
translated at the boundary with ``raise ... from`` so that callers, and the
CLI, only ever need to catch :class:`PortradarError`.
"""

from __future__ import annotations


class PortradarError(Exception):
    """Base class of every error portradar raises on purpose."""


class InputError(PortradarError):
    """An input cannot be read at all (missing, unreadable, truncated, garbage)."""


class UnknownFormatError(InputError):
    """No reader recognises the content of an input; pass ``--format``."""


class FormatError(InputError):
    """A record is malformed.  Raised in strict mode; counted and skipped otherwise.

    Carries where it happened so the message can say ``file:line: reason``.

    >>> str(FormatError("no SRC= field", source="fw.log", line=12))
    'fw.log:12: no SRC= field'
    """

    def __init__(self, reason: str, *, source: str = "-", line: int | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


class StoreError(PortradarError):
    """The store cannot be opened, read or written."""


class SchemaError(PortradarError):
    """An event batch does not conform to the event schema."""
