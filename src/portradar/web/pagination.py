"""Pagination of every list: ``limit`` (1-1000, default 50) and ``offset``, with a link
to the next page.

``next`` is a relative URL (path and query only): an absolute one would be built from
the request's ``Host`` header, which a client controls.

>>> Page[int](items=[1], total=3, limit=1, offset=0, next="/x?offset=1").total
3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Query, Request
from pydantic import BaseModel

T = TypeVar("T")

#: Default and largest page (the contract's numbers: a page of 1,000 rows is about
#: 300 kB of JSON, what a dashboard table can take).
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: Offsets beyond this are refused (DuckDB's OFFSET is 64-bit, Python ints are not bounded).
MAX_OFFSET = 10**9


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next: str | None


@dataclass
class PageParams:
    limit: int
    offset: int


def page_params(limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT,
                                   description="Items per page."),
                offset: int = Query(0, ge=0, le=MAX_OFFSET,
                                    description="Items to skip.")) -> PageParams:
    return PageParams(limit, offset)


def next_url(request: Request, params: PageParams, total: int) -> str | None:
    if params.offset + params.limit >= total:
        return None
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
    query.append(("offset", str(params.offset + params.limit)))
    return f"{request.url.path}?{urlencode(query)}"


def page(request: Request, params: PageParams, items: list[Any], total: int) -> dict[str, Any]:
    """The page of ``items`` (already sliced to the page) out of ``total``."""
    return {"items": items, "total": total, "limit": params.limit, "offset": params.offset,
            "next": next_url(request, params, total)}


def window(rows: list[Any], params: PageParams) -> list[Any]:
    """The page's slice of a list computed whole."""
    return rows[params.offset:params.offset + params.limit]
