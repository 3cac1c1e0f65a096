"""A raw protocol client for tests that must send what no driver would."""

from __future__ import annotations

import socket
import struct

from engine.pg import codec
from engine.pg.codec import MessageReader
from engine.pg.messages import error_fields


class Wire:
    def __init__(self, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = MessageReader(1 << 26)
        self.pending: list[tuple[int, bytes]] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> tuple[int, bytes] | None:
        """The next message, or None when the gateway closed the connection."""
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def until(self, tag: bytes) -> list[tuple[int, bytes]]:
        seen: list[tuple[int, bytes]] = []
        while True:
            msg = self.recv()
            if msg is None:
                raise AssertionError(f"connection closed while waiting for {tag!r}: {seen}")
            seen.append(msg)
            if msg[0] == tag[0]:
                return seen

    def closed(self) -> bool:
        """Drain what the gateway sends; True once it has closed the connection."""
        while True:
            if self.recv() is None:
                return True

    def login(self, user: str, token: str, database: str = "shop") -> None:
        self.send(codec.startup_message({"user": user, "database": database}))
        tag, body = self.recv() or (0, b"")
        assert tag == ord("R") and struct.unpack("!i", body[:4])[0] == 3
        self.send(codec.password_message(token.encode() + b"\x00"))
        self.until(b"Z")

    def query(self, sql: str) -> list[tuple[int, bytes]]:
        self.send(codec.message(b"Q", sql.encode() + b"\x00"))
        return self.until(b"Z")

    def close(self) -> None:
        self.sock.close()


def errors_in(messages: list[tuple[int, bytes]] | None) -> list[dict[str, str]]:
    return [error_fields(body) for tag, body in messages or [] if tag == ord("E")]


def first_error(wire: Wire) -> dict[str, str]:
    """Read until an ErrorResponse and return its fields (fails if the connection closes)."""
    while True:
        msg = wire.recv()
        assert msg is not None, "connection closed without an ErrorResponse"
        if msg[0] == ord("E"):
            return error_fields(msg[1])
