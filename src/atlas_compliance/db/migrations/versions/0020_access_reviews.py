"""Access reviews: campaigns with a frozen population, append-only decisions, sign-off, follow-ups.

A campaign (`review_campaign`) covers one period of one organization and a scope (user, role, table
filters, as the reports take them). Opening it copies the User Activity rows (one `user` item per
person, with email and role as of the period's end) and the Data Access rows (one `access` item per
(table, user)) into `review_item`; later ingest, offboarding or reclassification never changes them.
Decisions (`review_decision`) and done follow-ups (`review_followup`) are only ever appended: an item's
decision is its latest. Sign-off sets the campaign's statement once; from then on the campaign, its items
and its decisions are read-only for every role (the triggers below refuse, whoever writes). A decision
by the person the item is about is refused here too, as a backstop to the service's clear message.

`review_org_setting` holds an organization's rule that PII accesses need a second reviewer; a campaign
copies it when it opens. `review_schedule` is an organization's cadence; `(org_id, schedule_id, period_start)` is unique, so a
due campaign is never opened twice whatever runs the check.

Revision ID: 0020
Revises: 0018
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None

SQL = r"""
CREATE TABLE IF NOT EXISTS review_schedule (
    id            TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    every_months  INTEGER NOT NULL CHECK (every_months IN (1, 3, 6, 12)),
    anchor        DATE NOT NULL,  -- the first day of the first period
    tz            TEXT NOT NULL,
    scope         JSONB NOT NULL DEFAULT '{}'::jsonb,
    due_days      INTEGER NOT NULL DEFAULT 30 CHECK (due_days BETWEEN 1 AND 366),
    created_by    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT uq_review_schedule_name UNIQUE (org_id, name)
);

-- An organization's review rules; a campaign copies them when it opens (later changes leave it alone).
CREATE TABLE IF NOT EXISTS review_org_setting (
    org_id              TEXT PRIMARY KEY,
    pii_second_reviewer BOOLEAN NOT NULL DEFAULT false,
    updated_by          TEXT,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS review_campaign (
    id                  TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id              TEXT NOT NULL,
    title               TEXT NOT NULL,
    period_start        DATE NOT NULL,
    period_end          DATE NOT NULL,  -- inclusive, in tz
    tz                  TEXT NOT NULL,
    window_start        TIMESTAMPTZ NOT NULL,
    window_end          TIMESTAMPTZ NOT NULL,  -- exclusive
    scope               JSONB NOT NULL DEFAULT '{}'::jsonb,
    due_date            DATE NOT NULL,
    schedule_id         TEXT REFERENCES review_schedule (id),
    pii_second_reviewer BOOLEAN NOT NULL DEFAULT false,  -- PII accesses need two reviewers who agree
    status              TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'signed_off')),
    opened_by_id        TEXT,
    opened_by_email     TEXT,
    opened_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    signed_off_by_id    TEXT,
    signed_off_by_email TEXT,
    signed_off_at       TIMESTAMPTZ,
    statement           TEXT,
    content_sha256      TEXT,
    signature           TEXT,
    signature_key_id    TEXT,
    CONSTRAINT chk_review_campaign_period CHECK (period_start <= period_end AND window_start < window_end),
    CONSTRAINT chk_review_campaign_signoff CHECK (
        (status = 'open' AND signed_off_at IS NULL AND statement IS NULL)
        OR (status = 'signed_off' AND signed_off_at IS NOT NULL AND length(btrim(statement)) > 0))
);
CREATE INDEX IF NOT EXISTS review_campaign_org ON review_campaign (org_id, opened_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS review_campaign_schedule_period
    ON review_campaign (org_id, schedule_id, period_start) WHERE schedule_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS review_item (
    id           BIGSERIAL PRIMARY KEY,
    campaign_id  TEXT NOT NULL REFERENCES review_campaign (id),
    seq          INTEGER NOT NULL,  -- the item's number within its campaign, from 1
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'access')),
    user_id      TEXT,
    user_email   TEXT,
    user_role    TEXT,
    table_name   TEXT,
    has_pii      BOOLEAN NOT NULL DEFAULT false,
    figures      JSONB NOT NULL,  -- the report row as it was when the campaign opened
    CONSTRAINT uq_review_item_seq UNIQUE (campaign_id, seq),
    CONSTRAINT chk_review_item_table CHECK ((kind = 'access') = (table_name IS NOT NULL))
);

CREATE TABLE IF NOT EXISTS review_decision (
    id               BIGSERIAL PRIMARY KEY,
    campaign_id      TEXT NOT NULL REFERENCES review_campaign (id),
    item_id          BIGINT NOT NULL REFERENCES review_item (id),
    decision         TEXT NOT NULL CHECK (decision IN ('keep', 'revoke', 'flag')),
    note             TEXT,
    decided_by_id    TEXT NOT NULL,
    decided_by_email TEXT,
    decided_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT chk_review_decision_note CHECK (decision = 'keep' OR length(btrim(coalesce(note, ''))) > 0)
);
CREATE INDEX IF NOT EXISTS review_decision_item ON review_decision (item_id, id DESC);
CREATE INDEX IF NOT EXISTS review_decision_campaign ON review_decision (campaign_id, id);

CREATE TABLE IF NOT EXISTS review_followup (
    id            BIGSERIAL PRIMARY KEY,
    campaign_id   TEXT NOT NULL REFERENCES review_campaign (id),
    item_id       BIGINT NOT NULL REFERENCES review_item (id),
    done_by_id    TEXT,
    done_by_email TEXT,
    done_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    note          TEXT NOT NULL CHECK (length(btrim(note)) > 0),
    CONSTRAINT uq_review_followup_item UNIQUE (item_id)
);

-- An item confirmed by two reviewers: its two latest decisions are by different people and agree.
CREATE OR REPLACE FUNCTION atlas_review_confirmed(p_item BIGINT) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT count(*) = 2 AND count(DISTINCT x.decided_by_id) = 2 AND count(DISTINCT x.decision) = 1
    FROM (SELECT d.decision, d.decided_by_id FROM review_decision d WHERE d.item_id = p_item
          ORDER BY d.id DESC LIMIT 2) x
$$;

-- Items are written once, when their campaign opens (while it is open); decisions only while it is
-- open and never by the person the item is about.
CREATE OR REPLACE FUNCTION atlas_review_write_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    c_status TEXT;
    i_user   TEXT;
BEGIN
    SELECT c.status INTO c_status FROM review_campaign c WHERE c.id = NEW.campaign_id FOR SHARE;
    IF c_status IS DISTINCT FROM 'open' THEN
        RAISE EXCEPTION 'review campaign % is signed off: % into % is refused', NEW.campaign_id, TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_TABLE_NAME = 'review_decision' THEN
        SELECT i.user_id INTO i_user FROM review_item i WHERE i.id = NEW.item_id AND i.campaign_id = NEW.campaign_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'review item % is not in campaign %', NEW.item_id, NEW.campaign_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF i_user = NEW.decided_by_id THEN
            RAISE EXCEPTION 'a reviewer cannot decide on their own access (item %)', NEW.item_id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- A campaign changes once: open -> signed off (statement, signer, time, signature); nothing else.
CREATE OR REPLACE FUNCTION atlas_review_campaign_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF OLD.status <> 'open' OR NEW.status <> 'signed_off'
       OR (NEW.id, NEW.org_id, NEW.title, NEW.period_start, NEW.period_end, NEW.tz, NEW.window_start,
           NEW.window_end, NEW.scope, NEW.due_date, NEW.schedule_id, NEW.pii_second_reviewer, NEW.opened_by_id,
           NEW.opened_by_email, NEW.opened_at)
          IS DISTINCT FROM
          (OLD.id, OLD.org_id, OLD.title, OLD.period_start, OLD.period_end, OLD.tz, OLD.window_start,
           OLD.window_end, OLD.scope, OLD.due_date, OLD.schedule_id, OLD.pii_second_reviewer, OLD.opened_by_id,
           OLD.opened_by_email, OLD.opened_at) THEN
        RAISE EXCEPTION 'review campaign %: only its sign-off may be written, once', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS review_item_write ON review_item;
CREATE TRIGGER review_item_write BEFORE INSERT ON review_item
    FOR EACH ROW EXECUTE FUNCTION atlas_review_write_guard();
DROP TRIGGER IF EXISTS review_decision_write ON review_decision;
CREATE TRIGGER review_decision_write BEFORE INSERT ON review_decision
    FOR EACH ROW EXECUTE FUNCTION atlas_review_write_guard();
DROP TRIGGER IF EXISTS review_campaign_signoff ON review_campaign;
CREATE TRIGGER review_campaign_signoff BEFORE UPDATE ON review_campaign
    FOR EACH ROW EXECUTE FUNCTION atlas_review_campaign_guard();

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['review_campaign', 'review_item', 'review_decision', 'review_followup'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_guard', t);
        IF t = 'review_campaign' THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE DELETE OR TRUNCATE ON %I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION atlas_append_only_guard()', t || '_guard', t);
        ELSE
            EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON %I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION atlas_append_only_guard()', t || '_guard', t);
        END IF;
    END LOOP;
END
$$;
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
