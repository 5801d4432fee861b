"""The port → service registry: what is supposed to listen on a port, and how often it is open.

Names and descriptions come from the IANA "Service Name and Transport Protocol Port
Number Registry", bundled as ``data/iana-ports.csv.gz`` (regenerated from the registry's
CSV with ``python -m portradar.intel.port_registry SOURCE.csv``; attribution in
``data/SOURCES.md``).  Where nmap is installed, ``/usr/share/nmap/nmap-services`` adds
its *open frequency*: the share of scanned hosts on which nmap's authors found the port
open, a prior for how common a listening service is (the file is read in place, never
copied: it is under the Nmap Public Source Licence).

>>> reg = PortRegistry.bundled()
>>> [s.name for s in reg.lookup(445, "tcp")]
['microsoft-ds']
>>> reg.lookup(3389, "tcp")[0].description
'MS WBT Server'
>>> reg.lookup(6001, "tcp")[0].name  # inside the 6000-6063 range
'x11'
"""

from __future__ import annotations

import gzip
import io
import sys
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

import polars as pl

from portradar.errors import InputError

#: Where Debian's (and most distributions') nmap package puts its port list.
NMAP_SERVICES = Path("/usr/share/nmap/nmap-services")

#: Transport protocols the registry keeps.
PROTOCOLS = ("tcp", "udp", "sctp", "dccp")


@dataclass(frozen=True)
class Service:
    """One registered service on a port."""

    proto: str
    port: int
    name: str
    description: str
    open_frequency: float | None = None  # nmap's, when nmap-services is installed


class PortRegistry:
    """Registered services by (protocol, port), with nmap's open frequency when present."""

    def __init__(self, table: pl.DataFrame, nmap: dict[tuple[str, int], tuple[str, float]]
                 | None = None) -> None:
        self.table = table
        self.nmap = nmap or {}

    @classmethod
    @cache
    def bundled(cls, nmap_services: Path | None = NMAP_SERVICES) -> PortRegistry:
        """The bundled IANA table, plus nmap-services when that file exists."""
        raw = files("portradar.intel").joinpath("data/iana-ports.csv.gz").read_bytes()
        table = pl.read_csv(io.BytesIO(gzip.decompress(raw)), schema_overrides={
            "proto": pl.Utf8, "port_lo": pl.Int32, "port_hi": pl.Int32,
            "service": pl.Utf8, "description": pl.Utf8})
        nmap = read_nmap_services(nmap_services) if nmap_services and nmap_services.exists() \
            else {}
        return cls(table, nmap)

    def lookup(self, port: int, proto: str = "tcp") -> list[Service]:
        """Services registered for a port (IANA first, nmap's name if IANA has none)."""
        proto = proto.lower()
        rows = self.table.filter((pl.col("proto") == proto) & (pl.col("port_lo") <= port)
                                 & (pl.col("port_hi") >= port)).to_dicts()
        freq = self.nmap.get((proto, port))
        out = [Service(proto, port, r["service"] or "", r["description"] or "",
                       freq[1] if freq else None) for r in rows]
        if not out and freq:
            out.append(Service(proto, port, freq[0], "", freq[1]))
        return out

    def names(self, port: int, proto: str = "tcp") -> str:
        """The service names of a port, comma separated ('' when unregistered)."""
        return ", ".join(sorted({s.name for s in self.lookup(port, proto) if s.name}))

    def open_frequency(self, port: int, proto: str = "tcp") -> float | None:
        freq = self.nmap.get((proto.lower(), port))
        return freq[1] if freq else None


def read_nmap_services(path: Path) -> dict[tuple[str, int], tuple[str, float]]:
    """``(proto, port) -> (name, open frequency)`` from an nmap-services file."""
    lines = pl.Series("line", path.read_text(errors="replace").splitlines())
    fields = lines.filter(~lines.str.starts_with("#")).str.split("\t")
    parts = pl.DataFrame({"name": fields.list.get(0, null_on_oob=True),
                          "portproto": fields.list.get(1, null_on_oob=True),
                          "freq": fields.list.get(2, null_on_oob=True)})
    parts = parts.with_columns(
        pl.col("portproto").str.split_exact("/", 1).struct.rename_fields(["port", "proto"])
    ).unnest("portproto").with_columns(
        pl.col("port").cast(pl.Int32, strict=False),
        pl.col("freq").cast(pl.Float64, strict=False),
    ).drop_nulls(["port", "proto", "freq"])
    return {(p, int(n)): (name, float(f)) for name, n, p, f in
            parts.select("name", "port", "proto", "freq").iter_rows()}


def build_bundled(source: Path, out: Path) -> int:
    """Write the compact bundled table from IANA's ``service-names-port-numbers.csv``."""
    try:
        d = pl.read_csv(source, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{source}: cannot read the IANA registry ({exc})") from exc
    d = d.filter(pl.col("Port Number").is_not_null()
                 & pl.col("Transport Protocol").is_in(list(PROTOCOLS)))
    d = d.filter(pl.col("Service Name").is_not_null()
                 | ~pl.col("Description").fill_null("").is_in(["Unassigned", "Reserved"]))
    r = pl.col("Port Number").str.split("-")
    d = d.select(
        pl.col("Transport Protocol").alias("proto"),
        r.list.first().cast(pl.Int32).alias("port_lo"),
        r.list.last().cast(pl.Int32).alias("port_hi"),
        pl.col("Service Name").fill_null("").alias("service"),
        pl.col("Description").fill_null("").str.replace_all(r"\s+", " ").str.strip_chars()
        .alias("description"),
    )
    buf = io.BytesIO()
    d.write_csv(buf)
    out.write_bytes(gzip.compress(buf.getvalue(), 9, mtime=0))
    return d.height


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    target = Path(__file__).with_name("data") / "iana-ports.csv.gz"
    print(build_bundled(Path(sys.argv[1]), target), "rows written to", target)
