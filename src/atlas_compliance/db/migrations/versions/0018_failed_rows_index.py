"""An index of the failed audit rows, for the Failed access view (issue 19, part 3).

The view (reports/activity.py) reads an organization's failed rows of a window. Failures are a small share
of the trail, and without this index the view reads every row of the window; with it, only the failed
ones. A partial index: only failed rows are added to it, so ingest of successful queries pays nothing.
Building it reads `audit_log` once and holds off writes to it meanwhile (0.2 s for 500,000 rows on the
development machine). Running this file again changes nothing.

Measured (500,000 rows over six months in one organization, 2% failed, warm cache; the whole view: two
statements): one month 200-240 ms without this index, about 60 ms with it; six months (10,000 failures)
440-490 ms without, 280-370 ms with (there the error classification and the scattered heap reads dominate).

Revision ID: 0018
Revises: 0017
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

SQL = """
CREATE INDEX IF NOT EXISTS idx_audit_log_failed ON audit_log (org_id, "timestamp") WHERE NOT success;
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
