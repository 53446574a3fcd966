"""The async connection pool and the transaction boundary helpers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import ServiceUnavailable

log = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection


def to_libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs (``postgresql+psycopg://``) as well as plain libpq ones."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


class Database:
    """Owns the pool. ``transaction()`` is the unit of work used by requests, CLI commands and jobs."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0,
                 statement_timeout_ms: int = 120_000) -> None:
        self.url = to_libpq_url(url)
        self.timeout = timeout
        # JIT compilation costs 50–150 ms per report query and never pays off at these sizes.
        options = f"-c statement_timeout={statement_timeout_ms} -c TimeZone=UTC -c jit=off"
        self.pool = AsyncConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"row_factory": dict_row, "options": options, "connect_timeout": max(1, int(timeout))},
            check=AsyncConnectionPool.check_connection,
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        try:
            async with self.pool.connection(timeout=self.timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise ServiceUnavailable("the database is unavailable; try again shortly",
                                     code="database_unavailable") from exc
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(f"the database is unavailable: {_first_line(exc)}",
                                     code="database_unavailable") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        try:
            async with await psycopg.AsyncConnection.connect(self.url, connect_timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:  # any failure means "not ready"
            return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
