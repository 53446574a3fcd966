"""The embedded PostgreSQL: a real server from the `pgserver` wheel, kept in the data directory.

Only one Atlas process may own a data directory at a time; a second one gets
:class:`DataDirInUse` with the owner's pid instead of a crash.
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from pathlib import Path
from typing import IO, Any

from ..errors import AtlasError

log = logging.getLogger(__name__)


class DataDirInUse(AtlasError):
    status, code = 409, "data_dir_in_use"


class EmbeddedPostgres:
    """Start (or attach to) PostgreSQL in ``data_dir/pg`` and stop it on :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._lock_file: IO[str] | None = None
        self._server: Any = None

    def start(self) -> str:
        """Start the server and return its connection URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir))
        import pgserver  # imported late: it is slow to import and only needed here

        try:
            self._server = pgserver.get_server(self.data_dir / "pg", cleanup_mode="stop")
        except Exception as exc:  # pgserver raises plain exceptions with the pg_ctl output
            self._release_lock()
            raise AtlasError(f"could not start the embedded PostgreSQL in {self.data_dir}: {exc}",
                             code="embedded_db_failed") from exc
        self._server.psql("SELECT 1 FROM pg_database WHERE datname = 'postgres';")
        uri: str = self._server.get_uri()
        log.info("embedded PostgreSQL running", extra={"data_dir": str(self.data_dir)})
        return uri

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.cleanup()
            finally:
                self._server = None
        self._release_lock()

    def _acquire_lock(self) -> None:
        path = self.data_dir / "atlas.lock"
        handle = open(path, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirInUse(
                f"the data directory {self.data_dir} is in use by another atlas-compliance process "
                f"(pid {owner}); stop it first, or set ATLAS_DATA_DIR or DATABASE_URL to use another database"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            try:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            finally:
                self._lock_file.close()
                self._lock_file = None
