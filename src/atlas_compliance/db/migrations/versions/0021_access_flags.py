"""Unusual-access flags: what the rules found (`access_flag`), how each was acknowledged
(`access_flag_disposition`, append-only) and each organization's thresholds (`access_flag_setting`).

A flag is one rule's finding about one user and one table on one UTC day (the rollups' day). Its key
`(org_id, rule, user_id, table_name, window_start)` is unique, so evaluating a day again updates the same
flag (or leaves it alone when nothing changed) rather than adding a second one. A flag that no longer holds
after late events or re-attribution is deleted when nobody has acknowledged it and it was never queued for
the webhook, and marked `retracted_at` otherwise (its dispositions and delivery log stay). Dispositions are only ever appended, never by the flagged user.

`access_flag_webhook` is an organization's receiver of new flags; `access_flag_delivery` is the outbox (one
row per new flag, written in the transaction that stores the flag, so a flag is never stored without its
delivery nor sent twice) and `access_flag_delivery_attempt` the delivery log, one row per attempt.

`access_flag_setting` holds an organization's thresholds; an organization without a row uses the
defaults written here (and in `flags/rules.py`, which documents them).

Revision ID: 0021
Revises: 0020
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

SQL = r"""
CREATE TABLE IF NOT EXISTS access_flag_setting (
    org_id          TEXT PRIMARY KEY,
    volume_floor    INTEGER NOT NULL DEFAULT 50 CHECK (volume_floor >= 0),
    volume_k        NUMERIC NOT NULL DEFAULT 5 CHECK (volume_k > 0),
    baseline_days   INTEGER NOT NULL DEFAULT 28 CHECK (baseline_days BETWEEN 7 AND 364 AND baseline_days % 7 = 0),
    bulk_rows       INTEGER NOT NULL DEFAULT 10000 CHECK (bulk_rows > 0),
    tz              TEXT NOT NULL DEFAULT 'UTC',  -- the organization's time zone, for off hours
    work_start      SMALLINT NOT NULL DEFAULT 7 CHECK (work_start BETWEEN 0 AND 23),
    work_end        SMALLINT NOT NULL DEFAULT 19 CHECK (work_end BETWEEN 1 AND 24 AND work_end > work_start),
    updated_by      TEXT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS access_flag (
    id            BIGSERIAL PRIMARY KEY,
    org_id        TEXT NOT NULL,
    rule          TEXT NOT NULL CHECK (rule IN ('volume', 'first_access', 'new_actor', 'bulk_export', 'off_hours')),
    user_id       TEXT NOT NULL,
    table_name    TEXT NOT NULL,
    columns       TEXT[] NOT NULL DEFAULT '{}',
    day           DATE NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    window_end    TIMESTAMPTZ NOT NULL,  -- exclusive
    observed      NUMERIC NOT NULL,
    baseline      NUMERIC,
    threshold     NUMERIC,
    explanation   TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    retracted_at  TIMESTAMPTZ,  -- no longer holds (late events, re-attribution), kept for its dispositions
    CONSTRAINT uq_access_flag UNIQUE (org_id, rule, user_id, table_name, window_start),
    CONSTRAINT chk_access_flag_window CHECK (window_start < window_end)
);
CREATE INDEX IF NOT EXISTS access_flag_org_day ON access_flag (org_id, day DESC, id);

CREATE TABLE IF NOT EXISTS access_flag_disposition (
    id           BIGSERIAL PRIMARY KEY,
    flag_id      BIGINT NOT NULL REFERENCES access_flag (id),
    org_id       TEXT NOT NULL,
    disposition  TEXT NOT NULL CHECK (disposition IN ('expected', 'investigating', 'incident')),
    note         TEXT NOT NULL CHECK (length(btrim(note)) > 0),
    by_id        TEXT NOT NULL,
    by_email     TEXT,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS access_flag_disposition_flag ON access_flag_disposition (flag_id, id DESC);

CREATE TABLE IF NOT EXISTS access_flag_webhook (
    org_id      TEXT PRIMARY KEY,
    url         TEXT NOT NULL CHECK (url ~ '^https?://'),
    secret      TEXT NOT NULL CHECK (length(secret) >= 32),  -- the HMAC-SHA256 key of the signatures
    updated_by  TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS access_flag_delivery (
    id               BIGSERIAL PRIMARY KEY,
    org_id           TEXT NOT NULL,
    flag_id          BIGINT NOT NULL REFERENCES access_flag (id),
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ,
    CONSTRAINT uq_access_flag_delivery UNIQUE (flag_id)
);
CREATE INDEX IF NOT EXISTS access_flag_delivery_due ON access_flag_delivery (next_attempt_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS access_flag_delivery_attempt (
    id           BIGSERIAL PRIMARY KEY,
    delivery_id  BIGINT NOT NULL REFERENCES access_flag_delivery (id),
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    url          TEXT NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    ok           BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS access_flag_delivery_attempt_delivery ON access_flag_delivery_attempt (delivery_id, id);

-- A disposition belongs to its flag's org and is never written by the flagged user (the service says so
-- first, in plain words; this is the backstop).
CREATE OR REPLACE FUNCTION atlas_access_flag_disposition_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    f_org  TEXT;
    f_user TEXT;
BEGIN
    SELECT f.org_id, f.user_id INTO f_org, f_user FROM access_flag f WHERE f.id = NEW.flag_id;
    IF f_org IS DISTINCT FROM NEW.org_id THEN
        RAISE EXCEPTION 'access flag % is not in org %', NEW.flag_id, NEW.org_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF f_user = NEW.by_id THEN
        RAISE EXCEPTION 'a flagged user cannot dispose of their own flag (flag %)', NEW.flag_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS access_flag_disposition_write ON access_flag_disposition;
CREATE TRIGGER access_flag_disposition_write BEFORE INSERT ON access_flag_disposition
    FOR EACH ROW EXECUTE FUNCTION atlas_access_flag_disposition_guard();
DROP TRIGGER IF EXISTS access_flag_disposition_guard ON access_flag_disposition;
CREATE TRIGGER access_flag_disposition_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON access_flag_disposition
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_append_only_guard();
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
