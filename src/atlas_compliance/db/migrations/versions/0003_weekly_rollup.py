"""Weekly (UTC, Monday-based) access rollups beside the daily ones.

A report reads whole weeks from `audit_access_weekly`, the remaining whole days from
`audit_access_daily` and partial days from `audit_log`: a 90-day window reads about a third of the
rows it read from daily rollups alone.

Revision ID: 0003
Revises: 0002
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE audit_access_weekly (
    org_id        TEXT NOT NULL,
    week          DATE NOT NULL,
    table_name    TEXT NOT NULL,
    user_id       TEXT,
    query_count   BIGINT NOT NULL,
    first_ts      TIMESTAMPTZ NOT NULL,
    last_ts       TIMESTAMPTZ NOT NULL,
    col_mask      BIGINT NOT NULL DEFAULT 0,
    extra_columns TEXT[],
    CONSTRAINT audit_access_weekly_key UNIQUE NULLS NOT DISTINCT (org_id, week, table_name, user_id)
);
CREATE INDEX audit_access_weekly_org_week ON audit_access_weekly (org_id, week)
    INCLUDE (table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns);

-- Fold the given daily rollup rows' (org, week) pairs into the weekly table, replacing what was there.
CREATE FUNCTION atlas_weekly_rebuild(weeks JSONB) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS atlas_rebuild_weeks (org_id TEXT, week DATE) ON COMMIT DROP;
    DELETE FROM atlas_rebuild_weeks;
    INSERT INTO atlas_rebuild_weeks SELECT DISTINCT e->>'org_id', (e->>'week')::date FROM jsonb_array_elements(weeks) e;
    DELETE FROM audit_access_weekly w USING atlas_rebuild_weeks r WHERE w.org_id = r.org_id AND w.week = r.week;
    INSERT INTO audit_access_weekly
        (org_id, week, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
    SELECT d.org_id, r.week, d.table_name, d.user_id, sum(d.query_count), min(d.first_ts), max(d.last_ts),
           bit_or(d.col_mask),
           (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(array_agg_extra(d.extra_columns)) x)
    FROM atlas_rebuild_weeks r
    JOIN audit_access_daily d ON d.org_id = r.org_id AND d.day >= r.week AND d.day < r.week + 7
    GROUP BY d.org_id, r.week, d.table_name, d.user_id;
END
$$;
"""

# A tiny aggregate that concatenates text arrays (NULLs skipped), for the rare columns past the 64th.
AGGREGATE = r"""
CREATE FUNCTION atlas_array_cat(acc TEXT[], item TEXT[]) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN item IS NULL THEN acc ELSE coalesce(acc, '{}') || item END $$;
CREATE AGGREGATE array_agg_extra(TEXT[]) (SFUNC = atlas_array_cat, STYPE = TEXT[]);
"""

TRIGGERS = r"""
CREATE OR REPLACE FUNCTION atlas_audit_rollup_weekly() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_access_weekly AS w
        (org_id, week, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
    SELECT n.org_id, date_trunc('week', n."timestamp" AT TIME ZONE 'UTC')::date, t.table_name, n.user_id,
           count(DISTINCT n.id), min(n."timestamp"), max(n."timestamp"),
           coalesce(bit_or(1::bigint << dc.bit), 0),
           array_agg(DISTINCT c.col ORDER BY c.col) FILTER (WHERE c.col IS NOT NULL AND dc.bit IS NULL)
    FROM new_rows n
    CROSS JOIN LATERAL jsonb_array_elements_text(atlas_tables_of(n.tables_accessed)) AS t(table_name)
    LEFT JOIN LATERAL jsonb_array_elements_text(
        atlas_columns_for(n.columns_by_table, n.columns_accessed, t.table_name)) AS c(col) ON true
    LEFT JOIN audit_column_dict dc ON dc.org_id = n.org_id AND dc.table_name = t.table_name AND dc.column_name = c.col
    WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT audit_access_weekly_key DO UPDATE SET
        query_count = w.query_count + EXCLUDED.query_count,
        first_ts = least(w.first_ts, EXCLUDED.first_ts),
        last_ts = greatest(w.last_ts, EXCLUDED.last_ts),
        col_mask = w.col_mask | EXCLUDED.col_mask,
        extra_columns = CASE WHEN EXCLUDED.extra_columns IS NULL THEN w.extra_columns
            ELSE ARRAY(SELECT DISTINCT x FROM unnest(coalesce(w.extra_columns, '{}') || EXCLUDED.extra_columns) x
                       ORDER BY x) END;
    RETURN NULL;
END
$$;
-- Fires after the daily rollup trigger (triggers run in name order), so column bits exist.
CREATE TRIGGER audit_log_rollup_weekly AFTER INSERT ON audit_log
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION atlas_audit_rollup_weekly();

-- Soft deletes and removals rebuild the affected days (daily) and then their weeks (weekly).
CREATE OR REPLACE FUNCTION atlas_rollup_rebuild(days JSONB) RETURNS void
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
    INSERT INTO audit_access_daily
        (org_id, day, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
    SELECT x.org_id, r.day, x.table_name, x.user_id, count(DISTINCT x.audit_id), min(x."timestamp"),
           max(x."timestamp"), coalesce(bit_or(1::bigint << dc.bit), 0),
           array_agg(DISTINCT c.col ORDER BY c.col) FILTER (WHERE c.col IS NOT NULL AND dc.bit IS NULL)
    FROM atlas_rebuild_days r
    JOIN audit_access x ON x.org_id = r.org_id
        AND x."timestamp" >= (r.day::timestamp AT TIME ZONE 'UTC')
        AND x."timestamp" < ((r.day + 1)::timestamp AT TIME ZONE 'UTC')
    LEFT JOIN LATERAL jsonb_array_elements_text(x.columns) AS c(col) ON true
    LEFT JOIN audit_column_dict dc ON dc.org_id = x.org_id AND dc.table_name = x.table_name AND dc.column_name = c.col
    GROUP BY 1, 2, 3, 4;
    PERFORM atlas_weekly_rebuild((SELECT jsonb_agg(DISTINCT jsonb_build_object(
        'org_id', org_id, 'week', date_trunc('week', day)::date)) FROM atlas_rebuild_days));
END
$$;

INSERT INTO audit_access_weekly
    (org_id, week, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
SELECT org_id, date_trunc('week', day)::date, table_name, user_id, sum(query_count), min(first_ts), max(last_ts),
       bit_or(col_mask), array_agg_extra(extra_columns)
FROM audit_access_daily GROUP BY 1, 2, 3, 4;
"""


def upgrade() -> None:
    run_sql(AGGREGATE)
    run_sql(SCHEMA)
    run_sql(TRIGGERS)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
