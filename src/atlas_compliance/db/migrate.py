"""Apply the Alembic migrations programmatically (used by `db upgrade`, `serve` and the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from .pool import to_libpq_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + to_libpq_url(url)[len("postgresql://"):]


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", _sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> list[str]:
    """Apply pending migrations; return the revisions that were applied (oldest first)."""
    cfg = _config(url)
    script = ScriptDirectory.from_config(cfg)
    engine = create_engine(_sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    command.upgrade(cfg, revision)
    if before == script.get_current_head():
        return []
    revs = [rev.revision for rev in script.iterate_revisions(revision, before)]
    return list(reversed(revs))


def current(url: str) -> str | None:
    engine = create_engine(_sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
