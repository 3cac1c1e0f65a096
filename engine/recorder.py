"""Group commit of session records: the hook between front ends and the store.

Front ends hand over typed records (``store.records``); the recorder keeps them as the
store's ``Op``s. ``commit(records, done)`` calls ``done(None)`` once those records are
committed to the store's journal (or ``done(error)``); a front end forwards a statement only
after that (ARCHITECTURE.md invariant 1). The callback is called directly from the flush, not
through a future, which saves a turn of the event loop per statement; ``committed(records)`` is
the awaitable form for code that is not on the hot path. ``write(record)`` is for records nothing
waits on (a statement's end, a session's end): they ride along with the next commit, or go
out within ``LAZY_DELAY``.

Everything handed over within one turn of the event loop is committed with one journal write.
With ``durability: full`` that write is followed by ``fdatasync``, in a worker thread, while the
next batch gathers (group commit: one fsync serves every statement that arrived meanwhile).
The store moves journal records into SQLite in the background, at most ``LAZY_DELAY`` after
they were committed, so readers see them within that delay. That move is started from a worker
thread while commits go on to a fresh journal file (with SSH sessions streaming hundreds of MB,
doing it on the event loop stalled every relay), and with SQLite the work itself — folding,
binding, writing — is done by the store's checkpoint process (``store/checkpointer.py``): in a
thread of the engine it competed with the event loop for the GIL. The thread only waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from store import Op, SqliteStore, StoreError
from store.journal import JournalRecord
from store.records import Record

log = logging.getLogger(__name__)

LAZY_DELAY = 0.05
_CHECKPOINT_AT = 20_000  # records waiting in the journal that trigger a checkpoint at once
_MAX_RETAINED = 100_000

Done = Callable[[StoreError | None], None]
_Waiter = tuple[int, int, Done]
# Told of every group committed, on the engine's thread, after the waiters: the records as
# chained, and how long the commit took (seconds). Metrics and the audit stream listen here;
# a listener must not block (it runs on the data path) and its errors are logged, not raised.
CommitListener = Callable[[list[JournalRecord], float], None]


class Recorder:
    def __init__(self, store: SqliteStore, durability: str = "normal") -> None:
        self._store = store
        self._loop = asyncio.get_running_loop()
        self._ops: list[Op] = []
        self._waiters: list[_Waiter] = []
        self._scheduled = False
        self._lazy: asyncio.TimerHandle | None = None
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._in_flight: asyncio.Future[None] | None = None
        self._executor = ThreadPoolExecutor(1, "gatewatch-store") if durability == "full" else None
        self._checkpointer = ThreadPoolExecutor(1, "gatewatch-checkpoint")
        self._checkpointer.submit(store.prepare_checkpoints)  # its process starts meanwhile
        self._checkpointing: asyncio.Future[StoreError | None] | None = None
        self.listeners: list[CommitListener] = []

    # --- handing over ---------------------------------------------------------------------

    def write(self, record: Record) -> None:
        self._ops.append(record.op())
        if not self._scheduled and self._lazy is None:
            self._lazy = self._loop.call_later(LAZY_DELAY, self._flush)

    def commit(self, records: Sequence[Record], done: Done) -> None:
        start = len(self._ops)
        self._ops.extend(r.op() for r in records)
        self._waiters.append((start, len(self._ops), done))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    async def committed(self, records: Sequence[Record]) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()

        def done(exc: StoreError | None) -> None:
            if fut.done():
                return
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

        self.commit(records, done)
        await fut

    # --- writing --------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._in_flight is not None:
            return  # the running write reschedules us when it is done
        self._scheduled = False
        if self._lazy is not None:
            self._lazy.cancel()
            self._lazy = None
        ops, waiters = self._ops, self._waiters
        if not ops:
            return
        self._ops, self._waiters = [], []
        began = time.perf_counter()
        if self._executor is None:
            try:
                chained = self._store.apply(ops)
            except StoreError as exc:
                self._failed(ops, waiters, exc)
                return
            self._succeeded(waiters)
            self._tell(chained, began)
            self._after_commit()
            return
        out: list[JournalRecord] = []

        def done(exc: StoreError | None) -> None:
            if exc is not None:
                self._failed(ops, waiters, exc)
                return
            self._succeeded(waiters)
            self._tell(out, began)

        self._run_in_thread(lambda: out.extend(self._store.apply(ops)), done)

    def _tell(self, chained: list[JournalRecord], began: float) -> None:
        if not self.listeners:
            return
        seconds = time.perf_counter() - began
        for listener in self.listeners:
            try:
                listener(chained, seconds)
            except Exception:  # metrics or a sink must never fail a commit
                log.exception("a commit listener failed")

    def _run_in_thread(self, job: Callable[[], None],
                       done: Callable[[StoreError | None], None]) -> None:
        assert self._executor is not None
        self._in_flight = self._loop.run_in_executor(self._executor, job)

        def finished(fut: asyncio.Future[None]) -> None:
            self._in_flight = None
            exc = fut.exception()
            if exc is not None and not isinstance(exc, StoreError):
                exc = StoreError(f"store write failed: {exc!r}")
            done(exc)  # type: ignore[arg-type]
            if exc is None:
                self._after_commit()
            if self._ops:
                self._scheduled = True
                self._loop.call_soon(self._flush)

        self._in_flight.add_done_callback(finished)

    def _after_commit(self) -> None:
        if self._store.pending >= _CHECKPOINT_AT:
            self._checkpoint()
        elif self._checkpoint_timer is None and self._store.pending:
            self._checkpoint_timer = self._loop.call_later(LAZY_DELAY, self._checkpoint)

    def _checkpoint(self) -> None:
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        if self._checkpointing is not None:
            return  # when it finishes it looks again
        if self._in_flight is not None:  # a journal write is running: rotate after it
            self._checkpoint_timer = self._loop.call_later(LAZY_DELAY, self._checkpoint)
            return
        job = self._store.start_checkpoint()
        if job is None:
            return
        self._checkpointing = self._loop.run_in_executor(self._checkpointer, job)
        self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpointed(self, fut: asyncio.Future[StoreError | None]) -> None:
        self._checkpointing = None
        exc = fut.exception()
        result = fut.result() if exc is None else StoreError(f"store write failed: {exc!r}")
        self._store.finish_checkpoint(result)
        if result is not None:
            log.error("%s; new statements are refused until it can be written", result)
            self._checkpoint_timer = self._loop.call_later(LAZY_DELAY, self._checkpoint)
            return
        self._after_commit()

    @staticmethod
    def _notify(waiters: list[_Waiter], exc: StoreError | None) -> None:
        for _, _, done in waiters:
            try:
                done(exc)
            except Exception:  # one session's bug must not stop the others' statements
                log.exception("a commit callback failed")

    def _succeeded(self, waiters: list[_Waiter]) -> None:
        self._notify(waiters, None)

    def _failed(self, ops: list[Op], waiters: list[_Waiter], exc: StoreError) -> None:
        """Fail the waiters (their statements are not forwarded); keep the other records."""
        awaited = [False] * len(ops)
        for start, end, _ in waiters:
            awaited[start:end] = [True] * (end - start)
        self._notify(waiters, exc)
        keep = [op for op, w in zip(ops, awaited, strict=True) if not w]
        if len(self._ops) + len(keep) > _MAX_RETAINED:
            log.error("store unwritable: dropping %d records: %s", len(keep), exc)
            return
        log.error("store write failed (%d records kept for retry): %s", len(keep), exc)
        if keep:
            shift = len(keep)
            self._ops[:0] = keep
            self._waiters = [(s + shift, e + shift, f) for s, e, f in self._waiters]

    async def drain(self) -> None:
        """Commit and checkpoint everything handed over so far (at shutdown)."""
        for _ in range(100):
            if self._in_flight is not None:
                await asyncio.wait([self._in_flight])
                continue
            if self._checkpointing is not None:
                await asyncio.wait([self._checkpointing])
                continue
            if not self._ops:
                break
            self._flush()
        while self._in_flight is not None or self._checkpointing is not None:
            await asyncio.wait([f for f in (self._in_flight, self._checkpointing) if f])
        for handle in (self._lazy, self._checkpoint_timer):
            if handle is not None:
                handle.cancel()
        try:
            self._store.checkpoint()
        except StoreError as exc:
            log.error("records left in the journal at shutdown: %s", exc)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
