"""Every API route in the OpenAPI document, for every kind of credential: the expected status.

A new route without a row here fails `test_every_route_has_a_row`."""

from __future__ import annotations

import pytest

from tests.conftest import assert_error

ADMIN_ONLY = {"none": 401, "malformed": 401, "expired": 401, "revoked": 401, "member": 403, "admin": 200,
              "owner": 200, "personal": 200, "ingest": 403}
ANYONE_SIGNED_IN = {**ADMIN_ONLY, "member": 200, "ingest": 200}
WRITERS = {**ADMIN_ONLY, "ingest": 200}
PUBLIC = dict.fromkeys(ADMIN_ONLY, 200)
ADMIN_GETS_404 = {**ADMIN_ONLY, "admin": 404, "owner": 404, "personal": 404}

# (method, path template, body, expectations). {cid} is filled with a classification of the caller's org
# (an unknown id for other orgs, so that admins of another org get 404 and see nothing).
MATRIX = [
    ("get", "/healthz", None, PUBLIC),
    ("get", "/readyz", None, PUBLIC),
    ("get", "/api/v1/auth/me", None, ANYONE_SIGNED_IN),
    ("post", "/api/v1/auth/logout", None, {**ANYONE_SIGNED_IN, "personal": 400, "ingest": 400}),
    ("get", "/api/v1/admin/members", None, ADMIN_ONLY),
    ("post", "/api/v1/audit/events", [{"sql": "SELECT 1"}], WRITERS),
    ("get", "/api/v1/admin/audit/verify", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/audit/checkpoints", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/audit/events?startDate=2026-01-01&endDate=2026-01-31", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/audit/failed-access?startDate=2026-01-01&endDate=2026-01-31", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/audit/privileged-actions?startDate=2026-01-01&endDate=2026-01-31", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/audit/retention", None, ADMIN_ONLY),
    ("put", "/api/v1/admin/audit/retention", {"retentionDays": 400}, ADMIN_ONLY),
    ("post", "/api/v1/admin/audit/retention/purge", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/compliance/reports/data-access?startDate=2026-01-01&endDate=2026-01-31", None,
     ADMIN_ONLY),
    ("get", "/api/v1/admin/compliance/reports/user-activity?startDate=2026-01-01&endDate=2026-01-31", None,
     ADMIN_ONLY),
    ("get", "/api/v1/admin/compliance/evidence?startDate=2026-01-01&endDate=2026-01-31", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/compliance/volume?startDate=2026-01-01&endDate=2026-01-31", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/compliance/classifications", None, ADMIN_ONLY),
    ("post", "/api/v1/admin/compliance/classifications",
     {"detections": [{"tableName": "t", "columnName": "email", "category": "email"}]}, ADMIN_ONLY),
    ("put", "/api/v1/admin/compliance/classifications/{cid}", {"reviewed": True}, ADMIN_ONLY),
    ("delete", "/api/v1/admin/compliance/classifications/{cid}", None, ADMIN_ONLY),
    ("post", "/api/v1/admin/compliance/classifications/review", None, ADMIN_ONLY),
    ("post", "/api/v1/admin/compliance/classifications/manual",
     {"tableName": "t_manual", "columnName": "{kind}", "category": "ssn"}, {**ADMIN_ONLY, "admin": 201, "owner": 201,
                                                                          "personal": 201}),
    ("get", "/api/v1/admin/sources", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/catalog", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/sources/role-mappings", None, ADMIN_ONLY),
    # Admins get through to the mapping itself: no member has this email, and the role is not mapped.
    ("put", "/api/v1/admin/sources/role-mappings/{role}", {"email": "nobody@example.invalid"}, ADMIN_GETS_404),
    ("delete", "/api/v1/admin/sources/role-mappings/{role}", None, ADMIN_GETS_404),
    # Access reviews. {rid} is a campaign of the caller's org (opened by its admin, no decision yet): admins get
    # through to the campaign itself (an unknown item 404, an incomplete sign-off 409, a follow-up before the
    # sign-off 409).
    ("get", "/api/v1/admin/reviews", None, ADMIN_ONLY),
    ("post", "/api/v1/admin/reviews", {"startDate": "2026-01-01", "endDate": "2026-01-31"},
     {**ADMIN_ONLY, "admin": 201, "owner": 201, "personal": 201}),
    ("get", "/api/v1/admin/reviews/{rid}", None, ADMIN_ONLY),
    ("post", "/api/v1/admin/reviews/{rid}/decisions", {"items": [999999], "decision": "keep"}, ADMIN_GETS_404),
    ("post", "/api/v1/admin/reviews/{rid}/signoff", {"statement": "reviewed"},
     {**ADMIN_ONLY, "admin": 409, "owner": 409, "personal": 409}),
    ("post", "/api/v1/admin/reviews/{rid}/followups", {"item": 1, "note": "done"},
     {**ADMIN_ONLY, "admin": 409, "owner": 409, "personal": 409}),
    ("get", "/api/v1/admin/reviews/{rid}/export?format=csv", None, ADMIN_ONLY),
    ("get", "/api/v1/admin/review-settings", None, ADMIN_ONLY),
    ("put", "/api/v1/admin/review-settings", {"piiSecondReviewer": False}, ADMIN_ONLY),
    # Unusual-access flags. {fid} is a flag of the caller's org about someone else: admins acknowledge it.
    ("get", "/api/v1/admin/flags?open=true&format=csv", None, ADMIN_ONLY),
    ("post", "/api/v1/admin/flags/{fid}/disposition", {"disposition": "expected", "note": "on-call export"},
     {**ADMIN_ONLY, "admin": 201, "owner": 201, "personal": 201}),
]
LOGIN = "/api/v1/auth/login"  # tested on its own in test_auth.py (it takes no credential)


def test_every_route_has_a_row(client):
    documented = {(method, path) for path, ops in client.app.openapi()["paths"].items() for method in ops}
    covered = {(m, p.split("?")[0]) for m, p, _, _ in MATRIX} | {("post", LOGIN)}
    assert documented == covered


@pytest.fixture()
def credentials(client, org, sql):
    """One header set per kind of credential, all for `org`."""
    admin = org.add_user("admin")
    expired = org.add_user("admin")
    sql.execute("""UPDATE session SET "expiresAt" = now() - interval '1 minute' WHERE "userId" = %s""", (expired.id,))
    revoked = org.add_user("admin")
    client.post("/api/v1/auth/logout", headers=revoked.headers)
    bearer = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    return {
        "none": {}, "malformed": {"Authorization": "Token abc"}, "expired": expired.headers,
        "revoked": revoked.headers, "member": org.add_user("member").headers, "admin": admin.headers,
        "owner": org.add_user("owner").headers, "personal": bearer(org.personal_token(admin)),
        "ingest": bearer(org.ingest_key()),
    }


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_route_by_credential(client, org, make_org, credentials, sql, method, path, body, expected):
    for kind, headers in credentials.items():
        target = path
        if "{cid}" in path:
            upload = client.post("/api/v1/admin/compliance/classifications", headers=credentials["admin"],
                                 json={"detections": [{"tableName": f"t_{kind}", "columnName": "ssn",
                                                       "category": "ssn"}]})
            assert upload.status_code == 200
            listing = client.get("/api/v1/admin/compliance/classifications", params={"table": f"t_{kind}"},
                                 headers=credentials["admin"]).json()
            target = path.replace("{cid}", listing["classifications"][0]["id"])
        if "{rid}" in path:
            opened = client.post("/api/v1/admin/reviews", headers=credentials["admin"],
                                 json={"startDate": "2026-01-01", "endDate": "2026-01-31"})
            assert opened.status_code == 201, opened.text
            target = path.replace("{rid}", opened.json()["campaign"]["id"])
        if "{fid}" in path:
            flag = sql.execute(
                "INSERT INTO access_flag (org_id, rule, user_id, table_name, day, window_start, window_end, observed, "
                "explanation) VALUES (%s, 'new_actor', %s, 'patients', '2026-01-05', '2026-01-05', '2026-01-06', 1, "
                "'x') RETURNING id", (org.id, f"someone-{kind}")).fetchone()
            target = path.replace("{fid}", str(flag["id"]))
        sent = {k: v.replace("{kind}", kind) if isinstance(v, str) else v for k, v in body.items()} \
            if isinstance(body, dict) else body  # a body naming "{kind}" gets one per credential (no 409s)
        resp = client.request(method, target, headers=headers, json=sent)
        if expected[kind] >= 400:
            assert_error(resp, expected[kind])
        else:
            assert resp.status_code == expected[kind], (kind, resp.text)
    # An admin of another organization: admin routes answer, but never about this org's data.
    other = make_org().add_user("admin")
    theirs = str(flag["id"]) if "{fid}" in path else ""  # a flag of this org, not of the other one
    if "{cid}" in path or "{rid}" in path or "{fid}" in path:
        assert_error(client.request(method, path.replace("{cid}", "not-theirs").replace("{rid}", "not-theirs")
                                    .replace("{fid}", theirs),
                                    headers=other.headers, json=body), 404)
    elif expected["admin"] == 200:
        assert client.request(method, path, headers=other.headers, json=body).status_code == 200
