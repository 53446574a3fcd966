"""schemathesis against the app's own OpenAPI document: every operation, with real credentials.

Each operation gets schema-valid and schema-invalid requests (schemathesis' positive and negative modes),
sent with a real credential of a test organization that holds audit rows and classifications. Every
answer must not be a 5xx, must use a status code the document lists for the operation, must carry a
documented content type, must match the documented schema for that status, and invalid input must be
refused with a 4xx.

The document is built once at import (that needs no database), so each operation is its own test id.
Requests go in-process to a second instance of the app with its own connection pool; its client address
is rewritten so that the failed logins schemathesis sends do not rate-limit the rest of the suite.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from atlas_compliance.app import create_app
from atlas_compliance.auth import service as auth
from atlas_compliance.config import Settings
from atlas_compliance.db.pool import Database
from tests.conftest import run_service

OPENAPI = create_app(Database("postgresql://openapi-only.invalid/none")).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
# The ingest route also takes NDJSON, documented as a string: send that string as the raw body.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
FUZZ_ADDRESS = "203.0.113.250"  # TEST-NET-3: not the TestClient's "testclient", so no shared login rate limit
BASE_URL = "http://testserver"
INGEST = "/api/v1/audit/events"
# schemathesis gives up on a response after 10 s unless told otherwise; a valid request may be a
# 10,000-detection upload or a large batch, which can take longer than that on a loaded 2-core machine.
# This limit only catches a hang; speed is measured in bench/, never asserted by a test.
REQUEST_TIMEOUT = 600
LOGOUT = "/api/v1/auth/logout"


@dataclass
class Target:
    admin: dict[str, str]
    ingest: dict[str, str]
    email: str
    password: str
    org_slug: str

    def fresh_session(self, client) -> dict[str, str]:
        """A session of its own for logout, which revokes the token it is called with. Logged in from the
        suite's usual address: the fuzzed logins have used up the fuzzing address' allowance."""
        resp = client.post("/api/v1/auth/login",
                           json={"email": self.email, "password": self.password, "org": self.org_slug})
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['token']}"}


def _from_address(app: Any, host: str) -> Any:
    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "client": (host, 50_000)}
        await app(scope, receive, send)

    return wrapped


@pytest.fixture(scope="module")
def target(client) -> Target:
    """An organization with audit rows (some on PII tables), classifications and credentials."""
    slug = f"fuzz-{uuid.uuid4().hex[:10]}"
    run_service(client, auth.create_organization, slug, "Fuzz Org")
    email, password = f"admin-{slug}@fuzz.example", "fuzz " + secrets.token_hex(8)
    run_service(client, auth.create_user, email=email, password=password, org_slug=slug, role="admin")
    member_email = f"member-{slug}@fuzz.example"
    member = run_service(client, auth.create_user, email=member_email, password=password, org_slug=slug,
                         role="member")
    ingest = {"Authorization": f"Bearer {run_service(client, auth.create_ingest_key, org_slug=slug, name='fuzz')['token']}"}
    admin = {"Authorization": f"Bearer {run_service(client, auth.create_personal_token, org_slug=slug, email=email)['token']}"}
    events = [{"sql": f"SELECT email, name FROM patients WHERE id = {i}", "userId": member["id"] if i % 2 else None,
               "timestamp": f"2026-01-{i + 1:02d}T10:00:00Z"} for i in range(20)]
    assert client.post(INGEST, json=events, headers=ingest).json()["inserted"] == 20
    upload = {"detections": [{"tableName": "patients", "columnName": "email", "category": "email"},
                             {"tableName": "patients", "columnName": "name", "category": "name"}]}
    assert client.post("/api/v1/admin/compliance/classifications", json=upload, headers=admin).status_code == 200
    return Target(admin=admin, ingest=ingest, email=email, password=password, org_slug=slug)


@pytest.fixture()
def http(settings: Settings) -> Iterator[ASGIClient]:
    """The app under test, with a pool of its own: schemathesis' pytest plugin ends an ASGI app's lifespan
    (closing the pool) after every test, and a closed pool cannot be reopened."""
    db = Database(settings.database_url, max_size=4, timeout=settings.db_timeout)
    app = create_app(db, settings, manage_pool=True)
    with ASGIClient(_from_address(app, FUZZ_ADDRESS)) as session:
        yield session
    shutdown_lifespans()


def test_the_fuzzed_document_is_the_served_one(http):
    assert http.get(f"{BASE_URL}/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_operation_conforms_to_its_documentation(case, client, target, http):
    checks = CHECKS
    if case.path == INGEST:
        headers = target.ingest
        # Documented: a batch is answered 200 with each invalid event listed in `rejected` (the valid ones
        # are stored), so a schema-violating event is not refused with a 4xx. test_hostile_input.py checks
        # those rejections and that they store nothing.
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    elif case.path == LOGOUT:
        headers = target.fresh_session(client)
    else:
        headers = target.admin
    case.call_and_validate(base_url=BASE_URL, session=http, headers=headers, checks=checks, timeout=REQUEST_TIMEOUT)
