"""Signed evidence bundles (issue 19 §4): the API and CLI export, what the zip holds, and `evidence verify`
catching each way a bundle can be tampered with."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atlas_compliance import __version__
from atlas_compliance.audit import signing
from atlas_compliance.evidence.verify import verify_bundle
from tests.cli.test_cli import cli  # noqa: F401  (the CLI runner fixture)
from tests.conftest import assert_error

EVIDENCE = "/api/v1/admin/compliance/evidence"
REPORTS = "/api/v1/admin/compliance/reports"
PARAMS = {"startDate": "2026-03-01", "endDate": "2026-03-31", "tz": "Europe/Paris"}
FILES = ["data-access.csv", "data-access.json", "user-activity.csv", "user-activity.json", "failed-access.csv",
         "privileged-actions.csv", "unusual-access-flags.csv", "access-reviews.json", "pii-classifications.json", "audit-verify.json"]


def ingest(client, org, events: list[dict]) -> None:
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    resp = client.post("/api/v1/audit/events", json=events, headers=key)
    assert resp.status_code == 200 and not resp.json()["rejected"], resp.text


def sample_events() -> list[dict]:
    """Rows that test the CSV writer too: a formula-looking user id, a quote, a comma, a line break in a label,
    an event outside the window (2026-02-28 23:30 UTC is 2026-03-01 00:30 in Paris: inside)."""
    events = [{"eventId": f"e{i}", "sql": f"select ssn, email from patients /* {i} */", "userId": f"u{i % 3}",
               "timestamp": f"2026-03-{i % 28 + 1:02d}T10:00:00Z", "columnsByTable": {"patients": ["ssn", "email"]}}
              for i in range(12)]
    events += [
        {"eventId": "formula", "sql": "select 1 from billing", "userId": "=HYPERLINK(\"x\")",
         "timestamp": "2026-03-05T08:00:00Z", "columnsByTable": {"billing": ["amount", "note, \"quoted\""]}},
        {"eventId": "edge", "sql": "select 1 from visits", "userId": "u1", "timestamp": "2026-02-28T23:30:00Z",
         "columnsByTable": {"visits": ["id"]}},
        {"eventId": "outside", "sql": "select 1 from visits", "userId": "u9", "timestamp": "2026-04-02T10:00:00Z",
         "columnsByTable": {"visits": ["id"]}},
    ]
    return events


@pytest.fixture()
def stocked(client, org, admin):
    ingest(client, org, sample_events())
    upload = client.post("/api/v1/admin/compliance/classifications", headers=admin.headers, json={
        "detections": [{"tableName": "patients", "columnName": "ssn", "category": "ssn"}]})
    assert upload.status_code == 200, upload.text
    return org, admin


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rezip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def key_of(settings) -> signing.VerifyingKey:
    return signing.load_signing_key(settings, create=False).verifying()


def evidence_actions(sql, org_id: str) -> list[dict]:
    return sql.execute("SELECT actor_email, target_id, status, metadata FROM admin_action_log WHERE org_id = %s "
                       "AND action_type = 'compliance.evidence_export' ORDER BY \"timestamp\"", (org_id,)).fetchall()


# --- the API -------------------------------------------------------------------------------------------

def test_bundle_holds_every_report_row_as_the_report_exports_do(client, stocked, settings, sql, tmp_path):
    org, admin = stocked
    resp = client.get(EVIDENCE, params=PARAMS, headers=admin.headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/zip"
    name = re.search(r'filename="([^"]+)"', resp.headers["content-disposition"]).group(1)
    assert re.fullmatch(rf"evidence-{org.slug}-2026-03-01_2026-03-31-Europe\.Paris-\d{{8}}T\d{{6}}Z-[0-9a-f]{{8}}\.zip", name), name
    assert name.removesuffix(".zip").endswith(hashlib.sha256(members(resp.content)["manifest.json"]).hexdigest()[:8])
    files = members(resp.content)
    assert sorted(files) == sorted([*FILES, "chain-head.json", "manifest.json", "manifest.sig"])

    for report in ("data-access", "user-activity"):
        as_csv = client.get(f"{REPORTS}/{report}", params={**PARAMS, "format": "csv"}, headers=admin.headers)
        assert files[f"{report}.csv"] == as_csv.content  # the same bytes as the report's CSV export
        as_json = client.get(f"{REPORTS}/{report}", params={**PARAMS, "format": "json", "download": "1"},
                             headers=admin.headers).json()
        bundled = json.loads(files[f"{report}.json"])
        assert bundled["rows"] == as_json["rows"] and bundled["summary"] == as_json["summary"]
        assert bundled["totalRows"] == len(bundled["rows"]) and not bundled["truncated"]

    manifest = json.loads(files["manifest.json"])
    assert manifest["product"] == {"name": "atlas-compliance", "version": __version__}
    assert manifest["org"] == {"id": org.id, "slug": org.slug}
    assert manifest["tz"] == "Europe/Paris" and manifest["window"]["start"] == "2026-02-28T23:00:00Z"
    assert manifest["window"]["end"] == "2026-03-31T22:00:00Z" and manifest["window"]["startDate"] == "2026-03-01"
    assert manifest["filters"] == {"userId": None, "role": None, "table": None}
    assert manifest["generatedBy"]["email"] == admin.email and manifest["generatedBy"]["userId"] == admin.id
    assert manifest["signature"]["keyId"] == key_of(settings).key_id
    listed = {f["name"]: f for f in manifest["files"]}
    assert sorted(listed) == sorted([*FILES, "chain-head.json"])
    da_rows = list(csv.reader(io.StringIO(files["data-access.csv"].decode())))[1:]
    assert listed["data-access.csv"]["rows"] == len(da_rows) == 5  # patients x u0..u2, billing, visits (edge)
    assert any(r[1] == "'=HYPERLINK(\"x\")" for r in da_rows)  # formula-guarded, as in the export
    assert listed["user-activity.json"]["rows"] == len(json.loads(files["user-activity.json"])["rows"])
    assert listed["pii-classifications.json"]["rows"] == 1
    assert "every row of the Data Access report for the window" in listed["data-access.csv"]["population"]
    assert listed["audit-verify.json"]["rows"] is None and json.loads(files["audit-verify.json"])["ok"] is True
    head = json.loads(files["chain-head.json"])["statement"]
    assert head["chains"]["audit_log"]["lastSeq"] == 15 and head["org"]["id"] == org.id
    assert key_of(settings).verify(base64.b64decode(files["manifest.sig"]), files["manifest.json"])

    path = tmp_path / name
    path.write_bytes(resp.content)
    assert verify_bundle(path, key_of(settings)).ok

    [action] = evidence_actions(sql, org.id)
    assert action["actor_email"] == admin.email and action["target_id"] == name and action["status"] == "success"
    assert action["metadata"]["filters"] == manifest["filters"] and len(action["metadata"]["files"]) == 11


def test_filters_reach_the_reports_and_the_file_name(client, stocked):
    org, admin = stocked
    resp = client.get(EVIDENCE, params={**PARAMS, "table": "patients", "userId": "u1", "role": "member"},
                      headers=admin.headers)
    assert resp.status_code == 200, resp.text
    name = re.search(r'filename="([^"]+)"', resp.headers["content-disposition"]).group(1)
    assert "-user-h" in name and "-role-member-" in name and "-table-patients-" in name
    manifest = json.loads(members(resp.content)["manifest.json"])
    assert manifest["filters"] == {"userId": "u1", "role": "member", "table": "patients"}
    # u1 is no member of the org: with role=member nothing is left, and the counts say so.
    assert {f["name"]: f["rows"] for f in manifest["files"]}["data-access.csv"] == 0
    assert "for the window and filters" in manifest["files"][0]["population"]
    plain = client.get(EVIDENCE, params=PARAMS, headers=admin.headers)
    assert re.search(r'filename="([^"]+)"', plain.headers["content-disposition"]).group(1) != name


@pytest.mark.parametrize(("params", "code"), [
    ({"startDate": "2026-13-01", "endDate": "2026-03-31"}, "invalid_date"),
    ({"startDate": "yesterday", "endDate": "2026-03-31"}, "invalid_date"),
    ({"startDate": "2026-04-01", "endDate": "2026-03-01"}, "invalid_range"),
    ({"startDate": "2026-01-01", "endDate": "9999-06-01"}, "invalid_date"),  # past the reports' last date
    ({**PARAMS, "tz": "Mars/Olympus"}, "invalid_tz"),
    ({**PARAMS, "tz": "localtime"}, "invalid_tz"),
    ({**PARAMS, "role": "superuser"}, "invalid_role"),
])
def test_bad_input_is_refused_and_records_nothing(client, stocked, sql, params, code):
    org, admin = stocked
    assert_error(client.get(EVIDENCE, params=params, headers=admin.headers), 400, code)
    assert evidence_actions(sql, org.id) == []


def test_missing_dates_answer_422(client, stocked):
    assert_error(client.get(EVIDENCE, params={"startDate": "2026-03-01"}, headers=stocked[1].headers), 422)


@pytest.mark.parametrize("role", ["member", None])
def test_only_admins_of_the_org_get_a_bundle(client, stocked, sql, role):
    org, _ = stocked
    headers = org.add_user(role).headers if role else {}
    assert_error(client.get(EVIDENCE, params=PARAMS, headers=headers), 403 if role else 401)
    ingest_key = {"Authorization": f"Bearer {org.ingest_key('other')}"}
    assert_error(client.get(EVIDENCE, params=PARAMS, headers=ingest_key), 403)
    assert evidence_actions(sql, org.id) == []


def test_another_orgs_admin_gets_only_their_own_org(client, stocked, make_org):
    org, _ = stocked
    other_org = make_org()
    other = other_org.add_user("owner")
    files = members(client.get(EVIDENCE, params=PARAMS, headers=other.headers).content)
    manifest = json.loads(files["manifest.json"])
    assert manifest["org"]["id"] == other_org.id and org.id.encode() not in b"".join(files.values())
    counts = {f["name"]: f["rows"] for f in manifest["files"]}
    assert counts["data-access.csv"] == counts["pii-classifications.json"] == 0
    assert [r["userEmail"] for r in json.loads(files["user-activity.json"])["rows"]] == [other.email]  # idle owner


# --- the CLI: export, verify, and each tamper -----------------------------------------------------------

@pytest.fixture()
def exported(cli, stocked, tmp_path):  # noqa: F811
    org, _ = stocked
    path = tmp_path / "bundle.zip"
    out = cli("evidence", "export", "--org", org.slug, "--from", "2026-03-01", "--to", "2026-03-31",
              "--tz", "europe/paris", "--out", str(path)).stdout
    assert str(path) in out and "data-access.csv:" in out
    return path


def verify(cli, path: Path, *extra: str, code: int = 1) -> str:  # noqa: F811
    result = cli("evidence", "verify", str(path), *extra, ok=False)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())  # error lines are wrapped to the terminal's width


def test_cli_export_verifies_and_is_recorded(cli, exported, stocked, sql, tmp_path):  # noqa: F811
    out = verify(cli, exported, code=0)
    assert ": OK: 11 files and the manifest" in out and stocked[0].slug in out
    manifest = json.loads(members(exported.read_bytes())["manifest.json"])
    assert manifest["generatedBy"]["userId"] == "system:cli" and manifest["tz"] == "Europe/Paris"
    [action] = evidence_actions(sql, stocked[0].id)
    assert action["actor_email"] == "system:cli" and action["status"] == "success"
    # Offline with the public key kept apart: no database needed (a bad DATABASE_URL changes nothing).
    pem = tmp_path / "pub.pem"
    pem.write_text(cli("keys", "show", "--pem").stdout)
    assert ": OK:" in verify(cli, exported, "--public-key", str(pem), code=0)


def test_cli_default_name_carries_org_window_and_tz(cli, stocked, tmp_path, monkeypatch):  # noqa: F811
    org, _ = stocked
    monkeypatch.chdir(tmp_path)
    out = cli("evidence", "export", "--org", org.slug, "--from", "2026-03-01", "--to", "2026-03-31").stdout
    path = Path(out.splitlines()[0])
    assert path.parent == tmp_path and re.fullmatch(
        rf"evidence-{org.slug}-2026-03-01_2026-03-31-UTC-\d{{8}}T\d{{6}}Z-[0-9a-f]{{8}}\.zip", path.name)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left
    verify(cli, path, code=0)


def tampered(exported: Path, change) -> Path:
    files = members(exported.read_bytes())
    change(files)
    return rezip(exported.with_name("tampered.zip"), files)


def edit_csv_row(files):
    files["data-access.csv"] = files["data-access.csv"].replace(b",u1,", b",u7,", 1)


def edit_manifest(files):
    files["manifest.json"] = files["manifest.json"].replace(b'"rows": 5', b'"rows": 4', 1)


def resign_with_another_key(files):
    manifest = json.loads(files["manifest.json"])
    manifest["filters"]["role"] = "admin"
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    files["manifest.sig"] = base64.b64encode(Ed25519PrivateKey.generate().sign(files["manifest.json"]))


def resign_as_another_key(files):
    """The forger also names their own key in the manifest: the verifier still uses only its own key."""
    other = Ed25519PrivateKey.generate()
    manifest = json.loads(files["manifest.json"])
    manifest["signature"].update(keyId=signing.key_id_of(other.public_key()),
                                 publicKey=signing.public_base64(other.public_key()))
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    files["manifest.sig"] = base64.b64encode(other.sign(files["manifest.json"]))


@pytest.mark.parametrize(("change", "named", "why"), [
    (edit_csv_row, "data-access.csv", "SHA-256"),
    (lambda f: f.pop("user-activity.json"), "user-activity.json", "missing"),
    (lambda f: f.update({"notes.txt": b"added later"}), "notes.txt", "not in the manifest"),
    (edit_manifest, "manifest.json", "signature"),
    (resign_with_another_key, "manifest.json", "signature"),
    (resign_as_another_key, "manifest.json", "signed by key"),
    (lambda f: f.pop("manifest.sig"), "manifest.sig", "missing"),
], ids=["edited-csv-row", "removed-file", "added-file", "edited-manifest", "resigned-other-key",
                                    "resigned-naming-other-key", "no-signature"])
def test_verify_names_the_tampered_file(cli, exported, change, named, why):  # noqa: F811
    out = verify(cli, tampered(exported, change))
    assert f"FAILED: {named}:" in out and why in out, out


def test_verify_checks_row_counts_even_when_hashes_match(cli, exported, tmp_path):  # noqa: F811
    """A manifest whose hashes are right but whose count is not (a faulty producer, signed by the real key)."""
    key = signing.load_signing_key(_cli_settings(tmp_path))
    files = members(exported.read_bytes())
    manifest = json.loads(files["manifest.json"])
    item = next(f for f in manifest["files"] if f["name"] == "user-activity.csv")
    item["rows"] += 1
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    files["manifest.sig"] = base64.b64encode(key.sign(files["manifest.json"]))
    out = verify(cli, rezip(tmp_path / "count.zip", files))
    assert "FAILED: user-activity.csv:" in out and f"holds {item['rows'] - 1} rows" in out, out


def test_verify_with_another_public_key_fails_on_the_manifest(cli, exported, tmp_path):  # noqa: F811
    pem = tmp_path / "other.pem"
    pem.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out = verify(cli, exported, "--public-key", str(pem))
    assert "FAILED: manifest.json: signed by key" in out, out


def test_verify_refuses_what_is_not_a_bundle(cli, tmp_path):  # noqa: F811
    cli("keys", "show")
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    out = verify(cli, junk)
    assert "is not a zip file" in out and "Traceback" not in out
    assert "cannot read" in verify(cli, tmp_path / "absent.zip")
    empty = rezip(tmp_path / "empty.zip", {"readme.txt": b"hi"})
    assert "FAILED: manifest.json: missing" in verify(cli, empty)


def test_the_latest_checkpoint_is_bundled_byte_for_byte(cli, stocked, tmp_path):  # noqa: F811
    org, _ = stocked
    cp_dir = tmp_path / "data" / "checkpoints"
    written = [Path(cli("audit", "checkpoint", "--org", org.slug, "--out", str(cp_dir)).stdout.split()[0])
               for _ in range(2)]
    path = tmp_path / "with-cp.zip"
    cli("evidence", "export", "--org", org.slug, "--from", "2026-03-01", "--to", "2026-03-31", "--out", str(path))
    files = members(path.read_bytes())
    assert "chain-head.json" not in files
    assert files["checkpoint.json"] == max(written, key=lambda p: p.name).read_bytes()
    manifest = json.loads(files["manifest.json"])
    assert max(written, key=lambda p: p.name).name in manifest["files"][-1]["population"]
    verify(cli, path, code=0)


def test_cli_bad_input_is_one_line(cli, stocked):  # noqa: F811
    org, _ = stocked
    out = cli("evidence", "export", "--org", org.slug, "--from", "2026-03-40", "--to", "2026-03-31", ok=False)
    assert out.exit_code == 1 and "invalid --from" in out.output
    out = cli("evidence", "export", "--org", "no-such-org", "--from", "2026-03-01", "--to", "2026-03-31", ok=False)
    assert out.exit_code == 1 and "Traceback" not in out.output


def _cli_settings(tmp_path):
    from atlas_compliance.config import Settings
    return Settings(data_dir=tmp_path / "data")


def test_a_failed_export_is_recorded_as_a_failure(client, stocked, settings, sql, monkeypatch):
    """A file that cannot be produced (here: a producer that raises) ends the export, recorded with status
    failure and no file list."""
    from atlas_compliance.audit.admin_actions import Actor
    from atlas_compliance.evidence import bundle
    from atlas_compliance.reports.window import parse_filters, parse_window

    org, admin = stocked

    async def broken(db, request, out):
        out.write(b"partial")
        raise RuntimeError("disk full")

    real = bundle.entries
    monkeypatch.setattr(bundle, "entries", lambda *a: [*real(*a)[:1], bundle.Entry("x.csv", "-", broken)])
    req = bundle.BundleRequest(org_id=org.id, org_slug=org.slug, window=parse_window("2026-03-01", "2026-03-31"),
                               filters=parse_filters(None, None, None), start_input="2026-03-01",
                               end_input="2026-03-31", actor=Actor(admin.id, admin.email, "req-1"))
    with pytest.raises(RuntimeError, match="disk full"):
        client.portal.call(bundle.export, client.app.state.db, settings, req,
                           signing.load_signing_key(settings), io.BytesIO())
    [action] = evidence_actions(sql, org.id)
    assert action["status"] == "failure" and action["actor_email"] == admin.email
    assert "files" not in action["metadata"] and action["metadata"]["startDate"] == "2026-03-01"


def test_bundle_holds_the_failed_access_and_privileged_actions_views(client, stocked):
    """Issue 19 §4: the bundle carries the §3 views of its window, byte for byte as their CSV exports."""
    org, admin = stocked
    ingest(client, org, [{"eventId": "denied", "sql": "select ssn from patients", "userId": "u1", "success": False,
                          "error": "ERROR: permission denied for table patients (SQLSTATE 42501)",
                          "timestamp": "2026-03-10T10:00:00Z", "tablesAccessed": ["patients"]}])
    views = {"failed-access.csv": "/api/v1/admin/audit/failed-access",
             "privileged-actions.csv": "/api/v1/admin/audit/privileged-actions"}
    exports = {name: client.get(path, params={**PARAMS, "format": "csv"}, headers=admin.headers).content
               for name, path in views.items()}
    files = members(client.get(EVIDENCE, params=PARAMS, headers=admin.headers).content)
    assert files["failed-access.csv"] == exports["failed-access.csv"]
    assert b"permission_denied" in files["failed-access.csv"]
    # Admin actions are dated when they happen (now), outside March 2026: both hold the same (header) rows.
    assert files["privileged-actions.csv"] == exports["privileged-actions.csv"]
    verify = json.loads(files["audit-verify.json"])
    assert verify["ok"] is True and verify["rollups"]["ok"] is True and verify["rollups"]["since"] == "2026-02-28"
