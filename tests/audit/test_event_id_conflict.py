"""A reused eventId with other content is refused per event as `event_id_conflict` (issue 13, item 3):
through the API (JSON and NDJSON), the `ingest` command, and two batches at once."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from typer.testing import CliRunner

from atlas_compliance.audit import service
from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings

URL = "/api/v1/audit/events"


def stored(sql, org) -> list[tuple[str | None, str]]:
    return [(r["event_id"], r["sql"]) for r in sql.execute(
        "SELECT event_id, sql FROM audit_log WHERE org_id = %s ORDER BY chain_seq", (org.id,)).fetchall()]


def test_reused_id_with_other_sql_is_refused_with_its_index(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    first = client.post(URL, json=[{"eventId": "x", "sql": "DROP TABLE x"}], headers=key).json()
    assert first == {"inserted": 1, "duplicates": 0, "rejected": []}
    answer = client.post(URL, json=[{"sql": "SELECT 2"}, {"eventId": "x", "sql": "select 1"},
                                    {"eventId": "x", "sql": "DROP TABLE x"}, {"sql": 5}], headers=key).json()
    assert answer["inserted"] == 1 and answer["duplicates"] == 1
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [(1, "event_id_conflict"), (3, "invalid_event")]
    assert "'x' is already stored for another event" in answer["rejected"][0]["error"]
    assert stored(sql, org) == [("x", "DROP TABLE x"), (None, "SELECT 2")]


def test_ndjson_batch_repeating_an_id_for_another_user_refuses_the_second(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}", "Content-Type": "application/x-ndjson"}
    lines = [{"eventId": "y", "sql": "SELECT 1", "userId": "alice"}, {"eventId": "y", "sql": "SELECT 1", "userId": "bob"},
             {"eventId": "y", "sql": "SELECT 1", "userId": "alice"}]
    body = b"\n".join(orjson.dumps(e) for e in lines)
    answer = client.post(URL, content=body, headers=key).json()
    assert answer["inserted"] == 1 and answer["duplicates"] == 1
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [(1, "event_id_conflict")]
    users = sql.execute("SELECT user_id FROM audit_log WHERE org_id = %s", (org.id,)).fetchall()
    assert users == [{"user_id": "alice"}]


@pytest.mark.parametrize(("change", "outcome"), [
    ({}, "duplicate"),
    ({"timestamp": "2026-03-01T11:00:00+01:00"}, "duplicate"),  # the same instant in another offset
    ({"timestamp": None}, "duplicate"),  # no timestamp given: not compared
    ({"durationMs": 99, "rowCount": 7, "userLabel": "Alice", "error": "x"}, "duplicate"),  # measurements, labels
    ({"timestamp": "2026-03-01T10:00:01Z"}, "conflict"),
    ({"sql": "SELECT id FROM orders "}, "conflict"),
    ({"userId": None}, "conflict"),
    ({"targetHost": "db2"}, "conflict"),
    ({"sourceId": "other"}, "conflict"),
    ({"sourceType": "mysql"}, "conflict"),
    ({"success": False}, "conflict"),
])
def test_what_defines_an_event(client, org, sql, change, outcome):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    event = {"eventId": "e", "sql": "SELECT id FROM orders", "userId": "alice", "timestamp": "2026-03-01T10:00:00Z",
             "targetHost": "db1", "sourceId": "proxy", "sourceType": "postgres", "durationMs": 3}
    assert client.post(URL, json=[event], headers=key).json()["inserted"] == 1
    again = {k: v for k, v in {**event, **change}.items() if v is not None}
    answer = client.post(URL, json=[again], headers=key).json()
    if outcome == "duplicate":
        assert answer == {"inserted": 0, "duplicates": 1, "rejected": []}
    else:
        assert answer["inserted"] == 0 and answer["duplicates"] == 0
        assert [r["code"] for r in answer["rejected"]] == ["event_id_conflict"]
    assert len(stored(sql, org)) == 1


def test_two_batches_at_once_with_one_id_and_different_content(client, org, sql):
    """Whichever commits first is stored; the other is refused as a conflict, never merged or lost silently."""
    db = client.app.state.db

    async def one_writer(text: str):
        async with db.transaction() as conn:
            return await service.ingest_events(conn, org.id, [{"eventId": "race", "sql": text},
                                                              {"sql": f"{text} -- other event"}])

    async def both():
        return await asyncio.gather(one_writer("DROP TABLE x"), one_writer("select 1"))

    results = client.portal.call(both)
    assert sorted(r.inserted for r in results) == [1, 2]
    loser = next(r for r in results if r.inserted == 1)
    assert [(r.index, r.code) for r in loser.rejected] == [(0, "event_id_conflict")]
    winner_sql = next(text for text in stored(sql, org) if text[0] == "race")[1]
    assert winner_sql in ("DROP TABLE x", "select 1") and len(stored(sql, org)) == 3
    admin = org.add_user("admin")
    assert client.get("/api/v1/admin/audit/verify", headers=admin.headers).json()["ok"] is True


def test_cli_counts_conflicts_lists_them_and_exits_1(client, org, sql, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "1000")
    get_settings.cache_clear()
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    client.post(URL, json=[{"eventId": "x", "sql": "DROP TABLE x"}], headers=key)
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in [
        {"eventId": "x", "sql": "select 1"}, {"eventId": "x", "sql": "DROP TABLE x"}, {"eventId": "z", "sql": "SELECT 3"},
        {"eventId": "z", "sql": "SELECT 4"}]))
    try:
        result = CliRunner().invoke(app, ["ingest", str(path), "--org", org.slug])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "events.ndjson: 1 inserted, 1 already stored, 0 rejected, 2 event id conflicts" in result.output
    assert "record 1: eventId 'x' is already stored for another event" in result.output
    assert "record 4: eventId 'z' is already stored for another event" in result.output
    assert stored(sql, org) == [("x", "DROP TABLE x"), ("z", "SELECT 3")]
