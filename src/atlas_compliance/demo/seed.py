"""Build the demo organization and its audit trail through the real ingest path.

Deterministic (seeded): re-running stores nothing twice (stable event ids) and reuses the data.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..audit import service as audit_service
from ..auth import repository as auth_repo
from ..auth import service as auth
from ..db.pool import Database
from ..pii import service as pii_service
from ..pii.rules import DEFAULT_MASKING
from . import hospital as h
from . import repository as repo

Progress = Callable[[int, int], None]


@dataclass
class DemoInfo:
    org_id: str
    org_slug: str
    admin_email: str
    owner_email: str
    member_email: str
    audit_rows: int
    created: bool
    people: list[tuple[str, str]] = field(default_factory=list)  # (email, role)


def _email(first: str, last: str) -> str:
    return f"{first}.{last}@{h.ORG_SLUG}.example"


async def ensure_people(db: Database) -> tuple[dict, list[h.Actor], list[tuple[str, str, str]], bool]:
    """Create the org and its members if missing; return (org, actors, [(user_id, email, role)], created)."""
    async with db.transaction() as conn:
        org = await auth_repo.get_organization_by_slug(conn, h.ORG_SLUG)
        created = org is None
        if created:
            org = await auth.create_organization(conn, h.ORG_SLUG, h.ORG_NAME)
    rng = random.Random(2026)
    members: list[tuple[str, str, str]] = []
    actors: list[h.Actor] = []
    index = 0
    for _kind, role, count, daily in h.PEOPLE_PLAN:
        for _ in range(count):
            first, last = h.FIRST[index % len(h.FIRST)], h.LAST[(index * 7) % len(h.LAST)]
            index += 1
            email = _email(first, last)
            async with db.transaction() as conn:
                user = await auth_repo.get_user_by_email(conn, email)
                if user is None:
                    user = await auth.create_user(conn, email=email, password=h.DEMO_PASSWORD, org_slug=h.ORG_SLUG,
                                                  role=role, name=f"{first.title()} {last.title()}")
            team = rng.choice(h.TEAMS_BY_ROLE.get(role, h.MEMBER_TEAMS))
            members.append((user["id"], email, role))
            actors.append(h.Actor(user["id"], email, "human", daily * rng.uniform(0.4, 1.6), team))
    for name, kind, daily in h.AGENTS:
        actors.append(h.Actor(f"svc:{name}", name, kind, float(daily), h.AGENT_TEAMS[name]))
    actors.append(h.Actor(None, "anonymous", "mcp", 6.0, "agent"))  # prompt audits with no user
    return org, actors, members, created


def generate_events(org_id: str, actors: list[h.Actor], *, days: int, target: int, now: datetime,
                    seed: int = 7) -> list[dict]:
    """A realistic audit trail: weekday rhythm, working hours for people, round-the-clock agents."""
    rng = random.Random(seed)
    by_team: dict[str, list[h.Template]] = {}
    for template in h.TEMPLATES:
        by_team.setdefault(template[0], []).append(template)
    total_weight = sum(a.weight for a in actors)
    per_day = target / days
    start_day = (now - timedelta(days=days)).date()
    events: list[dict] = []
    n = 0
    for d in range(days + 1):
        day = start_day + timedelta(days=d)
        rhythm = 0.35 if day.weekday() >= 5 else 1.15
        for actor in actors:
            expected = per_day * actor.weight / total_weight * rhythm * (1.0 if actor.kind == "human" else 1.3)
            count = max(0, int(rng.gauss(expected, math.sqrt(expected) + 0.5)))
            templates = by_team.get(actor.team, by_team["agent"])
            weights = [t[1] for t in templates]
            for _ in range(count):
                if actor.kind == "human":
                    hour = min(23, max(6, int(rng.gauss(13, 3))))
                else:
                    hour = rng.randint(0, 23)
                ts = datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), rng.randint(0, 59),
                              rng.randint(0, 999) * 1000, tzinfo=UTC)
                if ts > now:
                    continue
                _team, _w, dialect, build = rng.choices(templates, weights)[0]
                sql = build(rng)
                failed = rng.random() < 0.035
                n += 1
                events.append({
                    "eventId": "demo-" + hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()[:20],
                    "timestamp": ts.isoformat(), "userId": actor.user_id, "userLabel": actor.label,
                    "authMode": "managed" if actor.kind == "human" else "simple-key", "sql": sql,
                    "durationMs": int(rng.lognormvariate(3.2, 1.1)), "rowCount": None if failed else rng.randint(0, 500),
                    "success": not failed, "error": rng.choice(h.FAILURES) if failed else None,
                    "sourceId": "warehouse" if _team == "analytics" else ("billing-db" if _team == "billing" else "ehr-prod"),
                    "sourceType": dialect, "targetHost": "db.acme-health.internal", "actorKind": actor.kind,
                })
    events += anomalies(actors, now)
    events.sort(key=lambda e: e["timestamp"])
    return events


ANOMALY_ACCOUNT = "svc:reporting-export"  # a service account that appears only in the anomalies


def anomalies(actors: list[h.Actor], now: datetime) -> list[dict]:
    """A few unusual reads on the last whole day (UTC), for the unusual-access flags (docs/flags.md) to find:
    a person who reads `patients.ssn` 80 times and exports 48,210 patient rows in one query, and a service
    account never seen before that reads `ssn` at night."""
    day = (now - timedelta(days=1)).date()
    people = [a for a in actors if a.kind == "human"]
    person = next((a for a in people if a.team == "clinical"), people[0])
    at = lambda hour, minute, second=0: datetime(day.year, day.month, day.day, hour, minute, second,  # noqa: E731
                                                  tzinfo=UTC).isoformat()
    base = {"authMode": "managed", "durationMs": 40, "success": True, "error": None, "sourceId": "ehr-prod",
            "sourceType": "postgres", "targetHost": "db.acme-health.internal"}
    found = [{**base, "eventId": f"demo-anomaly-{day}-ssn-{i}", "timestamp": at(15, i // 60, i % 60),
              "userId": person.user_id, "userLabel": person.label, "actorKind": "human", "rowCount": 1,
              "sql": f"SELECT ssn, date_of_birth FROM patients WHERE id = {1000 + i * 37}"}  # noqa: S608 (a recorded text)
             for i in range(80)]
    found.append({**base, "eventId": f"demo-anomaly-{day}-bulk", "timestamp": at(16, 30),
                  "userId": person.user_id, "userLabel": person.label, "actorKind": "human", "rowCount": 48_210,
                  "durationMs": 5_300, "sql": "SELECT first_name, last_name, ssn, date_of_birth, address FROM patients"})
    found += [{**base, "eventId": f"demo-anomaly-{day}-svc-{i}", "timestamp": at(2, 10 + i),
               "userId": ANOMALY_ACCOUNT, "userLabel": "reporting-export", "actorKind": "api_key",
               "authMode": "simple-key", "rowCount": 500, "sql": "SELECT mrn, ssn FROM patients LIMIT 500"}
              for i in range(3)]
    return [e for e in found if datetime.fromisoformat(str(e["timestamp"])) <= now]


async def seed_demo(db: Database, *, target: int = 60_000, days: int = 90, progress: Progress | None = None,
                    now: datetime | None = None) -> DemoInfo:
    org, actors, members, created = await ensure_people(db)
    async with db.transaction() as conn:
        existing = await repo.audit_row_count(conn, org["id"])
    created = existing == 0
    if created:
        now = now or datetime.now(UTC)
        rng = random.Random(11)
        logins = []
        for user_id, _email_addr, _role in members:
            for d in range(days):
                if rng.random() < 0.5:
                    when = now - timedelta(days=days - d, hours=rng.randint(0, 10))
                    logins.append((user_id, org["id"], when,
                                   hashlib.sha256(f"demo-login:{user_id}:{d}".encode()).hexdigest()))
        async with db.transaction() as conn:
            await repo.insert_past_logins(conn, logins)
        events = generate_events(org["id"], actors, days=days, target=target, now=now)
        batch = 5_000
        for i in range(0, len(events), batch):
            async with db.transaction() as conn:
                await audit_service.ingest_events(conn, org["id"], events[i:i + batch])
            if progress:
                progress(min(i + batch, len(events)), len(events))
        async with db.transaction() as conn:
            existing = await repo.audit_row_count(conn, org["id"])
    by_role = {role: email for _, email, role in reversed(members)}
    return DemoInfo(org_id=org["id"], org_slug=h.ORG_SLUG, admin_email=by_role["admin"], owner_email=by_role["owner"],
                    member_email=by_role["member"], audit_rows=existing, created=created,
                    people=[(email, role) for _, email, role in members])


# Fallback when the demo cannot create its own datasource to scan (e.g. DATABASE_URL without CREATEDB).
SEEDED_PII = [
    ("patients", "first_name", "name"), ("patients", "last_name", "name"), ("patients", "date_of_birth", "date_of_birth"),
    ("patients", "ssn", "ssn"), ("patients", "email", "email"), ("patients", "phone", "phone"),
    ("patients", "address", "address"), ("patients", "zip_code", "address"), ("staff", "email", "email"),
    ("staff", "first_name", "name"), ("staff", "last_name", "name"), ("payments", "card_number", "credit_card"),
    ("patients", "mrn", "medical_record_number"), ("encounters", "diagnosis_code", "diagnosis_code"),
    ("prescriptions", "drug_name", "medication"), ("prescriptions", "ndc_code", "medication"),
    ("lab_results", "test_code", "lab_result"), ("lab_results", "value", "lab_result"),
    ("insurance_claims", "subscriber_id", "health_plan_id"),
]


async def seed_classifications(db: Database, org_id: str) -> None:
    records = [{"table": table, "column": column, "group": None, "category": category, "confidence": "medium",
                "strategy": DEFAULT_MASKING[category], "method": "column_name", "reason": "seeded by the demo",
                "evidence": None, "source_id": "demo"} for table, column, category in SEEDED_PII]
    async with db.transaction() as conn:
        await pii_service.upsert_detections(conn, org_id, records)
