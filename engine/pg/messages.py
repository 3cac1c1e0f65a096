"""Decoders for the message bodies whose contents the gateway reads.

Every decoder raises ``ProtocolViolation`` on a body that does not have the documented layout,
so that a malformed message ends its session with a clear error instead of a traceback.

SQL text and the names of prepared statements and portals come back as bytes: the relay decodes
text with the session's encoding, and never decodes a name (``engine.pg.encoding``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.masking import binary
from engine.masking.lineage import FIRST_USER_OID
from engine.pg.codec import ProtocolViolation

PARAM_PREVIEW_CHARS = 64
PARAM_PREVIEW_COUNT = 16
SHOWN_CHARS = 8192  # of each parameter, shown to an approver (``bind(full=True)``)
_JSONB = 3802
_XML = 142
# Binary types whose text the gateway writes exactly as the server reads them: integers,
# floats, numeric (every digit, cut at its scale), uuid.
_EXACT = frozenset({20, 21, 23, 26, 700, 701, 1700, 2950})
# Binary parameters' types by OID, as the record names them.
_TYPE_NAMES = {16: "bool", 17: "bytea", 20: "int8", 21: "int2", 23: "int4", 25: "text",
               26: "oid", 700: "float4", 701: "float8", 1043: "varchar", 1042: "bpchar",
               1082: "date", 1083: "time", 1114: "timestamp", 1184: "timestamptz",
               1700: "numeric", 2950: "uuid", 114: "json", 3802: "jsonb", 19: "name"}


def _cstring(body: bytes, pos: int, what: str) -> tuple[bytes, int]:
    end = body.find(b"\x00", pos)
    if end < 0:
        raise ProtocolViolation(f"malformed {what} message: unterminated string")
    return body[pos:end], end + 1


def _int(body: bytes, pos: int, size: int, what: str) -> tuple[int, int]:
    end = pos + size
    if end > len(body):
        raise ProtocolViolation(f"malformed {what} message: truncated")
    return int.from_bytes(body[pos:end], "big", signed=True), end


def query_text(body: bytes) -> bytes:
    text, end = _cstring(body, 0, "Query")
    if end != len(body):
        raise ProtocolViolation("malformed Query message: data after the query string")
    return text


@dataclass(slots=True)
class Parse:
    name: bytes
    query: bytes
    types: tuple[int, ...] = ()  # the parameters' type OIDs the client gave (0: unspecified)

    @property
    def user_typed(self) -> bool:
        """Whether a parameter is given a type that is not PostgreSQL's own: its input
        conversion at the Bind may run code of the target's (a domain's CHECKs)."""
        return any(oid >= FIRST_USER_OID for oid in self.types)


def parse(body: bytes) -> Parse:
    name, pos = _cstring(body, 0, "Parse")
    query, pos = _cstring(body, pos, "Parse")
    count, pos = _int(body, pos, 2, "Parse")
    if count < 0 or pos + 4 * count != len(body):
        raise ProtocolViolation("malformed Parse message: bad parameter type list")
    types = tuple(int.from_bytes(body[p:p + 4], "big") for p in range(pos, len(body), 4))
    return Parse(name, query, types)


@dataclass(slots=True)
class Bind:
    portal: bytes
    statement: bytes
    params: str | None
    cut: bool = False  # a parameter is longer than what is shown of it


def bind(body: bytes, codec: str = "utf-8", types: tuple[int, ...] = (), *,
         full: bool = False) -> Bind:
    """Bind, with its parameters shown for the record: a short preview (never the full values;
    ``full``: every parameter whole, for an approver, up to ``SHOWN_CHARS``). Text parameters
    are shown decoded with ``codec``, the session's client encoding; binary ones by the type
    ``types`` (the statement's Parse) gives them, or by what their bytes read as."""
    portal, pos = _cstring(body, 0, "Bind")
    statement, pos = _cstring(body, pos, "Bind")
    nfmt, pos = _int(body, pos, 2, "Bind")
    if nfmt < 0:
        raise ProtocolViolation("malformed Bind message: negative format count")
    formats = []
    for _ in range(nfmt):
        fmt, pos = _int(body, pos, 2, "Bind")
        formats.append(fmt)
    nparams, pos = _int(body, pos, 2, "Bind")
    if nparams < 0 or (nfmt > 1 and nfmt != nparams):
        raise ProtocolViolation("malformed Bind message: format and parameter counts differ")
    count, chars = (nparams, SHOWN_CHARS) if full else (PARAM_PREVIEW_COUNT, PARAM_PREVIEW_CHARS)
    previews: list[str] = []
    cut = nparams > count
    for i in range(nparams):
        size, pos = _int(body, pos, 4, "Bind")
        if size < -1:
            raise ProtocolViolation("malformed Bind message: negative parameter length")
        if size == -1:
            value = "NULL"
        else:
            end = pos + size
            if end > len(body):
                raise ProtocolViolation("malformed Bind message: truncated parameter")
            cut = cut or size > chars
            if i < count:
                fmt = formats[0] if nfmt == 1 else (formats[i] if nfmt else 0)
                value, exact = _preview(body[pos : min(end, pos + chars * 4)], size, fmt,
                                        codec, types[i] if i < len(types) else 0, chars,
                                        full=full)
                cut = cut or (full and not exact)
            pos = end
        if i < count:
            previews.append(value)
    nres, pos = _int(body, pos, 2, "Bind")
    if nres < 0 or pos + 2 * nres != len(body):
        raise ProtocolViolation("malformed Bind message: bad result format list")
    if nparams > count:
        previews.append(f"… {nparams - count} more")
    return Bind(portal, statement, ", ".join(previews) if nparams else None, cut)


def _preview(raw: bytes, size: int, fmt: int, codec: str, type_oid: int = 0,
             chars: int = PARAM_PREVIEW_CHARS, *, full: bool = False) -> tuple[str, bool]:
    """One parameter as shown, and whether that is exactly what the server reads (``full``:
    an approver's view, which must be; else the record's preview)."""
    whole = size == len(raw)
    hex_bytes = chars if full else chars // 2

    def hexed(label: str) -> str:
        return f"\\x{raw[:hex_bytes].hex()}{'…' if size > hex_bytes else ''}{label}"

    if fmt == 0:
        text = raw.decode(codec, "replace")
        if len(text) > chars or not whole:
            text = text[:chars] + "…"
        return repr(text), True
    if type_oid:  # its type is the statement's: read as the server will
        named = _TYPE_NAMES.get(type_oid, f"type {type_oid}")
        typed = _typed_text(type_oid, raw, codec) if whole else None
        if typed is not None:
            shown = repr(typed[:chars]) + ("…" if len(typed) > chars else "")
            # (a numeric's text can be twice its bytes: cut, it is not what runs)
            return f"{shown} (binary {named})", len(typed) <= chars
        return hexed(f" (binary {named})"), True  # its bytes exactly, if not readably
    # A binary parameter of a type the Parse left to the server: its bytes, with what they
    # read as (text in the session's encoding when printable, an integer or a float of its
    # size) beside them; never one reading as the value (outside attack on issue 12: text
    # was recorded as an int8, an int4 as the text '0001', a float8 1.0 as an int8) and the
    # detectors read each (issue 14: a card sent as binary text or as an int8). Not exact:
    # an approver cannot be shown it (a held statement with one is refused).
    readings: list[str] = []
    if whole:
        try:
            decoded: str | None = raw.decode(codec)
        except (UnicodeDecodeError, LookupError):
            decoded = None
        if decoded and all(ch.isprintable() or ch in "\t\n\r" for ch in decoded):
            readings.append(repr(decoded[:chars]) + ("…" if len(decoded) > chars else ""))
        if size in (2, 4, 8):
            readings.append(f"int{size} {int.from_bytes(raw, 'big', signed=True)}")
        if size in (4, 8):
            readings.append(f"float{size} {struct.unpack('!f' if size == 4 else '!d', raw)[0]!r}")
    if readings:  # each gives the bytes back whole: no hex (a card's int8 in hex is one no
        # detector reads)
        return f"binary ({size} bytes; type not said; read as {' or '.join(readings)})", False
    return hexed(" (binary; type not said)"), False


def _typed_text(type_oid: int, raw: bytes, codec: str) -> str | None:
    """A binary value of a known type as the server reads it, exactly; None when the gateway
    does not write that type's text exactly (a range's bounds, a date: shown as bytes)."""
    try:
        if type_oid == _XML:  # read in the encoding its declaration names: shown as bytes
            return None
        if type_oid in binary.TEXT_LIKE and type_oid != _JSONB:
            return raw.decode(codec)
        if type_oid == _JSONB:  # a version byte, then text in the client's encoding
            return raw[1:].decode(codec) if raw[:1] == b"\x01" else None
        if type_oid in _EXACT:
            return binary.text_of(type_oid, raw)
    except (binary.Undecodable, UnicodeDecodeError, LookupError, ValueError, OverflowError):
        return None
    return None


def execute_portal(body: bytes) -> bytes:
    portal, pos = _cstring(body, 0, "Execute")
    _, pos = _int(body, pos, 4, "Execute")
    if pos != len(body):
        raise ProtocolViolation("malformed Execute message: trailing data")
    return portal


def describe_or_close(body: bytes, what: str) -> tuple[str, bytes]:
    if not body or body[0] not in b"SP":
        raise ProtocolViolation(f"malformed {what} message: expected 'S' or 'P'")
    name, pos = _cstring(body, 1, what)
    if pos != len(body):
        raise ProtocolViolation(f"malformed {what} message: trailing data")
    return chr(body[0]), name


def parameter_types(body: bytes) -> tuple[int, ...] | None:
    """The type OIDs of a ParameterDescription, or None when it is malformed."""
    if len(body) < 2:
        return None
    count = int.from_bytes(body[:2], "big", signed=True)
    if count < 0 or len(body) != 2 + 4 * count:
        return None
    return struct.unpack(f"!{count}I", body[2:])


def command_rows(body: bytes) -> tuple[str, int | None]:
    """The command tag of a CommandComplete and the row count it carries, if any."""
    tag = body.rstrip(b"\x00").decode("ascii", "replace")
    last = tag.rpartition(" ")[2]
    return tag, int(last) if last.isdigit() else None


def data_row(body: bytes) -> list[bytes | None]:
    """The values of a DataRow (None: NULL)."""
    count, pos = _int(body, 0, 2, "DataRow")
    values: list[bytes | None] = []
    for _ in range(count):
        size, pos = _int(body, pos, 4, "DataRow")
        if size < 0:
            values.append(None)
            continue
        if pos + size > len(body):
            raise ProtocolViolation("malformed DataRow message: truncated")
        values.append(body[pos:pos + size])
        pos += size
    if pos != len(body):
        raise ProtocolViolation("malformed DataRow message: trailing data")
    return values


def error_fields(body: bytes) -> dict[str, str]:
    """Fields of an ErrorResponse or NoticeResponse, keyed by their one-letter code."""
    fields: dict[str, str] = {}
    pos = 0
    n = len(body)
    while pos < n and body[pos] != 0:
        code = chr(body[pos])
        end = body.find(b"\x00", pos + 1)
        if end < 0:
            break
        fields[code] = body[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
    return fields
