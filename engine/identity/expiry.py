"""Sessions end when the token that opened them expires.

An OIDC token carries ``exp``; a session it opened may outlive it by ``identity.oidc.
session_grace`` seconds and is then ended by the engine, recorded with the reason
``token expired``. Static tokens and SSH keys do not expire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from engine.identity.base import Identity

EXPIRED = "token expired"
MESSAGE = "your sign-in token expired; sign in again (gatewatch login) to go on"


def watch_expiry(identity: Identity, grace: float,
                 on_expired: Callable[[], None]) -> asyncio.TimerHandle | None:
    """Call ``on_expired`` when ``identity``'s token runs out (plus ``grace``); None when it
    never does. Cancel the handle when the session ends first."""
    if identity.expires_at is None:
        return None
    delay = max(identity.expires_at + grace - time.time(), 0.0)
    return asyncio.get_running_loop().call_later(delay, on_expired)
