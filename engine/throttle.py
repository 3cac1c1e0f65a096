"""Failed logins are answered late, and later for an address that keeps failing.

The delay doubles from 0.2 s with each failure from one address within five minutes, up to
5 s; a success never waits (a guesser sharing an address must not slow its users). One
``LoginThrottle`` per engine, shared by every protocol, and bounded in memory.
"""

from __future__ import annotations

import asyncio
import time

WINDOW = 300.0  # failures older than this are forgotten
FIRST_DELAY = 0.2
MAX_DELAY = 5.0
MAX_ADDRESSES = 10_000


class LoginThrottle:
    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # address → (failures, last one)

    def penalty(self, address: str) -> float:
        """How long the next failure from ``address`` is answered late."""
        count, last = self._failures.get(address, (0, 0.0))
        if not count or time.monotonic() - last > WINDOW:
            return 0.0
        return float(min(FIRST_DELAY * 2.0 ** (count - 1), MAX_DELAY))

    def note(self, address: str) -> None:
        count, last = self._failures.get(address, (0, 0.0))
        if time.monotonic() - last > WINDOW:
            count = 0
        self._failures[address] = (count + 1, time.monotonic())
        if len(self._failures) > MAX_ADDRESSES:  # forget the oldest
            oldest = min(self._failures, key=lambda a: self._failures[a][1])
            self._failures.pop(oldest, None)

    async def failed(self, address: str) -> None:
        """Count a failure from ``address``, then wait its penalty."""
        self.note(address)
        await asyncio.sleep(self.penalty(address))


class Unauthenticated:
    """Connections per address that have not logged in yet, so that one address cannot hold
    the listener with connections that never do (a banner never sent, a login never finished).
    """

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def enter(self, address: str, cap: int) -> bool:
        """Count a new connection from ``address``; False (not counted) when it already has
        ``cap`` that have not logged in."""
        count = self._open.get(address, 0)
        if count >= cap:
            return False
        self._open[address] = count + 1
        return True

    def leave(self, address: str) -> None:
        """A counted connection logged in or went away."""
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def count(self, address: str) -> int:
        return self._open.get(address, 0)
