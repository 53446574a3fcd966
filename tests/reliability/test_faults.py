"""Faults: PostgreSQL restarted under a running server, a database that refuses writes, a full disk.

Every test here runs against a PRIVATE PostgreSQL (pgserver in a temporary directory, as
tests/auth/test_health.py does), so stopping it, making it read-only or filling its "disk" cannot
disturb the shared test database. The app is served by a real uvicorn server (tests/client/conftest.py)
with the production pool settings, and requests go through httpx with a timeout far above the
configured database timeout: a request that hangs fails the test instead of hanging it.

The SIGKILL-during-ingest fault is tests/client/test_audit_client.py::
test_server_killed_mid_stream_stores_every_event_exactly_once (count, ids and chain verified).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pgserver
import psycopg
import pytest
from psycopg.rows import dict_row

from atlas_compliance.auth import service as auth
from atlas_compliance.config import Settings
from atlas_compliance.db import migrate
from tests.client.conftest import LiveServer, free_port, start_live_server, wait_ready
from tests.conftest import assert_error

DBNAME = "atlas_faults"
# Far above ATLAS_DB_TIMEOUT (5 s): only a request that hangs reaches it.
HANG_LIMIT = 30.0
REPORT = "/api/v1/admin/compliance/reports/data-access?startDate=2020-01-01&endDate=2030-12-31"


class PrivatePostgres:
    """A pgserver instance of our own: stop it, start it again on the same socket, change its settings."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="atlas-faults-"))
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.root))
        self.pgdata = self.root / "pg"
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        self.admin_url = self.server.get_uri()
        self.url = self.server.get_uri(DBNAME)

    def stop(self) -> None:
        self.server.cleanup()  # pg_ctl stop (fast: open connections are terminated)

    def start(self) -> None:
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        assert self.server.get_uri(DBNAME) == self.url

    def execute(self, statement: str, *, dbname: str | None = None) -> list[dict]:
        url = self.url if dbname == DBNAME else self.admin_url
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("SET default_transaction_read_only = off")
            cur = conn.execute(statement)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def destroy(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.execute(f'CREATE DATABASE "{DBNAME}"')
        migrate.upgrade(pg.url)
        yield pg
    finally:
        pg.destroy()


@pytest.fixture()
def serve(private_pg: PrivatePostgres, tmp_path: Path) -> Iterator[Callable[[], LiveServer]]:
    """Start the app (uvicorn in a thread, its own pool, default timeouts) on the private database."""
    started: list[LiveServer] = []

    def start() -> LiveServer:
        settings = Settings(database_url=private_pg.url, data_dir=tmp_path / f"data-{len(started)}")
        live = start_live_server(settings, free_port())
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@dataclass
class Tenant:
    org_id: str
    slug: str
    email: str
    password: str
    ingest_key: str
    personal_token: str


def _run(url: str, fn, /, *args, **kwargs):
    async def call():
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
            return await fn(conn, *args, **kwargs)

    return asyncio.run(call())


def make_tenant(pg: PrivatePostgres) -> Tenant:
    slug = f"faults-{uuid.uuid4().hex[:10]}"
    org = _run(pg.url, auth.create_organization, slug, "Faults Inc")
    email, password = f"admin@{slug}.example", "correct horse " + secrets.token_hex(4)
    _run(pg.url, auth.create_user, email=email, password=password, org_slug=slug, role="admin")
    key = _run(pg.url, auth.create_ingest_key, org_slug=slug, name="faults")["token"]
    pat = _run(pg.url, auth.create_personal_token, org_slug=slug, email=email)["token"]
    return Tenant(org["id"], slug, email, password, key, pat)


def events(n: int, tag: str) -> list[dict]:
    return [{"eventId": f"{tag}-{i}", "sql": f"SELECT name FROM patients WHERE id = {i}", "userId": f"u{i % 3}",
             "timestamp": "2026-03-01T09:00:00Z"} for i in range(n)]


def stored_state(pg: PrivatePostgres, tenant: Tenant) -> dict:
    """What a partial write would change: rows, chain head, rollups."""
    rows = pg.execute(f"SELECT count(*) AS n FROM audit_log WHERE org_id = '{tenant.org_id}'", dbname=DBNAME)
    head = pg.execute(f"SELECT last_seq, encode(last_hash, 'hex') AS h FROM audit_chain_head "
                      f"WHERE chain_key = '{tenant.org_id}'", dbname=DBNAME)
    return {"rows": rows[0]["n"], "head": head[0] if head else None}


def login(http: httpx.Client, tenant: Tenant) -> httpx.Response:
    return http.post("/api/v1/auth/login", json={"email": tenant.email, "password": tenant.password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_postgres_restart_answers_503_fast_and_service_resumes_without_an_app_restart(private_pg, serve):
    tenant = make_tenant(private_pg)
    live = serve()
    with httpx.Client(base_url=live.url, timeout=HANG_LIMIT) as http:
        session = login(http, tenant).json()["token"]
        calls: dict[str, Callable[[], httpx.Response]] = {
            "login": lambda: login(http, tenant),
            "ingest": lambda: http.post("/api/v1/audit/events", json=events(5, uuid.uuid4().hex),
                                        headers=bearer(tenant.ingest_key)),
            "report": lambda: http.get(REPORT, headers=bearer(session)),
            "report via personal token": lambda: http.get(REPORT, headers=bearer(tenant.personal_token)),
        }
        for name, call in calls.items():
            assert call().status_code == 200, name
        before = stored_state(private_pg, tenant)

        private_pg.stop()
        try:
            assert_error(http.get("/readyz"), 503, "database_unavailable")
            assert http.get("/healthz").json() == {"status": "ok"}
            # Two rounds: the pool's reconnect attempts must not grow into a hang either.
            for _ in range(2):
                for name, call in calls.items():
                    started = time.monotonic()
                    resp = call()  # httpx raises ReadTimeout after HANG_LIMIT: a hang fails here
                    print(f"outage: {name} answered {resp.status_code} in {time.monotonic() - started:.2f} s")
                    body = assert_error(resp, 503, "database_unavailable")
                    assert "retry" in body["message"], body
        finally:
            private_pg.start()

        wait_ready(live.url)  # /readyz is 200 again: the same app instance, no restart
        for name, call in calls.items():
            resp = call()
            assert resp.status_code == 200, (name, resp.text)
        after = stored_state(private_pg, tenant)
        assert after["rows"] == before["rows"] + 5  # the ingest after recovery; nothing from the outage
        verify = http.get("/api/v1/admin/audit/verify", headers=bearer(session)).json()
        assert verify["ok"] is True and verify["rowsChecked"] == after["rows"], verify


def test_read_only_database_refuses_ingest_with_503_writes_nothing_and_still_serves_reads(private_pg, serve):
    tenant = make_tenant(private_pg)
    with httpx.Client(timeout=HANG_LIMIT) as http:
        first = serve()
        session = http.post(first.url + "/api/v1/auth/login",
                            json={"email": tenant.email, "password": tenant.password}).json()["token"]
        seeded = http.post(first.url + "/api/v1/audit/events", json=events(20, "seed"),
                           headers=bearer(tenant.ingest_key))
        assert seeded.json()["inserted"] == 20
        before = stored_state(private_pg, tenant)

        # New connections of the database start read-only (as on a hot standby or a database an
        # operator froze). A second app instance has a fresh pool, so all its connections are.
        private_pg.execute(f'ALTER DATABASE "{DBNAME}" SET default_transaction_read_only = on')
        try:
            base = serve().url
            resp = http.post(base + "/api/v1/audit/events", json=events(50, "refused"),
                             headers=bearer(tenant.ingest_key))
            body = assert_error(resp, 503, "database_read_only")
            assert "read-only" in body["message"] and "nothing was stored" in body["message"], body
            assert stored_state(private_pg, tenant) == before

            # Reads that write nothing keep working, with a session and with a personal token
            # (whose "last used" bookkeeping must not turn a read into a failure).
            for token in (session, tenant.personal_token):
                me = http.get(base + "/api/v1/auth/me", headers=bearer(token))
                assert me.status_code == 200 and me.json()["organization"]["slug"] == tenant.slug, me.text
                verify = http.get(base + "/api/v1/admin/audit/verify", headers=bearer(token))
                assert verify.status_code == 200, verify.text
                assert verify.json()["ok"] is True and verify.json()["rowsChecked"] == 20
                members = http.get(base + "/api/v1/admin/members", headers=bearer(token))
                assert members.status_code == 200 and len(members.json()["members"]) == 1, members.text
            assert http.get(base + "/readyz").status_code == 200

            # A report is recorded in the admin action log, so generating one is a write: refused
            # with the same clear 503, never a 500.
            assert_error(http.get(base + REPORT, headers=bearer(session)), 503, "database_read_only")
            # Logging in records the attempt and opens a session: refused the same way.
            assert_error(http.post(base + "/api/v1/auth/login",
                                   json={"email": tenant.email, "password": tenant.password}),
                         503, "database_read_only")
        finally:
            private_pg.execute(f'ALTER DATABASE "{DBNAME}" RESET default_transaction_read_only')
        assert stored_state(private_pg, tenant) == before


def test_full_disk_mid_batch_answers_503_and_leaves_no_partial_batch(private_pg, serve):
    """A BEFORE INSERT trigger raises disk_full (53100) on the 600th row of a 1,000-event batch."""
    tenant = make_tenant(private_pg)
    live = serve()
    with httpx.Client(base_url=live.url, timeout=HANG_LIMIT) as http:
        session = login(http, tenant).json()["token"]
        assert http.post("/api/v1/audit/events", json=events(30, "seed"),
                         headers=bearer(tenant.ingest_key)).json()["inserted"] == 30
        before = stored_state(private_pg, tenant)
        report_before = http.get(REPORT, headers=bearer(session)).json()
        batch = events(1_000, "full")
        batch[600]["sql"] = "SELECT 'disk-full-here' FROM patients"
        private_pg.execute("""
            CREATE FUNCTION atlas_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.sql LIKE '%disk-full-here%' THEN
                    RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device'
                        USING ERRCODE = 'disk_full';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER atlas_test_disk_full BEFORE INSERT ON audit_log
                FOR EACH ROW EXECUTE FUNCTION atlas_test_disk_full();
        """, dbname=DBNAME)
        try:
            resp = http.post("/api/v1/audit/events", json=batch, headers=bearer(tenant.ingest_key))
            body = assert_error(resp, 503, "database_disk_full")
            assert "disk space" in body["message"] and "nothing was stored" in body["message"], body
            assert "base/1/2" not in body["message"]  # the server's file names stay in the server log
        finally:
            private_pg.execute("DROP TRIGGER atlas_test_disk_full ON audit_log; "
                               "DROP FUNCTION atlas_test_disk_full()", dbname=DBNAME)

        # Nothing of the batch: no rows, the chain head did not move, the report counts are unchanged.
        assert stored_state(private_pg, tenant) == before
        report_after = http.get(REPORT, headers=bearer(session)).json()
        assert report_after["summary"] == report_before["summary"]
        # The client's retry (same event ids) then stores the whole batch exactly once.
        retried = http.post("/api/v1/audit/events", json=batch, headers=bearer(tenant.ingest_key)).json()
        assert retried["inserted"] == 1_000 and retried["duplicates"] == 0
        verify = http.get("/api/v1/admin/audit/verify", headers=bearer(session)).json()
        assert verify["ok"] is True and verify["rowsChecked"] == 1_030, verify
