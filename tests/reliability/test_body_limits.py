"""Request body limits (issue 13 item 5): every route accepts a body fitting its purpose, counted while
it is read, so a huge body (chunked, without Content-Length) is refused with 413 after reading at most
the limit, and the handler never runs."""

from __future__ import annotations

import json
import select
import socket
import uuid

from atlas_compliance.app import create_app
from atlas_compliance.audit.schemas import MAX_BODY_BYTES
from tests.conftest import assert_error
from tests.helpers_server import ThreadServer

CHUNK = 64 * 1024
HUGE = 200 * 1024 * 1024
LOGIN = "/api/v1/auth/login"
CLASSIFICATIONS = "/api/v1/admin/compliance/classifications"


class Body:
    """An ASGI ``receive`` that makes a body of ``total`` bytes chunk by chunk, and counts what was read."""

    def __init__(self, prefix: bytes, total: int, filler: bytes = b"a") -> None:
        self.prefix, self.total, self.filler = prefix, total, filler
        self.pulled = 0
        self.finished = False

    async def __call__(self) -> dict:
        if self.pulled >= self.total:
            self.finished = True
            return {"type": "http.disconnect"}
        if self.pulled == 0:
            chunk = self.prefix + self.filler * (CHUNK - len(self.prefix))
        else:
            chunk = self.filler * min(CHUNK, self.total - self.pulled)
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < self.total}


def call(client, app, method: str, path: str, body: Body, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict]:
    """Send one request straight to the ASGI app (no test client buffering the body first)."""
    sent: dict = {"status": None, "body": b""}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("203.0.113.61", 40000),
             "server": ("testserver", 80)}

    async def run():
        await app(scope, body, send)

    client.portal.call(run)
    return sent["status"], json.loads(sent["body"])


def login_prefix(email: str) -> bytes:
    return json.dumps({"email": email, "password": "x"}).encode()[:-2] + b'x'


def attempts(sql, email: str) -> int:
    return sql.execute("SELECT count(*) AS n FROM login_attempt WHERE email = %s", (email,)).fetchone()["n"]


def test_200_mb_chunked_login_body_is_refused_after_reading_the_limit(client, sql):
    email = f"huge-{uuid.uuid4().hex[:8]}@x.example"
    body = Body(login_prefix(email), HUGE)
    status, payload = call(client, client.app, "POST", LOGIN, body, [(b"content-type", b"application/json")])
    assert status == 413 and payload["error"] == "payload_too_large", payload
    assert "8 KiB" in payload["message"]
    # At most the limit and the chunk that crossed it were read; the rest was never asked for.
    assert body.pulled <= 8 * 1024 + CHUNK and not body.finished
    assert attempts(sql, email) == 0  # the handler never ran: no login attempt was recorded


def test_login_at_the_limit_still_works(client, org):
    member = org.add_user("member", login=False)
    padded = {"email": member.email, "password": member.password, "org": None}
    raw = json.dumps(padded)
    raw = raw[:-1] + " " * (8 * 1024 - len(raw)) + "}"
    assert len(raw.encode()) == 8 * 1024
    resp = client.post(LOGIN, content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    resp = client.post(LOGIN, content=raw[:-1] + " }", headers={"Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


def test_console_login_form_of_200_mb_is_refused(client, sql):
    email = f"form-{uuid.uuid4().hex[:8]}@x.example"
    body = Body(f"email={email}&password=".encode(), HUGE)
    status, payload = call(client, client.app, "POST", "/login", body,
                           [(b"content-type", b"application/x-www-form-urlencoded")])
    assert status == 413 and payload["error"] == "payload_too_large"
    assert body.pulled <= 8 * 1024 + CHUNK and not body.finished
    assert attempts(sql, email) == 0


def test_declared_content_length_over_the_limit_is_refused_before_reading(client, sql):
    email = f"declared-{uuid.uuid4().hex[:8]}@x.example"
    body = Body(login_prefix(email), HUGE)
    status, payload = call(client, client.app, "POST", LOGIN, body,
                           [(b"content-type", b"application/json"), (b"content-length", str(HUGE).encode())])
    assert status == 413 and payload["error"] == "payload_too_large"
    assert body.pulled == 0
    assert attempts(sql, email) == 0


def test_ingest_batches_are_bounded_while_streaming(client, org, sql):
    key = org.ingest_key()
    body = Body(b'[{"sql": "SELECT 1"}, {"sql": "SELECT \'', MAX_BODY_BYTES + 4 * CHUNK)
    status, payload = call(client, client.app, "POST", "/api/v1/audit/events", body,
                           [(b"content-type", b"application/json"), (b"authorization", f"Bearer {key}".encode())])
    assert status == 413 and payload["error"] == "payload_too_large", payload
    assert "split it into several batches" in payload["message"]
    assert body.pulled <= MAX_BODY_BYTES + CHUNK and not body.finished
    stored = sql.execute('SELECT count(*) AS n FROM audit_log WHERE org_id = %s', (org.id,)).fetchone()
    assert stored["n"] == 0


def test_classification_uploads_have_their_own_larger_bound(client, org):
    admin = org.add_user("admin")
    auth = [(b"authorization", f"Bearer {admin.token}".encode()), (b"content-type", b"application/json")]
    # 1 MiB passes the body limit (the handler answers it: here a validation error for the filler)...
    body = Body(b'{"detections": [], "x": "', 1024 * 1024)
    status, payload = call(client, client.app, "POST", CLASSIFICATIONS, body, auth)
    assert status == 422, payload
    # ...16 MiB and more does not.
    body = Body(b'{"detections": [], "x": "', 17 * 1024 * 1024)
    status, payload = call(client, client.app, "POST", CLASSIFICATIONS, body, auth)
    assert status == 413 and "16 MiB" in payload["message"]
    assert body.pulled <= 16 * 1024 * 1024 + CHUNK


def test_other_routes_take_small_bodies(client, org, sql):
    admin = org.add_user("admin")
    auth = [(b"authorization", f"Bearer {admin.token}".encode()), (b"content-type", b"application/json")]
    body = Body(b'{"retentionDays": 30, "x": "', 100 * 1024)
    status, payload = call(client, client.app, "PUT", "/api/v1/admin/audit/retention", body, auth)
    assert status == 413 and "64 KiB" in payload["message"]
    row = sql.execute("SELECT count(*) AS n FROM admin_action_log WHERE org_id = %s", (org.id,)).fetchone()
    assert row["n"] == 0


def test_limits_are_configurable(client, settings, sql):
    small = settings.model_copy(update={"max_login_body_bytes": 2048})
    app = create_app(client.app.state.db, small)
    email = f"small-{uuid.uuid4().hex[:8]}@x.example"
    body = Body(login_prefix(email), 3000)
    status, payload = call(client, app, "POST", LOGIN, body, [(b"content-type", b"application/json")])
    assert status == 413 and "2 KiB" in payload["message"]
    assert attempts(sql, email) == 0


def test_live_server_refuses_a_streamed_200_mb_login_early(database_url, settings):
    """Over a real socket: the 413 arrives while the client is still sending, long before 200 MB."""
    with ThreadServer(database_url, settings) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
        sent = 0
        sock.setblocking(False)
        while sent < HUGE:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable or not writable:
                break
            try:
                sent += sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < HUGE // 4, sent
