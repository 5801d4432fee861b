"""The contract of a knowledge importer, and the registry of importers.

An importer is one module in ``portradar/intel/`` named for what it reads (``kev_import``,
``nvd_import``, ...), whose class is decorated with :func:`register_importer` and has
``name``, ``description``, ``sniff(head, name) -> float`` (0..1 confidence) and
``parse(data, *, name, source_ref, stats) -> ParsedFeed``.  Parsing never touches the
store: the knowledge base applies a parsed feed in one transaction
(:meth:`portradar.intel.vulnerabilities.KnowledgeBase.apply`), so a feed that turns out
malformed half-way leaves the knowledge base exactly as it was.

A feed that cannot be read as a whole (not JSON, wrong shape, a CSV without its
columns) raises :class:`~portradar.errors.FormatError` with the file and where; a record
that is bad on its own (a malformed CVE id, an impossible date) is counted and skipped
with its reason, or raises in strict mode, like the event readers.

>>> sorted(all_importers())[:3]
['cisa-kev', 'cve-port-map', 'epss']
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pyarrow as pa

from portradar.errors import InputError, PortradarError
from portradar.ingest.reader import ReadStats

#: Modules holding the built-in importers (each registers itself on import).
DEFAULT_IMPORTERS: tuple[str, ...] = (
    "portradar.intel.kev_import",
    "portradar.intel.nvd_import",
    "portradar.intel.msrc_import",
    "portradar.intel.epss_import",
    "portradar.intel.cve_ports",
    "portradar.intel.history",
)

#: A CVE id as MITRE assigns them (four-digit year, four or more digits).
CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,}$")

_REGISTRY: dict[str, type[Importer]] = {}


@dataclass
class ParsedFeed:
    """What one feed file gave: rows for knowledge tables, and the feed's own version."""

    tables: dict[str, pa.Table]
    version: str | None = None
    records: int = 0
    notes: list[str] = field(default_factory=list)


class Importer(Protocol):
    """What the registry and the knowledge base expect of an importer class."""

    name: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def sniff(cls, head: bytes, name: str) -> float: ...

    def parse(self, data: bytes, *, name: str, source_ref: str,
              stats: ReadStats) -> ParsedFeed: ...


def register_importer(cls: type[Any]) -> type[Any]:
    """Class decorator: make an importer known by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_defaults() -> None:
    for module in DEFAULT_IMPORTERS:
        importlib.import_module(module)


def all_importers() -> dict[str, type[Importer]]:
    _load_defaults()
    return dict(_REGISTRY)


def get_importer(name: str) -> type[Importer]:
    importers = all_importers()
    if name not in importers:
        raise PortradarError(f"unknown knowledge feed {name!r} (known: "
                             f"{', '.join(sorted(importers))})")
    return importers[name]


def read_feed(path: str | Path) -> tuple[bytes, str]:
    """The bytes of a feed file (gunzipped when compressed) and their SHA-256."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"{p}: truncated or corrupt gzip file ({exc})") from exc
    if not raw.strip():
        raise InputError(f"{p}: empty file, nothing to import")
    return raw, hashlib.sha256(raw).hexdigest()


def sniff_feed(head: bytes, name: str) -> str:
    """The importer most confident about a feed's first bytes."""
    best, score = "", 0.0
    for importer_name, cls in sorted(all_importers().items()):
        s = cls.sniff(head, name)
        if s > score:
            best, score = importer_name, s
    if score < 0.5:
        raise InputError(f"{name}: not a knowledge feed portradar knows (CISA KEV JSON, NVD "
                         f"CVE JSON 2.0, MSRC patch CSV, FIRST EPSS CSV, CVE-port map CSV, "
                         f"history CSV); pass --kind")
    return best


def clean_cves(values: list[str | None], stats: ReadStats, *,
               first_line: int = 1) -> list[str | None]:
    """Upper-cased CVE ids; malformed ones become None and are counted as skipped."""
    out: list[str | None] = []
    for i, v in enumerate(values):
        text = (v or "").strip().upper()
        if CVE_RE.match(text):
            out.append(text)
        else:
            stats.skip("not a CVE id", line=first_line + i, detail=repr(v)[:60])
            out.append(None)
    return out


def table(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """An Arrow table of ``schema`` from Python columns (missing columns are nulls)."""
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = [pa.array(columns.get(f.name, [None] * n), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


Sniffer = Callable[[bytes, str], float]
