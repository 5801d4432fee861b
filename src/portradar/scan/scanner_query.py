"""The ``WHERE`` clause of a scanner listing, shared by ``portradar scanners`` and the API.

>>> where, params = scanner_filter(None, 445, {"kind": "horizontal", "tool": None})
>>> where
['TRUE', 'status IN (?, ?, ?, ?)', 'list_contains(port_list, ?)', 'kind = ?']
>>> params
['scanner', 'benign', 'loopback', 'unspecified', 445, 'horizontal']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The verdicts a listing shows by default: every source that probed (backscatter is
#: the echo of somebody else's attack, listed only when asked for by status).
SCAN_STATUSES = ("scanner", "benign", "loopback", "unspecified")


def scanner_filter(status: str | None, port: int | None,
                   equals: Mapping[str, str | None]) -> tuple[list[str], list[Any]]:
    """Conditions and parameters: ``status`` (None: the default set, "all": any), a
    probed ``port``, and columns that must equal a value (None or "" is no condition)."""
    where = ["TRUE"]
    params: list[Any] = []
    statuses = SCAN_STATUSES if status is None else (() if status == "all" else (status,))
    if statuses:
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    if port is not None:
        where.append("list_contains(port_list, ?)")
        params.append(port)
    for column, value in equals.items():
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params
