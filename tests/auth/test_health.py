"""/healthz and /readyz, including a database outage and its recovery."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pgserver
from fastapi.testclient import TestClient

from atlas_compliance.app import create_app
from atlas_compliance.db.pool import Database
from tests.conftest import assert_error


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"


def test_readyz_is_503_while_the_database_is_down_and_recovers(settings):
    pgdata = Path(tempfile.mkdtemp(prefix="atlas-outage-")) / "pg"
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent))
    srv = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = srv.get_uri()
    app = create_app(Database(url, timeout=1.0), settings, manage_pool=True)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        srv.cleanup()  # stops the server
        down = client.get("/readyz")
        assert_error(down, 503, "database_unavailable")
        assert client.get("/healthz").status_code == 200
        # An authenticated request fails fast with 503, not 500.
        resp = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer atls_" + "a" * 43})
        assert_error(resp, 503)
        srv = pgserver.get_server(pgdata, cleanup_mode="delete")
        assert srv.get_uri() == url
        assert client.get("/readyz").status_code == 200
    srv.cleanup()
