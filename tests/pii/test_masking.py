"""Masking strategies: full, partial (the reference's formats, +1 phones fixed), keyed hash, redact."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_compliance.pii.masking import hmac_digest, mask_value, partial_mask

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))


@pytest.mark.parametrize(("value", "masked"), [
    ("alice@example.com", "a***@example.com"),
    ("bob@corp.io", "b***@corp.io"),
    ("123-45-6789", "***-**-6789"),
    ("4111-1111-1111-1111", "****-****-****-1111"),
    ("4111 1111 1111 1111", "****-****-****-1111"),
    ("378282246310005", "****-****-****-0005"),
    ("555-123-4567", "555-***-4567"),
    ("(555) 123-4567", "555-***-4567"),
    ("+1 555 123 4567", "555-***-4567"),  # the reference showed 155-***-4567
    ("1-555-123-4567", "555-***-4567"),
    ("+44 20 7946 0958", "442-***-0958"),  # other country codes keep the reference's format
    ("555-1234", "55***34"),  # 7 digits: the generic format
    ("abc", "***"),
    ("abcd", "***"),
    ("abcdefgh", "ab***gh"),
    ("Hello World", "He***ld"),
    ("  Hello World  ", "He***ld"),
])
def test_partial_formats(value, masked):
    assert partial_mask(value) == masked


def test_a_value_that_already_looks_masked_is_not_returned_unchanged():
    assert partial_mask("ab***yz") == "***"
    assert partial_mask("a***@example.com") == "***"


def test_none_and_empty_pass_through():
    for strategy in ("full", "partial", "hash", "redact"):
        assert mask_value(None, strategy, secret=SECRET) is None
        assert mask_value("", strategy, secret=SECRET) == ""


def test_full_redact_and_partial():
    assert mask_value("alice@example.com", "full", secret=SECRET) == "***"
    assert mask_value(12345, "full", secret=SECRET) == "***"
    assert mask_value("alice@example.com", "redact", secret=SECRET) == "[REDACTED]"
    assert mask_value("alice@example.com", "partial", secret=SECRET) == "a***@example.com"
    assert mask_value(4111111111111111, "partial", secret=SECRET) == "****-****-****-1111"


def test_secret_is_only_needed_for_hash():
    assert mask_value("123-45-6789", "full", secret=b"") == "***"
    with pytest.raises(ValueError, match="secret"):
        mask_value("123-45-6789", "hash", secret=b"")
    with pytest.raises(ValueError, match="secret"):
        mask_value("123-45-6789", "hash", secret=b"short")
    with pytest.raises(ValueError, match="secret"):
        mask_value("123-45-6789", "hash", secret="a text secret of enough length")  # type: ignore[arg-type]


def test_unknown_strategy_is_an_error_even_for_none():
    with pytest.raises(ValueError, match="unknown masking strategy 'rot13'"):
        mask_value("x", "rot13", secret=SECRET)
    with pytest.raises(ValueError):
        mask_value(None, "rot13", secret=SECRET)


def test_hash_is_a_keyed_hmac_sha256():
    hashed = mask_value("123-45-6789", "hash", secret=SECRET)
    assert re.fullmatch(r"[0-9a-f]{16}", hashed)
    assert hashed == hmac.new(SECRET, b"123-45-6789", hashlib.sha256).hexdigest()[:16]
    assert hashed == hmac_digest("123-45-6789", SECRET)


def test_hash_is_deterministic_per_secret_and_differs_across_secrets_and_values():
    first = mask_value("123-45-6789", "hash", secret=SECRET)
    assert first == mask_value("123-45-6789", "hash", secret=SECRET)  # joins and distinct counts still work
    assert first != mask_value("123-45-6789", "hash", secret=OTHER_SECRET)
    assert first != mask_value("123-45-6788", "hash", secret=SECRET)
    assert mask_value(42, "hash", secret=SECRET) == mask_value("42", "hash", secret=SECRET)  # by text form


def test_hash_cannot_be_reversed_with_a_dictionary_without_the_secret():
    # The reference's unsalted SHA-256 prefix of a low-entropy value is found by hashing candidates.
    candidates = [f"555-01{i:02d}" for i in range(100)]
    unkeyed = {hashlib.sha256(c.encode()).hexdigest()[:16]: c for c in candidates}
    assert unkeyed[hashlib.sha256(b"555-0142").hexdigest()[:16]] == "555-0142"
    assert mask_value("555-0142", "hash", secret=SECRET) not in unkeyed


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=5, max_size=60))
def test_partial_never_returns_a_longer_string_unchanged(text):
    assert mask_value(text, "partial", secret=SECRET) != text


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(min_size=1), st.integers(), st.floats(allow_nan=False)))
def test_hash_always_gives_sixteen_hex_characters(value):
    assert re.fullmatch(r"[0-9a-f]{16}", mask_value(value, "hash", secret=SECRET))
