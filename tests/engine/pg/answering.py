"""A relay whose target answers the gateway's readings of the settings in force at once.

Held statements have the settings in force read from the target first (``engine.pg.inforce``);
conversation tests about other things answer those readings with ``Answering``, as a target
would: with PostgreSQL's defaults, or with the values a test gives.
"""

from __future__ import annotations

import json
from typing import Any

from engine.pg import inforce
from engine.pg.relay import ClientOutcome, PgRelay
from tests.engine.pg import build as b


def settings_value(settings: dict[str, str] | None = None) -> bytes:
    """``inforce.EXPRESSION``'s value: PostgreSQL's defaults where ``settings`` has no value
    (the time zone and locales as NULL: not shown)."""
    values = {**inforce.DEFAULTS, **(settings or {})}
    return json.dumps([values.get(n) for n in inforce.NAMES]).encode()


def reading_answers(how: str, settings: dict[str, str] | None = None,
                    status: bytes = b"I") -> bytes:
    """The target's answers to one reading (``settings_value``)."""
    row = b.data_row(settings_value(settings))
    if how == "simple":
        return row + b.command_complete("SELECT 1") + b.ready(status)
    answers = (b.PARSE_COMPLETE + b.BIND_COMPLETE + row + b.command_complete("SELECT 1")
               + b.CLOSE_COMPLETE + b.CLOSE_COMPLETE)
    return answers + (b.ready(status) if how == "synced" else b"")


class Answering:
    """A ``PgRelay`` whose every reading of the settings is answered as soon as it is sent
    (``settings``: the values the target reports), and what the client sent goes on.

    It wraps the relay rather than subclassing it (the compiled ``PgRelay``, issue 18, takes
    no subclass written in Python): every other attribute is the relay's."""

    _OWN = frozenset({"relay", "settings", "readings", "auto"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "relay", PgRelay(*args, **kwargs))
        object.__setattr__(self, "settings", None)
        object.__setattr__(self, "readings", 0)
        # False: the test answers the readings itself, in their place
        object.__setattr__(self, "auto", True)

    relay: PgRelay
    settings: dict[str, str] | None
    readings: int
    auto: bool

    def __getattr__(self, name: str) -> Any:
        return getattr(self.relay, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.relay, name, value)

    def client_data(self, data: bytes) -> ClientOutcome:
        relay = self.relay
        outcome = relay.client_data(data)
        while self.auto and relay.reading is not None:
            self.readings += 1
            how = relay.reading
            relay.wire(b"")  # the reading's messages, sent
            relay.server_data(reading_answers(how, self.settings, relay.transaction_status))
            more = relay.client_data(b"")
            outcome = ClientOutcome(outcome.out + more.out, outcome.started + more.started,
                                    outcome.finished + more.finished,
                                    outcome.reply + more.reply, more.hold or outcome.hold)
        return outcome
