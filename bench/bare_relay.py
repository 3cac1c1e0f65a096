"""The floor of any Python proxy here: a byte relay with no parsing, on uvloop.

    .venv/bin/python bench/bare_relay.py LISTEN_PORT TARGET_PORT

Used by pgbench_compare.py to show how much of the gap to direct is the relay itself.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class Pipe(asyncio.Protocol):
    def __init__(self, peer: Pipe | None = None) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def main(listen: int, target: int) -> None:
    loop = asyncio.get_running_loop()

    def accept() -> Pipe:
        client = Pipe()

        async def connect() -> None:
            _, upstream = await loop.create_connection(lambda: Pipe(client), "127.0.0.1",
                                                       target)
            client.peer = upstream
            for chunk in client.pending:
                upstream.transport.write(chunk)  # type: ignore[union-attr]
            client.pending.clear()

        loop.call_soon(lambda: asyncio.ensure_future(connect()))
        return client

    server = await loop.create_server(accept, "127.0.0.1", listen)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
