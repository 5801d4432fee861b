"""polars, imported on first use by the readers that need it.

Sniffing an input imports every reader module (each scores the input's first bytes), but
only the Polars-based readers (the vendor firewall formats, ``polars_lines``) use
polars, and importing it costs about 90 ms on the reference machine: a tenth of the
start-up of ``portradar ingest`` on a plain iptables log.  Those modules write::

    if TYPE_CHECKING:
        import polars as pl
    else:
        from portradar.ingest.lazy_polars import pl

and ``pl.col(...)`` then imports polars the first time it runs.

>>> import sys
>>> pl.String is sys.modules["polars"].String
True
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyPolars:
    """Attribute access imports polars (once) and forwards to it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("polars"), name)


pl = _LazyPolars()
