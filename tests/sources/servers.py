"""Throwaway database servers that write real audit logs, for the sources tests.

- :class:`PgAuditCluster`: a PostgreSQL 15 cluster made with ``initdb`` in a temporary folder, run as the
  ``postgres`` system user with ``shared_preload_libraries = 'pgaudit'`` on a free port, its socket in
  the folder, writing stderr, csvlog and jsonlog at once.
- :class:`MariaDbServer`: a ``mariadbd`` with its own data directory, socket and port, started with
  the ``server_audit`` plugin. A throwaway server rather than the plugin loaded into the machine's
  running MariaDB: the plugin's settings are global, and a test must neither change what other users
  of that server log nor leave the plugin loaded behind it.

Each test gets its own log directory (or file): :meth:`PgAuditCluster.new_log_dir`,
:meth:`MariaDbServer.new_audit_file`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pymysql

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PREFIX = "%m [%p] %c %l %e %q%u@%d %h %a "


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as(user: str, *command: str, **kwargs) -> subprocess.CompletedProcess:
    run_as = [] if os.geteuid() != 0 else ["runuser", "-u", user, "--"]
    return subprocess.run([*run_as, *command], check=True, capture_output=True, text=True, **kwargs)


def pgaudit_missing() -> str | None:
    """Why a pgAudit cluster cannot be made here, or None."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 server binaries are not installed ({PG_BIN}): apt-get install postgresql-15"
    libdir = subprocess.run([str(PG_BIN / "pg_config") if (PG_BIN / "pg_config").exists() else "pg_config",
                             "--pkglibdir"], capture_output=True, text=True).stdout.strip()
    if not any(Path(d, "pgaudit.so").exists() for d in (libdir, "/usr/lib/postgresql/15/lib")):
        return "pgAudit is not installed: apt-get install postgresql-15-pgaudit"
    if os.geteuid() != 0:
        return "the pgAudit tests run a cluster as the postgres system user: run them as root"
    return None


def mariadb_missing() -> str | None:
    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        return "mariadbd is not installed: apt-get install mariadb-server"
    if not Path("/usr/lib/mysql/plugin/server_audit.so").exists():
        return "MariaDB's server_audit plugin is not installed (/usr/lib/mysql/plugin/server_audit.so)"
    if os.geteuid() != 0:
        return "the MariaDB tests run a server as the mysql system user: run them as root"
    return None


class PgAuditCluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="atlas-pgaudit-"))
        shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.port = _free_port()
        self.log_dir = self.root / "log-initial"

    def start(self) -> PgAuditCluster:
        _as("postgres", str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", cwd=self.root)
        self.log_dir.mkdir()
        shutil.chown(self.log_dir, "postgres", "postgres")
        settings = {
            "shared_preload_libraries": "'pgaudit'", "port": str(self.port), "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'", "logging_collector": "on",
            "log_destination": "'stderr,csvlog,jsonlog'", "log_directory": f"'{self.log_dir}'",
            "log_filename": "'postgresql-%Y%m%d_%H%M%S.log'", "log_line_prefix": f"'{PREFIX}'",
            "log_rotation_age": "0", "log_rotation_size": "0", "log_timezone": "'UTC'", "lc_messages": "'C'",
            "log_connections": "on", "log_disconnections": "on", "fsync": "off",
            "pgaudit.log": "'read, write, ddl'", "pgaudit.log_relation": "on", "pgaudit.log_parameter": "on",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        _as("postgres", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
            "-t", "60", "start", cwd=self.root)
        return self

    def stop(self) -> None:
        try:
            _as("postgres", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
                cwd=self.root)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, user: str = "postgres", application: str = "pytest") -> str:
        return f"host=127.0.0.1 port={self.port} user={user} dbname=postgres application_name={application}"

    def execute(self, *statements: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def new_log_dir(self, name: str) -> Path:
        """Make the server write its logs to a new, empty folder (in the cluster's, which its system user
        can reach) from now on."""
        path = self.root / name
        path.mkdir()
        shutil.chown(path, "postgres", "postgres")
        self.execute(f"ALTER SYSTEM SET log_directory = '{path}'", "SELECT pg_reload_conf()")
        time.sleep(0.3)  # the logger picks the setting up when it rotates
        self.execute("SELECT pg_rotate_logfile()")
        self.wait_for_files(path)
        self.log_dir = path
        return path

    def wait_for_files(self, path: Path, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not list(path.glob("*.json")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL wrote no log file in {path}")
            time.sleep(0.05)

    def settle_logs(self) -> None:
        """Return once the logger has written what was logged so far (a marker line has arrived)."""
        marker = f"atlas-settle-{time.monotonic_ns()}"
        self.execute(f"DO $$ BEGIN RAISE LOG '{marker}'; END $$")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(marker in p.read_text(errors="replace") for p in self.log_dir.glob("*.json")):
                return
            time.sleep(0.05)
        raise TimeoutError("the PostgreSQL logger did not catch up")


class MariaDbServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="atlas-mariadb-"))
        shutil.chown(self.root, "mysql", "mysql")
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.port = _free_port()
        self.audit_file = self.root / "server_audit.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> MariaDbServer:
        _as("mysql", "mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--user=mysql",
            "--auth-root-authentication-method=normal", "--skip-test-db", cwd=self.root)
        command = ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
                   f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.root / 'pid'}",
                   f"--log-error={self.root / 'error.log'}", "--skip-name-resolve", "--innodb-buffer-pool-size=32M",
                   "--plugin-load-add=server_audit", "--server-audit-logging=ON",
                   "--server-audit-events=CONNECT,QUERY,TABLE", f"--server-audit-file-path={self.audit_file}",
                   "--server-audit-query-log-limit=1048576"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "mysql", "--", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.connect().close()
                return self
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("mariadbd did not start: " + (self.root / "error.log").read_text()[-2000:]) from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, user: str = "root", password: str = "", database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password, database=database,
                               autocommit=True)

    def execute(self, *statements: str) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def new_audit_file(self, name: str) -> Path:
        """Make the plugin write to ``server_audit.log`` in a new folder of the server's from now on."""
        path = self.root / name / "server_audit.log"
        path.parent.mkdir()
        shutil.chown(path.parent, "mysql", "mysql")
        self.execute(f"SET GLOBAL server_audit_file_path = '{path}'")
        self.audit_file = path
        return path
