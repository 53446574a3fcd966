"""Explainable PII detection for one column: values first, then the column name, then the type.

Every detection carries its method, a confidence, a human-readable reason and evidence (values
sampled, values matched, up to three *masked* examples).

>>> d = detect_column("contact", "text", ["ann@example.com"] * 12)
>>> (d.category, d.confidence, d.method, d.evidence.examples)
('email', 'high', 'regex', ('a***@example.com',))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from statistics import median

from . import rules
from .masking import partial_mask

MIN_SAMPLES_FOR_HIGH = 10
HIGH_RATIO = 0.8
MAX_EXAMPLES = 3

_LABELS = {"email": "valid email addresses", "ssn": "valid SSNs (area, group and serial checked)",
           "credit_card": "Luhn-valid card numbers", "phone": "formatted phone numbers",
           "ip_address": "IPv4/IPv6 addresses", "date_of_birth": "plausible birth dates",
           "passport": "passport numbers", "driver_license": "driver license numbers"}

_NUMERIC_TYPES = ("int", "bigint", "smallint", "integer", "numeric", "decimal", "real", "double", "float", "number",
                  "serial", "bigserial", "money", "tinyint", "mediumint")
_DATE_TYPES = ("date", "timestamp", "timestamptz", "datetime", "time")


@dataclass(frozen=True)
class Evidence:
    sampled: int
    matched: int
    examples: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"sampled": self.sampled, "matched": self.matched, "examples": list(self.examples)}


@dataclass(frozen=True)
class Detection:
    category: str
    confidence: str
    method: str
    reason: str
    evidence: Evidence
    masking_strategy: str

    def to_dict(self) -> dict:
        return {"category": self.category, "confidence": self.confidence, "method": self.method,
                "reason": self.reason, "evidence": self.evidence.to_dict(), "maskingStrategy": self.masking_strategy}


def _examples(values: list[str]) -> tuple[str, ...]:
    """Up to three distinct example values, masked: evidence never shows a raw value."""
    seen: list[str] = []
    for v in values:
        masked = partial_mask(v)
        if masked not in seen:
            seen.append(masked)
            if len(seen) == MAX_EXAMPLES:
                break
    return tuple(seen)


def _type_family(data_type: str | None) -> str:
    t = (data_type or "").lower().strip()
    if t.startswith(("bool", "bit")):
        return "boolean"
    if t.startswith(("inet", "cidr")):
        return "inet"
    if t.startswith(_DATE_TYPES):
        return "date"
    if t.startswith(_NUMERIC_TYPES):
        return "number"
    if t.startswith(("json", "bytea", "blob", "binary", "varbinary", "uuid", "array", "interval")):
        return "other"
    return "text"


def _validators(name: str, today: date) -> dict[str, Callable[[str], bool]]:
    ssn_name = rules.name_category(name) == ("ssn", "ssn") or "ssn" in rules.tokens(name)
    found: dict[str, Callable[[str], bool]] = {
        "email": rules.is_email,
        "ssn": lambda v: rules.is_ssn(v, plain_ok=ssn_name),
        "credit_card": rules.is_credit_card,
        "phone": rules.is_phone,
        "ip_address": rules.is_ip,
    }
    if not rules.event_like(name):
        found["date_of_birth"] = lambda v: rules.is_birth_date(v, today)
    hint = rules.name_category(name)
    if hint and hint[0] == "passport":
        found["passport"] = rules.is_passport
    if hint and hint[0] == "driver_license":
        found["driver_license"] = rules.is_driver_license
    return found


def _plausible_birth_dates(values: list[str], today: date) -> bool:
    """Without a birth-like name, dates count as birth dates only if they look like a population's."""
    ages = [(today - d).days / 365.25 for v in values if (d := rules.parse_date(v)) is not None]
    if len(ages) < 5:
        return False
    return 1 <= median(ages) <= 100 and max(ages) - min(ages) >= 10 and min(ages) >= 0


def _by_values(name: str, family: str, texts: list[str], today: date) -> Detection | None:
    if not texts or family in ("boolean", "other"):
        return None
    scores: list[tuple[float, int, str, list[str]]] = []
    for category, check in _validators(name, today).items():
        if family == "number" and category not in ("phone", "ssn", "credit_card"):
            continue
        matched = [v for v in texts if check(v)]
        ratio = len(matched) / len(texts)
        if matched and ratio >= rules.VALUE_THRESHOLDS[category]:
            if category == "date_of_birth" and not (rules.birth_like(name) or _plausible_birth_dates(matched, today)):
                continue
            scores.append((ratio, -rules.SPECIFICITY.index(category), category, matched))
    if not scores:
        return None
    ratio, _, category, matched = max(scores)
    high = len(texts) >= MIN_SAMPLES_FOR_HIGH and ratio >= HIGH_RATIO
    evidence = Evidence(sampled=len(texts), matched=len(matched), examples=_examples(matched))
    return Detection(category=category, confidence="high" if high else "medium", method="regex",
                     reason=f"{len(matched)}/{len(texts)} sampled values are {_LABELS[category]}",
                     evidence=evidence, masking_strategy=rules.DEFAULT_MASKING[category])


_NAME_ALLOWED = {"text": None, "number": {"phone", "ssn", "credit_card", "address"}, "date": {"date_of_birth"},
                 "inet": {"ip_address"}, "boolean": set(), "other": set()}


def detect_column(name: str, data_type: str | None, values: Iterable[object]) -> Detection | None:
    """Classify one column from its name, type and sampled values; None when it holds no PII."""
    today = date.today()
    texts = [t for t in (rules.as_text(v) for v in values) if t is not None]
    family = _type_family(data_type)
    found = _by_values(name, family, texts, today)
    if found:
        return found
    examples = _examples(texts)
    hint = rules.name_category(name)
    allowed = _NAME_ALLOWED[family]
    if hint and (allowed is None or hint[0] in allowed):
        category, words = hint
        return Detection(category=category, confidence="medium", method="column_name",
                         reason=f"column name {name!r} contains {words!r}",
                         evidence=Evidence(sampled=len(texts), matched=0, examples=examples),
                         masking_strategy=rules.DEFAULT_MASKING[category])
    if family == "inet":
        return Detection(category="ip_address", confidence="low", method="type_heuristic",
                         reason=f"column type {data_type!r} holds network addresses",
                         evidence=Evidence(sampled=len(texts), matched=0, examples=examples),
                         masking_strategy=rules.DEFAULT_MASKING["ip_address"])
    if family == "date" and rules.birth_like(name):
        return Detection(category="date_of_birth", confidence="low", method="type_heuristic",
                         reason=f"date column {name!r} is named like a birth date",
                         evidence=Evidence(sampled=len(texts), matched=0, examples=examples),
                         masking_strategy=rules.DEFAULT_MASKING["date_of_birth"])
    return None


def detect_columns(columns: Iterable[tuple[str, str | None, Iterable[object]]]) -> dict[str, Detection]:
    """Detections for several columns; only columns with a detection are returned."""
    found: dict[str, Detection] = {}
    for name, data_type, values in columns:
        detection = detect_column(name, data_type, values)
        if detection is not None:
            found[name] = detection
    return found
