"""Test fixtures: a fresh PostgreSQL database per run, built by the migrations.

`DATABASE_URL` set: a throwaway database is created on that server (and dropped afterwards).
Unset: an embedded PostgreSQL (pgserver) is started in a temporary directory.
Tests are isolated by creating their own organizations, users and tokens (unique names).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("ATLAS_ARGON2_MEMORY_KIB", "8192")  # tests only: cheaper hashing, same algorithm

import psycopg
import pytest
from fastapi.testclient import TestClient

from atlas_compliance.app import create_app
from atlas_compliance.auth import service as auth
from atlas_compliance.config import Settings
from atlas_compliance.db import migrate
from atlas_compliance.db.pool import Database, to_libpq_url


def _with_dbname(url: str, name: str) -> str:
    parts = urlsplit(to_libpq_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a maintenance database on the PostgreSQL server the tests use."""
    if os.environ.get("DATABASE_URL"):
        yield to_libpq_url(os.environ["DATABASE_URL"])
        return
    import pgserver

    tmp = Path(tempfile.mkdtemp(prefix="atlas-test-pg-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp))
    srv = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"atlas_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_dbname(server_url, name)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path_factory.mktemp("data"), pool_max_size=8)


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    db = Database(settings.database_url, max_size=settings.pool_max_size, timeout=settings.db_timeout)
    app = create_app(db, settings, manage_pool=True)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture()
def sql(database_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection, for assertions on stored rows and for 'other writer' inserts."""
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        yield conn


def run_service(client: TestClient, fn, /, *args, **kwargs):
    """Run an async service function in one transaction on the app's own pool."""
    db: Database = client.app.state.db

    async def call():
        async with db.transaction() as conn:
            return await fn(conn, *args, **kwargs)

    return client.portal.call(call)


@dataclass
class Member:
    id: str
    email: str
    password: str
    role: str
    token: str  # a login session token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Org:
    id: str
    slug: str
    name: str
    client: TestClient
    members: dict[str, Member] = field(default_factory=dict)

    def add_user(self, role: str, *, email: str | None = None, login: bool = True) -> Member:
        email = email or f"{role}-{uuid.uuid4().hex[:10]}@{self.slug}.example"
        password = "correct horse " + secrets.token_hex(4)
        user = run_service(self.client, auth.create_user, email=email, password=password, org_slug=self.slug,
                           role=role)
        token = ""
        if login:
            resp = self.client.post("/api/v1/auth/login", json={"email": email, "password": password})
            assert resp.status_code == 200, resp.text
            token = resp.json()["token"]
        member = Member(id=user["id"], email=email, password=password, role=role, token=token)
        self.members[email] = member
        return member

    def ingest_key(self, name: str = "test-ingest") -> str:
        return run_service(self.client, auth.create_ingest_key, org_slug=self.slug, name=name)["token"]

    def personal_token(self, member: Member) -> str:
        return run_service(self.client, auth.create_personal_token, org_slug=self.slug,
                           email=member.email)["token"]


@pytest.fixture()
def make_org(client: TestClient):
    def make(name: str = "Test Org") -> Org:
        slug = f"org-{uuid.uuid4().hex[:12]}"
        org = run_service(client, auth.create_organization, slug, name)
        return Org(id=org["id"], slug=org["slug"], name=org["name"], client=client)

    return make


@pytest.fixture()
def org(make_org) -> Org:
    return make_org()


@pytest.fixture()
def admin(org: Org) -> Member:
    return org.add_user("admin")


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """Every error answers the one envelope {error, message, requestId} with the documented status."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) >= {"error", "message", "requestId"}, body
    assert body["requestId"] == resp.headers["x-request-id"]
    assert body["message"]
    if code is not None:
        assert body["error"] == code, body
    return body


@pytest.fixture()
def retention_floor(database_url: str):
    """Set the installation's retention floor (as the schema owner, like `db upgrade`) for one test."""
    def set_floor(days: int, delay: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE atlas_retention_floor SET min_retention_days = %s, min_hard_delete_delay_days = %s",
                         (days, delay))

    yield set_floor
    set_floor(365, 30)


@pytest.fixture()
def dml_sql(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection as a non-superuser role that owns nothing, with SELECT/INSERT/UPDATE/DELETE on every
    table: what an outside writer or a stolen application password would have."""
    role = f"atlas_dml_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
        conn.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    parts = urlsplit(to_libpq_url(database_url))
    url = urlunsplit((parts.scheme, f"{role}@{parts.netloc.split('@')[-1]}", parts.path, parts.query, ""))
    try:
        with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == \
                {"rolsuper": False}
            yield conn
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
