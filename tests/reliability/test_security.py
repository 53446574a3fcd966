"""Security review, as tests where it can be tested.

Covered here: Argon2id parameters against OWASP's minimums, token entropy and what the database keeps of
tokens, constant-time comparison of secrets, security headers on every kind of response, CSRF on every
unsafe API route, and no secrets in logs (a real `atlas-compliance serve` at DEBUG level and the CLI).

Covered elsewhere (not repeated): the login rate limit, 429 and Retry-After (tests/auth/test_auth.py::
test_login_rate_limit_per_email and ::test_login_rate_limit_per_client_address); the console's cookie
flags (tests/console/test_console_http.py::test_login_page_renders_with_the_restrictive_csp,
::test_login_sets_the_session_cookie_and_opens_the_console, ::test_secure_cookie_over_https_or_when_configured,
::test_logout_needs_the_token_and_revokes_the_session); the console forms' CSRF tokens
(::test_the_login_form_needs_its_signed_token, ::test_cookie_authenticated_writes_need_the_csrf_header).
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import argon2
import httpx
import pytest
from fastapi.testclient import TestClient

from atlas_compliance.api.deps import SESSION_COOKIE
from atlas_compliance.app import create_app
from atlas_compliance.auth.passwords import verify_password
from atlas_compliance.auth.tokens import PREFIXES, new_token
from tests.client.conftest import _serve_command, free_port, wait_ready
from tests.conftest import assert_error

SRC = Path(__file__).resolve().parents[2] / "src" / "atlas_compliance"
REPORT = "/api/v1/admin/compliance/reports/data-access?startDate=2026-01-01&endDate=2026-01-31"

# OWASP Password Storage Cheat Sheet: Argon2id with one of these (memory KiB, iterations) pairs, or more,
# and parallelism 1 or more.
OWASP_ARGON2ID_MINIMUMS = [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5)]


# ---------------------------------------------------------------- passwords


def production_password_hash(password: str) -> str:
    """A hash made with the production settings (the test suite lowers the memory cost for speed)."""
    env = {k: v for k, v in os.environ.items() if k != "ATLAS_ARGON2_MEMORY_KIB"}
    code = "import sys; from atlas_compliance.auth.passwords import hash_password; print(hash_password(sys.argv[1]))"
    return subprocess.run([sys.executable, "-c", code, password], env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def test_argon2id_production_parameters_meet_owasp_minimums():
    encoded = production_password_hash("correct horse battery")
    params = argon2.extract_parameters(encoded)
    print(f"\nargon2 production parameters: {params}")
    assert encoded.startswith("$argon2id$v=19$")
    assert params.type is argon2.Type.ID and params.version == 19
    assert params.parallelism >= 1
    assert any(params.memory_cost >= m and params.time_cost >= t for m, t in OWASP_ARGON2ID_MINIMUMS), params
    assert params.salt_len >= 16 and params.hash_len >= 32
    # The app verifies it (whatever cost the hash was made with) and refuses a wrong password.
    assert verify_password(encoded, "correct horse battery")
    assert not verify_password(encoded, "correct horse batterY")
    # Two hashes of one password differ (random salt).
    assert production_password_hash("correct horse battery") != encoded


# ---------------------------------------------------------------- tokens

TOKEN = re.compile(r"^(atl[spi]_)([A-Za-z0-9_-]+)$")


def test_issued_tokens_carry_at_least_128_random_bits_and_the_database_keeps_only_hashes(org, sql):
    admin = org.add_user("admin")  # a real login: its session token
    issued = {"session": admin.token, "personal": org.personal_token(admin), "ingest": org.ingest_key()}
    for kind, token in issued.items():
        match = TOKEN.match(token)
        assert match and match.group(1) == PREFIXES[kind], token
        body = match.group(2)
        assert len(body) * 6 >= 256, (kind, len(body))  # base64url: 6 bits a character; 32 random bytes
    # What lists show of a token (its first characters) leaves far more than 128 bits unknown.
    shown = sql.execute("SELECT token_prefix FROM api_token WHERE org_id = %s", (org.id,)).fetchall()
    for row in shown:
        revealed = len(row["token_prefix"]) - len("atlx_")
        assert (43 - revealed) * 6 >= 128, row
    # The generator uses the whole alphabet (a hex or digits-only generator would fail) and never repeats.
    bodies = [new_token("ingest").token[5:] for _ in range(300)]
    assert len(set(bodies)) == 300 and len(set("".join(bodies))) == 64

    # No table of the database holds a raw token, the secret part of one, or the password.
    needles = [TOKEN.match(t).group(2) for t in issued.values()] + [admin.password]
    tables = [r["t"] for r in sql.execute(
        "SELECT format('%I.%I', table_schema, table_name) AS t FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
    assert {"public.session", "public.api_token", "public.account", "public.admin_action_log"} <= set(tables)
    for table in tables:
        condition = " OR ".join(["strpos(x::text, %s) > 0"] * len(needles))
        hit = sql.execute(f"SELECT 1 FROM {table} x WHERE {condition} LIMIT 1", needles).fetchone()  # noqa: S608
        assert hit is None, f"a raw secret is stored in {table}"


# ---------------------------------------------------------------- constant-time comparisons

SECRET_NAME = re.compile(r"token|secret|password|passwd|csrf|nonce|hmac|mac$|digest|signature", re.I)
# Comparisons that match the name pattern but involve no secret (checked by hand).
NOT_SECRETS = {
    ("audit/extraction.py", "token.token_type == TokenType.NUMBER"),  # a SQL lexer token's type
    # SHA-256 of an import file's own content, matched against the org's import ledger: public facts.
    ("audit/files.py", "digest in known"),
    ("audit/files.py", "e['digest'] == entry['digest']"),
}


def _operand_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        key = node.slice
        return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else _operand_name(node.value)
    if isinstance(node, ast.Call):
        return _operand_name(node.func)
    return None


def test_secrets_are_never_compared_with_ordinary_equality():
    """Tokens are found by their SHA-256 (an index lookup on a hash of 256 random bits), passwords by
    argon2's verify, and CSRF tokens with hmac.compare_digest. No `==`, `!=` or `in` between a secret
    and a value an attacker controls may appear in the source."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) for o in operands):  # `x is None`, `kind == "session"`
                continue
            if any(name and SECRET_NAME.search(name) for name in map(_operand_name, operands)):
                if (rel, ast.unparse(node)) not in NOT_SECRETS:
                    offenders.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "use hmac.compare_digest for secrets:\n" + "\n".join(offenders)
    csrf_source = (SRC / "auth" / "csrf.py").read_text()
    assert "hmac.compare_digest(" in csrf_source


# ---------------------------------------------------------------- headers

SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "same-origin"}
CSP = ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'",
       "object-src 'none'", "form-action 'self'"]


def test_security_headers_on_every_kind_of_response(client, org, settings):
    admin = org.add_user("admin")
    login = client.post("/api/v1/auth/login", json={"email": admin.email, "password": admin.password})
    responses = {
        "login (returns a token)": login,
        "api json": client.get("/api/v1/auth/me", headers=admin.headers),
        "report json": client.get(REPORT, headers=admin.headers),
        "report csv": client.get(REPORT + "&format=csv", headers=admin.headers),
        "api 401": client.get("/api/v1/auth/me"),
        "api 403": client.get(REPORT, headers={"Authorization": f"Bearer {org.ingest_key()}"}),
        "api 404": client.get("/api/v1/no-such-route"),
        "api 422": client.post("/api/v1/auth/login", json={}),
        "NUL guard 400": client.get("/api/v1/auth/me?q=%00"),
        "console page": client.get("/login"),
        "static asset": client.get("/static/console.js"),
        "health": client.get("/healthz"),
        "openapi": client.get("/openapi.json"),
        "api docs page": client.get("/docs"),
        "api docs asset": client.get("/api-docs-assets/swagger-ui/swagger-ui-bundle.js"),
    }
    for name, resp in responses.items():
        for header, value in SECURITY_HEADERS.items():
            assert resp.headers.get(header) == value, (name, header, dict(resp.headers))
        csp = resp.headers.get("content-security-policy", "")
        assert all(d in csp for d in CSP) and "unsafe-" not in csp, (name, csp)
        assert "strict-transport-security" not in resp.headers  # plain HTTP: HSTS would be meaningless
    # Responses carrying tokens or audit data are never stored by browsers or proxies.
    for name in ("login (returns a token)", "api json", "report json", "report csv", "api 401", "console page"):
        assert "no-store" in responses[name].headers.get("cache-control", ""), (name, responses[name].headers)
    # Over HTTPS, or behind a TLS proxy (ATLAS_SECURE_COOKIES), browsers are told to stay on HTTPS.
    https = TestClient(client.app, base_url="https://testserver")
    assert "max-age=" in https.get("/healthz").headers["strict-transport-security"]
    behind_proxy = create_app(client.app.state.db, settings.model_copy(update={"secure_cookies": True}))
    assert "max-age=" in TestClient(behind_proxy).get("/login").headers["strict-transport-security"]


# ---------------------------------------------------------------- CSRF on the API


def test_every_unsafe_api_route_refuses_a_cookie_credential_without_the_csrf_token(client, org, sql):
    """A browser sends the console's session cookie along with any cross-site request: every mutation
    authenticated by that cookie alone must be refused (403 csrf_failed) and change nothing."""
    owner = org.add_user("owner")
    paths = client.get("/openapi.json").json()["paths"]
    unsafe = [(method.upper(), path) for path, item in paths.items() for method in item
              if method in ("post", "put", "patch", "delete") and path != "/api/v1/auth/login"]
    assert len(unsafe) >= 6, unsafe
    browser = TestClient(client.app)
    browser.cookies.set(SESSION_COOKIE, owner.token)
    before = sql.execute("SELECT (SELECT count(*) FROM admin_action_log) AS actions, "
                         "(SELECT count(*) FROM audit_log WHERE org_id = %s) AS events", (org.id,)).fetchone()
    for method, path in unsafe:
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        resp = browser.request(method, url, json=[{"sql": "SELECT 1"}] if path.endswith("/events") else {})
        assert_error(resp, 403, "csrf_failed")
        assert "X-CSRF-Token" in resp.json()["message"]
    assert browser.get("/api/v1/auth/me").status_code == 200  # the cookie itself is valid
    after = sql.execute("SELECT (SELECT count(*) FROM admin_action_log) AS actions, "
                        "(SELECT count(*) FROM audit_log WHERE org_id = %s) AS events", (org.id,)).fetchone()
    assert after["events"] == before["events"] == 0
    # The session was not logged out by the refused POST /api/v1/auth/logout.
    assert client.get("/api/v1/auth/me", headers=owner.headers).status_code == 200


# ---------------------------------------------------------------- logs


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0] or "postgres"
    return urlunsplit((parts.scheme, f"{user}:{password}@{hostport}", parts.path, parts.query, parts.fragment))


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    executable = _serve_command(0)[0]
    return subprocess.run([executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_no_password_token_or_dsn_password_reaches_the_logs(org, sql, database_url, tmp_path):
    """`atlas-compliance serve` at DEBUG level and CLI commands, with a DATABASE_URL holding a password
    (the test servers trust local connections, so the password is carried but never checked)."""
    db_password = "db-pw-" + secrets.token_hex(8)
    dsn_password = "dsn-pw-" + secrets.token_hex(8)
    wrong_password = "wrong-pw-" + secrets.token_hex(8)
    env = {**os.environ, "DATABASE_URL": _with_password(database_url, db_password), "ATLAS_LOG_LEVEL": "DEBUG",
           "ATLAS_DATA_DIR": str(tmp_path / "data")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "serve.log"
    admin = org.add_user("admin", login=False)
    with open(server_log, "wb") as log:
        server = subprocess.Popen(_serve_command(port), env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        wait_ready(base, process=server)
        with httpx.Client(base_url=base, timeout=60) as http:
            assert http.post("/api/v1/auth/login", json={"email": admin.email, "password": wrong_password}
                             ).status_code == 401
            session = http.post("/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
                                ).json()["token"]
            # The console's login form (the password travels as a form field).
            page = http.get("/login")
            form_token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            assert http.post("/login", data={"email": admin.email, "password": admin.password, "csrf": form_token}
                             ).status_code == 303  # signed in: redirected to the console
            console_session = http.cookies.get(SESSION_COOKIE)
            # Tokens created by the CLI, then used against the server.
            created = _cli(["tokens", "create", "--org", org.slug, "--ingest", "--name", "log-test"], env, tmp_path)
            assert created.returncode == 0, created.stderr
            ingest_key = created.stdout.strip().splitlines()[-1]
            personal = _cli(["tokens", "create", "--org", org.slug, "--user", admin.email], env, tmp_path)
            personal_token = personal.stdout.strip().splitlines()[-1]
            assert ingest_key.startswith("atli_") and personal_token.startswith("atlp_")
            ingested = http.post("/api/v1/audit/events", json=[{"sql": "SELECT 1", "userId": "u1"}],
                                 headers={"Authorization": f"Bearer {ingest_key}"})
            assert ingested.json()["inserted"] == 1
            for token in (session, personal_token, console_session):
                assert http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            # A token sent with the wrong scheme, and a revoked-looking unknown token.
            http.get("/api/v1/auth/me", headers={"Authorization": f"Token {session}"})
            http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {session}x"})
    finally:
        server.terminate()
        server.wait(timeout=30)

    # A PII scan of a datasource whose DSN holds a password: one that works, one that cannot connect.
    schema = "pii_logs_" + secrets.token_hex(4)
    sql.execute(f"CREATE SCHEMA {schema}")
    try:
        sql.execute(f"CREATE TABLE {schema}.patients (id int, email text, ssn text)")
        sql.execute(f"INSERT INTO {schema}.patients SELECT i, 'p' || i || '@mail.example', "
                    f"'123-45-' || lpad(i::text, 4, '0') FROM generate_series(1, 30) i")
        dsn = _with_password(database_url, dsn_password)
        scanned = _cli(["pii", "scan", dsn, "--org", org.slug, "--schema", schema], env, tmp_path)
        assert scanned.returncode == 0, scanned.stdout + scanned.stderr
        parts = urlsplit(dsn)
        unreachable = urlunsplit((parts.scheme, f"postgres:{dsn_password}@127.0.0.1:{free_port()}", parts.path,
                                  "", ""))
        failed = _cli(["pii", "scan", unreachable, "--org", org.slug], env, tmp_path)
        assert failed.returncode != 0 and "cannot scan" in failed.stdout + failed.stderr
    finally:
        sql.execute(f"DROP SCHEMA {schema} CASCADE")

    logs = {"server": server_log.read_text(), "tokens create (stderr)": created.stderr + personal.stderr,
            "pii scan": scanned.stdout + scanned.stderr, "failed pii scan": failed.stdout + failed.stderr}
    # The capture is real: the server logged JSON lines for the requests above.
    assert '"msg": "POST /api/v1/auth/login 401"' in logs["server"], logs["server"][:2000]
    assert '"msg": "POST /api/v1/audit/events 200"' in logs["server"]
    secrets_ = {"admin password": admin.password, "wrong password": wrong_password, "DB password": db_password,
                "DSN password": dsn_password, "session token": session[5:], "console session": console_session[5:],
                "ingest key": ingest_key[5:], "personal token": personal_token[5:]}
    for where, text in logs.items():
        for what, value in secrets_.items():
            assert value not in text, f"the {what} appears in the {where} output"
    # Nor in the admin action log the scan wrote.
    actions = sql.execute("SELECT coalesce(string_agg(a::text, ' '), '') AS d FROM admin_action_log a "
                          "WHERE org_id = %s", (org.id,)).fetchone()["d"]
    assert "scan" in actions.lower() and dsn_password not in actions and db_password not in actions
