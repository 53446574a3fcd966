"""Apply the Alembic migrations programmatically (used by `db upgrade`, `serve` and the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from .pool import to_libpq_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic and SQLAlchemy are imported only when a migration may be pending: importing them costs
# about a quarter of a second, which every CLI command would otherwise pay.

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + to_libpq_url(url)[len("postgresql://"):]


def newest_revision() -> str:
    """The newest revision, from the version files' names (numbered in order, one branch)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def up_to_date(url: str) -> bool:
    """Whether the database is at the newest revision (one query, without Alembic)."""
    with psycopg.connect(to_libpq_url(url), connect_timeout=10) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return row is not None and row[0] == newest_revision()


def _config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", _sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> list[str]:
    """Apply pending migrations; return the revisions that were applied (oldest first)."""
    if revision == "head" and up_to_date(url):
        return []
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, pool

    cfg = _config(url)
    script = ScriptDirectory.from_config(cfg)
    engine = create_engine(_sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    command.upgrade(cfg, revision)
    if up_to_date(url):  # the definitions belong to the newest schema; an upgrade to an older revision stops short
        _apply_definitions(url)
    _secure(url)
    if before == script.get_current_head():
        return []
    revs = [rev.revision for rev in script.iterate_revisions(revision, before)]
    return list(reversed(revs))


def _apply_definitions(url: str) -> None:
    """Apply the SQL files of function definitions (`db/sql/`, CREATE OR REPLACE only) once the migrations'
    table changes are in: each file is the one definition of what it holds (see db/sql/rollups.sql)."""
    from .sql import DEFINITIONS, read_sql

    with psycopg.connect(to_libpq_url(url), connect_timeout=10, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('audit_user_daily') IS NOT NULL").fetchone()[0]:
            with conn.transaction():
                for name in DEFINITIONS:
                    conn.execute(read_sql(name))


def _secure(url: str) -> None:
    """Re-apply the definer attributes of the audit_log trigger functions (see db/security.py): a
    migration that replaces one of them with CREATE OR REPLACE resets them."""
    from .security import secure_functions

    with psycopg.connect(to_libpq_url(url), connect_timeout=10, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('atlas_retention_floor') IS NOT NULL").fetchone()[0]:
            secure_functions(conn)


def apply_retention_floor(url: str, min_retention_days: int, min_hard_delete_delay_days: int):
    """Write the configured retention floor into the database when the connecting role owns the schema
    (see :func:`atlas_compliance.db.security.apply_retention_floor`)."""
    from .security import apply_retention_floor as apply

    with psycopg.connect(to_libpq_url(url), connect_timeout=10, autocommit=True) as conn:
        return apply(conn, min_retention_days, min_hard_delete_delay_days)


def apply_roles(url: str, service_role: str, writer_role: str):
    """Create (or print) the service and writer roles (see :func:`atlas_compliance.db.security.apply_roles`)."""
    from .security import apply_roles as apply

    with psycopg.connect(to_libpq_url(url), connect_timeout=10, autocommit=True) as conn:
        return apply(conn, service_role, writer_role)


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(_sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
