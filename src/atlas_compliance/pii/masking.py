"""Masking strategies: full, partial, hash (keyed HMAC) and redact.

>>> partial_mask("alice@example.com"), partial_mask("123-45-6789"), partial_mask("+1 555 123 4567")
('a***@example.com', '***-**-6789', '555-***-4567')
"""

from __future__ import annotations

import hashlib
import hmac
import re

_EMAIL = re.compile(r"^([^@\s]+)@([^@\s]+\.[^@\s]+)$")
_SSN = re.compile(r"^\d{3}-\d{2}-(\d{4})$")
_CARD = re.compile(r"^\d(?:[ -]?\d){12,18}$")


def partial_mask(value: str) -> str:
    """Keep just enough to recognise a value: its format decides (not the column's category)."""
    text = str(value).strip()
    email = _EMAIL.match(text)
    if email:
        return f"{email.group(1)[0]}***@{email.group(2)}"
    ssn = _SSN.match(text)
    if ssn:
        return f"***-**-{ssn.group(1)}"
    digits = re.sub(r"\D", "", text)
    if _CARD.match(text) and 13 <= len(digits) <= 19 and not re.search(r"[()+.]", text):
        return f"****-****-****-{digits[-4:]}"
    if len(digits) >= 10 and re.fullmatch(r"[\d\s().+-]+", text):
        national = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
        return f"{national[:3]}-***-{national[-4:]}"
    if len(text) <= 4:
        return "***"
    return f"{text[:2]}***{text[-2:]}"


def hmac_digest(value: str, secret: bytes) -> str:
    """16 hex characters of HMAC-SHA256 under the installation's secret: stable for joins, and not
    reversible by hashing a dictionary of likely values without the secret."""
    return hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def mask_value(value: object, strategy: str, *, secret: bytes) -> object:
    """Mask one value with ``strategy``; ``None`` and the empty string pass through unchanged."""
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
    if strategy == "partial":
        return partial_mask(text)
    raise ValueError(f"unknown masking strategy {strategy!r}: use full, partial, hash or redact")
