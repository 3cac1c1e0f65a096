"""Group commit of session records: the hook between front ends and the store.

Front ends hand over ``Op`` records. ``commit(ops)`` returns a future that completes once those
ops are durable in the store; a front end forwards a statement only after that (DESIGN.md
invariant 1). ``write(op)`` is for records nothing waits on (a statement's end, a session's end).

Everything handed over within one turn of the event loop is written in one transaction. With
``durability: full`` each transaction is fsynced, in a worker thread, while the next batch
gathers: one fsync serves every statement that arrived meanwhile (group commit). With the default
``normal``, SQLite's WAL commit survives a crash of the engine but not of the machine, and the
batch is written on the loop, which costs a few microseconds per statement.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from store import Op, SqliteStore, StoreError

log = logging.getLogger(__name__)

_MAX_RETAINED = 100_000


class Recorder:
    def __init__(self, store: SqliteStore, durability: str = "normal") -> None:
        self._store = store
        self._threaded = durability == "full"
        self._loop = asyncio.get_running_loop()
        self._ops: list[Op] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._scheduled = False
        self._in_flight: asyncio.Future[None] | None = None
        self._executor = ThreadPoolExecutor(1, "gatewatch-store") if self._threaded else None
        self.failures = 0

    def write(self, op: Op) -> None:
        self._ops.append(op)
        self._schedule()

    def commit(self, ops: list[Op]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self._loop.create_future()
        start = len(self._ops)
        self._ops.extend(ops)
        self._waiters.append((start, len(self._ops), fut))
        self._schedule()
        return fut

    def _schedule(self) -> None:
        if not self._scheduled and self._in_flight is None:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _take(self) -> tuple[list[Op], list[tuple[int, int, asyncio.Future[None]]]]:
        ops, waiters = self._ops, self._waiters
        self._ops, self._waiters = [], []
        self._scheduled = False
        return ops, waiters

    def _flush(self) -> None:
        if self._in_flight is not None:
            return
        ops, waiters = self._take()
        if not ops:
            return
        if self._executor is None:
            try:
                self._store.apply(ops)
            except StoreError as exc:
                self._failed(ops, waiters, exc)
                return
            self._succeeded(waiters)
            return
        self._in_flight = self._loop.run_in_executor(self._executor, self._store.apply, ops)
        self._in_flight.add_done_callback(lambda f: self._threaded_done(f, ops, waiters))

    def _threaded_done(
        self,
        fut: asyncio.Future[None],
        ops: list[Op],
        waiters: list[tuple[int, int, asyncio.Future[None]]],
    ) -> None:
        self._in_flight = None
        exc = fut.exception()
        if isinstance(exc, StoreError):
            self._failed(ops, waiters, exc)
        elif exc is not None:
            self._failed(ops, waiters, StoreError(f"store write failed: {exc!r}"))
        else:
            self._succeeded(waiters)
        if self._ops:
            self._schedule()

    @staticmethod
    def _succeeded(waiters: list[tuple[int, int, asyncio.Future[None]]]) -> None:
        for _, _, fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _failed(
        self,
        ops: list[Op],
        waiters: list[tuple[int, int, asyncio.Future[None]]],
        exc: StoreError,
    ) -> None:
        """Fail the waiters (their statements are not forwarded); keep the other records."""
        self.failures += 1
        awaited = [False] * len(ops)
        for start, end, fut in waiters:
            for i in range(start, end):
                awaited[i] = True
            if not fut.done():
                fut.set_exception(exc)
        keep = [op for op, w in zip(ops, awaited, strict=True) if not w]
        if len(self._ops) + len(keep) > _MAX_RETAINED:
            log.error("store unwritable: dropping %d records: %s", len(keep), exc)
            keep = []
        else:
            log.error("store write failed (%d records kept for retry): %s", len(keep), exc)
        if keep:
            shift = len(keep)
            self._ops[:0] = keep
            self._waiters = [(s + shift, e + shift, f) for s, e, f in self._waiters]

    async def drain(self) -> None:
        """Write everything handed over so far (at shutdown)."""
        for _ in range(100):
            if self._in_flight is not None:
                await asyncio.wait([self._in_flight])
            if not self._ops:
                return
            ops, waiters = self._take()
            try:
                if self._executor is None:
                    self._store.apply(ops)
                else:
                    await self._loop.run_in_executor(self._executor, self._store.apply, ops)
            except StoreError as exc:
                self._failed([], waiters, exc)
                log.error("records lost at shutdown (%d): %s", len(ops), exc)
                return
            self._succeeded(waiters)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
