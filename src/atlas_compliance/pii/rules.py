"""PII categories, value validators and column-name rules (pure data and functions)."""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime

PII_CATEGORIES: tuple[str, ...] = ("email", "phone", "ssn", "credit_card", "name", "ip_address", "date_of_birth",
                                   "address", "passport", "driver_license", "other")
CONFIDENCE_LEVELS = ("high", "medium", "low")
MASKING_STRATEGIES = ("full", "partial", "hash", "redact")
DETECTION_METHODS = ("regex", "column_name", "type_heuristic")

# Identifiers that allow impersonation or fraud are fully masked by default; the rest keep a hint.
DEFAULT_MASKING = {"ssn": "full", "credit_card": "full", "passport": "full", "driver_license": "full",
                   "date_of_birth": "redact", "ip_address": "hash", "email": "partial", "phone": "partial",
                   "name": "partial", "address": "partial", "other": "partial"}

# Minimum share of non-empty samples that must be valid for a value-based detection.
VALUE_THRESHOLDS = {"email": 0.6, "ssn": 0.6, "credit_card": 0.6, "phone": 0.6, "ip_address": 0.6,
                    "date_of_birth": 0.6, "passport": 0.7, "driver_license": 0.7}
# Tie-break between equal scores: the more specific validator wins.
SPECIFICITY = ("ssn", "credit_card", "email", "ip_address", "passport", "driver_license", "phone", "date_of_birth")

# --- values --------------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_SSN = re.compile(r"^(\d{3})-(\d{2})-(\d{4})$")
_SSN_PLAIN = re.compile(r"^(\d{3})(\d{2})(\d{4})$")
_PHONE_CHARS = re.compile(r"^\+?[\d\s().-]+$")
_ISO_DATE = re.compile(r"^(\d{4})[-/](\d{2})[-/](\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?)?$")
_PASSPORT = re.compile(r"^[A-Z]{1,2}\d{6,9}$")
_DRIVER_LICENSE = re.compile(r"^[A-Z]\d{3,}-\d{3,}-\d{3,}$|^[A-Z]\d{7,12}$")


def is_email(v: str) -> bool:
    return len(v) <= 254 and _EMAIL.match(v) is not None


def _ssn_parts_valid(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def is_ssn(v: str, *, plain_ok: bool = False) -> bool:
    """US SSN: ddd-dd-dddd with a real area (not 000, 666, 900–999), group (not 00), serial (not 0000)."""
    m = _SSN.match(v) or (_SSN_PLAIN.match(v) if plain_ok else None)
    return m is not None and _ssn_parts_valid(*m.groups())


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_credit_card(v: str) -> bool:
    """13–19 digits (spaces or dashes allowed), Luhn-valid, not one repeated digit."""
    if not re.fullmatch(r"\d(?:[ -]?\d){12,18}", v):
        return False
    digits = re.sub(r"\D", "", v)
    return len(set(digits)) > 1 and luhn_ok(digits)


def is_phone(v: str) -> bool:
    """A formatted phone number: separators or a + prefix, 10–15 digits (or 7 with a dash)."""
    if not _PHONE_CHARS.match(v) or is_ssn(v) or is_credit_card(v) or _ISO_DATE.match(v):
        return False
    digits = re.sub(r"\D", "", v)
    formatted = v.startswith("+") or bool(re.search(r"[\s().-]", v))
    if not formatted:
        return False
    if len(digits) == 7:
        return bool(re.fullmatch(r"\d{3}-\d{4}", v))
    return 10 <= len(digits) <= 15


def is_ip(v: str) -> bool:
    if not (("." in v and v.count(".") == 3) or ":" in v):
        return False
    try:
        ipaddress.ip_address(v)
        return True
    except ValueError:
        return False


def parse_date(v: str) -> date | None:
    m = _ISO_DATE.match(v)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def is_birth_date(v: str, today: date) -> bool:
    d = parse_date(v)
    return d is not None and 1900 <= d.year and d <= today


def is_passport(v: str) -> bool:
    return _PASSPORT.match(v) is not None


def is_driver_license(v: str) -> bool:
    return _DRIVER_LICENSE.match(v) is not None


def as_text(value: object) -> str | None:
    """Sample value to text; None, empty and binary values are skipped."""
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, datetime | date):
        text = value.isoformat()
    else:
        text = str(value)
    text = text.strip()
    return text or None


# --- names ---------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def tokens(name: str) -> list[str]:
    """Words of a column name: `_`, `-`, spaces, dots, digits and camelCase are boundaries.

    >>> tokens("customerEmail_2"), tokens("user_ip_address"), tokens("hotel")
    (['customer', 'email'], ['user', 'ip', 'address'], ['hotel'])
    """
    spaced = _CAMEL.sub(" ", name)
    return [t for t in re.split(r"[^A-Za-z]+", spaced.lower()) if t]


PERSON_WORDS = {"customer", "patient", "user", "employee", "member", "contact", "person", "client", "guardian",
                "holder", "cardholder", "owner", "beneficiary", "subscriber", "applicant", "student", "parent",
                "spouse", "physician", "doctor", "nurse", "provider", "recipient", "sender", "emergency"}
EVENT_WORDS = {"created", "updated", "modified", "deleted", "visit", "admitted", "admission", "discharged",
               "order", "ordered", "invoice", "invoiced", "payment", "paid", "due", "start", "end", "expires",
               "expiry", "expiration", "scheduled", "issued", "submitted", "shipped", "hired", "login", "logout",
               "last", "first", "seen", "event", "at", "on", "collected", "prescribed", "signup", "registered"}
_NAME_PARTS = {"first", "last", "full", "given", "family", "middle", "display", "maiden", "legal", "nick"}
_JOINED = {"firstname": "name", "lastname": "name", "fullname": "name", "surname": "name", "givenname": "name",
           "familyname": "name", "middlename": "name", "displayname": "name", "emailaddress": "email",
           "email": "email", "phonenumber": "phone", "telephone": "phone", "cellphone": "phone", "ssn": "ssn",
           "dob": "date_of_birth", "birthdate": "date_of_birth", "birthday": "date_of_birth",
           "ipaddress": "ip_address", "ipaddr": "ip_address", "zipcode": "address", "postcode": "address",
           "postalcode": "address", "passport": "passport", "creditcard": "credit_card", "cardnumber": "credit_card",
           "ccnumber": "credit_card", "taxid": "ssn", "nationalid": "ssn"}


def _has_seq(words: list[str], *seq: str) -> bool:
    n = len(seq)
    return any(tuple(words[i:i + n]) == seq for i in range(len(words) - n + 1))


def name_category(name: str) -> tuple[str, str] | None:
    """(category, the words that matched) for a column name, or None."""
    words = tokens(name)
    if not words:
        return None
    for w in words:
        if w in _JOINED:
            return _JOINED[w], w
    s = set(words)
    if _has_seq(words, "e", "mail"):
        return "email", "e mail"
    if "ssn" in s or _has_seq(words, "social", "security") or "sin" in s and len(words) <= 3:
        return "ssn", "ssn" if "ssn" in s else ("social security" if "social" in s else "sin")
    if _has_seq(words, "national", "id") or _has_seq(words, "tax", "id"):
        return "ssn", "national/tax id"
    if _has_seq(words, "credit", "card") or (("card" in s or "cc" in s) and s & {"number", "num", "no", "pan"}) \
            or ("pan" in s and "card" in s):
        return "credit_card", "card number"
    if "passport" in s:
        return "passport", "passport"
    if (s & {"driver", "drivers", "driving"} and s & {"license", "licence", "lic"}) or (
            "dl" in s and s & {"number", "num", "no"}):
        return "driver_license", "driver license"
    if "dob" in s or _has_seq(words, "date", "of", "birth") or _has_seq(words, "birth", "date") or \
            "birthday" in s or _has_seq(words, "birth", "dt"):
        return "date_of_birth", "birth date"
    if "ip" in s and (s & {"address", "addr"} or s & {"client", "remote", "source", "src", "user", "login", "last"}
                      or words == ["ip"]):
        return "ip_address", "ip address"
    if s & {"phone", "telephone", "mobile", "fax"} or ("cell" in s and (len(words) == 1 or s & {"number", "no"})) \
            or ("tel" in s and len(words) <= 2):
        return "phone", next(w for w in words if w in {"phone", "telephone", "mobile", "fax", "cell", "tel"})
    if "name" in s and (s & _NAME_PARTS or s & PERSON_WORDS):
        return "name", " ".join(w for w in words if w in _NAME_PARTS | PERSON_WORDS | {"name"})
    if "surname" in s:
        return "name", "surname"
    if "zip" in s or _has_seq(words, "postal", "code") or _has_seq(words, "post", "code"):
        return "address", "zip/postal code"
    if ("address" in s or "street" in s or ("addr" in s and len(words) > 1)) and not s & {"ip", "email", "mac",
                                                                                         "web", "url", "wallet"}:
        return "address", "address" if "address" in s else ("street" if "street" in s else "addr")
    return None


def birth_like(name: str) -> bool:
    s = set(tokens(name))
    return bool(s & {"birth", "born", "dob", "birthday", "birthdate"})


def event_like(name: str) -> bool:
    return bool(set(tokens(name)) & EVENT_WORDS)
