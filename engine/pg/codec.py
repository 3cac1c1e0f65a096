"""Framing of PostgreSQL protocol v3 messages, and builders for what the gateway sends itself.

Tagged messages are ``tag (1 byte) | length (int32, counts itself) | body``. The first packet
of a connection is untagged: ``length | code | payload`` (StartupMessage, SSLRequest,
GSSENCRequest, CancelRequest). Lengths are checked before anything is buffered, so that a
peer cannot make the gateway allocate more than ``max_size`` for one message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

# Defined in engine.wire, below result masking (which raises it too); the front end imports it
# from here.
from engine.wire import ProtocolViolation as ProtocolViolation

PROTOCOL_3_0 = 196608  # 3 << 16
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP_PACKET = 10_000  # PostgreSQL's own limit for the startup packet

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")


def check_length(tag: int, length: int, max_size: int) -> None:
    if length < 4:
        raise ProtocolViolation(f"invalid message length {length} for message type {_tag(tag)}")
    if length - 4 > max_size:
        raise ProtocolViolation(
            f"message type {_tag(tag)} of {length - 4} bytes exceeds the limit of {max_size} bytes",
            sqlstate="54000",
        )


def _tag(tag: int) -> str:
    return repr(chr(tag)) if 32 <= tag < 127 else f"0x{tag:02x}"


class Gathering:
    """Bytes of one direction not parsed yet, for the relay's in-place scan. A large message
    that arrives in many chunks is gathered in a list and joined once it is complete:
    concatenating on every chunk would copy it over and over (quadratic in its size, and every
    session on the loop would wait)."""

    __slots__ = ("chunks", "need", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.need = 0

    def take(self, data: bytes) -> bytes | None:
        """What to parse now, or None while a message is still incomplete."""
        if not self.chunks:
            return data
        self.chunks.append(data)
        self.size += len(data)
        if self.size < self.need:
            return None
        joined = b"".join(self.chunks)
        self.chunks, self.size, self.need = [], 0, 0
        return joined

    def unread(self, data: bytes) -> None:
        """Put whole messages back in front, to be parsed again."""
        if self.chunks:
            self.chunks.insert(0, data)
            self.size += len(data)
            self.need += len(data) if self.need else 0
        else:
            self.chunks, self.size, self.need = [data], len(data), 0

    def keep(self, rest: bytes, need: int) -> None:
        """Remember unparsed bytes; ``need``: how many the message they begin needs."""
        if rest:
            self.chunks, self.size, self.need = [rest], len(rest), need
        else:
            self.chunks, self.size, self.need = [], 0, 0


class MessageReader:
    """Accumulates bytes and hands back complete ``(tag, body)`` messages.

    Used where every message is inspected (the startup phase, tests, fuzzing). The relay's hot
    path scans buffers in place instead (see ``relay``), with the same length checks.
    """

    def __init__(self, max_size: int) -> None:
        self._buf = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while n - pos >= 5:
            tag = buf[pos]
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big", signed=True)
            check_length(tag, length, self._max)
            end = pos + 1 + length
            if end > n:
                break
            out.append((tag, bytes(buf[pos + 5 : end])))
            pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def parse_startup_header(header: bytes) -> int:
    """Length of the untagged startup packet whose first 4 bytes are ``header``."""
    length: int = _I32.unpack(header)[0]
    if length < 8 or length > MAX_STARTUP_PACKET:
        raise ProtocolViolation(f"invalid startup packet length {length}")
    return length


def parse_startup_params(payload: bytes) -> dict[str, str]:
    """Key/value pairs of a StartupMessage (after the protocol code)."""
    if not payload.endswith(b"\x00"):
        raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
    parts = payload[:-1].split(b"\x00")
    # Each pair is "key\0value\0", so a non-empty list ends with an empty string.
    if parts[-1] != b"":
        raise ProtocolViolation("invalid startup packet layout: unterminated string")
    parts = parts[:-1]
    if len(parts) % 2:
        raise ProtocolViolation("invalid startup packet layout: odd number of strings")
    params: dict[str, str] = {}
    for i in range(0, len(parts), 2):
        try:
            key, value = parts[i].decode(), parts[i + 1].decode()
        except UnicodeDecodeError as exc:
            raise ProtocolViolation("startup packet is not valid UTF-8") from exc
        if not key:
            raise ProtocolViolation("invalid startup packet layout: empty parameter name")
        params[key] = value
    return params


# --- builders -------------------------------------------------------------------------------


def message(tag: bytes, body: bytes = b"") -> bytes:
    return tag + _I32.pack(len(body) + 4) + body


def cstr(value: str) -> bytes:
    return value.encode() + b"\x00"


def startup_message(params: dict[str, str]) -> bytes:
    body = _I32.pack(PROTOCOL_3_0) + b"".join(cstr(k) + cstr(v) for k, v in params.items())
    body += b"\x00"
    return _I32.pack(len(body) + 4) + body


def untagged(code: int, payload: bytes = b"") -> bytes:
    return _I32.pack(len(payload) + 8) + _I32.pack(code) + payload


def error_response(
    message_text: str,
    sqlstate: str,
    severity: str = "ERROR",
    *,
    hint: str | None = None,
    detail: str | None = None,
) -> bytes:
    """An ErrorResponse ('E'); severity FATAL when the gateway ends the session after it."""
    fields: list[tuple[bytes, str]] = [
        (b"S", severity),
        (b"V", severity),
        (b"C", sqlstate),
        (b"M", message_text),
    ]
    if detail:
        fields.append((b"D", detail))
    if hint:
        fields.append((b"H", hint))
    body = b"".join(code + cstr(value) for code, value in fields) + b"\x00"
    return message(b"E", body)


def notice_response(message_text: str, sqlstate: str = "01000", hint: str | None = None) -> bytes:
    fields = [(b"S", "WARNING"), (b"V", "WARNING"), (b"C", sqlstate), (b"M", message_text)]
    if hint:
        fields.append((b"H", hint))
    return message(b"N", b"".join(code + cstr(value) for code, value in fields) + b"\x00")


def ready_for_query(status: bytes = b"I") -> bytes:
    return message(b"Z", status)


def auth_request(code: int, payload: bytes = b"") -> bytes:
    return message(b"R", _I32.pack(code) + payload)


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(b"K", _I32.pack(pid) + _I32.pack(secret))


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def negotiate_protocol_version(newest_minor: int, unsupported: Iterable[str]) -> bytes:
    names = list(unsupported)
    body = _I32.pack(newest_minor) + _I32.pack(len(names)) + b"".join(cstr(n) for n in names)
    return message(b"v", body)


def password_message(payload: bytes) -> bytes:
    return message(b"p", payload)


TERMINATE = message(b"X")
