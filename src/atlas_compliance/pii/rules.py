"""Column-name vocabulary, sample handling and SQL type families of PII detection.

Everything here is pure: constants and functions of their arguments. ``validators`` judges values,
``detection`` combines both.

>>> tokens("customerEmail_2"), tokens("user_ip_address"), tokens("hotel")
(['customer', 'email'], ['user', 'ip', 'address'], ['hotel'])
>>> name_category("patient_dob").category, name_category("basin")
('date_of_birth', None)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from statistics import median

from .categories import DEFAULT_MASKING, MASKING_STRATEGIES, PII_CATEGORIES
from .validators import parse_date

__all__ = ["DEFAULT_MASKING", "MASKING_STRATEGIES", "PII_CATEGORIES"]

CONFIDENCE_LEVELS = ("high", "medium", "low")
# The reference's method names; "regex" means "decided by the sampled values".
DETECTION_METHODS = ("regex", "column_name", "type_heuristic")

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
    if isinstance(value, dict):  # a JSON document (psycopg returns jsonb objects as dicts)
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return None
    try:
        return str(value).strip()
    except Exception:  # a driver object whose __str__ fails is no evidence either way
        return None


# --- column names ----------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")


def token_spans(name: str) -> list[tuple[str, int, int]]:
    """(lowercase word, start, end) of each word of a column name, positions in the name itself."""
    return [("ip" if m.group().lower() == "ipv" else m.group().lower(), m.start(), m.end())
            for m in _WORD.finditer(name)]


def tokens(name: str) -> list[str]:
    """Lowercase words of a column name: ``_``, ``-``, spaces, dots, digits and camelCase are
    boundaries (``ipv4`` reads as ``ip``).

    >>> tokens("userIPAddress"), tokens("client_ipv4"), tokens("e-mail2")
    (['user', 'ip', 'address'], ['client', 'ip'], ['e', 'mail'])
    """
    return [word for word, _, _ in token_spans(name)]


@dataclass(frozen=True)
class NameMatch:
    """A column name's category and the words of the name that decided it, as they appear in the
    name (for the detection's reason, which quotes them)."""

    category: str
    words: str


# Words that make a name describe *about* a value rather than hold it: ``email_verified``,
# ``phone_type``, ``address_state``, ``passport_expiry``, ``ip_count``, ``credit_card_amount``.
DESCRIPTOR_WORDS = frozenset({
    "verified", "verification", "confirmed", "confirmation", "valid", "validated", "count", "counts", "status",
    "type", "kind", "flag", "enabled", "disabled", "opt", "optin", "optout", "consent", "sent", "bounced",
    "bounce", "domain", "provider", "format", "hash", "hashed", "length", "changed", "updated", "created",
    "at", "is", "has", "country", "state", "expiry", "expiration", "expires", "expiredate", "issued", "template",
    "policy", "preference", "preferences", "visible", "visibility", "required", "pattern", "regex", "label",
    "amount", "amt", "limit", "balance", "fee", "fees", "income", "debt", "utilization", "ratio", "rate", "score",
    "index", "brand", "family", "issuer", "chip", "web", "inquiries", "history", "mix",
    "suffix", "prefix", "city", "unit", "units", "range", "size", "level", "capita", "per",
})
# A leading count word makes ``num_credit_cards`` or ``Num_Bank_Accounts`` a count, not the value.
_COUNT_PREFIXES = frozenset({"num", "nbr", "cnt", "count", "total", "n", "qty"})
# A trailing key word makes ``address_id`` or ``email_id`` a foreign key, not the value itself.
KEY_WORDS = frozenset({"id", "ids", "key", "fk", "uuid", "ref", "pk"})
# ``mobile_app_version``, ``host_address``: technical, not personal.
TECHNICAL_WORDS = frozenset({
    "app", "version", "os", "device", "platform", "browser", "server", "host", "hostname", "config", "setting",
    "settings", "mac", "url", "uri", "wallet", "contract", "memory", "hardware", "node", "network",
    "bluetooth", "ethereum", "bitcoin", "btc", "eth", "gateway", "proxy", "router", "smtp", "file", "archive",
    "compressed", "compression", "path", "site", "api", "endpoint", "webhook", "build", "release", "revision",
})
PERSON_WORDS = frozenset({
    "customer", "patient", "employee", "member", "contact", "person", "client", "guardian", "holder",
    "cardholder", "policyholder", "owner", "beneficiary", "subscriber", "applicant", "student", "parent",
    "spouse", "physician", "doctor", "nurse", "recipient", "sender", "emergency", "mother", "father",
    "insured", "tenant", "resident", "billing", "shipping", "legal", "maiden", "caregiver", "donor",
    "candidate", "passenger", "traveler", "traveller", "buyer", "author", "signer", "witness", "host",
    "athlete", "coach", "player", "manager", "advisor", "agent", "driver",
})
# "host" stays technical (host_name of a server); a column of hosts' names is found by its values.
NAME_PARTS = frozenset({"first", "last", "full", "given", "family", "middle", "display", "maiden", "legal", "sur",
                        "fname", "lname"})
# Column names that are one word for the whole concept.
_ONE_WORD: dict[str, str] = {
    "email": "email", "emails": "email", "emailaddress": "email", "emailaddr": "email",
    "phone": "phone", "phones": "phone", "telephone": "phone", "phonenumber": "phone", "phoneno": "phone",
    "mobile": "phone", "mobilephone": "phone", "mobilenumber": "phone", "cellphone": "phone", "fax": "phone",
    "msisdn": "phone", "homephone": "phone", "workphone": "phone",
    "ssn": "ssn", "socialsecurity": "ssn", "itin": "ssn",
    "nationalid": "national_id", "taxid": "national_id", "taxpayerid": "national_id", "aadhaar": "national_id",
    "aadhar": "national_id", "nif": "national_id", "nie": "national_id", "dni": "national_id", "nino": "national_id",
    "cpf": "national_id", "curp": "national_id", "bsn": "national_id", "pesel": "national_id", "nhs": "national_id",
    "personnummer": "national_id", "tin": "national_id", "codicefiscale": "national_id",
    "creditcard": "credit_card", "cardnumber": "credit_card", "ccnumber": "credit_card", "ccnum": "credit_card",
    "cvv": "credit_card", "cvc": "credit_card", "ccn": "credit_card",
    "iban": "bank_account", "bankaccount": "bank_account", "routingnumber": "bank_account",
    "swift": "swift_bic", "bic": "swift_bic", "swiftcode": "swift_bic",
    "firstname": "name", "lastname": "name", "fullname": "name", "surname": "name", "givenname": "name",
    "familyname": "name", "middlename": "name", "displayname": "name", "maidenname": "name", "fname": "name",
    "lname": "name", "person": "name", "forename": "name",
    "ipaddress": "ip_address", "ipaddr": "ip_address",
    "dob": "date_of_birth", "birthdate": "date_of_birth", "birthday": "date_of_birth", "dateofbirth": "date_of_birth",
    "age": "age", "birthyear": "age", "yob": "age",
    "gender": "gender", "sex": "gender", "gndr": "gender",
    "zip": "address", "zipcode": "address", "postcode": "address", "postalcode": "address",
    "streetaddress": "address", "street": "address", "address": "address",
    "passport": "passport", "passportnumber": "passport", "passportno": "passport",
    "driverslicense": "driver_license", "driverlicense": "driver_license", "dln": "driver_license",
    "vin": "vehicle_id",
    "mrn": "medical_record_number", "mbi": "health_plan_id", "hicn": "health_plan_id",
    "diagnosis": "diagnosis_code", "dx": "diagnosis_code", "icd": "diagnosis_code",
    "ndc": "medication", "medication": "medication", "medications": "medication", "drug": "medication",
    "medicine": "medication", "rxnorm": "medication", "prescription": "medication",
    "loinc": "lab_result",
}
# Categories of which a name such as ``passport_id`` still holds the value (the id *is* the value).
IDENTIFIER_CATEGORIES = frozenset({"ssn", "national_id", "passport", "driver_license", "vehicle_id",
                                   "medical_record_number", "health_plan_id", "bank_account"})
_NUMBER_WORDS = frozenset({"number", "num", "no", "nr", "nbr"})
_IP_CONTEXT = frozenset({"address", "addr", "client", "remote", "source", "src", "user", "login", "last",
                         "origin", "originating", "request", "visitor", "customer", "signup", "real", "forwarded",
                         "dst", "destination", "dest", "peer"})
_INSURANCE_WORDS = frozenset({"insurance", "insured", "subscriber", "medicare", "medicaid", "payer", "plan",
                              "policyholder", "beneficiary"})
_LAB_TABLE_WORDS = frozenset({"lab", "labs", "laboratory", "observation", "observations", "vitals"})
_LAB_COLUMNS = frozenset({"value", "result", "results", "reading", "measurement", "test"})


def _has_seq(words: list[str], *seq: str) -> bool:
    n = len(seq)
    return any(tuple(words[i:i + n]) == seq for i in range(len(words) - n + 1))


def _raw_category(words: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """(category, the words that decided it) for a name's words, most specific first."""
    s = set(words)
    for w in words:
        category = _ONE_WORD.get(w)
        if category in ("email", "ssn", "national_id", "credit_card", "passport", "driver_license", "vehicle_id",
                        "date_of_birth", "ip_address", "bank_account", "swift_bic", "medical_record_number",
                        "health_plan_id", "diagnosis_code", "medication", "lab_result"):
            return category, (w,)
    if _has_seq(words, "e", "mail") or ("mail" in s and s & {"address", "addr"}):
        return "email", ("e", "mail") if _has_seq(words, "e", "mail") else ("mail",)
    if _has_seq(words, "social", "security"):
        return "ssn", ("social", "security")
    if _has_seq(words, "social", "insurance") or _has_seq(words, "national", "insurance"):
        return "national_id", tuple(w for w in ("social", "national", "insurance") if w in s)
    for first in ("national", "tax", "taxpayer", "personal", "citizen"):
        for second in ("id", "identifier", "identification", "code"):
            if _has_seq(words, first, second):
                return "national_id", (first, second)
    # Canada's SIN: only as the whole name, next to a number word or a person ("employee_sin").
    if "sin" in s and (len(words) == 1 or s & _NUMBER_WORDS or s & PERSON_WORDS):
        return "national_id", ("sin",)
    if "pan" in s and s & (_NUMBER_WORDS | {"card"}) and not s & {"cc", "credit", "debit"} and "card" != words[0]:
        return "national_id", ("pan",)
    if _has_seq(words, "credit", "card") or _has_seq(words, "debit", "card"):
        return "credit_card", (words[words.index("card") - 1], "card")
    if s & {"card", "cc"} and s & (_NUMBER_WORDS | {"pan"}):
        return "credit_card", tuple(w for w in words if w in {"card", "cc", "pan"} | _NUMBER_WORDS)
    if _has_seq(words, "primary", "account", "number"):
        return "credit_card", ("primary", "account", "number")
    if "bank" in s and s & ({"account", "acct", "acc"} | _NUMBER_WORDS):
        return "bank_account", tuple(w for w in words if w in {"bank", "account", "acct", "acc"})
    if s & {"account", "acct"} and s & _NUMBER_WORDS and not s & {"user", "login"}:
        return "bank_account", tuple(w for w in words if w in {"account", "acct"} | _NUMBER_WORDS)
    if "routing" in s or "aba" in s:
        return "bank_account", ("routing",) if "routing" in s else ("aba",)
    if s & {"driver", "drivers", "driving"} and s & {"license", "licence", "lic", "licenses", "licences"}:
        return "driver_license", tuple(w for w in words if w in {"driver", "drivers", "driving", "license",
                                                                 "licence", "lic"})
    if "dl" in s and s & (_NUMBER_WORDS | {"lic", "license", "licence"}):
        return "driver_license", tuple(w for w in words if w in {"dl", "lic", "license", "licence"} | _NUMBER_WORDS)
    if s & {"license", "licence", "lic"} and s & _NUMBER_WORDS:
        return "driver_license", tuple(w for w in words if w in {"license", "licence", "lic"} | _NUMBER_WORDS)
    if _has_seq(words, "vehicle", "identification") or _has_seq(words, "chassis", "number"):
        return "vehicle_id", ("vehicle", "identification") if "vehicle" in s else ("chassis", "number")
    if _has_seq(words, "medical", "record") or _has_seq(words, "chart", "number") or _has_seq(words, "mr", "number"):
        return "medical_record_number", tuple(w for w in words if w in {"medical", "record", "chart", "mr", "number"})
    if s & _INSURANCE_WORDS and s & ({"id", "identifier", "member"} | _NUMBER_WORDS) \
            and not s & {"payer", "plan"} - {"plan"} or _has_seq(words, "health", "plan"):
        return "health_plan_id", tuple(w for w in words if w in _INSURANCE_WORDS | {"health", "member"})
    if s & {"diagnosis", "diagnoses", "icd"} or _has_seq(words, "condition", "code"):
        return "diagnosis_code", tuple(w for w in words if w in {"diagnosis", "diagnoses", "icd", "condition", "code"})
    if s & {"lab", "test"} and s & {"result", "results", "value"}:
        return "lab_result", tuple(w for w in words if w in {"lab", "test", "result", "results", "value"})
    if _has_seq(words, "date", "of", "birth") or _has_seq(words, "birth", "date") \
            or _has_seq(words, "birth", "dt") or _has_seq(words, "birth", "day"):
        return "date_of_birth", tuple(w for w in words if w in {"date", "of", "birth", "dt", "day"})
    if _has_seq(words, "birth", "year") or _has_seq(words, "year", "of", "birth"):
        return "age", tuple(w for w in words if w in {"birth", "year", "of"})
    if "ip" in s and (len(words) == 1 or s & _IP_CONTEXT):
        return "ip_address", tuple(w for w in words if w == "ip" or w in _IP_CONTEXT)
    for w in words:
        if _ONE_WORD.get(w) in ("phone", "gender", "age"):
            return _ONE_WORD[w], (w,)
    # "cell" and "tel" are short words: whole tokens only, and only in short names (not cell_count).
    if "cell" in s and (len(words) == 1 or s & (_NUMBER_WORDS | PERSON_WORDS)):
        return "phone", ("cell",)
    if "tel" in s and (len(words) <= 2 or s & _NUMBER_WORDS):
        return "phone", ("tel",)
    for w in words:
        if _ONE_WORD.get(w) == "name":
            return "name", (w,)
    if "name" in s or "names" in s:
        qualifiers = [w for w in words if w in NAME_PARTS or w in PERSON_WORDS]
        if qualifiers:
            return "name", (*qualifiers, "name" if "name" in s else "names")
    if _has_seq(words, "postal", "code") or _has_seq(words, "post", "code"):
        return "address", (words[words.index("code") - 1], "code")
    for w in words:
        if _ONE_WORD.get(w) == "address":
            return "address", (w,)
    if "addr" in s and len(words) > 1:
        return "address", ("addr",)
    return None


def _quote_words(name: str, words: tuple[str, ...]) -> str:
    """The stretch of the column name from the first to the last of ``words``, exactly as written."""
    spans = token_spans(name)
    found = [(start, end) for word in words for w, start, end in spans if w == word][:max(1, len(words))]
    if not found:
        return name
    return name[min(start for start, _ in found):max(end for _, end in found)]


def name_category(name: str, *, table: str | None = None) -> NameMatch | None:
    """The category a column's name alone points to, or None; ``table`` (the table's name) adds
    context: ``value`` or ``result`` columns of a ``lab_results`` table hold lab results.

    Matching is on whole words, so ``hotel``, ``intel``, ``timespan``, ``basin`` and
    ``cancellation`` match nothing. Names are ambiguous on their own when they are: a plain
    ``name`` (products, tags), ``username`` (an account handle), ``city``/``state``/``country`` (not
    identifying alone); a value's descriptor (``email_verified``, ``phone_type``,
    ``credit_card_amount``); a count (``num_credit_cards``); a key (``address_id``); or technical
    (``mac_address``, ``mobile_app_version``). ``zip`` and postal codes are addresses: a
    quasi-identifier under HIPAA. The match's ``words`` quote the column name exactly.

    >>> [getattr(name_category(n), "category", None) for n in ("user_ssn", "zip", "name", "email_verified")]
    ['ssn', 'address', None, None]
    >>> name_category("Credit Card Number").words, name_category("Num_Credit_Card")
    ('Credit Card', None)
    """
    words = tokens(name)
    if not words:
        return None
    found = _raw_category(words)
    if found is None and table:
        table_words = set(tokens(table.rsplit(".", 1)[-1]))
        if table_words & _LAB_TABLE_WORDS and set(words) & _LAB_COLUMNS:
            found = ("lab_result", tuple(w for w in words if w in _LAB_COLUMNS))
    if found is None:
        return None
    category, decided_by = found
    s = set(words)
    if s & TECHNICAL_WORDS or s & DESCRIPTOR_WORDS:
        return None
    if words[0] in _COUNT_PREFIXES and len(words) > 1 and category not in ("name",):
        return None  # num_credit_cards, total_phone_numbers: how many, not which
    if _has_seq(words, "number", "of") or _has_seq(words, "no", "of"):
        return None
    if words[-1] in KEY_WORDS and category not in IDENTIFIER_CATEGORIES and len(words) > 1:
        return None
    return NameMatch(category, _quote_words(name, decided_by))


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
    "valid", "last", "next", "first", "at", "on", "review", "reviewed", "sent", "posting",
})


def plausible_birth_dates(values: Iterable[str], today: date) -> bool:
    """Without a birth-like column name, dates pass for birth dates only if they look like a
    population's: at least 5, 90% of them at least a year old, a median age of 5–100 years and a
    spread of at least 10 years (order, visit and due dates cluster within a few years)."""
    ages = [(today - d).days / 365.25 for v in values if (d := parse_date(v)) is not None]
    if len(ages) < 5:
        return False
    old_enough = sum(1 for a in ages if a >= 1) / len(ages)
    return old_enough >= 0.9 and 5 <= median(ages) <= 100 and max(ages) - min(ages) >= 10


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
