"""A relay whose target answers the gateway's readings of the settings in force at once.

Held statements have the settings in force read from the target first (``engine.pg.inforce``);
conversation tests about other things answer those readings with ``Answering``, as a target
would: with PostgreSQL's defaults, or with the values a test gives.
"""

from __future__ import annotations

import json

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


class Answering(PgRelay):
    """Every reading of the settings is answered as soon as it is sent (``settings``: the
    values the target reports), and what the client sent goes on."""

    settings: dict[str, str] | None = None
    readings = 0
    auto = True  # False: the test answers the readings itself, in their place

    def client_data(self, data: bytes) -> ClientOutcome:
        outcome = super().client_data(data)
        while self.auto and self.reading is not None:
            self.readings += 1
            how = self.reading
            self.wire(b"")  # the reading's messages, sent
            self.server_data(reading_answers(how, self.settings, self.transaction_status))
            more = super().client_data(b"")
            outcome = ClientOutcome(outcome.out + more.out, outcome.started + more.started,
                                    outcome.finished + more.finished,
                                    outcome.reply + more.reply, more.hold or outcome.hold)
        return outcome
