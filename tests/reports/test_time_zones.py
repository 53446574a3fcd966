"""Report time zones (issue 13 item 11): IANA names are matched case-insensitively and echoed back in
their canonical spelling; names whose meaning depends on the server are refused with `invalid_tz`, in
the API, the CLI and the console."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app as cli_app
from atlas_compliance.config import get_settings
from tests.conftest import assert_error
from tests.console.conftest import browser_client, console_login

DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
VOLUME = "/api/v1/admin/compliance/volume"
WINDOW = {"startDate": "2026-03-01", "endDate": "2026-03-04"}
CANONICAL = [("utc", "UTC"), ("UTC", "UTC"), ("europe/paris", "Europe/Paris"),
             ("AMERICA/NEW_YORK", "America/New_York"), ("etc/gmt+5", "Etc/GMT+5"), (" Asia/Tokyo ", "Asia/Tokyo")]
SERVER_DEPENDENT = ["localtime", "posixrules", "Factory", "factory", "posix/Europe/Paris", "right/UTC",
                    "LOCALTIME"]


@pytest.fixture()
def admin_with_events(org):
    admin = org.add_user("admin")
    events = [{"sql": "select 1", "timestamp": "2026-03-01T23:30:00Z", "tablesAccessed": ["orders"]},
              {"sql": "select 2", "timestamp": "2026-03-04T23:30:00Z", "tablesAccessed": ["orders"]}]
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert org.client.post("/api/v1/audit/events", json=events, headers=key).json()["inserted"] == 2
    return admin


@pytest.mark.parametrize(("sent", "canonical"), CANONICAL)
def test_api_accepts_any_case_and_echoes_the_canonical_name(client, admin_with_events, sent, canonical):
    headers = admin_with_events.headers
    for path in (DA, UA):
        body = client.get(path, params={**WINDOW, "tz": sent}, headers=headers)
        assert body.status_code == 200, body.text
        exact = client.get(path, params={**WINDOW, "tz": canonical}, headers=headers).json()
        assert body.json()["window"]["tz"] == canonical
        assert body.json()["window"] == exact["window"]
        assert body.json()["summary"] == exact["summary"]


def test_a_lowercase_zone_reads_dates_in_that_zone(client, admin_with_events):
    # 23:30 UTC on March 1 is March 2 in Paris; 23:30 UTC on March 4 is March 5 (outside the window).
    paris = client.get(DA, params={**WINDOW, "tz": "europe/paris"}, headers=admin_with_events.headers).json()
    assert paris["window"]["start"] == "2026-02-28T23:00:00Z" and paris["summary"]["totalQueries"] == 1
    utc = client.get(DA, params={**WINDOW, "tz": "utc"}, headers=admin_with_events.headers).json()
    assert utc["summary"]["totalQueries"] == 2


@pytest.mark.parametrize("name", SERVER_DEPENDENT)
def test_api_refuses_server_dependent_zones(client, admin_with_events, name):
    for path in (DA, UA):
        body = assert_error(client.get(path, params={**WINDOW, "tz": name}, headers=admin_with_events.headers),
                            400, "invalid_tz")
        assert "e.g. UTC" in body["message"]


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli_app, list(args))
    get_settings.cache_clear()


def test_cli_accepts_any_case_and_refuses_server_dependent_zones(cli, org, admin_with_events):
    args = ("report", "data-access", "--org", org.slug, "--start", "2026-03-01", "--end", "2026-03-04")
    paris = cli(*args, "--tz", "europe/paris")
    assert paris.exit_code == 0, paris.output
    assert "(Europe/Paris)" in paris.output and "totalQueries: 1" in paris.output
    assert "(UTC)" in cli(*args, "--tz", "utc").output
    for name in ("localtime", "posixrules", "Factory"):
        refused = cli(*args, "--tz", name)
        assert refused.exit_code == 1 and "invalid tz" in refused.output and "Traceback" not in refused.output


def test_console_accepts_any_case_and_refuses_server_dependent_zones(client, org, admin_with_events):
    admin = org.add_user("admin", login=False, email=f"tz-{uuid.uuid4().hex[:8]}@{org.slug}.example")
    browser = browser_client(client)
    console_login(browser, admin)
    paris = browser.get(VOLUME, params={**WINDOW, "tz": "europe/paris"}).json()
    assert paris["window"]["tz"] == "Europe/Paris" and paris["totalQueries"] == 1
    assert browser.get(VOLUME, params={**WINDOW, "tz": "utc"}).json()["window"]["tz"] == "UTC"
    for name in ("localtime", "posixrules", "Factory"):
        assert_error(browser.get(VOLUME, params={**WINDOW, "tz": name}), 400, "invalid_tz")
