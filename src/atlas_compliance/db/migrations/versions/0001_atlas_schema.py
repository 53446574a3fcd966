"""Atlas-compatible schema: auth tables, audit_log with its hash chain and guards, rollups,
PII classifications, admin action log, retention config, API tokens.

Revision ID: 0001
Revises:
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AUTH = r"""
CREATE TABLE organization (
    id          TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    logo        TEXT,
    metadata    TEXT,
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now(),
    workspace_status TEXT NOT NULL DEFAULT 'active'
        CHECK (workspace_status IN ('active', 'suspended', 'deleted')),
    deleted_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX organization_slug_key ON organization (slug);

CREATE TABLE "user" (
    id              TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name            TEXT NOT NULL DEFAULT '',
    email           TEXT NOT NULL,
    "emailVerified" BOOLEAN NOT NULL DEFAULT false,
    image           TEXT,
    role            TEXT,
    banned          BOOLEAN DEFAULT false,
    "createdAt"     TIMESTAMPTZ NOT NULL DEFAULT now(),
    "updatedAt"     TIMESTAMPTZ NOT NULL DEFAULT now(),
    "normalizedEmail" TEXT
);
CREATE UNIQUE INDEX user_email_key ON "user" (email);
CREATE UNIQUE INDEX user_normalized_email_unique ON "user" ("normalizedEmail");

-- Better Auth's credential table: one row per (provider, account); password is an argon2 hash.
CREATE TABLE account (
    id           TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "accountId"  TEXT NOT NULL,
    "providerId" TEXT NOT NULL,
    "userId"     TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    password     TEXT,
    "createdAt"  TIMESTAMPTZ NOT NULL DEFAULT now(),
    "updatedAt"  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE ("providerId", "accountId")
);
CREATE INDEX account_user_idx ON account ("userId");

CREATE TABLE member (
    id               TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "organizationId" TEXT NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    "userId"         TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    "createdAt"      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT member_org_user_key UNIQUE ("organizationId", "userId")
);
CREATE INDEX member_user_idx ON member ("userId");

-- Login sessions. `token` holds the SHA-256 (hex) of the bearer token, never the token.
-- Rows are kept after logout/expiry (revoked_at) so login history survives.
CREATE TABLE session (
    id                     TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "userId"               TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    token                  TEXT NOT NULL,
    "expiresAt"            TIMESTAMPTZ NOT NULL,
    "createdAt"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "updatedAt"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "ipAddress"            TEXT,
    "userAgent"            TEXT,
    "activeOrganizationId" TEXT,
    origin                 TEXT,
    revoked_at             TIMESTAMPTZ
);
CREATE UNIQUE INDEX session_token_key ON session (token);
CREATE INDEX session_user_org_created_idx ON session ("userId", "activeOrganizationId", "createdAt");

-- Personal access tokens (act as their user in one org) and ingest keys (audit:write only).
CREATE TABLE api_token (
    id           TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id       TEXT NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    user_id      TEXT REFERENCES "user" (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('personal', 'ingest')),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    token_prefix TEXT NOT NULL,
    scopes       TEXT[] NOT NULL,
    created_by   TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    CONSTRAINT api_token_owner CHECK ((kind = 'personal') = (user_id IS NOT NULL))
);
CREATE UNIQUE INDEX api_token_hash_key ON api_token (token_hash);
CREATE INDEX api_token_org_idx ON api_token (org_id);

CREATE TABLE login_attempt (
    id           BIGSERIAL PRIMARY KEY,
    email        TEXT NOT NULL,
    ip_address   TEXT,
    success      BOOLEAN NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_attempt_email_idx ON login_attempt (email, attempted_at);
CREATE INDEX login_attempt_ip_idx ON login_attempt (ip_address, attempted_at);

-- Installation-wide settings, e.g. the HMAC secret used by the `hash` masking strategy.
CREATE TABLE atlas_installation (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO atlas_installation (key, value) VALUES ('hmac_secret', encode(gen_random_bytes_compat(), 'hex'));
"""

# gen_random_bytes lives in pgcrypto; md5 of two random uuids gives 256 bits without an extension.
RANDOM_BYTES = r"""
CREATE FUNCTION gen_random_bytes_compat() RETURNS bytea LANGUAGE sql VOLATILE AS $$
    SELECT decode(md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text), 'hex')
$$;
"""

AUDIT = r"""
CREATE TABLE audit_log (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    "timestamp"      TIMESTAMPTZ NOT NULL DEFAULT now(),
    user_id          TEXT,
    user_label       TEXT,
    auth_mode        TEXT NOT NULL,
    sql              TEXT NOT NULL,
    duration_ms      INTEGER NOT NULL,
    row_count        INTEGER,
    success          BOOLEAN NOT NULL,
    error            TEXT,
    source_id        TEXT,
    source_type      TEXT,
    target_host      TEXT,
    tables_accessed  JSONB,
    columns_accessed JSONB,
    org_id           TEXT,
    deleted_at       TIMESTAMPTZ,
    actor_kind       TEXT,
    client_id        TEXT,
    tool_name        TEXT,
    parent_audit_id  UUID,
    -- Atlas Compliance additions
    event_id         TEXT,
    columns_by_table JSONB,
    parse_error      TEXT,
    ingested_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    chain_seq        BIGINT,
    prev_hash        BYTEA,
    row_hash         BYTEA,
    CONSTRAINT chk_audit_log_auth_mode CHECK (auth_mode IN ('none', 'simple-key', 'managed', 'byot')),
    CONSTRAINT chk_audit_log_actor_kind CHECK (
        actor_kind IS NULL OR actor_kind IN ('human', 'agent', 'mcp', 'scheduler', 'api_key')),
    CONSTRAINT audit_log_parent_audit_id_fkey FOREIGN KEY (parent_audit_id)
        REFERENCES audit_log (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED
);
-- Both reports filter on (org_id, timestamp): the composite index the reference lacked.
CREATE INDEX idx_audit_log_org_ts ON audit_log (org_id, "timestamp");
CREATE UNIQUE INDEX idx_audit_log_org_event_id ON audit_log (org_id, event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX idx_audit_log_chain ON audit_log ((coalesce(org_id, '')), chain_seq);
CREATE INDEX idx_audit_log_deleted_at ON audit_log (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX idx_audit_log_parent_audit_id ON audit_log (parent_audit_id) WHERE parent_audit_id IS NOT NULL;

-- One row per organization (chain_key = org_id, '' for rows without one): the chain's head.
CREATE TABLE audit_chain_head (
    chain_key TEXT PRIMARY KEY,
    last_seq  BIGINT NOT NULL,
    last_hash BYTEA
);

-- Hashes of rows removed by the retention purge, so that verification stays valid after purges.
CREATE TABLE audit_log_tombstone (
    chain_key  TEXT NOT NULL,
    chain_seq  BIGINT NOT NULL,
    audit_id   UUID NOT NULL,
    prev_hash  BYTEA,
    row_hash   BYTEA NOT NULL,
    purged_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_key, chain_seq)
);

CREATE FUNCTION atlas_normalize_table(name TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN n LIKE 'public.%' THEN substr(n, 8) ELSE n END
    FROM (SELECT lower(translate(btrim(name), '"`[]', '')) AS n) s
$$;

-- Columns of `tbl` read by one query: from columns_by_table when the row has it,
-- otherwise (legacy Atlas rows) the query's whole columns_accessed list.
CREATE FUNCTION atlas_columns_for(cbt JSONB, ca JSONB, tbl TEXT) RETURNS JSONB
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_typeof(cbt) = 'object' THEN
            CASE WHEN jsonb_typeof(cbt -> tbl) = 'array' THEN cbt -> tbl ELSE '[]'::jsonb END
        WHEN jsonb_typeof(ca) = 'array' THEN ca
        ELSE '[]'::jsonb
    END
$$;

CREATE FUNCTION atlas_tables_of(ta JSONB) RETURNS JSONB
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(ta) = 'array' THEN ta ELSE '[]'::jsonb END
$$;

-- The canonical content covered by a row's hash. parent_audit_id and deleted_at are excluded:
-- the retention purge may change them (ON DELETE SET NULL, soft delete).
CREATE FUNCTION atlas_audit_content(a audit_log) RETURNS TEXT
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_array(
        a.id::text, a.org_id, a.chain_seq,
        to_char(a."timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        a.user_id, a.user_label, a.auth_mode, a.sql, a.duration_ms, a.row_count, a.success, a.error,
        a.source_id, a.source_type, a.target_host, a.tables_accessed, a.columns_accessed,
        a.actor_kind, a.client_id, a.tool_name, a.event_id, a.columns_by_table, a.parse_error
    )::text
$$;

CREATE FUNCTION atlas_audit_hash(a audit_log, prev BYTEA) RETURNS BYTEA
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(coalesce(encode(prev, 'hex'), 'genesis') || '|' || atlas_audit_content(a), 'UTF8'))
$$;

-- Every insert, by any writer: normalize table names, then link the row into its org's chain.
-- The chain head row is locked (FOR UPDATE) the first time a transaction writes to an org's chain;
-- from then on the running (seq, hash) lives in a transaction-local setting, and the statement-level
-- trigger below writes the head back once per statement. (Updating the head row once per inserted
-- row would grow a chain of row versions inside the transaction and make bulk inserts quadratic.)
CREATE FUNCTION atlas_audit_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k     TEXT := coalesce(NEW.org_id, '');
    g     TEXT := 'atlas.chain_' || md5(coalesce(NEW.org_id, ''));
    state TEXT := current_setting(g, true);
    s     BIGINT;
    prev  BYTEA;
BEGIN
    -- Normalize only names that need it (uppercase, quotes, brackets, a public. prefix): most writers,
    -- the ingest API included, send normalized names, and the check is much cheaper than the rewrite.
    IF jsonb_typeof(NEW.tables_accessed) = 'array' AND (NEW.tables_accessed = '[]'::jsonb
            OR NEW.tables_accessed::text ~ '[A-Z`]|\\"|public\.|"\[|\]"') THEN
        NEW.tables_accessed := (
            SELECT CASE WHEN count(*) = 0 THEN NULL
                        ELSE jsonb_agg(DISTINCT atlas_normalize_table(t)) END
            FROM jsonb_array_elements_text(NEW.tables_accessed) t);
    END IF;
    IF jsonb_typeof(NEW.columns_by_table) = 'object'
            AND NEW.columns_by_table::text ~ '[A-Z`]|\\"|public\.|"\[|\]"' THEN
        NEW.columns_by_table := (
            SELECT coalesce(jsonb_object_agg(atlas_normalize_table(e.key), e.value), '{}'::jsonb)
            FROM jsonb_each(NEW.columns_by_table) e);
    END IF;
    IF state IS NULL OR state = '' THEN
        INSERT INTO audit_chain_head (chain_key, last_seq, last_hash) VALUES (k, 0, NULL)
            ON CONFLICT (chain_key) DO NOTHING;
        SELECT last_seq, last_hash INTO s, prev FROM audit_chain_head WHERE chain_key = k FOR UPDATE;
    ELSE
        s := split_part(state, ':', 1)::bigint;
        prev := decode(split_part(state, ':', 2), 'hex');
        IF prev = ''::bytea THEN prev := NULL; END IF;
    END IF;
    NEW.chain_seq := s + 1;
    NEW.prev_hash := prev;
    NEW.row_hash := atlas_audit_hash(NEW, prev);
    PERFORM set_config(g, NEW.chain_seq::text || ':' || encode(NEW.row_hash, 'hex'), true);
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION atlas_audit_before_insert();

-- Append-only: content can never change; only the retention purge (which sets
-- atlas.retention_purge = 'on' in its transaction) may soft-delete or remove rows.
CREATE FUNCTION atlas_audit_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('atlas.retention_purge', true), '') <> 'on' THEN
        RAISE EXCEPTION 'audit_log is append-only: % is refused (only the retention purge may remove rows)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF atlas_audit_content(NEW) IS DISTINCT FROM atlas_audit_content(OLD)
           OR NEW.chain_seq IS DISTINCT FROM OLD.chain_seq
           OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash
           OR NEW.row_hash IS DISTINCT FROM OLD.row_hash
           OR NEW.ingested_at IS DISTINCT FROM OLD.ingested_at
           OR (OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS DISTINCT FROM OLD.deleted_at) THEN
            RAISE EXCEPTION 'audit_log is append-only: the purge may only set deleted_at'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.deleted_at IS NULL THEN
            RAISE EXCEPTION 'audit_log rows must be soft-deleted before they are removed'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
    RETURN NULL;  -- TRUNCATE (statement level)
END
$$;
CREATE TRIGGER audit_log_guard_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION atlas_audit_guard();
CREATE TRIGGER audit_log_guard_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION atlas_audit_guard();
CREATE FUNCTION atlas_audit_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: TRUNCATE is refused' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_guard_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_audit_refuse_truncate();
"""

ROLLUPS = r"""
-- Per-query table access, as the reports read it (successful, not deleted rows only).
CREATE VIEW audit_access AS
SELECT a.org_id, a.id AS audit_id, a."timestamp", a.user_id, t.table_name,
       atlas_columns_for(a.columns_by_table, a.columns_accessed, t.table_name) AS columns
FROM audit_log a
CROSS JOIN LATERAL jsonb_array_elements_text(atlas_tables_of(a.tables_accessed)) AS t(table_name)
WHERE a.success AND a.deleted_at IS NULL;

-- Daily (UTC) rollups that make reports fast. Maintained by statement-level triggers, so they
-- stay exact for rows inserted by any writer and for rows soft-deleted by the purge.
CREATE TABLE audit_access_daily (
    org_id      TEXT NOT NULL,
    day         DATE NOT NULL,
    table_name  TEXT NOT NULL,
    user_id     TEXT,
    query_count BIGINT NOT NULL,
    first_ts    TIMESTAMPTZ NOT NULL,
    last_ts     TIMESTAMPTZ NOT NULL,
    columns     TEXT[] NOT NULL,
    CONSTRAINT audit_access_daily_key UNIQUE NULLS NOT DISTINCT (org_id, day, table_name, user_id)
);
CREATE INDEX audit_access_daily_table_idx ON audit_access_daily (org_id, table_name, day);

CREATE TABLE audit_user_daily (
    org_id            TEXT NOT NULL,
    day               DATE NOT NULL,
    user_id           TEXT,
    query_count       BIGINT NOT NULL,
    table_query_count BIGINT NOT NULL,
    first_ts          TIMESTAMPTZ NOT NULL,
    last_ts           TIMESTAMPTZ NOT NULL,
    CONSTRAINT audit_user_daily_key UNIQUE NULLS NOT DISTINCT (org_id, day, user_id)
);

CREATE FUNCTION atlas_audit_rollup_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The chain heads advance once per statement (see atlas_audit_before_insert).
    UPDATE audit_chain_head h SET last_seq = x.chain_seq, last_hash = x.row_hash
    FROM (SELECT DISTINCT ON (coalesce(n.org_id, '')) coalesce(n.org_id, '') AS chain_key, n.chain_seq, n.row_hash
          FROM new_rows n WHERE n.chain_seq IS NOT NULL
          ORDER BY coalesce(n.org_id, ''), n.chain_seq DESC) x
    WHERE h.chain_key = x.chain_key AND h.last_seq < x.chain_seq;

    INSERT INTO audit_user_daily AS d
        (org_id, day, user_id, query_count, table_query_count, first_ts, last_ts)
    SELECT n.org_id, (n."timestamp" AT TIME ZONE 'UTC')::date, n.user_id, count(*),
           count(*) FILTER (WHERE jsonb_array_length(atlas_tables_of(n.tables_accessed)) > 0),
           min(n."timestamp"), max(n."timestamp")
    FROM new_rows n
    WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT audit_user_daily_key DO UPDATE SET
        query_count = d.query_count + EXCLUDED.query_count,
        table_query_count = d.table_query_count + EXCLUDED.table_query_count,
        first_ts = least(d.first_ts, EXCLUDED.first_ts),
        last_ts = greatest(d.last_ts, EXCLUDED.last_ts);

    INSERT INTO audit_access_daily AS d
        (org_id, day, table_name, user_id, query_count, first_ts, last_ts, columns)
    SELECT n.org_id, (n."timestamp" AT TIME ZONE 'UTC')::date, t.table_name, n.user_id,
           count(DISTINCT n.id), min(n."timestamp"), max(n."timestamp"),
           coalesce(array_agg(DISTINCT c.col ORDER BY c.col) FILTER (WHERE c.col IS NOT NULL), '{}')
    FROM new_rows n
    CROSS JOIN LATERAL jsonb_array_elements_text(atlas_tables_of(n.tables_accessed)) AS t(table_name)
    LEFT JOIN LATERAL jsonb_array_elements_text(
        atlas_columns_for(n.columns_by_table, n.columns_accessed, t.table_name)) AS c(col) ON true
    WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT audit_access_daily_key DO UPDATE SET
        query_count = d.query_count + EXCLUDED.query_count,
        first_ts = least(d.first_ts, EXCLUDED.first_ts),
        last_ts = greatest(d.last_ts, EXCLUDED.last_ts),
        columns = CASE WHEN EXCLUDED.columns <@ d.columns THEN d.columns
                       ELSE ARRAY(SELECT DISTINCT x FROM unnest(d.columns || EXCLUDED.columns) x ORDER BY x) END;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_log_rollup_insert AFTER INSERT ON audit_log
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION atlas_audit_rollup_insert();

-- Rebuild the rollups of the given (org, UTC day) pairs from audit_log.
CREATE FUNCTION atlas_rollup_rebuild(days JSONB) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS atlas_rebuild_days (org_id TEXT, day DATE) ON COMMIT DROP;
    DELETE FROM atlas_rebuild_days;
    INSERT INTO atlas_rebuild_days
        SELECT DISTINCT e->>'org_id', (e->>'day')::date FROM jsonb_array_elements(days) e;
    DELETE FROM audit_user_daily d USING atlas_rebuild_days r WHERE d.org_id = r.org_id AND d.day = r.day;
    DELETE FROM audit_access_daily d USING atlas_rebuild_days r WHERE d.org_id = r.org_id AND d.day = r.day;
    INSERT INTO audit_user_daily (org_id, day, user_id, query_count, table_query_count, first_ts, last_ts)
    SELECT a.org_id, r.day, a.user_id, count(*),
           count(*) FILTER (WHERE jsonb_array_length(atlas_tables_of(a.tables_accessed)) > 0),
           min(a."timestamp"), max(a."timestamp")
    FROM atlas_rebuild_days r
    JOIN audit_log a ON a.org_id = r.org_id
        AND a."timestamp" >= (r.day::timestamp AT TIME ZONE 'UTC')
        AND a."timestamp" < ((r.day + 1)::timestamp AT TIME ZONE 'UTC')
    WHERE a.success AND a.deleted_at IS NULL
    GROUP BY 1, 2, 3;
    INSERT INTO audit_access_daily (org_id, day, table_name, user_id, query_count, first_ts, last_ts, columns)
    SELECT x.org_id, r.day, x.table_name, x.user_id, count(DISTINCT x.audit_id), min(x."timestamp"),
           max(x."timestamp"),
           coalesce(array_agg(DISTINCT c.col ORDER BY c.col) FILTER (WHERE c.col IS NOT NULL), '{}')
    FROM atlas_rebuild_days r
    JOIN audit_access x ON x.org_id = r.org_id
        AND x."timestamp" >= (r.day::timestamp AT TIME ZONE 'UTC')
        AND x."timestamp" < ((r.day + 1)::timestamp AT TIME ZONE 'UTC')
    LEFT JOIN LATERAL jsonb_array_elements_text(x.columns) AS c(col) ON true
    GROUP BY 1, 2, 3, 4;
END
$$;

CREATE FUNCTION atlas_audit_rollup_remove() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    days JSONB;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_agg(DISTINCT jsonb_build_object('org_id', o.org_id,
                   'day', (o."timestamp" AT TIME ZONE 'UTC')::date))
        INTO days
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.org_id IS NOT NULL AND o.success AND o.deleted_at IS NULL AND n.deleted_at IS NOT NULL;
    ELSE
        SELECT jsonb_agg(DISTINCT jsonb_build_object('org_id', o.org_id,
                   'day', (o."timestamp" AT TIME ZONE 'UTC')::date))
        INTO days
        FROM old_rows o
        WHERE o.org_id IS NOT NULL AND o.success AND o.deleted_at IS NULL;
    END IF;
    IF days IS NOT NULL THEN
        PERFORM atlas_rollup_rebuild(days);
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit_log_tombstone (chain_key, chain_seq, audit_id, prev_hash, row_hash)
        SELECT coalesce(o.org_id, ''), o.chain_seq, o.id, o.prev_hash, o.row_hash
        FROM old_rows o WHERE o.chain_seq IS NOT NULL AND o.row_hash IS NOT NULL
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_log_rollup_update AFTER UPDATE ON audit_log
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_audit_rollup_remove();
CREATE TRIGGER audit_log_rollup_delete AFTER DELETE ON audit_log
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_audit_rollup_remove();
"""

COMPLIANCE = r"""
CREATE TABLE pii_column_classifications (
    id                  TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id              TEXT NOT NULL,
    table_name          TEXT NOT NULL,
    column_name         TEXT NOT NULL,
    connection_group_id TEXT,
    category            TEXT NOT NULL,
    confidence          TEXT NOT NULL DEFAULT 'medium',
    masking_strategy    TEXT NOT NULL DEFAULT 'partial',
    reviewed            BOOLEAN NOT NULL DEFAULT false,
    dismissed           BOOLEAN NOT NULL DEFAULT false,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Atlas Compliance additions: explainable, attributable detections
    method              TEXT,
    reason              TEXT,
    evidence            JSONB,
    source_id           TEXT,
    detected_at         TIMESTAMPTZ,
    last_seen_at        TIMESTAMPTZ
);
CREATE UNIQUE INDEX pii_column_classifications_unique ON pii_column_classifications
    (org_id, table_name, column_name, COALESCE(connection_group_id, '__default__'));
CREATE INDEX idx_pii_column_classifications_group ON pii_column_classifications (connection_group_id, org_id);

-- The catalog read by PII scans: lets SQL extraction attribute unqualified columns and expand *.
CREATE TABLE datasource_catalog (
    org_id      TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    column_name TEXT NOT NULL,
    data_type   TEXT,
    ordinal     INTEGER NOT NULL DEFAULT 0,
    scanned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, source_id, table_name, column_name)
);

CREATE TABLE admin_action_log (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    "timestamp"   TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id      TEXT,
    actor_email   TEXT,
    scope         TEXT NOT NULL DEFAULT 'workspace',
    org_id        TEXT,
    action_type   TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'success',
    metadata      JSONB,
    ip_address    TEXT,
    request_id    TEXT NOT NULL,
    anonymized_at TIMESTAMPTZ,
    CONSTRAINT chk_admin_action_scope CHECK (scope IN ('platform', 'workspace')),
    CONSTRAINT chk_admin_action_status CHECK (status IN ('success', 'failure'))
);
CREATE INDEX idx_admin_action_log_timestamp ON admin_action_log ("timestamp");
CREATE INDEX idx_admin_action_log_actor_id ON admin_action_log (actor_id);
CREATE INDEX idx_admin_action_log_action_type ON admin_action_log (action_type);
CREATE INDEX idx_admin_action_log_org_ts ON admin_action_log (org_id, "timestamp");

CREATE TABLE audit_retention_config (
    id                     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                 TEXT NOT NULL UNIQUE,
    retention_days         INTEGER DEFAULT 365 CHECK (retention_days IS NULL OR retention_days >= 7),
    hard_delete_delay_days INTEGER NOT NULL DEFAULT 30 CHECK (hard_delete_delay_days >= 0),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by             TEXT,
    last_purge_at          TIMESTAMPTZ,
    last_purge_count       INTEGER
);

-- Every organization gets the 365-day default policy, whoever creates it (the reference's drift, §7.22).
CREATE FUNCTION atlas_default_retention() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_retention_config (org_id) VALUES (NEW.id) ON CONFLICT (org_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER organization_default_retention AFTER INSERT ON organization
    FOR EACH ROW EXECUTE FUNCTION atlas_default_retention();
"""


def upgrade() -> None:
    for script in (RANDOM_BYTES, AUTH, AUDIT, ROLLUPS, COMPLIANCE):
        run_sql(script)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
