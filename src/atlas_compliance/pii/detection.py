"""Explainable PII detection for one column: its sampled values first, then its name, then its type.

Every detection says how it was made (``method``), how sure it is (``confidence``), why, in words
(``reason``, quoting the column name exactly), and on what ``evidence``: values sampled, values
matched, up to three example values masked with the category's own strategy, and where inside the
values personal data was found (JSON, free text). Pure: no I/O; "today" (for birth dates) can be
passed in.

Values beat names. When values were sampled and contradict the column's name (``Num_Credit_Card``
holding 4, 4, 4; an ``SSN`` column of ``--``), the name alone raises at most a low-confidence
suggestion to review, marked ``suggestion`` in the evidence.

>>> d = detect_column("contact", "text", [f"user{i}@example.com" for i in range(12)])
>>> (d.category, d.confidence, d.method, d.reason)
('email', 'high', 'regex', '12/12 sampled values are valid email addresses')
>>> d.evidence.examples
('u***@example.com',)
>>> detect_column("hotel", "text", ["Ritz", "Hilton"]) is None
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from . import embedded, rules
from .categories import CATEGORY, DEFAULT_MASKING
from .masking import HIDDEN_EXAMPLE, example_mask
from .value_rules import SPECIFICITY, compatible, value_rules

MAX_EXAMPLES = 3
MIN_EMBEDDED_SHARE = 0.2  # of the sampled values, holding personal data inside (JSON, free text)
MIN_EMBEDDED_VALUES = 2
CONTRADICTED_BELOW = 0.5  # values whose shape fits the name's category: below this share they contradict it


@dataclass(frozen=True)
class Evidence:
    """What a detection rests on; ``examples`` are masked with the category's strategy, never raw.
    ``found_in`` says where inside the values the data was (``JSON at contact.email``,
    ``free text``); ``suggestion`` marks a name-only detection that the sampled values contradict."""

    sampled: int
    matched: int
    examples: tuple[str, ...]
    found_in: tuple[str, ...] = ()
    suggestion: bool = False

    def to_dict(self) -> dict:
        out: dict = {"sampled": self.sampled, "matched": self.matched, "examples": list(self.examples)}
        if self.found_in:
            out["foundIn"] = list(self.found_in)
        if self.suggestion:
            out["suggestion"] = True
        return out


@dataclass(frozen=True)
class Detection:
    """One column's PII classification and its explanation."""

    category: str
    confidence: str
    method: str
    reason: str
    evidence: Evidence
    masking_strategy: str

    @property
    def suggestion(self) -> bool:
        return self.evidence.suggestion

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
    min_share: float = 0.6
    kinds: tuple[str, ...] = ()  # what the validator called the matches ("IBAN", "Indian PAN")

    @property
    def share(self) -> float:
        return len(self.matched) / self.sampled if self.sampled else 0.0

    @property
    def qualifies(self) -> bool:
        return bool(self.matched) and self.share >= self.min_share


def best_score(scores: Iterable[CategoryScore]) -> CategoryScore | None:
    """The qualifying score with the highest share; equal shares go to the more specific category
    (the earlier one in ``value_rules.SPECIFICITY``).

    >>> s = [CategoryScore("phone", ("x",) * 9, 10), CategoryScore("email", ("y",) * 6, 10)]
    >>> best_score(s).category
    'phone'
    """
    qualifying = [s for s in scores if s.qualifies]
    if not qualifying:
        return None
    return max(qualifying, key=lambda s: (s.share, -SPECIFICITY.index(s.category)))


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


def score_values(name: str, data_type: str | None, texts: list[str], *, table: str | None = None,
                 today: date | None = None) -> list[CategoryScore]:
    """Every applicable category's validator run over the non-empty samples ``texts``."""
    family = rules.type_family(data_type)
    hint = rules.name_category(name, table=table)
    scores = []
    for rule in value_rules(name, family, hint.category if hint else None, today or date.today()):
        kinds: list[str] = []
        matched = []
        for v in texts:
            kind = rule.check(v)
            if kind:
                matched.append(v)
                kinds.append(kind)
        scores.append(CategoryScore(rule.category, tuple(matched), len(texts), rule.min_share,
                                    tuple(k for k, _ in Counter(kinds).most_common())))
    return scores


def _credible(score: CategoryScore, name: str, hint: rules.NameMatch | None, today: date) -> bool:
    """Checks on a whole column that single values cannot make."""
    if score.category == "date_of_birth":
        if rules.is_birth_like(name):
            return True
        return not rules.is_event_like(name) and rules.plausible_birth_dates(score.matched, today)
    if score.category == "name" and (hint is None or hint.category != "name"):
        # Without a name-like column name, a column of names holds several different ones.
        return len(set(score.matched)) >= min(3, len(score.matched)) and len(score.matched) >= 2
    if score.category in ("gender", "swift_bic", "diagnosis_code", "medication", "lab_result", "vehicle_id") \
            and (hint is None or hint.category != score.category):
        return len(set(score.matched)) >= 2
    return True


def _examples(values: Iterable[str], category: str, raw: set[str]) -> tuple[str, ...]:
    """Up to three distinct masked examples; a mask that happens to equal a sampled value is skipped."""
    shown: list[str] = []
    strategy = DEFAULT_MASKING[category]
    for value in values:
        masked = example_mask(value, category, strategy)
        if masked not in shown and masked not in raw:
            shown.append(masked)
            if len(shown) == MAX_EXAMPLES:
                break
    return tuple(shown)


def _matched_words(score: CategoryScore) -> str:
    """What the matching values are, naming the kinds found for categories that span several
    (``valid Indian Aadhaar numbers``, ``valid IBANs``)."""
    if score.category in ("national_id", "bank_account", "health_plan_id") and score.kinds:
        return " or ".join(f"valid {kind}s" for kind in score.kinds[:2])
    return CATEGORY[score.category].matched


def _by_values(name: str, data_type: str | None, texts: list[str], hint: rules.NameMatch | None,
               table: str | None, today: date) -> Detection | None:
    scores = [s for s in score_values(name, data_type, texts, table=table, today=today)
              if _credible(s, name, hint, today)]
    best = best_score(scores)
    if best is None:
        return None
    name_agrees = hint is not None and hint.category == best.category
    # Dates alone are circumstantial: without a birth-like name they never reach high confidence.
    capped = best.category == "date_of_birth" and not rules.is_birth_like(name)
    evidence = Evidence(sampled=best.sampled, matched=len(best.matched),
                        examples=_examples(best.matched, best.category, set(texts)))
    return Detection(
        category=best.category,
        confidence=value_confidence(best.sampled, best.share, name_agrees=name_agrees, capped=capped),
        method="regex",
        reason=f"{len(best.matched)}/{best.sampled} sampled values are {_matched_words(best)}",
        evidence=evidence,
        masking_strategy=DEFAULT_MASKING[best.category],
    )


def _embedded(texts: list[str]) -> Detection | None:
    """Personal data inside JSON or free text: the category held by the most values, if enough do."""
    structured = [t for t in texts if embedded.looks_structured(t)]
    if not structured:
        return None
    holders: dict[str, list[str]] = {}
    places: dict[str, Counter] = {}
    for text in structured:
        for find in embedded.finds(text):
            if text not in holders.setdefault(find.category, []):
                holders[find.category].append(text)
            places.setdefault(find.category, Counter())[find.where] += 1
    if not holders:
        return None
    category, values = max(holders.items(), key=lambda kv: len(kv[1]))
    share = len(values) / len(texts)
    if len(values) < min(MIN_EMBEDDED_VALUES, len(texts)) or share < MIN_EMBEDDED_SHARE:
        return None
    where = tuple(w for w, _ in places[category].most_common(3))
    hidden = HIDDEN_EXAMPLE.get(DEFAULT_MASKING[category], "***")  # the found text is never shown
    return Detection(
        category=category,
        confidence=value_confidence(len(texts), share, name_agrees=False),
        method="regex",
        reason=f"{len(values)}/{len(texts)} sampled values contain {CATEGORY[category].matched}: "
               f"{', '.join(where)}",
        evidence=Evidence(sampled=len(texts), matched=len(values), examples=(hidden,), found_in=where),
        masking_strategy=DEFAULT_MASKING[category],
    )


def _by_name(name: str, data_type: str | None, texts: list[str], hint: rules.NameMatch, table: str | None,
             today: date) -> Detection:
    """The name decides: medium when no values were sampled or they fit the category's shape; a low
    suggestion to review when the sampled values contradict it."""
    label = f"column name {name!r}"
    quoted = hint.words
    reason = label if quoted == name else \
        f"{label} contains {'the words' if len(rules.tokens(quoted)) > 1 else 'the word'} {quoted!r}"
    own = next((s for s in score_values(name, data_type, texts, table=table, today=today)
                if s.category == hint.category), None)
    matched = len(own.matched) if own else 0
    fitting = [v for v in texts if compatible(hint.category, v, name_words=hint.words)]
    examples = _examples(fitting or texts, hint.category, set(texts))
    strategy = DEFAULT_MASKING[hint.category]
    if not texts:
        return Detection(hint.category, "medium", "column_name", reason + "; no values were sampled",
                         Evidence(0, 0, ()), strategy)
    noun = CATEGORY[hint.category].matched
    validated = f"{matched}/{len(texts)} sampled values are {noun}"
    if len(fitting) / len(texts) < CONTRADICTED_BELOW:
        return Detection(hint.category, "low", "column_name",
                         f"suggestion to review: {reason}, but only {len(fitting)}/{len(texts)} sampled values "
                         f"have the shape of {noun} ({matched} valid)",
                         Evidence(len(texts), matched, examples, suggestion=True), strategy)
    return Detection(hint.category, "medium", "column_name", f"{reason}; {validated}",
                     Evidence(len(texts), matched, examples), strategy)


_NAME_CATEGORIES: dict[str, set[str] | None] = {
    "text": None, "document": None,
    "number": {"phone", "ssn", "national_id", "credit_card", "address", "driver_license", "age", "gender",
               "bank_account", "medical_record_number", "health_plan_id", "lab_result"},
    "date": {"date_of_birth"}, "inet": {"ip_address"}, "boolean": set(), "uuid": set(), "binary": set(),
}


def detect_column(name: str, data_type: str | None, values: Iterable[object], *, table: str | None = None,
                  today: date | None = None) -> Detection | None:
    """Classify one column from its name, SQL type and sampled values; None when it holds no PII.

    In order (the first that decides wins):

    1. **values** (method ``regex``): the best-scoring category among those whose validators
       accept at least their minimum share of the non-empty samples (``value_rules``); then
       personal data found inside JSON or free text values (``embedded``);
    2. **name** (``column_name``): whole-word rules of ``rules.name_category`` (with the ``table``'s
       name as context), allowed by the type (a boolean ``email_verified`` is not an email):
       medium when no values were sampled or they have the category's shape; when the sampled values
       contradict the name, a low-confidence suggestion to review;
    3. **type** (``type_heuristic``, low): ``inet``/``cidr``; date types with a birth-like name.

    ``today`` (default: the current date) anchors the birth-date and age checks.
    """
    today = today or date.today()
    texts = rules.sample_texts(values)
    family = rules.type_family(data_type)
    hint = rules.name_category(name, table=table)
    if family not in ("boolean", "uuid", "binary"):
        found = _by_values(name, data_type, texts, hint, table, today)
        if found is None and family in ("text", "document"):
            found = _embedded(texts)
        if found is not None:
            return found
    allowed = _NAME_CATEGORIES[family]
    if hint is not None and (allowed is None or hint.category in allowed):
        return _by_name(name, data_type, texts, hint, table, today)
    examples = _examples(texts, "ip_address" if family == "inet" else "date_of_birth", set(texts))
    if family == "inet":
        return Detection(category="ip_address", confidence="low", method="type_heuristic",
                         reason=f"column type {data_type!r} stores network addresses",
                         evidence=Evidence(sampled=len(texts), matched=0, examples=examples),
                         masking_strategy=DEFAULT_MASKING["ip_address"])
    if family == "date" and rules.is_birth_like(name):
        return Detection(category="date_of_birth", confidence="low", method="type_heuristic",
                         reason=f"column {name!r} of type {data_type!r} is named like a birth date",
                         evidence=Evidence(sampled=len(texts), matched=0, examples=examples),
                         masking_strategy=DEFAULT_MASKING["date_of_birth"])
    return None


def detect_columns(columns: Iterable[tuple[str, str | None, Iterable[object]]], *, table: str | None = None,
                   today: date | None = None) -> dict[str, Detection]:
    """Detections for several ``(name, type, values)`` columns, keyed by name; only hits are returned."""
    found: dict[str, Detection] = {}
    for name, data_type, values in columns:
        detection = detect_column(name, data_type, values, table=table, today=today)
        if detection is not None:
            found[name] = detection
    return found

