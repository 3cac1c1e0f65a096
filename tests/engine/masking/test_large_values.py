"""``ResultMasker`` with values of ``LARGE_VALUE`` characters or more (outside attack round 13):
masked in pieces as they are whole (finding 2: cards at the piece boundaries came back in
clear), and a value not masked within its budget refuses its result with an ErrorResponse,
never a value cut short, corrupted or with part of a card in clear (finding 3)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from engine.masking.masker import ValueMasker
from engine.masking.pg import LARGE_VALUE, ResultMasker
from engine.masking.pieces import PIECE
from engine.masking.strategies import Strategy
from engine.pg.messages import error_fields
from tests.engine.masking.test_pg import (
    column,
    copy_out_response,
    parse_row,
    row_description,
    split,
)
from tests.engine.pg import build as b
from tests.pure import pure_python

PURE = pure_python("engine.masking.pg", "engine.masking.masker")

VALUES = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4)},
                     key=b"k").for_values()
BODY = "customer paid with 4012 8888 8888 1881, contact jane.roe@corp.example.org; "
CARD = re.compile(r"\d{4} \d{4} \d{4} \d{4}")


def masker(budget: float = 1e9) -> ResultMasker:
    m = ResultMasker(VALUES)
    m.value_budget = budget
    return m


def test_a_large_value_is_masked_as_it_is_whole() -> None:
    text = BODY * (LARGE_VALUE // len(BODY) + 10)
    out, counts = masker().rewrite(row_description(column("body")) + b.data_row(text.encode())
                                   + b.command_complete("SELECT 1"))
    sent = out[out.index(b"D"):]
    got = parse_row(sent[: 1 + int.from_bytes(sent[1:5], "big")])[0]
    assert got is not None
    masked = got.decode()
    assert CARD.search(masked) is None and "jane.roe" not in masked
    assert masked == VALUES.mask(text)[0]
    assert counts[("payment_card", "body")] == text.count("4012 8888 8888 1881")


def test_a_value_over_its_budget_refuses_the_result_and_the_session_goes_on() -> None:
    m = masker(budget=0.0)  # no time at all: the first piece is the last one done
    text = "4111 1111 1111 1111 x " * (LARGE_VALUE // 22 + 10)
    data = (row_description(column("body")) + b.data_row(b"first") + b.data_row(text.encode())
            + b.data_row(b"after") + b.command_complete("SELECT 3") + b.ready())
    out, counts = m.rewrite(data)
    messages = split(out)
    assert [chr(tag) for tag, _ in messages] == ["T", "D", "E", "Z"]
    fields = error_fields(messages[2][1])
    assert fields["C"] == "54000"
    assert "could not be masked" in fields["M"] and "masking_value_budget" in fields["M"]
    assert b"4111" not in out and b"after" not in out
    assert counts[("value-budget", "")] == 1
    assert list(m.ended) == [Counter({("value-budget", ""): 1})]
    # the next statement's result goes through as usual
    again, _ = m.rewrite(row_description(column("body")) + b.data_row(BODY.encode())
                         + b.command_complete("SELECT 1") + b.ready())
    assert [chr(tag) for tag, _ in split(again)] == ["T", "D", "C", "Z"]
    assert b"4012 8888" not in again


def test_a_clean_large_value_within_its_budget_comes_back_unchanged() -> None:
    text = "x" * (4 * LARGE_VALUE)  # one word: no cut, masked in one call, given back whole
    data = row_description(column("body")) + b.data_row(text.encode())
    out, _ = masker(budget=0.0).rewrite(data)
    assert out == data


def test_a_large_bytea_over_its_budget_is_refused_not_corrupted() -> None:
    raw = bytes(range(256)) * (LARGE_VALUE // 256 + 8)
    data = (row_description(column("file", 17)) + b.data_row(b"\\x" + raw.hex().encode())
            + b.command_complete("SELECT 1") + b.ready())
    out, _ = masker(budget=0.0).rewrite(data)
    assert [chr(tag) for tag, _ in split(out)] == ["T", "E", "Z"]


def test_a_copy_line_over_its_budget_refuses_the_copy() -> None:
    text = "4111 1111 1111 1111 x " * (LARGE_VALUE // 22 + 10)
    data = (copy_out_response(0, 1) + b.copy_data(text.encode() + b"\n")
            + b.copy_data(b"next\n") + b.COPY_DONE + b.command_complete("COPY 2") + b.ready())
    out, counts = masker(budget=0.0).rewrite(data)
    messages = split(out)
    # The CopyOutResponse went out before the line came: an error ends the COPY, as one the
    # server raises in the middle of a COPY does.
    assert [chr(tag) for tag, _ in messages] == ["H", "E", "Z"]
    assert error_fields(messages[1][1])["C"] == "54000"
    assert counts[("value-budget", "")] == 1


@PURE
@pytest.mark.pure_python
def test_no_single_masker_call_reads_more_than_about_a_piece(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A row of values just under 1 MiB each (400 KB here) was masked one value per call:
    one search over a MiB held the interpreter, and every session of the worker, for seconds
    even from the worker thread (outside attack round 13, finding 5). Each call now reads
    about a piece, and the value comes out as it is masked whole."""
    values = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4)},
                         key=b"k").for_values()
    whole = ValueMasker.mask
    calls: list[int] = []

    def counted(text: str) -> tuple[str, list[str]]:
        calls.append(len(text))
        return whole(values, text)

    monkeypatch.setattr(values, "mask", counted)
    texts = [(BODY + f"n{i} ") * (400_000 // (len(BODY) + 3)) for i in range(2)]
    out, counts = ResultMasker(values).rewrite(
        row_description(*(column(f"c{i}") for i in range(2)))
        + b.data_row(*(t.encode() for t in texts)) + b.command_complete("SELECT 1"))
    assert calls and max(calls) <= 2 * PIECE  # was one call of each value: 400 KB
    sent = out[out.index(b"D"):]
    got = parse_row(sent[: 1 + int.from_bytes(sent[1:5], "big")])
    assert [g.decode() if g is not None else None for g in got] == [
        whole(values, t)[0] for t in texts]
    assert counts[("payment_card", "c0")] == texts[0].count("4012 8888 8888 1881")
