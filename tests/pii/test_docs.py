"""docs/pii.md says what the code does: its category table and thresholds are the code's."""

from __future__ import annotations

import re
from pathlib import Path

from atlas_compliance.pii.categories import CATEGORIES
from atlas_compliance.pii.value_rules import MIN_SHARE

DOC = (Path(__file__).resolve().parents[2] / "docs" / "pii.md").read_text(encoding="utf-8")


def table_after(heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``heading`` (header and separator rows dropped)."""
    lines = DOC.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in lines[start + 2:end]]


def test_the_category_table_is_the_code_s():
    rows = table_after("## Categories")
    documented = [(r[0].strip("`"), r[1], r[2], r[4]) for r in rows]
    assert documented == [(c.id, c.label, c.group, c.masking) for c in CATEGORIES]
    for row in rows:
        assert row[3] and row[5], row  # a rule and an example of evidence for every category


def test_the_thresholds_are_the_code_s():
    documented = {}
    for share, categories in table_after("### Thresholds"):
        for category in re.findall(r"`(\w+)`", categories):
            documented[category] = int(share.rstrip("%")) / 100
    assert documented == MIN_SHARE
