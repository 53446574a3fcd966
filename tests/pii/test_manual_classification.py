"""Adding a column the scanner missed, by hand: API (every credential, bad input, conflicts) and CLI."""

from __future__ import annotations

import pytest

from tests.conftest import assert_error

URL = "/api/v1/admin/compliance/classifications"
MANUAL = f"{URL}/manual"


def listing(client, member, **params):
    return client.get(URL, params={"includeDismissed": "true", **params}, headers=member.headers).json()


def test_an_admin_adds_a_missed_column_reviewed_with_its_default_masking(client, org, sql):
    admin = org.add_user("admin")
    resp = client.post(MANUAL, json={"tableName": "Public.Encounters", "columnName": " Triage_Notes ",
                                     "category": "diagnosis_code", "note": "free-text diagnoses"},
                       headers=admin.headers)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["tableName"], body["columnName"], body["category"], body["maskingStrategy"], body["method"],
            body["confidence"], body["reviewed"], body["dismissed"]) == (
        "encounters", "triage_notes", "diagnosis_code", "redact", "manual", "high", True, False)
    assert body["reason"] == f"added by {admin.email}: free-text diagnoses"
    assert [c["id"] for c in listing(client, admin)["classifications"]] == [body["id"]]
    action = sql.execute("SELECT target_id, metadata FROM admin_action_log WHERE org_id = %s AND action_type = "
                         "'compliance.pii_manual_add'", (org.id,)).fetchone()
    assert action["target_id"] == body["id"] and action["metadata"]["category"] == "diagnosis_code"
    # A later scan does not overwrite what the admin decided (sticky: reviewed).
    client.post(URL, json={"detections": [{"tableName": "encounters", "columnName": "triage_notes",
                                           "category": "other", "confidence": "low"}]}, headers=admin.headers)
    assert listing(client, admin)["classifications"][0]["category"] == "diagnosis_code"


def test_a_chosen_strategy_is_kept(client, org):
    admin = org.add_user("owner")
    resp = client.post(MANUAL, json={"tableName": "t", "columnName": "c", "category": "email", "maskingStrategy": "hash"},
                       headers=admin.headers)
    assert resp.status_code == 201 and resp.json()["maskingStrategy"] == "hash"


def test_an_already_classified_column_is_a_conflict_and_changes_nothing(client, org):
    admin = org.add_user("admin")
    client.post(URL, json={"detections": [{"tableName": "patients", "columnName": "mrn", "category": "other"}]},
                headers=admin.headers)
    before = listing(client, admin)
    resp = client.post(MANUAL, json={"tableName": "patients", "columnName": "MRN", "category": "medical_record_number"},
                       headers=admin.headers)
    assert_error(resp, 409, "classification_exists")
    assert resp.json()["details"]["id"] == before["classifications"][0]["id"]
    assert "edit it instead" in resp.json()["message"]
    client.put(f"{URL}/{before['classifications'][0]['id']}", json={"dismissed": True}, headers=admin.headers)
    resp = client.post(MANUAL, json={"tableName": "patients", "columnName": "mrn", "category": "ssn"},
                       headers=admin.headers)
    assert_error(resp, 409, "classification_exists")
    assert "dismissed: restore it" in resp.json()["message"]
    assert listing(client, admin)["classifications"][0]["category"] == "other"


@pytest.mark.parametrize("body", [
    {"tableName": "t", "columnName": "c", "category": "blood_type"},
    {"tableName": "  ", "columnName": "c", "category": "ssn"},
    {"tableName": "t", "columnName": " ", "category": "ssn"},
    {"tableName": "t", "columnName": "c", "category": "ssn", "maskingStrategy": "rot13"},
    {"tableName": "t", "columnName": "c", "category": "ssn", "reviewed": False},
    {"tableName": "t" * 501, "columnName": "c", "category": "ssn"},
    {"tableName": "t", "columnName": "c", "category": "ssn", "note": "x" * 2001},
    {"columnName": "c", "category": "ssn"},
])
def test_bad_input_is_422_and_stores_nothing(client, org, body):
    admin = org.add_user("admin")
    assert_error(client.post(MANUAL, json=body, headers=admin.headers), 422)
    assert listing(client, admin)["classifications"] == []


def test_roles_and_isolation(client, org, make_org):
    admin = org.add_user("admin")
    body = {"tableName": "t", "columnName": "c", "category": "ssn"}
    for headers in (org.add_user("member").headers, {"Authorization": f"Bearer {org.ingest_key()}"}):
        assert_error(client.post(MANUAL, json=body, headers=headers), 403)
    assert_error(client.post(MANUAL, json=body), 401)
    other = make_org().add_user("admin")
    assert client.post(MANUAL, json=body, headers=other.headers).status_code == 201
    assert client.post(MANUAL, json=body, headers=admin.headers).status_code == 201  # another org: no conflict
    assert len(listing(client, admin)["classifications"]) == 1


def test_the_cli_adds_a_missed_column_and_refuses_a_second_time(database_url, monkeypatch, tmp_path, client, org):
    from typer.testing import CliRunner

    from atlas_compliance.cli.main import app
    from atlas_compliance.config import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        ok = runner.invoke(app, ["pii", "add", "lab_results", "Result_Text", "--org", org.slug, "--category",
                                 "lab_result", "--note", "free-text results"])
        assert ok.exit_code == 0, ok.output
        assert ok.output.strip() == "classified lab_results.result_text as lab_result (masking redact, reviewed)"
        again = runner.invoke(app, ["pii", "add", "lab_results", "result_text", "--org", org.slug, "--category", "other"])
        assert again.exit_code == 1 and "already classified as lab_result" in again.output
        bad = runner.invoke(app, ["pii", "add", "t", "c", "--org", org.slug, "--category", "blood_type"])
        assert bad.exit_code == 2 and "category" in bad.output
    finally:
        get_settings.cache_clear()
    admin = org.add_user("admin")
    rows = listing(client, admin)["classifications"]
    assert [(r["columnName"], r["method"], r["reason"]) for r in rows] == [
        ("result_text", "manual", "added by system:cli: free-text results")]


def test_the_cli_scan_counts_suggestions_and_list_labels_phi_and_suggestions(database_url, monkeypatch, tmp_path, org):
    import sqlite3

    from typer.testing import CliRunner

    from atlas_compliance.cli.main import app
    from atlas_compliance.config import get_settings

    source = tmp_path / "clinic.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE visits (id INTEGER, ssn TEXT, diagnosis_code TEXT)")
        db.executemany("INSERT INTO visits VALUES (?, '--', ?)", [(i, f"E11.{i % 10}") for i in range(12)])
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        scan = runner.invoke(app, ["pii", "scan", f"sqlite:///{source}", "--org", org.slug])
        assert scan.exit_code == 0, scan.output
        assert "2 PII detections (2 new, 0 updated, 0 unchanged, 0 kept as reviewed; 1 of them only suggestions to " \
               "review: a column name the sampled values contradict)" in " ".join(scan.output.split())
        listed = runner.invoke(app, ["pii", "list", "--org", org.slug], env={"COLUMNS": "200"})
        assert listed.exit_code == 0, listed.output
        rows = {line.split("│")[2].strip(): line for line in listed.output.splitlines() if line.count("│") > 5}
        assert "diagnosis_code (PHI)" in rows["diagnosis_code"] and "pending" in rows["diagnosis_code"]
        assert "suggestion" in rows["ssn"]
    finally:
        get_settings.cache_clear()
