"""Regenerate the log fixtures from real servers (run as root: `python -m tests.sources.make_fixtures`).

Runs the workload once on a throwaway pgAudit PostgreSQL 15 (which writes stderr, csvlog and jsonlog
at once) and a throwaway MariaDB with server_audit, and copies the logs to tests/sources/fixtures/.
The expected statements (fixtures/expected_*.txt) are then reviewed by hand against the log lines.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .servers import MariaDbServer, PgAuditCluster
from .workload import MARIADB_SETUP, PG_SETUP, run_mariadb_workload, run_pg_workload

FIXTURES = Path(__file__).parent / "fixtures"


def main() -> None:
    FIXTURES.mkdir(exist_ok=True)
    cluster = PgAuditCluster().start()
    try:
        cluster.execute(*PG_SETUP)
        variants = [
            ("pgaudit", []),
            # Plain statement logging, no pgAudit: log_statement and log_duration.
            ("statements", ["ALTER SYSTEM SET pgaudit.log = 'none'", "ALTER SYSTEM SET log_statement = 'all'",
                            "ALTER SYSTEM SET log_duration = on"]),
            # Both at once: each statement is announced by log_statement, then audited by pgAudit.
            ("mixed", ["ALTER SYSTEM SET pgaudit.log = 'read, write'", "ALTER SYSTEM SET log_duration = off"]),
        ]
        for number, (name, settings) in enumerate(variants):
            if settings:
                cluster.execute(*settings, "SELECT pg_reload_conf()")
            logs = cluster.new_log_dir(f"log-{name}")
            run_pg_workload(cluster, start=1000 * (number + 1))
            cluster.settle_logs()
            for path in sorted(logs.iterdir()):
                shutil.copy(path, FIXTURES / (name + path.suffix))
    finally:
        cluster.stop()
    server = MariaDbServer().start()
    try:
        server.execute(*MARIADB_SETUP)
        audit = server.new_audit_file("audit")
        run_mariadb_workload(server)
        server.execute("SET GLOBAL server_audit_logging = OFF")
        shutil.copy(audit, FIXTURES / "server_audit.log")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
