"""Strategies: what a detected value becomes."""

from __future__ import annotations

import re

import pytest

from engine.masking.strategies import KINDS, Strategy

KEY = b"a key that only the gateway knows"


@pytest.mark.parametrize(("strategy", "value", "masked"), [
    (Strategy("redact"), "alice@example.com", "****"),
    (Strategy("redact", mask="[hidden]"), "alice@example.com", "[hidden]"),
    (Strategy("redact", mask=""), "x", ""),
    (Strategy("partial", keep_last=4), "4242 4242 4242 4242", "**** **** **** 4242"),
    (Strategy("partial", keep_last=4), "4242-4242-4242-4242", "****-****-****-4242"),
    (Strategy("partial", keep_last=4), "4242424242424242", "************4242"),
    (Strategy("partial", keep_first=6, keep_last=4), "4242 4242 4242 4242",
     "4242 42** **** 4242"),
    (Strategy("partial", keep_first=1), "alice@example.com", "a****@*******.***"),
    (Strategy("partial", keep_last=4), "+1 (555) 123-4567", "+* (***) ***-4567"),
    (Strategy("partial", keep_last=4), "abc", "***"),  # too short to show part of it
    (Strategy("partial", keep_first=2, keep_last=2), "abcd", "****"),
    (Strategy("partial"), "secret", "******"),
])
def test_masked_forms(strategy: Strategy, value: str, masked: str) -> None:
    assert strategy.apply(value, KEY) == masked


def test_hash_is_keyed_stable_and_short() -> None:
    hashed = Strategy("hash")
    one = hashed.apply("alice@example.com", KEY)
    assert one is not None and re.fullmatch(r"h:[0-9a-f]{12}", one)
    assert hashed.apply("alice@example.com", KEY) == one  # every row, every session
    assert hashed.apply("bob@example.com", KEY) != one
    assert hashed.apply("alice@example.com", b"another key") != one


def test_hash_survives_bytes_that_are_not_utf8() -> None:
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert Strategy("hash").apply(value, KEY) != Strategy("hash").apply("café", KEY)


def test_hash_needs_a_key() -> None:
    with pytest.raises(ValueError, match="secret key"):
        Strategy("hash").apply("x", b"")


def test_null_is_none() -> None:
    assert Strategy("null").apply("alice@example.com", KEY) is None


def test_invalid_strategies_are_refused_in_one_sentence() -> None:
    with pytest.raises(ValueError, match="unknown; use one of redact, partial, hash, null"):
        Strategy("scramble")
    with pytest.raises(ValueError, match="cannot be negative"):
        Strategy("partial", keep_last=-1)
    assert KINDS == ("redact", "partial", "hash", "null")
