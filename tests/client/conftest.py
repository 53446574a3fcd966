"""Real HTTP servers for the client tests: uvicorn in a thread, or `atlas-compliance serve` as a process.

Both serve the session's test database, so `org` fixtures (made through the TestClient app) and the
`sql` fixture see the same rows the client's requests store.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from atlas_compliance.app import create_app
from atlas_compliance.config import Settings
from atlas_compliance.db.pool import Database, to_libpq_url

READY_SECONDS = 30.0


def free_port() -> int:
    """A port nothing listens on (the OS picked it; we close it again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base_url: str, seconds: float = READY_SECONDS, process: subprocess.Popen | None = None) -> None:
    """Poll /readyz until it answers 200; fail after ``seconds`` (or when the process died)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server process exited with {process.returncode}")
        try:
            if httpx.get(base_url + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{base_url} was not ready after {seconds} s")


@dataclass
class LiveServer:
    """The app served by uvicorn in a background thread of the test process."""

    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_live_server(settings: Settings, port: int) -> LiveServer:
    db = Database(settings.database_url, max_size=4, timeout=settings.db_timeout)
    app = create_app(db, settings, manage_pool=True)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    live = LiveServer(port, server, thread)
    wait_ready(live.url)
    return live


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[LiveServer]:
    live = start_live_server(settings, free_port())
    yield live
    live.stop()


@pytest.fixture()
def start_server(settings: Settings) -> Iterator[Callable[[int], LiveServer]]:
    """Start another threaded server on a given port (stopped after the test)."""
    started: list[LiveServer] = []

    def start(port: int) -> LiveServer:
        live = start_live_server(settings, port)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


def _serve_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("atlas-compliance")
    executable = str(script) if script.exists() else shutil.which("atlas-compliance")
    if executable is None:
        pytest.skip("the atlas-compliance command is not installed")
    return [executable, "serve", "--host", "127.0.0.1", "--port", str(port)]


@pytest.fixture()
def serve_process(database_url: str, tmp_path: Path) -> Iterator[Callable[[int], subprocess.Popen]]:
    """Start `atlas-compliance serve --port P` as a child process; every one is killed after the test."""
    processes: list[subprocess.Popen] = []
    env = {**os.environ, "DATABASE_URL": database_url, "ATLAS_LOG_LEVEL": "WARNING",
           "ATLAS_DATA_DIR": str(tmp_path / "data")}

    def start(port: int) -> subprocess.Popen:
        with open(tmp_path / f"serve-{len(processes)}.log", "wb") as log:  # a file: a pipe could fill up
            process = subprocess.Popen(_serve_command(port), env=env, cwd=tmp_path, stdout=log, stderr=log)
        processes.append(process)
        try:
            wait_ready(f"http://127.0.0.1:{port}", process=process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; its output:\n{(tmp_path / f'serve-{len(processes) - 1}.log').read_text()}") from None
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=15)


def engine_url(database_url: str, driver: str) -> str:
    """The test database as a SQLAlchemy URL for ``driver`` (psycopg or asyncpg)."""
    return f"postgresql+{driver}://" + to_libpq_url(database_url).split("://", 1)[1]


@pytest.fixture()
def scratch(database_url: str, sql) -> Iterator[tuple[sa.Engine, str]]:
    """An engine on the test database and a table `<unique schema>.patients` (dropped afterwards)."""
    schema = f"hook_{uuid.uuid4().hex[:10]}"
    sql.execute(f"CREATE SCHEMA {schema}")
    sql.execute(f"CREATE TABLE {schema}.patients (id int PRIMARY KEY, name text, ssn text)")
    engine = sa.create_engine(engine_url(database_url, "psycopg"))
    yield engine, schema
    engine.dispose()
    sql.execute(f"DROP SCHEMA {schema} CASCADE")
