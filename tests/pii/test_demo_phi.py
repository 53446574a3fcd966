"""The Acme Health demo's own datasource, scanned as a user would: its health information is flagged PHI."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from atlas_compliance.demo import hospital_db
from atlas_compliance.pii import scanner
from atlas_compliance.pii.categories import PHI_CATEGORIES

EXPECTED_PHI = {
    ("patients", "mrn"): "medical_record_number",
    ("encounters", "diagnosis_code"): "diagnosis_code",
    ("prescriptions", "drug_name"): "medication",
    ("prescriptions", "ndc_code"): "medication",
    ("lab_results", "test_code"): "lab_result",
    ("lab_results", "value"): "lab_result",
    ("insurance_claims", "subscriber_id"): "health_plan_id",
}
EXPECTED_PII = {
    ("patients", "first_name"): "name", ("patients", "last_name"): "name", ("patients", "ssn"): "ssn",
    ("patients", "email"): "email", ("patients", "phone"): "phone", ("patients", "date_of_birth"): "date_of_birth",
    ("patients", "address"): "address", ("patients", "zip_code"): "address", ("staff", "email"): "email",
    ("staff", "first_name"): "name", ("staff", "last_name"): "name", ("payments", "card_number"): "credit_card",
}


@pytest.fixture(scope="module")
def hospital(server_url):
    name = f"atlas_demo_hospital_{secrets.token_hex(4)}"
    url = hospital_db.ensure_hospital_database(server_url, rows=120, database=name)
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_demo_hospital_s_health_data_is_flagged_phi(hospital):
    result = scanner.scan(hospital, source_id="acme-hospital")
    found = {(c.table, c.column): c.detection for c in result.detections}
    for column, category in EXPECTED_PHI.items():
        assert column in found, f"{column} not flagged"
        assert found[column].category == category, (column, found[column])
        assert category in PHI_CATEGORIES
        assert not found[column].suggestion
    for column, category in EXPECTED_PII.items():
        assert found[column].category == category, (column, found[column])
    # Nothing else of the demo's tables is taken for personal data.
    assert set(found) == set(EXPECTED_PHI) | set(EXPECTED_PII), sorted(set(found) - set(EXPECTED_PHI) - set(EXPECTED_PII))


def test_an_older_demo_database_is_rebuilt_once(server_url, hospital):
    name = hospital.rsplit("/", 1)[-1].split("?", 1)[0]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS 'atlas-demo-hospital 1'")
    hospital_db.ensure_hospital_database(server_url, rows=120, database=name)
    with psycopg.connect(hospital) as conn:
        columns = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns "
                                              "WHERE table_name = 'prescriptions'")}
        assert "ndc_code" in columns
        created = conn.execute("SELECT count(*) FROM prescriptions").fetchone()[0]
    hospital_db.ensure_hospital_database(server_url, rows=120, database=name)  # current: reused as it is
    with psycopg.connect(hospital) as conn:
        assert conn.execute("SELECT count(*) FROM prescriptions").fetchone()[0] == created == 120
