"""Per-request access to the store, the result cache and the time range.

Every API handler takes a :class:`RequestContext` (a FastAPI dependency): a store for
this request only (see :mod:`portradar.web.store_access`), and cached results keyed by
the data version, computed at most once per request.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request

from portradar.activity.periods import proto_number
from portradar.errors import PortradarError
from portradar.store.duckdb_store import Store
from portradar.web.derived import ResultCache, newest_event
from portradar.web.errors import ApiError
from portradar.web.store_access import StoreAccess
from portradar.web.time_range import TimeRange, resolve


@dataclass
class RequestContext:
    store: Store
    access: StoreAccess
    cache: ResultCache
    principal: Any = None
    _version: Any = field(default=None, repr=False)

    def version(self) -> Any:
        if self._version is None:
            self._version = self.access.version(self.store)
        return self._version

    def cached(self, key: Hashable, compute: Callable[[], Any],
               refresh: Callable[[], tuple[Any, Any]] | None = None) -> Any:
        return self.cache.get(self.version(), key, compute, refresh)

    def newest(self) -> datetime | None:
        return self.cached(("newest",), lambda: newest_event(self.store))

    def range(self, since: str | None, until: str | None) -> TimeRange:
        return resolve(since, until, self.newest())


def request_context(request: Request) -> Iterator[RequestContext]:
    state = request.app.state
    with state.access.read() as store:
        yield RequestContext(store, state.access, state.cache,
                             request.scope.get("state", {}).get("principal"))


def protocol(text: str) -> int:
    """A path or query protocol (name or number) as its number, or 422."""
    try:
        return proto_number(text)
    except PortradarError as exc:
        raise ApiError(422, "validation_error", "unknown protocol (use tcp, udp, icmp, "
                       "icmpv6 or a number 0-255)", {"parameter": "proto"}) from exc


def table_exists(store: Store, name: str) -> bool:
    rows = store.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                             [name]).fetchall()
    return bool(rows and rows[0][0])
