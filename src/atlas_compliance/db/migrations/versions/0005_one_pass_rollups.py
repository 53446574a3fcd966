"""Rollups of inserted rows in one pass, with column bits looked up per distinct column.

0002/0003 expanded every statement's new rows three times (column dictionary, daily, weekly) and
joined the expansion to the whole `audit_column_dict` with a hash join, because the planner cannot
see how few rows a transition table holds: on a large installation that hash build alone cost
20–25 ms per 1,000-row batch, twice. Here the rows are expanded once, each distinct
(org, table, column) looks its bit up through the primary key, and the daily and weekly rollups
are written by one statement from the same per-day aggregate (an event belongs to exactly one
day, so a week's count is the sum of its days' counts). Results are identical.

Revision ID: 0005
Revises: 0004
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQL = r"""
DROP TRIGGER audit_log_rollup_weekly ON audit_log;
DROP FUNCTION atlas_audit_rollup_weekly();

CREATE OR REPLACE FUNCTION atlas_audit_rollup_insert() RETURNS trigger
LANGUAGE plpgsql SET jit = off SET enable_mergejoin = off AS $$
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

    -- Every (org, table, column) met for the first time gets the next bit of its table's mask
    -- (none past the 64th: those columns are kept by name in extra_columns). Scalar subqueries keep
    -- every dictionary lookup an index probe, however large the dictionary grows.
    WITH seen AS (
        SELECT DISTINCT n.org_id, t.table_name, c.col
        FROM new_rows n
        CROSS JOIN LATERAL jsonb_array_elements_text(atlas_tables_of(n.tables_accessed)) AS t(table_name)
        CROSS JOIN LATERAL jsonb_array_elements_text(
            atlas_columns_for(n.columns_by_table, n.columns_accessed, t.table_name)) AS c(col)
        WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
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

    WITH x AS MATERIALIZED (
        SELECT n.org_id, n.id, n."timestamp" AS ts, n.user_id, t.table_name, c.col
        FROM new_rows n
        CROSS JOIN LATERAL jsonb_array_elements_text(atlas_tables_of(n.tables_accessed)) AS t(table_name)
        LEFT JOIN LATERAL jsonb_array_elements_text(
            atlas_columns_for(n.columns_by_table, n.columns_accessed, t.table_name)) AS c(col) ON true
        WHERE n.org_id IS NOT NULL AND n.success AND n.deleted_at IS NULL
    ), k AS MATERIALIZED (
        SELECT s.org_id, s.table_name, s.col,
               (SELECT d.bit FROM audit_column_dict d
                WHERE d.org_id = s.org_id AND d.table_name = s.table_name AND d.column_name = s.col) AS bit
        FROM (SELECT DISTINCT org_id, table_name, col FROM x WHERE col IS NOT NULL) s
    ), agg AS MATERIALIZED (
        SELECT x.org_id COLLATE "C" AS org_id, (x.ts AT TIME ZONE 'UTC')::date AS day,
               x.table_name COLLATE "C" AS table_name, x.user_id COLLATE "C" AS user_id,
               count(DISTINCT x.id) AS query_count, min(x.ts) AS first_ts, max(x.ts) AS last_ts,
               coalesce(bit_or(1::bigint << k.bit), 0) AS col_mask,
               array_agg(DISTINCT x.col ORDER BY x.col) FILTER (WHERE x.col IS NOT NULL AND k.bit IS NULL)
                   AS extra_columns
        FROM x LEFT JOIN k ON k.org_id = x.org_id AND k.table_name = x.table_name AND k.col = x.col
        -- Byte order groups exactly as the default collation does (it is deterministic), and sorts
        -- several times faster.
        GROUP BY 1, 2, 3, 4
    ), daily AS (
        INSERT INTO audit_access_daily AS d
            (org_id, day, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns)
        SELECT org_id, day, table_name, user_id, query_count, first_ts, last_ts, col_mask, extra_columns
        FROM agg
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
    SELECT org_id, date_trunc('week', day)::date, table_name, user_id, sum(query_count), min(first_ts),
           max(last_ts), bit_or(col_mask),
           (SELECT array_agg(DISTINCT e ORDER BY e) FROM unnest(array_agg_extra(extra_columns)) e)
    FROM agg
    GROUP BY 1, 2, 3, 4
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
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
