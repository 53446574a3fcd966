"""Managed auth: login, sessions, tokens, roles and rate limiting, against real PostgreSQL."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from tests.conftest import assert_error, run_service

ADMIN_ROUTE = "/api/v1/admin/members"


def test_login_returns_token_user_org_and_role(client, org):
    member = org.add_user("admin", login=False)
    resp = client.post("/api/v1/auth/login", json={"email": member.email, "password": member.password})
    assert resp.status_code == 200
    body = resp.json()
    assert body["token"].startswith("atls_") and len(body["token"]) >= 40
    assert body["user"]["email"] == member.email
    assert body["organization"] == {"id": org.id, "slug": org.slug, "name": org.name}
    assert body["role"] == "admin"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["user"]["id"] == member.id and me.json()["organization"]["slug"] == org.slug


def test_email_is_case_insensitive(client, org):
    member = org.add_user("member", login=False)
    resp = client.post("/api/v1/auth/login", json={"email": member.email.upper(), "password": member.password})
    assert resp.status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_answer(client, org):
    member = org.add_user("member", login=False)
    wrong = client.post("/api/v1/auth/login", json={"email": member.email, "password": "nope-nope"})
    unknown = client.post("/api/v1/auth/login", json={"email": "ghost@nowhere.example", "password": "nope-nope"})
    a = assert_error(wrong, 401, "invalid_credentials")
    b = assert_error(unknown, 401, "invalid_credentials")
    assert a["message"] == b["message"]


def test_login_rate_limit_per_email(settings, make_org):
    org = make_org()
    member = org.add_user("member", login=False)
    other_client = TestClient(org.client.app, client=("203.0.113.7", 5000))
    for _ in range(settings.login_max_failures):
        resp = other_client.post("/api/v1/auth/login", json={"email": member.email, "password": "wrong-pass"})
        assert resp.status_code == 401
    # Even the right password is refused while the limit holds.
    resp = other_client.post("/api/v1/auth/login", json={"email": member.email, "password": member.password})
    assert_error(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["retry-after"]) <= settings.login_window_seconds


def test_login_rate_limit_per_client_address(client, settings, org):
    attacker = TestClient(client.app, client=("198.51.100.9", 5001))
    limit = settings.login_max_failures * 3
    for i in range(limit):
        resp = attacker.post("/api/v1/auth/login", json={"email": f"spray{i}@x.example", "password": "wrong-pass"})
        assert resp.status_code == 401
    resp = attacker.post("/api/v1/auth/login", json={"email": "another@x.example", "password": "wrong-pass"})
    assert_error(resp, 429, "rate_limited")
    # Another address is not affected.
    member = org.add_user("member", login=False)
    ok = client.post("/api/v1/auth/login", json={"email": member.email, "password": member.password})
    assert ok.status_code == 200


def test_logout_revokes_the_token_and_keeps_the_session_row(client, org, sql):
    member = org.add_user("admin")
    assert client.post("/api/v1/auth/logout", headers=member.headers).json() == {"revoked": True}
    assert_error(client.get("/api/v1/auth/me", headers=member.headers), 401, "token_revoked")
    rows = sql.execute('SELECT revoked_at FROM session WHERE "userId" = %s', (member.id,)).fetchall()
    assert len(rows) == 1 and rows[0]["revoked_at"] is not None


def test_expired_session_is_refused(client, org, sql):
    member = org.add_user("admin")
    sql.execute("""UPDATE session SET "expiresAt" = now() - interval '1 second' WHERE "userId" = %s""", (member.id,))
    assert_error(client.get("/api/v1/auth/me", headers=member.headers), 401, "token_expired")


def test_malformed_and_missing_credentials(client):
    assert_error(client.get("/api/v1/auth/me"), 401, "unauthenticated")
    assert_error(client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"}), 401, "invalid_token")
    assert_error(client.get("/api/v1/auth/me", headers={"Authorization": "Bearer "}), 401)
    assert_error(client.get("/api/v1/auth/me", headers={"Authorization": "Bearer atls_forged"}), 401, "invalid_token")
    assert_error(client.get("/api/v1/auth/me", headers={"Authorization": "Bearer " + "x" * 5000}), 401)


def test_admin_route_by_role(client, org, make_org):
    owner = org.add_user("owner")
    admin = org.add_user("admin")
    member = org.add_user("member")
    for who in (owner, admin):
        resp = client.get(ADMIN_ROUTE, headers=who.headers)
        assert resp.status_code == 200
        emails = {m["email"] for m in resp.json()["members"]}
        assert {owner.email, admin.email, member.email} <= emails
    assert_error(client.get(ADMIN_ROUTE, headers=member.headers), 403, "forbidden_role")
    assert_error(client.get(ADMIN_ROUTE), 401)
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert_error(client.get(ADMIN_ROUTE, headers=ingest), 403, "scope_denied")
    # An admin of another organization only ever sees their own organization.
    other = make_org().add_user("admin")
    emails = {m["email"] for m in client.get(ADMIN_ROUTE, headers=other.headers).json()["members"]}
    assert emails == {other.email}


def test_personal_token_acts_as_its_user_and_can_be_revoked(client, org):
    admin = org.add_user("admin")
    token = org.personal_token(admin)
    headers = {"Authorization": f"Bearer {token}"}
    me = client.get("/api/v1/auth/me", headers=headers).json()
    assert me["credential"] == "personal" and me["user"]["id"] == admin.id and me["role"] == "admin"
    assert client.get(ADMIN_ROUTE, headers=headers).status_code == 200
    from atlas_compliance.auth import repository as repo
    from atlas_compliance.auth import service as auth
    from atlas_compliance.auth.tokens import hash_token

    async def find(conn):
        row = await repo.find_api_token(conn, hash_token(token))
        return row["credential_id"]

    token_id = run_service(client, find)
    run_service(client, auth.revoke_token, token_id)
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "token_revoked")


def test_ingest_key_cannot_read(client, org):
    headers = {"Authorization": f"Bearer {org.ingest_key()}"}
    me = client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["credential"] == "ingest" and me.json()["scopes"] == ["audit:write"]
    assert_error(client.get(ADMIN_ROUTE, headers=headers), 403)


def test_database_never_holds_raw_tokens_or_passwords(client, org, sql):
    member = org.add_user("admin")
    pat = org.personal_token(member)
    ingest = org.ingest_key()
    sessions = sql.execute('SELECT token FROM session WHERE "userId" = %s', (member.id,)).fetchall()
    assert [s["token"] for s in sessions] == [hashlib.sha256(member.token.encode()).hexdigest()]
    stored = {r["token_hash"] for r in sql.execute("SELECT token_hash FROM api_token WHERE org_id = %s",
                                                     (org.id,)).fetchall()}
    assert stored == {hashlib.sha256(pat.encode()).hexdigest(), hashlib.sha256(ingest.encode()).hexdigest()}
    password_hash = sql.execute('SELECT password FROM account WHERE "userId" = %s', (member.id,)).fetchone()
    assert password_hash["password"].startswith("$argon2id$")
    assert member.password not in password_hash["password"]
    for table in ("session", "api_token", "account", "login_attempt"):
        query = f"SELECT coalesce(string_agg(t::text, ' '), '') AS d FROM {table} t"  # noqa: S608 - fixed names
        dump = sql.execute(query).fetchone()["d"]
        assert member.token not in dump and pat not in dump and ingest not in dump
        assert member.password not in dump


def test_login_bad_input(client):
    assert_error(client.post("/api/v1/auth/login", json={"email": "a@b.c"}), 422, "validation_error")
    assert_error(client.post("/api/v1/auth/login", content=b"not json",
                             headers={"content-type": "application/json"}), 422)
    assert_error(client.post("/api/v1/auth/login", json={"email": "a\u0000@b.c", "password": "x"}), 400)
    assert_error(client.get("/api/v1/auth/me?x=%00"), 400)


def test_request_id_is_echoed_and_generated(client):
    resp = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
