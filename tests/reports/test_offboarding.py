"""Identities that survive offboarding (issue 19, part 2): membership history, reports naming people as
they were at the end of the window, `members remove` and `users disable`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings

REPORTS = "/api/v1/admin/compliance/reports"
MARCH = {"startDate": "2026-03-01", "endDate": "2026-03-31"}


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


@pytest.fixture()
def clinic(client, org):
    admin = org.add_user("owner")
    olga = org.add_user("member", email=f"olga@{org.slug}.example")
    idle = org.add_user("member", email=f"idle@{org.slug}.example", login=False)
    events = [{"eventId": f"m{i}", "timestamp": f"2026-03-{i + 2:02d}T10:00:00Z", "userId": olga.id,
               "sql": "SELECT name, ssn FROM patients"} for i in range(5)]
    events += [{"eventId": "svc", "timestamp": "2026-03-09T10:00:00Z", "userId": "svc-etl", "userLabel": "ETL job",
                "sql": "SELECT id FROM invoices"}]
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=key).json()["inserted"] == 6
    return {"admin": admin, "olga": olga, "idle": idle}


def snapshot(client, headers, **extra) -> dict[str, bytes | dict]:
    """Both reports for March, as JSON (without the generation time) and as the CSV bytes."""
    out: dict[str, bytes | dict] = {}
    for report in ("data-access", "user-activity"):
        body = client.get(f"{REPORTS}/{report}", params={**MARCH, **extra}, headers=headers).json()
        body.pop("generatedAt")
        out[report] = body
        out[report + ".csv"] = client.get(f"{REPORTS}/{report}", params={**MARCH, **extra, "format": "csv"},
                                          headers=headers).content
    return out


def test_a_past_windows_report_is_unchanged_by_role_changes_and_offboarding(client, org, clinic, cli, sql):
    h = clinic["admin"].headers
    before, members_before = snapshot(client, h), snapshot(client, h, role="member")
    olga_row = before["data-access"]["rows"][0]
    assert (olga_row["userEmail"], olga_row["userRole"], olga_row["queryCount"]) == (clinic["olga"].email, "member", 5)
    assert clinic["idle"].id in {r["userId"] for r in before["user-activity"]["rows"]}

    assert cli("members", "add", clinic["olga"].email, "--org", org.slug, "--role", "admin").exit_code == 0
    new_email = f"olga.new@{org.slug}.example"
    sql.execute('UPDATE "user" SET email = %s, "normalizedEmail" = %s WHERE id = %s',
                (new_email, new_email, clinic["olga"].id))
    result = cli("members", "remove", f"olga.new@{org.slug}.example", "--org", org.slug)
    assert result.exit_code == 0, result.output
    assert "is no longer a member" in result.output and "(was admin)" in result.output
    assert cli("members", "remove", clinic["idle"].email, "--org", org.slug).exit_code == 0

    assert snapshot(client, h) == before  # byte for byte, CSV included
    assert snapshot(client, h, role="member") == members_before
    history = sql.execute("SELECT email, role, valid_to IS NULL AS open FROM member_history WHERE user_id = %s "
                          "ORDER BY id", (clinic["olga"].id,)).fetchall()
    assert [(r["role"], r["open"]) for r in history] == [("member", False), ("admin", False), ("admin", False)]
    assert history[-1]["email"] == f"olga.new@{org.slug}.example"
    # Access is gone: her session token no longer works.
    assert client.get("/api/v1/auth/me", headers=clinic["olga"].headers).status_code == 401


def test_a_window_ending_after_the_removal_names_the_former_member_and_drops_idle_ones(client, org, clinic, cli):
    h = clinic["admin"].headers
    now = datetime.now(UTC)
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    recent = [{"eventId": "recent", "timestamp": (now - timedelta(hours=1)).isoformat(), "userId": clinic["olga"].id,
               "sql": "SELECT 1 FROM patients"}]
    assert client.post("/api/v1/audit/events", json=recent, headers=key).json()["inserted"] == 1
    window = {"startDate": (now - timedelta(days=2)).date().isoformat(),
              "endDate": (now + timedelta(days=1)).date().isoformat()}
    assert cli("members", "remove", clinic["olga"].email, "--org", org.slug).exit_code == 0
    assert cli("members", "remove", clinic["idle"].email, "--org", org.slug).exit_code == 0
    rows = client.get(f"{REPORTS}/user-activity", params=window, headers=h).json()["rows"]
    by_id = {r["userId"]: r for r in rows}
    assert by_id[clinic["olga"].id]["userEmail"] == clinic["olga"].email  # her rows keep her name
    assert by_id[clinic["olga"].id]["role"] == "member"  # the role she last held
    assert clinic["idle"].id not in by_id  # left before the window's end and ran nothing in it
    # Never a member: no email, whatever the id.
    march = client.get(f"{REPORTS}/data-access", params=MARCH, headers=h).json()["rows"]
    svc = next(r for r in march if r["userId"] == "svc-etl")
    assert svc["userEmail"] is None and svc["userRole"] is None


def test_users_disable_ends_every_membership_and_revokes_access(client, org, make_org, clinic, cli, sql):
    other = make_org()
    assert cli("members", "add", clinic["olga"].email, "--org", other.slug, "--role", "admin").exit_code == 0
    result = cli("users", "disable", clinic["olga"].email)
    assert result.exit_code == 0, result.output
    assert org.slug in result.output and other.slug in result.output
    assert sql.execute('SELECT count(*) FROM member WHERE "userId" = %s', (clinic["olga"].id,)).fetchone()["count"] == 0
    assert sql.execute('SELECT banned FROM "user" WHERE id = %s', (clinic["olga"].id,)).fetchone()["banned"] is True
    login = client.post("/api/v1/auth/login", json={"email": clinic["olga"].email, "password": clinic["olga"].password})
    assert login.status_code == 403 and login.json()["error"] == "not_a_member"
    actions = sql.execute("SELECT org_id, action_type FROM admin_action_log WHERE target_id = %s "
                          "AND action_type = 'user.disable'", (clinic["olga"].id,)).fetchall()
    assert sorted((a["org_id"], a["action_type"]) for a in actions) == sorted(
        [(org.id, "user.disable"), (other.id, "user.disable")])
    row = client.get(f"{REPORTS}/data-access", params=MARCH, headers=clinic["admin"].headers).json()["rows"][0]
    assert row["userEmail"] == clinic["olga"].email


@pytest.mark.parametrize(("args", "message"), [
    (["members", "remove", "nobody@example.invalid", "--org", "{org}"], "no user with email"),
    (["members", "remove", "{idle}", "--org", "no-such-org"], "no organization with slug"),
    (["users", "disable", "nobody@example.invalid"], "no user with email"),
])
def test_offboarding_bad_input_says_why_and_changes_nothing(cli, org, clinic, sql, args, message):
    args = [a.format(org=org.slug, idle=clinic["idle"].email) for a in args]
    before = sql.execute("SELECT count(*) FROM member_history").fetchone()["count"]
    result = cli(*args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert sql.execute("SELECT count(*) FROM member_history").fetchone()["count"] == before


def test_the_last_owner_cannot_be_removed(cli, org, clinic, sql):
    result = cli("members", "remove", clinic["admin"].email, "--org", org.slug)
    assert result.exit_code == 1 and "last owner" in result.output
    assert sql.execute('SELECT role FROM member WHERE "userId" = %s', (clinic["admin"].id,)).fetchone()["role"] == "owner"
    assert cli("members", "remove", clinic["olga"].email, "--org", org.slug).exit_code == 0
    again = cli("members", "remove", clinic["olga"].email, "--org", org.slug)
    assert again.exit_code == 1 and "is not a member of" in again.output
