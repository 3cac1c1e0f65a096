"""Detected values inside base64, hex and URL encodings (``engine.masking.encoded``)."""

from __future__ import annotations

import base64
import re
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking import ValueMasker
from engine.masking.encoded import _ESCAPE, _WORD, decode

SECRETS = ["alice@example.com", "4111 1111 1111 1111", "my card 4111111111111111 ok",
           "DE89 3704 0044 0532 0130 00", "password=hunter2hunter2",
           "AKIAIOSFODNN7EXAMPLE", "x.y+tag@mail.example.co.uk"]


def forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "hex": raw.hex(), "HEX": raw.hex().upper(),
        "url": urllib.parse.quote(secret), "url+": urllib.parse.quote_plus(secret),
        "base64 of base64": base64.b64encode(base64.b64encode(raw)).decode(),
        "hex of base64": base64.b64encode(raw).hex(),
        # a bytea's text form and a hex dump's prefix (re-attack on issue 14: '\\x3431…')
        "bytea": "\\x" + raw.hex(), "0x": "0x" + raw.hex().upper(),
    }


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("form", list(forms("x")))
@pytest.mark.parametrize("around", ["{}", "value: {} end", "x={}&y=2", '{{"e": "{}"}}'])
def test_an_encoded_value_is_masked_whole(secret: str, form: str, around: str) -> None:
    encoded = forms(secret)[form]
    if form == "base64url" and "-" in encoded:
        pytest.skip("base64url holding a dash is not read (documented)")
    if form == "url+" and "%" not in encoded:
        pytest.skip("spaces written as + with no %XX escape are not read (documented)")
    text = around.format(encoded)
    masked, fired = ValueMasker().mask(text)
    assert encoded not in masked and fired, (text, masked)


def test_a_wrapped_base64_block_is_read_joined() -> None:
    body = ("lorem ipsum dolor sit amet " * 3 + "alice@example.com" + " and more" * 5).encode()
    block = base64.encodebytes(body).decode()
    assert block.count("\n") > 2
    masked, fired = ValueMasker().mask("before\n" + block + "after\n")
    assert fired == ["email"] and masked.startswith("before\n") and masked.endswith("after\n")


@pytest.mark.parametrize("text", [
    "AbstractSingletonProxyFactoryBean", "deadbeefdeadbeefcafebabe0123", "2024-05-02T09:14:03",
    "/usr/local/lib/python3.11/site-packages", base64.b64encode(b"nothing to see here").decode(),
    "111111111111111111111111", "100% done, 50%20 off", "e3b0c44298fc1c149afbf4c8996fb924",
    "550e8400-e29b-41d4-a716-446655440000",
])
def test_what_encodes_nothing_passes(text: str) -> None:
    assert ValueMasker().mask(text) == (text, [])


def test_encodings_can_be_turned_off() -> None:
    text = base64.b64encode(b"alice@example.com").decode()
    assert ValueMasker(encodings=False).mask(text) == (text, [])


def test_the_screens_let_candidates_through() -> None:
    masker = ValueMasker()
    for text in (base64.b64encode(b"alice@example.com"), b"alice%40example.com"):
        assert masker.screen(text) and masker.screen(b"\x00\x00\x00\x20" + text * 20)
        assert masker.screen_pattern is not None and masker.screen_pattern.search(text)
    assert not masker.screen(b"short words")


def test_decode() -> None:
    assert decode("616c696365") == "alice"
    assert decode("YWxpY2U=") == "alice"
    assert decode("YWxpY2U") is None  # unpadded, not a multiple of 4: a word
    assert decode("1234567890123") is None  # odd hex, bad base64


@given(st.text(max_size=80))
def test_any_text_base64_encoded_is_masked_when_the_text_is(text: str) -> None:
    masker = ValueMasker()
    _, fired = masker.mask(text)
    encoded = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
    if fired and len(encoded) >= 12:
        masked, _ = masker.mask(encoded)
        assert masked != encoded


@pytest.mark.parametrize("strategy", ["redact", "hash", "partial"])
def test_length_keeping_replacements(strategy: str) -> None:
    from engine.masking.strategies import Strategy

    masker = ValueMasker(strategies={"email": Strategy(strategy, keep_last=4)},
                         key=b"k" * 32, keep_length=True)
    for text in ("mail alice@example.com now", "é ü bob@example.com ü",
                 base64.b64encode(b"alice@example.com").decode()):
        masked, fired = masker.mask(text)
        assert fired and len(masked.encode()) == len(text.encode()), masked


# --- words holding %XX escapes, found in one pass --------------------------------------------

_REFERENCE_URL = re.compile(r"[^\s\"'<>`]*%[0-9A-Fa-f]{2}[^\s\"'<>`]*", re.ASCII)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="%4aG1 \"'<>`\n\t@.zé", max_size=60))
def test_the_words_with_escapes_are_those_the_plain_pattern_finds(text: str) -> None:
    """The one-pass search (it replaced a pattern that is quadratic in a long word: a binary
    file's output stalled the event loop for seconds) finds the same words."""
    found = [(m.start(), m.end()) for m in _WORD.finditer(text)
             if _ESCAPE.search(m.group()) is not None]
    assert found == [(m.start(), m.end()) for m in _REFERENCE_URL.finditer(text)]
