"""The demo's own datasource: an `acme_hospital` database with fake but realistic data, which the
demo scans for PII exactly as a user would scan theirs."""

from __future__ import annotations

import random
from datetime import date, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ..db.pool import to_libpq_url
from . import hospital as h

DATABASE = "acme_hospital"

DDL = """
CREATE TABLE patients (id int PRIMARY KEY, mrn text, first_name text, last_name text, date_of_birth date,
    ssn text, email text, phone text, address text, zip_code text, created_at timestamptz);
CREATE TABLE staff (id int PRIMARY KEY, first_name text, last_name text, email text, role text, department text,
    hired_at date);
CREATE TABLE encounters (id int PRIMARY KEY, patient_id int, provider_id int, admitted_at timestamptz,
    discharged_at timestamptz, department text, diagnosis_code text);
CREATE TABLE prescriptions (id int PRIMARY KEY, encounter_id int, patient_id int, drug_name text, dosage text,
    prescribed_by int, prescribed_at timestamptz);
CREATE TABLE lab_results (id int PRIMARY KEY, patient_id int, test_code text, value numeric, unit text,
    abnormal boolean, collected_at timestamptz);
CREATE TABLE appointments (id int PRIMARY KEY, patient_id int, provider_id int, scheduled_for timestamptz,
    status text);
CREATE TABLE invoices (id int PRIMARY KEY, patient_id int, encounter_id int, amount numeric, status text,
    issued_at date, due_date date);
CREATE TABLE payments (id int PRIMARY KEY, invoice_id int, amount numeric, card_number text, method text,
    paid_at timestamptz);
CREATE TABLE insurance_claims (id int PRIMARY KEY, claim_number text, patient_id int, payer text,
    amount_claimed numeric, status text, submitted_at date);
CREATE SCHEMA analytics;
CREATE TABLE analytics.daily_census (day date PRIMARY KEY, census int, occupancy numeric);
"""

STREETS = ["Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm St", "Harbor Way", "Hillcrest Dr"]
DEPARTMENTS = ["ER", "Cardiology", "Oncology", "Pediatrics", "Orthopedics", "Radiology"]
DRUGS = ["atorvastatin", "metformin", "lisinopril", "amoxicillin", "simvastatin", "omeprazole"]
# Luhn-valid test card numbers.
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "4012 8888 8888 1881", "3782 822463 10005",
         "6011 1111 1111 1117", "5105 1051 0510 5100"]


def datasource_url(atlas_url: str) -> str:
    """The hospital database on the same server as Atlas's own database."""
    parts = urlsplit(to_libpq_url(atlas_url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + DATABASE, parts.query, parts.fragment))


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(101, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}"


def ensure_hospital_database(atlas_url: str, rows: int = 300) -> str:
    """Create and fill `acme_hospital` once; return its libpq URL."""
    url = datasource_url(atlas_url)
    with psycopg.connect(to_libpq_url(atlas_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists:
            return url
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
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
             f"E{rng.randint(10, 14)}.{rng.randint(0, 9)}") for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO prescriptions VALUES (%s,%s,%s,%s,%s,%s, now())", [
            (i, rng.randint(1, rows), rng.randint(1, rows), rng.choice(DRUGS), f"{rng.choice([5, 10, 20, 40])} mg",
             rng.randint(1, 60)) for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO lab_results VALUES (%s,%s,%s,%s,%s,%s, now())", [
            (i, rng.randint(1, rows), rng.choice(["HBA1C", "LDL", "TSH", "CRP"]), round(rng.uniform(1, 200), 1),
             "mg/dL", rng.random() < 0.2) for i in range(1, rows + 1)])
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
        cur.executemany("INSERT INTO insurance_claims VALUES (%s,%s,%s,%s,%s,%s,%s)", [
            (i, f"CLM-{200000 + i}", rng.randint(1, rows), rng.choice(["Aetna", "Cigna", "Medicare"]),
             round(rng.uniform(100, 9000), 2), rng.choice(["pending", "paid", "denied"]),
             start + timedelta(days=rng.randint(0, 2000))) for i in range(1, rows + 1)])
        cur.executemany("INSERT INTO analytics.daily_census VALUES (%s,%s,%s)", [
            (date(2026, 1, 1) + timedelta(days=d), rng.randint(200, 400), round(rng.uniform(0.5, 1.0), 2))
            for d in range(300)])
        conn.commit()
    return url
