"""Values behind JSON string escapes (outside attack on issue 14): found once decoded, masked
where they are written, and the JSON around them stays JSON."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking.escaped import MAX_ROUNDS, EscapedValues, has_escape, unescape
from engine.masking.masker import ValueMasker
from engine.masking.strategies import Strategy

FUZZ = settings(database=None, deadline=None, max_examples=200)

CARD = "4111111111111111"
EMAIL = "alice.smith@example.com"
VALUES = [CARD, "4111 1111 1111 1111", EMAIL, "123-45-6789", "DE89370400440532013000",
          "AKIAIOSFODNN7EXAMPLE", "+44 20 7946 0958", "(555) 123-4567"]
PARTIAL = ValueMasker(default=Strategy("partial", keep_first=2, keep_last=4))
REDACT = ValueMasker()


def escaped(value: str, which: str = "all", upper: bool = False) -> str:
    """``value`` with its characters written as ``\\uXXXX`` (every one, or every other)."""
    out = []
    for i, ch in enumerate(value):
        if which == "all" or i % 2:
            code = f"{ord(ch):04x}"
            out.append("\\u" + (code.upper() if upper else code))
        else:
            out.append(ch)
    return "".join(out)


def shown(masked: str) -> str:
    """What a client reads: the JSON parsed, or the text decoded as the masker would."""
    try:
        return json.dumps(json.loads(masked), ensure_ascii=False)
    except ValueError:
        return unescape(masked)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("form", [
    lambda v: escaped(v),
    lambda v: escaped(v, upper=True),
    lambda v: escaped(v, "mixed"),
    lambda v: "paid\\n" + v,  # the n of the escape was a letter right before the value
    lambda v: "\\t" + escaped(v, "mixed"),
], ids=["all", "upper", "mixed", "newline", "tab"])
@pytest.mark.parametrize("masker", [PARTIAL, REDACT], ids=["partial", "redact"])
def test_escaped_values_are_masked_and_json_stays_json(form: Callable[[str], str], value: str,
                                                       masker: ValueMasker) -> None:
    text = '{"note": "' + form(value) + '", "n": 1}'
    masked, fired = masker.mask(text)
    assert fired
    parsed = json.loads(masked)
    assert value not in parsed["note"] and parsed["n"] == 1, masked


@pytest.mark.parametrize(("text", "secret"), [
    ('{"e": "alice\\u0040example.com"}', EMAIL.replace(".smith", "")),
    ('{"e": "alice\\u0040example\\u002ecom"}', EMAIL.replace(".smith", "")),
    ('{"u": "https:\\/\\/shop.example\\/u\\/alice\\u0040example.com"}', "alice@example.com"),
    ('{"k": "YWxpY2VAZXhhbXBsZS5jb20\\/YWxpY2VAZXhhbXBsZS5jb20="}', "YWxpY2VAZXhhbXBs"),
    ('{"pass\\u0077ord": "hunter2"}', "hunter2"),
    ('{"log": "login password=\\"hunter2 x\\" ok"}', "hunter2"),
    ('{"inner": "{\\"card\\": \\"\\\\u0034111111111111111\\"}"}', "111111111111111"),
    ("echo -e 'x\\n4111111111111111'", CARD),
    ("4111\\\\u0031" + "1" * 11, "\\u0031"),  # COPY's text doubles backslashes: two rounds
])
def test_escapes_of_other_characters_hide_nothing(text: str, secret: str) -> None:
    for masker in (PARTIAL, REDACT):
        masked, fired = masker.mask(text)
        assert fired and secret not in shown(masked), masked


def test_a_finding_masks_exactly_the_characters_it_was_read_from() -> None:
    text = 'x "\\u0034' + CARD[1:] + '" y'
    [finding] = list(EscapedValues(REDACT.find).find(text))
    assert text[finding.start:finding.end] == "\\u0034" + CARD[1:]
    assert REDACT.mask(text) == ('x "****" y', ["payment_card"])


def test_an_escaped_value_hashes_as_its_plain_form() -> None:
    masker = ValueMasker(default=Strategy("hash"), key=b"k")
    plain, _ = masker.mask(f'"{CARD}"')
    hidden, _ = masker.mask(f'"{escaped(CARD)}"')
    assert plain == hidden and plain.startswith('"h:')


def test_a_length_keeping_masker_stars_the_escapes() -> None:
    masker = ValueMasker(keep_length=True)
    text = f'{{"c": "{escaped(CARD, "mixed")}"}}'
    masked, fired = masker.mask(text)
    assert fired and len(masked) == len(text) and CARD not in unescape(masked)


@pytest.mark.parametrize("text", [
    "C:\\\\temp\\\\new", "printf('%d\\n', x)", '{"a": "caf\\u00e9 \\/ \\"q\\""}',
    '{"n": "\\u0031\\u0032\\u0033"}', "\\u12", "tab\\there",
])
def test_texts_with_escapes_and_no_value_are_unchanged(text: str) -> None:
    assert REDACT.mask(text) == (text, [])


def test_has_escape_and_unescape() -> None:
    assert not has_escape("a\\\\x") and not has_escape("\\x41") and has_escape("\\u0041")
    assert unescape('\\u0034\\/\\"\\\\\\n\\t') == '4/"\\\n\t'
    assert unescape("\\\\u0034") == "\\u0034"  # an escaped backslash, then text
    assert unescape("plain") == "plain"


@FUZZ
@given(st.sampled_from(VALUES), st.integers(0, 2**32), st.sampled_from(["", "x\\n", "\\t", " "]),
       st.sampled_from(["", " end", "\\n", ","]))
def test_any_escaping_of_a_value_is_masked(value: str, seed: int, before: str,
                                           after: str) -> None:
    rng = random.Random(seed)
    written = "".join(
        ("\\/" if ch == "/" and rng.random() < 0.5 else
         "\\u" + (f"{ord(ch):04x}" if rng.random() < 0.5 else f"{ord(ch):04X}"))
        if rng.random() < 0.6 else ch for ch in value)
    text = '{"v": "' + before + written + after + '"}'
    masked, fired = PARTIAL.mask(text)
    assert fired and value not in json.loads(masked)["v"], (text, masked)


def test_rounds_of_decoding_are_bounded() -> None:
    """``\\u005cu005c…`` makes one new escape a round: unbounded, a round per escape ran out
    of stack (RecursionError) on a few thousand. JSON in JSON up to MAX_ROUNDS deep is read."""
    crafted = "\\u005c" + "u005c" * 5000 + "x"
    assert REDACT.mask(crafted) == (crafted, [])
    for rounds in range(1, MAX_ROUNDS + 1):  # each JSON level doubles the backslashes
        text = '"' + "\\" * (1 << (rounds - 1)) + "u0034" + CARD[1:] + '"'
        assert REDACT.mask(text) == ('"****"', ["payment_card"]), rounds
