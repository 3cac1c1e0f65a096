"""An asyncio protocol for one peer (client or target): awaitable reads while the handshake
runs, then plain callbacks once the session relays (no per-chunk task or queue on the hot path).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from engine.pg.codec import check_length

# What a peer may send ahead while the handshake (or a just-in-time access wait) reads nothing
# of it: beyond this, reading stops until the session takes it (a client that pipelines
# hundreds of MB before it is admitted must not grow the engine).
HANDSHAKE_BUFFER = 2 * 1024 * 1024


class PeerClosed(Exception):
    """The peer closed the connection before sending what we were waiting for."""


class Side(asyncio.Protocol):
    def __init__(self, on_made: Callable[[Side], None] | None = None) -> None:
        self._on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.close_exc: Exception | None = None
        self._buf = bytearray()
        self._paused = False  # reading stopped while the handshake holds HANDSHAKE_BUFFER
        self._peer = ""
        self.received = 0  # bytes read from the peer, and written to it (metrics)
        self.sent = 0
        self._waiter: asyncio.Future[None] | None = None
        self.on_data: Callable[[bytes], None] | None = None
        self.on_lost: Callable[[Exception | None], None] | None = None
        self.on_pause_writing: Callable[[], None] | None = None
        self._lost: asyncio.Future[None] | None = None
        self.on_resume_writing: Callable[[], None] | None = None

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        addr = transport.get_extra_info("peername")  # kept: a reset peer has none later
        self._peer = (f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2
                      else str(addr or ""))
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.on_data is not None:
            self.on_data(data)
            return
        self._buf += data
        if len(self._buf) > HANDSHAKE_BUFFER and not self._paused:
            self._paused = True
            self.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.close_exc = exc
        self._wake()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if self.on_lost is not None:
            self.on_lost(exc)

    def pause_writing(self) -> None:
        if self.on_pause_writing is not None:
            self.on_pause_writing()

    def resume_writing(self) -> None:
        if self.on_resume_writing is not None:
            self.on_resume_writing()

    # --- handshake phase ------------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _unpause(self) -> None:
        if self._paused:
            self._paused = False
            self.resume_reading()

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._unpause()  # what is wanted has not arrived: read on
            if self.closed:
                raise PeerClosed()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        if len(self._buf) <= HANDSHAKE_BUFFER:
            self._unpause()
        return out

    async def read_message(self, max_size: int) -> tuple[int, bytes]:
        header = await self.read_exactly(5)
        length = int.from_bytes(header[1:5], "big", signed=True)
        check_length(header[0], length, max_size)
        return header[0], await self.read_exactly(length - 4)

    def lost(self) -> asyncio.Future[None]:
        """A future that completes when the peer goes away (for long waits in the handshake)."""
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
            if self.closed:
                self._lost.set_result(None)
        return self._lost

    @property
    def buffered(self) -> int:
        return len(self._buf)

    async def start_tls(self, context: ssl.SSLContext, *, server_side: bool, hostname: str | None
                        = None) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            self.transport, self, context, server_side=server_side, server_hostname=hostname
        )
        if transport is None:
            raise PeerClosed()
        self.transport = transport

    # --- relay phase ----------------------------------------------------------------------
    def relay(
        self,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[Exception | None], None],
    ) -> None:
        """Switch to callbacks; bytes that arrived during the handshake are delivered first."""
        self.on_data = on_data
        self.on_lost = on_lost
        self._unpause()
        if self._buf:
            leftover = bytes(self._buf)
            self._buf.clear()
            on_data(leftover)
        if self.closed:
            on_lost(self.close_exc)

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.sent += len(data)
            self.transport.write(data)

    def pause_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def peer(self) -> str:
        return self._peer
