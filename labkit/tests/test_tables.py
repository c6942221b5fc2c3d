"""Tables piped to a file keep every column; `--json` gives the same tables (or results) as data."""

import io
import json
import sys

import pytest
from rich.table import Table

from labkit.cli import run_cli
from labkit.heartbeat import Heartbeat
from labkit.tables import UNBOUNDED_WIDTH, console_width, table_console, table_data
from labkit.watch import build_parser as watch_parser
from labkit.watch import main as watch_main
from labkit.zoo.__main__ import main as zoo_main
from labkit.zoo.__main__ import parser as zoo_parser


def _wide_table() -> Table:
    t = Table(title="wide")
    for i in range(8):
        t.add_column(f"column number {i}")
    t.add_row(*(f"[red]value[/red] {i} with some length" for i in range(8)))
    return t


def _drawn(columns: str | None, monkeypatch) -> str:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    out = io.StringIO()
    table_console(out).print(_wide_table())
    return out.getvalue()


def test_off_a_terminal_tables_keep_every_column_unless_columns_says_otherwise(monkeypatch):
    full = _drawn(None, monkeypatch)
    assert "…" not in full and "value 7 with some length" in full
    assert max(len(line) for line in full.splitlines()) > 200
    narrow = _drawn("80", monkeypatch)  # control: what rich draws at 80 columns
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "value 7 with some length" not in narrow  # folded or cut to fit
    monkeypatch.delenv("COLUMNS")
    assert console_width(io.StringIO()) == UNBOUNDED_WIDTH


def test_table_data_is_the_cells_as_text():
    data = table_data(_wide_table())
    assert data["title"] == "wide" and len(data["columns"]) == 8
    assert data["rows"] == [{f"column number {i}": f"value {i} with some length" for i in range(8)}]


def _run(parser, main, argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        run_cli(parser, main, argv)
    return done.value.code


def test_zoo_list_json(capsys):
    assert _run(zoo_parser(), zoo_main, ["list", "--json"]) == 0
    (table,) = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in table["rows"]}
    assert rows["local:tiny-gpt2"]["built"].startswith("default")  # shipped
    assert rows["local:shapes10"]["sizes"] == "default, small, test"


def test_watch_json_once_and_followed(tmp_path, capsys):
    with Heartbeat(tmp_path, "train", 4) as hb:
        hb.beat(4, metrics={"loss": 0.5})
    assert _run(watch_parser(), watch_main, ["--run_dir", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (phase,) = doc["phases"]
    assert phase["phase"] == "train" and phase["heartbeat"]["status"] == "complete"
    assert phase["heartbeat"]["metrics"] == {"loss": 0.5} and phase["health"] == ""
    argv = ["--run_dir", str(tmp_path), "--json", "--follow", "--stop_on_terminal"]
    assert _run(watch_parser(), watch_main, argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["phases"][0]["phase"] == "train"
    assert not sys.stdout.isatty()
