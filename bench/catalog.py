"""A synthetic warehouse: table names, their columns, Zipf weights, and realistic SQL texts over them."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

_NOUNS = (
    "patients", "encounters", "diagnoses", "prescriptions", "lab_results", "appointments", "providers",
    "claims", "claim_lines", "insurance_plans", "customers", "accounts", "orders", "order_items", "invoices",
    "payments", "refunds", "subscriptions", "products", "inventory", "shipments", "suppliers", "employees",
    "payroll", "departments", "tickets", "ticket_comments", "users", "user_profiles", "addresses", "contacts",
    "leads", "opportunities", "campaigns", "emails", "sms_messages", "devices", "logins", "audit_events",
    "transactions", "ledger_entries", "budgets", "contracts", "vendors", "assets", "locations", "schedules",
    "referrals", "immunizations", "allergies", "vitals", "notes", "documents", "consents", "households",
)
_SUFFIXES = ("", "_history", "_archive", "_staging", "_v2", "_daily")
_SCHEMAS = ("analytics", "billing", "warehouse", "hr", "crm")
_SCHEMA_TABLES = ("events", "page_views", "sessions", "fact_orders", "dim_customers", "invoices",
                  "subscriptions", "employees", "leads", "revenue_daily", "cohorts", "funnels")

PII_COLUMNS = {
    "email": "email", "phone": "phone", "ssn": "ssn", "first_name": "name", "last_name": "name",
    "date_of_birth": "dob", "street_address": "address", "zip_code": "address", "ip_address": "ip_address",
    "credit_card_number": "credit_card", "mrn": "medical_record", "diagnosis_code": "health",
}
_PLAIN_COLUMNS = (
    "status", "amount", "quantity", "total", "currency", "category", "type", "source", "region", "country",
    "notes", "score", "priority", "channel", "plan", "tier", "code", "description", "title", "owner_id",
    "account_id", "customer_id", "patient_id", "provider_id", "order_id", "product_id", "duration", "price",
    "discount", "tax", "balance", "is_active", "deleted", "version", "external_ref", "started_at", "ended_at",
)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]


def build_tables(count: int, rng: random.Random) -> list[Table]:
    """``count`` tables: mostly `public` ones (stored unqualified), a few schema-qualified ones."""
    names: list[str] = []
    schema_names = [f"{s}.{t}" for s, t in itertools.product(_SCHEMAS, _SCHEMA_TABLES)]
    rng.shuffle(schema_names)
    names.extend(schema_names[: max(1, count // 20)])
    for suffix in _SUFFIXES:
        for noun in _NOUNS:
            if len(names) < count:
                names.append(noun + suffix)
    n = 0
    while len(names) < count:
        names.append(f"extract_{n:03d}")
        n += 1
    rng.shuffle(names)
    pii = list(PII_COLUMNS)
    tables = []
    for name in names[:count]:
        extra = rng.sample(_PLAIN_COLUMNS, rng.randint(4, 12)) + rng.sample(pii, rng.randint(0, 4))
        tables.append(Table(name, ("id", "created_at", "updated_at", *sorted(set(extra)))))
    return tables


def zipf_cum_weights(n: int, s: float) -> list[float]:
    """Cumulative Zipf weights for ranks 1..n (for random.choices(cum_weights=...))."""
    return list(itertools.accumulate(1.0 / (rank ** s) for rank in range(1, n + 1)))


def _alias(i: int) -> str:
    return "abcdefgh"[i]


# The SQL texts below are audit-log *content* (what users ran), never executed by the bench.
def select_sql(tables: list[Table], columns: dict[str, list[str]], rng: random.Random, *,
               literal: int | None = None) -> str:
    """A SELECT reading ``columns[t]`` of each table ``t`` (joined on id when several), with a literal."""
    value = rng.randint(1, 10_000_000) if literal is None else literal
    first = tables[0]
    if len(tables) == 1:
        cols = columns[first.name]
        shape = rng.random()
        if shape < 0.15 and len(cols) > 1:
            since = f"now() - interval '{value % 90 + 1} days'"
            tail = f"GROUP BY {cols[0]} ORDER BY n DESC LIMIT 100"
            return f"SELECT {cols[0]}, count(*) AS n FROM {first.name} WHERE created_at >= {since} {tail}"  # noqa: S608
        if shape < 0.25:
            return f"SELECT {', '.join(cols)} FROM {first.name} WHERE id = {value}"  # noqa: S608
        return f"SELECT {', '.join(cols)} FROM {first.name} WHERE id > {value} ORDER BY id LIMIT 500"  # noqa: S608
    select = ", ".join(f"{_alias(i)}.{c}" for i, t in enumerate(tables) for c in columns[t.name])
    joins = " ".join(f"JOIN {t.name} {_alias(i)} ON {_alias(i)}.id = a.id" for i, t in enumerate(tables) if i)
    return f"SELECT {select} FROM {first.name} a {joins} WHERE a.id > {value} LIMIT 1000"  # noqa: S608


NO_TABLE_SQL = ("SELECT 1", "SELECT now()", "SHOW search_path", "SELECT version()", "SELECT current_user")


@dataclass(frozen=True)
class Query:
    tables: list[Table]
    columns: dict[str, list[str]]  # table -> columns of that table the query reads (sorted)


def pick_query(pool: list[Table], cum_weights: list[float], rng: random.Random) -> Query:
    """1–4 distinct tables from ``pool`` (Zipf-weighted), 1–5 columns of each (joins also read ``id``)."""
    k = rng.choices((1, 2, 3, 4), cum_weights=(55, 80, 92, 100))[0]
    k = min(k, len(pool))
    chosen: list[Table] = []
    while len(chosen) < k:
        t = rng.choices(pool, cum_weights=cum_weights)[0]
        if t not in chosen:
            chosen.append(t)
    columns: dict[str, list[str]] = {}
    for t in chosen:
        if rng.random() < 0.02:
            cols = {"*"}
        else:
            cols = set(rng.sample(t.columns, min(len(t.columns), rng.randint(1, 5))))
            if k > 1:
                cols.add("id")
        columns[t.name] = sorted(cols)
    return Query(chosen, columns)
