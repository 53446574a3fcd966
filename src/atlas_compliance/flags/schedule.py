"""`serve`'s scheduled pass: every organization's flags for yesterday and today (UTC), at start and hourly,
then the due webhook deliveries (see :mod:`flags.webhook`).

Nothing is kept in memory between passes: each one reads the rollups and the stored flags, so a restart
loses nothing, and a day's late events are seen by the next pass that covers the day (or by
`atlas-compliance flags evaluate --from D --to D` for older days)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from ..db.pool import Database
from . import repository as repo
from . import service, webhook

log = logging.getLogger(__name__)
CHECK_INTERVAL = 3600.0


async def evaluate_all(db: Database, today: date | None = None) -> list[dict[str, Any]]:
    first, last = service.day_range(None, None, today)
    async with db.transaction() as conn:
        orgs = await repo.active_org_ids(conn)
    done = []
    for org_id in orgs:
        try:
            done.append(await service.evaluate_org(db, org_id, first, last))
        except Exception as exc:  # one org's failure does not stop the others
            log.error("evaluating access flags of org %s failed: %s: %s", org_id, type(exc).__name__, exc,
                      extra={"event": "access_flags_failed"})
    return done


async def run_periodically(db: Database, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                           interval: float = CHECK_INTERVAL) -> None:
    """Evaluate now and every ``interval`` seconds; a failure is logged and retried at the next pass."""
    while True:
        try:
            results = await evaluate_all(db)
            added = sum(r["inserted"] for r in results)
            if added:
                log.info("access flags: %d new", added)
            sent = await webhook.deliver_due(db)
            if any(sent.values()):
                log.info("access flag webhooks: %(delivered)d delivered, %(retrying)d to retry, %(failed)d failed",
                         sent)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("evaluating access flags failed: %s: %s", type(exc).__name__, exc,
                      extra={"event": "access_flags_failed"})
        await sleep(interval)
