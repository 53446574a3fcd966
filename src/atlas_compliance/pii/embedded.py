"""Personal data inside structured text: JSON documents and free text.

A value that is a JSON object or array is walked, and every string in it is checked whole (an
``email`` key's value) and as text; any other value of some length is read as free text, and the
emails, formatted phone numbers, SSNs, Luhn-valid card numbers, IP addresses and IBANs written in it
are found. Each find says where it was: the JSON path of the string (``contact.emails[0]``) or
``free text``. Pure, no I/O.

>>> finds('{"name": "Ann", "contact": {"email": "ann@example.com"}}')
[Find(category='email', where='JSON at contact.email')]
>>> finds("Call me at (555) 201-1000 or write to bo@mail.example")
[Find(category='phone', where='free text'), Find(category='email', where='free text')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from . import validators

MIN_TEXT_CHARS = 16  # shorter values are codes or words, judged whole
MAX_STRINGS = 200  # strings looked at in one JSON document

_IN_TEXT = (
    ("email", re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.ASCII),
     validators.email),
    ("ssn", re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", re.ASCII), validators.ssn),
    ("credit_card", re.compile(r"(?<![\d-])\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}(?![\d-])", re.ASCII),
     validators.credit_card),
    ("phone", re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d)", re.ASCII),
     validators.phone),
    ("ip_address", re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", re.ASCII), validators.ip_address),
    ("bank_account", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.ASCII),
     validators.bank_account),
)
# Whole JSON strings checked with the column validators that need no column name.
_WHOLE = (("email", validators.email), ("ssn", validators.ssn), ("credit_card", validators.credit_card),
          ("ip_address", validators.ip_address), ("bank_account", validators.bank_account),
          ("national_id", validators.national_id), ("phone", validators.phone))


@dataclass(frozen=True)
class Find:
    """One piece of personal data found inside a value, and where."""

    category: str
    where: str


def looks_structured(text: str) -> bool:
    """JSON (an object or array) or free text long enough to hold a sentence."""
    return text[:1] in "{[" or (len(text) >= MIN_TEXT_CHARS and " " in text)


def finds(text: str) -> list[Find]:
    """The personal data found inside one value, each category once per place, in reading order."""
    found: list[Find] = []
    document = _json(text)
    if document is not None:
        for path, string in _strings(document):
            for category in _whole_or_text(string):
                _add(found, Find(category, f"JSON at {path}" if path else "JSON"))
        return found
    for category in _in_text(text):
        _add(found, Find(category, "free text"))
    return found


def _add(found: list[Find], find: Find) -> None:
    if find not in found:
        found.append(find)


def _json(text: str) -> object | None:
    if text[:1] not in "{[":
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict | list) else None


def _strings(document: object) -> Iterator[tuple[str, str]]:
    """(path, string) of the strings of a JSON document, breadth first, at most ``MAX_STRINGS``."""
    queue: list[tuple[str, object]] = [("", document)]
    seen = 0
    while queue and seen < MAX_STRINGS:
        path, node = queue.pop(0)
        if isinstance(node, dict):
            queue.extend((f"{path}.{key}" if path else str(key), value) for key, value in node.items())
        elif isinstance(node, list):
            queue.extend((f"{path}[{i}]", value) for i, value in enumerate(node))
        elif isinstance(node, str) and node.strip():
            seen += 1
            yield path, node.strip()


def _whole_or_text(string: str) -> list[str]:
    for category, check in _WHOLE:
        if check(string):
            return [category]
    return _in_text(string) if len(string) >= MIN_TEXT_CHARS else []


def _in_text(text: str) -> list[str]:
    """Categories found in free text, in the order they first appear."""
    hits: list[tuple[int, str]] = []
    for category, pattern, check in _IN_TEXT:
        for match in pattern.finditer(text):
            if check(match.group().strip()):
                hits.append((match.start(), category))
                break
    return [category for _, category in sorted(hits)]
