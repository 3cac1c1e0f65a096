"""``ChannelOutput``: what the client gets and what the tape records of a channel's output."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.masking.policy import SessionMasking, for_session
from engine.masking.rules import MaskingRule
from engine.ssh.output import ChannelOutput, Out, transfers_files

CARD = b"4111 1111 1111 1111"


def card_masking() -> SessionMasking:
    return for_session((MaskingRule("cards", detectors=("payment_card",)),), "web", "alice",
                       frozenset(), b"k" * 32)


def cards(counts: Counter[str], *, transfer: bool = False) -> ChannelOutput:
    return ChannelOutput(card_masking(), counts, transfer=transfer)


def test_output_is_masked_for_the_client_and_the_tape_and_counted() -> None:
    counts: Counter[str] = Counter()
    out = cards(counts).feed(b"pay " + CARD + b" now\n", False)
    assert out == Out(False, b"pay **** now\n", b"pay **** now\n")
    assert counts == {"cards:payment_card": 1}


def test_a_value_that_may_still_grow_is_held_until_a_flush() -> None:
    output = cards(Counter())
    assert output.feed(b"pay 4111 1111 11", False) == Out(False, b"pay ", b"pay ")
    assert output.held
    assert output.feed(b"4111", True) == Out(True, b"", b"")  # stderr has its own
    assert output.flush() == [Out(False, b"4111 1111 11", b"4111 1111 11"),
                              Out(True, b"4111", b"4111")]
    assert not output.held and output.flush(end=True) == []


def test_a_file_transfer_reaches_the_client_as_it_is_and_is_recorded_masked() -> None:
    counts: Counter[str] = Counter()
    output = cards(counts, transfer=True)
    assert output.feed(CARD + b"\n", False) == Out(False, CARD + b"\n", b"****\n")
    assert output.feed(b"x " + CARD, False) == Out(False, b"x " + CARD, b"x ")
    assert output.flush(end=True) == [Out(False, b"", b"****")]  # sent already
    assert counts == {"cards:payment_card": 2}


def test_masking_applies_only_with_value_detectors() -> None:
    exempt = for_session((MaskingRule("ops", exempt=True),), "web", "alice", frozenset(), b"")
    columns = for_session((MaskingRule("cols", columns=("email",)),), "web", "alice",
                          frozenset(), b"")
    assert not ChannelOutput.masks(None)
    assert not ChannelOutput.masks(exempt)
    assert not ChannelOutput.masks(columns)
    assert ChannelOutput.masks(card_masking())


@pytest.mark.parametrize(("command", "transfer"), [
    ("scp -t /tmp", True),
    ("rsync --server -vlogDtpre.iLsfxC . /srv", True),
    ("/usr/lib/openssh/sftp-server", True),
    ("cat /etc/hosts", False),
    ("ls '", False),  # not shell words: not a transfer, masked as usual
])
def test_which_commands_transfer_files(command: str, transfer: bool) -> None:
    assert transfers_files(command) == transfer
