"""The error that ends a session when a peer's bytes are not valid protocol.

It lives below both of its users so that neither imports the other: the PostgreSQL front end
(``engine.pg``: framing, message decoders, the relay) raises it on what a client or a target
sends, and result masking (``engine.masking.pg``) raises it on a malformed message from the
target while rewriting it. The connection catches one class whoever found the fault, tells the
client, and ends only that session. ``engine.pg.codec`` re-exports it.
"""

from __future__ import annotations


class ProtocolViolation(Exception):
    """A peer sent bytes that are not valid protocol: its session must end.

    ``sqlstate`` is what the client is told: PostgreSQL's ``protocol_violation`` (08P01), or
    ``program_limit_exceeded`` (54000) for a message over the size limit.
    """

    def __init__(self, message: str, sqlstate: str = "08P01") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
