"""CancelRequest through the gateway.

Clients only ever see keys the gateway made up; each maps to the target's real backend key.
A CancelRequest on the listener is matched (secret compared in constant time) and sent on to
the target over a fresh connection, as libpq itself does.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from engine.pg import codec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamKey:
    host: str
    port: int
    pid: int
    secret: int


class CancelKeys:
    def __init__(self) -> None:
        self._keys: dict[int, tuple[int, UpstreamKey]] = {}
        self._hooks: dict[int, Callable[[], bool]] = {}

    def issue(self, upstream: UpstreamKey,
              on_cancel: Callable[[], bool] | None = None) -> tuple[int, int]:
        """A key for the client; ``on_cancel`` runs when a matching CancelRequest arrives (a
        statement held at the gateway for approval is withdrawn there); when it says it
        handled the cancel, the target is not asked to cancel anything."""
        while True:
            pid = secrets.randbelow(2**31 - 1) + 1
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

    async def cancel(self, pid: int, secret: int) -> bool:
        upstream = self.lookup(pid, secret)
        if upstream is None:
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
