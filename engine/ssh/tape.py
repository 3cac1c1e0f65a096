"""An SSH session's bytes on their way to the store: batched, ordered, bounded.

Bytes are gathered into chunks (one per run of the same channel and stream) and handed to the
recorder every ``FLUSH_DELAY`` or every ``FLUSH_BYTES``, whichever comes first. What the store
has not yet committed is counted: above ``HIGH_WATER`` the tape asks the bridges to stop reading
from the target (``on_pressure(True)``) and below ``LOW_WATER`` to go on, so a session that
prints hundreds of MB never holds more than a few MB in memory, and a slow store slows the
session instead of growing it. Output reaches the client before its chunk is committed (up to
``HIGH_WATER`` ahead); a store that fails ends the session (``on_failure``), so at most that
much was shown and not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from engine.recorder import Recorder
from store import StoreError
from store.records import SshOutput

FLUSH_DELAY = 0.05
FLUSH_BYTES = 256 * 1024
HIGH_WATER = 8 * 1024 * 1024
LOW_WATER = 2 * 1024 * 1024


class Tape:
    def __init__(self, recorder: Recorder, session_id: str, started: float,
                 on_pressure: Callable[[bool], None],
                 on_failure: Callable[[StoreError], None]) -> None:
        self._recorder = recorder
        self.session_id = session_id
        self._started = started
        self._on_pressure = on_pressure
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._chunk = bytearray()
        self._key: tuple[int, str] | None = None
        self._chunk_t = 0.0
        self._ops: list[SshOutput] = []
        self._op_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self.seq = 0
        self.outstanding = 0  # bytes handed to the recorder, not yet committed
        self.pressed = False
        self.failed: StoreError | None = None
        self.recorded_bytes = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, channel: int, stream: str, data: bytes) -> None:
        if not data or self.failed is not None:
            return
        key = (channel, stream)
        if key != self._key:
            self._close_chunk()
            self._key = key
            self._chunk_t = time.time() - self._started
        self._chunk += data
        if len(self._chunk) + self._op_bytes >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(FLUSH_DELAY, self.flush)

    def mark_size(self, channel: int, cols: int, rows: int) -> None:
        self.add(channel, "r", f"{cols}x{rows}".encode())
        self._close_chunk()  # a size is its own chunk

    def _close_chunk(self) -> None:
        if not self._chunk or self._key is None:
            return
        self.seq += 1
        channel, stream = self._key
        self._ops.append(SshOutput.of(self.session_id, self.seq, self._chunk_t, channel,
                                      stream, bytes(self._chunk)))
        self._op_bytes += len(self._chunk)
        self._chunk.clear()
        self._key = None

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._close_chunk()
        if not self._ops:
            return
        ops, size = self._ops, self._op_bytes
        self._ops, self._op_bytes = [], 0
        self.outstanding += size
        self._idle.clear()
        if self.outstanding > HIGH_WATER and not self.pressed:
            self.pressed = True
            self._on_pressure(True)

        def done(exc: StoreError | None) -> None:
            self.outstanding -= size
            if self.outstanding == 0:
                self._idle.set()
            if exc is not None:
                if self.failed is None:
                    self.failed = exc
                    self._on_failure(exc)
                return
            self.recorded_bytes += size
            if self.pressed and self.outstanding < LOW_WATER:
                self.pressed = False
                self._on_pressure(False)

        self._recorder.commit(ops, done)

    async def drain(self) -> None:
        """Flush and wait until everything handed over is committed (at session end)."""
        self.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 10)
