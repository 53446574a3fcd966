"""Sources read from the databases' own audit logs (pgAudit, PostgreSQL logs, MariaDB server_audit):
the sources that fed each organization, where a follower of a log directory stopped, and which user
of the organization each database role is.

`audit_source_position` is written in the same transaction as the events read up to it, so a
follower killed at any moment resumes where its last commit left it. `db_role_mapping` is read by the
reports (the events themselves keep the role they were recorded with, `db:<role>`, so mapping a role
later changes no recorded event and no hash).

Revision ID: 0010
Revises: 0009
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SQL = r"""
CREATE TABLE IF NOT EXISTS audit_source (
    org_id          TEXT NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('pgaudit', 'mariadb-audit')),
    first_import_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_import_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_event_at   TIMESTAMPTZ,
    events_stored   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE IF NOT EXISTS audit_source_position (
    org_id            TEXT NOT NULL,
    source_name       TEXT NOT NULL,
    file_key          TEXT NOT NULL,
    path              TEXT NOT NULL,
    byte_offset       BIGINT NOT NULL CHECK (byte_offset >= 0),
    line_number       BIGINT NOT NULL CHECK (line_number >= 1),
    fingerprint       BYTEA NOT NULL,
    fingerprint_bytes INTEGER NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, source_name, file_key),
    FOREIGN KEY (org_id, source_name) REFERENCES audit_source (org_id, name) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS db_role_mapping (
    org_id      TEXT NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    db_identity TEXT NOT NULL CHECK (db_identity LIKE 'db:%'),
    user_id     TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  TEXT,
    PRIMARY KEY (org_id, db_identity)
);
CREATE INDEX IF NOT EXISTS db_role_mapping_user_idx ON db_role_mapping (org_id, user_id);
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
