"""Binary values read as their text form (outside attack round 14, finding 3): ``xid8`` and
``pg_snapshot``/``txid_snapshot`` passed their raw bytes (a card's 16 digits in a uint64), and
an array of records (``{"(4012,8888)","(8888,1881)"}``) passed in clear in text and binary."""

from __future__ import annotations

import struct

import pytest

from engine.masking import binary
from engine.masking.masker import ValueMasker

VALUES = ValueMasker().for_values()
CARD = 4012888888881881
PAIR_OID = 16500  # a composite type of the database's own: the gateway does not know it
PAIR_ARRAY_OID = 16499


def _array(elem: int, dims: list[int], items: list[bytes | None]) -> bytes:
    head = struct.pack("!iiI", len(dims), int(any(i is None for i in items)), elem)
    head += b"".join(struct.pack("!ii", d, 1) for d in dims)
    return head + b"".join(struct.pack("!i", -1) if i is None else
                           struct.pack("!i", len(i)) + i for i in items)


def _record(*fields: tuple[int, bytes | None]) -> bytes:
    return struct.pack("!i", len(fields)) + b"".join(
        struct.pack("!Ii", oid, -1) if raw is None else struct.pack("!Ii", oid, len(raw)) + raw
        for oid, raw in fields)


def _snapshot(*numbers: int) -> bytes:
    return struct.pack(f"!i{len(numbers)}Q", len(numbers) - 2, *numbers)


def _int4(v: int) -> bytes:
    return struct.pack("!i", v)


PAIRS = [_record((23, _int4(4012)), (23, _int4(8888))),
         _record((23, _int4(8888)), (23, _int4(1881)))]

HOLDING = [
    (5069, struct.pack("!Q", CARD)),  # xid8
    (5038, _snapshot(CARD, CARD)),  # pg_snapshot 4012888888881881:4012888888881881:
    (2970, _snapshot(1, CARD)),  # txid_snapshot
    (5038, _snapshot(5, 9, CARD)),  # a transaction in progress
    (271, _array(5069, [1], [struct.pack("!Q", CARD)])),  # xid8[]
    (5039, _array(5038, [1], [_snapshot(CARD, CARD)])),  # pg_snapshot[]
    (2287, _array(2249, [2], PAIRS)),  # record[]
    (PAIR_ARRAY_OID, _array(PAIR_OID, [2], PAIRS)),  # pair[]: an opaque type
    (PAIR_ARRAY_OID, _array(PAIR_OID, [2, 1], PAIRS)),
    (PAIR_OID, _record((23, _int4(4012)), (PAIR_OID, _record(
        (25, b"8888 8888"), (23, _int4(1881)))))),  # a record inside a record
]
CLEAN = [
    (5069, struct.pack("!Q", 734)),
    (5038, _snapshot(734, 740, 736)),
    (2287, _array(2249, [2], [_record((23, _int4(1)), (23, _int4(2))),
                              _record((23, _int4(3)), (25, b"a b"))])),
    (PAIR_ARRAY_OID, _array(PAIR_OID, [1], [_record((23, _int4(7)), (23, None))])),
    (PAIR_OID, b"not a record at all"),
]


@pytest.mark.parametrize(("type_oid", "raw"), HOLDING)
def test_binary_values_holding_a_card_in_their_text_form_are_null(type_oid: int,
                                                                   raw: bytes) -> None:
    # NULL, or (an array) rebuilt with the elements that hold it NULL
    fired: list[str] = []
    if binary.known(type_oid):
        new = binary.mask_value(type_oid, raw, VALUES.mask, fired)
        assert new is None or (type_oid in binary.ARRAY_OF
                               and struct.pack("!Q", CARD) not in new), new
    else:
        assert binary.mask_opaque(raw, VALUES.mask, fired) is None
    assert "payment_card" in fired


@pytest.mark.parametrize(("type_oid", "raw"), CLEAN)
def test_binary_values_without_a_finding_pass_unchanged(type_oid: int, raw: bytes) -> None:
    if binary.known(type_oid):
        assert binary.mask_value(type_oid, raw, VALUES.mask, []) == raw
    else:
        assert binary.mask_opaque(raw, VALUES.mask, []) == raw


def test_text_forms_are_the_ones_postgresql_writes() -> None:
    assert binary.text_of(5069, struct.pack("!Q", CARD)) == str(CARD)
    assert binary.text_of(5038, _snapshot(10, 20, 12, 15)) == "10:20:12,15"
    assert binary.text_of(5038, _snapshot(10, 20)) == "10:20:"
    with pytest.raises(binary.Undecodable):
        binary.text_of(5038, b"\x00\x00\x00\x05" + b"\x00" * 16)
    assert binary._shown(2287, _array(2249, [2], PAIRS)) == '{"(4012,8888)","(8888,1881)"}'
    assert binary._shown(PAIR_OID, _record((25, b'a "b"'), (23, None))) == '("a ""b""",)'


@pytest.mark.parametrize("text", [
    '{"(4012,8888)","(8888,1881)"}', '{{"(4012,8888)"},{"(8888,1881)"}}',
    '("(4012,8888)","(8888,1881)")', '{"(4012,8888,8888)","(1881,x)"}'.replace(",x", ""),
])
def test_an_array_of_records_in_text_is_read_as_the_list_its_digits_form(text: str) -> None:
    masked, fired = VALUES.mask(text)
    assert fired == ["payment_card"], masked
    assert "8888" not in masked
