"""The load test of `bench/load.py` in a short form: a few seconds of concurrent report users, CSV exports and
continuous ingest against the app served by uvicorn in a child process, over loopback HTTP.

The full run (20 users, 60 s, on the demo data) is `make load`; its figures are in docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from bench.load import REPORT_MIX, run_load, sql_pool, stored_events
from bench.server import Server

from atlas_compliance.auth import service as auth
from tests.conftest import run_service


def test_mixed_load_answers_every_request_and_stores_every_event_once(client, settings, make_org):
    org = make_org("Load Org")
    members = [org.add_user(role, login=False) for role in ("owner", "admin", "member", "member")]
    admin = run_service(client, auth.create_personal_token, org_slug=org.slug, email=members[1].email)["token"]
    key = org.ingest_key()
    # A month of history for the reports to read.
    rng = random.Random(5)
    now = datetime.now(UTC)
    history = [{"eventId": f"hist-{i}", "sql": sql, "sourceType": dialect,
                "timestamp": (now - timedelta(minutes=rng.randint(1, 30 * 24 * 60))).isoformat(),
                "userId": rng.choice([m.id for m in members] + [None])}
               for i, (dialect, sql) in enumerate(sql_pool(rng, 2_000))]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/audit/events", json=history, headers=headers).json()["inserted"] == 2_000

    with Server(settings.database_url) as server:
        result = asyncio.run(run_load(server.base_url, admin, key, duration=6, users=6, ingest_rate=100,
                                      user_ids=[m.id for m in members], rss=server.rss, log=lambda _: None))

    assert result.errors == 0, result.error_samples
    for kind, *_ in REPORT_MIX:
        assert result.tallies[kind].latencies, f"no {kind} request completed"
    assert result.ingest_sent > 0 and result.ingest_inserted == result.ingest_sent
    rows, distinct = stored_events(settings.database_url, org.slug, result.run)
    assert rows == distinct == result.ingest_sent
    assert result.chain_ok
    assert result.peak_rss_mb is not None and result.peak_rss_mb >= result.rss_before_mb
