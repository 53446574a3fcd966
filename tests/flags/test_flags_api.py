"""Unusual-access flags (issue 21) through the API and the CLI: list (filters, JSON, CSV), acknowledge
(chained admin records, append-only, never by the flagged user), `flags list --open` for cron."""

from __future__ import annotations

import csv
import io
import json

import psycopg
import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from tests.conftest import assert_error
from tests.flags.conftest import FLAGS, evaluate, send


@pytest.fixture()
def flagged(client, org, clinic):
    # second (an admin) reads ssn for the first time ever on the day: a new-actor flag about an admin.
    late = [{"eventId": "second-1", "timestamp": "2026-11-03T12:00:00Z", "userId": clinic["second"].id,
             "sql": "SELECT ssn FROM patients"}]
    assert send(client, clinic["key"], late) == 1
    assert evaluate(client, org.id)["flags"] == 4
    flags = client.get(FLAGS, headers=clinic["owner"].headers).json()["flags"]
    return {(f["rule"], f["userId"]): f for f in flags}


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


def test_flags_are_listed_filtered_and_exported(client, org, clinic, flagged, make_org):
    owner, olga = clinic["owner"], clinic["olga"]
    volume = flagged[("volume", olga.id)]
    assert (volume["tableName"], volume["columns"], volume["observed"], volume["baseline"], volume["threshold"],
            volume["day"], volume["window"], volume["open"], volume["latestDisposition"]) == \
        ("patients", ["name", "ssn"], 60, 9, 50, "2026-11-03",
         {"start": "2026-11-03T00:00:00Z", "end": "2026-11-04T00:00:00Z"}, True, None)
    get = lambda **q: client.get(FLAGS, params=q, headers=owner.headers)  # noqa: E731
    assert [f["rule"] for f in get(userId=olga.id).json()["flags"]] == ["first_access", "volume"]  # newest first
    assert [f["userId"] for f in get(rule="new_actor").json()["flags"]].count("db:svc_etl") == 1
    assert get(startDate="2026-11-04").json()["flags"] == []
    assert len(get(startDate="2026-11-03", endDate="2026-11-03").json()["flags"]) == 4
    for params, code in (({"rule": "loud"}, "invalid_rule"), ({"startDate": "03/11/2026"}, "invalid_day"),
                         ({"startDate": "2026-11-04", "endDate": "2026-11-03"}, "invalid_day")):
        assert_error(get(**params), 400, code)
    assert_error(get(format="xml"), 422)
    exported = get(format="csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 4
    row = [r for r in rows if r["rule"] == "volume"][0]
    assert (row["user_id"], row["columns"], row["observed"], row["baseline"], row["threshold"], row["open"]) == \
        (olga.id, "name; ssn", "60", "9", "50", "true")
    assert row["explanation"] == volume["explanation"]
    # Another organization sees none of them.
    other = make_org().add_user("admin")
    assert client.get(FLAGS, headers=other.headers).json()["flags"] == []


def test_a_flag_is_acknowledged_by_another_admin_chained_and_append_only(client, org, clinic, flagged, sql):
    owner, second = clinic["owner"], clinic["second"]
    own = flagged[("new_actor", second.id)]
    post = lambda fid, body, who=owner: client.post(f"{FLAGS}/{fid}/disposition", json=body,  # noqa: E731
                                                   headers=who.headers)
    # Refused, nothing stored: one's own flag, a blank note, an unknown disposition, an unknown flag.
    assert "about you" in assert_error(post(own["id"], {"disposition": "expected", "note": "me"}, second), 403,
                                       "self_disposition")["message"]
    assert_error(post(own["id"], {"disposition": "expected", "note": "  "}), 400, "note_required")
    assert_error(post(own["id"], {"disposition": "fine", "note": "x"}), 422)
    assert_error(post(own["id"], {"disposition": "expected"}), 422)
    assert_error(post(99_999_999, {"disposition": "expected", "note": "x"}), 404, "flag_not_found")
    assert_error(post("abc", {"disposition": "expected", "note": "x"}), 404, "flag_not_found")
    assert sql.execute("SELECT count(*) AS n FROM access_flag_disposition WHERE org_id = %s",
                       (org.id,)).fetchone()["n"] == 0

    done = post(own["id"], {"disposition": "investigating", "note": "new on-call admin; asking"})
    assert done.status_code == 201, done.text
    assert (done.json()["disposition"], done.json()["by"]["email"]) == ("investigating", owner.email)
    assert post(own["id"], {"disposition": "expected", "note": "confirmed with the team lead"}).status_code == 201
    listed = {f["id"]: f for f in client.get(FLAGS, headers=owner.headers).json()["flags"]}
    assert (listed[own["id"]]["open"], listed[own["id"]]["latestDisposition"]["disposition"],
            listed[own["id"]]["dispositionCount"]) == (False, "expected", 2)
    open_ids = {f["id"] for f in client.get(FLAGS, params={"open": "true"}, headers=owner.headers).json()["flags"]}
    assert own["id"] not in open_ids and len(open_ids) == 3
    actions = sql.execute("SELECT action_type, actor_email, chain_seq, metadata FROM admin_action_log "
                          "WHERE org_id = %s AND target_type = 'access_flag' ORDER BY chain_seq",
                          (org.id,)).fetchall()
    assert [(a["action_type"], a["actor_email"], a["metadata"]["disposition"]) for a in actions] == \
        [("flag.dispose", owner.email, "investigating"), ("flag.dispose", owner.email, "expected")]
    assert all(a["chain_seq"] is not None for a in actions)
    # Append-only whoever writes; and the database refuses a disposition by the flagged user too.
    for statement in ("UPDATE access_flag_disposition SET note = 'x'", "DELETE FROM access_flag_disposition"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql.execute(statement + " WHERE org_id = %s", (org.id,))
    with pytest.raises(psycopg.errors.CheckViolation):
        sql.execute("INSERT INTO access_flag_disposition (flag_id, org_id, disposition, note, by_id) "
                    "VALUES (%s, %s, 'expected', 'mine', %s)", (own["id"], org.id, second.id))
    # Re-evaluating keeps the acknowledged flag and its dispositions.
    assert evaluate(client, org.id)["withdrawn"] == 0
    assert listed[own["id"]]["id"] in {f["id"] for f in client.get(FLAGS, headers=owner.headers).json()["flags"]}


def test_the_command_line_evaluates_lists_for_cron_and_acknowledges(cli, client, org, clinic):
    owner, olga = clinic["owner"], clinic["olga"]
    evaluated = cli("flags", "evaluate", "--org", org.slug, "--from", "2026-11-03", "--to", "2026-11-03")
    assert evaluated.exit_code == 0, evaluated.output
    assert "3 flag(s) hold; 3 new, 0 updated, 0 unchanged, 0 withdrawn" in evaluated.output
    again = cli("flags", "evaluate", "--org", org.slug, "--from", "2026-11-03", "--to", "2026-11-03")
    assert "0 new, 0 updated, 3 unchanged" in again.output
    bad = cli("flags", "evaluate", "--org", org.slug, "--from", "2026-11-05", "--to", "2026-11-03")
    assert bad.exit_code == 1 and "after" in bad.output and "Traceback" not in bad.output

    listed = cli("flags", "list", "--org", org.slug, "--open", "--format", "json")
    assert listed.exit_code == 1  # something is open: cron alerts
    flags = json.loads(listed.stdout)["flags"]
    assert len(flags) == 3
    table = cli("flags", "list", "--org", org.slug)
    assert table.exit_code == 0 and "new_actor" in table.output
    as_csv = cli("flags", "list", "--org", org.slug, "--format", "csv")
    assert as_csv.stdout.startswith("id,rule,day,user_id,table_name,columns,")

    mine = [f for f in flags if f["userId"] == olga.id][0]
    refused = cli("flags", "dispose", str(mine["id"]), "--org", org.slug, "--disposition", "expected",
                  "--note", "x", "--admin", olga.email)
    assert refused.exit_code == 1 and "not an admin or owner" in refused.output
    for f in flags:
        done = cli("flags", "dispose", str(f["id"]), "--org", org.slug, "--disposition", "expected",
                   "--note", "month-end export", "--admin", owner.email)
        assert done.exit_code == 0, done.output
    quiet = cli("flags", "list", "--org", org.slug, "--open")
    assert quiet.exit_code == 0, quiet.output


def test_thresholds_are_shown_and_set_per_org_on_the_command_line(cli, client, org, clinic, sql):
    assert "volume floor 50, k 5, baseline 28 days" in cli("flags", "settings", "--org", org.slug).output
    set_ = cli("flags", "settings", "--org", org.slug, "--floor", "70", "--k", "2.5")
    assert set_.exit_code == 0 and "volume floor 70, k 2.5, baseline 28 days" in set_.output
    assert "working hours 8-18 Europe/Paris" in cli("flags", "settings", "--org", org.slug, "--tz", "europe/paris",
                                                     "--work-start", "8", "--work-end", "18").output
    for args in (("--k", "many"), ("--k", "0"), ("--baseline-days", "10"), ("--floor", "-1"), ("--tz", "Mars/Base"),
                 ("--work-start", "20")):
        bad = cli("flags", "settings", "--org", org.slug, *args)
        assert bad.exit_code == 1 and "Traceback" not in bad.output, bad.output
    assert sql.execute("SELECT action_type FROM admin_action_log WHERE org_id = %s AND target_type = "
                       "'access_flag_setting'", (org.id,)).fetchall() == [{"action_type": "flag.settings_update"}] * 2
    evaluate(client, org.id)  # olga's 60 is not above 70; bob's 90 is above max(70, 2.5 x 20)
    volume = sql.execute("SELECT user_id, observed, baseline, threshold FROM access_flag WHERE org_id = %s "
                         "AND rule = 'volume'", (org.id,)).fetchall()
    assert [(v["user_id"], v["observed"], v["baseline"], v["threshold"]) for v in volume] == \
        [(clinic["bob"].id, 90, 20, 70)]


def test_the_scheduled_pass_evaluates_yesterday_and_today_for_every_org(client, org, clinic, sql):
    from datetime import date

    from atlas_compliance.flags import schedule

    db = client.app.state.db
    results = client.portal.call(schedule.evaluate_all, db, date(2026, 11, 4))
    mine = [r for r in results if r["orgId"] == org.id]
    assert mine == [{"orgId": org.id, "from": "2026-11-03", "to": "2026-11-04", "flags": 3, "inserted": 3,
                     "updated": 0, "unchanged": 0, "withdrawn": 0}]

    calls: list[float] = []

    async def stop(seconds: float) -> None:
        calls.append(seconds)
        raise RuntimeError("stop")  # one pass, then out

    with pytest.raises(RuntimeError):
        client.portal.call(schedule.run_periodically, db, stop)
    assert calls == [schedule.CHECK_INTERVAL]
