"""Esper's documents stay inside the repository: no link or path points outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ESPER = Path(__file__).resolve().parents[1]
REPO = ESPER.parent
DOCS = [ESPER / "README.md", *sorted((ESPER / "docs").glob("*.md"))]
# A markdown link target, or a backticked relative path that climbs out of its folder.
LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)|`(\.\./[^`\s]+)`")


def test_the_design_document_exists():
    assert (ESPER / "docs" / "DESIGN.md").is_file()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_link_leaves_the_repository(doc):
    text = doc.read_text(encoding="utf-8")
    assert "/shared/" not in text
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if "://" in target:
            continue
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(REPO), f"{doc.name}: {target} leaves the repository"
