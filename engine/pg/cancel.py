"""CancelRequest through the gateway.

Clients only ever see keys the gateway made up; each maps to the target's real backend key.
A CancelRequest on the listener is matched (secret compared in constant time) and sent on to
the target over a fresh connection, as libpq itself does.

With ``engine.workers`` several processes accept on one port, and the kernel hands the
CancelRequest's connection to any of them, seldom the one holding the session. So the key says
whose it is: the process id the client gets is ``n * slots + slot`` (``slot``: this worker's
index), and a key of a sibling's slot is handed to that sibling (``forward``) instead of being
dropped as unknown. The sibling checks the secret as if the request had come to it. Behind a
load balancer the request may even reach another machine: a key no worker here knows is offered
to the fleet's other nodes (``elsewhere``), which check it the same way.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.pg import codec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamKey:
    host: str
    port: int
    pid: int
    secret: int


MAX_SLOTS = 64  # workers whose keys can be told apart


class CancelKeys:
    def __init__(self, slot: int = 0, slots: int = 1,
                 forward: Callable[[int, int, int], Awaitable[bool]] | None = None,
                 elsewhere: Callable[[int, int], Awaitable[bool]] | None = None) -> None:
        """``slot`` of ``slots``: this worker's share of the key space; ``forward(slot, pid,
        secret)`` hands a sibling's key to that sibling; ``elsewhere(pid, secret)`` offers a
        key nobody here knows to the other nodes of the fleet (another machine's)."""
        self._elsewhere = elsewhere
        if not 0 <= slot < slots <= MAX_SLOTS:
            raise ValueError(f"worker {slot} of {slots}: at most {MAX_SLOTS} workers")
        self.slot, self.slots = slot, slots
        self._forward = forward
        self._keys: dict[int, tuple[int, UpstreamKey]] = {}
        self._hooks: dict[int, Callable[[], bool]] = {}

    def issue(self, upstream: UpstreamKey,
              on_cancel: Callable[[], bool] | None = None) -> tuple[int, int]:
        """A key for the client; ``on_cancel`` runs when a matching CancelRequest arrives (a
        statement held at the gateway for approval is withdrawn there); when it says it
        handled the cancel, the target is not asked to cancel anything."""
        while True:
            pid = (secrets.randbelow((2**31 - 1) // self.slots - 1) + 1) * self.slots + self.slot
            if pid not in self._keys:
                break
        secret = secrets.randbits(32) - 2**31
        self._keys[pid] = (secret, upstream)
        if on_cancel is not None:
            self._hooks[pid] = on_cancel
        return pid, secret

    def release(self, pid: int) -> None:
        self._keys.pop(pid, None)
        self._hooks.pop(pid, None)

    def lookup(self, pid: int, secret: int) -> UpstreamKey | None:
        entry = self._keys.get(pid)
        if entry is None:
            return None
        expected, upstream = entry
        if not hmac.compare_digest(expected.to_bytes(4, "big", signed=True),
                                   secret.to_bytes(4, "big", signed=True)):
            return None
        return upstream

    def owner(self, pid: int) -> int:
        """The worker whose key ``pid`` is."""
        return pid % self.slots

    async def cancel(self, pid: int, secret: int, *, forwarded: bool = False) -> bool:
        """Cancel what the key names; a sibling's key goes to the sibling (once: a forwarded
        request is never forwarded again)."""
        upstream = self.lookup(pid, secret)
        if upstream is None:
            if forwarded:
                return False
            owner = self.owner(pid)
            if owner != self.slot and self._forward is not None:
                log.info("CancelRequest for a session of worker %d: handed to it", owner)
                if await self._forward(owner, pid, secret):
                    return True
            if self._elsewhere is not None:
                return await self._elsewhere(pid, secret)
            log.info("CancelRequest with an unknown key ignored")
            return False
        hook = self._hooks.get(pid)
        if hook is not None and hook():
            return True
        payload = upstream.pid.to_bytes(4, "big", signed=True) + upstream.secret.to_bytes(
            4, "big", signed=True
        )
        try:
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
                writer.write(codec.untagged(codec.CANCEL_REQUEST, payload))
                await writer.drain()
                await reader.read()  # the target closes when done
                writer.close()
        except (OSError, TimeoutError) as exc:
            log.warning("could not forward a CancelRequest: %s", exc)
            return False
        return True
