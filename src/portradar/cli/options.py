"""Options and error handling shared by every subcommand module.

A feature's commands (say ``portradar scanners``) live in their own module and use
these so that every command behaves alike: ``--json``/``--csv``, one-line errors,
the store from ``--db``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.console import Console

from portradar.errors import PortradarError
from portradar.store.duckdb_store import Store

F = TypeVar("F", bound=Callable[..., Any])

err = Console(stderr=True, highlight=False, soft_wrap=True)


def output_options(func: F) -> F:
    """``--json`` / ``--csv`` on a listing command."""
    func = click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")(func)
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    return func


def output_format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    return "json" if as_json else "csv" if as_csv else "table"


def friendly(func: F) -> F:
    """Turn portradar's errors into one line on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PortradarError as exc:
            err.print(f"[red]portradar:[/red] {exc}")
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("portradar: interrupted; the store keeps everything committed before")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def open_store(ctx: click.Context, read_only: bool = False) -> Store:
    return Store.open(ctx.obj["db"], read_only=read_only)


def parse_when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO date or time") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
