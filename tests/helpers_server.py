"""A real HTTP server for tests: uvicorn in a thread (or a killable `atlas-compliance serve` process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import uvicorn

from atlas_compliance.app import create_app
from atlas_compliance.db.pool import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base} did not become ready in {seconds} s")


class ThreadServer:
    def __init__(self, database_url: str, settings) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        app = create_app(Database(database_url), settings, manage_pool=True)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="on",
                                                    proxy_headers=False))  # as `serve` runs it
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_ready(self.base)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_process(database_url: str, port: int) -> subprocess.Popen:
    """`atlas-compliance serve` as a child process, so a test can SIGKILL it."""
    env = {**os.environ, "DATABASE_URL": database_url, "ATLAS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "atlas_compliance.cli.main", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
