"""Issue 14, outside attack round 12 through the PostgreSQL gateway: values written in forms the
detectors did not read came back in clear — a card with apostrophes, two or more blanks or
characters that draw nothing (U+200B, U+200C, U+200D, U+2060, U+FEFF, U+00AD) between its
groups, or split across the elements of an array, a range, a point or a path; an IBAN in
lower case or with dashes; an AWS access key id with separators; a card in an ``oidvector``
in binary format. Text and binary results are masked alike; ordinary lists pass."""

from __future__ import annotations

import struct

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
IBAN = "DE89370400440532013000"
AWS = "AKIAIOSFODNN7EXAMPLE"

VALUES = [
    "$$4'012'888'888'881'881$$::text",
    "$$4012  8888  8888  1881$$::text",
    "E'4012\\u200b8888\\u200c8888\\u200d1881'::text",
    "E'4012\\u20608888\\ufeff8888\\u00ad1881'::text",
    "'{{4012,8888},{8888,1881}}'::int4[]",
    "'{40128888,88881881}'::int8[]",
    "'[40128888,88881881)'::int8range",
    "'(40128888,88881881)'::point",
    "'[(4012,8888),(8888,1881)]'::path",
    "'((4012,8888),(8888,1881))'::polygon",
    "'4012 8888 8888 1881'::oidvector",
    "'de89-3704-0044-0532-0130-00'::text",
    "'de89370400440532013000'::text",
    "'AKIA IOSF ODNN 7EXA MPLE'::text",
    "'AKIA-IOSFODNN7EXAMPLE'::text",
]
CLEAN = ["'{1,2,3}'::int4[]", "'[1,10)'::int8range", "'(1.5,2)'::point",
         "'{20240102,123456}'::int8[]", "'1 2 3'::oidvector", "'release 2024  05  17'::text"]


def _plain(value: object) -> str:
    """A value's letters and digits; a binary ``oidvector`` (bytes: psycopg has no loader
    for it) read as the array it is sent as."""
    if isinstance(value, bytes | bytearray):
        ndim, _, _ = struct.unpack_from("!iiI", value)
        count = struct.unpack_from("!i", value, 12)[0] if ndim else 0
        pos, items = 12 + 8 * ndim, []
        for _ in range(count):
            size = struct.unpack_from("!i", value, pos)[0]
            items.append(str(struct.unpack_from("!I", value, pos + 4)[0]))
            pos += 4 + size
        return "".join(items)
    return "".join(ch for ch in str(value).upper() if ch.isalnum())


@pytest.mark.parametrize("sql", VALUES)
def test_a_card_iban_or_key_in_an_unusual_form_is_masked_in_text_and_binary(
        gateway: Gateway, sql: str) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            value = cur.execute(f"SELECT {sql}").fetchone()
            assert value is not None
            plain = _plain(value[0])
            assert CARD not in plain and IBAN not in plain and AWS not in plain, (
                sql, binary, value)
            # and ordinary lists, ranges, points and spaced numbers pass as they are
            clean = cur.execute("SELECT " + ", ".join(CLEAN)).fetchone()
            assert clean is not None and all(v is not None for v in clean), clean
            assert clean[0] == [1, 2, 3] and clean[3] == [20240102, 123456], clean
            assert clean[5] == "release 2024  05  17"
