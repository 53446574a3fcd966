"""SQL analysis off the event loop, within a budget per statement.

Extracting tables and columns (:mod:`.extraction`) is pure CPU: on the server's event loop one huge
statement would stall every other request. :class:`AnalysisPool` runs it in worker processes (one per
CPU by default) and is a :class:`concurrent.futures.Executor`, so ``loop.run_in_executor`` and the
bulk import hand it work as they would a process pool.

Each statement has a budget (:class:`ParseBudget`): a statement larger than ``max_bytes``, or whose
analysis takes longer than ``seconds``, is stored with ``parse_error`` "too complex to analyse: …"
and no tables; the rest of its batch is analysed normally. The time budget is enforced twice: in the
worker by a timer that interrupts the analysis, and, for a worker stuck where the timer cannot reach
(compiled parser code) or one that died, by the pool, which kills the worker after
``seconds + max(1, seconds)``, starts a new one and sends it the same work again with that statement
marked over budget. Nothing of the batch is lost.

Workers start lazily (on the first submission) from a fork server, so they never inherit the
server's threads or database sockets, and run at a lower CPU priority (nice +10) than the process
that serves requests.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .extraction import AccessInfo, Catalog, extract_access

TOO_COMPLEX = "too complex to analyse"
WORKER_NICENESS = 10
_POLL_SECONDS = 0.05
_NEGATIVE_CACHE = 1_000  # digests of statements found over budget, per worker
_MIN_BUDGETED_CHARS = 2_048  # shorter texts are never over budget, so are not hashed


@dataclass(frozen=True)
class ParseBudget:
    """What one statement may cost: its size in bytes of UTF-8 and the wall-clock seconds its
    analysis may take."""

    max_bytes: int = 256 * 1024
    seconds: float = 2.0

    @property
    def hard_seconds(self) -> float:
        """When the pool kills a worker still analysing one statement."""
        return self.seconds + max(1.0, self.seconds)


DEFAULT_BUDGET = ParseBudget()


def budget_of(settings: Any) -> ParseBudget:
    """The budget set by ``ATLAS_PARSE_MAX_BYTES`` and ``ATLAS_PARSE_SECONDS``."""
    return ParseBudget(max_bytes=settings.parse_max_bytes, seconds=settings.parse_seconds)


def too_complex(reason: str) -> AccessInfo:
    return AccessInfo(tables=(), columns_by_table={}, columns=(), parse_error=f"{TOO_COMPLEX}: {reason}")


# --- in the process that analyses ------------------------------------------------------------------
class _OverBudget(BaseException):
    """Raised by the timer inside an analysis (BaseException: the extractor's own handlers, which
    turn any Exception into a parse_error, must not catch it)."""


class _Analyser:
    """The analysing side's state: the budget, the item being worked on (shared with the pool), the
    items the pool marked over budget, and the statements already found over budget."""

    def __init__(self) -> None:
        self.budget = DEFAULT_BUDGET
        self.progress: Any = None  # a shared [item index, monotonic start of its analysis or 0]
        self.forced: dict[int, str] = {}
        self.over: OrderedDict[bytes, str] = OrderedDict()
        self.timer = False  # whether SIGALRM is ours (a worker, or the main thread of a CLI)


_analyser = _Analyser()


def configure(budget: ParseBudget) -> None:
    """Set the budget of analyses run in this process (the pool sets its workers')."""
    _analyser.budget = budget


def begin_item(index: int) -> str | None:
    """Called before each item of a submitted batch: the parse_error to store instead of analysing,
    when the pool found this item over budget in an earlier attempt."""
    if _analyser.progress is not None:
        _analyser.progress[0] = index
    return _analyser.forced.get(index)


def analyse(sql: str, dialect: str | None, catalog: Catalog | None) -> AccessInfo:
    """:func:`~.extraction.extract_access` within this process's budget."""
    budget = _analyser.budget
    if isinstance(sql, str) and len(sql) * 4 > budget.max_bytes:
        size = len(sql.encode("utf-8", "surrogatepass"))
        if size > budget.max_bytes:
            return too_complex(f"the statement is {size:,} bytes, over the budget of {budget.max_bytes:,} bytes")
    digest = None
    if isinstance(sql, str) and len(sql) >= _MIN_BUDGETED_CHARS:
        digest = hashlib.blake2b(f"{dialect}\x00{sql}".encode("utf-8", "surrogatepass"), digest_size=20).digest()
        known = _analyser.over.get(digest)
        if known is not None:
            return too_complex(known)
    if not _analyser.timer:
        return extract_access(sql, dialect, catalog)
    progress = _analyser.progress
    if progress is not None:
        progress[1] = time.monotonic()
    # The cyclic garbage collector is paused for the analysis: a large statement's tree (nodes
    # pointing to their parents) makes its full collections recur while the tree grows, which cost
    # 2-4x the analysis of a 10,000-UNION statement. The tree is collected once the analysis is done.
    collecting = gc.isenabled()
    gc.disable()
    signal.setitimer(signal.ITIMER_REAL, budget.seconds)
    try:
        return extract_access(sql, dialect, catalog)
    except _OverBudget:
        reason = f"analysis took longer than the budget of {budget.seconds:g} s"
        if digest is not None:
            _analyser.over[digest] = reason
            while len(_analyser.over) > _NEGATIVE_CACHE:
                _analyser.over.popitem(last=False)
        return too_complex(reason)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if collecting:
            gc.enable()
        if progress is not None:
            progress[1] = 0.0


def _on_alarm(signum: int, frame: Any) -> None:
    raise _OverBudget()


def use_timer() -> None:
    """Enforce the time budget in this process with SIGALRM (main thread only)."""
    signal.signal(signal.SIGALRM, _on_alarm)
    _analyser.timer = True


def _worker_main(conn: Connection, progress: Any, budget: ParseBudget) -> None:
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    configure(budget)
    _analyser.progress = progress
    use_timer()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args, forced = message
        _analyser.forced = forced
        try:
            result = ("ok", fn(*args))
        except BaseException as exc:  # handed to the submitter
            result = ("error", exc)
        finally:
            _analyser.forced = {}
            progress[1] = 0.0
        try:
            conn.send(result)
        except OSError:  # the pool is gone (shut down while this batch was analysed)
            return
        except Exception as exc:  # an unpicklable answer or exception
            try:
                conn.send(("error", RuntimeError(f"analysis worker could not send its answer: {exc!r}")))
            except OSError:
                return


# --- the pool --------------------------------------------------------------------------------------
class _Worker:
    def __init__(self, ctx: Any, budget: ParseBudget) -> None:
        self.progress = ctx.RawArray("d", 2)
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, self.progress, budget), daemon=True,
                                   name="atlas-analysis")
        self.process.start()
        child.close()

    def stop(self, *, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


class AnalysisPool(Executor):
    """``workers`` analysis processes, started on the first submission; see the module docstring.

    ``submit(fn, *args)`` runs ``fn(*args)`` in a worker (``fn`` and its arguments are pickled);
    ``fn`` calls :func:`begin_item` before each item and :func:`analyse` for each statement."""

    def __init__(self, workers: int | None = None, budget: ParseBudget = DEFAULT_BUDGET) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.budget = budget
        self.replaced = 0  # workers killed over budget (or found dead) and replaced
        self._lock = threading.Lock()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._threads: ThreadPoolExecutor | None = None
        self._ctx: Any = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._threads is not None

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._all if w.process.pid is not None]

    def start(self) -> None:
        """Start the workers now (blocks while they start: call it from a thread, not the event loop)."""
        self._start()

    def _start(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the analysis pool is shut down")
            if self._threads is None:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["atlas_compliance.audit.service", "atlas_compliance.audit.bulk"])
                self._ctx = ctx
                for _ in range(self.workers):
                    worker = _Worker(ctx, self.budget)
                    self._all.append(worker)
                    self._idle.put(worker)
                self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="atlas-analysis")
            return self._threads

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            raise TypeError("AnalysisPool.submit takes positional arguments only")
        return self._start().submit(self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        worker = self._idle.get()
        try:
            forced: dict[int, str] = {}
            while True:
                try:
                    worker.conn.send((fn, args, forced))
                except OSError:  # the worker died while idle: a new one gets the work
                    worker = self._replace(worker)
                    worker.conn.send((fn, args, forced))
                outcome, value = self._wait(worker)
                if outcome == "ok":
                    return value
                if outcome == "error":
                    raise value
                index, reason = value
                worker = self._replace(worker)
                if index in forced:  # the same item again: not the statement's fault, give up
                    raise RuntimeError(f"analysis worker failed twice on item {index}: {reason}")
                forced = {**forced, index: f"{TOO_COMPLEX}: {reason}"}
        finally:
            if self._closed:
                worker.stop(kill=True)
            else:
                self._idle.put(worker)

    def _wait(self, worker: _Worker) -> tuple[str, Any]:
        limit = self.budget.hard_seconds
        while True:
            if worker.conn.poll(_POLL_SECONDS):
                try:
                    return worker.conn.recv()  # type: ignore[no-any-return]
                except (EOFError, OSError):
                    pass  # died while answering: handled below
            if not worker.process.is_alive() or worker.conn.closed:
                index = int(worker.progress[0])
                return "lost", (index, f"the analysis worker stopped (exit code {worker.process.exitcode})")
            started = worker.progress[1]
            if started and time.monotonic() - started > limit:
                index = int(worker.progress[0])
                return "lost", (index, f"analysis took longer than the budget of {self.budget.seconds:g} s")

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop(kill=True)
        with self._lock:
            self.replaced += 1
            fresh = _Worker(self._ctx, self.budget)
            self._all = [fresh if w is worker else w for w in self._all]
        return fresh

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()
