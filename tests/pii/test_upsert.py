"""The sticky upsert of detections: one set-based statement, every sticky rule kept."""

from __future__ import annotations

from typing import Any

from atlas_compliance.pii import service
from tests.conftest import run_service


def record(column: str, category: str = "email", *, table: str = "people", confidence: str = "medium",
           reason: str | None = "r", evidence: dict | None = None, group: str | None = None,
           strategy: str | None = None, source: str | None = "scan-1") -> dict[str, Any]:
    return {"table": table, "column": column, "group": group, "category": category, "confidence": confidence,
            "strategy": strategy or service.DEFAULT_MASKING[category], "method": "regex", "reason": reason,
            "evidence": evidence, "source_id": source}


class CountingConnection:
    """A real connection that counts the statements sent through it."""

    def __init__(self, conn):
        self._conn = conn
        self.statements = 0

    async def execute(self, *args, **kwargs):
        self.statements += 1
        return await self._conn.execute(*args, **kwargs)


def upsert(client, org_id: str, records: list[dict]) -> tuple[dict[str, int], int]:
    async def call(conn):
        counting = CountingConnection(conn)
        counts = await service.upsert_detections(counting, org_id, records)
        return counts.to_dict(), counting.statements

    return run_service(client, call)


def rows(sql, org_id: str) -> dict[str, dict]:
    found = sql.execute("SELECT * FROM pii_column_classifications WHERE org_id = %s", (org_id,)).fetchall()
    return {r["column_name"]: r for r in found}


def test_thousands_of_detections_take_one_statement(client, org, sql):
    batch = [record(f"c{i}", evidence={"sampled": 10, "matched": i % 10, "examples": []}) for i in range(3000)]
    assert upsert(client, org.id, batch) == ({"created": 3000, "updated": 0, "unchanged": 0, "keptReviewed": 0}, 1)
    again = batch[:1000] + [record(f"c{i}", "phone") for i in range(1000, 3000)]
    assert upsert(client, org.id, again) == ({"created": 0, "updated": 2000, "unchanged": 1000, "keptReviewed": 0}, 1)
    stored = rows(sql, org.id)
    assert len(stored) == 3000 and stored["c5"]["evidence"] == {"sampled": 10, "matched": 5, "examples": []}
    assert stored["c2999"]["category"] == "phone"


def test_reviewed_and_dismissed_rows_are_never_overwritten_or_undismissed(client, org, sql):
    upsert(client, org.id, [record("reviewed"), record("dismissed"), record("pending")])
    sql.execute("UPDATE pii_column_classifications SET reviewed = true, masking_strategy = 'hash' "
                "WHERE org_id = %s AND column_name = 'reviewed'", (org.id,))
    sql.execute("UPDATE pii_column_classifications SET dismissed = true WHERE org_id = %s AND column_name = 'dismissed'",
                (org.id,))
    before = rows(sql, org.id)
    later = [record(c, "ssn", confidence="high", reason="new", source="scan-2") for c in ("reviewed", "dismissed",
                                                                                           "pending")]
    assert upsert(client, org.id, later)[0] == {"created": 0, "updated": 1, "unchanged": 0, "keptReviewed": 2}
    after = rows(sql, org.id)
    for column in ("reviewed", "dismissed"):
        kept = {k: v for k, v in after[column].items() if k != "last_seen_at"}
        assert kept == {k: v for k, v in before[column].items() if k != "last_seen_at"}, column
        assert after[column]["last_seen_at"] > before[column]["last_seen_at"]
    assert after["dismissed"]["dismissed"] is True and after["reviewed"]["masking_strategy"] == "hash"
    refreshed = after["pending"]
    assert (refreshed["category"], refreshed["confidence"], refreshed["reason"], refreshed["source_id"]) == (
        "ssn", "high", "new", "scan-2")
    assert refreshed["reviewed"] is False and refreshed["updated_at"] > before["pending"]["updated_at"]


def test_an_unchanged_detection_only_touches_last_seen(client, org, sql):
    upsert(client, org.id, [record("email", evidence={"sampled": 3, "matched": 3, "examples": ["a***@x.io"]})])
    before = rows(sql, org.id)["email"]
    again = record("email", evidence={"examples": ["a***@x.io"], "matched": 3, "sampled": 3}, source=None)
    assert upsert(client, org.id, [again])[0] == {"created": 0, "updated": 0, "unchanged": 1, "keptReviewed": 0}
    after = rows(sql, org.id)["email"]
    assert after["updated_at"] == before["updated_at"] and after["source_id"] == "scan-1"
    assert after["last_seen_at"] > before["last_seen_at"]


def test_masking_follows_a_new_category_only_while_it_is_the_old_default(client, org, sql):
    upsert(client, org.id, [record("a", "email"), record("b", "email")])
    sql.execute("UPDATE pii_column_classifications SET masking_strategy = 'redact' WHERE org_id = %s "
                "AND column_name = 'b'", (org.id,))  # an admin's choice, not yet reviewed
    upsert(client, org.id, [record("a", "ssn"), record("b", "ssn")])
    stored = rows(sql, org.id)
    assert stored["a"]["masking_strategy"] == service.DEFAULT_MASKING["ssn"] == "full"
    assert stored["b"]["masking_strategy"] == "redact"


def test_a_column_named_twice_in_a_batch_counts_once_and_the_last_wins(client, org, sql):
    batch = [record("email", "email"), record("Other", "name", table="t2"), record("email", "phone")]
    assert upsert(client, org.id, batch)[0] == {"created": 2, "updated": 0, "unchanged": 0, "keptReviewed": 0}
    assert rows(sql, org.id)["email"]["category"] == "phone"
    assert upsert(client, org.id, [])[0] == {"created": 0, "updated": 0, "unchanged": 0, "keptReviewed": 0}


def test_groups_are_separate_columns_and_nothing_is_deleted(client, org, sql):
    upsert(client, org.id, [record("email"), record("email", group="g1"), record("phone", "phone")])
    assert upsert(client, org.id, [record("email", group="g1")])[0]["unchanged"] == 1
    count = sql.execute("SELECT count(*) AS n FROM pii_column_classifications WHERE org_id = %s", (org.id,)).fetchone()
    assert count["n"] == 3


def test_an_upload_of_ten_thousand_detections_is_stored_whole(client, org):
    admin = org.add_user("admin")
    detections = [{"tableName": f"t{i // 100}", "columnName": f"c{i}", "category": "email"} for i in range(10_000)]
    resp = client.post("/api/v1/admin/compliance/classifications", json={"detections": detections},
                       headers=admin.headers)
    assert resp.json() == {"created": 10_000, "updated": 0, "unchanged": 0, "keptReviewed": 0}
    listing = client.get("/api/v1/admin/compliance/classifications", headers=admin.headers).json()
    assert listing["summary"]["total"] == 10_000 and listing["summary"]["tablesAffected"] == 100
