"""Rollups defined once: what each rollup row must hold, as functions of the raw rows.

`db/sql/rollups.sql` defines the expected content of the user-daily and access rollups, the rebuild
(after soft deletes and purges) in terms of it, and `atlas_rollup_differences`, which `audit verify`
uses to name every rollup row that disagrees with the raw rows. This migration applies that file; a later
migration that changes a rollup's meaning edits the file and applies it again (the file is idempotent:
CREATE OR REPLACE only). The rebuild's results are unchanged.

Revision ID: 0017
Revises: 0016
"""

from atlas_compliance.db.migrations.sqlscript import run_sql
from atlas_compliance.db.sql import read_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(read_sql("rollups.sql"))


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
