"""Values in forms the detectors did not read (outside attack on issue 14, round 12): a card
with apostrophes, two or more blanks or characters that draw nothing between its groups, or
split across the elements of a list PostgreSQL writes (arrays, ranges, points, paths); an IBAN
in lower case or with dashes; an AWS access key id with separators; binary vectors, ranges and
geometric values read as their text. Through the value masker (database values), the stream
masker (SSH output) and the screens in front of them (Python and native); and the ordinary
values each class must still let through."""

from __future__ import annotations

import struct

from engine.masking import binary, prefilter
from engine.masking.masker import ValueMasker
from engine.masking.stream import StreamMasker

STREAM = ValueMasker()
VALUES = STREAM.for_values()
PYTHON = ValueMasker(native=False).for_values()
CARD = "4012888888881881"
AMEX = "378282246310005"

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]

CARDS = [
    "4'012'888'888'881'881", "4\u2019012\u2019888\u2019888\u2019881\u2019881",
    "4\uff07012\uff07888\uff07888\uff07881\uff07881",
    "4012  8888  8888  1881", "4012\t\t8888\t\t8888\t\t1881", "4012 8888   8888 1881",
    "4012\t8888  8888\t1881", "3782  822463  10005",
    *(f"4012{z}8888{z}8888{z}1881" for z in ZERO_WIDTH),
    "4012\u200b\u200c8888\u00ad8888\ufeff1881", "4012 \u200b8888 8888 1881",
    "4\u200b0\u200b1\u200b2\u200b8888\u200b8888\u200b1881", "4012\u200b-8888-8888-1881",
]
_LISTS = len(CARDS)
CARDS += [
    "{{4012,8888},{8888,1881}}", "{40128888,88881881}", "{-40128888,-88881881}",
    "[40128888,88881881)", "{[40128888,88881881)}", "(40128888,88881881)",
    "[(4012,8888),(8888,1881)]", "((4012,8888),(8888,1881))", '{"40128888","88881881"}',
    '{{"4012","8888"},{"8888","1881"}}', "[40128888, 88881881]", "(4012888,888881881)",
]
IBANS = ["de89-3704-0044-0532-0130-00", "de89370400440532013000", "DE89-3704-0044-0532-0130-00",
         "de89 3704 0044 0532 0130 00", "De89.3704.0044.0532.0130.00",
         "DE89  3704  0044  0532  0130  00", "de89\u200b3704\u200b0044\u200b0532\u200b0130\u200b00"]
KEYS = ["AKIA IOSF ODNN 7EXA MPLE", "AKIA-IOSFODNN7EXAMPLE", "AKIAIOSF-ODNN-7EXA-MPLE",
        "AKIA_IOSF_ODNN_7EXA_MPLE", "AKIA  IOSF  ODNN  7EXA  MPLE", "AKIA/IOSF/ODNN/7EXA/MPLE",
        "AKIA\u200bIOSFODNN7EXAMPLE", "ASIA.IOSF.ODNN.7EXA.MPLE"]
HIDDEN = [*CARDS, *IBANS, *KEYS]
# (in a stream fed in pieces, a lower-case group that ends in a letter may be cut after: the
# database values only)
LOWER_GROUPS = "gb82 west 1234 5698 7654 32"

# What each class must still let through: a table's columns, lists of small numbers and ids,
# words in capitals after "ASIA", a password with a typographic apostrophe (masked whole).
CLEAN = [
    "Mem:   15890   8123   1234   5678   9012", "4242 4242          4242 4242",
    "{1,2,3}", "[1,10)", "(1.5,2)", "{20240102,123456}", "{0,0,0,0,0,0,0,0,0,0,0,0,0,0}",
    "ASIA PACIFIC TOTAL SALE", "ASIA PACIFIC TOTAL SALE 2024", "it\u2019s 12\u2019345",
    '{"2024-01-02 12:30:45+00","2024-01-03 12:30:45+00"}', "caf\u00e9 \u200b 12",
    "release 2024  05  17", "de89 is a word",
]


def _seen(text: str) -> str:
    """What a reader reads: letters and digits, in capitals, without what draws nothing."""
    return "".join(ch for ch in text.upper() if ch.isalnum() and ch.isascii())


def _clear(masked: str) -> bool:
    seen = _seen(masked)
    return any(value in seen for value in (CARD, AMEX, "DE89370400440532013000",
                                           "IOSFODNN7EXAMPLE", "GB82WEST12345698765432"))


def _masked_everywhere(text: str, *, stream: bool = True) -> None:
    """``text`` is masked as a database value (native and Python screens), a DataRow holding
    it (its 4-byte length in front) reaches the detectors through every screen, and SSH output
    holding it is masked however it is cut."""
    for masker in (VALUES, PYTHON):
        masked, names = masker.mask(f"x {text} y")
        assert names and not _clear(masked), (text, masked)
    row = b"D\x00\x00\x00\x30\x00\x01" + struct.pack("!i", len(text.encode())) + text.encode()
    assert PYTHON.screen(row), text
    assert PYTHON.screen(row * 8), text  # the long path
    assert VALUES.screen_pattern is not None and VALUES.screen_pattern.search(row), text
    if prefilter.available():
        assert VALUES.screen(row * 8), text
    if stream:
        raw = f"a {text} b\nnext\n".encode()
        masker_ = StreamMasker(STREAM)
        out = b"".join(masker_.feed(raw[i:i + 7]) for i in range(0, len(raw), 7))
        out += masker_.flush()
        assert not _clear(out.decode()), (text, out)
    for clean in CLEAN:  # and what each class must let through still passes
        assert VALUES.mask(clean) == (clean, []), clean
        assert STREAM.mask(clean) == (clean, []), clean


def test_cards_with_apostrophes_blanks_or_what_draws_nothing_between_groups() -> None:
    for text in CARDS[:_LISTS]:
        _masked_everywhere(text)


def test_cards_split_across_the_elements_of_a_list() -> None:
    for text in CARDS[_LISTS:]:
        _masked_everywhere(text)


def test_ibans_in_lower_case_or_with_dashes() -> None:
    for text in IBANS:
        _masked_everywhere(text)
    _masked_everywhere(LOWER_GROUPS, stream=False)


def test_aws_access_key_ids_with_separators() -> None:
    for text in KEYS:
        _masked_everywhere(text)


def test_a_password_with_a_typographic_apostrophe_is_masked_whole() -> None:
    assert VALUES.mask("password=ab\u2019cd") == ("password=****", ["secret_assignment"])
    assert VALUES.mask("4\u2019012\u2019888\u2019888\u2019881\u2019881")[1] == ["payment_card"]


def test_what_draws_nothing_is_masked_with_the_value_it_is_inside() -> None:
    masked, names = VALUES.mask("card 4012\u200b8888\u200b8888\u200b1881 ok")
    assert (masked, names) == ("card **** ok", ["payment_card"])


def _array(elem: int, dims: list[int], items: list[bytes]) -> bytes:
    head = struct.pack("!iiI", len(dims), 0, elem) + b"".join(
        struct.pack("!ii", d, 1) for d in dims)
    return head + b"".join(struct.pack("!i", len(i)) + i for i in items)


def _f8(*values: float) -> bytes:
    return b"".join(struct.pack("!d", v) for v in values)


def _i8(value: int) -> bytes:
    return struct.pack("!q", value)


BINARY_HIDDEN = [
    (1016, _array(20, [2], [_i8(40128888), _i8(88881881)])),  # int8[]
    (1007, _array(23, [2, 1], [struct.pack("!i", v) for v in (40128888, 88881881)])),
    (1022, _array(701, [2], [_f8(40128888), _f8(88881881)])),  # float8[]
    (30, _array(26, [4], [struct.pack("!I", v) for v in (4012, 8888, 8888, 1881)])),
    (30, _array(26, [2], [struct.pack("!I", v) for v in (40128888, 88881881)])),
    (22, _array(21, [4], [struct.pack("!h", v) for v in (4012, 8888, 8888, 1881)])),
    (3926, b"\x02" + struct.pack("!i", 8) + _i8(40128888) + struct.pack("!i", 8)
     + _i8(88881881)),  # int8range [40128888,88881881)
    (600, _f8(40128888, 88881881)),  # point
    (601, _f8(4012, 8888, 8888, 1881)),  # lseg
    (602, b"\x00" + struct.pack("!i", 2) + _f8(4012, 8888, 8888, 1881)),  # open path
    (604, struct.pack("!i", 2) + _f8(4012, 8888, 8888, 1881)),  # polygon
]


def test_binary_vectors_lists_ranges_and_geometric_values_are_masked_as_their_text() -> None:
    for type_oid, raw in BINARY_HIDDEN:
        fired: list[str] = []
        assert binary.mask_value(type_oid, raw, VALUES.mask, fired) is None, (type_oid, raw)
        assert "payment_card" in fired
    for type_oid, raw in [
            (1016, _array(20, [3], [_i8(1), _i8(2), _i8(3)])),
            (30, _array(26, [3], [struct.pack("!I", v) for v in (1, 2, 3)])),
            (600, _f8(1.5, 2)), (3926, b"\x02" + struct.pack("!i", 8) + _i8(1)
                                 + struct.pack("!i", 8) + _i8(10))]:
        assert binary.mask_value(type_oid, raw, VALUES.mask, []) is raw
