"""Users of an Atlas database sign in with their Atlas password (issue 18): Better Auth's scrypt hashes,
emails without `normalizedEmail`, `users set-password`, last login from sessions without an active org.

The hashes below were made by Better Auth's own algorithm in Node (@noble/hashes' scryptAsync with Better
Auth's parameters and its hex-salt-as-text convention), not by the code under test.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from atlas_compliance.auth import passwords
from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from tests.conftest import assert_error

LOGIN = "/api/v1/auth/login"
UA = "/api/v1/admin/compliance/reports/user-activity"
NODE_MADE = [
    ("correct horse battery", "0123456789abcdef0123456789abcdef:b87ad68e260d745e9edfac97cc70f72a8fbb1771cf033e8d2b3c"
                              "360d3788e3548d977bae5090f5d6cd75f5190a6fbe6b0b5737d5420119bd1e44ccdc779acfe5"),
    ("Pässwörd \ufb01\u00bd with compat", "fedcba9876543210fedcba9876543210:3720755c792cb03d108870e9767212173fd89ee"
                                          "1467fed6ccfd1e345a0bba88c018da5fa1df00b3e450e83c117ae32248067bf244f80be"
                                          "246deda497d5e68078"),
    ("short8ch", "00000000000000000000000000000001:40b38bd97d3a9c21457e2b63fb87f6b68300c80db6300e610fc628b5d9950ede"
                 "7e8679d1397d39fdba9af28e145fbf627e43ccbf4d3613fb11a1107a6cd5c720"),
]


@pytest.mark.parametrize(("password", "stored"), NODE_MADE)
def test_better_auth_hashes_verify(password, stored):
    assert passwords.verify_password(stored, password)
    assert not passwords.verify_password(stored, password + "x")
    assert not passwords.verify_password(stored.upper().replace(":", ":0", 1)[:-1], password)  # malformed: refused


def test_compatibility_forms_of_a_password_are_one_password():
    # NFKC: "ﬁ" is "fi" and "½" is "1⁄2", as Better Auth normalizes before hashing.
    assert passwords.verify_password(NODE_MADE[1][1], "Pässwörd fi1\u20442 with compat")


def test_hash_like_keeps_the_accounts_format():
    kept = passwords.hash_like(NODE_MADE[0][1], "a new password")
    assert passwords.is_better_auth_hash(kept) and passwords.verify_password(kept, "a new password")
    assert passwords.hash_like(passwords.hash_password("x" * 8), "a new password").startswith("$argon2id$")
    assert passwords.hash_like(None, "a new password").startswith("$argon2id$")


def atlas_user(sql, org, *, email: str, stored: str) -> str:
    """A user as Atlas writes them: mixed-case email, no normalizedEmail, Better Auth's hash, a member."""
    member = org.add_user("admin", email=email.lower(), login=False)
    sql.execute('UPDATE "user" SET email = %s, "normalizedEmail" = NULL WHERE id = %s', (email, member.id))
    sql.execute("UPDATE account SET password = %s WHERE \"userId\" = %s AND \"providerId\" = 'credential'",
                (stored, member.id))
    return member.id


def test_an_atlas_user_signs_in_with_the_atlas_password_which_stays_as_it_was(client, org, sql):
    password, stored = NODE_MADE[0]
    email = f"Olga.Petrova@{org.slug}.example"
    user_id = atlas_user(sql, org, email=email, stored=stored)
    resp = client.post(LOGIN, json={"email": email.lower(), "password": password})
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["id"] == user_id and resp.json()["role"] == "admin"
    assert_error(client.post(LOGIN, json={"email": email, "password": "wrong password"}), 401, "invalid_credentials")
    kept = sql.execute("SELECT password FROM account WHERE \"userId\" = %s", (user_id,)).fetchone()["password"]
    assert kept == stored  # never rewritten: Atlas still verifies it


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_set_password_keeps_atlas_users_in_better_auths_format(client, org, sql, cli):
    email = f"Ann.Lee@{org.slug}.example"
    user_id = atlas_user(sql, org, email=email, stored=NODE_MADE[2][1])
    result = cli.invoke(app, ["users", "set-password", email.upper(), "--password-stdin"],
                        input="a brand new secret\n")
    assert result.exit_code == 0, result.output
    assert "(better-auth-scrypt)" in result.output
    stored = sql.execute("SELECT password FROM account WHERE \"userId\" = %s", (user_id,)).fetchone()["password"]
    assert passwords.is_better_auth_hash(stored) and passwords.verify_password(stored, "a brand new secret")
    assert client.post(LOGIN, json={"email": email, "password": "a brand new secret"}).status_code == 200
    action = sql.execute("SELECT action_type, metadata FROM admin_action_log WHERE target_id = %s "
                         "ORDER BY chain_seq DESC LIMIT 1", (user_id,)).fetchone()
    assert action["action_type"] == "user.password_set" and "secret" not in str(action["metadata"])


def test_set_password_refusals_change_nothing(org, sql, cli):
    member = org.add_user("member", login=False)
    before = sql.execute("SELECT password FROM account WHERE \"userId\" = %s", (member.id,)).fetchone()["password"]
    short = cli.invoke(app, ["users", "set-password", member.email, "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    unknown = cli.invoke(app, ["users", "set-password", "nobody@nowhere.example", "--password-stdin"],
                         input="long enough password\n")
    assert unknown.exit_code == 1 and "no user with email" in unknown.output
    empty = cli.invoke(app, ["users", "set-password", member.email, "--password-stdin"], input="")
    assert empty.exit_code == 1
    assert sql.execute("SELECT password FROM account WHERE \"userId\" = %s",
                       (member.id,)).fetchone()["password"] == before
    ok = cli.invoke(app, ["users", "set-password", member.email, "--password-stdin"], input="long enough password\n")
    assert ok.exit_code == 0 and "(argon2id)" in ok.output


def test_last_login_counts_sessions_without_an_active_organization_for_members(client, org, make_org, sql):
    admin = org.add_user("admin")
    member = org.add_user("member", login=False)
    stranger = make_org().add_user("member", login=False)
    for user_id, at in ((member.id, "2026-03-10T09:00:00Z"), (stranger.id, "2026-03-11T09:00:00Z")):
        sql.execute('INSERT INTO session (id, "userId", token, "expiresAt", "createdAt", "updatedAt", '
                    '"activeOrganizationId") VALUES (gen_random_uuid()::text, %s, gen_random_uuid()::text, '
                    "%s::timestamptz + interval '7 days', %s, %s, NULL)", (user_id, at, at, at))
    sql.execute('UPDATE member_history SET valid_from = \'2026-01-01\' WHERE org_id = %s AND user_id = %s',
                (org.id, member.id))
    rows = client.get(UA, params={"startDate": "2026-03-01", "endDate": "2026-03-31"}, headers=admin.headers).json()
    logins = {r["userId"]: r["lastLoginAt"] for r in rows["rows"]}
    assert logins[member.id] == "2026-03-10T09:00:00Z"
    assert stranger.id not in logins
