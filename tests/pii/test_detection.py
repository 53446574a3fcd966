"""PII detection, specified by tests/pii/fixtures/column_cases.tsv, and masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_compliance.pii.detection import detect_column, detect_columns
from atlas_compliance.pii.masking import hmac_digest, mask_value, partial_mask
from atlas_compliance.pii.rules import is_credit_card, is_ip, is_ssn, luhn_ok, tokens

FIXTURE = Path(__file__).parent / "fixtures" / "column_cases.tsv"


def load_cases():
    cases = []
    for number, line in enumerate(FIXTURE.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t") + ["", "", ""]
        name, data_type, values, expected, confidence, note = fields[:6]
        cases.append(pytest.param(name, data_type, json.loads(values), expected, confidence,
                                  id=f"{number}-{name}-{expected}" + (f" ({note})" if note else "")))
    return cases


CASES = load_cases()


def test_fixture_is_substantial():
    assert len(CASES) >= 80


@pytest.mark.parametrize(("name", "data_type", "values", "expected", "confidence"), CASES)
def test_column_case(name, data_type, values, expected, confidence):
    found = detect_column(name, data_type, values)
    if expected == "none":
        assert found is None, found
        return
    assert found is not None and found.category == expected, found
    if confidence:
        assert found.confidence == confidence, found
    assert found.method in ("regex", "column_name", "type_heuristic")
    assert found.reason
    raw = {str(v).strip() for v in values}
    assert not raw.intersection(found.evidence.examples) or all(len(str(v)) <= 4 for v in values)
    assert len(found.evidence.examples) <= 3


def test_confidence_needs_ten_samples():
    emails = [f"user{i}@mail.example" for i in range(9)]
    assert detect_column("x", "text", emails).confidence == "medium"
    assert detect_column("x", "text", [*emails, "u9@mail.example"]).confidence == "high"


def test_evidence_counts_and_masks():
    values = ["ann@example.com", "bob@example.com", None, "", "   ", "not an email", b"\x00\xff"] + [
        f"p{i}@corp.example" for i in range(8)]
    found = detect_column("contact", "text", values)
    assert found.category == "email"
    assert found.evidence.sampled == 11 and found.evidence.matched == 10  # None, blanks and binary skipped
    assert found.evidence.examples == ("a***@example.com", "b***@example.com", "p***@corp.example")
    assert found.reason == "10/11 sampled values are valid email addresses"
    assert found.to_dict()["evidence"] == {"sampled": 11, "matched": 10, "examples": list(found.evidence.examples)}


def test_batch_only_returns_hits():
    found = detect_columns([("id", "int", [1, 2]), ("email", "text", []), ("ssn", "text", ["123-45-6789"])])
    assert set(found) == {"email", "ssn"}


def test_validators():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert is_credit_card("4111 1111 1111 1111") and not is_credit_card("4111 1111 1111")
    assert is_ssn("123-45-6789") and not is_ssn("000-45-6789") and not is_ssn("123-45-0000")
    assert is_ip("::1") and is_ip("2001:db8::1") and is_ip("10.0.0.1") and not is_ip("256.1.1.1")
    assert tokens("userIPAddress") == ["user", "ip", "address"]


def test_partial_mask_formats():
    assert partial_mask("alice@example.com") == "a***@example.com"
    assert partial_mask("123-45-6789") == "***-**-6789"
    assert partial_mask("4111 1111 1111 1111") == "****-****-****-1111"
    assert partial_mask("4111-1111-1111-1111") == "****-****-****-1111"
    assert partial_mask("555-123-4567") == "555-***-4567"
    assert partial_mask("+1 555 123 4567") == "555-***-4567"  # the reference showed 155-***-4567
    assert partial_mask("abc") == "***" and partial_mask("abcd") == "***"
    assert partial_mask("abcdefgh") == "ab***gh" and partial_mask("Hello World") == "He***ld"


def test_mask_strategies():
    secret, other = b"k" * 32, b"j" * 32
    assert mask_value(None, "full", secret=secret) is None
    assert mask_value("", "partial", secret=secret) == ""
    assert mask_value("alice@example.com", "full", secret=secret) == "***"
    assert mask_value(12345, "full", secret=secret) == "***"
    assert mask_value("x", "redact", secret=secret) == "[REDACTED]"
    assert mask_value("alice@example.com", "partial", secret=secret) == "a***@example.com"
    hashed = mask_value("123-45-6789", "hash", secret=secret)
    assert len(hashed) == 16 and hashed == mask_value("123-45-6789", "hash", secret=secret)
    assert hashed != mask_value("123-45-6789", "hash", secret=other)
    assert hashed == hmac_digest("123-45-6789", secret)
    import hashlib
    assert hashed != hashlib.sha256(b"123-45-6789").hexdigest()[:16]  # not a plain (dictionary-reversible) hash
    with pytest.raises(ValueError):
        mask_value("x", "rot13", secret=secret)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.lists(st.one_of(st.none(), st.text(max_size=40), st.binary(max_size=8),
                                                st.integers(), st.booleans()), max_size=15))
def test_detection_never_raises(name, values):
    found = detect_column(name, "text", values)
    if found is not None:
        assert found.category and found.evidence.sampled <= len(values)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=5, max_size=60).filter(lambda s: s.strip() == s and len(s) > 4))
def test_partial_mask_never_returns_the_value(text):
    assert partial_mask(text) != text
