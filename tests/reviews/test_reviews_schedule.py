"""Review cadence: schedules open a campaign per ended period, never twice, whoever runs the check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from atlas_compliance.audit.admin_actions import CLI_ACTOR
from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from atlas_compliance.errors import BadRequest, Conflict
from atlas_compliance.reviews import schedule
from tests.conftest import run_service
from tests.reviews.conftest import REVIEWS

APRIL_2 = datetime(2026, 4, 2, 12, tzinfo=UTC)


def add(client, org, **kwargs):
    return run_service(client, schedule.add_schedule, org.id, **{"name": "everyone", "every_months": 3,
                                                                  "anchor": "2025-10-01", "actor": CLI_ACTOR,
                                                                  **kwargs})


def open_due(client, org, now=APRIL_2):
    return client.portal.call(lambda: schedule.open_due(client.app.state.db, org_id=org.id, now=now))


def test_each_ended_period_is_opened_once_even_by_concurrent_checks(client, org, clinic, sql):
    add(client, org)
    add(client, org, name="privileged", every_months=1, anchor="2026-03-01", role="admin", due_days=7)
    db = client.app.state.db

    async def twice():
        return await asyncio.gather(schedule.open_due(db, org_id=org.id, now=APRIL_2),
                                    schedule.open_due(db, org_id=org.id, now=APRIL_2))

    first, second = client.portal.call(twice)
    assert len(first) + len(second) == 3  # Q4 2025 and Q1 2026 for everyone, March 2026 for admins
    assert open_due(client, org) == []  # nothing left to open
    rows = sql.execute("SELECT title, period_start::text, period_end::text, due_date::text, scope->>'role' AS role "
                       "FROM review_campaign WHERE org_id = %s ORDER BY title, period_start", (org.id,)).fetchall()
    assert [(r["period_start"], r["period_end"], r["due_date"], r["role"]) for r in rows] == [
        ("2025-10-01", "2025-12-31", "2026-01-30", None), ("2026-01-01", "2026-03-31", "2026-04-30", None),
        ("2026-03-01", "2026-03-31", "2026-04-07", "admin")]
    march = client.get(REVIEWS, headers=clinic["owner"].headers).json()["campaigns"]
    privileged = next(c for c in march if c["title"].startswith("privileged"))
    assert privileged["progress"]["userItems"] == 1  # role admin, as the reports' role filter: not the owner
    items = client.get(f"{REVIEWS}/{privileged['id']}", headers=clinic["owner"].headers).json()["items"]
    assert [i["userId"] for i in items if i["kind"] == "user"] == [clinic["second"].id]
    opened_by = sql.execute("SELECT DISTINCT actor_email FROM admin_action_log WHERE org_id = %s AND "
                            "action_type = 'review.open'", (org.id,)).fetchall()
    assert opened_by == [{"actor_email": "system:review-scheduler"}]
    # Later, the next period is due; the earlier ones are not opened again.
    assert [c["periodStart"] for c in open_due(client, org, datetime(2026, 7, 1, 12, tzinfo=UTC))
            if c["scope"]["role"] is None] == ["2026-04-01"]


class Stop(Exception):
    pass


def test_the_serve_task_opens_due_campaigns_then_waits_an_hour(client, org, clinic, sql):
    add(client, org)
    calls = []

    async def sleep(seconds):
        calls.append(seconds)
        raise Stop

    with pytest.raises(Stop):
        client.portal.call(lambda: schedule.run_periodically(client.app.state.db, sleep=sleep))
    assert calls == [schedule.CHECK_INTERVAL]
    assert sql.execute("SELECT count(*) AS n FROM review_campaign WHERE org_id = %s", (org.id,)).fetchone()["n"] >= 2


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"every_months": 2}, BadRequest), ({"anchor": "2026-1-1"}, BadRequest), ({"tz": "Nowhere/Land"}, BadRequest),
    ({"role": "root"}, BadRequest), ({"due_days": 0}, BadRequest), ({"name": " "}, BadRequest),
])
def test_bad_schedules_are_refused(client, org, kwargs, error):
    with pytest.raises(error):
        add(client, org, **kwargs)


def test_a_schedule_name_is_unique_per_org(client, org):
    add(client, org)
    with pytest.raises(Conflict):
        add(client, org)


def test_schedules_from_the_command_line(client, org, clinic, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        run = lambda *args: CliRunner().invoke(app, list(args))  # noqa: E731
        added = run("reviews", "schedule", "add", "--org", org.slug, "--name", "quarterly", "--every", "3",
                    "--anchor", "2025-10-01")
        assert added.exit_code == 0 and "every 3 month(s) from 2025-10-01" in added.output, added.output
        assert "quarterly" in run("reviews", "schedule", "list", "--org", org.slug).output
        first = run("reviews", "open-due", "--org", org.slug)
        assert first.exit_code == 0 and "due access review(s) opened" in first.output
        opened = int(first.output.strip().splitlines()[-1].split()[0])
        assert opened >= 2  # Q4 2025 and Q1 2026 at least (the test runs after 2026-04-01)
        assert run("reviews", "open-due", "--org", org.slug).output.strip().endswith("0 due access review(s) opened")
        bad = run("reviews", "schedule", "add", "--org", org.slug, "--name", "x", "--every", "2", "--anchor",
                  "2026-01-01")
        assert bad.exit_code == 1 and "use 1, 3, 6 or 12" in bad.output
    finally:
        get_settings.cache_clear()


def test_a_schedule_that_cannot_open_does_not_stop_the_others(client, org, clinic, make_org, monkeypatch, sql):
    from atlas_compliance.reviews import service

    other = make_org()
    add(client, org, name="too big")
    add(client, other, name="small")
    monkeypatch.setattr(service, "MAX_ITEMS", 2)  # the clinic's population is larger, the empty org's is not
    failures: list = []
    opened = client.portal.call(lambda: schedule.open_due(client.app.state.db, now=APRIL_2, failures=failures))
    assert {c["orgId"] for c in opened} >= {other.id}
    assert org.id not in {c["orgId"] for c in opened}
    assert [(f["orgId"], f["name"]) for f in failures if f["orgId"] in (org.id, other.id)] == [(org.id, "too big")]
    assert "population" in failures[0]["error"] or "items" in failures[0]["error"]
