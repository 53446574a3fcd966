"""PII detection, specified by tests/pii/fixtures/column_cases.tsv plus the rules around it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_compliance.pii import rules, validators
from atlas_compliance.pii.categories import PII_CATEGORIES
from atlas_compliance.pii.detection import CategoryScore, Detection, best_score, detect_column, detect_columns
from atlas_compliance.pii.value_rules import MIN_SHARE, SPECIFICITY

FIXTURE = Path(__file__).parent / "fixtures" / "column_cases.tsv"
TODAY = date(2026, 6, 30)  # the fixture's birth-date cases are written against this date
FIELDS = ("name", "data_type", "values", "expected", "confidence", "method", "note")


def load_cases() -> list[dict]:
    cases = []
    for number, line in enumerate(FIXTURE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert 4 <= len(fields) <= len(FIELDS), f"line {number}: {len(fields)} fields"
        case = dict(zip(FIELDS, fields + [""] * (len(FIELDS) - len(fields)), strict=True))
        case["data_type"] = None if case["data_type"] == "-" else case["data_type"]
        case["values"] = json.loads(case["values"])
        case["line"] = number
        cases.append(case)
    return cases


CASES = load_cases()


def _flat(values: list) -> list:
    return [item for v in values for item in (v if isinstance(v, list) else [v])]


def _table_and_column(name: str) -> tuple[str | None, str]:
    """A case's name may be ``table.column`` (for rules that read the table's name as context)."""
    table, dot, column = name.rpartition(".")
    return (table, column) if dot and table in ("lab_results", "orders") else (None, name)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['name']}-L{c['line']}" for c in CASES])
def test_column_case(case):
    table, column = _table_and_column(case["name"])
    found = detect_column(column, case["data_type"], case["values"], table=table, today=TODAY)
    if case["expected"] == "none":
        assert found is None, f"{case['note']}: {found}"
        return
    assert found is not None, case["note"]
    expected, suggestion = case["expected"].removeprefix("review:"), case["expected"].startswith("review:")
    assert found.category == expected, (case["note"], found)
    assert found.suggestion is suggestion, (case["note"], found)
    if suggestion:
        assert found.reason.startswith("suggestion to review: "), found.reason
    if case["confidence"]:
        assert found.confidence == case["confidence"], (case["note"], found)
    if case["method"]:
        assert found.method == case["method"], (case["note"], found)
    assert found.masking_strategy == rules.DEFAULT_MASKING[found.category]
    samples = [text for v in _flat(case["values"]) if v is not None and (text := str(v).strip())]
    raw = set(samples)
    evidence = found.evidence
    assert evidence.sampled == len(samples)
    assert 0 <= evidence.matched <= evidence.sampled
    assert len(evidence.examples) <= 3
    assert not raw & set(evidence.examples), "evidence shows a raw value"
    if "column name " in found.reason:
        assert f"column name {column!r}" in found.reason, f"the reason misquotes the column name: {found.reason}"


# --- the fixture itself is a specification: check that it covers what it must -----------------------


def test_fixture_is_substantial_and_well_formed():
    assert len(CASES) >= 90
    for case in CASES:
        assert case["expected"].removeprefix("review:") in (*PII_CATEGORIES, "none"), case
        assert case["confidence"] in ("", *rules.CONFIDENCE_LEVELS), case
        assert case["method"] in ("", *rules.DETECTION_METHODS), case


def test_fixture_covers_every_category_by_values_name_and_type():
    def covered(method):
        return {c["expected"] for c in CASES if c["method"] == method}

    assert covered("regex") >= set(PII_CATEGORIES) - {"other"}
    assert covered("column_name") >= {"email", "phone", "ssn", "national_id", "credit_card", "name", "ip_address",
                                      "date_of_birth", "gender", "address", "passport", "driver_license",
                                      "vehicle_id", "medical_record_number", "diagnosis_code", "medication",
                                      "lab_result"}
    assert {c["expected"] for c in CASES if c["expected"].startswith("review:")} >= {"review:ssn", "review:email",
                                                                                      "review:address"}
    assert covered("type_heuristic") == {"ip_address", "date_of_birth"}


def test_fixture_holds_every_reference_false_positive_and_word_boundary_case():
    expected = {c["name"]: c["expected"] for c in CASES}
    for name in ("hotel", "intel", "cancellation", "basin", "timespan"):
        assert expected[name] == "none", name
    assert expected["user_ssn"] == "ssn"
    assert expected["customer_dob"] == "date_of_birth"
    assert expected["user_ip_address"] == "ip_address"


# --- names, values and types ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["company", "span", "basin", "cosine", "business", "hotel", "intel",
                                  "cancellation", "excellent", "adobe", "zip_file", "ship_date", "description",
                                  "timespan", "faxed_at", "name", "city", "state", "country", "username"])
def test_names_that_are_not_pii(name):
    assert rules.name_category(name) is None


@pytest.mark.parametrize(("name", "category"), [
    ("customer_email", "email"), ("user_ssn", "ssn"), ("patient_dob", "date_of_birth"),
    ("user_ip_address", "ip_address"), ("billing_address", "address"), ("zip", "address"),
    ("customer_name", "name"), ("CellPhone", "phone"), ("SSN", "ssn"), ("patientDOB", "date_of_birth"),
])
def test_names_that_are_pii(name, category):
    assert rules.name_category(name).category == category


def test_vocabulary():
    assert PII_CATEGORIES == rules.PII_CATEGORIES
    assert set(rules.DEFAULT_MASKING) == set(PII_CATEGORIES)
    assert set(rules.DEFAULT_MASKING.values()) <= set(rules.MASKING_STRATEGIES)
    assert set(MIN_SHARE) == set(SPECIFICITY) == set(PII_CATEGORIES) - {"other"}


def test_tokens():
    assert rules.tokens("userIPAddress") == ["user", "ip", "address"]
    assert rules.tokens("address_line2") == ["address", "line"]
    assert rules.tokens("__") == []


def test_value_validators():
    assert validators.credit_card("4111 1111 1111 1111") and not validators.credit_card("4111 1111 1111")
    assert not validators.credit_card("4111--1111-1111-1111")  # one separator between digits
    for invalid in ("000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"):
        assert not validators.ssn(invalid), invalid
    for address in ("::1", "2001:db8::1", "fe80::1%eth0", "10.0.0.1", "10.0.0.0/8"):
        assert validators.ip_address(address), address
    for not_ip in ("256.1.1.1", "1.2.3", "01.2.3.4", "00:1a:2b:3c:4d:5e", "12:30:00"):
        assert not validators.ip_address(not_ip), not_ip
    assert validators.phone("555-1234") and not validators.phone("5551234")
    assert not validators.phone("123-45-6789")  # an SSN
    assert not validators.phone("2026-01-15")  # a date
    assert not validators.phone("2345 6789 0124")  # an Aadhaar number
    assert validators.email("jo.smith+tag@d.co.uk") and not validators.email("jo@localhost")
    assert validators.parse_date("4/21/1958") == date(1958, 4, 21)
    assert validators.parse_date("21.04.1958") == date(1958, 4, 21)
    assert validators.bank_account("GB82 WEST 1234 5698 7654 32") == "IBAN"
    assert validators.bank_account("GB82 WEST 1234 5698 7654 33") is None
    assert validators.swift_bic("DEUTDEFF") and not validators.swift_bic("SANDWICH")
    assert validators.vehicle_id("1M8GDM9AXKP042788") and not validators.vehicle_id("1M8GDM9A1KP042788")
    assert validators.loinc_code("4548-4") and not validators.loinc_code("4548-5")
    assert validators.national_id("AB123456C") == "UK National Insurance number"
    assert validators.national_id("9434765919") is None  # bare digits need an id-like name
    assert validators.national_id("9434765919", plain_ok=True) == "UK NHS number"


def test_type_families():
    assert [rules.type_family(t) for t in ("interval", "int4", "DOUBLE PRECISION", "datetime2", "time",
                                           "jsonb", "uuid", "longblob", "character varying(20)")] == [
        "text", "number", "number", "date", "text", "document", "uuid", "binary", "text"]


# --- scoring and confidence -------------------------------------------------------------------------


def test_best_score_wins_not_the_first_in_a_list():
    phone, ip = CategoryScore("phone", ("p",) * 7, 10), CategoryScore("ip_address", ("i",) * 9, 10)
    assert best_score([phone, ip]).category == "ip_address"
    assert best_score([ip, phone]).category == "ip_address"


def test_equal_shares_go_to_the_more_specific_category():
    assert best_score([CategoryScore("phone", ("p",) * 8, 10), CategoryScore("ssn", ("s",) * 8, 10)]).category == "ssn"


def test_categories_below_their_minimum_share_never_win():
    assert best_score([CategoryScore("phone", ("p",) * 5, 10), CategoryScore("email", ("e",) * 4, 10, 0.5)]) is None
    assert best_score([CategoryScore("email", ("e",) * 5, 10, 0.5)]).category == "email"  # email needs 50%


def emails(n: int) -> list[str]:
    return [f"user{i}@mail.example" for i in range(n)]


def test_high_confidence_needs_ten_samples_and_eighty_percent():
    assert detect_column("x", "text", emails(9)).confidence == "medium"
    assert detect_column("x", "text", emails(10)).confidence == "high"
    assert detect_column("x", "text", emails(16) + ["n/a"] * 4).confidence == "high"  # 80%
    assert detect_column("x", "text", emails(15) + ["n/a"] * 5).confidence == "medium"  # 75%


def test_fewer_than_three_samples_are_low_unless_the_name_agrees():
    assert detect_column("x", "text", emails(2)).confidence == "low"
    assert detect_column("x", "text", emails(3)).confidence == "medium"
    assert detect_column("email", "text", emails(1)).confidence == "medium"


def test_dates_without_a_birth_name_never_reach_high():
    births = [f"{1940 + 2 * i}-0{1 + i % 9}-1{i % 10}" for i in range(30)]
    assert detect_column("d", "date", births, today=TODAY).confidence == "medium"
    assert detect_column("patient_dob", "date", births, today=TODAY).confidence == "high"


def test_values_that_contradict_the_name_only_suggest_a_review():
    found = detect_column("email", "text", ["12", "13", "n/a"])
    assert (found.category, found.confidence, found.method) == ("email", "low", "column_name")
    assert found.reason == ("suggestion to review: column name 'email', but only 0/3 sampled values have "
                            "the shape of valid email addresses (0 valid)")
    assert found.evidence.to_dict() == {"sampled": 3, "matched": 0, "examples": ["***"], "suggestion": True}


def test_values_with_the_shape_but_not_the_checksum_leave_the_name_at_medium():
    found = detect_column("credit_card", "text", ["4111111111111112", "5555555555554445", "4012888888881882"])
    assert (found.category, found.confidence, found.method, found.suggestion) == ("credit_card", "medium",
                                                                                 "column_name", False)
    assert found.reason == "column name 'credit_card'; 0/3 sampled values are Luhn-valid card numbers"


def test_reasons_quote_the_column_name_exactly():
    for name in ("Credit Card Number", "E-Mail Address", "DL_lic_Florida", "userIPAddress", "Driver License Georgia"):
        found = detect_column(name, "text", [])
        assert f"column name {name!r}" in found.reason
        assert f"'{rules.name_category(name).words}'" in found.reason
        assert rules.name_category(name).words in name


# --- evidence -----------------------------------------------------------------------------------


def test_evidence_counts_skip_empty_and_binary_values_and_examples_are_masked():
    values = ["ann@example.com", "bob@example.com", None, "", "   ", "not an email", b"\x00\xff",
              memoryview(b"x")] + [f"p{i}@corp.example" for i in range(8)]
    found = detect_column("contact", "text", values)
    assert found.category == "email"
    assert (found.evidence.sampled, found.evidence.matched) == (11, 10)
    assert found.evidence.examples == ("a***@example.com", "b***@example.com", "p***@corp.example")
    assert found.reason == "10/11 sampled values are valid email addresses"


def test_to_dict_is_camel_case_and_never_contains_a_raw_value():
    ssns = ["123-45-6789", "234-56-7890", "345-67-8901", "456-78-9012"] * 3
    found = detect_column("tax_ref", "text", ssns)
    data = found.to_dict()
    assert data == {"category": "ssn", "confidence": "high", "method": "regex",
                    "reason": "12/12 sampled values are valid SSNs",
                    "evidence": {"sampled": 12, "matched": 12, "examples": ["***"]},
                    "maskingStrategy": "full"}
    text = json.dumps(data)
    assert not any(ssn in text for ssn in ssns)


def test_name_and_type_detections_show_masked_samples_too():
    found = detect_column("first_name", "text", ["Maria", "Jonathan", "Xq"])
    assert found.evidence.to_dict() == {"sampled": 3, "matched": 2, "examples": ["M***", "J***"]}
    peer = detect_column("peer", "inet", [])
    assert (peer.method, peer.confidence, peer.reason) == ("type_heuristic", "low",
                                                           "column type 'inet' stores network addresses")


def test_detect_columns_returns_only_hits():
    found = detect_columns([("id", "integer", [1, 2]), ("email", "text", []), ("ssn", "text", ["123-45-6789"]),
                            ("hotel", "text", ["Ritz"])])
    assert set(found) == {"email", "ssn"}
    assert all(isinstance(d, Detection) for d in found.values())
    assert detect_columns([]) == {}


# --- robustness ------------------------------------------------------------------------------------

SAMPLE = st.one_of(st.none(), st.text(max_size=40), st.binary(max_size=8), st.integers(), st.floats(),
                   st.booleans(), st.dates(), st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=3))
TYPES = st.one_of(st.none(), st.sampled_from(["text", "integer", "boolean", "date", "inet", "jsonb", "bytea",
                                              "timestamptz", "uuid", "text[]"]), st.text(max_size=12))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=30), TYPES, st.lists(SAMPLE, max_size=15))
def test_detection_never_raises_and_never_shows_a_raw_value(name, data_type, values):
    found = detect_column(name, data_type, values)
    if found is None:
        return
    assert found.category in PII_CATEGORIES and found.category != "other"
    assert found.confidence in rules.CONFIDENCE_LEVELS and found.method in rules.DETECTION_METHODS
    texts = rules.sample_texts(values)
    assert found.evidence.sampled == len(texts) and found.evidence.matched <= len(texts)
    assert not set(texts) & set(found.evidence.examples)
