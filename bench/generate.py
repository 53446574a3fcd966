"""Generate the DESIGN §7 dataset into the bench database with COPY, through the real schema.

    python -m bench.generate [--scale 0.05] [--server-url URL] [--db-name atlas_bench] [--regenerate] [--legacy]

``--legacy`` writes every row in Atlas's legacy shape (a flat ``columns_accessed``, no
``columns_by_table``) into its own database, ``atlas_bench_legacy`` unless ``--db-name`` says otherwise.

The audit_log triggers (hash chain per row, rollups per statement) run during COPY: that cost is part
of loading, so rows are sent in statements of ``batch_rows`` (50,000) rows. The dataset is kept between
runs: when the bench organizations already hold the expected number of rows nothing is generated.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from atlas_compliance.db import migrate

from .catalog import NO_TABLE_SQL, PII_COLUMNS, Table, build_tables, pick_query, select_sql, zipf_cum_weights
from .common import (
    DEFAULT_DB_NAME,
    DEFAULT_SERVER_URL,
    EXPORT_ORG_SLUG,
    LEGACY_DB_NAME,
    MAIN_ORG_PREFIX,
    DatasetParams,
    connect,
    ensure_database,
)

AUDIT_COLUMNS = ("timestamp", "user_id", "user_label", "auth_mode", "sql", "duration_ms", "row_count", "success",
                 "error", "source_id", "source_type", "target_host", "tables_accessed", "columns_accessed",
                 "columns_by_table", "org_id", "deleted_at", "actor_kind")
COPY_AUDIT = "COPY audit_log (" + ", ".join(f'"{c}"' for c in AUDIT_COLUMNS) + ") FROM STDIN"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"
ERRORS = ("permission denied for table {t}", "canceling statement due to statement timeout",
          "relation \"{t}\" does not exist", "column \"x\" does not exist")


def _text(value: str | None) -> str:
    return NULL if value is None else value.translate(_ESCAPES)


def _json(value) -> str:
    return NULL if value is None else orjson.dumps(value).decode().translate(_ESCAPES)


@dataclass
class User:
    id: str
    email: str
    role: str
    pool: list[Table] = field(default_factory=list)  # the tables this user works with, most used first
    pool_cw: list[float] = field(default_factory=list)


@dataclass
class Org:
    id: str
    slug: str
    share: float
    users: list[User] = field(default_factory=list)
    users_cw: list[float] = field(default_factory=list)  # Zipf activity over users


def org_shares(params: DatasetParams) -> list[float]:
    """The largest org holds ``largest_share``; the others split the rest geometrically (ratio 0.85)."""
    rest = [0.85 ** i for i in range(params.orgs - 1)]
    total = sum(rest)
    return [params.largest_share] + [(1 - params.largest_share) * r / total for r in rest]


def build_orgs(params: DatasetParams, tables: list[Table], rng: random.Random) -> list[Org]:
    shares = org_shares(params)
    counts = [max(3, round(params.users * s)) for s in shares]
    counts[0] = max(3, params.users - sum(counts[1:]))
    table_cw = zipf_cum_weights(len(tables), 1.1)
    orgs = []
    for i, (share, n_users) in enumerate(zip(shares, counts, strict=True)):
        slug = f"{MAIN_ORG_PREFIX}{i + 1:02d}"
        org = Org(id=str(uuid.UUID(int=rng.getrandbits(128))), slug=slug, share=share)
        for j in range(n_users):
            role = "owner" if j == 0 else rng.choices(("owner", "admin", "member"), cum_weights=(5, 15, 100))[0]
            user = User(id=str(uuid.UUID(int=rng.getrandbits(128))), email=f"user{j:04d}@{slug}.example",
                        role=role)
            size = min(len(tables), max(3, int(rng.paretovariate(1.3) * 6)), 80)
            chosen: dict[str, Table] = {}
            while len(chosen) < size:
                t = rng.choices(tables, cum_weights=table_cw)[0]
                chosen.setdefault(t.name, t)
            user.pool = list(chosen.values())
            user.pool_cw = zipf_cum_weights(len(user.pool), 1.0)
            org.users.append(user)
        rng.shuffle(org.users)
        org.users_cw = zipf_cum_weights(len(org.users), 1.0)
        orgs.append(org)
    return orgs


def _copy_lines(cur, sql: str, lines: list[str]) -> None:
    with cur.copy(sql) as copy:
        copy.write("".join(lines).encode())


def load_people(conn, orgs: list[Org], params: DatasetParams, rng: random.Random, now: datetime) -> int:
    """Organizations, users, memberships, login sessions and PII classifications."""
    start = now - timedelta(days=params.days)
    created = (start - timedelta(days=30)).isoformat()
    with conn.cursor() as cur:
        _copy_lines(cur, 'COPY organization (id, name, slug, "createdAt") FROM STDIN',
                    [f"{o.id}\tBench {o.slug}\t{o.slug}\t{created}\n" for o in orgs])
        _copy_lines(cur, 'COPY "user" (id, name, email, "createdAt") FROM STDIN',
                    [f"{u.id}\t{u.email.split('@')[0]}\t{u.email}\t{created}\n" for o in orgs for u in o.users])
        _copy_lines(cur, 'COPY member (id, "organizationId", "userId", role, "createdAt") FROM STDIN',
                    [f"{uuid.uuid4()}\t{o.id}\t{u.id}\t{u.role}\t{created}\n" for o in orgs for u in o.users])
        sessions = []
        span = params.days * 86400
        for o in orgs:
            for u in o.users:
                for _ in range(1 + int(rng.expovariate(1 / 15))):
                    at = start + timedelta(seconds=rng.random() * span)
                    token = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
                    revoked = (at + timedelta(hours=rng.randint(1, 48))).isoformat() if rng.random() < 0.6 else NULL
                    sessions.append(f"{uuid.uuid4()}\t{u.id}\t{token}\t{(at + timedelta(days=7)).isoformat()}\t"
                                    f"{at.isoformat()}\t{at.isoformat()}\t{o.id}\t{revoked}\n")
        _copy_lines(cur, 'COPY session (id, "userId", token, "expiresAt", "createdAt", "updatedAt", '
                    '"activeOrganizationId", revoked_at) FROM STDIN', sessions)
        pii = []
        for o in orgs:
            used = {t.name: t for u in o.users for t in u.pool[:5]}
            for t in sorted(used.values(), key=lambda t: t.name)[:40]:
                for col in t.columns:
                    if col in PII_COLUMNS and len(pii) < 10_000:
                        dismissed = "t" if rng.random() < 0.1 else "f"
                        pii.append(f"{o.id}\t{t.name}\t{col}\t{PII_COLUMNS[col]}\thigh\t{dismissed}\n")
        _copy_lines(cur, "COPY pii_column_classifications (org_id, table_name, column_name, category, confidence, "
                    "dismissed) FROM STDIN", pii)
    return len(sessions)


def audit_line(org: Org, ts: float, rng: random.Random, params: DatasetParams, tables: list[Table],
               table_cw: list[float], now_ts: float) -> str:
    r = rng.random()
    user = None if r < params.no_user_rate else rng.choices(org.users, cum_weights=org.users_cw)[0]
    stamp = datetime.fromtimestamp(ts, UTC).isoformat()
    if rng.random() < params.no_table_rate:
        sql, tabs, cols, by_table = rng.choice(NO_TABLE_SQL), None, None, None
    else:
        q = pick_query(user.pool if user else tables, user.pool_cw if user else table_cw, rng)
        sql = select_sql(q.tables, q.columns, rng)
        tabs = sorted(q.columns)
        cols = sorted({c for cs in q.columns.values() for c in cs})
        by_table = None if rng.random() < params.legacy_rate else q.columns
    success = rng.random() >= params.failure_rate
    error = None if success else rng.choice(ERRORS).format(t=tabs[0] if tabs else "x")
    deleted = NULL
    if rng.random() < params.deleted_rate:
        deleted = datetime.fromtimestamp(min(now_ts, ts + 86400 * rng.randint(1, 30)), UTC).isoformat()
    actor = "human" if user and r > 0.3 else ("agent" if user else "scheduler")
    return "\t".join((
        stamp, user.id if user else NULL, user.email if user else NULL, "managed" if user else "none", _text(sql),
        str(rng.randint(1, 4000)), str(rng.randint(0, 5000)) if success else NULL, "t" if success else "f",
        _text(error), "warehouse-prod", "postgres", "db.internal:5432", _json(tabs), _json(cols), _json(by_table),
        org.id, deleted, actor)) + "\n"


def main_rows(conn) -> int:
    return conn.execute("SELECT count(*) FROM audit_log a JOIN organization o ON o.id = a.org_id "
                        "WHERE o.slug LIKE %s", (MAIN_ORG_PREFIX + "%",)).fetchone()[0]


def generate(url: str, params: DatasetParams, *, log=print) -> dict:
    """Load the dataset (the database must be empty of bench orgs); return rows, seconds, rate."""
    rng = random.Random(params.seed)
    tables = build_tables(params.tables, rng)
    table_cw = zipf_cum_weights(len(tables), 1.1)
    orgs = build_orgs(params, tables, rng)
    org_cw = list(itertools.accumulate(o.share for o in orgs))
    now = datetime.now(UTC).replace(microsecond=0)
    start_ts = (now - timedelta(days=params.days)).timestamp()
    span = params.days * 86400.0
    began = time.perf_counter()
    with connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        sessions = load_people(conn, orgs, params, rng, now)
        conn.commit()
        batches = max(1, -(-params.rows // params.batch_rows))
        done = 0
        rows_began = time.perf_counter()
        for b in range(batches):
            count = min(params.batch_rows, params.rows - done)
            lo = start_ts + span * b / batches
            stamps = sorted(lo + rng.random() * span / batches for _ in range(count))
            picked = rng.choices(orgs, cum_weights=org_cw, k=count)
            lines = [audit_line(o, ts, rng, params, tables, table_cw, now.timestamp())
                     for o, ts in zip(picked, stamps, strict=True)]
            with conn.cursor() as cur:
                _copy_lines(cur, COPY_AUDIT, lines)
            conn.commit()
            done += count
            elapsed = time.perf_counter() - rows_began
            log(f"  {done:>10,} / {params.rows:,} audit rows  {done / elapsed:,.0f} rows/s")
        rows_seconds = time.perf_counter() - rows_began
    vacuum(url, log)
    total = time.perf_counter() - began
    facts = {"rows": done, "users": sum(len(o.users) for o in orgs), "sessions": sessions,
             "audit_seconds": round(rows_seconds, 1), "audit_rows_per_s": round(done / rows_seconds),
             "total_seconds": round(total, 1)}
    log(f"generated {done:,} audit rows in {rows_seconds:.1f}s ({done / rows_seconds:,.0f} rows/s through the "
        f"triggers); {total:.1f}s with people and VACUUM ANALYZE")
    return facts


def vacuum(url: str, log=print) -> None:
    with connect(url, autocommit=True) as conn:
        for table in ("audit_log", "audit_access_daily", "audit_access_weekly", "audit_user_daily", "audit_column_dict",
                      "member", '"user"', "session",
                      "pii_column_classifications", "organization", "audit_chain_head"):
            conn.execute(f"VACUUM (ANALYZE) {table}")  # noqa: S608 - fixed names
    log("VACUUM ANALYZE done")


def ensure_dataset(server_url: str, db_name: str, params: DatasetParams, *, regenerate: bool = False,
                   log=print) -> tuple[str, dict]:
    """The bench database URL, holding the dataset (generated only when missing or on ``regenerate``)."""
    url = ensure_database(server_url, db_name, recreate=regenerate)
    applied = migrate.upgrade(url)
    if applied and not regenerate:
        log(f"applied migrations {', '.join(applied)} to the kept dataset")
        vacuum(url, log)  # a migration that rewrote rollups leaves them without statistics / visibility map
    with connect(url) as conn:
        have = main_rows(conn)
        orgs = conn.execute("SELECT count(*) FROM organization WHERE slug LIKE %s",
                            (MAIN_ORG_PREFIX + "%",)).fetchone()[0]
    if have == params.rows and orgs == params.orgs:
        log(f"dataset present: {have:,} audit rows in {db_name} (use --regenerate to rebuild)")
        return url, {"rows": have, "generated": False}
    if orgs:
        log(f"dataset has {have:,} rows, expected {params.rows:,}: recreating {db_name}")
        url = ensure_database(server_url, db_name, recreate=True)
        migrate.upgrade(url)
    log(f"generating {params.rows:,} audit rows into {db_name} …")
    return url, {**generate(url, params, log=log), "generated": True}


def ensure_export_org(url: str, *, users: int = 1_000, tables: int = 1_010, per_query: int = 5,
                      days: int = 90, log=print) -> dict:
    """An org whose Data Access Report has users × tables rows (≥ 1,000,000): every user reads every
    table, ``per_query`` tables per query. Loaded in one transaction, so it is there whole or not at all."""
    with connect(url) as conn:
        row = conn.execute("SELECT id FROM organization WHERE slug = %s", (EXPORT_ORG_SLUG,)).fetchone()
        if row:
            return {"org_id": row[0], "pairs": users * tables, "generated": False}
        rng = random.Random(7)
        org_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        began = time.perf_counter()
        conn.execute("SET synchronous_commit = off")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO organization (id, name, slug) VALUES (%s, 'Bench export', %s)",
                        (org_id, EXPORT_ORG_SLUG))
            people = [(str(uuid.uuid4()), f"exporter{i:04d}@{EXPORT_ORG_SLUG}.example") for i in range(users)]
            _copy_lines(cur, 'COPY "user" (id, name, email) FROM STDIN',
                        [f"{uid}\t{email.split('@')[0]}\t{email}\n" for uid, email in people])
            _copy_lines(cur, 'COPY member ("organizationId", "userId", role) FROM STDIN',
                        [f"{org_id}\t{uid}\tmember\n" for uid, _ in people])
            names = [f"export_t{i:04d}" for i in range(tables)]
            lines: list[str] = []
            rows = 0
            for uid, email in people:
                for k in range(0, tables, per_query):
                    chunk = names[k:k + per_query]
                    by_table = {t: ["id", "email"] if j % 3 == 0 else ["id", "status"] for j, t in enumerate(chunk)}
                    ts = (now - timedelta(seconds=rng.random() * (days - 1) * 86400)).isoformat()
                    sql = "SELECT " + ", ".join(f"t{j}.id" for j in range(len(chunk))) + " FROM " + ", ".join(  # noqa: S608
                        f"{t} t{j}" for j, t in enumerate(chunk))
                    lines.append("\t".join((ts, uid, email, "managed", sql, "5", "1", "t", NULL, "export-src",
                                            "postgres", NULL, _json(chunk), _json(["email", "id", "status"]),
                                            _json(by_table), org_id, NULL, "human")) + "\n")
                    if len(lines) >= 50_000:
                        _copy_lines(cur, COPY_AUDIT, lines)
                        rows += len(lines)
                        lines = []
            if lines:
                _copy_lines(cur, COPY_AUDIT, lines)
                rows += len(lines)
        conn.commit()
        seconds = time.perf_counter() - began
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) audit_access_daily")
        conn.execute("VACUUM (ANALYZE) audit_log")
    log(f"export org: {rows:,} audit rows, {users * tables:,} (table, user) pairs in {seconds:.1f}s")
    return {"org_id": org_id, "pairs": users * tables, "rows": rows, "seconds": round(seconds, 1), "generated": True}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", help=f"bench database (default {DEFAULT_DB_NAME}; {LEGACY_DB_NAME} with --legacy)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of DESIGN §7's rows and users")
    parser.add_argument("--regenerate", action="store_true", help="drop the bench database and generate again")
    parser.add_argument("--legacy", action="store_true",
                        help="every row in the legacy shape: flat columns_accessed, no columns_by_table")
    args = parser.parse_args(argv)
    db_name = args.db_name or (LEGACY_DB_NAME if args.legacy else DEFAULT_DB_NAME)
    ensure_dataset(args.server_url, db_name, DatasetParams.scaled(args.scale, legacy=args.legacy),
                   regenerate=args.regenerate)


if __name__ == "__main__":
    main()
