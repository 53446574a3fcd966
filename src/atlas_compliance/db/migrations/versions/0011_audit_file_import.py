"""The import ledger of `atlas-compliance ingest`: which content each organization imported from
which file, when, and how far.

A record without an `eventId` gets an id derived from the content of the file up to it (see
`audit/files.py`), so the same content always gets the same ids, whatever the file's name. The
ledger is what lets the command tell a re-run (or a grown log) from a new file that happens to hold
the same lines: each row keeps the chain digest after the last committed record, updated in the
same transaction as the events, so a killed import's row says exactly how far it got.

Revision ID: 0011
Revises: 0010
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SQL = r"""
CREATE TABLE IF NOT EXISTS audit_file_import (
    id          BIGSERIAL PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    label       TEXT NOT NULL DEFAULT '',
    path        TEXT NOT NULL,
    records     BIGINT NOT NULL DEFAULT 0 CHECK (records >= 0),
    digest      TEXT NOT NULL,
    derived_ids BIGINT NOT NULL DEFAULT 0,
    inserted    BIGINT NOT NULL DEFAULT 0,
    duplicates  BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    conflicts   BIGINT NOT NULL DEFAULT 0,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS audit_file_import_digest_idx ON audit_file_import (org_id, digest);
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
