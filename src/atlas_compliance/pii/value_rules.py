"""Which value validators run on a column, and how many of its values each needs.

Thresholds (share of the non-empty samples that must pass) are per category: a format that a value
meets by chance only rarely (an email, an IBAN, a Luhn-valid card) needs less than one that ordinary
codes meet often (an ICD-10 code, a SWIFT/BIC code, a gender code). Generic codes (passport, driver
license, medical record and member numbers) and small numbers (ages) are evidence only under a column
name that names them.

>>> [r.category for r in value_rules("passport_no", "text", "passport", date(2026, 1, 1))][-1]
'passport'
>>> compatible("credit_card", "4111 1111 1111 1112"), compatible("credit_card", "4")
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from . import person_names, rules, validators

_ALL_TEXT = frozenset({"text"})
_TEXT_AND_NUMBERS = frozenset({"text", "number"})


@dataclass(frozen=True)
class ValueRule:
    """One category's validator for a column, with the share of values it needs."""

    category: str
    check: Callable[[str], str | None]
    min_share: float


# Equal shares are settled by specificity: the earlier category's format is the harder to hit by chance.
SPECIFICITY: tuple[str, ...] = (
    "bank_account", "ssn", "credit_card", "national_id", "email", "vehicle_id", "health_plan_id", "ip_address",
    "swift_bic", "medication", "lab_result", "passport", "driver_license", "medical_record_number", "phone",
    "date_of_birth", "diagnosis_code", "address", "name", "gender", "age",
)
# Documented thresholds (docs/pii.md lists them).
MIN_SHARE: dict[str, float] = {
    "email": 0.5, "ssn": 0.6, "national_id": 0.6, "credit_card": 0.6, "bank_account": 0.6, "swift_bic": 0.8,
    "phone": 0.6, "ip_address": 0.6, "date_of_birth": 0.6, "age": 0.8, "gender": 0.8, "name": 0.6,
    "address": 0.6, "passport": 0.7, "driver_license": 0.7, "vehicle_id": 0.8, "medical_record_number": 0.7,
    "health_plan_id": 0.7, "diagnosis_code": 0.8, "medication": 0.8, "lab_result": 0.8,
}
# Categories whose values count only under a column name of the same category.
NEEDS_NAME = frozenset({"passport", "driver_license", "medical_record_number", "age"})
_STREET = re.compile(r"\d{1,6}[A-Za-z]?(?:[ -]\d{1,5})?\s+(?:[NSEW]\.?\s+)?(?:[A-Za-z0-9'.-]+\s+){0,4}"
                     r"(?P<type>[A-Za-z]+)\.?(?:\s*,?\s*(?:#|Apt\.?|Suite|Ste\.?|Unit|Fl\.?|Floor)\s*[\w-]+)?"
                     r"(?:\s*,.*)?", re.ASCII)
_POSTAL = re.compile(r"\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|[A-Z]\d[A-Z] ?\d[A-Z]\d|\d{4,5}(?:\.0)?",
                     re.ASCII)
_STREET_TYPES = frozenset("""
st street ave avenue av rd road ln lane dr drive blvd boulevard way ct court pl place ter terrace cir circle pkwy
parkway hwy highway trl trail sq square xing crossing aly alley loop plz plaza pt point pass park hl hill jct
junction ctr center row run walk path pike plain plains ridge route rte crescent cres close grove gardens mews
""".split())


def _street_types() -> frozenset[str]:
    """Street types: a fixed core plus the USPS suffixes that Faker's address lists carry."""
    try:
        from faker.providers.address.en_US import Provider
        return _STREET_TYPES | frozenset(s.lower() for s in Provider.street_suffixes)
    except ImportError:
        return _STREET_TYPES


STREET_TYPES = _street_types()


def street_address(v: str) -> str | None:
    """A street address line: a house number, up to five words, then a street type (``462 Rose Lane``,
    ``10932 Bigge Rd``, ``4469 Sherman Street, Apt 2``)."""
    m = _STREET.fullmatch(v.strip())
    if m and m.group("type").lower() in STREET_TYPES and any(ch.isalpha() for ch in v.split(None, 1)[-1]):
        return "street address"
    # "Third Floor, Century City Mall, Kalayaan Avenue, …": a comma-separated line with a street part.
    parts = [p.strip() for p in v.split(",")]
    if len(parts) >= 2 and any(_STREET.fullmatch(p) and _STREET.fullmatch(p).group("type").lower() in STREET_TYPES
                               for p in parts):
        return "street address"
    return None


def postal_code(v: str) -> str | None:
    """A ZIP code (5 or 5+4 digits), a UK or Canadian postcode, or a 4–5 digit code (checked only under
    a postal-code-like column name)."""
    return "postal code" if _POSTAL.fullmatch(v.strip().upper()) else None


def value_rules(name: str, family: str, hinted: str | None, today: date) -> list[ValueRule]:
    """The validators that run on a column of this name and type family (``hinted``: the category its
    name points to, if any)."""
    words = set(rules.tokens(name))
    postal_name = bool(words & {"zip", "zipcode", "postcode", "postal", "plz", "cep"})
    rule_list: list[tuple[str, Callable[[str], str | None], frozenset[str]]] = [
        ("email", validators.email, _ALL_TEXT),
        ("ssn", lambda v: validators.ssn(v, plain_ok=hinted == "ssn"), _TEXT_AND_NUMBERS),
        ("national_id", lambda v: validators.national_id(v, plain_ok=hinted == "national_id"),
         _TEXT_AND_NUMBERS if hinted == "national_id" else _ALL_TEXT),
        ("credit_card", validators.credit_card, _TEXT_AND_NUMBERS),
        ("bank_account", lambda v: validators.bank_account(v, plain_ok=hinted == "bank_account"),
         _TEXT_AND_NUMBERS if hinted == "bank_account" else _ALL_TEXT),
        ("swift_bic", validators.swift_bic, _ALL_TEXT),
        ("phone", lambda v: validators.phone(v, plain_ok=hinted == "phone" and family == "text"), _ALL_TEXT),
        ("date_of_birth", lambda v: validators.past_date(v, today), frozenset({"text", "date"})),
        ("vehicle_id", validators.vehicle_id, _ALL_TEXT),
        ("health_plan_id", lambda v: validators.health_plan_id(v, plain_ok=hinted == "health_plan_id"),
         _TEXT_AND_NUMBERS if hinted == "health_plan_id" else _ALL_TEXT),
        ("diagnosis_code", lambda v: validators.diagnosis_code(v, short_ok=hinted == "diagnosis_code"), _ALL_TEXT),
        ("medication", validators.ndc_code, _ALL_TEXT),
        ("lab_result", validators.loinc_code, _ALL_TEXT),
        ("gender", lambda v: validators.gender(v, codes_ok=hinted == "gender"), _ALL_TEXT),
        # Single words count as names only under a column name that speaks of names (first_name, user_name,
        # host name): alone, "Paris" or "Jordan" may be anything.
        ("name", lambda v: "person's name" if person_names.is_person_name(
            v, single_ok=hinted == "name" or bool(words & {"name", "names"})) else None, _ALL_TEXT),
        ("address", lambda v: street_address(v) or (postal_code(v) if postal_name else None),
         _TEXT_AND_NUMBERS if postal_name else _ALL_TEXT),
    ]
    if not rules.is_version_like(name):
        rule_list.append(("ip_address", validators.ip_address, frozenset({"text", "inet"})))
    if hinted == "passport":
        rule_list.append(("passport", validators.passport, _ALL_TEXT))
    if hinted == "driver_license":
        rule_list.append(("driver_license", validators.driver_license, _TEXT_AND_NUMBERS))
    if hinted == "medical_record_number":
        rule_list.append(("medical_record_number", validators.medical_record_number, _TEXT_AND_NUMBERS))
    if hinted == "age":
        rule_list.append(("age", lambda v: validators.age(v, today), _TEXT_AND_NUMBERS))
    return [ValueRule(category, check, MIN_SHARE[category]) for category, check, families in rule_list
            if family in families]


# --- shape: do values at least look like the name's category? -------------------------------------

def _digits(v: str) -> int:
    return sum(ch.isdigit() for ch in v)


_SHAPES: dict[str, Callable[[str], bool]] = {
    "email": lambda v: "@" in v,
    "phone": lambda v: _digits(v) >= 7 and re.fullmatch(r"[\d\s().+x-]+", v, re.IGNORECASE) is not None,
    "ssn": lambda v: re.fullmatch(r"\d{3}[- ]?\d{2}[- ]?\d{4}", v) is not None,
    "national_id": lambda v: _digits(v) >= 4 and re.fullmatch(r"[\w .-]{6,24}", v) is not None,
    "credit_card": lambda v: re.fullmatch(r"\d(?:[ -]?\d){11,18}", v) is not None,
    "bank_account": lambda v: _digits(v) >= 6 and re.fullmatch(r"[\w .-]{6,40}", v) is not None,
    "swift_bic": lambda v: re.fullmatch(r"[A-Za-z0-9]{8}(?:[A-Za-z0-9]{3})?", v) is not None,
    "name": lambda v: person_names.name_words(v) is not None,
    "ip_address": lambda v: re.fullmatch(r"[0-9A-Fa-f.:/%]{3,}", v) is not None and _digits(v) > 0,
    "date_of_birth": lambda v: validators.parse_date(v) is not None
    or re.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}.*", v) is not None,
    "age": lambda v: re.fullmatch(r"\d{1,4}(?:\.\d+)?", v) is not None or validators.age(v, date.today()) is not None,
    "gender": lambda v: validators.gender(v, codes_ok=True) is not None or v in ("0", "1", "2", "9"),
    "address": lambda v: any(ch.isalpha() for ch in v) or postal_code(v) is not None,
    "passport": lambda v: _digits(v) >= 4,
    "driver_license": lambda v: _digits(v) >= 4,
    "vehicle_id": lambda v: len(v) >= 11 and _digits(v) >= 3,
    "medical_record_number": lambda v: _digits(v) >= 4,
    "health_plan_id": lambda v: _digits(v) >= 4,
}


def compatible(category: str, value: str, *, name_words: str = "") -> bool:
    """Whether a value at least has the shape of the category's data (a random 16-digit number under
    a card name does; ``4`` or ``--`` does not; a card's security code under a ``cvv`` name is 3–4
    digits). Categories without a shape accept anything."""
    text = value.strip()
    if category == "credit_card" and set(rules.tokens(name_words)) & {"cvv", "cvc", "cvv2", "cid"}:
        return re.fullmatch(r"\d{3,4}(?:\.0)?", text) is not None
    shape = _SHAPES.get(category)
    return True if shape is None else bool(shape(text))
