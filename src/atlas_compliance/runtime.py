"""Which database to use, and opening it: DATABASE_URL, or the embedded PostgreSQL in ATLAS_DATA_DIR."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from .config import Settings
from .db import migrate
from .db.embedded import DataDirInUse, EmbeddedPostgres
from .db.pool import Database

log = logging.getLogger(__name__)

URL_FILE = "postgres.url"


def _running_embedded_url(data_dir: Path) -> str | None:
    """The URL of an embedded server another Atlas process owns in ``data_dir``, if any."""
    lock = data_dir / "atlas.lock"
    url_file = data_dir / URL_FILE
    if not lock.exists() or not url_file.exists():
        return None
    with open(lock) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return url_file.read_text().strip() or None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


@contextmanager
def database_url(settings: Settings, *, exclusive: bool = False) -> Iterator[str]:
    """Yield the URL to use, starting the embedded server when needed and stopping it afterwards.

    With ``exclusive`` (serve, demo) the caller must own the data directory; otherwise a one-shot
    command reuses the embedded server that a running `serve` owns.
    """
    if settings.database_url:
        yield settings.database_url
        return
    data_dir = settings.data_dir.resolve()
    shared = _running_embedded_url(data_dir)
    if shared and not exclusive:
        yield shared
        return
    embedded = EmbeddedPostgres(data_dir)
    try:
        url = embedded.start()
    except DataDirInUse:
        raise
    (data_dir / URL_FILE).write_text(url)
    try:
        yield url
    finally:
        try:
            (data_dir / URL_FILE).unlink(missing_ok=True)
        finally:
            embedded.stop()


@asynccontextmanager
async def open_database(url: str, settings: Settings, *, upgrade: bool = True,
                        max_size: int | None = None) -> AsyncIterator[Database]:
    if upgrade:
        applied = migrate.upgrade(url)
        if applied:
            log.info("applied migrations %s", ", ".join(applied))
    db = Database(url, min_size=settings.pool_min_size, max_size=max_size or settings.pool_max_size,
                  timeout=settings.db_timeout, statement_timeout_ms=settings.statement_timeout_ms)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
