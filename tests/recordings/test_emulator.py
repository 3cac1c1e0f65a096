"""The terminal emulator keeps going whatever the target prints."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.emulator import Emulator


def text(em: Emulator) -> str:
    return "\n".join(line.rstrip() for line in em.screen.display).strip()


def test_an_oversized_csi_parameter_does_not_stop_the_emulation() -> None:
    em = Emulator(40, 5)
    em.feed(b"\x1b[" + b"9" * 5000 + b"mstill here\r\n")
    em.feed(b"and after")
    assert "still here" in text(em) and "and after" in text(em)


def test_an_oversized_parameter_split_across_chunks_only_loses_that_chunk() -> None:
    em = Emulator(40, 5)
    em.feed(b"\x1b[" + b"9" * 10)
    em.feed(b"9" * 5000 + b"m lost")
    em.feed(b"kept")
    assert "kept" in text(em)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_arbitrary_output_never_raises(chunks: list[bytes]) -> None:
    em = Emulator(20, 4)
    for chunk in chunks:
        em.feed(chunk)
    assert len(em.screen.display) == 4  # still a screen, whatever state the parser is in
