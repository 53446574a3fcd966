"""The real app served by uvicorn in a child process (so its memory can be measured on its own),
and credentials for it made through ``atlas_compliance.auth.service``."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import psycopg
from psycopg.rows import dict_row

from atlas_compliance.app import create_app
from atlas_compliance.auth import service as auth
from atlas_compliance.config import Settings
from atlas_compliance.db.pool import Database

REPO_ROOT = Path(__file__).resolve().parent.parent


def create():
    """uvicorn factory: the app as `atlas-compliance serve` builds it, on DATABASE_URL."""
    settings = Settings(database_url=os.environ["DATABASE_URL"])
    db = Database(settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size,
                  timeout=settings.db_timeout, statement_timeout_ms=settings.statement_timeout_ms)
    return create_app(db, settings, manage_pool=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m uvicorn bench.server:create --factory`` on a free loopback port."""

    def __init__(self, url: str, src: Path | None = None) -> None:
        """``src``: a directory holding another version of the ``atlas_compliance`` package to serve
        (e.g. from ``git archive``), for measuring two versions side by side."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        path = str(REPO_ROOT) if src is None else f"{src}{os.pathsep}{REPO_ROOT}"
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.server:create", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--log-level", "warning", "--no-proxy-headers"],
            cwd=REPO_ROOT, env=env)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with code {self.proc.returncode}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("the server did not become ready within 60 s")

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class RssSampler:
    """Samples a process's resident memory in a thread while the ``with`` block runs: the value before,
    the peak, and (seconds since start, bytes) pairs."""

    def __init__(self, rss: Callable[[], int], interval: float = 0.05) -> None:
        self.rss, self.interval = rss, interval
        self.before = self.peak = rss()
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.perf_counter()
        while not self._stop.is_set():
            value = self.rss()
            self.peak = max(self.peak, value)
            self.samples.append((round(time.perf_counter() - began, 2), value))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def _admin_token(url: str, org_slug: str) -> str:
    email = f"bench-admin@{org_slug}.example"
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        async with conn.transaction():
            cur = await conn.execute('SELECT 1 FROM "user" WHERE email = %s', (email,))
            if await cur.fetchone() is None:
                await auth.create_user(conn, email=email, password="bench " + secrets.token_hex(12),
                                       org_slug=org_slug, role="admin", name="Bench admin")
            token = await auth.create_personal_token(conn, org_slug=org_slug, email=email, name="bench",
                                                     expires_in_seconds=24 * 3600)
    return token["token"]


def admin_token(url: str, org_slug: str) -> str:
    """A personal access token of an admin of ``org_slug`` (the admin is created once)."""
    return asyncio.run(_admin_token(url, org_slug))


async def _new_org_with_key(url: str, slug: str) -> tuple[str, str]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        async with conn.transaction():
            org = await auth.create_organization(conn, slug, f"Bench {slug}")
            key = await auth.create_ingest_key(conn, org_slug=slug, name="bench ingest")
    return org["id"], key["token"]


def new_org_with_ingest_key(url: str, slug: str) -> tuple[str, str]:
    """A fresh organization and an ingest key for it: (org id, token)."""
    return asyncio.run(_new_org_with_key(url, slug))
