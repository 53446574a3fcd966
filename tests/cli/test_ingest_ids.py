"""Ids of file records without eventId (issue 13, item 2): distinct events are never merged, the same
events are never stored twice, and the import ledger tells the two apart or asks."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings

# Five queries a scheduled job runs every day, logged without eventId or timestamp.
DAY = [{"sql": f"SELECT id, email FROM patients WHERE ward = {i % 3}", "userId": f"job{i % 2}"} for i in range(5)]


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "1000")  # messages on one line, paths unbroken
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    yield run
    get_settings.cache_clear()


def _write(path, events) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def _count(sql, org) -> int:
    return sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]


def test_two_days_with_the_same_lines_are_refused_then_stored_apart_with_a_label(cli, tmp_path, make_org, sql):
    org = make_org()
    day1, day2 = tmp_path / "day1" / "queries.ndjson", tmp_path / "day2" / "queries.ndjson"
    _write(day1, DAY)
    _write(day2, DAY)
    assert "queries.ndjson: 5 inserted, 0 already stored, 0 rejected" in cli("ingest", str(day1), "--org", org.slug)
    refused = cli("ingest", str(day2), "--org", org.slug, code=1)
    assert f"this exact content was already imported from {day1}" in refused
    assert "nothing was stored" in refused and "--label" in refused and "--rerun" in refused
    assert _count(sql, org) == 5
    assert "5 inserted, 0 already stored" in cli("ingest", str(day2), "--org", org.slug, "--label", "day2")
    assert _count(sql, org) == 10
    # The labelled import is a finished import of its own: running it again asks too, and --rerun stores nothing.
    cli("ingest", str(day2), "--org", org.slug, "--label", "day2", code=1)
    assert "0 inserted, 5 already stored" in cli("ingest", str(day2), "--org", org.slug, "--label", "day2", "--rerun")
    ids = sql.execute("SELECT count(DISTINCT event_id) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()
    assert ids["n"] == 10 and _count(sql, org) == 10


def test_same_file_or_renamed_copy_never_stores_anything_twice(cli, tmp_path, make_org, sql):
    org = make_org()
    first = tmp_path / "queries.ndjson"
    _write(first, [*DAY, DAY[0]])  # the same line twice in one file: two events
    assert "6 inserted" in cli("ingest", str(first), "--org", org.slug)
    assert "already imported" in cli("ingest", str(first), "--org", org.slug, code=1)
    copy = tmp_path / "renamed" / "copy-of-queries.ndjson"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    assert f"already imported from {first}" in cli("ingest", str(copy), "--org", org.slug, code=1)
    assert "0 inserted, 6 already stored" in cli("ingest", str(copy), "--org", org.slug, "--rerun")
    assert "0 inserted, 6 already stored" in cli("ingest", str(first), "--org", org.slug, "--rerun")
    assert _count(sql, org) == 6


def test_a_grown_log_stores_only_its_new_lines_and_its_copy_elsewhere_is_refused(cli, tmp_path, make_org, sql):
    org = make_org()
    log = tmp_path / "app.ndjson"
    _write(log, DAY)
    cli("ingest", str(log), "--org", org.slug)
    _write(log, [*DAY, *DAY[:2]])  # the job ran again and appended two lines
    assert "2 inserted, 5 already stored" in cli("ingest", str(log), "--org", org.slug)
    other = tmp_path / "other" / "app.ndjson"
    _write(other, [*DAY, {"sql": "SELECT 1"}])
    assert "its first 5 records are the content imported from" in cli("ingest", str(other), "--org", org.slug, code=1)
    assert _count(sql, org) == 7


def test_files_whose_records_all_have_an_event_id_may_be_imported_again(cli, tmp_path, make_org, sql):
    org = make_org()
    path = tmp_path / "with-ids.ndjson"
    _write(path, [{**e, "eventId": f"id-{i}"} for i, e in enumerate(DAY)])
    cli("ingest", str(path), "--org", org.slug)
    assert "0 inserted, 5 already stored" in cli("ingest", str(path), "--org", org.slug)


def test_an_import_stopped_by_a_bad_line_resumes_from_the_same_path(cli, tmp_path, make_org, sql):
    """The ledger row is written with each transaction: fixing the bad line and running again stores the rest."""
    org = make_org()
    path = tmp_path / "broken.ndjson"
    lines = [json.dumps({"sql": f"SELECT {i}"}) for i in range(3_000)]
    path.write_text("\n".join([*lines[:2_400], "{not json", *lines[2_400:]]) + "\n")
    assert "line 2401: not valid JSON" in cli("ingest", str(path), "--org", org.slug, "--commit-every", "1000", code=1)
    assert _count(sql, org) == 2_400
    path.write_text("\n".join([*lines[:2_400], json.dumps({"sql": "SELECT 'fixed'"}), *lines[2_400:]]) + "\n")
    assert "601 inserted, 2400 already stored" in cli("ingest", str(path), "--org", org.slug)
    assert _count(sql, org) == 3_001


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_json_and_csv_records_get_content_ids_too(cli, tmp_path, make_org, sql, fmt):
    org = make_org()
    first, second = tmp_path / "a" / f"q.{fmt}", tmp_path / "b" / f"q.{fmt}"
    for path in (first, second):
        path.parent.mkdir()
        if fmt == "json":
            path.write_text(json.dumps(DAY))
        else:
            path.write_text("sql,userId\n" + "".join(f"\"{e['sql']}\",{e['userId']}\n" for e in DAY))
    assert "5 inserted" in cli("ingest", str(first), "--org", org.slug)
    cli("ingest", str(second), "--org", org.slug, code=1)
    assert "5 inserted" in cli("ingest", str(second), "--org", org.slug, "--label", "b")
    assert _count(sql, org) == 10
