"""Run a migration's SQL text verbatim on the driver connection.

`op.execute` would pass the text through SQLAlchemy's ``text()``, which reads ``:name`` inside
SQL (e.g. ``'HH24:MI:SS'``) as bind parameters; the driver connection runs it as written.
"""

from alembic import op


def run_sql(script: str) -> None:
    driver_conn = op.get_bind().connection.driver_connection
    with driver_conn.cursor() as cur:
        cur.execute(script)
