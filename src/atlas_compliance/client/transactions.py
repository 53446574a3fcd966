"""Which transaction outcome each recorded statement had: committed, rolled back, or unknown.

A statement's outcome is known only when its transaction ends, so the :class:`OutcomeTracker` holds
the events of each open transaction (per database connection) and hands them on when the
transaction ends:

- ``committed`` after the driver's commit returned; on PostgreSQL, a transaction in which a
  statement failed (and no ``ROLLBACK TO SAVEPOINT`` undid the failure) is ``rolled_back`` even so,
  because the server turns that COMMIT into a ROLLBACK;
- ``rolled_back`` after a rollback, for the statements after a savepoint that was rolled back to
  (sent with the rest of their transaction, so that events are stored in the order they ran),
  and when the connection closes or is invalidated with the transaction still open (the server
  rolls it back);
- ``unknown`` when the connection failed while committing, when a transaction holds more than
  ``max_held`` statements (from then on its statements are sent at once), and for transactions
  still open when recording stops (``remove()``, interpreter exit).

Statements run with the driver in autocommit mode are committed by themselves (or not at all, if
they failed) and are sent at once. SQLAlchemy has no event after a commit, so the dialect's
``do_commit``/``do_rollback`` (and their two-phase forms) are wrapped on the engine's dialect
instance while an instrumentation is attached; the wrappers call the original and report.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("atlas_compliance.client")

COMMITTED, ROLLED_BACK, UNKNOWN = "committed", "rolled_back", "unknown"

Emit = Callable[[list[dict[str, Any]], str | None], None]

# A whole statement that controls the transaction. Such statements access no data: the hook does
# not record them; it uses them to mark the outcome of the statements they end.
TRANSACTION_CONTROL = re.compile(
    r"""\s*(?:
        (?P<savepoint>SAVEPOINT)
      | (?P<release>RELEASE)(?:\s+SAVEPOINT)?
      | (?P<rollback_to>ROLLBACK)(?:\s+(?:WORK|TRANSACTION))?\s+TO(?:\s+SAVEPOINT)?
      | (?P<commit>COMMIT|END)(?:\s+(?:WORK|TRANSACTION))?
      | (?P<rollback>ROLLBACK|ABORT)(?:\s+(?:WORK|TRANSACTION))?
      | (?P<begin>BEGIN|START\s+TRANSACTION)(?:\s+(?:WORK|TRANSACTION))?
    )(?:\s+(?P<name>"(?:[^"]|"")+"|`[^`]+`|[A-Za-z_][\w$]*))?\s*;?\s*\Z""",
    re.IGNORECASE | re.VERBOSE,
)
_CONTROL_INITIALS = frozenset("SRCEABsrceab")


def transaction_control(statement: str) -> tuple[str, str | None] | None:
    """``(kind, savepoint name)`` when ``statement`` is one transaction-control statement, else None.

    >>> transaction_control("SAVEPOINT sa_savepoint_1"), transaction_control("ROLLBACK TO SAVEPOINT sa_savepoint_1")
    (('savepoint', 'sa_savepoint_1'), ('rollback_to', 'sa_savepoint_1'))
    >>> transaction_control("COMMIT"), transaction_control("SELECT 1")
    (('commit', None), None)
    """
    text = statement.lstrip()
    if not text or text[0] not in _CONTROL_INITIALS:
        return None
    match = TRANSACTION_CONTROL.match(text)
    if match is None:
        return None
    kind = match.lastgroup if match.lastgroup != "name" else next(
        k for k in ("savepoint", "release", "rollback_to", "commit", "rollback", "begin") if match.group(k))
    name = match.group("name")
    if name is not None:
        name = name[1:-1] if name[0] in '"`' else name.lower()
    return kind, name


@dataclass
class _Transaction:
    connection: Any  # the DBAPI connection (a strong reference: its id() cannot be reused meanwhile)
    held: list[dict[str, Any]] = field(default_factory=list)
    savepoints: list[tuple[str | None, int]] = field(default_factory=list)
    failed_at: int | None = None  # index of a failed statement that aborted the transaction (PostgreSQL)
    overflowed: bool = False


class OutcomeTracker:
    """Holds each open transaction's events until its outcome is known, then emits them."""

    def __init__(self, emit: Emit, *, hold: bool, max_held: int, errors_abort: bool) -> None:
        self._emit, self._hold, self._max_held, self._errors_abort = emit, hold, max_held, errors_abort
        self._open: dict[int, _Transaction] = {}
        self._lock = threading.Lock()
        _trackers.add(self)
        # Registered after the client's own exit hook, so it runs first: held events reach the client
        # before it closes.
        atexit.register(self.release_all)

    def close(self) -> None:
        """Stop: held events go out as ``unknown``."""
        atexit.unregister(self.release_all)
        self.release_all()

    def add(self, conn: Any, event: dict[str, Any], *, failed: bool) -> None:
        """One executed statement of SQLAlchemy connection ``conn``."""
        if not self._hold:
            self._emit([event], None)
            return
        try:
            raw = conn.connection.dbapi_connection
        except Exception:  # an invalidated connection: its transaction is gone
            self._emit([event], ROLLED_BACK if failed else UNKNOWN)
            return
        if _autocommit(conn, raw):
            self._emit([event], ROLLED_BACK if failed else COMMITTED)
            return
        released: list[dict[str, Any]] = []
        with self._lock:
            txn = self._open.get(id(raw))
            if txn is None:
                txn = self._open[id(raw)] = _Transaction(raw)
            if txn.overflowed:
                released = [event]
            else:
                txn.held.append(event)
                if failed and self._errors_abort and txn.failed_at is None:
                    txn.failed_at = len(txn.held) - 1
                if len(txn.held) > self._max_held:
                    released, txn.held, txn.savepoints, txn.overflowed = txn.held, [], [], True
        if released:
            self._emit(released, UNKNOWN)

    def control(self, conn: Any, kind: str, name: str | None) -> None:
        """A transaction-control statement that succeeded on ``conn``."""
        try:
            raw = conn.connection.dbapi_connection
        except Exception:
            return
        if kind == "commit":
            self.ended(raw, COMMITTED)
        elif kind == "rollback":
            self.ended(raw, ROLLED_BACK)
        elif kind in ("savepoint", "release", "rollback_to"):
            with self._lock:
                txn = self._open.get(id(raw))
                if txn is None:
                    if kind != "savepoint" or _autocommit(conn, raw):
                        return
                    txn = self._open[id(raw)] = _Transaction(raw)
                if kind == "savepoint":
                    txn.savepoints.append((name, len(txn.held)))
                    return
                found = next((i for i in range(len(txn.savepoints) - 1, -1, -1) if txn.savepoints[i][0] == name),
                             None)
                if found is None:
                    return
                start = txn.savepoints[found][1]
                if kind == "release":
                    del txn.savepoints[found:]
                    return
                del txn.savepoints[found + 1:]  # ROLLBACK TO keeps the savepoint itself
                # Marked now, sent with the rest when the transaction ends: stored in the order they ran.
                for undone in txn.held[start:]:
                    undone["transactionOutcome"] = ROLLED_BACK
                if txn.failed_at is not None and txn.failed_at >= start:
                    txn.failed_at = None  # rolling back to a savepoint recovers an aborted transaction

    def ended(self, raw: Any, outcome: str) -> None:
        """The transaction on DBAPI connection ``raw`` ended with ``outcome``."""
        with self._lock:
            txn = self._open.pop(id(raw), None)
        if txn is None or not txn.held:
            return
        if outcome == COMMITTED and txn.failed_at is not None:
            outcome = ROLLED_BACK
        self._emit(txn.held, outcome)

    def release_all(self) -> None:
        """Recording stops: every held event goes out as ``unknown``."""
        with self._lock:
            open_transactions, self._open = list(self._open.values()), {}
        for txn in open_transactions:
            if txn.held:
                self._emit(txn.held, UNKNOWN)

    def forget_after_fork(self) -> None:
        # The parent's transactions are the parent's to report.
        self._lock = threading.Lock()
        self._open = {}


def _autocommit(conn: Any, raw: Any) -> bool:
    flag = getattr(raw, "autocommit", None)  # psycopg, the asyncpg adapter, psycopg2
    if isinstance(flag, bool):
        return flag
    try:
        return bool(conn._is_autocommit_isolation())  # SQLAlchemy's own view for other drivers
    except Exception:
        return False


# --- the dialect's commit and rollback -------------------------------------------------------------

_TRACKERS_ATTRIBUTE = "_atlas_audit_trackers"
_WRAPPED = ("do_commit", "do_rollback", "do_commit_twophase", "do_rollback_twophase")


def attach(dialect: Any, tracker: OutcomeTracker) -> None:
    """Report ``dialect``'s commits and rollbacks to ``tracker`` (wrapping its methods once)."""
    trackers: list[OutcomeTracker] | None = dialect.__dict__.get(_TRACKERS_ATTRIBUTE)
    if trackers is None:
        trackers = []
        _wrap(dialect, trackers)
        setattr(dialect, _TRACKERS_ATTRIBUTE, trackers)
    trackers.append(tracker)


def detach(dialect: Any, tracker: OutcomeTracker) -> None:
    trackers = dialect.__dict__.get(_TRACKERS_ATTRIBUTE)
    if trackers is None or tracker not in trackers:
        return
    trackers.remove(tracker)
    if not trackers:
        for name in (*_WRAPPED, _TRACKERS_ATTRIBUTE):
            dialect.__dict__.pop(name, None)


def _notify(trackers: list[OutcomeTracker], raw: Any, outcome: str) -> None:
    for tracker in list(trackers):
        try:
            tracker.ended(raw, outcome)
        except Exception as exc:  # recording must never break the application's commit
            _warn(exc)


def _wrap(dialect: Any, trackers: list[OutcomeTracker]) -> None:
    commit, rollback = dialect.do_commit, dialect.do_rollback
    commit_twophase, rollback_twophase = dialect.do_commit_twophase, dialect.do_rollback_twophase

    def failed_commit_outcome(exc: BaseException, raw: Any) -> str:
        # The server answered with an error: nothing was committed. The connection broke: it may have been.
        try:
            refused = isinstance(exc, dialect.loaded_dbapi.Error) and not dialect.is_disconnect(exc, raw, None)
        except Exception:
            refused = False
        return ROLLED_BACK if refused else UNKNOWN

    def do_commit(dbapi_connection: Any) -> None:
        raw = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
        try:
            commit(dbapi_connection)
        except BaseException as exc:
            _notify(trackers, raw, failed_commit_outcome(exc, raw))
            raise
        _notify(trackers, raw, COMMITTED)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:  # a rollback that failed leaves nothing committed either
            _notify(trackers, getattr(dbapi_connection, "dbapi_connection", dbapi_connection), ROLLED_BACK)

    def do_commit_twophase(connection: Any, xid: Any, is_prepared: bool = True, recover: bool = False) -> None:
        raw = connection.connection.dbapi_connection
        try:
            commit_twophase(connection, xid, is_prepared, recover)
        except BaseException as exc:
            _notify(trackers, raw, failed_commit_outcome(exc, raw))
            raise
        _notify(trackers, raw, COMMITTED)

    def do_rollback_twophase(connection: Any, xid: Any, is_prepared: bool = True, recover: bool = False) -> None:
        raw = connection.connection.dbapi_connection
        try:
            rollback_twophase(connection, xid, is_prepared, recover)
        finally:
            _notify(trackers, raw, ROLLED_BACK)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
    dialect.do_commit_twophase, dialect.do_rollback_twophase = do_commit_twophase, do_rollback_twophase


def _warn(exc: BaseException) -> None:
    try:
        log.warning("atlas audit: could not record a transaction's outcome: %s: %s", type(exc).__name__, exc)
    except Exception:  # noqa: S110 - a closed stderr must not break the application
        pass


# --- process exit and fork -----------------------------------------------------------------------

_trackers: weakref.WeakSet[OutcomeTracker] = weakref.WeakSet()


def _release_all_at_exit() -> None:
    for tracker in list(_trackers):
        tracker.release_all()


def _forget_in_child() -> None:
    for tracker in list(_trackers):
        tracker.forget_after_fork()


def _register_exit_finalizer(_: object = None) -> None:
    # multiprocessing children exit through os._exit (no atexit): they run these finalizers, the
    # higher priority first, so held events reach the client before it closes.
    multiprocessing.util.Finalize(None, _release_all_at_exit, exitpriority=10)


class _ForkAnchor:
    """multiprocessing.util.register_after_fork needs an object to hold weakly."""


_anchor = _ForkAnchor()
_register_exit_finalizer()
multiprocessing.util.register_after_fork(_anchor, _register_exit_finalizer)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
