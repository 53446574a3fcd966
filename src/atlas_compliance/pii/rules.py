"""PII vocabulary, value validators, column-name rules and type families.

Everything here is pure: constants and functions of their arguments. ``detection`` combines them.

>>> tokens("customerEmail_2"), tokens("user_ip_address"), tokens("hotel")
(['customer', 'email'], ['user', 'ip', 'address'], ['hotel'])
>>> name_category("patient_dob").category, name_category("basin")
('date_of_birth', None)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from statistics import median

PII_CATEGORIES: tuple[str, ...] = ("email", "phone", "ssn", "credit_card", "name", "ip_address", "date_of_birth",
                                   "address", "passport", "driver_license", "other")
CONFIDENCE_LEVELS = ("high", "medium", "low")
MASKING_STRATEGIES = ("full", "partial", "hash", "redact")
# The reference's method names; "regex" means "decided by the sampled values".
DETECTION_METHODS = ("regex", "column_name", "type_heuristic")

# Identifiers that enable impersonation or fraud are hidden entirely. A birth date's partial mask
# would still show the century and the day, so it is redacted. IP addresses are hashed: analysts
# can still count and join distinct clients. The rest keeps a recognisable hint.
DEFAULT_MASKING: dict[str, str] = {
    "ssn": "full", "credit_card": "full", "passport": "full", "driver_license": "full",
    "date_of_birth": "redact", "ip_address": "hash",
    "email": "partial", "phone": "partial", "name": "partial", "address": "partial", "other": "partial",
}

# Minimum share of the non-empty samples that must be valid for a value-based detection. Email is
# the most specific format (a value that passes is an address), so half a column suffices; passport
# and driver-license formats are generic codes, so they need more (and a hinting column name).
MIN_SHARE: dict[str, float] = {
    "email": 0.5, "ssn": 0.6, "credit_card": 0.6, "phone": 0.6, "ip_address": 0.6, "date_of_birth": 0.6,
    "passport": 0.7, "driver_license": 0.7,
}
# Equal shares are settled by specificity: the earlier category's format is the harder to hit by chance.
SPECIFICITY: tuple[str, ...] = ("ssn", "credit_card", "email", "ip_address", "passport", "driver_license",
                                "phone", "date_of_birth")

# Confidence of value-based detections (see ``detection.value_confidence``).
MIN_SAMPLES_FOR_HIGH = 10
MIN_SHARE_FOR_HIGH = 0.8
MIN_SAMPLES_FOR_MEDIUM = 3

# --- sample values ---------------------------------------------------------------------------------


def sample_texts(values: Iterable[object]) -> list[str]:
    """The non-empty samples as stripped text.

    ``None``, empty and whitespace-only values are dropped, binary values (bytes, bytearray,
    memoryview) skipped; list/tuple/set values (array columns) contribute their elements.

    >>> sample_texts([None, "", "  a@b.co ", b"\\x00", 12, ["x", None], True])
    ['a@b.co', '12', 'x', 'True']
    """
    texts: list[str] = []
    for value in values:
        items = value if isinstance(value, list | tuple | set | frozenset) else (value,)
        for item in items:
            text = _as_text(item)
            if text:
                texts.append(text)
    return texts


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        return str(value).strip()
    except Exception:  # a driver object whose __str__ fails is no evidence either way
        return None


# --- value validators ----------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.ASCII)
_SSN_DASHED = re.compile(r"(\d{3})-(\d{2})-(\d{4})", re.ASCII)
_SSN_PLAIN = re.compile(r"(\d{3})(\d{2})(\d{4})", re.ASCII)
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}", re.ASCII)
# E.164 (+ and digits), or: optional +country code, optional (area), then digit groups with single separators.
_PHONE = re.compile(r"\+\d{8,15}|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,8}(?:[ .-]\d{1,8}){0,5}", re.ASCII)
_THOUSANDS = re.compile(r"\d{1,3}(?:[.,]\d{3})+", re.ASCII)
_ISO_DATE = re.compile(r"(\d{4})[-/](\d{2})[-/](\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00(?::?00)?)?)?", re.ASCII)
_PASSPORT = re.compile(r"[A-Z]{1,2}\d{6,9}", re.ASCII)
_DRIVER_LICENSE = re.compile(r"[A-Z]\d{3,}-\d{3,}-\d{3,}|[A-Z]\d{7,12}", re.ASCII)


def is_email(v: str) -> bool:
    """A plain ``local@domain.tld`` address (no display names, no quoted local parts)."""
    return len(v) <= 254 and _EMAIL.fullmatch(v) is not None and len(v.split("@", 1)[0]) <= 64


def ssn_parts_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000, 666 or 900–999; group not 00; serial not 0000."""
    return area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"


def is_ssn(v: str, *, plain_ok: bool = False) -> bool:
    """``ddd-dd-dddd`` with valid parts; nine bare digits only when ``plain_ok`` (an SSN-like name).

    >>> is_ssn("123-45-6789"), is_ssn("666-45-6789"), is_ssn("123456789"), is_ssn("123456789", plain_ok=True)
    (True, False, False, True)
    """
    m = _SSN_DASHED.fullmatch(v) or (_SSN_PLAIN.fullmatch(v) if plain_ok else None)
    return m is not None and ssn_parts_valid(*m.groups())


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_credit_card(v: str) -> bool:
    """13–19 digits (single spaces or dashes allowed) of a card brand (first digit 2–6), Luhn-valid,
    and not one digit repeated.

    >>> is_credit_card("4111 1111 1111 1111"), is_credit_card("4111 1111 1111 1112")
    (True, False)
    """
    if not _CARD.fullmatch(v):
        return False
    digits = v.replace(" ", "").replace("-", "")
    return digits[0] in "23456" and len(set(digits)) > 1 and luhn_ok(digits)


def is_ip(v: str) -> bool:
    """An IPv4 or IPv6 address (compressed forms, zone ids and an ``/prefix`` as ``inet`` prints it)."""
    if ":" not in v and v.count(".") != 3:
        return False
    try:
        ipaddress.ip_interface(v)
    except ValueError:
        return False
    return True


def is_phone(v: str, *, plain_ok: bool = False) -> bool:
    """A phone number as people write one: 10–15 digits with separators, parentheses or a ``+``
    prefix, or a 7-digit local ``555-1234``. Bare digit strings count only when ``plain_ok`` (a
    phone-like name). SSNs, card numbers, IPs, dates and thousands-grouped amounts are not phones.

    >>> is_phone("(555) 201-1000"), is_phone("+44 20 7946 0958"), is_phone("5552011000")
    (True, True, False)
    """
    if v.isascii() and v.isdigit():
        return plain_ok and 10 <= len(v) <= 15
    if not _PHONE.fullmatch(v):
        return False
    digits = re.sub(r"\D", "", v)
    if is_ssn(v) or is_credit_card(v) or is_ip(v) or _ISO_DATE.fullmatch(v) or _THOUSANDS.fullmatch(v):
        return False
    if len(digits) == 7:
        return re.fullmatch(r"\d{3}[-.]\d{4}", v) is not None
    return 10 <= len(digits) <= 15


def parse_date(v: str) -> date | None:
    """``YYYY-MM-DD`` or ``YYYY/MM/DD``, optionally at midnight (how birth dates stored as timestamps
    print); event timestamps carry a time of day and are not dates of birth."""
    m = _ISO_DATE.fullmatch(v)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def is_past_date(v: str, today: date) -> bool:
    """A date since 1900 that is not in the future: the shape of any date of birth."""
    d = parse_date(v)
    return d is not None and d.year >= 1900 and d <= today


def plausible_birth_dates(values: Iterable[str], today: date) -> bool:
    """Without a birth-like column name, dates pass for birth dates only if they look like a
    population's: at least 5, 90% of them at least a year old, a median age of 5–100 years and a
    spread of at least 10 years (order, visit and due dates cluster within a few years)."""
    ages = [(today - d).days / 365.25 for v in values if (d := parse_date(v)) is not None]
    if len(ages) < 5:
        return False
    old_enough = sum(1 for a in ages if a >= 1) / len(ages)
    return old_enough >= 0.9 and 5 <= median(ages) <= 100 and max(ages) - min(ages) >= 10


def is_passport(v: str) -> bool:
    """1–2 capital letters and 6–9 digits (the reference's format; checked only under a passport name)."""
    return _PASSPORT.fullmatch(v) is not None


def is_driver_license(v: str) -> bool:
    """``D123-456-789`` or a letter and 7–12 digits (checked only under a driver-license name)."""
    return _DRIVER_LICENSE.fullmatch(v) is not None


# --- column names ----------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def tokens(name: str) -> list[str]:
    """Lowercase words of a column name: ``_``, ``-``, spaces, dots, digits and camelCase are
    boundaries (``ipv4`` reads as ``ip``).

    >>> tokens("userIPAddress"), tokens("client_ipv4"), tokens("e-mail2")
    (['user', 'ip', 'address'], ['client', 'ip'], ['e', 'mail'])
    """
    words = re.split(r"[^a-z]+", _CAMEL.sub(" ", name).lower())
    return ["ip" if w == "ipv" else w for w in words if w]


@dataclass(frozen=True)
class NameMatch:
    """A column name's category and the words that decided it (for the detection's reason)."""

    category: str
    words: str


# Words that make a name describe *about* a value rather than hold it: ``email_verified``,
# ``phone_type``, ``address_state``, ``passport_expiry``, ``ip_count``.
DESCRIPTOR_WORDS = frozenset({
    "verified", "verification", "confirmed", "confirmation", "valid", "validated", "count", "counts", "status",
    "type", "kind", "flag", "enabled", "disabled", "opt", "optin", "optout", "consent", "sent", "bounced",
    "bounce", "domain", "provider", "format", "hash", "hashed", "length", "changed", "updated", "created",
    "at", "is", "has", "country", "state", "expiry", "expiration", "expires", "issued", "template", "policy",
    "preference", "preferences", "visible", "visibility", "required", "pattern", "regex", "label",
})
# A trailing key word makes ``address_id`` or ``email_id`` a foreign key, not the value itself.
KEY_WORDS = frozenset({"id", "ids", "key", "fk", "uuid", "ref", "pk"})
# ``mobile_app_version``, ``host_address``: technical, not personal.
TECHNICAL_WORDS = frozenset({
    "app", "version", "os", "device", "platform", "browser", "server", "host", "hostname", "config", "setting",
    "settings", "mac", "web", "url", "uri", "wallet", "contract", "memory", "hardware", "node", "network",
    "bluetooth", "ethereum", "bitcoin", "btc", "eth", "gateway", "proxy", "router", "smtp", "file", "archive",
    "compressed", "compression", "path", "site", "api", "endpoint", "webhook", "build", "release", "revision",
})
PERSON_WORDS = frozenset({
    "customer", "patient", "employee", "member", "contact", "person", "client", "guardian", "holder",
    "cardholder", "policyholder", "owner", "beneficiary", "subscriber", "applicant", "student", "parent",
    "spouse", "physician", "doctor", "nurse", "recipient", "sender", "emergency", "mother", "father",
    "insured", "tenant", "resident", "billing", "shipping", "legal", "maiden", "caregiver", "donor",
    "candidate", "passenger", "traveler", "traveller", "buyer", "author", "signer", "witness",
})
NAME_PARTS = frozenset({"first", "last", "full", "given", "family", "middle", "display", "maiden", "legal"})
# Column names that are one word for the whole concept.
_ONE_WORD: dict[str, str] = {
    "email": "email", "emails": "email", "emailaddress": "email", "emailaddr": "email",
    "phone": "phone", "phones": "phone", "telephone": "phone", "phonenumber": "phone", "phoneno": "phone",
    "mobile": "phone", "mobilephone": "phone", "mobilenumber": "phone", "cellphone": "phone", "fax": "phone",
    "msisdn": "phone", "homephone": "phone", "workphone": "phone",
    "ssn": "ssn", "socialsecurity": "ssn", "taxid": "ssn", "nationalid": "ssn", "taxpayerid": "ssn",
    "creditcard": "credit_card", "cardnumber": "credit_card", "ccnumber": "credit_card", "ccnum": "credit_card",
    "cvv": "credit_card", "cvc": "credit_card",
    "firstname": "name", "lastname": "name", "fullname": "name", "surname": "name", "givenname": "name",
    "familyname": "name", "middlename": "name", "displayname": "name", "maidenname": "name",
    "ipaddress": "ip_address", "ipaddr": "ip_address",
    "dob": "date_of_birth", "birthdate": "date_of_birth", "birthday": "date_of_birth",
    "dateofbirth": "date_of_birth",
    "zip": "address", "zipcode": "address", "postcode": "address", "postalcode": "address",
    "streetaddress": "address", "street": "address", "address": "address",
    "passport": "passport", "passportnumber": "passport", "passportno": "passport",
    "driverslicense": "driver_license", "driverlicense": "driver_license", "dln": "driver_license",
}
_NUMBER_WORDS = frozenset({"number", "num", "no", "nr", "nbr"})
_IP_CONTEXT = frozenset({"address", "addr", "client", "remote", "source", "src", "user", "login", "last",
                         "origin", "originating", "request", "visitor", "customer", "signup", "real", "forwarded"})


def _has_seq(words: list[str], *seq: str) -> bool:
    n = len(seq)
    return any(tuple(words[i:i + n]) == seq for i in range(len(words) - n + 1))


def _raw_category(words: list[str]) -> NameMatch | None:
    s = set(words)
    # Most specific first: "email_address" is an email and "ip_address" an IP, not postal addresses.
    for w in words:
        if _ONE_WORD.get(w) in ("email", "ssn", "credit_card", "passport", "driver_license", "date_of_birth",
                                "ip_address"):
            return NameMatch(_ONE_WORD[w], w)
    if _has_seq(words, "e", "mail") or ("mail" in s and s & {"address", "addr"}):
        return NameMatch("email", "e-mail")
    if _has_seq(words, "social", "security") or _has_seq(words, "social", "insurance"):
        return NameMatch("ssn", "social security" if "security" in s else "social insurance")
    for first in ("national", "tax", "taxpayer"):
        if _has_seq(words, first, "id"):
            return NameMatch("ssn", f"{first} id")
    # Canada's SIN: only as the whole name, next to a number word or a person ("employee_sin").
    if "sin" in s and (len(words) == 1 or s & _NUMBER_WORDS or s & PERSON_WORDS):
        return NameMatch("ssn", "sin")
    if _has_seq(words, "credit", "card") or _has_seq(words, "debit", "card") \
            or (s & {"card", "cc"} and s & (_NUMBER_WORDS | {"pan"})) \
            or _has_seq(words, "primary", "account", "number"):
        return NameMatch("credit_card", "card number")
    if s & {"driver", "drivers", "driving"} and s & {"license", "licence", "lic", "licenses", "licences"}:
        return NameMatch("driver_license", "driver license")
    if "dl" in s and s & _NUMBER_WORDS:
        return NameMatch("driver_license", "dl number")
    if _has_seq(words, "date", "of", "birth") or _has_seq(words, "birth", "date") \
            or _has_seq(words, "birth", "dt") or _has_seq(words, "birth", "day"):
        return NameMatch("date_of_birth", "birth date")
    if "ip" in s and (len(words) == 1 or s & _IP_CONTEXT):
        return NameMatch("ip_address", " ".join(w for w in words if w == "ip" or w in _IP_CONTEXT))
    for w in words:
        if _ONE_WORD.get(w) == "phone":
            return NameMatch("phone", w)
    # "cell" and "tel" are short words: whole tokens only, and only in short names (not cell_count).
    if "cell" in s and (len(words) == 1 or s & (_NUMBER_WORDS | PERSON_WORDS)):
        return NameMatch("phone", "cell")
    if "tel" in s and (len(words) <= 2 or s & _NUMBER_WORDS):
        return NameMatch("phone", "tel")
    for w in words:
        if _ONE_WORD.get(w) == "name":
            return NameMatch("name", w)
    if "name" in s or "names" in s:
        qualifiers = [w for w in words if w in NAME_PARTS or w in PERSON_WORDS]
        if qualifiers:
            return NameMatch("name", " ".join([*qualifiers, "name"]))
    if _has_seq(words, "postal", "code") or _has_seq(words, "post", "code"):
        return NameMatch("address", "postal code")
    for w in words:
        if _ONE_WORD.get(w) == "address":
            return NameMatch("address", w)
    if "addr" in s and len(words) > 1:
        return NameMatch("address", "addr")
    return None


def name_category(name: str) -> NameMatch | None:
    """The PII category a column's name alone points to, or None.

    Matching is on whole words, so ``hotel``, ``intel``, ``timespan``, ``basin`` and
    ``cancellation`` match nothing. Names are ambiguous on their own when they are: a plain
    ``name`` (products, tags), ``username`` (an account handle), ``city``/``state``/``country`` (not
    identifying alone); a value's descriptor (``email_verified``, ``phone_type``); a key
    (``address_id``); or technical (``mac_address``, ``mobile_app_version``). ``zip`` and postal
    codes are addresses: a quasi-identifier under HIPAA.

    >>> [getattr(name_category(n), "category", None) for n in ("user_ssn", "zip", "name", "email_verified")]
    ['ssn', 'address', None, None]
    """
    words = tokens(name)
    if not words:
        return None
    found = _raw_category(words)
    if found is None:
        return None
    s = set(words)
    if s & TECHNICAL_WORDS or s & DESCRIPTOR_WORDS:
        return None
    identifier = found.category in ("ssn", "passport", "driver_license")
    if words[-1] in KEY_WORDS and not identifier:
        return None
    return found


_BIRTH_WORDS = frozenset({"birth", "born", "dob", "birthday", "birthdate", "dateofbirth"})
# Names of event dates: values in such columns are never read as dates of birth.
EVENT_WORDS = frozenset({
    "created", "updated", "modified", "deleted", "visit", "visited", "admitted", "admission", "admit",
    "discharged", "discharge", "order", "ordered", "invoice", "invoiced", "payment", "paid", "due", "start",
    "started", "end", "ended", "expires", "expiry", "expiration", "scheduled", "issued", "submitted",
    "shipped", "ship", "delivered", "hired", "hire", "login", "logout", "seen", "event", "collected",
    "prescribed", "signup", "registered", "registration", "published", "released", "founded", "opened",
    "closed", "effective", "posted", "received", "purchase", "purchased", "renewal", "renewed", "joined",
    "terminated", "termination", "cancelled", "canceled", "completed", "approved", "service", "transaction",
    "booking", "booked", "appointment", "death", "died", "deceased", "since", "until", "from", "to",
    "valid", "last", "next", "first", "at", "on",
})


def is_birth_like(name: str) -> bool:
    """Whether a column name speaks of birth (``dob``, ``born_on``, ``patientBirthDate``)."""
    return bool(set(tokens(name)) & _BIRTH_WORDS)


def is_event_like(name: str) -> bool:
    """Whether a column name speaks of an event (``created_at``, ``visit_date``, ``due_on``)."""
    return bool(set(tokens(name)) & EVENT_WORDS)


def is_version_like(name: str) -> bool:
    """Dotted quads in ``version`` or ``build`` columns are versions, not IPv4 addresses."""
    return bool(set(tokens(name)) & {"version", "ver", "build", "release", "revision", "oid", "semver"})


# --- column types ----------------------------------------------------------------------------------

_NUMERIC_TYPE = re.compile(
    r"(?:u?int\d*|integer|bigint|smallint|tinyint|mediumint|numeric|decimal|dec|real|double|float\d*|number"
    r"|(?:big|small)?serial\d*|money|smallmoney|year)\b")
_DATE_TYPE = re.compile(r"(?:date|datetime\d*|smalldatetime|datetimeoffset|timestamp(?:tz)?)\b")
_BINARY_TYPE = re.compile(r"(?:bytea|(?:tiny|medium|long)?blob|(?:var)?binary|image|raw|long raw)\b")


def type_family(data_type: str | None) -> str:
    """The family of a column's SQL type: ``text`` (also unknown), ``number``, ``boolean``, ``date``,
    ``inet``, ``document`` (json), ``uuid`` or ``binary``.

    >>> [type_family(t) for t in ("varchar(80)", "BIGINT", "tinyint(1)", "timestamptz", "cidr", None)]
    ['text', 'number', 'boolean', 'date', 'inet', 'text']
    """
    t = (data_type or "").strip().lower()
    if t.startswith(("bool", "bit")) or t == "tinyint(1)":
        return "boolean"
    if t.startswith(("inet", "cidr")):
        return "inet"
    if t.startswith(("json", "xml", "hstore")):
        return "document"
    if t.startswith(("uuid", "uniqueidentifier")):
        return "uuid"
    if _BINARY_TYPE.match(t):
        return "binary"
    if _DATE_TYPE.match(t):
        return "date"
    if _NUMERIC_TYPE.match(t):
        return "number"
    return "text"
