"""Access reviews through `atlas-compliance reviews`: open, list, show, decide, signoff, followup, export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from tests.reviews.conftest import REVIEWS


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


def test_a_review_from_open_to_export_on_the_command_line(cli, client, org, clinic, sql, tmp_path):
    owner, second, olga = clinic["owner"], clinic["second"], clinic["olga"]
    opened = cli("reviews", "open", "--org", org.slug, "--start", "2026-03-01", "--end", "2026-03-31",
                 "--title", "Q1 review")
    assert opened.exit_code == 0, opened.output
    assert "5 users, 3 accesses, due 2026-04-30" in opened.output
    rid = opened.output.split("access review ")[1].split(":")[0]
    shown = json.loads(cli("reviews", "show", rid, "--org", org.slug, "--format", "json").stdout)
    items = {i["userId"]: i["item"] for i in shown["items"] if i["kind"] == "user"}
    table = cli("reviews", "show", rid, "--org", org.slug)
    assert table.exit_code == 0 and "Q1 review" in table.output and "olga@" in table.output

    def decide(*args: str):
        return cli("reviews", "decide", rid, "--org", org.slug, *args)

    # No reviewer, a revoke without a note, a decision on one's own access: refused in one line each.
    for args, message in [(("--item", "1", "--decision", "keep"), "--reviewer"),
                          (("--item", str(items[olga.id]), "--decision", "revoke", "--reviewer", owner.email),
                           "note is required"),
                          (("--item", str(items[owner.id]), "--decision", "keep", "--reviewer", owner.email),
                           "your own access"),
                          (("--item", "1", "--decision", "keep", "--reviewer", olga.email), "not an admin or owner")]:
        result = decide(*args)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    assert sql.execute("SELECT count(*) AS n FROM review_decision WHERE campaign_id = %s", (rid,)).fetchone()["n"] == 0

    assert decide("--item", str(items[olga.id]), "--decision", "revoke", "--note", "left the team",
                  "--reviewer", owner.email).exit_code == 0
    others = [str(n) for u, n in items.items() if u not in (olga.id, owner.id)]
    assert decide(*[a for n in others for a in ("--item", n)], "--decision", "keep",
                  "--reviewer", owner.email).exit_code == 0
    incomplete = cli("reviews", "signoff", rid, "--org", org.slug, "--statement", "done", "--reviewer", owner.email)
    assert incomplete.exit_code == 1 and "no decision yet" in incomplete.output
    assert decide("--item", str(items[owner.id]), "--decision", "keep", "--reviewer", second.email).exit_code == 0
    signed = cli("reviews", "signoff", rid, "--org", org.slug, "--statement", "Q1 reviewed", "--reviewer", owner.email)
    assert signed.exit_code == 0 and "signed off" in signed.output, signed.output
    late = decide("--item", "1", "--decision", "keep", "--reviewer", second.email)
    assert late.exit_code == 1 and "read-only" in late.output
    assert cli("reviews", "followup", rid, "--org", org.slug, "--item", str(items[olga.id]), "--note", "OPS-1",
               "--reviewer", second.email).exit_code == 0

    target = tmp_path / "review.csv"
    assert cli("reviews", "export", rid, "--org", org.slug, "--format", "csv", "-o", str(target)).exit_code == 0
    lines = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(lines) == 8
    olga_line = next(r for r in lines if r["user_id"] == olga.id and r["kind"] == "user")
    assert (olga_line["decision"], olga_line["followup_note"], olga_line["signed_off_by"]) == \
        ("revoke", "OPS-1", owner.email)
    evidence = json.loads(cli("reviews", "export", rid, "--org", org.slug).stdout)
    assert evidence["campaign"]["signOff"]["statement"] == "Q1 reviewed"
    # The API reads the same campaign.
    assert client.get(f"{REVIEWS}/{rid}", headers=owner.headers).json()["campaign"]["status"] == "signed_off"
    listing = cli("reviews", "list", "--org", org.slug)
    assert listing.exit_code == 0 and rid in listing.output


def test_reviews_list_overdue_exits_1_for_cron(cli, org, clinic):
    assert cli("reviews", "list", "--org", org.slug, "--overdue").exit_code == 0
    assert cli("reviews", "open", "--org", org.slug, "--start", "2025-01-01", "--end", "2025-03-31").exit_code == 0
    overdue = cli("reviews", "list", "--org", org.slug, "--overdue")
    assert overdue.exit_code == 1 and "1 access review(s) overdue" in overdue.output


@pytest.mark.parametrize(("args", "message"), [
    (("reviews", "open", "--org", "no-such-org", "--start", "2026-01-01", "--end", "2026-01-31"), "no organization"),
    (("reviews", "show", "nope", "--org", "{org}"), "no access review"),
    (("reviews", "export", "nope", "--org", "{org}", "--format", "xml"), "invalid --format"),
])
def test_cli_errors_are_one_line(cli, org, args, message):
    result = cli(*(a.replace("{org}", org.slug) for a in args))
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output


def test_verify_detects_a_decision_or_statement_changed_after_sign_off(cli, client, org, clinic, sql):
    owner, second = clinic["owner"], clinic["second"]
    assert cli("keys", "show").exit_code == 0  # the installation key exists from here on
    doc = client.post(REVIEWS, json={"startDate": "2026-03-01", "endDate": "2026-03-31"}, headers=owner.headers).json()
    rid = doc["campaign"]["id"]
    users = {i["userId"]: i["item"] for i in doc["items"] if i["kind"] == "user"}
    for who, items in ((owner, [n for u, n in users.items() if u != owner.id]), (second, [users[owner.id]])):
        assert client.post(f"{REVIEWS}/{rid}/decisions", json={"items": items, "decision": "keep"},
                           headers=who.headers).status_code == 200
    signed = cli("reviews", "signoff", rid, "--org", org.slug, "--statement", "fine", "--reviewer", owner.email)
    assert signed.exit_code == 0 and "signed with key" in signed.output, signed.output
    ok = cli("reviews", "verify", rid, "--org", org.slug)
    assert ok.exit_code == 0 and "digest: matches" in ok.output and "signature: valid" in ok.output, ok.output

    # A superuser past the triggers rewrites a decision: the digest no longer matches.
    sql.execute("ALTER TABLE review_decision DISABLE TRIGGER review_decision_guard")
    try:
        sql.execute("UPDATE review_decision SET decision = 'revoke', note = 'x' WHERE campaign_id = %s "
                    "AND id = (SELECT min(id) FROM review_decision WHERE campaign_id = %s)", (rid, rid))
    finally:
        sql.execute("ALTER TABLE review_decision ENABLE TRIGGER review_decision_guard")
    changed = cli("reviews", "verify", rid, "--org", org.slug)
    assert changed.exit_code == 1 and "digest: DIFFERS" in changed.output
    # … or the statement: the signature no longer verifies.
    sql.execute("ALTER TABLE review_campaign DISABLE TRIGGER review_campaign_signoff")
    try:
        sql.execute("UPDATE review_campaign SET statement = 'rewritten' WHERE id = %s", (rid,))
    finally:
        sql.execute("ALTER TABLE review_campaign ENABLE TRIGGER review_campaign_signoff")
    assert "signature: INVALID" in cli("reviews", "verify", rid, "--org", org.slug).output
