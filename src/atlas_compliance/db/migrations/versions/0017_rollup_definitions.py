"""Rollups defined once, and each user's latest label kept per day.

From this revision on, what each rollup row must hold is defined once, in `db/sql/rollups.sql`: the insert
trigger, the rebuild (after soft deletes and purges) and `atlas_rollup_differences`, which `audit verify`
uses to name every rollup row that disagrees with the raw rows. That file is applied whole at the end of
every upgrade that ran a migration (`atlas_compliance.db.migrate`), after the table changes, so a
migration never applies a function that refers to a column a later migration adds.

This migration adds what the new definition needs: the user-daily rollup keeps the label of each user's
latest labelled query of the day (`last_label`, `last_label_ts`), so that reports can show ids that never
were members of the organization (service accounts, agents, database roles) by the label their events
carry, as of the window's end. Existing rows are back-filled from the raw rows.

Revision ID: 0017
Revises: 0016
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SQL = r"""
ALTER TABLE audit_user_daily ADD COLUMN IF NOT EXISTS last_label TEXT;
ALTER TABLE audit_user_daily ADD COLUMN IF NOT EXISTS last_label_ts TIMESTAMPTZ;

-- The rollup's guard refuses every direct write, the owner's too: lift it for the back-fill only.
ALTER TABLE audit_user_daily DISABLE TRIGGER audit_user_daily_guard;
UPDATE audit_user_daily d SET last_label = l.label, last_label_ts = l.ts
FROM (
    SELECT DISTINCT ON (a.org_id, (a."timestamp" AT TIME ZONE 'UTC')::date, a.user_id)
           a.org_id, (a."timestamp" AT TIME ZONE 'UTC')::date AS day, a.user_id, a.user_label AS label,
           a."timestamp" AS ts
    FROM audit_log a
    WHERE a.org_id IS NOT NULL AND a.user_id IS NOT NULL AND a.user_label IS NOT NULL
      AND a.success AND a.deleted_at IS NULL
    ORDER BY a.org_id, (a."timestamp" AT TIME ZONE 'UTC')::date, a.user_id, a."timestamp" DESC, a.user_label DESC
) l
WHERE d.org_id = l.org_id AND d.day = l.day AND d.user_id = l.user_id;
ALTER TABLE audit_user_daily ENABLE TRIGGER audit_user_daily_guard;
-- Reports look up a stranger's latest label before a window's end (reports/repository.py).
CREATE INDEX IF NOT EXISTS audit_user_daily_label ON audit_user_daily (org_id, user_id, day)
    WHERE last_label IS NOT NULL;
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
