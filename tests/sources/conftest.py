"""Fixtures of the sources tests: real audit-logging servers (skipped with the reason when they cannot run
here; CI installs them), and the command line run as a separate process, as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import MariaDbServer, PgAuditCluster, mariadb_missing, pgaudit_missing
from .workload import MARIADB_SETUP, PG_SETUP

CLI = str(Path(sys.executable).with_name("atlas-compliance"))


@pytest.fixture(scope="session")
def pgaudit_cluster() -> Iterator[PgAuditCluster]:
    reason = pgaudit_missing()
    if reason:
        pytest.skip(reason)
    cluster = PgAuditCluster().start()
    try:
        cluster.execute(*PG_SETUP)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDbServer]:
    reason = mariadb_missing()
    if reason:
        pytest.skip(reason)
    server = MariaDbServer().start()
    try:
        server.execute(*MARIADB_SETUP)
        yield server
    finally:
        server.stop()


@pytest.fixture()
def atlas(database_url, tmp_path):
    """Run ``atlas-compliance ARGS…`` on the test database; the finished process."""
    env = {**os.environ, "DATABASE_URL": database_url, "ATLAS_DATA_DIR": str(tmp_path / "atlas-data")}

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)

    run.env = env  # type: ignore[attr-defined]
    return run
