"""Membership history: who was a member of which organization, with which role and email, from when to when.

Reports name people as they were at the end of their window (reports/repository.py), so removing a member
or changing a role or an email never changes the report of a closed past window. Triggers on `member` and
on `user` keep the history whatever writes them (the service, the CLI, Better Auth on an adopted
database): adding a member opens an interval, a role change closes it and opens the next, removing a
member (or deleting the user, which cascades) closes it, and an email change closes and reopens every
open interval of that user with the new address. Existing memberships are backfilled from
`member."createdAt"`. Running this file again changes nothing.

Revision ID: 0016
Revises: 0015
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SQL = r"""
CREATE TABLE IF NOT EXISTS member_history (
    id         BIGSERIAL PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    email      TEXT NOT NULL,
    role       TEXT NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to   TIMESTAMPTZ,  -- NULL while the membership lasts
    CONSTRAINT chk_member_history_interval CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX IF NOT EXISTS member_history_org_user ON member_history (org_id, user_id, valid_from);
CREATE INDEX IF NOT EXISTS member_history_open ON member_history (user_id) WHERE valid_to IS NULL;
COMMENT ON TABLE member_history IS
    'Memberships over time (maintained by triggers on member and user); reports read identities from it';

CREATE OR REPLACE FUNCTION atlas_member_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.role IS NOT DISTINCT FROM OLD.role
            AND NEW."organizationId" = OLD."organizationId" AND NEW."userId" = OLD."userId" THEN
        RETURN NEW;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE member_history SET valid_to = now()
        WHERE org_id = OLD."organizationId" AND user_id = OLD."userId" AND valid_to IS NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    INSERT INTO member_history (org_id, user_id, email, role, valid_from)
    SELECT NEW."organizationId", NEW."userId", coalesce(u.email, ''), NEW.role, now()
    FROM (SELECT 1) one LEFT JOIN "user" u ON u.id = NEW."userId";
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS trg_member_history ON member;
CREATE TRIGGER trg_member_history AFTER INSERT OR UPDATE OR DELETE ON member
    FOR EACH ROW EXECUTE FUNCTION atlas_member_history();

CREATE OR REPLACE FUNCTION atlas_member_history_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.email IS NOT DISTINCT FROM OLD.email THEN
        RETURN NEW;
    END IF;
    WITH closed AS (
        UPDATE member_history SET valid_to = now() WHERE user_id = NEW.id AND valid_to IS NULL
        RETURNING org_id, role
    )
    INSERT INTO member_history (org_id, user_id, email, role, valid_from)
    SELECT org_id, NEW.id, NEW.email, role, now() FROM closed;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS trg_member_history_email ON "user";
CREATE TRIGGER trg_member_history_email AFTER UPDATE OF email ON "user"
    FOR EACH ROW EXECUTE FUNCTION atlas_member_history_email();

INSERT INTO member_history (org_id, user_id, email, role, valid_from)
SELECT m."organizationId", m."userId", u.email, m.role, m."createdAt"
FROM member m JOIN "user" u ON u.id = m."userId"
WHERE NOT EXISTS (SELECT 1 FROM member_history h WHERE h.org_id = m."organizationId" AND h.user_id = m."userId");
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
