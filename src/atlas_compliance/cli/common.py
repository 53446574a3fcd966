"""What every CLI command shares: opening the database, one-line errors, output helpers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console

from ..config import Settings, get_settings
from ..db.pool import Database
from ..errors import AtlasError
from ..runtime import database_url, open_database

T = TypeVar("T")
console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def run_db(work: Callable[[Database], Awaitable[T]], *, settings: Settings | None = None,
           upgrade: bool = True) -> T:
    """Open the configured database (embedded or DATABASE_URL), run ``work``, close everything.

    Library errors become one line on stderr and exit code 1; never a traceback.
    """
    settings = settings or get_settings()

    async def main() -> T:
        with database_url(settings) as url:
            async with open_database(url, settings, upgrade=upgrade, max_size=4) as db:
                return await work(db)

    try:
        return asyncio.run(main())
    except AtlasError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # a CLI user gets one line; details with ATLAS_LOG_LEVEL=DEBUG
        if settings.log_level.upper() == "DEBUG":
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"{type(exc).__name__}: {first}")
    raise AssertionError("unreachable")


def read_secret_stdin() -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        fail("no password on standard input")
    return value
