"""The async connection pool and the transaction boundary helpers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import AtlasError, PayloadTooLarge, ServiceUnavailable

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
                 statement_timeout_ms: int = 120_000, reconnect_timeout: float | None = None) -> None:
        self.url = to_libpq_url(url)
        self.timeout = timeout
        # Set once the pool has failed to connect for ``reconnect_timeout``: the database is down.
        # Requests then probe it with one connection attempt and answer 503 at once if it fails, instead
        # of each waiting the full ``timeout`` for a pool connection that cannot come (fail fast).
        self._unreachable = False
        # JIT compilation costs 50–150 ms per report query and never pays off at these sizes. COPY
        # data is built as UTF-8 text (audit.repository.copy_line), whatever the database's encoding.
        options = f"-c statement_timeout={statement_timeout_ms} -c TimeZone=UTC -c jit=off -c client_encoding=UTF8"
        self.pool = AsyncConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"row_factory": dict_row, "options": options, "connect_timeout": max(1, int(timeout))},
            check=AsyncConnectionPool.check_connection,
            # While the database is down the pool retries with exponential backoff (1, 2, 4, 8… s) until
            # it gives up. psycopg_pool's default (5 minutes) lets the gaps grow to minutes, so a database
            # that is back would stay unused (503s) for minutes. Giving up after half the request timeout
            # keeps the gaps short, and the next request that finds no connection starts a fresh attempt.
            reconnect_timeout=reconnect_timeout if reconnect_timeout is not None else max(1.0, timeout / 2),
            reconnect_failed=self._reconnect_failed,
        )

    def _reconnect_failed(self, pool: AsyncConnectionPool) -> None:
        self._unreachable = True

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        if self._unreachable and not await self.ping():
            raise ServiceUnavailable("the database is unavailable; retry later", code="database_unavailable")
        try:
            async with self.pool.connection(timeout=self.timeout) as conn:
                self._unreachable = False
                yield conn
        except PoolTimeout as exc:
            raise ServiceUnavailable("the database is unavailable; retry later",
                                     code="database_unavailable") from exc
        except psycopg.Error as exc:
            mapped = database_error(exc)
            if mapped is None:
                raise
            log.warning("database error %s: %s", exc.sqlstate or type(exc).__name__, _first_line(exc))
            raise mapped from exc

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


_ROLLED_BACK = "the request was rolled back"


def database_error(exc: BaseException) -> AtlasError | None:
    """The error to answer for a database failure that is not the request's fault, or None (a bug: 500).

    The connection or the server is down (class 08, 57P0x), the database refuses writes (25006:
    read-only mode or a hot standby), it is out of disk, memory or connections (class 53), a statement
    timed out (57014), or the transaction lost a serialization conflict (class 40). The transaction
    was rolled back in every case, so retrying later is safe. A value beyond one of PostgreSQL's own
    limits (class 54, e.g. an index row too large) is not an outage: retrying would fail the same way,
    so it answers 413 and says so.
    """
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate or ""
    if state == "25006":
        return ServiceUnavailable(f"the database is in read-only mode and refuses writes; {_ROLLED_BACK}, "
                                  "nothing was stored — retry later", code="database_read_only")
    if state == "53100":
        return ServiceUnavailable(f"the database server is out of disk space; {_ROLLED_BACK}, nothing was "
                                  "stored — retry later", code="database_disk_full")
    if state.startswith("53"):
        return ServiceUnavailable(f"the database server is out of resources (SQLSTATE {state}); {_ROLLED_BACK}"
                                  " — retry later", code="database_out_of_resources")
    if state == "57014":
        return ServiceUnavailable(f"the database did not answer in time (statement timeout); {_ROLLED_BACK}"
                                  " — retry later or narrow the request", code="database_timeout")
    if state.startswith("54"):
        return PayloadTooLarge(f"a value in the request exceeds a limit of the database ({_first_line(exc)}); "
                               f"{_ROLLED_BACK}, nothing was stored, and sending it again will fail the same way",
                               code="database_limit_exceeded")
    if state.startswith("40"):
        return ServiceUnavailable(f"the request conflicted with a concurrent change; {_ROLLED_BACK} — retry it",
                                  code="database_conflict")
    if isinstance(exc, psycopg.OperationalError) or state.startswith(("08", "57P")):
        return ServiceUnavailable("the database is unavailable; retry later", code="database_unavailable")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
