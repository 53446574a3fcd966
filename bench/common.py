"""What the bench scripts share: the bench database, dataset parameters, timing statistics."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB_NAME = "atlas_bench"
LEGACY_DB_NAME = "atlas_bench_legacy"  # the --legacy dataset's own database
MAIN_ORG_PREFIX = "bench-org-"
EXPORT_ORG_SLUG = "bench-export"


@dataclass(frozen=True)
class DatasetParams:
    """DESIGN §7's dataset, scaled by ``scale`` (rows and users; orgs, tables and days stay)."""

    rows: int = 2_000_000
    orgs: int = 20
    largest_share: float = 0.40
    days: int = 90
    users: int = 2_000
    tables: int = 300
    batch_rows: int = 50_000
    failure_rate: float = 0.03
    no_user_rate: float = 0.01
    no_table_rate: float = 0.02
    deleted_rate: float = 0.005
    legacy_rate: float = 0.01  # rows with columns_accessed only (no columns_by_table), like old Atlas rows
    seed: int = 20260301

    @classmethod
    def scaled(cls, scale: float, *, legacy: bool = False) -> DatasetParams:
        """``legacy``: every row in Atlas's legacy shape (a flat ``columns_accessed``, no
        ``columns_by_table``), as rows written by plain COPY from an older Atlas or another writer."""
        base = cls()
        return cls(rows=max(1_000, int(base.rows * scale)), users=max(3 * base.orgs, int(base.users * scale)),
                   legacy_rate=1.0 if legacy else base.legacy_rate)

    def to_dict(self) -> dict:
        return asdict(self)


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def ensure_database(server_url: str, name: str, *, recreate: bool = False) -> str:
    """Create the bench database on the server if needed (dropping it first with ``recreate``)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        if recreate:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return with_dbname(server_url, name)


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, options="-c TimeZone=UTC", **kwargs)


def largest_org(conn: psycopg.Connection) -> tuple[str, str, int]:
    """(id, slug, audit rows) of the bench organization holding the most audit rows."""
    row = conn.execute(
        "SELECT o.id, o.slug, count(a.*) AS n FROM organization o JOIN audit_log a ON a.org_id = o.id "
        "WHERE o.slug LIKE %s GROUP BY o.id, o.slug ORDER BY n DESC LIMIT 1", (MAIN_ORG_PREFIX + "%",)).fetchone()
    if row is None:
        raise SystemExit("the bench dataset is missing: run python -m bench.generate")
    return row[0], row[1], int(row[2])


def stats(samples: list[float]) -> dict[str, float]:
    """Median, p95 (nearest rank), min and max of timings in seconds, reported in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"median_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2),
            "min_ms": round(ordered[0] * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2), "n": len(ordered)}
