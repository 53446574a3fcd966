"""Explainable PII detection for one column: its sampled values first, then its name, then its type.

Every detection says how it was made (``method``), how sure it is (``confidence``), why, in words
(``reason``), and on what ``evidence``: values sampled, values matched, and up to three example
values, masked. Pure: no I/O; "today" (for birth dates) can be passed in.

>>> d = detect_column("contact", "text", [f"user{i}@example.com" for i in range(12)])
>>> (d.category, d.confidence, d.method, d.reason)
('email', 'high', 'regex', '12/12 sampled values are valid email addresses')
>>> d.evidence.examples
('u***@example.com',)
>>> detect_column("hotel", "text", ["Ritz", "Hilton"]) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from . import rules
from .masking import partial_mask

MAX_EXAMPLES = 3

_VALID = {
    "email": "valid email addresses", "ssn": "valid SSNs", "credit_card": "Luhn-valid card numbers",
    "phone": "formatted phone numbers", "ip_address": "IP addresses", "date_of_birth": "plausible birth dates",
    "passport": "passport numbers", "driver_license": "driver license numbers",
}
# Which value validators run, and which name categories count, for each type family. A boolean or
# uuid column is never PII (``email_verified``); numbers can hold card numbers, nine-digit SSNs and
# (by name) phones and ZIP codes, but plain digits are never phones by value.
_VALUE_CATEGORIES = {
    "text": set(_VALID), "document": set(), "number": {"credit_card", "ssn"}, "date": {"date_of_birth"},
    "inet": {"ip_address"}, "boolean": set(), "uuid": set(), "binary": set(),
}
_NAME_CATEGORIES: dict[str, set[str] | None] = {
    "text": None, "document": None, "number": {"phone", "ssn", "credit_card", "address", "driver_license"},
    "date": {"date_of_birth"}, "inet": {"ip_address"}, "boolean": set(), "uuid": set(), "binary": set(),
}


@dataclass(frozen=True)
class Evidence:
    """What a detection rests on; ``examples`` are masked with ``partial_mask``, never raw."""

    sampled: int
    matched: int
    examples: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"sampled": self.sampled, "matched": self.matched, "examples": list(self.examples)}


@dataclass(frozen=True)
class Detection:
    """One column's PII classification and its explanation."""

    category: str
    confidence: str
    method: str
    reason: str
    evidence: Evidence
    masking_strategy: str

    def to_dict(self) -> dict:
        """JSON shape (camelCase), as the API and uploads use it."""
        return {"category": self.category, "confidence": self.confidence, "method": self.method,
                "reason": self.reason, "evidence": self.evidence.to_dict(),
                "maskingStrategy": self.masking_strategy}


@dataclass(frozen=True)
class CategoryScore:
    """How one category's validator fared on a column's samples."""

    category: str
    matched: tuple[str, ...]
    sampled: int

    @property
    def share(self) -> float:
        return len(self.matched) / self.sampled if self.sampled else 0.0

    @property
    def qualifies(self) -> bool:
        return bool(self.matched) and self.share >= rules.MIN_SHARE[self.category]


def best_score(scores: Iterable[CategoryScore]) -> CategoryScore | None:
    """The qualifying score with the highest share; equal shares go to the more specific category.

    >>> s = [CategoryScore("phone", ("x",) * 9, 10), CategoryScore("email", ("y",) * 6, 10)]
    >>> best_score(s).category
    'phone'
    """
    qualifying = [s for s in scores if s.qualifies]
    if not qualifying:
        return None
    return max(qualifying, key=lambda s: (s.share, -rules.SPECIFICITY.index(s.category)))


def value_confidence(sampled: int, share: float, *, name_agrees: bool, capped: bool = False) -> str:
    """Confidence of a value-based detection.

    - ``high``: at least 10 non-empty samples, at least 80% of them valid, and not ``capped``;
    - ``low``: fewer than 3 samples, unless the column name points to the same category;
    - ``medium`` otherwise (so below 10 samples, never more than medium).

    >>> value_confidence(40, 0.95, name_agrees=False), value_confidence(9, 1.0, name_agrees=True)
    ('high', 'medium')
    >>> value_confidence(2, 1.0, name_agrees=False), value_confidence(2, 1.0, name_agrees=True)
    ('low', 'medium')
    """
    if sampled >= rules.MIN_SAMPLES_FOR_HIGH and share >= rules.MIN_SHARE_FOR_HIGH and not capped:
        return "high"
    if sampled < rules.MIN_SAMPLES_FOR_MEDIUM and not name_agrees:
        return "low"
    return "medium"


def _validators(name: str, family: str, hint: rules.NameMatch | None, today: date) -> dict[str, Callable[[str], bool]]:
    hinted = hint.category if hint else None
    plain_phone = hinted == "phone" and family == "text"
    found: dict[str, Callable[[str], bool]] = {
        "email": rules.is_email,
        "ssn": lambda v: rules.is_ssn(v, plain_ok=hinted == "ssn"),
        "credit_card": rules.is_credit_card,
        "phone": lambda v: rules.is_phone(v, plain_ok=plain_phone),
        "date_of_birth": lambda v: rules.is_past_date(v, today),
    }
    if not rules.is_version_like(name):
        found["ip_address"] = rules.is_ip
    # Passport and licence formats are generic codes (``AB1234567``): only a name makes them evidence.
    if hinted == "passport":
        found["passport"] = rules.is_passport
    if hinted == "driver_license":
        found["driver_license"] = rules.is_driver_license
    allowed = _VALUE_CATEGORIES[family]
    return {category: check for category, check in found.items() if category in allowed}


def score_values(name: str, data_type: str | None, texts: list[str], *,
                 today: date | None = None) -> list[CategoryScore]:
    """Every applicable category's validator run over the non-empty samples ``texts``."""
    family = rules.type_family(data_type)
    hint = rules.name_category(name)
    checks = _validators(name, family, hint, today or date.today())
    return [CategoryScore(category, tuple(v for v in texts if check(v)), len(texts))
            for category, check in checks.items()]


def _birth_dates_credible(name: str, matched: tuple[str, ...], today: date) -> bool:
    if rules.is_birth_like(name):
        return True
    return not rules.is_event_like(name) and rules.plausible_birth_dates(matched, today)


def _examples(values: Iterable[str], raw: set[str]) -> tuple[str, ...]:
    """Up to three distinct masked examples; a mask that happens to equal a sampled value is skipped."""
    shown: list[str] = []
    for value in values:
        masked = partial_mask(value)
        if masked not in shown and masked not in raw:
            shown.append(masked)
            if len(shown) == MAX_EXAMPLES:
                break
    return tuple(shown)


def _by_values(name: str, data_type: str | None, texts: list[str], hint: rules.NameMatch | None,
               today: date) -> Detection | None:
    scores = [s for s in score_values(name, data_type, texts, today=today)
              if s.category != "date_of_birth" or _birth_dates_credible(name, s.matched, today)]
    best = best_score(scores)
    if best is None:
        return None
    name_agrees = hint is not None and hint.category == best.category
    # Dates alone are circumstantial: without a birth-like name they never reach high confidence.
    capped = best.category == "date_of_birth" and not rules.is_birth_like(name)
    evidence = Evidence(sampled=best.sampled, matched=len(best.matched),
                        examples=_examples(best.matched, set(texts)))
    return Detection(
        category=best.category,
        confidence=value_confidence(best.sampled, best.share, name_agrees=name_agrees, capped=capped),
        method="regex",
        reason=f"{len(best.matched)}/{best.sampled} sampled values are {_VALID[best.category]}",
        evidence=evidence,
        masking_strategy=rules.DEFAULT_MASKING[best.category],
    )


def _name_reason(name: str, hint: rules.NameMatch, texts: list[str], scores: list[CategoryScore]) -> tuple[str, int]:
    words = hint.words
    noun = "words" if " " in words else "word"
    reason = f"column name {name!r} contains the {noun} {words!r}"
    own = next((s for s in scores if s.category == hint.category), None)
    if texts and own is not None:
        reason += f"; only {len(own.matched)}/{own.sampled} sampled values are {_VALID[hint.category]}"
        return reason, len(own.matched)
    return reason, 0


def detect_column(name: str, data_type: str | None, values: Iterable[object], *,
                  today: date | None = None) -> Detection | None:
    """Classify one column from its name, SQL type and sampled values; None when it holds no PII.

    In order (the first that decides wins):

    1. **values** (method ``regex``): the best-scoring category among those whose validators
       accept at least their minimum share of the non-empty samples (``rules.MIN_SHARE``);
       confidence per :func:`value_confidence`;
    2. **name** (``column_name``, medium): whole-word rules of ``rules.name_category``, allowed
       by the type (a boolean ``email_verified`` is not an email). Values that contradict the
       name (a column ``email`` of numbers) leave the name's verdict, as in the reference, and the
       reason says how few values matched;
    3. **type** (``type_heuristic``, low): ``inet``/``cidr``; date types with a birth-like name.

    ``today`` (default: the current date) anchors the birth-date checks.
    """
    today = today or date.today()
    texts = rules.sample_texts(values)
    family = rules.type_family(data_type)
    hint = rules.name_category(name)
    found = _by_values(name, data_type, texts, hint, today)
    if found is not None:
        return found
    examples = _examples(texts, set(texts))
    allowed = _NAME_CATEGORIES[family]
    if hint is not None and (allowed is None or hint.category in allowed):
        reason, matched = _name_reason(name, hint, texts, score_values(name, data_type, texts, today=today))
        return Detection(category=hint.category, confidence="medium", method="column_name", reason=reason,
                         evidence=Evidence(sampled=len(texts), matched=matched, examples=examples),
                         masking_strategy=rules.DEFAULT_MASKING[hint.category])
    if family == "inet":
        return Detection(category="ip_address", confidence="low", method="type_heuristic",
                         reason=f"column type {data_type!r} stores network addresses",
                         evidence=Evidence(sampled=len(texts), matched=0, examples=examples),
                         masking_strategy=rules.DEFAULT_MASKING["ip_address"])
    if family == "date" and rules.is_birth_like(name):
        return Detection(category="date_of_birth", confidence="low", method="type_heuristic",
                         reason=f"column {name!r} of type {data_type!r} is named like a birth date",
                         evidence=Evidence(sampled=len(texts), matched=0, examples=examples),
                         masking_strategy=rules.DEFAULT_MASKING["date_of_birth"])
    return None


def detect_columns(columns: Iterable[tuple[str, str | None, Iterable[object]]], *,
                   today: date | None = None) -> dict[str, Detection]:
    """Detections for several ``(name, type, values)`` columns, keyed by name; only hits are returned."""
    found: dict[str, Detection] = {}
    for name, data_type, values in columns:
        detection = detect_column(name, data_type, values, today=today)
        if detection is not None:
            found[name] = detection
    return found
