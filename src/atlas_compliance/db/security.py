"""Who may write what in the database: definer trigger functions, the role model, the retention floor.

See docs/database-roles.md. In short: the *owner* (the role that runs `db upgrade`) owns every table
and function; the *service* role (what `serve` connects as) has ordinary DML rights, and the triggers
refuse it every change of evidence except through the owner's `SECURITY DEFINER` functions;
`atlas_writer` may only INSERT into `audit_log`.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

# The trigger functions of audit_log that write rollups, chain heads and tombstones run as the owner,
# with a fixed search_path, and mark the statement as Atlas's own (atlas.owner_write). Applied by
# migration 0013 and again after every upgrade, so that a later CREATE OR REPLACE of one of them (which
# resets these attributes) cannot leave it running as the writer.
DEFINER_TRIGGER_FUNCTIONS = (
    "atlas_audit_before_insert()",
    "atlas_audit_rollup_insert()",
    "atlas_audit_rollup_remove()",
    "atlas_default_retention()",
)

SECURE_SQL = r"""
DO $$
DECLARE
    f   TEXT;
    sch TEXT;
BEGIN
    FOREACH f IN ARRAY ARRAY[@FUNCTIONS@] LOOP
        IF to_regprocedure(f) IS NOT NULL THEN
            SELECT n.nspname INTO sch FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE p.oid = to_regprocedure(f);
            EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, %I, pg_temp '
                           'SET atlas.owner_write = ''on''', to_regprocedure(f)::text, sch);
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', to_regprocedure(f)::text);
        END IF;
    END LOOP;
END
$$;
""".replace("@FUNCTIONS@", ", ".join("'" + f + "'" for f in DEFINER_TRIGGER_FUNCTIONS))


def secure_functions(conn: psycopg.Connection) -> None:
    conn.execute(SECURE_SQL)


# --- retention floor ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FloorResult:
    min_retention_days: int
    min_hard_delete_delay_days: int
    changed: bool
    note: str | None  # why the database's floor differs from the configuration, if it does


def apply_retention_floor(conn: psycopg.Connection, min_retention_days: int,
                          min_hard_delete_delay_days: int) -> FloorResult:
    """Write the configured floor into `atlas_retention_floor` when this connection's role owns it
    (`db upgrade`, or `serve` connected as the owner); otherwise report the floor the database keeps."""
    row = conn.execute(
        "SELECT f.min_retention_days, f.min_hard_delete_delay_days, "
        "pg_get_userbyid(c.relowner) = current_user AS owner "
        "FROM atlas_retention_floor f, pg_class c WHERE c.oid = 'atlas_retention_floor'::regclass").fetchone()
    if row is None:
        return FloorResult(min_retention_days, min_hard_delete_delay_days, False, "no floor row")
    days, delay, owner = row[0], row[1], row[2]
    if (days, delay) == (min_retention_days, min_hard_delete_delay_days):
        return FloorResult(days, delay, False, None)
    if not owner:
        return FloorResult(days, delay, False,
                           f"the database keeps a retention floor of {days} days (hard delete {delay} days); "
                           "run `atlas-compliance db upgrade` as the schema owner to apply "
                           f"ATLAS_MIN_RETENTION_DAYS={min_retention_days}, "
                           f"ATLAS_MIN_HARD_DELETE_DELAY_DAYS={min_hard_delete_delay_days}")
    conn.execute("UPDATE atlas_retention_floor SET min_retention_days = %s, min_hard_delete_delay_days = %s, "
                 "updated_at = now() WHERE id", (min_retention_days, min_hard_delete_delay_days))
    return FloorResult(min_retention_days, min_hard_delete_delay_days, True, None)


# --- role model --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RolePlan:
    statements: list[str]
    applied: bool
    reason: str | None  # why the statements were not run (then they are printed for an administrator)


def role_statements(conn: psycopg.Connection, service_role: str, writer_role: str,
                    missing: set[str]) -> list[str]:
    schema = conn.execute("SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE c.oid = 'audit_log'::regclass").fetchone()[0]

    def ident(name: str) -> str:
        return sql.Identifier(name).as_string(conn)

    s, w, sch = ident(service_role), ident(writer_role), ident(schema)
    out = [f"CREATE ROLE {ident(r)} NOLOGIN" for r in (service_role, writer_role) if r in missing]
    out += [
        f"GRANT USAGE ON SCHEMA {sch} TO {s}, {w}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {sch} TO {s}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {sch} TO {s}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {sch} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {s}",
        f"GRANT EXECUTE ON FUNCTION {sch}.atlas_retention_purge(text, text, text, text, text, text) TO {s}",
        f"GRANT EXECUTE ON FUNCTION {sch}.atlas_set_retention_policy(text, integer, integer, text, text, text, text, "
        f"text) TO {s}",
        f"REVOKE INSERT, UPDATE, DELETE ON {sch}.alembic_version FROM {s}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM {w}",
        f"GRANT INSERT ON {sch}.audit_log TO {w}",
    ]
    return out


def apply_roles(conn: psycopg.Connection, service_role: str, writer_role: str) -> RolePlan:
    """Create the service and writer roles and grant them their rights, when the connecting role may
    (it owns the tables, and creates roles only if it has CREATEROLE); otherwise return the SQL."""
    names = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                        ([service_role, writer_role],)).fetchall()}
    missing = {service_role, writer_role} - names
    me = conn.execute("SELECT rolsuper OR rolcreaterole, pg_get_userbyid(c.relowner) = current_user, current_user "
                      "FROM pg_roles r, pg_class c WHERE r.rolname = current_user "
                      "AND c.oid = 'audit_log'::regclass").fetchone()
    can_create, owner, who = bool(me[0]), bool(me[1]), me[2]
    if service_role == who or writer_role == who:
        return RolePlan([], False, f"the service and writer roles must not be the owner ({who}) that runs "
                                   "db upgrade: choose other names (ATLAS_SERVICE_ROLE, ATLAS_WRITER_ROLE)")
    statements = role_statements(conn, service_role, writer_role, missing)
    if not owner:
        return RolePlan(statements, False, f"{who} does not own the tables; run this as their owner")
    if missing and not can_create:
        return RolePlan(statements, False, f"{who} may not create roles (CREATEROLE); run this as a role that may")
    for statement in statements:
        conn.execute(statement)
    return RolePlan(statements, True, None)
