"""The flag rules (issue 21) against hand-computed expectations: what fires, what must not, and that the
same input always gives the same flags."""

from __future__ import annotations

from decimal import Decimal

from atlas_compliance.flags import service
from tests.conftest import run_service
from tests.flags.conftest import DAY, evaluate, send


def stored(client, org_id: str) -> list[tuple]:
    flags = run_service(client, service.list_flags, org_id)
    return sorted((f["rule"], f["userId"], f["tableName"], f["day"], tuple(f["columns"]), f["observed"],
                   f["baseline"], f["threshold"], f["explanation"]) for f in flags)


def test_the_rules_fire_exactly_where_the_numbers_say(client, org, clinic):
    olga = clinic["olga"]
    result = evaluate(client, org.id)
    assert (result["flags"], result["inserted"]) == (3, 3)
    assert stored(client, org.id) == [
        ("first_access", olga.id, "patients", "2026-11-03", ("ssn",), 60, None, None,
         f"{olga.id} read patients.ssn on 2026-11-03 (in 60 queries), a PII column they had never read before; "
         "they are in the organization since 2026-10-06"),
        ("new_actor", "db:svc_etl", "patients", "2026-11-03", ("ssn",), 3, None, None,
         "db:svc_etl, never seen in this organization before 2026-11-03, read patients.ssn in 3 queries that day"),
        ("volume", olga.id, "patients", "2026-11-03", ("name", "ssn"), 60, 9, 50,
         f"{olga.id} read patients.name, patients.ssn (table patients) in 60 queries on 2026-11-03; their 28-day "
         "median for Tuesdays is 9; threshold 5× and at least 50"),
    ]
    # Not flagged: bob (90 <= 5 x 20), carl (50 is not above the floor of 50, a column read before), the invoices newcomer
    # (no PII), nobody on a baseline day.
    assert evaluate(client, org.id, DAY.replace(day=1), DAY.replace(day=2))["flags"] == 0


def test_k_times_the_median_decides_when_it_is_above_the_floor(client, org, clinic, sql):
    # bob's 90 queries on the day are not above 5 x 20 = 100; with k = 4 the threshold is 80 and they are.
    sql.execute("INSERT INTO access_flag_setting (org_id, volume_k) VALUES (%s, 4)", (org.id,))
    evaluate(client, org.id)
    bob = [f for f in stored(client, org.id) if f[1] == clinic["bob"].id]
    assert [(f[0], f[5], f[6], f[7]) for f in bob] == [("volume", 90, 20, 80)]
    assert "median for Tuesdays is 20; threshold 4× and at least 50" in bob[0][8]


def test_same_input_same_flags_again_after_re_ingesting_and_a_late_event_updates_one(client, org, clinic, sql):
    evaluate(client, org.id)
    first = stored(client, org.id)
    ids = sql.execute("SELECT id, updated_at FROM access_flag WHERE org_id = %s ORDER BY id", (org.id,)).fetchall()
    again = evaluate(client, org.id)
    assert (again["inserted"], again["updated"], again["unchanged"], again["withdrawn"]) == (0, 0, 3, 0)
    assert send(client, clinic["key"], clinic["batch"]) == 0  # the same events again: duplicates
    evaluate(client, org.id)
    assert stored(client, org.id) == first
    assert sql.execute("SELECT id, updated_at FROM access_flag WHERE org_id = %s ORDER BY id",
                       (org.id,)).fetchall() == ids
    # A late event of the day raises olga's count: the same flags, updated in place.
    late = [{"eventId": "late-1", "timestamp": "2026-11-03T16:59:30Z", "userId": clinic["olga"].id,
             "sql": "SELECT name FROM patients"}]
    assert send(client, clinic["key"], late) == 1
    result = evaluate(client, org.id)
    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 2, 1)
    volume = [f for f in stored(client, org.id) if f[0] == "volume"][0]
    assert volume[5] == 61 and "in 61 queries" in volume[8]


def test_re_attribution_moves_the_flags_to_the_user(client, org, clinic, sql):
    evaluate(client, org.id)
    bob = clinic["bob"]
    # db:svc_etl turns out to be bob: its reads are his, so it is no new actor; bob's ssn reads are no first
    # either (he read ssn before), and his 93 queries stay below 5 x 20.
    sql.execute("INSERT INTO db_role_mapping (org_id, db_identity, user_id) VALUES (%s, 'db:svc_etl', %s)",
                (org.id, bob.id))
    result = evaluate(client, org.id)
    assert result["withdrawn"] == 1
    assert [f[0] for f in stored(client, org.id)] == ["first_access", "volume"]


def test_thresholds_are_read_per_org(client, org, clinic, sql):
    sql.execute("INSERT INTO access_flag_setting (org_id, volume_floor) VALUES (%s, 70)", (org.id,))
    evaluate(client, org.id)
    assert "volume" not in [f[0] for f in stored(client, org.id)]  # 60 is not above 70
    assert Decimal(70) == sql.execute("SELECT volume_floor FROM access_flag_setting WHERE org_id = %s",
                                      (org.id,)).fetchone()["volume_floor"]


def test_bulk_export_fires_on_one_query_above_the_rows_threshold(client, org, clinic, sql):
    bob, olga = clinic["bob"], clinic["olga"]
    at = "2026-11-03T15:00:0{}Z"
    big = [{"eventId": "bulk-1", "timestamp": at.format(1), "userId": bob.id, "sql": "SELECT * FROM patients",
            "rowCount": 48_000},
           {"eventId": "bulk-2", "timestamp": at.format(2), "userId": bob.id, "sql": "SELECT name FROM patients",
            "rowCount": 12_000},
           # Not flagged: exactly the threshold, and a big read of a table without PII.
           {"eventId": "bulk-3", "timestamp": at.format(3), "userId": olga.id, "sql": "SELECT name FROM patients",
            "rowCount": 10_000},
           {"eventId": "bulk-4", "timestamp": at.format(4), "userId": bob.id, "sql": "SELECT id FROM invoices",
            "rowCount": 900_000}]
    assert send(client, clinic["key"], big) == 4
    evaluate(client, org.id)
    bulk = [f for f in stored(client, org.id) if f[0] == "bulk_export"]
    assert bulk == [("bulk_export", bob.id, "patients", "2026-11-03", ("name", "ssn"), 48_000, None, 10_000,
                     f"{bob.id} read 48,000 rows of patients.name, patients.ssn (table patients) in one query on "
                     "2026-11-03 (2 queries above the threshold that day); threshold 10,000 rows")]
    # A lower threshold per org catches olga's 10,000 rows too.
    sql.execute("INSERT INTO access_flag_setting (org_id, bulk_rows) VALUES (%s, 9999)", (org.id,))
    evaluate(client, org.id)
    assert sorted(f[1] for f in stored(client, org.id) if f[0] == "bulk_export") == sorted([bob.id, olga.id])


def test_off_hours_fires_for_a_user_who_normally_reads_pii_in_working_hours(client, org, clinic, sql):
    olga = clinic["olga"]
    # Every read of the fixture is between 08:00 and 16:59 UTC; olga reads once more at 23:30 UTC.
    late = [{"eventId": "night-1", "timestamp": "2026-11-03T23:30:00Z", "userId": olga.id,
             "sql": "SELECT name FROM patients"}]
    assert send(client, clinic["key"], late) == 1
    evaluate(client, org.id)
    off = [f for f in stored(client, org.id) if f[0] == "off_hours"]
    assert off == [("off_hours", olga.id, "patients", "2026-11-03", ("name", "ssn"), 61, 0, None,
                    f"{olga.id} read patients.name, patients.ssn (table patients) at 2026-11-03 23:30 (UTC), outside "
                    "working hours 07:00–19:00 (61 queries of the table on 2026-11-03); none of their PII reads in "
                    "the previous 28 days was outside working hours")]


def test_off_hours_uses_the_org_time_zone_and_spares_users_who_usually_read_then(client, org, clinic, sql):
    # In New York (UTC-5 on 2026-11-03, UTC-4 in October) 08:00-16:59 UTC is 03:00-12:59: every baseline read
    # was off hours, so only the newcomer, who has no baseline, is flagged.
    sql.execute("INSERT INTO access_flag_setting (org_id, tz) VALUES (%s, 'America/New_York')", (org.id,))
    evaluate(client, org.id)
    off = [f for f in stored(client, org.id) if f[0] == "off_hours"]
    assert [(f[1], f[5]) for f in off] == [("db:svc_etl", 3)]
    assert "at 2026-11-03 03:00 and 2026-11-03 05:02 (America/New_York), outside working hours 07:00–19:00" in off[0][8]


def test_the_evidence_bundle_of_the_window_carries_its_flags(client, org, clinic):
    """Issue 21: flags and their dispositions are in the evidence bundle of the window they fall in."""
    import csv
    import io
    import zipfile

    evaluate(client, org.id)
    found = stored(client, org.id)
    assert found
    owner = clinic["owner"]

    def bundled(start: str, end: str) -> list[dict]:
        resp = client.get("/api/v1/admin/compliance/evidence", params={"startDate": start, "endDate": end},
                          headers=owner.headers)
        assert resp.status_code == 200, resp.text
        with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
            return list(csv.DictReader(io.StringIO(zf.read("unusual-access-flags.csv").decode())))

    rows = bundled("2026-11-01", "2026-11-30")
    assert sorted((r["rule"], r["user_id"], r["day"]) for r in rows) == sorted((f[0], f[1], f[3]) for f in found)
    assert bundled("2026-10-01", "2026-10-31") == []  # the baseline month has no flag
