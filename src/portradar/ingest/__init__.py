"""Readers of every input format, format sniffing, and the ingest pipeline."""

from portradar.ingest.reader import ReadChunk, Reader, ReadOptions, ReadStats
from portradar.ingest.registry import get_reader, reader_names, register_reader

__all__ = [
    "ReadChunk",
    "ReadOptions",
    "ReadStats",
    "Reader",
    "get_reader",
    "reader_names",
    "register_reader",
]
