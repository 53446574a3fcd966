"""New flags sent to an organization's webhook (issue 21), against a local HTTP receiver: signed with
HMAC-SHA256, retried with backoff after a failure, every attempt logged, never sent twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from atlas_compliance.audit.admin_actions import CLI_ACTOR
from atlas_compliance.flags import webhook
from tests.conftest import run_service
from tests.flags.conftest import evaluate

SECRET = "s" * 40


@pytest.fixture()
def receiver():
    """A local receiver: answers each POST with the next status of ``plan`` (200 when exhausted)."""
    got: list[dict] = []
    plan: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"body": body, "timestamp": self.headers["X-Atlas-Timestamp"],
                        "signature": self.headers["X-Atlas-Signature"]})
            self.send_response(plan.pop(0) if plan else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}/hook", "got": got, "plan": plan}
    server.shutdown()
    server.server_close()


def deliver(client, org_id, now=None):
    return client.portal.call(lambda: webhook.deliver_due(client.app.state.db, org_id=org_id, now=now))


def test_new_flags_are_signed_retried_with_backoff_and_logged(client, org, clinic, sql, receiver):
    run_service(client, webhook.set_webhook, org.id, receiver["url"], SECRET, CLI_ACTOR)
    receiver["plan"].extend([500])  # the first delivery fails once
    evaluate(client, org.id)
    sent = deliver(client, org.id)
    assert sent == {"delivered": 2, "retrying": 1, "failed": 0}
    assert len(receiver["got"]) == 3
    for g in receiver["got"]:  # what a receiver checks: the HMAC of "timestamp.body" under the shared secret
        mac = hmac.new(SECRET.encode(), g["timestamp"].encode() + b"." + g["body"], hashlib.sha256).hexdigest()
        assert g["signature"] == "sha256=" + mac
    flags = [json.loads(g["body"])["flag"] for g in receiver["got"]]
    assert sorted(f["rule"] for f in flags) == ["first_access", "new_actor", "volume"]
    assert all(json.loads(g["body"])["event"] == "access_flag.created" for g in receiver["got"])

    # Nothing is due again before the backoff (1 minute); re-evaluating queues nothing new.
    evaluate(client, org.id)
    assert deliver(client, org.id) == {"delivered": 0, "retrying": 0, "failed": 0}
    pending = sql.execute("SELECT id, next_attempt_at FROM access_flag_delivery WHERE org_id = %s AND status = "
                          "'pending'", (org.id,)).fetchone()
    later = deliver(client, org.id, now=pending["next_attempt_at"] + timedelta(seconds=1))
    assert later == {"delivered": 1, "retrying": 0, "failed": 0}
    assert len(receiver["got"]) == 4
    log = sql.execute("SELECT status_code, ok FROM access_flag_delivery_attempt WHERE delivery_id = %s ORDER BY id",
                      (pending["id"],)).fetchall()
    assert [(a["status_code"], a["ok"]) for a in log] == [(500, False), (200, True)]
    assert sql.execute("SELECT count(*) AS n FROM access_flag_delivery WHERE org_id = %s AND status = 'delivered'",
                       (org.id,)).fetchone()["n"] == 3


def test_an_unreachable_receiver_fails_after_the_last_attempt(client, org, clinic, sql):
    run_service(client, webhook.set_webhook, org.id, "http://127.0.0.1:9/nothing-listens", SECRET, CLI_ACTOR)
    evaluate(client, org.id)
    now = None
    for _ in range(webhook.MAX_ATTEMPTS):
        deliver(client, org.id, now=now)
        now = sql.execute("SELECT max(next_attempt_at) AS t FROM access_flag_delivery WHERE org_id = %s",
                          (org.id,)).fetchone()["t"] + timedelta(seconds=1)
    states = sql.execute("SELECT status, attempts FROM access_flag_delivery WHERE org_id = %s", (org.id,)).fetchall()
    assert {(s["status"], s["attempts"]) for s in states} == {("failed", webhook.MAX_ATTEMPTS)}
    errors = sql.execute("SELECT error FROM access_flag_delivery_attempt a JOIN access_flag_delivery d "
                         "ON d.id = a.delivery_id WHERE d.org_id = %s", (org.id,)).fetchall()
    assert len(errors) == 3 * webhook.MAX_ATTEMPTS and all("Connect" in e["error"] for e in errors)


def test_backoff_doubles_up_to_a_day_and_a_bad_webhook_is_refused(client, org):
    assert [webhook.backoff(n).total_seconds() / 60 for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert webhook.backoff(30) == timedelta(days=1)
    for url, secret in (("ftp://x", SECRET), ("http://x", "short")):
        with pytest.raises(Exception, match="invalid|at least 32"):
            run_service(client, webhook.set_webhook, org.id, url, secret, CLI_ACTOR)
