"""Masking strategies for PII values: ``full``, ``partial``, ``hash`` (keyed HMAC) and ``redact``.

>>> partial_mask("alice@example.com"), partial_mask("123-45-6789"), partial_mask("+1 555 123 4567")
('a***@example.com', '***-**-6789', '555-***-4567')
>>> mask_value("123-45-6789", "hash", secret=b"s" * 32) == mask_value("123-45-6789", "hash", secret=b"s" * 32)
True
"""

from __future__ import annotations

import hashlib
import hmac
import re

HASH_HEX_CHARS = 16
MIN_SECRET_BYTES = 16

_EMAIL = re.compile(r"([^@\s]+)@([^@\s]+\.[^@\s]+)", re.ASCII)
_SSN = re.compile(r"\d{3}-\d{2}-(\d{4})", re.ASCII)
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}", re.ASCII)
_PHONE_CHARS = re.compile(r"[\d\s().+-]+", re.ASCII)


def _hint(text: str) -> str:
    email = _EMAIL.fullmatch(text)
    if email:
        return f"{email.group(1)[0]}***@{email.group(2)}"
    ssn = _SSN.fullmatch(text)
    if ssn:
        return f"***-**-{ssn.group(1)}"
    if _CARD.fullmatch(text):
        digits = re.sub(r"\D", "", text)
        return f"****-****-****-{digits[-4:]}"
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 10 and _PHONE_CHARS.fullmatch(text):
        # A North American number with its country code (+1 555 123 4567, 1-555-123-4567) shows the
        # area code, not "155" as the reference did.
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        return f"{digits[:3]}-***-{digits[-4:]}"
    if len(text) <= 4:
        return "***"
    return f"{text[:2]}***{text[-2:]}"


def partial_mask(value: str) -> str:
    """A hint that lets a person recognise a value without revealing it; the value's own format
    decides, not the column's category (the reference's formats):

    - email: first character of the local part, ``***@`` and the domain (``a***@example.com``);
    - SSN ``ddd-dd-dddd``: ``***-**-`` and the serial (``***-**-6789``);
    - 13–19 digits with optional space/dash separators: ``****-****-****-`` and the last 4;
    - a phone-like value with at least 10 digits: first 3 digits, ``-***-``, last 4 (for +1
      numbers, of the 10 national digits);
    - anything else: ``***`` up to 4 characters, else first 2, ``***``, last 2.

    A value longer than 4 characters is never returned unchanged: one that already looks masked
    (``ab***yz``) becomes ``***``.

    >>> partial_mask("4111 1111 1111 1111"), partial_mask("Hello World"), partial_mask("abcd")
    ('****-****-****-1111', 'He***ld', '***')
    """
    text = str(value).strip()
    masked = _hint(text)
    return "***" if masked == text else masked


def hmac_digest(text: str, secret: bytes) -> str:
    """The first 16 hex characters (64 bits) of HMAC-SHA256 of ``text`` (UTF-8) under ``secret``.

    Deterministic for one secret, so masked columns still join and count distinct values; without
    the secret nobody can hash a dictionary of SSNs, phones or birth dates to reverse it, which an
    unkeyed SHA-256 (the reference's choice) allows in seconds for such low-entropy values.
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the hash strategy needs the installation secret: at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(bytes(secret), text.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]


def mask_value(value: object, strategy: str, *, secret: bytes) -> object:
    """Mask one value with a column's strategy.

    ``None`` and ``""`` pass through unchanged (an absent value reveals nothing); anything else is
    masked through its text form: ``full`` gives ``***``, ``redact`` gives ``[REDACTED]``, ``partial``
    gives :func:`partial_mask`, ``hash`` gives :func:`hmac_digest` under ``secret`` (16 lowercase
    hex characters, no prefix). ``secret`` is only used, and only checked, by ``hash``.

    >>> mask_value("alice@example.com", "partial", secret=b""), mask_value(42, "redact", secret=b"")
    ('a***@example.com', '[REDACTED]')

    Raises:
        ValueError: an unknown strategy, or ``hash`` without a usable secret.
    """
    if strategy not in ("full", "partial", "hash", "redact"):
        raise ValueError(f"unknown masking strategy {strategy!r}: use full, partial, hash or redact")
    if value is None:
        return None
    text = str(value)
    if text == "":
        return text
    if strategy == "full":
        return "***"
    if strategy == "redact":
        return "[REDACTED]"
    if strategy == "hash":
        return hmac_digest(text, secret)
    return partial_mask(text)
