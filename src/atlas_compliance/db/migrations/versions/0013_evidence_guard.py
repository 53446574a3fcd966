"""Evidence that no writer can change: a guard no session setting opens, purges by definer
functions, an installation retention floor, and hash chains over tombstones and admin actions.

Until now `audit_log`'s guard opened for any session that set `atlas.retention_purge = 'on'`, and
the rollups, tombstones and admin log were plain tables. From here on:

- Writes that only Atlas Compliance's own database code may make (rollups, the column dictionary,
  chain heads, tombstones, soft and hard deletes of `audit_log`) are allowed only when
  `atlas_evidence_trusted()` holds: the statement runs as the *owner* of the table (inside a
  `SECURITY DEFINER` function owned by the schema owner) and `atlas.owner_write` is `on`, which
  those functions set in their own `SET` clause. The service and outside writers never own the
  tables, so no session setting of theirs opens anything.
- `atlas_retention_purge()` is the purge: it reads the org's policy and the installation floor
  (`atlas_retention_floor`, written only by the owner) itself, soft-deletes and hard-deletes
  exactly the rows old enough, and records the purge in `admin_action_log`, in one statement.
- A legacy soft delete (`UPDATE audit_log SET deleted_at = now() ...`, Atlas's own purge
  statement) by any role still succeeds: rows old enough under the policy and the floor are
  soft-deleted (at `now()`, whatever time the statement gave), other rows are left untouched.
  Likewise a legacy hard delete removes only soft-deleted rows past both delays and the floor.
  Any other change of a row is refused.
- `audit_log_tombstone` and `admin_action_log` are append-only for every role and hash-chained
  per org (`record_seq`/`record_prev`/`record_hash`, `chain_seq`/`prev_hash`/`row_hash`).

The trigger functions are made `SECURITY DEFINER` by `atlas_compliance.db.security.secure_functions`
(here and after every `db upgrade`, so a later `CREATE OR REPLACE` of a rollup function cannot
silently drop it).

Revision ID: 0013
Revises: 0011
"""

from atlas_compliance.db.migrations.sqlscript import run_sql
from atlas_compliance.db.security import SECURE_SQL

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

TRUST = r"""
-- Whether the running statement may write Atlas's own evidence tables: it runs as the table's owner
-- (only SECURITY DEFINER functions owned by the schema owner get there; the service's and outside
-- writers' roles never own the tables) and in a function that set atlas.owner_write.
-- (Schema-qualified rather than SET search_path, so that it can be inlined: the guards call it per row.)
CREATE OR REPLACE FUNCTION atlas_evidence_trusted(rel regclass) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(pg_catalog.current_setting('atlas.owner_write', true), '') OPERATOR(pg_catalog.=) 'on'
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                   WHERE c.oid OPERATOR(pg_catalog.=) rel
                     AND c.relowner OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                             WHERE r.rolname OPERATOR(pg_catalog.=) current_user))
$$;

-- The installation's retention floor, set by `db upgrade` (the owner) from ATLAS_MIN_RETENTION_DAYS
-- and ATLAS_MIN_HARD_DELETE_DELAY_DAYS. One row.
CREATE TABLE IF NOT EXISTS atlas_retention_floor (
    id                         BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    min_retention_days         INTEGER NOT NULL DEFAULT 365 CHECK (min_retention_days BETWEEN 0 AND 36500),
    min_hard_delete_delay_days INTEGER NOT NULL DEFAULT 30 CHECK (min_hard_delete_delay_days BETWEEN 0 AND 36500),
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO atlas_retention_floor (id) VALUES (true) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION atlas_floor_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                   WHERE c.oid = TG_RELID AND r.rolname = current_user) THEN
        RAISE EXCEPTION 'atlas_retention_floor is set by the installation (db upgrade as the schema owner): % is refused for role %',
            TG_OP, current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS atlas_retention_floor_guard ON atlas_retention_floor;
CREATE TRIGGER atlas_retention_floor_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON atlas_retention_floor
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_floor_guard();

-- The cut-offs of one org's purge: rows older than soft_before may be soft-deleted (NULL: unlimited
-- retention); soft-deleted rows whose deleted_at is older than removable_before and whose timestamp
-- is older than floor_before may be removed. The policy can never go below the installation floor.
CREATE OR REPLACE FUNCTION atlas_retention_cutoffs(p_org TEXT, OUT soft_before TIMESTAMPTZ,
                                                   OUT removable_before TIMESTAMPTZ, OUT floor_before TIMESTAMPTZ)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    f_days  INTEGER;
    f_delay INTEGER;
    p_days  INTEGER := 365;
    p_delay INTEGER := 30;
    found_policy BOOLEAN := false;
BEGIN
    SELECT min_retention_days, min_hard_delete_delay_days INTO f_days, f_delay FROM atlas_retention_floor WHERE id;
    f_days := coalesce(f_days, 365);
    f_delay := coalesce(f_delay, 30);
    SELECT c.retention_days, c.hard_delete_delay_days, true INTO p_days, p_delay, found_policy
    FROM audit_retention_config c WHERE c.org_id = p_org;
    IF NOT coalesce(found_policy, false) THEN
        p_days := 365;
        p_delay := 30;
    END IF;
    floor_before := now() - make_interval(days => f_days);
    soft_before := CASE WHEN p_days IS NULL THEN NULL
                        ELSE now() - make_interval(days => greatest(p_days, f_days)) END;
    removable_before := now() - make_interval(days => greatest(coalesce(p_delay, 30), f_delay));
END
$$;

-- A policy below the floor is refused, whoever writes it (the service refuses it first, with a 400).
-- A new org's default row is raised to the floor; an old row below a since-raised floor may stay
-- (the purge applies the floor anyway) but cannot be lowered further.
CREATE OR REPLACE FUNCTION atlas_retention_policy_floor() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    f_days  INTEGER;
    f_delay INTEGER;
BEGIN
    SELECT min_retention_days, min_hard_delete_delay_days INTO f_days, f_delay FROM atlas_retention_floor WHERE id;
    f_days := coalesce(f_days, 365);
    f_delay := coalesce(f_delay, 30);
    IF TG_OP = 'INSERT' AND NEW.updated_by IS NULL THEN
        NEW.retention_days := CASE WHEN NEW.retention_days IS NULL THEN NULL ELSE greatest(NEW.retention_days, f_days) END;
        NEW.hard_delete_delay_days := greatest(NEW.hard_delete_delay_days, f_delay);
        RETURN NEW;
    END IF;
    IF NEW.retention_days IS NOT NULL AND NEW.retention_days < f_days
       AND (TG_OP = 'INSERT' OR NEW.retention_days IS DISTINCT FROM OLD.retention_days) THEN
        RAISE EXCEPTION 'retention_days % is below the installation minimum of % days', NEW.retention_days, f_days
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.hard_delete_delay_days < f_delay
       AND (TG_OP = 'INSERT' OR NEW.hard_delete_delay_days IS DISTINCT FROM OLD.hard_delete_delay_days) THEN
        RAISE EXCEPTION 'hard_delete_delay_days % is below the installation minimum of % days',
            NEW.hard_delete_delay_days, f_delay USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION atlas_retention_policy_floor() FROM PUBLIC;
DROP TRIGGER IF EXISTS audit_retention_config_floor ON audit_retention_config;
CREATE TRIGGER audit_retention_config_floor BEFORE INSERT OR UPDATE ON audit_retention_config
    FOR EACH ROW EXECUTE FUNCTION atlas_retention_policy_floor();
"""

AUDIT_GUARD = r"""
-- audit_log: content never changes, for anyone. deleted_at may be set once: freely by Atlas's own
-- purge function (trusted), by anyone else only on rows old enough under the policy and the floor
-- (other rows are silently left untouched, so a legacy purge statement keeps succeeding). A row is
-- removed only once soft-deleted, by the trusted purge or, for rows past both delays and the floor,
-- by anyone (other rows again left untouched).
CREATE OR REPLACE FUNCTION atlas_audit_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    c    RECORD;
    same audit_log;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- Every column but deleted_at and parent_audit_id must be unchanged (compared as a whole row:
        -- cheaper per row than building the hashed content twice).
        same := NEW;
        same.deleted_at := OLD.deleted_at;
        same.parent_audit_id := OLD.parent_audit_id;
        IF same IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION 'audit_log is append-only: a row''s content can never change (% refused for role %)',
                TG_OP, current_user USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.parent_audit_id IS DISTINCT FROM OLD.parent_audit_id
           AND (NEW.parent_audit_id IS NOT NULL
                OR EXISTS (SELECT 1 FROM audit_log p WHERE p.id = OLD.parent_audit_id)) THEN
            RAISE EXCEPTION 'audit_log is append-only: parent_audit_id is only cleared when its row is removed'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.deleted_at IS NOT DISTINCT FROM OLD.deleted_at THEN
            IF NEW.parent_audit_id IS DISTINCT FROM OLD.parent_audit_id OR atlas_evidence_trusted(TG_RELID) THEN
                RETURN NEW;  -- ON DELETE SET NULL of a removed parent
            END IF;
            RAISE EXCEPTION 'audit_log is append-only: only a retention soft delete (setting deleted_at) may update it'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.deleted_at IS NOT NULL THEN
            RAISE EXCEPTION 'audit_log is append-only: a soft delete cannot be undone or moved'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF atlas_evidence_trusted(TG_RELID) THEN
            RETURN NEW;
        END IF;
        SELECT * INTO c FROM atlas_retention_cutoffs(OLD.org_id);
        IF c.soft_before IS NULL OR OLD."timestamp" >= c.soft_before THEN
            RETURN NULL;  -- too new to purge: left untouched
        END IF;
        NEW.deleted_at := now();
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.deleted_at IS NULL THEN
            RAISE EXCEPTION 'audit_log rows must be soft-deleted by the retention purge before they are removed'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF atlas_evidence_trusted(TG_RELID) THEN
            RETURN OLD;
        END IF;
        SELECT * INTO c FROM atlas_retention_cutoffs(OLD.org_id);
        IF c.soft_before IS NOT NULL AND OLD."timestamp" < c.soft_before AND OLD."timestamp" < c.floor_before
           AND OLD.deleted_at <= c.removable_before THEN
            RETURN OLD;
        END IF;
        RETURN NULL;  -- not yet removable: left untouched
    END IF;
    RETURN NULL;
END
$$;

-- The rollups, the column dictionary and the retention policies are written only by Atlas's own
-- definer functions (trusted): the audit_log triggers, atlas_set_retention_policy, the purge.
CREATE OR REPLACE FUNCTION atlas_derived_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NOT atlas_evidence_trusted(TG_RELID) THEN
        RAISE EXCEPTION '% is written only by Atlas Compliance''s own database functions: % is refused for role %',
            TG_TABLE_NAME, TG_OP, current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

-- Tombstones and admin actions, once written, never change for anyone.
CREATE OR REPLACE FUNCTION atlas_append_only_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is refused for role %', TG_TABLE_NAME, TG_OP, current_user
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_access_daily', 'audit_access_weekly', 'audit_user_daily', 'audit_column_dict'] LOOP
        IF to_regclass(t) IS NOT NULL THEN
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_guard', t);
            EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION atlas_derived_guard()', t || '_guard', t);
        END IF;
    END LOOP;
END
$$;
-- Chain heads: any writer may create an org's head (the ingest path locks it); only the triggers move it.
DROP TRIGGER IF EXISTS audit_chain_head_guard ON audit_chain_head;
CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_derived_guard();
"""

# Rebuild functions without temporary tables: they run as the owner (inside the definer triggers), and
# a table name resolved in pg_temp could be a writer's own temporary table, with its own triggers.
REBUILD = r"""
CREATE OR REPLACE FUNCTION atlas_weekly_rebuild(weeks JSONB) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    DELETE FROM audit_access_weekly w
    USING (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'week')::date AS week FROM jsonb_array_elements(weeks) e) r
    WHERE w.org_id = r.org_id AND w.week = r.week;
    INSERT INTO audit_access_weekly
        (org_id, week, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
    SELECT d.org_id, r.week, d.table_name, d.user_id, sum(d.query_count), min(d.first_ts), max(d.last_ts),
           bit_or(d.col_mask),
           (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(array_agg_extra(d.extra_columns)) x)
    FROM (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'week')::date AS week FROM jsonb_array_elements(weeks) e) r
    JOIN audit_access_daily d ON d.org_id = r.org_id AND d.day >= r.week AND d.day < r.week + 7
    GROUP BY d.org_id, r.week, d.table_name, d.user_id;
END
$$;

CREATE OR REPLACE FUNCTION atlas_rollup_rebuild(days JSONB) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    DELETE FROM audit_user_daily d
    USING (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'day')::date AS day FROM jsonb_array_elements(days) e) r
    WHERE d.org_id = r.org_id AND d.day = r.day;
    DELETE FROM audit_access_daily d
    USING (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'day')::date AS day FROM jsonb_array_elements(days) e) r
    WHERE d.org_id = r.org_id AND d.day = r.day;
    INSERT INTO audit_user_daily (org_id, day, user_id, query_count, table_query_count, first_ts, last_ts)
    SELECT a.org_id, r.day, a.user_id, count(*),
           count(*) FILTER (WHERE jsonb_array_length(atlas_tables_of(a.tables_accessed)) > 0),
           min(a."timestamp"), max(a."timestamp")
    FROM (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'day')::date AS day FROM jsonb_array_elements(days) e) r
    JOIN audit_log a ON a.org_id = r.org_id
        AND a."timestamp" >= (r.day::timestamp AT TIME ZONE 'UTC')
        AND a."timestamp" < ((r.day + 1)::timestamp AT TIME ZONE 'UTC')
    WHERE a.success AND a.deleted_at IS NULL
    GROUP BY 1, 2, 3;
    INSERT INTO audit_access_daily
        (org_id, day, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
    SELECT x.org_id, r.day, x.table_name, x.user_id, count(DISTINCT x.audit_id), min(x."timestamp"),
           max(x."timestamp"), coalesce(bit_or(1::bigint << dc.bit), 0),
           array_agg(DISTINCT c.col ORDER BY c.col) FILTER (WHERE c.col IS NOT NULL AND dc.bit IS NULL)
    FROM (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'day')::date AS day FROM jsonb_array_elements(days) e) r
    JOIN audit_access x ON x.org_id = r.org_id
        AND x."timestamp" >= (r.day::timestamp AT TIME ZONE 'UTC')
        AND x."timestamp" < ((r.day + 1)::timestamp AT TIME ZONE 'UTC')
    LEFT JOIN LATERAL jsonb_array_elements_text(x.columns) AS c(col) ON true
    LEFT JOIN audit_column_dict dc ON dc.org_id = x.org_id AND dc.table_name = x.table_name AND dc.column_name = c.col
    GROUP BY 1, 2, 3, 4;
    PERFORM atlas_weekly_rebuild((SELECT jsonb_agg(DISTINCT jsonb_build_object(
        'org_id', e->>'org_id', 'week', date_trunc('week', (e->>'day')::date)::date))
        FROM jsonb_array_elements(days) e));
END
$$;
REVOKE ALL ON FUNCTION atlas_weekly_rebuild(JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION atlas_rollup_rebuild(JSONB) FROM PUBLIC;
"""

CHAINS = r"""
ALTER TABLE audit_log_tombstone ADD COLUMN IF NOT EXISTS record_seq BIGINT;
ALTER TABLE audit_log_tombstone ADD COLUMN IF NOT EXISTS record_prev BYTEA;
ALTER TABLE audit_log_tombstone ADD COLUMN IF NOT EXISTS record_hash BYTEA;
CREATE UNIQUE INDEX IF NOT EXISTS audit_log_tombstone_record ON audit_log_tombstone (chain_key, record_seq);

ALTER TABLE admin_action_log ADD COLUMN IF NOT EXISTS chain_seq BIGINT;
ALTER TABLE admin_action_log ADD COLUMN IF NOT EXISTS prev_hash BYTEA;
ALTER TABLE admin_action_log ADD COLUMN IF NOT EXISTS row_hash BYTEA;
CREATE UNIQUE INDEX IF NOT EXISTS admin_action_log_chain ON admin_action_log ((coalesce(org_id, '')), chain_seq);

-- Heads of the tombstone and admin-action chains (chain = 'tombstone' | 'admin_action'), advanced once
-- per statement; verification compares them with the newest record.
CREATE TABLE IF NOT EXISTS evidence_chain_head (
    chain     TEXT NOT NULL,
    chain_key TEXT NOT NULL,
    last_seq  BIGINT NOT NULL,
    last_hash BYTEA,
    PRIMARY KEY (chain, chain_key)
);

CREATE OR REPLACE FUNCTION atlas_tombstone_hash(t audit_log_tombstone, prev BYTEA) RETURNS BYTEA
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(coalesce(encode(prev, 'hex'), 'genesis') || '|' || jsonb_build_array(
        t.chain_key, t.chain_seq, t.audit_id::text, encode(t.prev_hash, 'hex'), encode(t.row_hash, 'hex'),
        to_char(t.purged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), t.record_seq)::text, 'UTF8'))
$$;

CREATE OR REPLACE FUNCTION atlas_admin_action_hash(a admin_action_log, prev BYTEA) RETURNS BYTEA
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(coalesce(encode(prev, 'hex'), 'genesis') || '|' || jsonb_build_array(
        a.id::text, to_char(a."timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), a.actor_id,
        a.actor_email, a.scope, a.org_id, a.action_type, a.target_type, a.target_id, a.status, a.metadata,
        a.ip_address, a.request_id, a.chain_seq)::text, 'UTF8'))
$$;

-- Link each new record to the newest one of its chain (rows inserted earlier by the same statement
-- are visible here). One writer per chain at a time: a transaction-scoped advisory lock.
CREATE OR REPLACE FUNCTION atlas_evidence_chain_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET atlas.owner_write = 'on' AS $$
DECLARE
    k    TEXT;
    s    BIGINT;
    prev BYTEA;
BEGIN
    IF TG_TABLE_NAME = 'audit_log_tombstone' THEN
        k := NEW.chain_key;
        PERFORM pg_advisory_xact_lock(hashtext('atlas_tombstone_chain'), hashtext(k));
        SELECT t.record_seq, t.record_hash INTO s, prev FROM audit_log_tombstone t
        WHERE t.chain_key = k AND t.record_seq IS NOT NULL ORDER BY t.record_seq DESC LIMIT 1;
        NEW.record_seq := coalesce(s, 0) + 1;
        NEW.record_prev := prev;
        NEW.record_hash := atlas_tombstone_hash(NEW, prev);
    ELSE
        k := coalesce(NEW.org_id, '');
        PERFORM pg_advisory_xact_lock(hashtext('atlas_admin_action_chain'), hashtext(k));
        SELECT a.chain_seq, a.row_hash INTO s, prev FROM admin_action_log a
        WHERE coalesce(a.org_id, '') = k AND a.chain_seq IS NOT NULL ORDER BY coalesce(a.org_id, '') DESC, a.chain_seq DESC LIMIT 1;
        NEW.chain_seq := coalesce(s, 0) + 1;
        NEW.prev_hash := prev;
        NEW.row_hash := atlas_admin_action_hash(NEW, prev);
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION atlas_evidence_chain_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET atlas.owner_write = 'on' AS $$
BEGIN
    IF TG_TABLE_NAME = 'audit_log_tombstone' THEN
        INSERT INTO evidence_chain_head AS h (chain, chain_key, last_seq, last_hash)
        SELECT DISTINCT ON (n.chain_key) 'tombstone', n.chain_key, n.record_seq, n.record_hash
        FROM new_rows n WHERE n.record_seq IS NOT NULL ORDER BY n.chain_key, n.record_seq DESC
        ON CONFLICT (chain, chain_key) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash
            WHERE h.last_seq < EXCLUDED.last_seq;
    ELSE
        INSERT INTO evidence_chain_head AS h (chain, chain_key, last_seq, last_hash)
        SELECT DISTINCT ON (coalesce(n.org_id, '')) 'admin_action', coalesce(n.org_id, ''), n.chain_seq, n.row_hash
        FROM new_rows n WHERE n.chain_seq IS NOT NULL ORDER BY coalesce(n.org_id, ''), n.chain_seq DESC
        ON CONFLICT (chain, chain_key) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash
            WHERE h.last_seq < EXCLUDED.last_seq;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION atlas_evidence_chain_insert() FROM PUBLIC;
REVOKE ALL ON FUNCTION atlas_evidence_chain_head() FROM PUBLIC;

-- Records written before this migration join their chains now, oldest first (guards dropped meanwhile).
DROP TRIGGER IF EXISTS audit_log_tombstone_guard ON audit_log_tombstone;
DROP TRIGGER IF EXISTS audit_log_tombstone_guard_insert ON audit_log_tombstone;
DROP TRIGGER IF EXISTS admin_action_log_guard ON admin_action_log;
DROP TRIGGER IF EXISTS evidence_chain_head_guard ON evidence_chain_head;
DO $$
DECLARE
    t    audit_log_tombstone;
    a    admin_action_log;
    s    BIGINT;
    prev BYTEA;
BEGIN
    FOR t IN SELECT x.* FROM audit_log_tombstone x WHERE x.record_seq IS NULL
             ORDER BY x.chain_key, x.purged_at, x.chain_seq LOOP
        s := NULL;
        prev := NULL;
        SELECT x.record_seq, x.record_hash INTO s, prev FROM audit_log_tombstone x
        WHERE x.chain_key = t.chain_key AND x.record_seq IS NOT NULL ORDER BY x.record_seq DESC LIMIT 1;
        t.record_seq := coalesce(s, 0) + 1;
        UPDATE audit_log_tombstone SET record_seq = t.record_seq, record_prev = prev,
                                       record_hash = atlas_tombstone_hash(t, prev)
        WHERE chain_key = t.chain_key AND chain_seq = t.chain_seq;
    END LOOP;
    FOR a IN SELECT x.* FROM admin_action_log x WHERE x.chain_seq IS NULL
             ORDER BY coalesce(x.org_id, ''), x."timestamp", x.id LOOP
        s := NULL;
        prev := NULL;
        SELECT x.chain_seq, x.row_hash INTO s, prev FROM admin_action_log x
        WHERE coalesce(x.org_id, '') = coalesce(a.org_id, '') AND x.chain_seq IS NOT NULL
        ORDER BY x.chain_seq DESC LIMIT 1;
        a.chain_seq := coalesce(s, 0) + 1;
        UPDATE admin_action_log SET chain_seq = a.chain_seq, prev_hash = prev, row_hash = atlas_admin_action_hash(a, prev)
        WHERE id = a.id;
    END LOOP;
END
$$;
INSERT INTO evidence_chain_head (chain, chain_key, last_seq, last_hash)
SELECT DISTINCT ON (chain_key) 'tombstone', chain_key, record_seq, record_hash FROM audit_log_tombstone
WHERE record_seq IS NOT NULL ORDER BY chain_key, record_seq DESC
ON CONFLICT (chain, chain_key) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash;
INSERT INTO evidence_chain_head (chain, chain_key, last_seq, last_hash)
SELECT DISTINCT ON (coalesce(org_id, '')) 'admin_action', coalesce(org_id, ''), chain_seq, row_hash FROM admin_action_log
WHERE chain_seq IS NOT NULL ORDER BY coalesce(org_id, ''), chain_seq DESC
ON CONFLICT (chain, chain_key) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash;

DROP TRIGGER IF EXISTS audit_log_tombstone_chain ON audit_log_tombstone;
CREATE TRIGGER audit_log_tombstone_chain BEFORE INSERT ON audit_log_tombstone
    FOR EACH ROW EXECUTE FUNCTION atlas_evidence_chain_insert();
DROP TRIGGER IF EXISTS audit_log_tombstone_head ON audit_log_tombstone;
CREATE TRIGGER audit_log_tombstone_head AFTER INSERT ON audit_log_tombstone
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION atlas_evidence_chain_head();
DROP TRIGGER IF EXISTS admin_action_log_chain ON admin_action_log;
CREATE TRIGGER admin_action_log_chain BEFORE INSERT ON admin_action_log
    FOR EACH ROW EXECUTE FUNCTION atlas_evidence_chain_insert();
DROP TRIGGER IF EXISTS admin_action_log_head ON admin_action_log;
CREATE TRIGGER admin_action_log_head AFTER INSERT ON admin_action_log
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION atlas_evidence_chain_head();

-- Only the purge (trusted) writes tombstones; nobody changes or removes one, or an admin action.
CREATE TRIGGER audit_log_tombstone_guard_insert BEFORE INSERT ON audit_log_tombstone
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_derived_guard();
CREATE TRIGGER audit_log_tombstone_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log_tombstone
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_append_only_guard();
CREATE TRIGGER admin_action_log_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON admin_action_log
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_append_only_guard();
CREATE TRIGGER evidence_chain_head_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON evidence_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_derived_guard();
"""

POLICY = r"""
-- Every organization gets the default policy (raised to the floor), whoever creates it; only this trigger
-- and the functions below write policies.
DROP TRIGGER IF EXISTS audit_retention_config_guard ON audit_retention_config;
CREATE TRIGGER audit_retention_config_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit_retention_config
    FOR EACH STATEMENT EXECUTE FUNCTION atlas_derived_guard();

-- Set an org's policy (p_delay NULL: keep the current delay) and record the change, previous and new
-- values, as an admin action, in one call. A value below the installation floor is refused
-- (check_violation, by the floor trigger).
CREATE OR REPLACE FUNCTION atlas_set_retention_policy(p_org TEXT, p_days INTEGER, p_delay INTEGER, p_actor_id TEXT,
                                                      p_actor_email TEXT, p_scope TEXT, p_request_id TEXT, p_ip TEXT)
RETURNS SETOF audit_retention_config
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET atlas.owner_write = 'on' AS $$
DECLARE
    old_days  INTEGER := 365;
    old_delay INTEGER := 30;
    found_row BOOLEAN := false;
    r         audit_retention_config;
BEGIN
    IF p_org IS NULL OR p_org = '' THEN
        RAISE EXCEPTION 'atlas_set_retention_policy needs an organization id' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.retention_days, c.hard_delete_delay_days, true INTO old_days, old_delay, found_row
    FROM audit_retention_config c WHERE c.org_id = p_org FOR UPDATE;
    IF NOT coalesce(found_row, false) THEN
        old_days := 365;
        old_delay := 30;
    END IF;
    INSERT INTO audit_retention_config AS c (org_id, retention_days, hard_delete_delay_days, updated_by)
    VALUES (p_org, p_days, coalesce(p_delay, old_delay), coalesce(p_actor_email, p_actor_id, 'unknown'))
    ON CONFLICT (org_id) DO UPDATE SET retention_days = EXCLUDED.retention_days,
        hard_delete_delay_days = EXCLUDED.hard_delete_delay_days, updated_by = EXCLUDED.updated_by, updated_at = now()
    RETURNING c.* INTO r;
    INSERT INTO admin_action_log (actor_id, actor_email, scope, org_id, action_type, target_type, target_id,
                                  status, metadata, ip_address, request_id)
    VALUES (p_actor_id, p_actor_email, coalesce(p_scope, 'workspace'), p_org, 'audit_retention.policy_update',
            'audit_retention', p_org, 'success',
            jsonb_build_object('previous', jsonb_build_object('retentionDays', old_days, 'hardDeleteDelayDays', old_delay),
                               'new', jsonb_build_object('retentionDays', r.retention_days,
                                                         'hardDeleteDelayDays', r.hard_delete_delay_days)),
            p_ip, coalesce(p_request_id, 'none'));
    RETURN NEXT r;
END
$$;
REVOKE ALL ON FUNCTION atlas_set_retention_policy(TEXT, INTEGER, INTEGER, TEXT, TEXT, TEXT, TEXT, TEXT) FROM PUBLIC;
"""

PURGE = r"""
-- The retention purge of one org, as the schema owner: soft-deletes rows older than the policy (never
-- newer than the installation floor), removes soft-deleted rows past the hard-delete delay (each leaves
-- a chained tombstone), and records the purge in admin_action_log, all in this one call.
CREATE OR REPLACE FUNCTION atlas_retention_purge(p_org TEXT, p_actor_id TEXT, p_actor_email TEXT, p_scope TEXT,
                                                 p_request_id TEXT, p_ip TEXT)
RETURNS TABLE (soft_deleted BIGINT, hard_deleted BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET atlas.owner_write = 'on' AS $$
DECLARE
    c RECORD;
    s BIGINT := 0;
    h BIGINT := 0;
BEGIN
    IF p_org IS NULL OR p_org = '' THEN
        RAISE EXCEPTION 'atlas_retention_purge needs an organization id' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO c FROM atlas_retention_cutoffs(p_org);
    IF c.soft_before IS NOT NULL THEN
        UPDATE audit_log SET deleted_at = now()
        WHERE org_id = p_org AND deleted_at IS NULL AND "timestamp" < c.soft_before;
        GET DIAGNOSTICS s = ROW_COUNT;
    END IF;
    DELETE FROM audit_log
    WHERE org_id = p_org AND deleted_at IS NOT NULL AND deleted_at <= c.removable_before
      AND "timestamp" < c.floor_before;
    GET DIAGNOSTICS h = ROW_COUNT;
    UPDATE audit_retention_config SET last_purge_at = now(), last_purge_count = s + h WHERE org_id = p_org;
    INSERT INTO admin_action_log (actor_id, actor_email, scope, org_id, action_type, target_type, target_id,
                                  status, metadata, ip_address, request_id)
    VALUES (p_actor_id, p_actor_email, coalesce(p_scope, 'workspace'), p_org, 'audit_retention.manual_purge',
            'audit_retention', p_org, 'success',
            jsonb_build_object('softDeleted', s, 'hardDeleted', h,
                               'softDeletedBefore', to_char(c.soft_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                               'removedSoftDeletedBefore', to_char(c.removable_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                               'floorBefore', to_char(c.floor_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
            p_ip, coalesce(p_request_id, 'none'));
    RETURN QUERY SELECT s, h;
END
$$;
REVOKE ALL ON FUNCTION atlas_retention_purge(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT) FROM PUBLIC;
"""


def upgrade() -> None:
    for script in (TRUST, AUDIT_GUARD, REBUILD, CHAINS, POLICY, PURGE, SECURE_SQL):
        run_sql(script)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
