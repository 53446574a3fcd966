-- What the rollups must hold, defined once.
--
-- The reports read three rollups: audit_user_daily, audit_access_daily and audit_access_weekly. The
-- insert trigger (atlas_audit_rollup_insert, migration 0007) adds each statement's rows to them
-- incrementally; everything else that needs their content derives it from the raw rows through the
-- functions below: the rebuild after a soft delete or purge (atlas_rollup_rebuild) and `audit verify`
-- (atlas_rollup_differences). Migrations apply this whole file with CREATE OR REPLACE; a migration that
-- changes a rollup's meaning changes it here and applies it again, so the rebuild and the verifier cannot
-- disagree, and the verifier checks the insert trigger against the same definition.
--
-- A row counts when it belongs to the org, succeeded and is not soft-deleted; its day is its UTC date; a
-- week starts on Monday. p_from / p_to bound the days (inclusive; NULL = unbounded).

-- One row per (day, user): every counted query, and those that touched at least one table.
CREATE OR REPLACE FUNCTION atlas_rollup_expected_user_daily(p_org TEXT, p_from DATE, p_to DATE)
RETURNS TABLE (org_id TEXT, day DATE, user_id TEXT, query_count BIGINT, table_query_count BIGINT,
               first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ)
LANGUAGE sql STABLE SET jit = off AS $$
    SELECT a.org_id, (a."timestamp" AT TIME ZONE 'UTC')::date, a.user_id, count(*),
           count(*) FILTER (WHERE jsonb_array_length(atlas_tables_of(a.tables_accessed)) > 0),
           min(a."timestamp"), max(a."timestamp")
    FROM audit_log a
    WHERE a.org_id = p_org AND a.success AND a.deleted_at IS NULL
      AND (p_from IS NULL OR a."timestamp" >= (p_from::timestamp AT TIME ZONE 'UTC'))
      AND (p_to IS NULL OR a."timestamp" < ((p_to + 1)::timestamp AT TIME ZONE 'UTC'))
    GROUP BY 1, 2, 3
$$;

-- One row per (day, table, user): the queries that touched the table (a table named twice by one query
-- counts once) and the columns read from it, by name, sorted. Rows are grouped by their access set
-- first (tables, columns per table, columns), so each distinct set is expanded once, as the insert
-- trigger does.
CREATE OR REPLACE FUNCTION atlas_rollup_expected_access(p_org TEXT, p_from DATE, p_to DATE)
RETURNS TABLE (org_id TEXT, day DATE, table_name TEXT, user_id TEXT, query_count BIGINT,
               first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ, columns TEXT[])
LANGUAGE sql STABLE SET jit = off SET work_mem = '64MB' AS $$
    WITH r AS MATERIALIZED (
        SELECT (a."timestamp" AT TIME ZONE 'UTC')::date AS day, a.user_id,
               coalesce(a.tables_accessed, 'null') AS ta, coalesce(a.columns_by_table, 'null') AS cbt,
               coalesce(a.columns_accessed, 'null') AS ca,
               count(*) AS n, min(a."timestamp") AS first_ts, max(a."timestamp") AS last_ts
        FROM audit_log a
        WHERE a.org_id = p_org AND a.success AND a.deleted_at IS NULL
          AND (p_from IS NULL OR a."timestamp" >= (p_from::timestamp AT TIME ZONE 'UTC'))
          AND (p_to IS NULL OR a."timestamp" < ((p_to + 1)::timestamp AT TIME ZONE 'UTC'))
        GROUP BY 1, 2, 3, 4, 5
    ), st AS MATERIALIZED (
        SELECT s.ta, s.cbt, s.ca, t.table_name,
               ARRAY(SELECT jsonb_array_elements_text(atlas_columns_for(s.cbt, s.ca, t.table_name))) AS cols
        FROM (SELECT DISTINCT r.ta, r.cbt, r.ca FROM r) s
        CROSS JOIN LATERAL (SELECT DISTINCT e FROM jsonb_array_elements_text(atlas_tables_of(s.ta)) e) AS t(table_name)
    )
    SELECT p_org, r.day, st.table_name, r.user_id, sum(r.n)::bigint, min(r.first_ts), max(r.last_ts),
           coalesce((SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(array_agg_extra(st.cols)) c), '{}')
    FROM r JOIN st ON st.ta = r.ta AND st.cbt = r.cbt AND st.ca = r.ca
    GROUP BY r.day, st.table_name, r.user_id
$$;

-- The columns a stored access rollup row stands for: its mask's bits, read through the org's column
-- dictionary, and the columns kept by name past the 64th.
CREATE OR REPLACE FUNCTION atlas_rollup_stored_columns(p_org TEXT, p_table TEXT, p_mask BIGINT, p_extra TEXT[])
RETURNS TEXT[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(DISTINCT c ORDER BY c), '{}') FROM (
        SELECT d.column_name AS c FROM audit_column_dict d
        WHERE p_mask <> 0 AND d.org_id = p_org AND d.table_name = p_table AND d.bit IS NOT NULL
          AND p_mask & (1::bigint << d.bit) <> 0
        UNION ALL
        SELECT unnest(p_extra)) x
$$;

-- Every difference between the stored rollups and what the raw rows say, from p_from (NULL = the org's
-- whole history; weeks from the Monday of p_from's week). One line per differing field: `row` when a
-- rollup row is missing (stored NULL) or should not exist (expected NULL).
CREATE OR REPLACE FUNCTION atlas_rollup_differences(p_org TEXT, p_from DATE)
RETURNS TABLE (rollup TEXT, period DATE, table_name TEXT, user_id TEXT, field TEXT, stored TEXT, expected TEXT)
LANGUAGE plpgsql STABLE SET jit = off SET work_mem = '64MB' AS $$
DECLARE
    wfrom DATE := date_trunc('week', p_from)::date;
BEGIN
    RETURN QUERY
    WITH both_sides AS (
        SELECT true AS is_stored, d.day, d.user_id, d.query_count, d.table_query_count, d.first_ts, d.last_ts
        FROM audit_user_daily d WHERE d.org_id = p_org AND (p_from IS NULL OR d.day >= p_from)
        UNION ALL
        SELECT false, e.day, e.user_id, e.query_count, e.table_query_count, e.first_ts, e.last_ts
        FROM atlas_rollup_expected_user_daily(p_org, p_from, NULL) e
    ), g AS (
        SELECT b.day, b.user_id,
               count(*) FILTER (WHERE b.is_stored) AS s_rows, count(*) FILTER (WHERE NOT b.is_stored) AS e_rows,
               max(b.query_count) FILTER (WHERE b.is_stored) AS s_n, max(b.query_count) FILTER (WHERE NOT b.is_stored) AS e_n,
               max(b.table_query_count) FILTER (WHERE b.is_stored) AS s_t,
               max(b.table_query_count) FILTER (WHERE NOT b.is_stored) AS e_t,
               max(b.first_ts) FILTER (WHERE b.is_stored) AS s_f, max(b.first_ts) FILTER (WHERE NOT b.is_stored) AS e_f,
               max(b.last_ts) FILTER (WHERE b.is_stored) AS s_l, max(b.last_ts) FILTER (WHERE NOT b.is_stored) AS e_l
        FROM both_sides b GROUP BY b.day, b.user_id
    )
    SELECT 'user_daily'::text, g.day, NULL::text, g.user_id, v.field, v.s, v.e
    FROM g CROSS JOIN LATERAL (VALUES
        ('row', CASE WHEN g.s_rows > 0 THEN 'present' END, CASE WHEN g.e_rows > 0 THEN 'present' END),
        ('query_count', g.s_n::text, g.e_n::text),
        ('table_query_count', g.s_t::text, g.e_t::text),
        ('first_ts', g.s_f::text, g.e_f::text),
        ('last_ts', g.s_l::text, g.e_l::text)) AS v(field, s, e)
    WHERE CASE WHEN g.s_rows = 0 OR g.e_rows = 0 THEN v.field = 'row' ELSE v.s IS DISTINCT FROM v.e END
    ORDER BY 2, 4 NULLS FIRST, 5;

    RETURN QUERY
    WITH expected AS MATERIALIZED (
        SELECT * FROM atlas_rollup_expected_access(p_org, wfrom, NULL)
    ), daily AS (
        SELECT true AS is_stored, d.day AS period, d.table_name, d.user_id, d.query_count, d.first_ts, d.last_ts,
               atlas_rollup_stored_columns(p_org, d.table_name, d.col_mask, d.extra_columns) AS columns
        FROM audit_access_daily d WHERE d.org_id = p_org AND (p_from IS NULL OR d.day >= p_from)
        UNION ALL
        SELECT false, e.day, e.table_name, e.user_id, e.query_count, e.first_ts, e.last_ts, e.columns
        FROM expected e WHERE p_from IS NULL OR e.day >= p_from
    ), weekly AS (
        SELECT true AS is_stored, w.week AS period, w.table_name, w.user_id, w.query_count, w.first_ts, w.last_ts,
               atlas_rollup_stored_columns(p_org, w.table_name, w.col_mask, w.extra_columns) AS columns
        FROM audit_access_weekly w WHERE w.org_id = p_org AND (p_from IS NULL OR w.week >= wfrom)
        UNION ALL
        SELECT false, date_trunc('week', e.day)::date, e.table_name, e.user_id, sum(e.query_count)::bigint,
               min(e.first_ts), max(e.last_ts),
               (SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(array_agg_extra(e.columns)) c)
        FROM expected e GROUP BY 2, 3, 4
    ), g AS (
        SELECT x.rollup, x.period, x.table_name, x.user_id,
               count(*) FILTER (WHERE x.is_stored) AS s_rows, count(*) FILTER (WHERE NOT x.is_stored) AS e_rows,
               max(x.query_count) FILTER (WHERE x.is_stored) AS s_n, max(x.query_count) FILTER (WHERE NOT x.is_stored) AS e_n,
               max(x.first_ts) FILTER (WHERE x.is_stored) AS s_f, max(x.first_ts) FILTER (WHERE NOT x.is_stored) AS e_f,
               max(x.last_ts) FILTER (WHERE x.is_stored) AS s_l, max(x.last_ts) FILTER (WHERE NOT x.is_stored) AS e_l,
               max(array_to_string(x.columns, ',')) FILTER (WHERE x.is_stored) AS s_c,
               max(array_to_string(coalesce(x.columns, '{}'), ',')) FILTER (WHERE NOT x.is_stored) AS e_c
        FROM (SELECT 'access_daily'::text AS rollup, d.* FROM daily d
              UNION ALL SELECT 'access_weekly', w.* FROM weekly w) x
        GROUP BY x.rollup, x.period, x.table_name, x.user_id
    )
    SELECT g.rollup, g.period, g.table_name, g.user_id, v.field, v.s, v.e
    FROM g CROSS JOIN LATERAL (VALUES
        ('row', CASE WHEN g.s_rows > 0 THEN 'present' END, CASE WHEN g.e_rows > 0 THEN 'present' END),
        ('query_count', g.s_n::text, g.e_n::text),
        ('first_ts', g.s_f::text, g.e_f::text),
        ('last_ts', g.s_l::text, g.e_l::text),
        ('columns', g.s_c, g.e_c)) AS v(field, s, e)
    WHERE CASE WHEN g.s_rows = 0 OR g.e_rows = 0 THEN v.field = 'row' ELSE v.s IS DISTINCT FROM v.e END
    ORDER BY 1, 2, 3, 4 NULLS FIRST, 5;
END
$$;

-- The rebuild after soft deletes and purges: the given (org, day) pairs' daily rollups are replaced by
-- what the raw rows say, then their weeks are summed again from the days. No temporary tables: these run
-- as the owner inside definer triggers, where a name resolved in pg_temp could be a writer's own table.
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
    SELECT x.org_id, x.day, x.user_id, x.query_count, x.table_query_count, x.first_ts, x.last_ts
    FROM (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'day')::date AS day FROM jsonb_array_elements(days) e) r
    CROSS JOIN LATERAL atlas_rollup_expected_user_daily(r.org_id, r.day, r.day) x;
    -- Columns with a bit in the dictionary go into the mask; the others (past the 64th) are kept by name.
    INSERT INTO audit_access_daily
        (org_id, day, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
    SELECT x.org_id, x.day, x.table_name, x.user_id, x.query_count, x.first_ts, x.last_ts,
           coalesce((SELECT bit_or(1::bigint << dc.bit) FROM audit_column_dict dc
                     WHERE dc.org_id = x.org_id AND dc.table_name = x.table_name
                       AND dc.column_name = ANY (x.columns) AND dc.bit IS NOT NULL), 0),
           (SELECT array_agg(c ORDER BY c) FROM unnest(x.columns) c
            WHERE NOT EXISTS (SELECT 1 FROM audit_column_dict dc WHERE dc.org_id = x.org_id
                              AND dc.table_name = x.table_name AND dc.column_name = c AND dc.bit IS NOT NULL))
    FROM (SELECT DISTINCT e->>'org_id' AS org_id, (e->>'day')::date AS day FROM jsonb_array_elements(days) e) r
    CROSS JOIN LATERAL atlas_rollup_expected_access(r.org_id, r.day, r.day) x;
    PERFORM atlas_weekly_rebuild((SELECT jsonb_agg(DISTINCT jsonb_build_object(
        'org_id', e->>'org_id', 'week', date_trunc('week', (e->>'day')::date)::date))
        FROM jsonb_array_elements(days) e));
END
$$;
REVOKE ALL ON FUNCTION atlas_rollup_rebuild(JSONB) FROM PUBLIC;
