"""The REHEARSAL stamp: every figure and table made from a rehearsal run says so, visibly and in the file.

A rehearsal run (its record says `rehearsal: true`, labkit.rehearsal) ran on replicas; what it draws
must never pass for a result. Figures get a watermark and a PNG text chunk; tables a first line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.atomic import atomic_write_with
from labkit.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STAMP = "REHEARSAL"
NOTE = f"{STAMP}: made on tiny replicas of the hub models and data sets; not a result"
# A table's first line, per format; a reader of CSV skips it with comment="#".
_TABLE_LINES = {
    "md": f"**{NOTE}.**\n\n",
    "tex": f"% {NOTE}\n\\par\\noindent\\textbf{{{STAMP}: replicas, not a result}}\\par\n",
    "csv": f"# {NOTE}\n",
}


def rehearsed(run_dir: str | os.PathLike) -> bool:
    """True if the run record in `run_dir` says `rehearsal: true` (a run without a record: False)."""
    record = Path(run_dir) / "run_record.json"
    if not record.is_file():
        return False
    return json.loads(record.read_text(encoding="utf-8")).get("rehearsal") is True


def stamp_figure(fig: Figure) -> None:
    """Draw the REHEARSAL watermark and note on `fig` (for code that saves figures its own way; put
    NOTE in the file's metadata too: a PNG's `Comment` chunk is what `stamped` reads)."""
    fig.text(
        0.5, 0.5, STAMP, fontsize=48, color="red", alpha=0.3, rotation=30,
        ha="center", va="center", weight="bold", zorder=1000,
    )  # fmt: skip
    fig.text(0.01, 0.995, NOTE, fontsize=7, color="red", ha="left", va="top", zorder=1000)


def save_figure(fig: Figure, path: str | os.PathLike, *, rehearsal: bool, dpi: int = 120) -> Path:
    """Write `fig` as a PNG atomically, with no version in its bytes; a rehearsal's is stamped."""
    metadata: dict[str, str | None] = {"Software": None}
    if rehearsal:
        stamp_figure(fig)
        metadata["Comment"] = NOTE
    path = Path(path)
    atomic_write_with(path, lambda f: fig.savefig(f, format="png", dpi=dpi, metadata=metadata))
    return path


def stamp_table(text: str, fmt: str, *, rehearsal: bool) -> str:
    """`text` (a table as `md`, `tex` or `csv`) with the REHEARSAL line first when `rehearsal`."""
    if fmt not in _TABLE_LINES:
        raise ConfigError(f"table format {fmt!r}: expected one of {', '.join(_TABLE_LINES)}")
    return _TABLE_LINES[fmt] + text if rehearsal else text


def stamped(path: str | os.PathLike) -> bool:
    """True if the figure (PNG) or table file at `path` carries the REHEARSAL stamp."""
    path = Path(path)
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            return STAMP in image.text.get("Comment", "")
    first = path.read_text(encoding="utf-8").partition("\n")[0]
    return STAMP in first
