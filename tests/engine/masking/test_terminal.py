"""TerminalMasker: a terminal's output is shown at once, and a value never stays on its screen.

The central property: output full of values, split anywhere and with the quiet-moment flushes
the bridge makes wherever output is held, never puts a value on the client's screen (rendered
after every read by the terminal emulator replay uses), records exactly what masking the whole
stream records, and leaves the screen as the whole stream masked would.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from engine.masking.masker import ValueMasker
from engine.masking.strategies import Strategy
from engine.masking.stream import StreamMasker
from engine.masking.terminal import TerminalMasker
from recordings.emulator import Emulator

FUZZ = settings(database=None, deadline=None, max_examples=150)
MASKER = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4)})
CARD = b"4111 1111 1111 1111"


def screen_text(emu: Emulator) -> str:
    """The screen's rows, a full row joined to the next (a line the terminal wrapped)."""
    cols = emu.screen.columns
    rows = emu.screen.display
    return "".join(row if len(row.rstrip()) == cols else row.rstrip() + "\n" for row in rows)


def whole(data: bytes) -> bytes:
    stream = StreamMasker(MASKER)
    return stream.feed(data) + stream.flush()


def test_a_key_is_shown_at_once_and_recorded_once_its_word_is_decided() -> None:
    term = TerminalMasker(MASKER, 80, 24)
    assert term.feed(b"$ ") == (b"$ ", b"$ ")
    assert term.feed(b"a") == (b"a", b"")  # "a" may begin an address: not recorded yet
    assert not term.held  # nothing for the bridge to flush after a quiet moment
    assert term.feed(b"b") == (b"b", b"")
    assert term.feed(b" ") == (b" ", b"ab ")
    assert term.flush() == (b"", b"")


def test_a_card_typed_key_by_key_is_rewritten_when_it_completes() -> None:
    term = TerminalMasker(MASKER, 80, 24)
    emu = Emulator(80, 24)
    recorded = b""
    for key in b"$ " + CARD:
        sent, rec = term.feed(bytes([key]))
        emu.feed(sent)
        recorded += rec
        assert "4111 1111 1111 1111" not in screen_text(emu)
    assert screen_text(emu).startswith("$ **** **** **** 1111\n")
    assert CARD not in recorded and b"4111" not in recorded
    sent, rec = term.feed(b"\r\n")
    emu.feed(sent)
    recorded += rec + term.flush()[1]
    assert recorded == b"$ **** **** **** 1111\r\n"
    assert (emu.screen.cursor.x, emu.screen.cursor.y) == (0, 1)


def test_a_shorter_mask_blanks_what_was_shown() -> None:
    masker = ValueMasker()  # "****" for a card
    term = TerminalMasker(masker, 80, 24)
    emu = Emulator(80, 24)
    for key in CARD[:-1]:
        emu.feed(term.feed(bytes([key]))[0])
    emu.feed(term.feed(b"1 ok")[0])
    assert screen_text(emu).startswith("**** ok\n")


def test_a_value_that_wrapped_is_rewritten_on_the_rows_it_spans() -> None:
    term = TerminalMasker(MASKER, 10, 5)
    emu = Emulator(10, 5)
    for key in b"say: alice.martin@example":
        emu.feed(term.feed(bytes([key]))[0])
    assert "alice" in screen_text(emu)  # not yet a value: no domain yet
    for key in b".com\r\n":
        emu.feed(term.feed(bytes([key]))[0])
    text = screen_text(emu)
    assert "alice" not in text and text.startswith("say: ****\n")


def test_a_tail_after_cursor_movement_is_held_for_a_quiet_flush() -> None:
    term = TerminalMasker(MASKER, 80, 24)
    sent, recorded = term.feed(b"\x1b[5Cpay 4111")
    assert (sent, recorded) == (b"\x1b[5Cpay ", b"\x1b[5Cpay ")
    assert term.held  # where "4111" would be drawn is not known: not shown early
    assert term.flush() == (b"4111", b"4111")


# --- the property ------------------------------------------------------------------------------

VALUES = [CARD, b"4242424242424242", b"alice.martin@example.com", b"a@b.co", b"123-45-6789",
          b"+44 20 7946 0958", b"DE89 3704 0044 0532 0130 00", b"AKIAIOSFODNN7EXAMPLE"]
WORDS = [b"ok", b"pay", b"card", b"4242", b"x", b"$", b"user=", b"mail:", b"1111"]
SEPARATORS = [b" ", b" ", b", ", b"\r\n"]
PIECE = st.one_of(st.sampled_from(VALUES), st.sampled_from(WORDS))


@st.composite
def output(draw: st.DrawFn) -> bytes:
    pieces = draw(st.lists(st.tuples(PIECE, st.sampled_from(SEPARATORS)), min_size=1,
                           max_size=12))
    return b"".join(p + s for p, s in pieces)


def found(text: str) -> list[str]:
    return [text[f.start:f.end] for f in MASKER.find(text)]
