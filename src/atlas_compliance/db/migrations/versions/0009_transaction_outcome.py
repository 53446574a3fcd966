"""`audit_log.transaction_outcome`: whether the statement's transaction committed.

Writers that know it (the SQLAlchemy hook) say `committed`, `rolled_back` or `unknown` (the
connection was lost while committing, or the writer stopped waiting); NULL means the writer did
not say, as for every row written before this migration. Adding a nullable column with no default
rewrites nothing (and running this file twice changes nothing), so existing rows, and the hashes that cover their content, are unchanged.

Revision ID: 0009
Revises: 0008
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SQL = r"""
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS transaction_outcome TEXT;
ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS chk_audit_log_transaction_outcome;
ALTER TABLE audit_log ADD CONSTRAINT chk_audit_log_transaction_outcome
    CHECK (transaction_outcome IS NULL OR transaction_outcome IN ('committed', 'rolled_back', 'unknown'));
COMMENT ON COLUMN audit_log.transaction_outcome IS
    'committed, rolled_back or unknown, as the writer reported it; NULL: the writer did not say';
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
