"""Values written in forms that hid them from the detectors (outside attack on issue 14), masked
in a result as the column's type allows: signed and decorated numbers, JSON string escapes.

The result masker runs with the built-in detectors and no mock: a number column whose value is
a card in any numeric form becomes NULL (a valid value of every type), a JSON column stays JSON.
"""

from __future__ import annotations

import json
import struct

import pytest

from engine.masking.masker import ValueMasker
from engine.masking.pg import ResultMasker
from engine.pg.codec import MessageReader, cstr, message

CARD = "4111111111111111"
TEXT, INT8, NUMERIC, FLOAT8, JSON_, JSONB = 25, 20, 1700, 701, 114, 3802


def _result(type_oid: int, fmt: int, values: list[bytes]) -> bytes:
    body = struct.pack("!h", 1) + cstr("c") + struct.pack("!IhIhih", 0, 0, type_oid, -1, -1, fmt)
    rows = b"".join(message(b"D", struct.pack("!hi", 1, len(v)) + v) for v in values)
    return message(b"T", body) + rows + message(b"C", b"SELECT 1\x00")


def _values(out: bytes) -> list[bytes | None]:
    found: list[bytes | None] = []
    for tag, body in MessageReader(1 << 20).feed(out):
        if tag == ord("D"):
            (size,) = struct.unpack_from("!i", body, 2)
            found.append(None if size < 0 else bytes(body[6:6 + size]))
    return found


NUMBERS = [f"-{CARD}", f"+{CARD}", f"000{CARD}", f"-{CARD}.0", f"{CARD}.00",
           "-4.111111111111111e+15", "4.111111111111111E15", f"{CARD}0e-1"]


@pytest.mark.parametrize("type_oid", [INT8, NUMERIC, FLOAT8])
def test_a_card_in_any_numeric_form_in_a_number_column_is_null(type_oid: int) -> None:
    out, counts = ResultMasker(ValueMasker()).rewrite(
        _result(type_oid, 0, [n.encode() for n in NUMBERS] + [b"-42", b"3.5"]))
    assert _values(out) == [None] * len(NUMBERS) + [b"-42", b"3.5"]
    assert counts[("payment_card", "c")] == len(NUMBERS)


@pytest.mark.parametrize("type_oid", [INT8, FLOAT8])
def test_a_negative_card_in_a_binary_number_is_null(type_oid: int) -> None:
    raw = (struct.pack("!q", -int(CARD)) if type_oid == INT8
           else struct.pack("!d", -float(CARD)))
    out, _ = ResultMasker(ValueMasker()).rewrite(_result(type_oid, 1, [raw]))
    assert _values(out) == [None]


@pytest.mark.parametrize("text", [
    f'{{"n": -{CARD}}}', f'{{"n": [1, -{CARD}.0]}}', '{"n": -4.111111111111111e15}',
    f'{{"n": 0.0, "m": -{CARD}}}',
])
@pytest.mark.parametrize("type_oid", [JSON_, JSONB])
def test_a_signed_card_in_a_json_number_is_masked_and_stays_json(text: str,
                                                                   type_oid: int) -> None:
    out, _ = ResultMasker(ValueMasker()).rewrite(_result(type_oid, 0, [text.encode()]))
    [value] = _values(out)
    assert value is not None
    shown = json.loads(value)  # still JSON (a string when the number could not stay one)
    assert "411111111" not in json.dumps(shown) and "4.11111111" not in json.dumps(shown)
