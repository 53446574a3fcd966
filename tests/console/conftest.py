"""Console test helpers: an HTTP client that signs in through the login form (no browser), and, for the
browser tests, Chromium and a real server seeded with an organization, a month of audit trail and PII
classifications."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.helpers_server import ThreadServer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
CLASSIFICATIONS = "/api/v1/admin/compliance/classifications"

LOGIN_TOKEN = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')
META_TOKEN = re.compile(r'<meta name="csrf-token" content="([0-9a-f]{64})">')


def browser_client(client: TestClient, *, base_url: str = "http://testserver", ip: str | None = None,
                   app=None) -> TestClient:
    """A separate cookie jar on the same app (optionally from another client address)."""
    kwargs = {"client": (ip, 50123)} if ip else {}
    return TestClient(app or client.app, base_url=base_url, **kwargs)


def login_token(browser: TestClient) -> str:
    page = browser.get("/login")
    assert page.status_code == 200, page.text
    return LOGIN_TOKEN.search(page.text).group(1)


def console_login(browser: TestClient, member, *, next_url: str = "", org: str = "",
                  password: str | None = None) -> httpx.Response:
    """Submit the login form the way a browser does (GET the form, POST it back with its token)."""
    data = {"email": member.email, "password": member.password if password is None else password,
            "csrf": login_token(browser), "next": next_url}
    if org:
        data["org"] = org
    return browser.post("/login", data=data, follow_redirects=False)


def page_token(browser: TestClient, path: str = "/admin/compliance") -> str:
    """The CSRF token a signed-in page carries in <meta name="csrf-token">."""
    page = browser.get(path)
    assert page.status_code == 200, page.text
    return META_TOKEN.search(page.text).group(1)


# ---------- browser tests: Chromium and a seeded real server ----------

COLUMNS = {"patients": ["id", "first_name", "last_name", "email", "ssn", "date_of_birth"],
           "encounters": ["id", "patient_id", "diagnosis_code", "admitted_at"],
           "invoices": ["id", "patient_id", "amount", "status"],
           "prescriptions": ["id", "patient_id", "drug", "dosage"],
           "analytics.daily_visits": ["day", "visits", "client_ip"]}
DETECTIONS = [
    ("patients", "email", "email", "high", "regex", "48/50 sample values match email pattern", (50, 48)),
    ("patients", "ssn", "ssn", "high", "regex", "50/50 sample values match ssn pattern", (50, 50)),
    ("patients", "date_of_birth", "date_of_birth", "high", "regex", "41/50 sample values match date pattern", (50, 41)),
    ("patients", "first_name", "name", "medium", "column_name", "column name 'first_name' contains 'first_name'", None),
    ("patients", "last_name", "name", "medium", "column_name", "column name 'last_name' contains 'last_name'", None),
    ("analytics.daily_visits", "client_ip", "ip_address", "low", "type_heuristic", "column type inet", None),
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield instance
        instance.close()


def _events(users: dict[str, str | None], now: datetime) -> list[dict]:
    """A month of clinic queries (some failed, some without a user) and, 70 days ago, a 105-table import."""
    rng = random.Random(20260301)
    weights = {"dana": 3, "omar": 1, "priya": 5, "li": 4, "agent": 2}
    who = [name for name, w in weights.items() for _ in range(w)]
    events = []
    for i in range(260):
        tables = rng.sample(sorted(COLUMNS), k=rng.choice([1, 1, 1, 2]))
        by_table = {t: sorted(rng.sample(COLUMNS[t], k=rng.randint(1, 3))) for t in tables}
        events.append({"eventId": f"ui-{i}", "sql": f"select /* {i} */ 1", "userId": users[rng.choice(who)],
                       "timestamp": (now - timedelta(days=rng.randint(0, 27), minutes=rng.randint(0, 1400))).isoformat(),
                       "columnsByTable": by_table, "success": rng.random() > 0.05})
    for i in range(105):
        events.append({"eventId": f"etl-{i}", "sql": f"copy staging.import_{i:03d}", "userId": users["etl"],
                       "timestamp": (now - timedelta(days=70, minutes=i)).isoformat(),
                       "columnsByTable": {f"staging.import_{i:03d}": ["id", "payload"]}})
    return events


@pytest.fixture(scope="session")
def world(database_url, settings, client):
    """A real server with an organization, its people, a month of audit trail and PII classifications.

    One per test session: its organization and people have fixed names (the tests and screenshots show
    them), so every browser test module shares it."""
    from atlas_compliance.auth import service as auth
    from tests.conftest import Org, run_service

    row = run_service(client, auth.create_organization, "acme-clinic-ui", "Acme Clinic")
    org = Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)
    people = {"dana": ("admin", "dana.reyes"), "omar": ("owner", "omar.haddad"), "priya": ("member", "priya.nair"),
              "li": ("member", "li.chen"), "etl": ("member", "etl.loader")}
    members = {key: org.add_user(role, email=f"{local}@acme-clinic.example", login=key == "dana")
               for key, (role, local) in people.items()}
    users = {key: m.id for key, m in members.items()} | {"agent": None}
    now = datetime.now(UTC).replace(microsecond=0)
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=_events(users, now), headers=ingest).json()["inserted"] == 365
    detections = [{"tableName": t, "columnName": c, "category": cat, "confidence": conf, "method": method,
                   "reason": reason, **({"evidence": {"sampled": ev[0], "matched": ev[1]}} if ev else {})}
                  for t, c, cat, conf, method, reason, ev in DETECTIONS]
    api = members["dana"].headers
    assert client.post(CLASSIFICATIONS, json={"detections": detections}, headers=api).json()["created"] == 6
    listed = client.get(CLASSIFICATIONS, headers=api).json()["classifications"]
    ssn = next(c for c in listed if c["columnName"] == "ssn")
    client.put(f"{CLASSIFICATIONS}/{ssn['id']}", json={"reviewed": True, "maskingStrategy": "redact"}, headers=api)
    with ThreadServer(database_url, settings) as server:
        yield {"base": server.base, "org": org, "api": api, **members}
