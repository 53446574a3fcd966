"""The Acme Health demo holds a few unusual reads on its last whole day that the flags find (issue 21)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atlas_compliance.demo import seed
from atlas_compliance.flags import service


def test_the_demo_anomalies_are_flagged(client):
    db = client.app.state.db

    async def build():
        info = await seed.seed_demo(db, target=1500, days=20)  # the same demo as test_migrations_and_demo
        await seed.seed_classifications(db, info.org_id)
        return info

    info = client.portal.call(build)
    async def created_day():
        async with db.transaction() as conn:
            cur = await conn.execute("SELECT min(\"timestamp\") AS t FROM audit_log WHERE org_id = %s AND event_id "
                                     "LIKE 'demo-anomaly-%%'", (info.org_id,))
            return (await cur.fetchone())["t"]

    first_anomaly = client.portal.call(created_day)
    assert first_anomaly is not None and first_anomaly > datetime.now(UTC) - timedelta(days=30)
    day = first_anomaly.date()
    client.portal.call(service.evaluate_org, db, info.org_id, day, day)

    async def flags():
        async with db.transaction() as conn:
            return await service.list_flags(conn, info.org_id, first=day, last=day)

    found = {(f["rule"], f["userId"]) for f in client.portal.call(flags)}
    assert {("new_actor", "svc:reporting-export"), ("off_hours", "svc:reporting-export")} <= found
    person = {u for rule, u in found if rule == "bulk_export"}
    assert len(person) == 1 and ("volume", person.pop()) in found
