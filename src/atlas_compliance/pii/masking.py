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


# --- examples in a detection's evidence ------------------------------------------------------------

HIDDEN_EXAMPLE = {"full": "***", "redact": "[REDACTED]", "hash": "[HASHED]"}
_STREET_TYPE = re.compile(r"\b([A-Za-z]{2,12}\.?)$")
_ZIP = re.compile(r"(\d{3})\d{2}(?:-\d{4})?", re.ASCII)


def example_mask(value: str, category: str, strategy: str) -> str:
    """How one sampled value is shown in a detection's evidence: masked by its category's strategy,
    never revealing more than that strategy would.

    ``full``, ``redact`` and ``hash`` show no character of the value (``***``, ``[REDACTED]``,
    ``[HASHED]``: a hash of a birth date or an IP address is not evidence a reviewer can read).
    ``partial`` shows a hint that depends on the category: an email's first character and domain, a
    phone's last four digits, a name's initials, a ZIP code's first three digits (what HIPAA's safe
    harbor allows) or a street's type, a SWIFT/BIC code's bank part; anything else shows ``***``.

    >>> example_mask("alice@example.com", "email", "partial"), example_mask("(555) 201-1000", "phone", "partial")
    ('a***@example.com', '***-***-1000')
    >>> example_mask("Maria Garcia", "name", "partial"), example_mask("10.0.0.1", "ip_address", "hash")
    ('M*** G***', '[HASHED]')
    """
    if strategy in HIDDEN_EXAMPLE:
        return HIDDEN_EXAMPLE[strategy]
    text = str(value).strip()
    if category == "email":
        email = _EMAIL.fullmatch(text)
        return f"{email.group(1)[0]}***@{email.group(2)}" if email else "***"
    if category == "phone":
        digits = re.sub(r"\D", "", text)
        return f"***-***-{digits[-4:]}" if len(digits) >= 10 else "***"
    if category == "name":
        initials = [w[0].upper() for w in text.replace(",", " ").split() if w[:1].isalpha()][:2]
        return " ".join(f"{i}***" for i in initials) or "***"
    if category == "address":
        zip_code = _ZIP.fullmatch(text)
        if zip_code:
            return f"{zip_code.group(1)}**"
        street = _STREET_TYPE.search(text) if any(ch.isdigit() for ch in text) else None
        return f"*** {street.group(1)}" if street else "***"
    if category == "swift_bic" and len(text) in (8, 11):
        return text[:4] + "*" * (len(text) - 4)
    return "***"
