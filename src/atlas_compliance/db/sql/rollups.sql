-- What the rollups must hold, defined once.
--
-- The reports read three rollups: audit_user_daily, audit_access_daily and audit_access_weekly. The
-- insert trigger (atlas_audit_rollup_insert, below) adds each statement's rows to them incrementally;
-- everything else that needs their content derives it from the raw rows through the functions below:
-- the rebuild after a soft delete or purge (atlas_rollup_rebuild) and `audit verify`
-- (atlas_rollup_differences), which so checks the trigger's sums against the same definition.
--
-- This file is applied whole (CREATE OR REPLACE only) at the end of every `db upgrade` that ran a
-- migration (atlas_compliance.db.migrate), after the migrations' table changes; a change here comes with a
-- migration (for its table changes, or empty) so that upgrades apply it, and with tests/schema.snapshot.
--
-- A row counts when it belongs to the org, succeeded and is not soft-deleted; its day is its UTC date; a
-- week starts on Monday. p_from / p_to bound the days (inclusive; NULL = unbounded).

-- Whether the label (ts, label) comes after (ts0, label0): the later time, then the greater label.
CREATE OR REPLACE FUNCTION atlas_label_is_later(ts TIMESTAMPTZ, label TEXT, ts0 TIMESTAMPTZ, label0 TEXT)
RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ts IS NOT NULL AND (ts0 IS NULL OR ts > ts0 OR (ts = ts0 AND label > label0))
$$;

-- The insert trigger (AFTER INSERT, once per statement, over the statement's new rows): adds them to the
-- rollups incrementally. db/security.py makes it SECURITY DEFINER after every upgrade.
CREATE OR REPLACE FUNCTION atlas_audit_rollup_insert() RETURNS trigger
LANGUAGE plpgsql
SET jit = off SET enable_mergejoin = off SET enable_nestloop = off SET enable_seqscan = off
SET enable_sort = off SET work_mem = '64MB' AS $$
BEGIN
    -- The chain heads advance once per statement (see atlas_audit_before_insert).
    UPDATE audit_chain_head h SET last_seq = n.chain_seq, last_hash = n.row_hash
    FROM new_rows n
    JOIN (SELECT coalesce(org_id, '') AS chain_key, max(chain_seq) AS last_seq
          FROM new_rows WHERE chain_seq IS NOT NULL GROUP BY 1) l
      ON coalesce(n.org_id, '') = l.chain_key AND n.chain_seq = l.last_seq
    WHERE h.chain_key = l.chain_key AND h.last_seq < l.last_seq;

    -- The label of a user's latest labelled query of the day (the latest time wins, then the greatest
    -- label), so that ids that never were members can be shown by the label their events carry.
    INSERT INTO audit_user_daily AS d
        (org_id, day, user_id, query_count, table_query_count, first_ts, last_ts, last_label, last_label_ts)
    SELECT * FROM (
        SELECT n.org_id, (n."timestamp" AT TIME ZONE 'UTC')::date, n.user_id, count(*),
               count(*) FILTER (WHERE jsonb_array_length(atlas_tables_of(n.tables_accessed)) > 0),
               min(n."timestamp"), max(n."timestamp"),
               (array_agg(n.user_label ORDER BY n."timestamp" DESC, n.user_label DESC)
                    FILTER (WHERE n.user_label IS NOT NULL AND n.user_id IS NOT NULL))[1],
               max(n."timestamp") FILTER (WHERE n.user_label IS NOT NULL AND n.user_id IS NOT NULL)
        FROM new_rows n
        WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
        GROUP BY 1, 2, 3) g
    ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT audit_user_daily_key DO UPDATE SET
        query_count = d.query_count + EXCLUDED.query_count,
        table_query_count = d.table_query_count + EXCLUDED.table_query_count,
        first_ts = least(d.first_ts, EXCLUDED.first_ts),
        last_ts = greatest(d.last_ts, EXCLUDED.last_ts),
        last_label = CASE WHEN atlas_label_is_later(EXCLUDED.last_label_ts, EXCLUDED.last_label,
                                                    d.last_label_ts, d.last_label)
                          THEN EXCLUDED.last_label ELSE d.last_label END,
        last_label_ts = CASE WHEN atlas_label_is_later(EXCLUDED.last_label_ts, EXCLUDED.last_label,
                                                       d.last_label_ts, d.last_label)
                             THEN EXCLUDED.last_label_ts ELSE d.last_label_ts END;

    -- Every (org, table, column) met for the first time gets the next bit of its table's mask
    -- (none past the 64th: those columns are kept by name in extra_columns).
    WITH sets AS (
        SELECT DISTINCT n.org_id, n.tables_accessed AS ta, n.columns_by_table AS cbt, n.columns_accessed AS ca
        FROM new_rows n
        WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
    ), seen AS (
        SELECT DISTINCT s.org_id, t.table_name, c.col
        FROM sets s
        CROSS JOIN LATERAL jsonb_array_elements_text(atlas_tables_of(s.ta)) AS t(table_name)
        CROSS JOIN LATERAL jsonb_array_elements_text(atlas_columns_for(s.cbt, s.ca, t.table_name)) AS c(col)
    ), missing AS MATERIALIZED (
        SELECT s.* FROM seen s
        WHERE (SELECT true FROM audit_column_dict d
               WHERE d.org_id = s.org_id AND d.table_name = s.table_name AND d.column_name = s.col) IS NULL
    ), numbered AS (
        SELECT m.org_id, m.table_name, m.col,
               coalesce((SELECT max(d.bit) FROM audit_column_dict d
                         WHERE d.org_id = m.org_id AND d.table_name = m.table_name), -1)
               + row_number() OVER (PARTITION BY m.org_id, m.table_name ORDER BY m.col) AS b,
               coalesce((SELECT true FROM audit_column_dict d WHERE d.org_id = m.org_id
                         AND d.table_name = m.table_name AND d.bit IS NULL LIMIT 1), false) AS full_mask
        FROM missing m
    )
    INSERT INTO audit_column_dict (org_id, table_name, column_name, bit)
    SELECT org_id, table_name, col, CASE WHEN b <= 63 AND NOT full_mask THEN b END FROM numbered
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING;

    -- An access set's SQL NULLs become JSON nulls so that sets compare with "="; both mean "none".
    WITH counted AS MATERIALIZED (  -- the statement's rows the rollups count
        SELECT n.org_id, n."timestamp" AS ts, n.user_id, coalesce(n.tables_accessed, 'null') AS ta,
               coalesce(n.columns_by_table, 'null') AS cbt, coalesce(n.columns_accessed, 'null') AS ca
        FROM new_rows n
        WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
    ), access_sets AS MATERIALIZED (  -- each distinct (tables, columns per table, columns)
        SELECT row_number() OVER () AS sid, u.*
        FROM (SELECT DISTINCT org_id, ta, cbt, ca FROM counted) u
    ), set_columns AS MATERIALIZED (  -- each distinct table of each set, with each of its columns (or none)
        SELECT s.sid, s.org_id, t.table_name, c.col
        FROM access_sets s
        CROSS JOIN LATERAL (SELECT DISTINCT e FROM jsonb_array_elements_text(atlas_tables_of(s.ta)) e) AS t(table_name)
        LEFT JOIN LATERAL jsonb_array_elements_text(atlas_columns_for(s.cbt, s.ca, t.table_name)) AS c(col) ON true
    ), column_bits AS MATERIALIZED (  -- each column's bit in its table's mask (NULL past the 64th)
        SELECT u.org_id, u.table_name, u.col,
               (SELECT d.bit FROM audit_column_dict d
                WHERE d.org_id = u.org_id AND d.table_name = u.table_name AND d.column_name = u.col) AS bit
        FROM (SELECT DISTINCT org_id, table_name, col FROM set_columns WHERE col IS NOT NULL) u
    ), set_masks AS MATERIALIZED (  -- each set's tables with their column masks and names kept
        SELECT x.sid, x.table_name, coalesce(bit_or(1::bigint << b.bit), 0) AS col_mask,
               array_agg(x.col) FILTER (WHERE x.col IS NOT NULL AND b.bit IS NULL) AS extra
        FROM set_columns x
        LEFT JOIN column_bits b ON b.org_id = x.org_id AND b.table_name = x.table_name AND b.col = x.col
        GROUP BY 1, 2
    ), per_day AS MATERIALIZED (  -- per (org, day, table, user)
        SELECT c.org_id COLLATE "C" AS org_id, (c.ts AT TIME ZONE 'UTC')::date AS day,
               m.table_name COLLATE "C" AS table_name, c.user_id COLLATE "C" AS user_id,
               count(*) AS query_count, min(c.ts) AS first_ts, max(c.ts) AS last_ts,
               bit_or(m.col_mask) AS col_mask,
               (SELECT array_agg(DISTINCT e ORDER BY e) FROM unnest(array_agg_extra(m.extra)) e) AS extra_columns
        FROM counted c
        JOIN access_sets s ON s.org_id = c.org_id AND s.ta = c.ta AND s.cbt = c.cbt AND s.ca = c.ca
        JOIN set_masks m ON m.sid = s.sid
        GROUP BY 1, 2, 3, 4
    ), daily AS (
        INSERT INTO audit_access_daily AS d
            (org_id, day, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
        SELECT org_id, day, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns
        FROM per_day
        ORDER BY 1, 2, 3, 4
        ON CONFLICT ON CONSTRAINT audit_access_daily_key DO UPDATE SET
            query_count = d.query_count + EXCLUDED.query_count,
            first_ts = least(d.first_ts, EXCLUDED.first_ts),
            last_ts = greatest(d.last_ts, EXCLUDED.last_ts),
            col_mask = d.col_mask | EXCLUDED.col_mask,
            extra_columns = CASE WHEN EXCLUDED.extra_columns IS NULL THEN d.extra_columns
                ELSE ARRAY(SELECT DISTINCT e FROM unnest(coalesce(d.extra_columns, '{}') || EXCLUDED.extra_columns) e
                           ORDER BY e) END
    )
    INSERT INTO audit_access_weekly AS w
        (org_id, week, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
    SELECT * FROM (
        SELECT org_id, date_trunc('week', day)::date, table_name, user_id, sum(query_count), min(first_ts),
               max(last_ts), bit_or(col_mask),
               (SELECT array_agg(DISTINCT e ORDER BY e) FROM unnest(array_agg_extra(extra_columns)) e)
        FROM per_day
        GROUP BY 1, 2, 3, 4) g
    ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT audit_access_weekly_key DO UPDATE SET
        query_count = w.query_count + EXCLUDED.query_count,
        first_ts = least(w.first_ts, EXCLUDED.first_ts),
        last_ts = greatest(w.last_ts, EXCLUDED.last_ts),
        col_mask = w.col_mask | EXCLUDED.col_mask,
        extra_columns = CASE WHEN EXCLUDED.extra_columns IS NULL THEN w.extra_columns
            ELSE ARRAY(SELECT DISTINCT e FROM unnest(coalesce(w.extra_columns, '{}') || EXCLUDED.extra_columns) e
                       ORDER BY e) END;
    RETURN NULL;
END
$$;

-- One row per (day, user): every counted query, those that touched at least one table, and the label of
-- the latest labelled one (for users only; the no-user row has none).
CREATE OR REPLACE FUNCTION atlas_rollup_expected_user_daily(p_org TEXT, p_from DATE, p_to DATE)
RETURNS TABLE (org_id TEXT, day DATE, user_id TEXT, query_count BIGINT, table_query_count BIGINT,
               first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ, last_label TEXT, last_label_ts TIMESTAMPTZ)
LANGUAGE sql STABLE SET jit = off AS $$
    SELECT a.org_id, (a."timestamp" AT TIME ZONE 'UTC')::date, a.user_id, count(*),
           count(*) FILTER (WHERE jsonb_array_length(atlas_tables_of(a.tables_accessed)) > 0),
           min(a."timestamp"), max(a."timestamp"),
           (array_agg(a.user_label ORDER BY a."timestamp" DESC, a.user_label DESC)
                FILTER (WHERE a.user_label IS NOT NULL AND a.user_id IS NOT NULL))[1],
           max(a."timestamp") FILTER (WHERE a.user_label IS NOT NULL AND a.user_id IS NOT NULL)
    FROM audit_log a
    WHERE a.org_id = p_org AND a.success AND a.deleted_at IS NULL
      AND (p_from IS NULL OR a."timestamp" >= (p_from::timestamp AT TIME ZONE 'UTC'))
      AND (p_to IS NULL OR a."timestamp" < ((p_to + 1)::timestamp AT TIME ZONE 'UTC'))
    GROUP BY 1, 2, 3
$$;

-- Every (counted row, table it touched) pair: the day, user and time of the row and the columns it read
-- from that table (a table named twice by one query counts once). Plain SQL without settings, so the
-- planner inlines it into the query that uses it.
CREATE OR REPLACE FUNCTION atlas_rollup_access_rows(p_org TEXT, p_from DATE, p_to DATE)
RETURNS TABLE (day DATE, table_name TEXT, user_id TEXT, ts TIMESTAMPTZ, cols JSONB)
LANGUAGE sql STABLE AS $$
    SELECT (a."timestamp" AT TIME ZONE 'UTC')::date, t.table_name, a.user_id, a."timestamp",
           atlas_columns_for(a.columns_by_table, a.columns_accessed, t.table_name)
    FROM audit_log a
    CROSS JOIN LATERAL (SELECT DISTINCT e FROM jsonb_array_elements_text(atlas_tables_of(a.tables_accessed)) e)
        AS t(table_name)
    WHERE a.org_id = p_org AND a.success AND a.deleted_at IS NULL
      AND (p_from IS NULL OR a."timestamp" >= (p_from::timestamp AT TIME ZONE 'UTC'))
      AND (p_to IS NULL OR a."timestamp" < ((p_to + 1)::timestamp AT TIME ZONE 'UTC'))
$$;

-- One row per (day, table, user): the queries that touched the table and the columns read from it, by
-- name, sorted.
CREATE OR REPLACE FUNCTION atlas_rollup_expected_access(p_org TEXT, p_from DATE, p_to DATE)
RETURNS TABLE (org_id TEXT, day DATE, table_name TEXT, user_id TEXT, query_count BIGINT,
               first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ, columns TEXT[])
LANGUAGE sql STABLE SET jit = off SET work_mem = '64MB' AS $$
    WITH x AS MATERIALIZED (
        SELECT * FROM atlas_rollup_access_rows(p_org, p_from, p_to)
    ), c AS (
        SELECT x.day, x.table_name, x.user_id, array_agg(DISTINCT e ORDER BY e) AS cols
        FROM x CROSS JOIN LATERAL jsonb_array_elements_text(x.cols) AS e GROUP BY 1, 2, 3
    ), g AS (
        SELECT x.day, x.table_name, x.user_id, count(*) AS n, min(x.ts) AS f, max(x.ts) AS l
        FROM x GROUP BY 1, 2, 3
    )
    SELECT p_org, g.day, g.table_name, g.user_id, g.n, g.f, g.l, coalesce(c.cols, '{}')
    FROM g LEFT JOIN c ON c.day = g.day AND c.table_name = g.table_name
        AND (c.user_id IS NULL) = (g.user_id IS NULL) AND coalesce(c.user_id, '') = coalesce(g.user_id, '')
$$;

-- The column names a mask and the names kept past the 64th stand for, sorted and comma-separated for
-- display (read through the org's column dictionary; used to name a difference, so called for few rows).
CREATE OR REPLACE FUNCTION atlas_rollup_column_names(p_org TEXT, p_table TEXT, p_mask BIGINT, p_extra TEXT[])
RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg(DISTINCT c, ',' ORDER BY c), '') FROM (
        SELECT d.column_name AS c FROM audit_column_dict d
        WHERE coalesce(p_mask, 0) <> 0 AND d.org_id = p_org AND d.table_name = p_table AND d.bit IS NOT NULL
          AND p_mask & (1::bigint << d.bit) <> 0
        UNION ALL
        SELECT unnest(p_extra)) x
$$;

-- Every difference between the stored rollups and what the raw rows say, from p_from (NULL = the org's
-- whole history; weeks from the Monday of p_from's week). One line per differing field: `row` when a
-- rollup row is missing (stored NULL) or should not exist (expected NULL); `columns` lists the columns
-- of both sides when they differ, a row's columns being its mask's bits read through the org's column
-- dictionary plus the columns kept by name past the 64th. Set-based, hash aggregates only (bench/verify.py
-- times it on the 2,000,000-row bench database).
CREATE OR REPLACE FUNCTION atlas_rollup_differences(p_org TEXT, p_from DATE)
RETURNS TABLE (rollup TEXT, period DATE, table_name TEXT, user_id TEXT, field TEXT, stored TEXT, expected TEXT)
LANGUAGE plpgsql STABLE
-- The planner cannot know how many elements a JSON array holds (it guesses 100): left to itself it sorts
-- and merges millions of rows it believes are billions. Hashing is right for every step here.
SET jit = off SET work_mem = '256MB' SET enable_sort = off SET enable_mergejoin = off AS $$
DECLARE
    wfrom DATE := date_trunc('week', p_from)::date;
BEGIN
    RETURN QUERY
    WITH both_sides AS (
        SELECT true AS is_stored, d.day, d.user_id, d.query_count, d.table_query_count, d.first_ts, d.last_ts,
               d.last_label, d.last_label_ts
        FROM audit_user_daily d WHERE d.org_id = p_org AND (p_from IS NULL OR d.day >= p_from)
        UNION ALL
        SELECT false, e.day, e.user_id, e.query_count, e.table_query_count, e.first_ts, e.last_ts, e.last_label,
               e.last_label_ts
        FROM atlas_rollup_expected_user_daily(p_org, p_from, NULL) e
    ), g AS (
        SELECT b.day, b.user_id,
               count(*) FILTER (WHERE b.is_stored) AS s_rows, count(*) FILTER (WHERE NOT b.is_stored) AS e_rows,
               max(b.query_count) FILTER (WHERE b.is_stored) AS s_n, max(b.query_count) FILTER (WHERE NOT b.is_stored) AS e_n,
               max(b.table_query_count) FILTER (WHERE b.is_stored) AS s_t,
               max(b.table_query_count) FILTER (WHERE NOT b.is_stored) AS e_t,
               max(b.first_ts) FILTER (WHERE b.is_stored) AS s_f, max(b.first_ts) FILTER (WHERE NOT b.is_stored) AS e_f,
               max(b.last_ts) FILTER (WHERE b.is_stored) AS s_l, max(b.last_ts) FILTER (WHERE NOT b.is_stored) AS e_l,
               max(b.last_label) FILTER (WHERE b.is_stored) AS s_lb, max(b.last_label) FILTER (WHERE NOT b.is_stored) AS e_lb,
               max(b.last_label_ts) FILTER (WHERE b.is_stored) AS s_lt,
               max(b.last_label_ts) FILTER (WHERE NOT b.is_stored) AS e_lt
        FROM both_sides b GROUP BY b.day, b.user_id
    )
    SELECT 'user_daily'::text, g.day, NULL::text, g.user_id, v.field, v.s, v.e
    FROM g CROSS JOIN LATERAL (VALUES
        ('row', CASE WHEN g.s_rows > 0 THEN 'present' END, CASE WHEN g.e_rows > 0 THEN 'present' END),
        ('query_count', g.s_n::text, g.e_n::text),
        ('table_query_count', g.s_t::text, g.e_t::text),
        ('first_ts', g.s_f::text, g.e_f::text),
        ('last_ts', g.s_l::text, g.e_l::text),
        ('last_label', g.s_lb, g.e_lb),
        ('last_label_ts', g.s_lt::text, g.e_lt::text)) AS v(field, s, e)
    WHERE CASE WHEN g.s_rows = 0 OR g.e_rows = 0 THEN v.field = 'row' ELSE v.s IS DISTINCT FROM v.e END
    ORDER BY 2, 4 NULLS FIRST, 5;

    RETURN QUERY
    WITH x AS MATERIALIZED (
        SELECT * FROM atlas_rollup_access_rows(p_org, wfrom, NULL)
    ), dict AS MATERIALIZED (
        SELECT k.table_name, k.column_name, k.bit FROM audit_column_dict k WHERE k.org_id = p_org
    ), tc AS MATERIALIZED (  -- each distinct (table, columns read): its mask and its names past the 64th
        SELECT t.table_name, t.cols, coalesce(bit_or(1::bigint << k.bit), 0) AS mask,
               array_agg(e) FILTER (WHERE e IS NOT NULL AND k.bit IS NULL) AS extra
        FROM (SELECT DISTINCT x.table_name, x.cols FROM x) t
        LEFT JOIN LATERAL jsonb_array_elements_text(t.cols) AS e ON true
        LEFT JOIN dict k ON k.table_name = t.table_name AND k.column_name = e
        GROUP BY t.table_name, t.cols
    ), xm AS MATERIALIZED (
        SELECT x.day, x.table_name, x.user_id, x.ts, tc.mask, tc.extra
        FROM x JOIN tc ON tc.table_name = x.table_name AND tc.cols = x.cols
    ), expected AS (
        SELECT 'access_daily'::text AS rollup, xm.day AS period, xm.table_name, xm.user_id, count(*) AS n,
               min(xm.ts) AS f, max(xm.ts) AS l, bit_or(xm.mask) AS mask, array_agg_extra(xm.extra) AS extra
        FROM xm WHERE p_from IS NULL OR xm.day >= p_from GROUP BY 2, 3, 4
        UNION ALL
        SELECT 'access_weekly', date_trunc('week', xm.day)::date, xm.table_name, xm.user_id, count(*), min(xm.ts),
               max(xm.ts), bit_or(xm.mask), array_agg_extra(xm.extra)
        FROM xm GROUP BY 2, 3, 4
    ), both_sides AS (
        SELECT true AS is_stored, 'access_daily'::text AS rollup, d.day AS period, d.table_name, d.user_id,
               d.query_count AS n, d.first_ts AS f, d.last_ts AS l, d.col_mask AS mask,
               CASE WHEN d.extra_columns IS NOT NULL THEN
                   (SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(d.extra_columns) AS c) END AS extra
        FROM audit_access_daily d WHERE d.org_id = p_org AND (p_from IS NULL OR d.day >= p_from)
        UNION ALL
        SELECT true, 'access_weekly', w.week, w.table_name, w.user_id, w.query_count, w.first_ts, w.last_ts,
               w.col_mask,
               CASE WHEN w.extra_columns IS NOT NULL THEN
                   (SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(w.extra_columns) AS c) END
        FROM audit_access_weekly w WHERE w.org_id = p_org AND (p_from IS NULL OR w.week >= wfrom)
        UNION ALL  -- names past the 64th: sorted and deduplicated only where there are any (rare)
        SELECT false, e.rollup, e.period, e.table_name, e.user_id, e.n, e.f, e.l, e.mask,
               CASE WHEN e.extra IS NOT NULL THEN
                   (SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(e.extra) AS c) END
        FROM expected e
    ), g AS (
        SELECT b.rollup, b.period, b.table_name, b.user_id,
               count(*) FILTER (WHERE b.is_stored) AS s_rows, count(*) FILTER (WHERE NOT b.is_stored) AS e_rows,
               max(b.n) FILTER (WHERE b.is_stored) AS s_n, max(b.n) FILTER (WHERE NOT b.is_stored) AS e_n,
               max(b.f) FILTER (WHERE b.is_stored) AS s_f, max(b.f) FILTER (WHERE NOT b.is_stored) AS e_f,
               max(b.l) FILTER (WHERE b.is_stored) AS s_l, max(b.l) FILTER (WHERE NOT b.is_stored) AS e_l,
               max(b.mask) FILTER (WHERE b.is_stored) AS s_m, max(b.mask) FILTER (WHERE NOT b.is_stored) AS e_m,
               max(b.extra) FILTER (WHERE b.is_stored) AS s_x, max(b.extra) FILTER (WHERE NOT b.is_stored) AS e_x
        FROM both_sides b GROUP BY b.rollup, b.period, b.table_name, b.user_id
    )
    SELECT g.rollup, g.period, g.table_name, g.user_id, v.field, v.s, v.e
    FROM g CROSS JOIN LATERAL (VALUES
        ('row', CASE WHEN g.s_rows > 0 THEN 'present' END, CASE WHEN g.e_rows > 0 THEN 'present' END),
        ('query_count', g.s_n::text, g.e_n::text),
        ('first_ts', g.s_f::text, g.e_f::text),
        ('last_ts', g.s_l::text, g.e_l::text),
        -- Columns compare as (mask, names past the 64th): the raw rows' names are turned into bits through
        -- the same dictionary, so a changed dictionary shows as well. Named only when they differ.
        ('columns',
         CASE WHEN g.s_m IS DISTINCT FROM g.e_m OR g.s_x IS DISTINCT FROM g.e_x
              THEN atlas_rollup_column_names(p_org, g.table_name, g.s_m, g.s_x) ELSE '' END,
         CASE WHEN g.s_m IS DISTINCT FROM g.e_m OR g.s_x IS DISTINCT FROM g.e_x
              THEN atlas_rollup_column_names(p_org, g.table_name, g.e_m, g.e_x) ELSE '' END)) AS v(field, s, e)
    WHERE CASE WHEN g.s_rows = 0 OR g.e_rows = 0 THEN v.field = 'row'
               WHEN v.field = 'columns' THEN g.s_m IS DISTINCT FROM g.e_m OR g.s_x IS DISTINCT FROM g.e_x
               ELSE v.s IS DISTINCT FROM v.e END
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
    INSERT INTO audit_user_daily
        (org_id, day, user_id, query_count, table_query_count, first_ts, last_ts, last_label, last_label_ts)
    SELECT x.org_id, x.day, x.user_id, x.query_count, x.table_query_count, x.first_ts, x.last_ts, x.last_label,
           x.last_label_ts
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
