"""What the workers of one engine say to each other directly: CancelRequests that reached the
wrong worker.

Each worker listens on a private Unix socket (0600, beside the control socket) for the 16 bytes
of a CancelRequest and treats them as if they had come to its own listener (the secret is checked
there, so a sibling can cancel nothing it could not have cancelled on the listener).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from pathlib import Path

from engine.pg import codec
from engine.pg.cancel import CancelKeys

log = logging.getLogger(__name__)

_PACKET = struct.Struct("!iiii")  # length, code, pid, secret


async def forward_cancel(path: Path, pid: int, secret: int) -> bool:
    """Hand a CancelRequest to the worker listening at ``path``; True when it took it."""
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                writer.write(_PACKET.pack(16, codec.CANCEL_REQUEST, pid, secret))
                await writer.drain()
                answer = await reader.read(1)
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        log.warning("could not hand a CancelRequest to worker at %s: %s", path, exc)
        return False
    return answer == b"1"


class CancelListener:
    """A worker's socket for its siblings' forwarded CancelRequests."""

    def __init__(self, path: Path, keys: CancelKeys) -> None:
        self.path = path
        self._keys = keys
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a dead worker's: the supervisor starts one worker per index
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        finally:
            os.umask(old)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length, code, pid, secret = _PACKET.unpack(await reader.readexactly(16))
            done = False
            if length == 16 and code == codec.CANCEL_REQUEST:
                done = await self._keys.cancel(pid, secret, forwarded=True)
            writer.write(b"1" if done else b"0")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
