"""Audit triggers run without JIT compilation, whoever inserts.

The triggers' set-returning JSON functions make the planner's row estimates huge, which makes
PostgreSQL JIT-compile each trigger statement: 1.5–2 s per batch for a writer whose session has
`jit = on` (the default), against a few milliseconds of real work.

Revision ID: 0004
Revises: 0003
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SQL = r"""
ALTER FUNCTION atlas_audit_rollup_insert() SET jit = off;
ALTER FUNCTION atlas_audit_rollup_weekly() SET jit = off;
ALTER FUNCTION atlas_audit_rollup_remove() SET jit = off;
ALTER FUNCTION atlas_rollup_rebuild(JSONB) SET jit = off;
ALTER FUNCTION atlas_weekly_rebuild(JSONB) SET jit = off;
ALTER FUNCTION atlas_audit_before_insert() SET jit = off;
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
