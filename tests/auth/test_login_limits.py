"""The login rate limit as attacked (issue 13 item 6): parallel guesses cannot outrun it, a forged
X-Forwarded-For neither bypasses it nor is stored, and nobody can lock a user out by guessing wrong
from elsewhere. Also: password hashing runs off the event loop (item 4, last sentence)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from fastapi.testclient import TestClient

from atlas_compliance.auth import passwords
from tests.conftest import assert_error
from tests.helpers_server import free_port, start_process, wait_ready

LOGIN = "/api/v1/auth/login"


def stored_addresses(sql, email: str) -> Counter:
    rows = sql.execute("SELECT ip_address FROM login_attempt WHERE email = %s", (email,)).fetchall()
    return Counter(row["ip_address"] for row in rows)


@contextmanager
def trusted_proxies(client, cidrs: str) -> Iterator[None]:
    before = client.app.state.settings
    client.app.state.settings = before.model_copy(update={"trusted_proxies": cidrs})
    try:
        yield
    finally:
        client.app.state.settings = before


def test_sixty_parallel_wrong_passwords_check_at_most_the_limit(database_url, settings, org, sql):
    """Against `atlas-compliance serve` itself, each guess with its own forged X-Forwarded-For."""
    member = org.add_user("member", login=False)

    async def hammer(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            answers = await asyncio.gather(*(
                http.post(LOGIN, json={"email": member.email, "password": f"wrong-{i}"},
                          headers={"X-Forwarded-For": f"10.8.{i}.1"}) for i in range(60)))
        return [answer.status_code for answer in answers]

    port = free_port()
    proc = start_process(database_url, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", seconds=60)
        statuses = Counter(asyncio.run(hammer(f"http://127.0.0.1:{port}")))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert statuses == {401: settings.login_max_failures, 429: 60 - settings.login_max_failures}, statuses
    # Exactly the limit were checked and recorded, under the real peer's address.
    assert stored_addresses(sql, member.email) == {"127.0.0.1": settings.login_max_failures}


def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(client, settings, org, sql):
    member = org.add_user("member", login=False)
    attacker = TestClient(client.app, client=("198.51.100.21", 5100))
    for i in range(settings.login_max_failures):
        resp = attacker.post(LOGIN, json={"email": member.email, "password": "wrong-pass"},
                             headers={"X-Forwarded-For": f"10.9.{i}.{i + 1}"})
        assert resp.status_code == 401
    rotated = attacker.post(LOGIN, json={"email": member.email, "password": "wrong-pass"},
                            headers={"X-Forwarded-For": "10.99.99.99"})
    assert_error(rotated, 429, "rate_limited")
    assert stored_addresses(sql, member.email) == {"198.51.100.21": settings.login_max_failures}
    # A trusted-proxy list that does not include this peer changes nothing either.
    with trusted_proxies(client, "10.0.0.0/8"):
        again = attacker.post(LOGIN, json={"email": member.email, "password": "wrong-pass"},
                              headers={"X-Forwarded-For": "10.98.0.1"})
    assert_error(again, 429, "rate_limited")


def test_forwarded_for_from_a_trusted_proxy_names_the_client(client, settings, org, sql):
    member = org.add_user("member", login=False)
    proxy = TestClient(client.app, client=("10.20.0.5", 5200))
    with trusted_proxies(client, "10.20.0.0/16, 2001:db8::/32"):
        # The client's own forged entry (left) is not believed: the right-most untrusted address is.
        for _ in range(settings.login_max_failures):
            resp = proxy.post(LOGIN, json={"email": member.email, "password": "wrong-pass"},
                              headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.80, 10.20.0.9"})
            assert resp.status_code == 401
        limited = proxy.post(LOGIN, json={"email": member.email, "password": member.password},
                             headers={"X-Forwarded-For": "7.7.7.7, 203.0.113.80"})
        assert_error(limited, 429, "rate_limited")
        # Another client behind the same proxy is another address: it still signs in.
        other = proxy.post(LOGIN, json={"email": member.email, "password": member.password},
                           headers={"X-Forwarded-For": "203.0.113.81"})
        assert other.status_code == 200, other.text
    assert stored_addresses(sql, member.email) == {"203.0.113.80": settings.login_max_failures,
                                                   "203.0.113.81": 1}
    session = sql.execute('SELECT "ipAddress" FROM session WHERE "userId" = %s', (member.id,)).fetchone()
    assert session["ipAddress"] == "203.0.113.81"


def test_attacker_hammering_an_email_does_not_lock_its_user_out(client, settings, org):
    victim = org.add_user("admin", login=False)
    attacker = TestClient(client.app, client=("198.51.100.31", 5300))
    statuses = Counter(
        attacker.post(LOGIN, json={"email": victim.email, "password": f"guess-{i}"}).status_code
        for i in range(settings.login_max_failures * 4))
    assert statuses == {401: settings.login_max_failures, 429: settings.login_max_failures * 3}
    # The attacker's address is throttled even with the right password...
    assert_error(attacker.post(LOGIN, json={"email": victim.email, "password": victim.password}), 429)
    # ...while the real user, from their own address, signs in at once.
    own = TestClient(client.app, client=("203.0.113.31", 5301))
    resp = own.post(LOGIN, json={"email": victim.email, "password": victim.password})
    assert resp.status_code == 200, resp.text


def test_one_address_spraying_many_emails_is_limited(client, settings, org):
    sprayer = TestClient(client.app, client=("198.51.100.41", 5400))
    for i in range(settings.login_max_failures * 3):
        assert sprayer.post(LOGIN, json={"email": f"spray{i}@y.example", "password": "x"}).status_code == 401
    assert_error(sprayer.post(LOGIN, json={"email": "fresh@y.example", "password": "x"}), 429, "rate_limited")


def test_correct_password_for_a_foreign_org_is_not_counted_as_a_failure(client, settings, org, make_org, sql):
    member = org.add_user("member", login=False)
    other = make_org()
    caller = TestClient(client.app, client=("198.51.100.51", 5500))
    resp = caller.post(LOGIN, json={"email": member.email, "password": member.password, "org": other.slug})
    assert_error(resp, 403, "not_a_member")
    row = sql.execute("SELECT success FROM login_attempt WHERE email = %s", (member.email,)).fetchone()
    assert row["success"] is True


def test_password_hashing_and_checks_run_off_the_event_loop(client, org, monkeypatch):
    threads: list[str] = []
    real_verify, real_hash = passwords.verify_password, passwords.hash_password

    def verify(*args):
        threads.append(threading.current_thread().name)
        return real_verify(*args)

    def hash_(*args):
        threads.append(threading.current_thread().name)
        return real_hash(*args)

    monkeypatch.setattr(passwords, "verify_password", verify)
    monkeypatch.setattr(passwords, "hash_password", hash_)
    member = org.add_user("member", login=False)  # hashes
    assert client.post(LOGIN, json={"email": member.email, "password": member.password}).status_code == 200
    assert client.post(LOGIN, json={"email": member.email, "password": "wrong-pass"}).status_code == 401
    assert len(threads) == 3
    assert all(name.startswith("atlas-password") for name in threads), threads
    loop_thread = client.portal.call(lambda: threading.current_thread().name)
    assert loop_thread not in threads
