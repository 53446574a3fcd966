"""Any SQL a database accepts is storable: no unbounded text in an index key.

PostgreSQL refuses an index row over 2,704 bytes (SQLSTATE 54000). The rollups' covering indexes
carried `extra_columns`, the names of a table's columns past the 64th, so one statement reading a few
hundred columns (or a day of statements adding up to them) failed its whole batch, on every retry.
The covering indexes now carry `has_extra` (whether a rollup row has such names; reports fetch the
names only for those rows). Table and column names longer than 512 bytes are folded to a readable
prefix and a digest (`atlas_fold_name`, the same rule as `audit/names.py`), so that a rollup key
(org, table, column, user) always fits.

Revision ID: 0008
Revises: 0007
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION atlas_fold_name(name TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN octet_length(name) <= 512 THEN name
                ELSE left(name, 120) || '~' || left(encode(sha256(convert_to(name, 'UTF8')), 'hex'), 16) END
$$;

CREATE OR REPLACE FUNCTION atlas_normalize_table(name TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT atlas_fold_name(CASE WHEN n LIKE 'public.%' THEN substr(n, 8) ELSE n END)
    FROM (SELECT lower(translate(btrim(name), '"`[]', '')) AS n) s
$$;

-- The column names of a JSON array, each folded; the array itself when no name needs it.
CREATE OR REPLACE FUNCTION atlas_fold_columns(cols JSONB) RETURNS JSONB
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_typeof(cols) <> 'array' OR octet_length(cols::text) <= 512 THEN cols
        WHEN NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(cols) c WHERE octet_length(c) > 512) THEN cols
        ELSE (SELECT jsonb_agg(atlas_fold_name(c) ORDER BY n) FROM jsonb_array_elements_text(cols) WITH ORDINALITY e(c, n))
    END
$$;

-- As in 0001, plus: names longer than 512 bytes are folded (tables through atlas_normalize_table, columns
-- through atlas_fold_columns). The cheap length checks keep ordinary rows off the rewriting paths.
CREATE OR REPLACE FUNCTION atlas_audit_before_insert() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    k     TEXT := coalesce(NEW.org_id, '');
    g     TEXT := 'atlas.chain_' || md5(coalesce(NEW.org_id, ''));
    state TEXT := current_setting(g, true);
    s     BIGINT;
    prev  BYTEA;
BEGIN
    -- Normalize only names that need it (uppercase, quotes, brackets, a public. prefix, great length):
    -- most writers, the ingest API included, send normalized names, and the check is much cheaper than
    -- the rewrite.
    IF jsonb_typeof(NEW.tables_accessed) = 'array' AND (NEW.tables_accessed = '[]'::jsonb
            OR NEW.tables_accessed::text ~ '[A-Z`]|\\"|public\.|"\[|\]"'
            OR octet_length(NEW.tables_accessed::text) > 512) THEN
        NEW.tables_accessed := (
            SELECT CASE WHEN count(*) = 0 THEN NULL
                        ELSE jsonb_agg(DISTINCT atlas_normalize_table(t)) END
            FROM jsonb_array_elements_text(NEW.tables_accessed) t);
    END IF;
    IF jsonb_typeof(NEW.columns_by_table) = 'object'
            AND (NEW.columns_by_table::text ~ '[A-Z`]|\\"|public\.|"\[|\]"'
                 OR octet_length(NEW.columns_by_table::text) > 512) THEN
        NEW.columns_by_table := (
            SELECT coalesce(jsonb_object_agg(atlas_normalize_table(e.key), atlas_fold_columns(e.value)), '{}'::jsonb)
            FROM jsonb_each(NEW.columns_by_table) e);
    END IF;
    NEW.columns_accessed := atlas_fold_columns(NEW.columns_accessed);
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

-- Reports read the covering indexes index-only; they need to know whether a row has names past the 64th
-- column (then they fetch those names from the row), not the names themselves.
ALTER TABLE audit_access_daily ADD COLUMN IF NOT EXISTS has_extra BOOLEAN GENERATED ALWAYS AS (extra_columns IS NOT NULL) STORED;
ALTER TABLE audit_access_weekly ADD COLUMN IF NOT EXISTS has_extra BOOLEAN GENERATED ALWAYS AS (extra_columns IS NOT NULL) STORED;
DROP INDEX IF EXISTS audit_access_daily_org_day;
CREATE INDEX audit_access_daily_org_day ON audit_access_daily (org_id, day)
    INCLUDE (table_name, user_id, query_count, first_ts, last_ts, col_mask, has_extra);
DROP INDEX IF EXISTS audit_access_weekly_org_week;
CREATE INDEX audit_access_weekly_org_week ON audit_access_weekly (org_id, week)
    INCLUDE (table_name, user_id, query_count, first_ts, last_ts, col_mask, has_extra);
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
