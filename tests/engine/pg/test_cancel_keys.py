"""A CancelRequest that withdraws a statement held at the gateway goes no further: sent on to
the target, it would cancel whatever the client runs next."""

from __future__ import annotations

import asyncio

from engine.pg.cancel import CancelKeys, UpstreamKey


async def test_a_cancel_handled_at_the_gateway_is_not_sent_to_the_target() -> None:
    reached: list[bytes] = []

    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.append(await reader.read(16))
        writer.close()

    server = await asyncio.start_server(target, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    keys = CancelKeys()
    handled = [True]
    pid, secret = keys.issue(UpstreamKey("127.0.0.1", port, 7, 8), lambda: handled[0])
    try:
        assert await keys.cancel(pid, secret)
        await asyncio.sleep(0.05)
        assert reached == []  # withdrawn at the gateway: nothing to cancel at the target
        handled[0] = False  # nothing held: the statement runs at the target, cancel it there
        assert await keys.cancel(pid, secret)
        await asyncio.sleep(0.05)
        assert len(reached) == 1 and reached[0][-8:] == (7).to_bytes(4, "big") + (
            8).to_bytes(4, "big")
        assert not await keys.cancel(pid, secret + 1)  # a wrong key does nothing
    finally:
        server.close()
        await server.wait_closed()
