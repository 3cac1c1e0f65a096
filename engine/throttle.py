"""Logins from an address that keeps failing are slowed down, whatever their outcome.

Once an address has failed ``FREE_FAILURES`` times within five minutes (a mistyped token or
two costs nothing), every login attempt from it waits before its token is even looked at: 0.2 s,
doubling with each further failure, up to 5 s. The wait comes before the check, not before the
answer to a failure: a guesser who sends the next guess early, or reads success from a quick
answer, gains nothing (a user sharing an address with a guesser waits too — the price of a
limit that cannot be walked around). One ``LoginThrottle`` per engine, shared by every protocol,
and bounded in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

WINDOW = 300.0  # failures older than this are forgotten
FREE_FAILURES = 3
FIRST_DELAY = 0.2
MAX_DELAY = 5.0
MAX_ADDRESSES = 10_000


class LoginThrottle:
    def __init__(self) -> None:
        # address → (failures, last one), least recently failed first
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failures(self, address: str) -> int:
        """Failures from ``address`` within the window."""
        count, last = self._failures.get(address, (0, 0.0))
        return count if time.monotonic() - last <= WINDOW else 0

    def penalty(self, address: str) -> float:
        """How long the next failure from ``address`` is answered late."""
        count, last = self._failures.get(address, (0, 0.0))
        if count < FREE_FAILURES or time.monotonic() - last > WINDOW:
            return 0.0
        return float(min(FIRST_DELAY * 2.0 ** (count - FREE_FAILURES), MAX_DELAY))

    def note(self, address: str) -> None:
        count, last = self._failures.get(address, (0, 0.0))
        if time.monotonic() - last > WINDOW:
            count = 0
        self._failures[address] = (count + 1, time.monotonic())
        self._failures.move_to_end(address)
        if len(self._failures) > MAX_ADDRESSES:  # forget the one that failed longest ago
            self._failures.popitem(last=False)

    async def wait(self, address: str) -> None:
        """Before a login attempt from ``address`` is checked: its penalty, if any."""
        delay = self.penalty(address)
        if delay:
            await asyncio.sleep(delay)


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
