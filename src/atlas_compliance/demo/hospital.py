"""The demo's hospital-and-billing world: people, agents, and the SQL they run."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

DEMO_PASSWORD = "atlas-demo-2026"
ORG_SLUG = "acme-health"
ORG_NAME = "Acme Health"

FIRST = ["maria", "james", "aisha", "wei", "olga", "diego", "fatima", "liam", "noah", "emma", "ravi", "sofia",
         "kenji", "chloe", "omar", "hannah", "lucas", "amara", "ivan", "grace", "mateo", "yara", "ethan", "nora",
         "felix", "leila", "samuel", "ines", "tomas", "zoe", "arjun", "mei"]
LAST = ["garcia", "smith", "khan", "zhang", "petrova", "lopez", "haddad", "obrien", "johnson", "brown", "patel",
        "rossi", "tanaka", "martin", "farouk", "schmidt", "silva", "okafor", "ivanov", "lee", "torres", "nasser",
        "walker", "berg", "weber", "karimi", "adeyemi", "moreau", "novak", "fischer", "iyer", "chen"]

# (kind, role, count, typical daily queries)
PEOPLE_PLAN = [("human", "owner", 1, 4), ("human", "admin", 3, 10), ("human", "member", 28, 12)]
AGENTS = [("etl-nightly", "scheduler", 70), ("bi-dashboard", "agent", 90), ("claims-bot", "agent", 40),
          ("mcp-assistant", "mcp", 35), ("billing-sync", "scheduler", 45), ("fraud-monitor", "agent", 30),
          ("api-partner-key", "api_key", 25), ("research-export", "agent", 10)]


@dataclass(frozen=True)
class Actor:
    user_id: str | None
    label: str
    kind: str  # human, agent, mcp, scheduler, api_key
    weight: float
    team: str


def _i(rng: random.Random, lo: int, hi: int) -> int:
    return rng.randint(lo, hi)


def _date(rng: random.Random) -> str:
    return f"2026-{_i(rng, 1, 12):02d}-{_i(rng, 1, 28):02d}"


# Each template: (team, weight, dialect, builder). Teams steer who runs what.
Template = tuple[str, float, str, Callable[[random.Random], str]]

TEMPLATES: list[Template] = [
    ("clinical", 6, "postgres", lambda r: f"SELECT p.first_name, p.last_name, p.date_of_birth, p.mrn FROM patients p "
                                          f"WHERE p.id = {_i(r, 1, 90000)}"),
    ("clinical", 5, "postgres", lambda r: "SELECT e.id, e.admitted_at, e.department, e.diagnosis_code FROM encounters e "
                                          f"WHERE e.patient_id = {_i(r, 1, 90000)} ORDER BY e.admitted_at DESC LIMIT 20"),
    ("clinical", 4, "postgres", lambda r: "SELECT p.first_name, p.last_name, rx.drug_name, rx.dosage FROM prescriptions rx "
                                          "JOIN patients p ON p.id = rx.patient_id "
                                          f"WHERE rx.prescribed_at >= '{_date(r)}' AND rx.drug_name ILIKE '%statin%'"),
    ("clinical", 3, "postgres", lambda r: "SELECT l.test_code, l.value, l.unit, l.collected_at FROM lab_results l "
                                          f"WHERE l.patient_id = {_i(r, 1, 90000)} AND l.abnormal"),
    ("clinical", 2, "postgres", lambda r: "WITH recent AS (SELECT patient_id, max(admitted_at) AS last_visit "
                                          "FROM encounters GROUP BY patient_id) "
                                          "SELECT p.email, p.phone, r.last_visit FROM recent r "
                                          f"JOIN patients p ON p.id = r.patient_id WHERE r.last_visit < '{_date(r)}'"),
    ("clinical", 2, "postgres", lambda r: "SELECT a.scheduled_for, a.status, s.last_name AS provider FROM appointments a "
                                          f"JOIN staff s ON s.id = a.provider_id WHERE a.patient_id = {_i(r, 1, 90000)}"),
    ("billing", 6, "postgres", lambda r: "SELECT i.id, i.amount, i.status, i.due_date FROM invoices i "
                                         f"WHERE i.status = 'overdue' AND i.due_date < '{_date(r)}'"),
    ("billing", 4, "postgres", lambda r: "SELECT i.id, i.amount, pay.amount AS paid, pay.method FROM invoices i "
                                         "LEFT JOIN payments pay ON pay.invoice_id = i.id "
                                         f"WHERE i.patient_id = {_i(r, 1, 90000)}"),
    ("billing", 3, "postgres", lambda r: "SELECT date_trunc('month', paid_at) AS month, sum(amount) FROM payments "
                                         f"WHERE paid_at >= '{_date(r)}' GROUP BY 1 ORDER BY 1"),
    ("billing", 2, "postgres", lambda r: "SELECT pay.card_number, pay.amount, p.first_name, p.last_name, p.address "
                                         "FROM payments pay JOIN invoices i ON i.id = pay.invoice_id "
                                         f"JOIN patients p ON p.id = i.patient_id WHERE pay.id = {_i(r, 1, 400000)}"),
    ("billing", 3, "postgres", lambda r: "SELECT c.claim_number, c.subscriber_id, c.status, c.amount_claimed, c.payer "
                                         "FROM insurance_claims c "
                                         f"WHERE c.status IN ('denied', 'pending') AND c.submitted_at > '{_date(r)}'"),
    ("billing", 2, "postgres", lambda r: "UPDATE invoices SET status = 'paid' "
                                         f"WHERE id = {_i(r, 1, 300000)} AND status = 'open'"),
    ("analytics", 5, "postgres", lambda r: "SELECT department, count(*) AS visits, avg(discharged_at - admitted_at) AS los "
                                           f"FROM encounters WHERE admitted_at >= '{_date(r)}' GROUP BY department "
                                           "HAVING count(*) > 10 ORDER BY visits DESC"),
    ("analytics", 3, "postgres", lambda r: "SELECT day, census, occupancy FROM analytics.daily_census "
                                           f"WHERE day >= '{_date(r)}' ORDER BY day"),
    ("analytics", 3, "postgres", lambda r: "SELECT p.zip_code, count(DISTINCT e.patient_id) FROM encounters e "
                                           "JOIN patients p ON p.id = e.patient_id "
                                           f"WHERE e.diagnosis_code LIKE 'E1{_i(r, 0, 9)}%' GROUP BY p.zip_code"),
    ("analytics", 2, "postgres", lambda r: "SELECT drug_name, ndc_code, count(*), rank() OVER (ORDER BY count(*) DESC) "
                                           f"FROM prescriptions WHERE prescribed_at > '{_date(r)}' GROUP BY drug_name, ndc_code"),
    ("analytics", 1, "snowflake", lambda r: "SELECT department, diagnosis_code, count(*) AS n FROM encounters "
                                            "QUALIFY row_number() OVER (PARTITION BY department ORDER BY n DESC) <= 5 "
                                            "GROUP BY department, diagnosis_code"),
    ("hr", 4, "postgres", lambda r: f"SELECT first_name, last_name, email, department FROM staff WHERE role = "
                                    f"'{r.choice(['nurse', 'physician', 'billing', 'it'])}'"),
    ("hr", 1, "postgres", lambda r: f"SELECT * FROM staff WHERE id = {_i(r, 1, 2500)}"),
    ("it", 2, "postgres", lambda r: "SELECT count(*) FROM patients"),
    ("it", 1, "postgres", lambda r: "SELECT * FROM patients LIMIT 100"),
    ("it", 1, "postgres", lambda r: f"SELEC id FROM patients WHERE id = {_i(r, 1, 90000)}"),  # a typo: unparseable
    ("it", 1, "postgres", lambda r: "EXPLAIN ANALYZE SELECT * FROM encounters WHERE department = 'ER'"),
    ("agent", 6, "postgres", lambda r: "SELECT department, count(*) FROM encounters "
                                       f"WHERE admitted_at::date = '{_date(r)}' GROUP BY department"),
    ("agent", 4, "postgres", lambda r: "SELECT i.status, sum(i.amount) FROM invoices i GROUP BY i.status"),
    ("agent", 3, "postgres", lambda r: "INSERT INTO analytics.daily_census (day, census, occupancy) "
                                       "SELECT admitted_at::date, count(*), count(*) / 400.0 FROM encounters "
                                       f"WHERE admitted_at >= '{_date(r)}' GROUP BY 1"),
    ("agent", 2, "postgres", lambda r: f"SELECT p.email FROM patients p WHERE p.id IN (SELECT patient_id FROM "
                                       f"appointments WHERE status = 'no_show' AND scheduled_for > '{_date(r)}')"),
    ("agent", 1, "postgres", lambda r: "MERGE INTO insurance_claims c USING staging_claims s "
                                       "ON c.claim_number = s.claim_number WHEN MATCHED THEN UPDATE SET status = s.status "
                                       "WHEN NOT MATCHED THEN INSERT (claim_number, status) VALUES (s.claim_number, s.status)"),
]

TEAMS_BY_ROLE = {"owner": ["analytics", "billing", "it"], "admin": ["it", "hr", "analytics"]}
MEMBER_TEAMS = ["clinical", "clinical", "clinical", "billing", "billing", "analytics", "hr"]
AGENT_TEAMS = {"etl-nightly": "agent", "bi-dashboard": "analytics", "claims-bot": "billing",
               "mcp-assistant": "clinical", "billing-sync": "billing", "fraud-monitor": "billing",
               "api-partner-key": "agent", "research-export": "analytics"}

FAILURES = ["permission denied for table patients", "canceling statement due to statement timeout",
            "relation \"staging_claims\" does not exist", "row-level security policy violation",
            "Approval required: PHI bulk export"]
