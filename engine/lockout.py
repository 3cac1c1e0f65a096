"""Lock-outs: an operator keeps an identity out for a while, after killing its session.

A kill alone ends one session; the client may reconnect at once with the same token (issue 16:
psql did). A lock-out refuses new sessions of an identity — on every connection, or on one —
until it ends or an operator lifts it. The session core asks at admission (``Session.admit``),
so both front ends refuse alike. Setting and lifting are audit-chained records
(``store.records.LockoutSet``/``LockoutLift``), committed before they take effect; the engine
loads the lock-outs still in force when it starts, so a restart does not lift them.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SCOPES = ("identity", "connection")
LONGEST = 30 * 86400.0  # a lock-out longer than this is a change to the policies file
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class LockoutError(ValueError):
    """A lock-out asked for in a way the engine cannot take; the message says how to ask."""


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``1h30m``, ``90s``, ``1d`` → seconds (at most 30 days)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise LockoutError(f"lock-out duration {text!r}: write it as 30m, 2h, 1h30m, 90s or 1d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds <= LONGEST:
        raise LockoutError(f"lock-out duration {text!r}: from 1s to 30d")
    return seconds


def new_lockout_id() -> str:
    return uuid.uuid4().hex[:12]


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class Lockout:
    id: str
    identity: str
    connection: str | None  # None: every connection
    until: float
    created_at: float
    created_by: str
    reason: str
    session_id: str | None  # the session killed with it

    def covers(self, identity: str, connection: str, now: float) -> bool:
        return (self.identity == identity and now < self.until
                and self.connection in (None, connection))

    def message(self) -> str:
        """What a refused client is told."""
        where = f"connection {self.connection}" if self.connection else "every connection"
        return (f'identity "{self.identity}" is locked out of {where} until '
                f"{_clock(self.until)} by operator {self.created_by}: {self.reason} "
                f"(lock-out {self.id})")

    def describe(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "identity": self.identity, "connection": self.connection,
                "scope": "connection" if self.connection else "identity",
                "until": _iso(self.until), "left_s": max(0, round(self.until - now)),
                "created_at": _iso(self.created_at), "created_by": self.created_by,
                "reason": self.reason, "session_id": self.session_id}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Lockouts:
    """The lock-outs in force, by id. Ended ones are dropped as they are met."""

    def __init__(self) -> None:
        self.active: dict[str, Lockout] = {}

    def add(self, lockout: Lockout) -> None:
        self.active[lockout.id] = lockout

    def lift(self, lockout_id: str) -> Lockout | None:
        return self.active.pop(lockout_id, None)

    def current(self, now: float | None = None) -> list[Lockout]:
        now = time.time() if now is None else now
        for lid in [lid for lid, lo in self.active.items() if lo.until <= now]:
            del self.active[lid]
        return sorted(self.active.values(), key=lambda lo: lo.until)

    def find(self, identity: str, connection: str, now: float | None = None) -> Lockout | None:
        """The lock-out that keeps ``identity`` off ``connection`` now, if any."""
        now = time.time() if now is None else now
        for lockout in self.active.values():
            if lockout.covers(identity, connection, now):
                return lockout
        return None
