"""Every category's evidence examples are masked with that category's own strategy, never more revealing."""

from __future__ import annotations

import re

import pytest

from atlas_compliance.pii.categories import CATEGORIES, DEFAULT_MASKING
from atlas_compliance.pii.detection import detect_column
from atlas_compliance.pii.masking import HIDDEN_EXAMPLE, example_mask
from tests.pii.test_detection import CASES, TODAY, _table_and_column

# What a partial example may show of the value, at most, per category.
PARTIAL_ALLOWANCE = {
    "email": lambda value: 1 + len(value.partition("@")[2]),  # the first character and the domain
    "phone": lambda value: 4,  # the last four digits
    "name": lambda value: 2,  # two initials
    "address": lambda value: max(3, len(value.split()[-1].rstrip(".")) if value.split() else 0),  # ZIP3 or street type
    "swift_bic": lambda value: 4,  # the bank code
    "other": lambda value: 0,
}


def revealed(example: str, value: str) -> int:
    """How many characters of ``value`` the example shows (in order, ignoring the mask's own characters)."""
    shown = [ch for ch in example if ch not in "*-[] @."]
    rest = value
    count = 0
    for ch in shown:
        index = rest.find(ch)
        if index < 0:
            index = rest.lower().find(ch.lower())
        if index >= 0:
            count += 1
            rest = rest[index + 1:]
    return count


def test_every_category_has_a_rule_for_its_examples():
    partial = {c.id for c in CATEGORIES if c.masking == "partial"}
    assert partial == set(PARTIAL_ALLOWANCE)
    assert {c.masking for c in CATEGORIES} - {"partial"} <= set(HIDDEN_EXAMPLE)


# Every value of every fixture case that is evidence for its category: the examples shown for it.
EVIDENCE_CASES = [c for c in CASES if c["method"] == "regex" and not c["expected"].startswith("review:")]


@pytest.mark.parametrize("case", EVIDENCE_CASES, ids=[f"{c['expected']}-{c['name']}-L{c['line']}" for c in EVIDENCE_CASES])
def test_examples_never_reveal_more_than_the_category_strategy(case):
    table, column = _table_and_column(case["name"])
    found = detect_column(column, case["data_type"], case["values"], table=table, today=TODAY)
    strategy = DEFAULT_MASKING[found.category]
    values = [str(item).strip() for v in case["values"] for item in (v if isinstance(v, list) else [v])]
    assert found.evidence.examples, "a detection by values shows at least one example"
    for example in found.evidence.examples:
        assert example not in values
        if strategy in HIDDEN_EXAMPLE:
            assert example == HIDDEN_EXAMPLE[strategy], (found.category, example)
        else:
            allowance = max(PARTIAL_ALLOWANCE[found.category](v) for v in values)
            assert min(revealed(example, v) for v in values) <= allowance, (found.category, example)


@pytest.mark.parametrize("category", [c.id for c in CATEGORIES])
@pytest.mark.parametrize("value", ["alice@example.com", "(555) 201-1000", "Maria Garcia", "462 Rose Lane", "94105",
                                   "DEUTDEFF", "123-45-6789", "10.0.0.1", "1958-04-21", "E11.9", "MRN100042", "42"])
def test_example_mask_of_any_value_under_any_category(category, value):
    strategy = DEFAULT_MASKING[category]
    example = example_mask(value, category, strategy)
    if strategy in HIDDEN_EXAMPLE:
        assert example == HIDDEN_EXAMPLE[strategy]
    else:
        assert example != value
        assert revealed(example, value) <= PARTIAL_ALLOWANCE[category](value)
        assert re.fullmatch(r"[\w*@.\- ]+", example)


def test_the_issue_s_leaks_are_closed():
    """An IPv4 address was shown like a phone number with 7 of its digits; birth dates showed their digits;
    licence numbers 7 digits; five-letter names 4 letters."""
    ips = detect_column("ip", "text", ["29.64.22.45", "10.20.30.40", "172.16.0.3"])
    assert ips.evidence.examples == ("[HASHED]",)
    births = detect_column("dob", "text", ["1961-05-16", "1972-07-08", "1983-09-30"])
    assert births.evidence.examples == ("[REDACTED]",)
    licences = detect_column("driver_license", "text", ["D1234567", "D7654321", "D1111111"])
    assert licences.evidence.examples == ("***",)
    names = detect_column("first_name", "text", ["Maria", "James", "Sofia"])
    assert names.evidence.examples == ("M***", "J***", "S***")
