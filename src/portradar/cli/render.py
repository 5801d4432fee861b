"""Listings as readable tables (rich), JSON or CSV: one function every command uses.

>>> import io
>>> out = io.StringIO()
>>> render([{"port": 445, "records": 12}], ["port", "records"], "csv", file=out)
>>> out.getvalue().splitlines()
['port,records', '445,12']
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """Unicode sparkline of a series.

    >>> sparkline([0, 1, 2, 4, 8])
    '▁▂▃▅█'
    """
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))]
                   for v in values)


def _cell(column: str, value: Any) -> Text:
    if value is None:
        return Text("-")
    if column.startswith("change_") and isinstance(value, int | float):
        return Text(f"{value:+.0%}" if abs(value) < 100 else f"{value + 1:.0f}×")
    if isinstance(value, float):
        return Text(f"{value:,.2f}")
    if isinstance(value, int):
        return Text(f"{value:,}")
    return Text(str(value))


def render(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str = "table", *,
           title: str | None = None, file: TextIO | None = None,
           headers: dict[str, str] | None = None) -> None:
    """Print ``rows`` (dicts) with the given columns in ``fmt`` (table, json or csv)."""
    out = file or sys.stdout
    if fmt == "json":
        json.dump(rows, out, indent=2, default=str)
        out.write("\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        numeric = any(isinstance(r.get(col), int | float) for r in rows)
        table.add_column((headers or {}).get(col, col), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(c, row.get(c)) for c in columns))
    console = Console(file=out, emoji=False, highlight=False)
    if not console.is_terminal:
        console.width = 200  # a pipe or file: never squeeze columns
    console.print(table)
