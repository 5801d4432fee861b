"""Open an input for reading: a path or ``-`` (standard input), compressed or not.

gzip, bzip2, xz and zstd are recognised from their magic bytes, not the file name,
so a rotated ``kern.log.1`` that happens to be compressed is read all the same.

>>> import gzip, io
>>> opened = open_stream(io.BytesIO(gzip.compress(b"hello\\n")), name="x")
>>> opened.compression, opened.stream.read()
('gzip', b'hello\\n')
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from portradar.errors import InputError

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)

#: How many decompressed bytes format sniffing looks at.
SNIFF_BYTES = 64 * 1024


@dataclass
class OpenedInput:
    """A decompressed, peekable binary stream and what is known about it."""

    name: str
    stream: BinaryIO
    compression: str | None
    size: int | None  # bytes on disk (compressed size when compressed)
    mtime: datetime | None
    seekable: bool

    @property
    def head(self) -> bytes:
        """The first bytes of the decompressed content, without consuming them."""
        peek = getattr(self.stream, "peek", None)
        if peek is None:
            return b""
        data: bytes = peek(SNIFF_BYTES)
        return data[:SNIFF_BYTES]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()


class _Peekable(io.BufferedReader):
    """A buffered reader whose peek() returns up to ``SNIFF_BYTES`` bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__(raw, buffer_size=SNIFF_BYTES * 2)  # type: ignore[arg-type]

    def peek(self, size: int = 0) -> bytes:
        data = super().peek(size)
        while len(data) < size:
            more = super().peek(size)
            if len(more) <= len(data):
                break
            data = more
        return data


def detect_compression(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _decompressor(raw: BinaryIO, compression: str | None) -> BinaryIO:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


def open_stream(raw: BinaryIO, *, name: str, size: int | None = None,
                mtime: datetime | None = None) -> OpenedInput:
    """Wrap an already open binary stream, decompressing it when needed."""
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[type-var]
    head = buffered.peek(8)[:8]
    compression = detect_compression(head)
    inner = _decompressor(buffered, compression)
    stream = _Peekable(inner) if compression else buffered
    seekable = compression is None and _is_seekable(raw)
    return OpenedInput(name, stream, compression, size, mtime, seekable)


def _is_seekable(raw: BinaryIO) -> bool:
    try:
        return bool(raw.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def open_input(path: str | os.PathLike[str]) -> OpenedInput:
    """Open a path, or standard input for ``-``; raise :class:`InputError` if impossible."""
    text = os.fspath(path)
    if text == "-":
        return open_stream(sys.stdin.buffer, name="<stdin>")
    p = Path(text)
    try:
        st = p.stat()
        if p.is_dir():
            raise InputError(f"{text}: is a directory; give the files inside it")
        raw = open(p, "rb", buffering=SNIFF_BYTES * 2)  # noqa: SIM115
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"{text}: no such file") from exc
    except PermissionError as exc:
        raise InputError(f"{text}: permission denied") from exc
    except OSError as exc:
        raise InputError(f"{text}: cannot open ({exc.strerror or exc})") from exc
    return open_stream(raw, name=text, size=st.st_size,
                       mtime=datetime.fromtimestamp(st.st_mtime, tz=UTC))
