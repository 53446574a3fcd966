"""One table-name rule for Python and SQL writers; a schema catalog per org with each fact's origin.

`atlas_normalize_table` now applies the rule of `audit/names.py` `normalize_table_name` exactly
(checked against `tests/audit/fixtures/table_names.tsv`): quotes removed, lowercased, spaces around
each dotted part removed, a two-part `public.t` written `t`, and a name of three or more parts
(`database.schema.table`) kept whole, so different databases stay different tables. Rows already
stored keep the names they were written with.

The schema catalog is `datasource_catalog` (until now filled by PII scans only), one row per
(org, datasource, table, column), now with the schema the source named and the fact's origin:
`introspected` (`catalog sync`, `pii scan`), `ddl` (`catalog import`) or `learned` (seen qualified in
the audit trail at ingest; datasource ''). `scanned_at` is when the fact was recorded. Existing rows
were written by PII scans: they are `introspected`.

Revision ID: 0015
Revises: 0013
"""

from atlas_compliance.db.migrations.sqlscript import run_sql

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION atlas_normalize_table(name TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT atlas_fold_name(CASE WHEN n LIKE 'public.%' AND strpos(substr(n, 8), '.') = 0 THEN substr(n, 8)
                                ELSE n END)
    FROM (SELECT btrim(regexp_replace(lower(translate(name, '"`[]', '')),
                                      '[ \t\n\r\f\v]*\.[ \t\n\r\f\v]*', '.', 'g'),
                       E' \t\n\r\f\v.') AS n) s
$$;

ALTER TABLE datasource_catalog ADD COLUMN IF NOT EXISTS schema_name TEXT;
ALTER TABLE datasource_catalog ADD COLUMN IF NOT EXISTS origin TEXT NOT NULL DEFAULT 'introspected';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'datasource_catalog_origin_check'
                   AND conrelid = 'datasource_catalog'::regclass) THEN
        ALTER TABLE datasource_catalog ADD CONSTRAINT datasource_catalog_origin_check
            CHECK (origin IN ('introspected', 'ddl', 'learned'));
    END IF;
END
$$;
"""


def upgrade() -> None:
    run_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("Atlas Compliance migrations are forward-only")
