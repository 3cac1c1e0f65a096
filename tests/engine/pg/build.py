"""Protocol messages built by hand for conversation tests (frontend and backend side).

Everything goes through ``codec.message`` so that the framing under test is the gateway's own,
while the bodies are laid out here from the protocol documentation, independently of
``engine.pg.messages``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from engine.pg.codec import message

# Text and names are given as str (sent as UTF-8) or as bytes (sent as they are: another client
# encoding, or bytes that are not valid in any).
Text = str | bytes


def cstr(value: Text) -> bytes:
    return (value if isinstance(value, bytes) else value.encode()) + b"\x00"


# --- frontend --------------------------------------------------------------------------------


def query(sql: Text) -> bytes:
    return message(b"Q", cstr(sql))


def parse(sql: Text, name: Text = "", types: tuple[int, ...] = ()) -> bytes:
    body = cstr(name) + cstr(sql) + struct.pack("!h", len(types))
    body += b"".join(struct.pack("!i", t) for t in types)
    return message(b"P", body)


def bind_body(
    params: Sequence[bytes | None] = (),
    *,
    portal: Text = "",
    statement: Text = "",
    formats: tuple[int, ...] = (),
    results: tuple[int, ...] = (),
) -> bytes:
    body = cstr(portal) + cstr(statement)
    body += struct.pack("!h", len(formats)) + b"".join(struct.pack("!h", f) for f in formats)
    body += struct.pack("!h", len(params))
    for value in params:
        if value is None:
            body += struct.pack("!i", -1)
        else:
            body += struct.pack("!i", len(value)) + value
    body += struct.pack("!h", len(results)) + b"".join(struct.pack("!h", f) for f in results)
    return body


def bind(
    params: Sequence[bytes | None] = (),
    *,
    portal: Text = "",
    statement: Text = "",
    formats: tuple[int, ...] = (),
) -> bytes:
    return message(
        b"B", bind_body(params, portal=portal, statement=statement, formats=formats)
    )


def describe(kind: str = "P", name: Text = "") -> bytes:
    return message(b"D", kind.encode() + cstr(name))


def execute(portal: Text = "", max_rows: int = 0) -> bytes:
    return message(b"E", cstr(portal) + struct.pack("!i", max_rows))


def close(kind: str, name: Text = "") -> bytes:
    return message(b"C", kind.encode() + cstr(name))


SYNC = message(b"S")
FLUSH = message(b"H")
TERMINATE = message(b"X")
COPY_DONE = message(b"c")


def copy_data(data: bytes) -> bytes:
    return message(b"d", data)


def pbes(sql: Text, params: Sequence[bytes | None] = ()) -> bytes:
    """One statement through the extended protocol, as drivers send it."""
    return parse(sql) + bind(params) + execute() + SYNC


# --- backend ---------------------------------------------------------------------------------

PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
EMPTY_QUERY = message(b"I")
PORTAL_SUSPENDED = message(b"s")


def ready(status: bytes = b"I") -> bytes:
    return message(b"Z", status)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def row_description(*names: str) -> bytes:
    body = struct.pack("!h", len(names))
    for name in names:
        # table oid, column, type oid (text), size, modifier, format
        body += cstr(name) + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0)
    return message(b"T", body)


def parameter_description(*oids: int) -> bytes:
    body = struct.pack("!h", len(oids)) + b"".join(struct.pack("!i", o) for o in oids)
    return message(b"t", body)


def data_row(*values: bytes | None) -> bytes:
    body = struct.pack("!h", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    return message(b"D", body)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def error(sqlstate: str, text: str, severity: str = "ERROR") -> bytes:
    fields = [("S", severity), ("V", severity), ("C", sqlstate), ("M", text)]
    return message(b"E", b"".join(code.encode() + cstr(v) for code, v in fields) + b"\x00")


def notice(text: str) -> bytes:
    return message(b"N", b"SNOTICE\x00C00000\x00M" + cstr(text) + b"\x00")


def copy_in_response(columns: int = 1) -> bytes:
    return message(b"G", b"\x00" + struct.pack("!h", columns) + b"\x00\x00" * columns)
