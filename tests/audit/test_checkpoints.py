"""Signed checkpoints: the key, the files, and `audit verify --checkpoint` against each attack of issue 15.

Each attack is carried out as a database superuser would (triggers disabled, every later hash and the chain
head recomputed), first shown to pass the plain `audit verify`, then shown to be detected and named against
a checkpoint taken before it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from typer.testing import CliRunner

from atlas_compliance.audit import checkpoints, signing
from atlas_compliance.cli.main import app
from atlas_compliance.config import Settings, get_settings
from atlas_compliance.db.pool import Database
from tests.conftest import assert_error
from tests.helpers_server import free_port, wait_ready

URL = "/api/v1/audit/events"
LIST = "/api/v1/admin/audit/checkpoints"


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ATLAS_SIGNING_KEY", raising=False)
    monkeypatch.delenv("ATLAS_CHECKPOINT_DIR", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result

    yield run
    get_settings.cache_clear()


def seed(client, org, n: int, timestamp: str | None = None) -> None:
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"eventId": f"e{i}-{uuid.uuid4().hex}", "sql": f"SELECT {i}", "tablesAccessed": ["orders"],
               **({"timestamp": timestamp} if timestamp else {})} for i in range(n)]
    assert client.post(URL, json=events, headers=key).json()["inserted"] == n


def take(cli, org, out: Path) -> Path:
    lines = cli("audit", "checkpoint", "--org", org.slug, "--out", str(out)).stdout.split()
    assert len(lines) == 1
    return Path(lines[0])


def verify(cli, target: Path, code: int, *extra: str) -> str:
    return cli("audit", "verify", "--checkpoint", str(target), *extra, code=code).stdout


def plain_verify_ok(cli, org, sql) -> str:
    """The attacker rebuilds the org's rollups from what is left, so the plain verify (chains and rollups)
    finds nothing; only a checkpoint can."""
    days = ("SELECT atlas_rollup_rebuild(coalesce((SELECT jsonb_agg(jsonb_build_object('org_id', %(o)s, 'day', d)) "
            "FROM (SELECT day AS d FROM audit_user_daily WHERE org_id = %(o)s "
            "UNION SELECT day FROM audit_access_daily WHERE org_id = %(o)s "
            "UNION SELECT (\"timestamp\" AT TIME ZONE 'UTC')::date FROM audit_log WHERE org_id = %(o)s) x), '[]'))")
    superuser(sql, (days, {"o": org.id}))
    out = cli("audit", "verify", "--org", org.slug).stdout
    assert ": OK," in out and "rollups OK" in out, out
    return out


# every guard an attacker switches off
GUARDED = ("audit_log", "audit_log_tombstone", "admin_action_log", "audit_chain_head", "evidence_chain_head", "audit_user_daily",
           "audit_access_daily", "audit_access_weekly")


def superuser(sql, *statements: tuple[str, tuple], keep: tuple[str, ...] = ()) -> None:
    """What an attacker holding the database superuser does: switch the guards off and rewrite rows.

    ``keep`` names triggers left on, e.g. the tombstone chain's own, so that a forged record is chained
    and its chain head moved exactly as the purge would have done it."""
    triggers = sql.execute("SELECT tgrelid::regclass::text AS t, tgname FROM pg_trigger "
                           "WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(%s)",
                           (list(GUARDED),)).fetchall()
    off = [(row["t"], row["tgname"]) for row in triggers if row["tgname"] not in keep]
    with sql.transaction():
        sql.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table, name in off:
            sql.execute(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"')
        for statement, params in statements:
            sql.execute(statement, params)
        for table, name in off:
            sql.execute(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"')


def recompute_from(sql, org, first: int) -> None:
    """Recompute every hash from position ``first`` to the end and move the head: the chain verifies again."""
    last = sql.execute("SELECT max(chain_seq) AS m FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["m"]
    statements: list[tuple[str, tuple | dict]] = []
    for seq in range(first, last + 1):
        statements += [("UPDATE audit_log SET prev_hash = (SELECT row_hash FROM audit_log WHERE org_id = %(o)s "
                        "AND chain_seq = %(s)s - 1) WHERE org_id = %(o)s AND chain_seq = %(s)s", {"o": org.id, "s": seq}),
                       ("UPDATE audit_log a SET row_hash = atlas_audit_hash(a, a.prev_hash) "
                        "WHERE org_id = %s AND chain_seq = %s", (org.id, seq))]
    statements.append(("UPDATE audit_chain_head SET last_seq = %(s)s, last_hash = (SELECT row_hash FROM audit_log "
                       "WHERE org_id = %(o)s AND chain_seq = %(s)s) WHERE chain_key = %(o)s", {"s": last, "o": org.id}))
    superuser(sql, *statements)


# --- the key -------------------------------------------------------------------------------------

def test_key_is_generated_once_private_to_its_owner_and_shown(cli, tmp_path):
    first = cli("keys", "show").stdout
    key_file = tmp_path / "data" / "signing-key.pem"
    assert "(generated now)" in first
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    second = cli("keys", "show").stdout
    assert "(generated now)" not in second
    key_id = first.split("key id:")[1].split()[0]
    assert f"key id:     {key_id}" in second
    pem = cli("keys", "show", "--pem").stdout
    public = serialization.load_pem_public_key(pem.encode())
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == \
        private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signing.key_id_of(private.public_key()) == key_id and len(key_id) == 16


def test_signing_key_from_the_environment_and_clear_errors(cli, tmp_path, monkeypatch):
    own = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "own.pem"
    path.write_bytes(own.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    monkeypatch.setenv("ATLAS_SIGNING_KEY", str(path))
    get_settings.cache_clear()
    assert f"key id:     {signing.key_id_of(own.public_key())}" in cli("keys", "show").stdout
    assert not (tmp_path / "data" / "signing-key.pem").exists()

    cases = {tmp_path / "missing.pem": "cannot read the signing key",
             tmp_path / "garbage.pem": "is not an unencrypted PEM private key",
             tmp_path / "rsa.pem": "not an Ed25519 private key"}
    (tmp_path / "garbage.pem").write_text("not a key\n")
    (tmp_path / "rsa.pem").write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for bad, message in cases.items():
        monkeypatch.setenv("ATLAS_SIGNING_KEY", str(bad))
        get_settings.cache_clear()
        for args in (("keys", "show"), ("audit", "checkpoint", "--out", str(tmp_path / "cp"))):
            result = cli(*args, code=1)
            said = " ".join(result.output.split())  # the error console wraps long lines
            assert message in said and str(bad) in said and "Traceback" not in said, said
    assert not (tmp_path / "cp").exists()


# --- writing and reading -------------------------------------------------------------------------

def test_checkpoint_records_each_chain_and_is_never_rewritten(cli, client, org, sql, tmp_path):
    seed(client, org, 5)
    first = take(cli, org, tmp_path / "cp")
    second = take(cli, org, tmp_path / "cp")
    assert first != second and first.name.startswith(f"{org.slug}--{org.id}--")
    doc = json.loads(first.read_text())
    statement = doc["statement"]
    head = sql.execute("SELECT last_seq, last_hash FROM audit_chain_head WHERE chain_key = %s", (org.id,)).fetchone()
    recorded = statement["chains"]["audit_log"]
    assert (recorded["lastSeq"], recorded["headHash"], recorded["rows"], recorded["tombstones"]) == \
        (5, head["last_hash"].hex(), 5, 0)
    assert statement["org"] == {"id": org.id, "slug": org.slug} and statement["format"] == checkpoints.FORMAT
    # The newest rows are kept at least until their day plus the purge floor.
    assert recorded["keptUntil"] and recorded["keptUntil"][0][0] == 1 and recorded["purged"] == []
    with pytest.raises(FileExistsError):
        checkpoints.write_file(tmp_path / "cp", doc)
    assert json.loads(first.read_text()) == doc

    seed(client, org, 3, "2026-01-05T10:00:00Z")  # the chain grows: the database still extends both
    out = verify(cli, tmp_path / "cp", 0)
    assert out.count(": OK (") == 2 and "audit_log to 5" in out and "2 checkpoint(s) checked, 0 failed" in out


def test_edited_file_and_another_key_are_named(cli, client, org, tmp_path):
    seed(client, org, 4)
    path = take(cli, org, tmp_path / "cp")
    doc = json.loads(path.read_text())
    doc["statement"]["chains"]["audit_log"]["rows"] = 3
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    assert "(bad_signature)" in verify(cli, edited, 2)

    other = ed25519.Ed25519PrivateKey.generate()
    public = tmp_path / "other.pub.pem"
    public.write_bytes(other.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    assert "(unknown_key)" in verify(cli, path, 2, "--public-key", str(public))
    # Re-signed with another key that claims the installation's key id: the signature gives it away.
    doc = json.loads(path.read_text())
    doc["signature"] = base64.b64encode(other.sign(checkpoints.canonical(doc["statement"]))).decode()
    resigned = tmp_path / "resigned.json"
    resigned.write_text(json.dumps(doc))
    assert "(bad_signature)" in verify(cli, resigned, 2)

    (tmp_path / "broken.json").write_text("{not json")
    assert "(malformed)" in verify(cli, tmp_path / "broken.json", 2)
    # The installation's public key, kept elsewhere, verifies the genuine file.
    own = tmp_path / "own.pub.pem"
    own.write_text(cli("keys", "show", "--pem").stdout)
    assert ": OK (" in verify(cli, path, 0, "--public-key", str(own))


# --- the attacks of issue 15 (3): each passes the plain verify, each is detected against a checkpoint ------

def test_recomputed_chain_is_detected(cli, client, org, sql, tmp_path):
    seed(client, org, 6)
    path = take(cli, org, tmp_path / "cp")
    superuser(sql, ("UPDATE audit_log SET sql = 'SELECT nothing' WHERE org_id = %s AND chain_seq = 3", (org.id,)))
    assert "(broken) at row 3" in verify(cli, path, 2)  # edited without recomputing: the chain itself breaks
    recompute_from(sql, org, 3)
    plain_verify_ok(cli, org, sql)
    out = verify(cli, path, 2)
    assert "FAILED audit_log (rewritten) at row 6" in out, out


def test_newest_rows_removed_with_the_head_wound_back_is_detected(cli, client, org, sql, tmp_path):
    seed(client, org, 6)
    path = take(cli, org, tmp_path / "cp")
    superuser(sql, ("DELETE FROM audit_log WHERE org_id = %s AND chain_seq > 4", (org.id,)),
              ("UPDATE audit_chain_head SET last_seq = 4, last_hash = (SELECT row_hash FROM audit_log "
               "WHERE org_id = %(o)s AND chain_seq = 4) WHERE chain_key = %(o)s", {"o": org.id}))
    assert "OK, 4 rows checked" in plain_verify_ok(cli, org, sql)
    out = verify(cli, path, 2)
    assert "(wound_back) at row 5" in out and "rows 5..6 were removed" in out, out
    # New rows written since cannot hide it: the row at the checkpoint's position is not the recorded one.
    seed(client, org, 3)
    assert "(rewritten) at row 6" in verify(cli, path, 2)


def test_full_wipe_is_detected(cli, client, org, sql, tmp_path):
    seed(client, org, 5)
    path = take(cli, org, tmp_path / "cp")
    superuser(sql, ("DELETE FROM audit_log WHERE org_id = %s", (org.id,)),
              ("DELETE FROM audit_log_tombstone WHERE chain_key = %s", (org.id,)),
              ("DELETE FROM audit_chain_head WHERE chain_key = %s", (org.id,)))
    assert "OK, 0 rows checked" in plain_verify_ok(cli, org, sql)
    out = verify(cli, path, 2)
    assert "(wiped)" in out and "recorded 5 rows up to position 5" in out, out


def test_forged_purge_tombstone_is_detected(cli, client, org, sql, tmp_path):
    seed(client, org, 5)  # written now: no purge may remove them for the floor's days
    path = take(cli, org, tmp_path / "cp")
    forge = ("INSERT INTO audit_log_tombstone (chain_key, chain_seq, audit_id, prev_hash, row_hash) "
             "SELECT org_id, chain_seq, id, prev_hash, row_hash FROM audit_log WHERE org_id = %s AND chain_seq = 3",
             (org.id,))
    remove = ("DELETE FROM audit_log WHERE org_id = %s AND chain_seq = 3", (org.id,))
    # The tombstone chain's own triggers are left on: the forged record is chained, and its head moved,
    # exactly as a real purge's would be (one written with them off has no place in that chain, which the
    # plain verify reports: tests/audit/test_evidence_guard.py).
    superuser(sql, forge, remove, keep=("audit_log_tombstone_chain", "audit_log_tombstone_head"))
    assert "(1 purged by retention)" in plain_verify_ok(cli, org, sql)
    out = verify(cli, path, 2)
    assert "(forged_tombstone) at row 3" in out and "could not lawfully be purged before" in out, out


def test_lawful_purge_after_a_checkpoint_is_not_a_finding_but_a_backdated_one_is(cli, client, org, sql, tmp_path,
                                                                                  retention_floor):
    retention_floor(30, 0)
    admin = org.add_user("admin")
    seed(client, org, 3, "2020-01-01T00:00:00Z")
    seed(client, org, 2)
    path = take(cli, org, tmp_path / "cp")
    client.put("/api/v1/admin/audit/retention", json={"retentionDays": 30, "hardDeleteDelayDays": 0},
               headers=admin.headers)
    client.post("/api/v1/admin/audit/retention/purge", headers=admin.headers)
    assert sql.execute("SELECT count(*) AS n FROM audit_log_tombstone WHERE chain_key = %s",
                       (org.id,)).fetchone()["n"] == 3
    assert ": OK (" in verify(cli, path, 0)
    later = take(cli, org, tmp_path / "cp")
    assert json.loads(later.read_text())["statement"]["chains"]["audit_log"]["purged"] == [[1, 3]]
    # A tombstone dated a day before the checkpoint that counted the row live: a purge that never happened.
    # The attacker recomputes the tombstone chain from that record on and moves its head, so the plain
    # verify still passes.
    statements: list[tuple[str, dict]] = [("UPDATE audit_log_tombstone SET purged_at = now() - interval '2 days' "
                                           "WHERE chain_key = %(o)s AND chain_seq = 2", {"o": org.id})]
    records = sql.execute("SELECT record_seq AS r FROM audit_log_tombstone WHERE chain_key = %s AND record_seq >= "
                          "(SELECT record_seq FROM audit_log_tombstone WHERE chain_key = %s AND chain_seq = 2) "
                          "ORDER BY 1", (org.id, org.id)).fetchall()
    for r in records:
        statements += [("UPDATE audit_log_tombstone t SET record_prev = (SELECT p.record_hash FROM audit_log_tombstone p "
                        "WHERE p.chain_key = %(o)s AND p.record_seq = %(r)s - 1) WHERE chain_key = %(o)s "
                        "AND record_seq = %(r)s", {"o": org.id, "r": r["r"]}),
                       ("UPDATE audit_log_tombstone t SET record_hash = atlas_tombstone_hash(t, t.record_prev) "
                        "WHERE chain_key = %(o)s AND record_seq = %(r)s", {"o": org.id, "r": r["r"]})]
    statements.append(("UPDATE evidence_chain_head SET last_hash = (SELECT record_hash FROM audit_log_tombstone "
                       "WHERE chain_key = %(o)s ORDER BY record_seq DESC LIMIT 1) "
                       "WHERE chain = 'tombstone' AND chain_key = %(o)s", {"o": org.id}))
    superuser(sql, *statements)
    plain_verify_ok(cli, org, sql)
    out = verify(cli, path, 2)
    assert "(forged_tombstone) at row 2" in out and "before the checkpoint" in out, out
    # The later checkpoint recorded the tombstone chain's head: the recomputed chain no longer ends there.
    out = verify(cli, later, 2)
    assert "FAILED tombstone (rewritten)" in out, out


def test_admin_actions_removed_with_their_head_wound_back_are_detected(cli, client, org, sql, tmp_path):
    admin = org.add_user("admin")
    seed(client, org, 2)
    for days in (400, 500, 600):  # three policy changes: three chained admin actions
        assert client.put("/api/v1/admin/audit/retention", json={"retentionDays": days},
                          headers=admin.headers).status_code == 200
    path = take(cli, org, tmp_path / "cp")
    recorded = json.loads(path.read_text())["statement"]["chains"]["admin_action"]
    assert recorded["lastSeq"] >= 3
    superuser(sql, ("DELETE FROM admin_action_log WHERE org_id = %(o)s AND chain_seq = %(s)s", {"o": org.id,
                                                                                                "s": recorded["lastSeq"]}),
              ("UPDATE evidence_chain_head SET last_seq = %(s)s - 1, last_hash = (SELECT row_hash FROM admin_action_log "
               "WHERE org_id = %(o)s AND chain_seq = %(s)s - 1) WHERE chain = 'admin_action' AND chain_key = %(o)s",
               {"o": org.id, "s": recorded["lastSeq"]}))
    plain_verify_ok(cli, org, sql)
    out = verify(cli, path, 2)
    assert "FAILED admin_action (wound_back)" in out, out


# --- serve's background task ---------------------------------------------------------------------

class Stop(Exception):
    pass


def test_background_task_writes_every_org_and_survives_failures(settings, database_url, make_org, tmp_path, caplog):
    org = make_org()
    target = tmp_path / "not-a-directory"
    target.write_text("in the way")
    bad = Settings(database_url=database_url, data_dir=tmp_path / "data", checkpoint_dir=target,
                   checkpoint_interval=5)
    good = Settings(database_url=database_url, data_dir=tmp_path / "data", checkpoint_dir=tmp_path / "cp")
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) >= 2:
            raise Stop

    async def run(s: Settings) -> None:
        db = Database(database_url, max_size=2)
        await db.open()
        try:
            with pytest.raises(Stop):
                await checkpoints.run_periodically(db, s, lambda: signing.load_signing_key(s), sleep)
        finally:
            await db.close()

    with caplog.at_level(logging.ERROR, logger="atlas_compliance.audit.checkpoints"):
        asyncio.run(run(bad))
    assert sleeps == [5, 5]  # it failed, logged, and went on waiting for the next interval
    assert len([r for r in caplog.records if "writing checkpoints" in r.getMessage()]) == 2
    sleeps.clear()
    asyncio.run(run(good))
    assert sleeps == [3600, 3600]
    mine = sorted((tmp_path / "cp").glob(f"{org.slug}--*.json"))
    assert len(mine) == 2  # one per interval, a new file each time


# --- the API -------------------------------------------------------------------------------------

def test_api_lists_only_the_callers_checkpoints(cli, client, settings, make_org, monkeypatch):
    org, other = make_org(), make_org()
    seed(client, org, 2)
    seed(client, other, 1)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(settings.data_dir))  # the app's own data dir and key
    get_settings.cache_clear()
    for o in (org, other, org):
        take(cli, o, settings.checkpoints_path)
    admin = org.add_user("admin")
    body = client.get(LIST, headers=admin.headers).json()
    assert len(body["checkpoints"]) == 2
    newest = body["checkpoints"][0]
    assert newest["createdAt"] > body["checkpoints"][1]["createdAt"]
    assert newest["signatureValid"] is True and newest["chains"]["audit_log"]["lastSeq"] == 2
    assert newest["file"].startswith(f"{org.slug}--{org.id}--")
    assert len(client.get(LIST + "?limit=1", headers=admin.headers).json()["checkpoints"]) == 1
    theirs = client.get(LIST, headers=other.add_user("owner").headers).json()["checkpoints"]
    assert len(theirs) == 1 and theirs[0]["chains"]["audit_log"]["lastSeq"] == 1
    for bad in ("0", "1001", "x"):
        assert_error(client.get(f"{LIST}?limit={bad}", headers=admin.headers), 422)
    assert_error(client.get(LIST, headers=org.add_user("member").headers), 403)
    assert_error(client.get(LIST, headers={"Authorization": f"Bearer {org.ingest_key()}"}), 403)
    assert_error(client.get(LIST), 401)
    # A planted file that names this org in its file name but another org inside is not listed.
    planted = next(settings.checkpoints_path.glob(f"{other.slug}--*.json"))
    (settings.checkpoints_path / f"{org.slug}--{org.id}--29990101T000000000000Z.json").write_bytes(
        planted.read_bytes())
    assert len(client.get(LIST, headers=admin.headers).json()["checkpoints"]) == 2


def _serve(database_url: str, tmp_path: Path, checkpoint_dir: Path, name: str):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "ATLAS_LOG_LEVEL": "WARNING",
           "ATLAS_DATA_DIR": str(tmp_path / "data"), "ATLAS_CHECKPOINT_DIR": str(checkpoint_dir),
           "ATLAS_CHECKPOINT_INTERVAL": "1"}
    env.pop("ATLAS_SIGNING_KEY", None)
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed by the caller through the process
    proc = subprocess.Popen([sys.executable, "-m", "atlas_compliance.cli.main", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, 60)
    return proc, base, log


def test_serve_writes_checkpoints_every_interval_and_keeps_serving_when_it_cannot(database_url, make_org, tmp_path):
    org = make_org()
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way")
    proc, base, log = _serve(database_url, tmp_path, blocked, "blocked")
    try:
        deadline = time.monotonic() + 60
        while b"writing checkpoints" not in (tmp_path / "blocked.log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"writing checkpoints" in (tmp_path / "blocked.log").read_bytes()
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()

    target = tmp_path / "cp"
    proc, base, log = _serve(database_url, tmp_path, target, "ok")
    try:
        deadline = time.monotonic() + 60
        while len(list(target.glob(f"{org.slug}--*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        files = list(target.glob(f"{org.slug}--*.json"))
        assert len(files) >= 2, (tmp_path / "ok.log").read_text()
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    key = signing.load_signing_key(Settings(data_dir=tmp_path / "data"), create=False).verifying()
    assert all(checkpoints.read_checkpoint(f, key).statement is not None for f in files)


# --- another chain in the registry (the shape the tombstone and admin-action chains take) ---------------

TEST_CHAIN = checkpoints.AppendOnlyChain(
    name="test_actions",
    head_sql="SELECT last_seq, last_hash FROM test_cp_head WHERE chain_key = %(key)s",
    rows_sql="SELECT seq, prev_hash, row_hash, sha256(convert_to(coalesce(encode(prev_hash, 'hex'), 'genesis') "
             "|| '|' || body, 'UTF8')) AS calc FROM test_cp_actions WHERE org_id = %(key)s AND seq <= %(upto)s "
             "ORDER BY seq")

RECHAIN = """
WITH RECURSIVE c AS (
    SELECT seq, sha256(convert_to('genesis|' || body, 'UTF8')) AS h, NULL::bytea AS p
    FROM test_cp_actions WHERE org_id = %(o)s AND seq = 1
    UNION ALL
    SELECT a.seq, sha256(convert_to(encode(c.h, 'hex') || '|' || a.body, 'UTF8')), c.h
    FROM test_cp_actions a JOIN c ON a.seq = c.seq + 1 WHERE a.org_id = %(o)s
)
UPDATE test_cp_actions t SET row_hash = c.h, prev_hash = c.p FROM c WHERE t.org_id = %(o)s AND t.seq = c.seq;
"""


@pytest.fixture()
def actions_chain(sql, monkeypatch):
    sql.execute("CREATE TABLE IF NOT EXISTS test_cp_actions (org_id text, seq bigint, body text, prev_hash bytea, "
                "row_hash bytea)")
    sql.execute("CREATE TABLE IF NOT EXISTS test_cp_head (chain_key text PRIMARY KEY, last_seq bigint, "
                "last_hash bytea)")
    monkeypatch.setattr(checkpoints, "chains", lambda: [checkpoints.AuditLogChain(), TEST_CHAIN])

    def build(org, n: int) -> None:
        for seq in range(1, n + 1):
            sql.execute("INSERT INTO test_cp_actions (org_id, seq, body) VALUES (%s, %s, %s)",
                        (org.id, seq, f"action {seq}"))
        rehead(org)

    def rehead(org) -> None:
        sql.execute(RECHAIN, {"o": org.id})
        sql.execute("INSERT INTO test_cp_head SELECT org_id, seq, row_hash FROM test_cp_actions WHERE org_id = %(o)s "
                    "AND seq = (SELECT max(seq) FROM test_cp_actions WHERE org_id = %(o)s) "
                    "ON CONFLICT (chain_key) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash",
                    {"o": org.id})

    yield build, rehead
    sql.execute("DROP TABLE test_cp_actions, test_cp_head")  # leave the migrated schema as it was


def test_a_registered_append_only_chain_is_recorded_and_each_attack_named(cli, client, org, sql, tmp_path,
                                                                          actions_chain):
    build, rehead = actions_chain
    seed(client, org, 2)
    build(org, 5)
    path = take(cli, org, tmp_path / "cp")
    recorded = json.loads(path.read_text())["statement"]["chains"]
    assert set(recorded) == {"audit_log", "test_actions"} and recorded["test_actions"]["lastSeq"] == 5
    assert "test_actions to 5" in verify(cli, path, 0)
    build_more = "INSERT INTO test_cp_actions (org_id, seq, body) VALUES (%s, 6, 'action 6')"
    sql.execute(build_more, (org.id,))
    rehead(org)
    assert ": OK (" in verify(cli, path, 0)  # a longer chain extends the checkpoint

    sql.execute("UPDATE test_cp_actions SET body = 'edited' WHERE org_id = %s AND seq = 2", (org.id,))
    assert "FAILED test_actions (broken) at row 2" in verify(cli, path, 2)
    rehead(org)  # every later hash and the head recomputed
    assert "FAILED test_actions (rewritten) at row 5" in verify(cli, path, 2)
    sql.execute("DELETE FROM test_cp_actions WHERE org_id = %s AND seq > 3", (org.id,))
    rehead(org)
    assert "FAILED test_actions (wound_back) at row 4" in verify(cli, path, 2)
    sql.execute("DELETE FROM test_cp_actions WHERE org_id = %s", (org.id,))
    sql.execute("DELETE FROM test_cp_head WHERE chain_key = %s", (org.id,))
    assert "FAILED test_actions (wiped)" in verify(cli, path, 2)


# --- concurrency and size ------------------------------------------------------------------------

def test_processes_starting_together_share_one_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    settings = Settings(data_dir=tmp_path / "fresh")
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: signing.load_signing_key(settings), range(16)))
    assert len({k.key_id for k in keys}) == 1 and sum(k.generated for k in keys) == 1
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["signing-key.pem"]  # no temporary file left


def test_checkpoints_taken_during_ingest_record_whole_batches_and_all_verify(cli, client, org, tmp_path):
    import threading

    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    stop = threading.Event()
    sent = []

    def ingest() -> None:
        while not stop.is_set():
            events = [{"eventId": uuid.uuid4().hex, "sql": "SELECT 1", "tablesAccessed": ["orders"]}
                      for _ in range(50)]
            sent.append(client.post(URL, json=events, headers=key).json()["inserted"])

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        paths = [take(cli, org, tmp_path / "cp") for _ in range(6)]
    finally:
        stop.set()
        writer.join()
    for path in paths:
        c = json.loads(path.read_text())["statement"]["chains"]["audit_log"]
        assert c["rows"] + c["tombstones"] == c["lastSeq"] and c["lastSeq"] % 50 == 0  # whole batches only
    assert "6 checkpoint(s) checked, 0 failed" in verify(cli, tmp_path / "cp", 0)
    assert sum(sent) >= json.loads(paths[-1].read_text())["statement"]["chains"]["audit_log"]["lastSeq"]


def test_huge_or_foreign_files_are_named_not_loaded(cli, client, org, make_org, tmp_path):
    seed(client, org, 2)
    other = make_org()
    seed(client, other, 1)
    folder = tmp_path / "cp"
    take(cli, org, folder)
    take(cli, other, folder)
    (folder / "huge.json").write_bytes(b'{"statement": "' + b"x" * (checkpoints.MAX_FILE_BYTES + 10) + b'"}')
    out = verify(cli, folder, 2)
    assert "huge.json: FAILED (malformed)" in out and "larger than 4 MB" in out
    assert out.count(": OK (") == 2
    (folder / "huge.json").unlink()
    out = verify(cli, folder, 0, "--org", other.slug)  # only that org's checkpoint is checked
    assert "1 checkpoint(s) checked, 0 failed" in out and other.slug in out and org.slug not in out
