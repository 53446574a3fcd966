"""The CSV formula guard, specified by tests/reports/fixtures/csv_formula_cases.tsv, and the CSV
exports of both reports applying it to every cell."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from atlas_compliance.reports.writers import guard_formula

FIXTURE = Path(__file__).parent / "fixtures" / "csv_formula_cases.tsv"
DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
WINDOW = {"startDate": "2026-02-01", "endDate": "2026-02-28"}


def load_cases() -> list[tuple[str, str, str]]:
    cases = []
    for number, line in enumerate(FIXTURE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        expected, value, note = line.split("\t")
        assert expected in ("guard", "keep"), f"line {number}: {expected!r}"
        cases.append((expected, json.loads(value), f"line {number}: {note}"))
    return cases


CASES = load_cases()


@pytest.mark.parametrize(("expected", "value", "note"), CASES, ids=[c[2] for c in CASES])
def test_formula_guard_case(expected, value, note):
    assert guard_formula(value) == ("'" + value if expected == "guard" else value), note


def test_the_fixture_covers_what_the_issue_named():
    guarded = {value[:1] for expected, value, _ in CASES if expected == "guard"}
    assert set("\n\v\f\u00a0\u3000\uff1d\uff0b\uff0d\uff20=+-@\t\r") <= guarded


def csv_rows(resp) -> list[dict[str, str]]:
    assert resp.status_code == 200, resp.text
    return list(csv.DictReader(io.StringIO(resp.text, newline="")))


def test_both_csv_exports_guard_cells_hidden_behind_unicode_spaces(client, org):
    """User ids and table names that only look harmless to the old guard come back guarded in CSV and
    exactly as stored in JSON."""
    admin = org.add_user("admin")
    hidden = ["\u00a0=HYPERLINK(\"http://evil.example\")", "\u3000+1", "\n=1+1", "\uff1dSUM(1)", "\uff20SUM(1)",
              "\u200b-1", "\ufeff@SUM(1)"]
    events = [{"sql": "SELECT 1", "userId": value, "timestamp": f"2026-02-{i + 2:02d}T09:00:00Z",
               "columnsByTable": {f"t{i}": [value]}} for i, value in enumerate(hidden)]
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=ingest).json()["inserted"] == len(hidden)

    js = client.get(DA, params=WINDOW, headers=admin.headers).json()
    assert {r["userId"] for r in js["rows"]} == set(hidden)
    rows = csv_rows(client.get(DA, params={**WINDOW, "format": "csv"}, headers=admin.headers))
    assert sorted(r["user_id"] for r in rows) == sorted("'" + v for v in hidden)
    columns = [c for r in js["rows"] for c in r["uniqueColumns"]]
    assert len(columns) == len(hidden)  # stored as sent (lowercased like every column name)
    assert sorted(r["unique_columns"] for r in rows) == sorted("'" + c for c in columns)
    ua = csv_rows(client.get(UA, params={**WINDOW, "format": "csv"}, headers=admin.headers))
    assert sorted(r["user_id"] for r in ua if r["total_queries"] != "0") == sorted("'" + v for v in hidden)
