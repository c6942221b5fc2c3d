"""Tables that stay readable when piped, and the same tables as JSON (`--json`) for scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Off a terminal a table is as wide as its content: no column is cut to "…" to fit 80 characters.
UNBOUNDED_WIDTH = 10_000


def console_width(file: IO[str] | None = None) -> int | None:
    """None (rich's choice: the terminal, else COLUMNS) on a terminal or with COLUMNS set; else unbounded."""
    stream = file if file is not None else sys.stdout
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return UNBOUNDED_WIDTH


def table_console(file: IO[str] | None = None, **options: Any) -> Console:
    """A rich Console for printing tables to `file` (default stdout) at `console_width`."""
    return Console(file=file, width=console_width(file), **options)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Add `--json`: print the result as JSON on stdout instead of drawing tables."""
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON on stdout instead of tables"
    )


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)


def table_data(table: Table) -> dict[str, Any]:
    """A rich table as `{"title", "columns", "rows": [{column: cell text}]}`."""
    columns = [_plain(c.header) for c in table.columns]
    cells = [[_plain(cell) for cell in column.cells] for column in table.columns]
    rows = [dict(zip(columns, row, strict=True)) for row in zip(*cells, strict=True)]
    return {"title": _plain(table.title or ""), "columns": columns, "rows": rows}


def print_json(data: Any, file: IO[str] | None = None) -> None:
    """`data` as indented JSON on `file` (default stdout); rich tables inside become `table_data`."""

    def convert(value: Any) -> Any:
        if isinstance(value, Table):
            return table_data(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    print(json.dumps(convert(data), indent=2, default=str), file=file or sys.stdout)


def print_tables(tables: Iterable[Table], *, as_json: bool, console: Console | None = None) -> None:
    """Draw `tables` (full width off a terminal), or print them as one JSON list."""
    tables = list(tables)
    if as_json:
        print_json(tables)
        return
    console = console or table_console()
    for table in tables:
        console.print(table)
