"""Signed checkpoints: the state of an organization's hash chains, signed and kept outside the database.

A checkpoint is a JSON file ``{"statement": {...}, "signature": "<base64>"}``. The signature is the
installation key's Ed25519 signature of the statement's canonical JSON (keys sorted, no spaces, UTF-8).
The statement records, per chain, the last sequence number and head hash, how many rows are live and how
many were removed by the retention purge (tombstones) up to that number, and for ``audit_log`` which
positions were already purged and until when the newest rows cannot lawfully be purged.

Verifying a checkpoint proves that today's database *extends* it: the chain reaches at least the recorded
position, the row there still hashes to the recorded head, the chain up to it verifies, and every purge
tombstone at or below it was either recorded by the checkpoint or is old enough to have been purged since.
Someone who can rewrite the database can recompute every hash, but not a signed file kept elsewhere.

Chains are listed by :func:`chains`: one object per chain, which records its part of a statement and checks
it. Adding a chain (e.g. one over ``admin_action_log``) is one more entry there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import glob
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from psycopg import AsyncConnection

from ..config import Settings
from . import chain as chain_mod
from . import repository as repo
from .retention import MIN_RETENTION_DAYS
from .signing import SigningKey, VerifyingKey

log = logging.getLogger(__name__)

FORMAT = "atlas-compliance/checkpoint/v1"
MAX_FILE_BYTES = 4 * 1024 * 1024
# A purge transaction that started before a checkpoint's snapshot may commit after it; its tombstones carry
# the purge's start time. Tombstones are judged "purged before the checkpoint" only beyond this margin.
CLOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class Finding:
    """One way in which the database does not extend a checkpoint."""

    chain: str
    kind: str  # malformed | bad_signature | unknown_key | org_missing | wiped | wound_back | rewritten | broken | forged_tombstone
    seq: int | None
    detail: str


class CheckpointChain(Protocol):
    """A hash chain that checkpoints cover. ``record`` and ``check`` run in one read-only snapshot."""

    name: str

    async def record(self, conn: AsyncConnection, org_id: str, at: datetime, settings: Settings) -> dict: ...

    async def check(self, conn: AsyncConnection, org_id: str, recorded: dict, at: datetime,
                    cache: dict) -> list[Finding]: ...


def canonical(statement: dict) -> bytes:
    """The bytes that are signed: sorted keys, no insignificant spaces, UTF-8. Values are ints, strings,
    lists and objects only (no floats), so the form is unambiguous."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def purge_floor_days(settings: Settings) -> int:
    """No purge may leave a tombstone for a row younger than this many days, whatever an org's policy says.

    A row is soft-deleted once older than the policy (at least the installation floor ``min_retention_days``
    when the settings have one, else the smallest policy an org may set) and hard-deleted, leaving its
    tombstone, once soft-deleted longer than the delay (at least ``min_hard_delete_delay_days`` when set)."""
    retention = int(getattr(settings, "min_retention_days", None) or MIN_RETENTION_DAYS)
    return retention + int(getattr(settings, "min_hard_delete_delay_days", None) or 0)


# --- the audit_log chain -------------------------------------------------------------------------

# Positions (chain_seq) already removed by the retention purge, as [first, last] ranges.
PURGED_RANGES_SQL = """
SELECT min(chain_seq) AS lo, max(chain_seq) AS hi
FROM (SELECT chain_seq, chain_seq - row_number() OVER (ORDER BY chain_seq) AS grp
      FROM audit_log_tombstone WHERE chain_key = %(key)s AND chain_seq <= %(last)s) t
GROUP BY grp ORDER BY lo
"""

# For the newest live rows (after the last one already old enough to purge): from which position on every
# live row is kept until at least a given time (its day + the purge floor). A suffix minimum over the
# chain order, so the list has at most one entry per day in the floor.
KEPT_UNTIL_SQL = """
WITH recent AS (
    SELECT chain_seq,
           (date_trunc('day', "timestamp" AT TIME ZONE 'UTC') + make_interval(days => %(floor)s)) AT TIME ZONE 'UTC'
               AS until
    FROM audit_log
    WHERE coalesce(org_id, '') = %(key)s AND chain_seq <= %(last)s
      -- Walks the chain index backwards from the head to the newest row already old enough to purge:
      -- only the recent rows are read when rows arrive roughly in time order.
      AND chain_seq > coalesce((SELECT chain_seq FROM audit_log
                                WHERE coalesce(org_id, '') = %(key)s AND chain_seq <= %(last)s
                                  AND "timestamp" < %(cutoff)s
                                ORDER BY coalesce(org_id, ''), chain_seq DESC LIMIT 1), 0)
), suffix AS (
    SELECT chain_seq, min(until) OVER (ORDER BY chain_seq DESC) AS until FROM recent
)
SELECT min(chain_seq) AS from_seq, until FROM suffix GROUP BY until ORDER BY from_seq
"""

FORGED_TOMBSTONE_SQL = """
WITH kept AS (
    SELECT (e ->> 0)::bigint AS from_seq,
           lead((e ->> 0)::bigint) OVER (ORDER BY (e ->> 0)::bigint) AS next_seq,
           (e ->> 1)::timestamptz AS until
    FROM jsonb_array_elements(%(kept)s::jsonb) e
), purged AS (
    SELECT (e ->> 0)::bigint AS lo, (e ->> 1)::bigint AS hi FROM jsonb_array_elements(%(purged)s::jsonb) e
)
SELECT t.chain_seq AS seq, t.audit_id::text AS id, t.purged_at, k.until, count(*) OVER () AS total
FROM audit_log_tombstone t
LEFT JOIN kept k ON t.chain_seq >= k.from_seq AND (k.next_seq IS NULL OR t.chain_seq < k.next_seq)
WHERE t.chain_key = %(key)s AND t.chain_seq <= %(last)s
  AND NOT EXISTS (SELECT 1 FROM purged p WHERE t.chain_seq BETWEEN p.lo AND p.hi)
  AND (t.purged_at < %(before)s OR t.purged_at < k.until)
ORDER BY t.chain_seq
LIMIT 1
"""

HASH_AT_SQL = """
SELECT row_hash, atlas_audit_hash(a, a.prev_hash) AS calc, false AS purged
FROM audit_log a WHERE coalesce(a.org_id, '') = %(key)s AND a.chain_seq = %(seq)s
UNION ALL
SELECT row_hash, row_hash, true FROM audit_log_tombstone WHERE chain_key = %(key)s AND chain_seq = %(seq)s
"""


async def _one(conn: AsyncConnection, sql: str, params: dict) -> dict | None:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def _all(conn: AsyncConnection, sql: str, params: dict) -> list[dict]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()


class AuditLogChain:
    """The per-org chain of ``audit_log`` rows, with purge tombstones standing in for removed rows."""

    name = "audit_log"

    async def record(self, conn: AsyncConnection, org_id: str, at: datetime, settings: Settings) -> dict:
        key = org_id
        head = await repo.chain_head(conn, key)
        last = int(head["last_seq"]) if head else 0
        live, gone = await repo.count_chain_rows(conn, key, 0, last) if last else (0, 0)
        floor = purge_floor_days(settings)
        purged = [[int(r["lo"]), int(r["hi"])] for r in await _all(conn, PURGED_RANGES_SQL, {"key": key, "last": last})]
        cutoff = datetime.combine((at - timedelta(days=floor)).astimezone(UTC).date(), datetime.min.time(), UTC) \
            + timedelta(days=1)
        kept = [[int(r["from_seq"]), _iso(r["until"])] for r in await _all(
            conn, KEPT_UNTIL_SQL, {"key": key, "last": last, "floor": floor, "cutoff": cutoff})] if last else []
        return {"lastSeq": last, "headHash": head["last_hash"].hex() if head and head["last_hash"] else None,
                "rows": live, "tombstones": gone, "purgeFloorDays": floor, "purged": purged, "keptUntil": kept}

    async def check(self, conn: AsyncConnection, org_id: str, recorded: dict, at: datetime,
                    cache: dict) -> list[Finding]:
        key, name = org_id, self.name
        last = int(recorded["lastSeq"])
        if last == 0:
            return []
        head = await repo.chain_head(conn, key)
        head_seq = int(head["last_seq"]) if head else 0
        when = _iso(at)
        if head_seq < last:
            live, gone = await repo.count_chain_rows(conn, key, 0, max(last, head_seq))
            if head is None and live + gone == 0:
                return [Finding(name, "wiped", None,
                                f"the chain is gone (no rows, no head) but the checkpoint of {when} recorded "
                                f"{recorded['rows']} rows up to position {last}")]
            return [Finding(name, "wound_back", head_seq + 1,
                            f"the chain ends at position {head_seq} but the checkpoint of {when} recorded "
                            f"{last}: rows {head_seq + 1}..{last} were removed and the head wound back")]
        at_row = await _one(conn, HASH_AT_SQL, {"key": key, "seq": last})
        if at_row is None:
            return [Finding(name, "wound_back", last,
                            f"position {last}, the head of the checkpoint of {when}, is missing")]
        if at_row["row_hash"] is None or at_row["row_hash"].hex() != recorded["headHash"]:
            return [Finding(name, "rewritten", last,
                            f"row {last} no longer has the hash the checkpoint of {when} recorded: the chain "
                            f"was rewritten at or before position {last} and its hashes recomputed")]
        findings: list[Finding] = []
        if "verify" not in cache:
            cache["verify"] = await chain_mod.verify_chain(conn, key)
        result: chain_mod.VerifyResult = cache["verify"]
        brk = result.first_break
        if brk is not None and (brk.seq is None or brk.seq <= last):
            findings.append(Finding(name, "broken", brk.seq,
                                    f"the chain up to the checkpoint's position {last} does not verify: "
                                    f"{brk.kind} at row {brk.seq}: {brk.detail}"))
        forged = await _one(conn, FORGED_TOMBSTONE_SQL, {
            "key": key, "last": last, "before": at - CLOCK_MARGIN,
            "purged": json.dumps(recorded.get("purged") or []), "kept": json.dumps(recorded.get("keptUntil") or [])})
        if forged is not None:
            seq, total = int(forged["seq"]), int(forged["total"])
            if forged["until"] is not None and forged["purged_at"] < forged["until"]:
                why = (f"it could not lawfully be purged before {_iso(forged['until'])} "
                       f"(its day plus the {recorded.get('purgeFloorDays')}-day floor)")
            else:
                why = f"the tombstone says it was purged at {_iso(forged['purged_at'])}, before the checkpoint"
            more = f" ({total} such tombstones)" if total > 1 else ""
            findings.append(Finding(name, "forged_tombstone", seq,
                                    f"row {seq} was live in the checkpoint of {when} but is now shown as purged: "
                                    f"{why}{more}"))
        return findings


@dataclass(frozen=True)
class AppendOnlyChain:
    """A per-org hash chain over an append-only table that nothing purges (e.g. admin actions).

    ``head_sql`` answers ``last_seq, last_hash`` for ``%(key)s``; ``rows_sql`` answers every row of the chain
    with ``%(upto)s`` as its last position, in position order, as ``seq, prev_hash, row_hash, calc`` where
    ``calc`` is the hash recomputed from the row's content and ``prev_hash``. The chain up to a checkpoint
    verifies when positions run 1, 2, 3… without a gap, every row's ``calc`` equals its ``row_hash``, and every
    ``prev_hash`` is the previous row's ``row_hash`` (NULL for the first).
    """

    name: str
    head_sql: str
    rows_sql: str

    async def record(self, conn: AsyncConnection, org_id: str, at: datetime, settings: Settings) -> dict:
        head = await _one(conn, self.head_sql, {"key": org_id})
        last = int(head["last_seq"]) if head else 0
        return {"lastSeq": last, "headHash": head["last_hash"].hex() if head and head["last_hash"] else None,
                "rows": last, "tombstones": 0}

    async def check(self, conn: AsyncConnection, org_id: str, recorded: dict, at: datetime,
                    cache: dict) -> list[Finding]:
        name, last, when = self.name, int(recorded["lastSeq"]), _iso(at)
        if last == 0:
            return []
        head = await _one(conn, self.head_sql, {"key": org_id})
        head_seq = int(head["last_seq"]) if head else 0
        rows = await _all(conn, self.rows_sql, {"key": org_id, "upto": last})
        if head_seq < last:
            if head is None and not rows:
                return [Finding(name, "wiped", None, f"the chain is gone (no rows, no head) but the checkpoint of "
                                                     f"{when} recorded {recorded.get('rows')} rows up to position {last}")]
            return [Finding(name, "wound_back", head_seq + 1,
                            f"the chain ends at position {head_seq} but the checkpoint of {when} recorded {last}")]
        at_last = rows[-1] if rows and int(rows[-1]["seq"]) == last else None
        if at_last is None:
            return [Finding(name, "wound_back", last, f"position {last}, the head of the checkpoint of {when}, "
                                                      "is missing")]
        if at_last["row_hash"] is None or at_last["row_hash"].hex() != recorded["headHash"]:
            return [Finding(name, "rewritten", last,
                            f"row {last} no longer has the hash the checkpoint of {when} recorded: the chain was "
                            f"rewritten at or before position {last} and its hashes recomputed")]
        previous = None
        for expected, row in enumerate(rows, start=1):
            seq = int(row["seq"])
            if seq != expected:
                return [Finding(name, "broken", expected, f"rows {expected}..{seq - 1} are missing")]
            if row["calc"] != row["row_hash"]:
                return [Finding(name, "broken", seq, f"row {seq} no longer matches its hash")]
            if row["prev_hash"] != previous:
                return [Finding(name, "broken", seq, f"row {seq} does not link to the row before it")]
            previous = row["row_hash"]
        return []


def chains() -> list[CheckpointChain]:
    """Every chain a checkpoint records, in order. Add a chain here (an :class:`AppendOnlyChain` with its
    two queries, or any object with ``name``, ``record`` and ``check``); checkpoints written before it was
    added simply do not mention it, and checking them is unchanged."""
    return [AuditLogChain(), *(_record_chain(name) for name in repo.RECORD_CHAINS)]


def _record_chain(name: str) -> AppendOnlyChain:
    """The org's chain of purge tombstones or of admin actions (both append-only, never purged)."""
    # Every identifier comes from the fixed RECORD_CHAINS table, never from input.
    table, key, seq, prev, row_hash, fn, _ = repo.RECORD_CHAINS[name]
    head = f"SELECT last_seq, last_hash FROM evidence_chain_head WHERE chain = '{name}' AND chain_key = %(key)s"  # noqa: S608
    rows = (f"SELECT {seq} AS seq, {prev} AS prev_hash, {row_hash} AS row_hash, {fn}(t, {prev}) AS calc "  # noqa: S608
            f"FROM {table} t WHERE {key} = %(key)s AND {seq} <= %(upto)s ORDER BY {seq}")
    return AppendOnlyChain(name=name, head_sql=head, rows_sql=rows)


# --- writing -------------------------------------------------------------------------------------

async def _snapshot(conn: AsyncConnection) -> datetime:
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    cur = await conn.execute("SELECT now() AS at")
    row = await cur.fetchone()
    return row["at"]


async def build_statement(conn: AsyncConnection, org: dict, key: SigningKey, settings: Settings) -> dict:
    """The statement for one org; ``conn`` must be at the start of a transaction (made a snapshot here)."""
    at = await _snapshot(conn)
    recorded = {c.name: await c.record(conn, org["id"], at, settings) for c in chains()}
    return {"format": FORMAT, "org": {"id": org["id"], "slug": org["slug"]}, "createdAt": _iso(at),
            "keyId": key.key_id, "chains": recorded}


def sign(statement: dict, key: SigningKey) -> dict:
    return {"statement": statement, "signature": base64.b64encode(key.sign(canonical(statement))).decode("ascii")}


def file_name(statement: dict) -> str:
    stamp = _parse_time(statement["createdAt"]).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{statement['org']['slug']}--{statement['org']['id']}--{stamp}.json"


def write_file(directory: Path, signed: dict) -> Path:
    """Create the checkpoint file exclusively: an existing file is never rewritten."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(signed["statement"])
    data = json.dumps(signed, indent=2, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


async def all_orgs(conn: AsyncConnection) -> list[dict]:
    cur = await conn.execute("SELECT id, slug FROM organization ORDER BY slug, id")
    return [dict(r) for r in await cur.fetchall()]


async def write_checkpoints(db: Any, settings: Settings, key: SigningKey, directory: Path,
                            orgs: Iterable[dict] | None = None) -> list[Path]:
    """One checkpoint per org (every org by default), each from its own consistent snapshot."""
    if orgs is None:
        async with db.transaction() as conn:
            orgs = await all_orgs(conn)
    written = []
    for org in orgs:
        async with db.transaction() as conn:
            statement = await build_statement(conn, org, key, settings)
        written.append(await asyncio.to_thread(write_file, directory, sign(statement, key)))
    return written


async def run_periodically(db: Any, settings: Settings, load_key: Callable[[], SigningKey],
                           sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
    """`serve`'s background task: checkpoints for every org now and every ``checkpoint_interval`` seconds.

    A failure (database down, directory not writable, key unreadable) is logged and retried at the next
    interval; it never ends the task nor reaches a request."""
    directory = settings.checkpoints_path
    while True:
        try:
            key = await asyncio.to_thread(load_key)
            paths = await write_checkpoints(db, settings, key, directory)
            log.info("wrote %d checkpoint(s) to %s", len(paths), directory)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("writing checkpoints to %s failed: %s: %s", directory, type(exc).__name__, exc,
                      extra={"event": "checkpoint_failed"})
        await sleep(settings.checkpoint_interval)


# --- reading and verifying -----------------------------------------------------------------------

@dataclass
class Checkpoint:
    path: Path
    statement: dict | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def org_id(self) -> str | None:
        return self.statement["org"]["id"] if self.statement else None

    @property
    def ok(self) -> bool:
        return not self.findings


def checkpoint_files(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(p for p in target.rglob("*.json") if p.is_file())
    return [target]


def read_checkpoint(path: Path, key: VerifyingKey) -> Checkpoint:
    """Parse one file and check its signature; problems become findings (nothing raises)."""
    cp = Checkpoint(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        doc = json.loads(data)
        statement, signature = doc["statement"], base64.b64decode(doc["signature"], validate=True)
        if statement.get("format") != FORMAT:
            raise ValueError(f"unknown format {statement.get('format')!r}")
        _parse_time(statement["createdAt"])
        str(statement["org"]["id"])
        if not isinstance(statement["chains"], dict):
            raise ValueError("'chains' is not an object")
    except OSError as exc:
        cp.findings.append(Finding("-", "malformed", None, f"cannot read the file: {exc.strerror or exc}"))
        return cp
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        cp.findings.append(Finding("-", "malformed", None, f"not a checkpoint file: {type(exc).__name__}: {exc}"))
        return cp
    if statement.get("keyId") != key.key_id:
        cp.findings.append(Finding("-", "unknown_key", None,
                                   f"signed by key {statement.get('keyId')!r}, not by this key ({key.key_id})"))
        return cp
    if not key.verify(signature, canonical(statement)):
        cp.findings.append(Finding("-", "bad_signature", None,
                                   "the signature does not match the statement: the file was edited "
                                   "or not signed by this key"))
        return cp
    cp.statement = statement
    return cp


async def check_org(conn: AsyncConnection, org_id: str, checkpoints: list[Checkpoint]) -> None:
    """Check signed checkpoints of one org against the database (one read-only snapshot)."""
    await _snapshot(conn)
    cur = await conn.execute("SELECT slug FROM organization WHERE id = %s", (org_id,))
    exists = await cur.fetchone() is not None
    registry = {c.name: c for c in chains()}
    cache: dict = {}
    for cp in checkpoints:
        assert cp.statement is not None
        at = _parse_time(cp.statement["createdAt"])
        if not exists:
            cp.findings.append(Finding("-", "org_missing", None,
                                       f"organization {org_id} is no longer in the database"))
            continue
        for name, recorded in cp.statement["chains"].items():
            chain = registry.get(name)
            if chain is None:
                cp.findings.append(Finding(name, "malformed", None, f"unknown chain {name!r}"))
                continue
            try:
                cp.findings.extend(await chain.check(conn, org_id, recorded, at, cache.setdefault(name, {})))
            except (KeyError, TypeError, ValueError) as exc:
                cp.findings.append(Finding(name, "malformed", None, f"the recorded chain is unreadable: {exc}"))


def list_for_org(directory: Path, org_id: str, key: VerifyingKey | None, limit: int) -> list[dict]:
    """The org's checkpoint files in ``directory``, newest first (by the time in the statement)."""
    pattern = str(directory / f"*--{glob.escape(org_id)}--*.json")
    # Newest first by the UTC time in the file name, so that only ``limit`` files (plus a few unreadable
    # ones) are opened however many a year of hourly checkpoints left there.
    names = sorted(glob.glob(pattern), key=lambda n: Path(n).name.rsplit("--", 1)[-1], reverse=True)
    items: list[dict] = []
    for name in names:
        if len(items) >= limit:
            break
        path = Path(name)
        try:
            doc = json.loads(path.read_bytes()[:MAX_FILE_BYTES])
            statement = doc["statement"]
            if statement["org"]["id"] != org_id:
                continue
            valid = None
            if key is not None:
                valid = statement.get("keyId") == key.key_id and key.verify(
                    base64.b64decode(doc["signature"], validate=True), canonical(statement))
            items.append({
                "file": path.name, "createdAt": statement["createdAt"], "keyId": statement.get("keyId"),
                "signatureValid": valid, "signature": doc["signature"],
                "chains": {n: {k: c.get(k) for k in ("lastSeq", "headHash", "rows", "tombstones")}
                           for n, c in statement["chains"].items()}})
        except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            log.warning("skipping unreadable checkpoint file %s", path)
    items.sort(key=lambda i: i["createdAt"], reverse=True)
    return items[:limit]
