"""The demo's own datasource: an `acme_hospital` database with fake but realistic data, which the
demo scans for PII exactly as a user would scan theirs."""

from __future__ import annotations

import random
from datetime import date, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.sql

from ..db.pool import to_libpq_url
from . import hospital as h

DATABASE = "acme_hospital"
# Bumped when the data changes: an older demo database is then built again (it is only the demo's own
# datasource; Atlas's classifications of it are kept, sticky as always).
VERSION = "atlas-demo-hospital 2 (PHI: MRN, ICD-10, NDC, LOINC, MBI)"

DDL = """
CREATE TABLE patients (id int PRIMARY KEY, mrn text, first_name text, last_name text, date_of_birth date,
    ssn text, email text, phone text, address text, zip_code text, created_at timestamptz);
CREATE TABLE staff (id int PRIMARY KEY, first_name text, last_name text, email text, role text, department text,
    hired_at date);
CREATE TABLE encounters (id int PRIMARY KEY, patient_id int, provider_id int, admitted_at timestamptz,
    discharged_at timestamptz, department text, diagnosis_code text);
CREATE TABLE prescriptions (id int PRIMARY KEY, encounter_id int, patient_id int, drug_name text, ndc_code text,
    dosage text, prescribed_by int, prescribed_at timestamptz);
CREATE TABLE lab_results (id int PRIMARY KEY, patient_id int, test_code text, value numeric, unit text,
    abnormal boolean, collected_at timestamptz);
CREATE TABLE appointments (id int PRIMARY KEY, patient_id int, provider_id int, scheduled_for timestamptz,
    status text);
CREATE TABLE invoices (id int PRIMARY KEY, patient_id int, encounter_id int, amount numeric, status text,
    issued_at date, due_date date);
CREATE TABLE payments (id int PRIMARY KEY, invoice_id int, amount numeric, card_number text, method text,
    paid_at timestamptz);
CREATE TABLE insurance_claims (id int PRIMARY KEY, claim_number text, patient_id int, payer text, subscriber_id text,
    amount_claimed numeric, status text, submitted_at date);
CREATE SCHEMA analytics;
CREATE TABLE analytics.daily_census (day date PRIMARY KEY, census int, occupancy numeric);
"""

STREETS = ["Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm St", "Harbor Way", "Hillcrest Dr"]
DEPARTMENTS = ["ER", "Cardiology", "Oncology", "Pediatrics", "Orthopedics", "Radiology"]
# (generic name, an NDC package code in the 5-4-2 layout)
DRUGS = [("atorvastatin", "00071-0155-23"), ("metformin", "00093-7214-01"), ("lisinopril", "68180-0513-01"),
         ("amoxicillin", "00093-3109-01"), ("simvastatin", "00006-0740-31"), ("omeprazole", "62175-0136-37")]
# ICD-10-CM codes: diabetes (E10–E13, which the analysts' queries look for), hypertension, asthma, …
DIAGNOSES = ["E11.9", "E11.65", "E10.9", "E13.9", "I10", "J45.909", "E78.5", "I25.10", "N18.3", "K21.9", "F32.9",
             "M54.5"]
# (test, its LOINC code, unit)
LAB_TESTS = [("HbA1c", "4548-4", "%"), ("LDL cholesterol", "13457-7", "mg/dL"), ("TSH", "3016-3", "mIU/L"),
             ("CRP", "1988-5", "mg/L")]
_MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"  # CMS never uses S, L, O, I, B or Z
# Luhn-valid test card numbers.
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "4012 8888 8888 1881", "3782 822463 10005",
         "6011 1111 1111 1117", "5105 1051 0510 5100"]


def datasource_url(atlas_url: str, database: str = DATABASE) -> str:
    """The hospital database on the same server as Atlas's own database."""
    parts = urlsplit(to_libpq_url(atlas_url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _mbi(rng: random.Random) -> str:
    """A Medicare Beneficiary Identifier in CMS's layout (fake, like every value here)."""
    letter, either = (lambda: rng.choice(_MBI_LETTERS)), (lambda: rng.choice(_MBI_LETTERS + "0123456789"))
    digit = lambda: str(rng.randint(0, 9))  # noqa: E731
    return (str(rng.randint(1, 9)) + letter() + either() + digit() + letter() + either() + digit() + letter()
            + letter() + digit() + digit())


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(101, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}"


def ensure_hospital_database(atlas_url: str, rows: int = 300, *, database: str = DATABASE) -> str:
    """Create and fill the hospital database once (again when its ``VERSION`` changed); its libpq URL."""
    url = datasource_url(atlas_url, database)
    with psycopg.connect(to_libpq_url(atlas_url), autocommit=True) as conn:
        found = conn.execute("SELECT shobj_description(oid, 'pg_database') AS version FROM pg_database "
                             "WHERE datname = %s", (database,)).fetchone()
        if found and found[0] == VERSION:
            return url
        if found:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
        conn.execute(f'COMMENT ON DATABASE "{database}" IS {psycopg.sql.quote(VERSION)}')
    rng = random.Random(42)
    start = date(2020, 1, 1)
    with psycopg.connect(url, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        patients = []
        for i in range(1, rows + 1):
            first, last = rng.choice(h.FIRST).title(), rng.choice(h.LAST).title()
            patients.append((i, f"MRN{100000 + i}", first, last, date(1940, 1, 1) + timedelta(days=rng.randint(0, 29000)),
                             _ssn(rng), f"{first.lower()}.{last.lower()}{i}@mail.example",
                             f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                             f"{rng.randint(1, 9999)} {rng.choice(STREETS)}", f"{rng.randint(10001, 99950):05d}"))
        cur.executemany("INSERT INTO patients VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s, now())", patients)
        cur.executemany("INSERT INTO staff VALUES (%s,%s,%s,%s,%s,%s,%s)", [
            (i, rng.choice(h.FIRST).title(), rng.choice(h.LAST).title(), f"staff{i}@acme-health.example",
             rng.choice(["nurse", "physician", "billing", "it"]), rng.choice(DEPARTMENTS),
             start + timedelta(days=rng.randint(0, 2000))) for i in range(1, 61)])
        cur.executemany("INSERT INTO encounters VALUES (%s,%s,%s, now() - make_interval(days => %s), now(), %s, %s)", [
            (i, rng.randint(1, rows), rng.randint(1, 60), rng.randint(1, 900), rng.choice(DEPARTMENTS),
             rng.choice(DIAGNOSES)) for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO prescriptions VALUES (%s,%s,%s,%s,%s,%s,%s, now())", [
            (i, rng.randint(1, rows), rng.randint(1, rows), *rng.choice(DRUGS), f"{rng.choice([5, 10, 20, 40])} mg",
             rng.randint(1, 60)) for i in range(1, rows + 1)])
        labs = [rng.choice(LAB_TESTS) for _ in range(rows)]
        cur.executemany("INSERT INTO lab_results VALUES (%s,%s,%s,%s,%s,%s, now())", [
            (i, rng.randint(1, rows), code, round(rng.uniform(1, 200), 1), unit, rng.random() < 0.2)
            for i, (_, code, unit) in enumerate(labs, start=1)])
        cur.executemany("INSERT INTO appointments VALUES (%s,%s,%s, now() + make_interval(days => %s), %s)", [
            (i, rng.randint(1, rows), rng.randint(1, 60), rng.randint(-30, 60),
             rng.choice(["booked", "done", "no_show"])) for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO invoices VALUES (%s,%s,%s,%s,%s,%s,%s)", [
            (i, rng.randint(1, rows), rng.randint(1, rows), round(rng.uniform(20, 5000), 2),
             rng.choice(["open", "paid", "overdue"]), start + timedelta(days=rng.randint(0, 2000)),
             start + timedelta(days=rng.randint(2000, 2300))) for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO payments VALUES (%s,%s,%s,%s,%s, now())", [
            (i, rng.randint(1, rows), round(rng.uniform(20, 5000), 2), rng.choice(CARDS), "card")
            for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO insurance_claims VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", [
            (i, f"CLM-{200000 + i}", rng.randint(1, rows), rng.choice(["Aetna", "Cigna", "Medicare"]), _mbi(rng),
             round(rng.uniform(100, 9000), 2), rng.choice(["pending", "paid", "denied"]),
             start + timedelta(days=rng.randint(0, 2000))) for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO analytics.daily_census VALUES (%s,%s,%s)", [
            (date(2026, 1, 1) + timedelta(days=d), rng.randint(200, 400), round(rng.uniform(0.5, 1.0), 2))
            for d in range(300)])
        conn.commit()
    return url
