"""The emulator as the replay needs it: the same screen as pyte, whatever the cut of the
bytes into feeds, and snapshots that restore exactly."""

from __future__ import annotations

import pyte
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.emulator import MAX_SAVEPOINTS, MAX_TITLE, Emulator, Snapshot
from tests.recordings.replay.build import screen_state

_TEXT = st.text(alphabet=st.sampled_from(
    [*"abcdefghij XYZ0123456789-_=+.,:/~", "é", "ü", "中", "文", "─", "│", "\u0301"]),
    min_size=1, max_size=30)
_N = st.integers(0, 120).map(str)
_SGR = st.lists(st.sampled_from(
    ["0", "1", "3", "4", "5", "7", "9", "22", "23", "24", "27", "31", "32", "39", "42", "49",
     "90", "101", "38;5;196", "48;5;21", "38;2;10;200;30", ""]), max_size=4).map(";".join)
_TOKEN = st.one_of(
    _TEXT,
    st.sampled_from(["\r", "\n", "\r\n", "\b", "\t", "\x07", "\x0b", "\x0c", "\x1b7", "\x1b8",
                     "\x1bD", "\x1bE", "\x1bM", "\x1bH", "\x1bc", "\x1b[6n", "\x1b[c",
                     "\x1b[?7l", "\x1b[?7h", "\x1b[?25l", "\x1b[?25h", "\x1b[4h", "\x1b[4l",
                     "\x1b[20h", "\x1b[20l", "\x1b[?6h", "\x1b[?6l", "\x1b[?5h", "\x1b[?5l",
                     "\x1b[?1049h", "\x1b[?1049l", "\x1b[g", "\x1b[3g", "\x1b[r",
                     "\x1b]0;a title\x07", "\x1b]2;other\x1b\\", "\x1b]52;c;aGk=\x07"]),
    st.tuples(_N, st.sampled_from("ABCDEFGJKLMPX@`adeI")).map(lambda p: f"\x1b[{p[0]}{p[1]}"),
    st.tuples(_N, _N, st.sampled_from("Hfr")).map(lambda p: f"\x1b[{p[0]};{p[1]}{p[2]}"),
    _SGR.map(lambda p: f"\x1b[{p}m"),
)
_OUTPUT = st.lists(_TOKEN, max_size=60).map(lambda ts: "".join(ts).encode())


class _Reference(pyte.Screen):  # type: ignore[misc]
    """pyte, with the cap and the corrections of ours that well-formed output can reach."""

    def save_cursor(self) -> None:
        super().save_cursor()
        del self.savepoints[:-MAX_SAVEPOINTS]

    def insert_lines(self, count: int | None = None) -> None:
        self._every_row()
        super().insert_lines(count)

    def delete_lines(self, count: int | None = None) -> None:
        self._every_row()
        super().delete_lines(count)

    def _every_row(self) -> None:
        """pyte moves rows right when they all exist (and stale ones when they do not)."""
        for y in range(self.lines):
            self.buffer[y]  # reading a row creates it


class _ReferenceStream(pyte.ByteStream):  # type: ignore[misc]
    """pyte's own parser and screen, with the recovery of ours (pyte raises where a screen
    method does, for example on ``ESC [ 3 K``)."""

    def _send_to_parser(self, data: str) -> bool | None:
        try:
            return super()._send_to_parser(data)  # type: ignore[no-any-return]
        except Exception:
            return True


def _cuts(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(_OUTPUT, st.lists(st.integers(0, 10_000), max_size=6))
def test_the_screen_is_pyte_s_for_well_formed_output(data: bytes, points: list[int]) -> None:
    ours, ref = Emulator(30, 8), _Reference(30, 8)
    stream = _ReferenceStream(ref)
    for piece in _cuts(data, points):
        ours.feed(piece)
        stream.feed(piece)
    assert screen_state(ours.screen) == screen_state(ref)


_HOSTILE = st.lists(st.one_of(
    st.binary(max_size=40), _TOKEN.map(str.encode),
    st.sampled_from([b"\x1b[" + b"9" * 5000 + b"m", b"\x1b%@", b"\x1b%G", b"\xc2\x9b5A",
                     b"\x1b]0;" + b"t" * 300, b"\x1b[1;2;3;4H", b"\x1b[38;5;999m", b"\x1b",
                     b"\xe4\xb8", b"\x1b[?3h", b"\x1bP1$r\x1b\\", b"\x00\x7f\x01",
                     "\u200b".encode()]),
), max_size=25).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_HOSTILE, st.lists(st.integers(0, 10_000), max_size=8))
def test_the_screen_does_not_depend_on_how_the_bytes_were_cut(data: bytes,
                                                             points: list[int]) -> None:
    whole, cut = Emulator(20, 6), Emulator(20, 6)
    whole.feed(data)
    for piece in _cuts(data, points):
        cut.feed(piece)
    assert screen_state(cut.screen) == screen_state(whole.screen)
    assert cut.screen.scrolled == whole.screen.scrolled
    assert cut.at_rest == whole.at_rest


@settings(max_examples=200, deadline=None)
@given(_HOSTILE, _HOSTILE, st.integers(1, 60), st.integers(1, 20))
def test_a_restored_snapshot_goes_on_exactly_like_the_original(
        before: bytes, after: bytes, cols: int, rows: int) -> None:
    original = Emulator(cols, rows)
    original.feed(before + b"\x1b[0m")  # ends a sequence, if one was left open... mostly
    if not original.at_rest:
        original.feed(b"\x07\x1b\\\x18")  # BEL and ST end strings, CAN ends a sequence
    if not original.at_rest:
        return
    snap = Snapshot.unpack(original.snapshot().pack())
    copy = Emulator(3, 3)
    copy.restore(snap)
    assert screen_state(copy.screen) == screen_state(original.screen)
    original.feed(after)
    copy.feed(after)
    assert screen_state(copy.screen) == screen_state(original.screen)
    assert copy.screen.scrolled == original.screen.scrolled
    assert len(copy.screen.savepoints) == len(original.screen.savepoints)


def test_reading_the_screen_does_not_change_what_output_does_to_it() -> None:
    steps = b"one\r\ntwo\r\n\x1b[H\x1b[2M", b"\x1b[3;1H\x1b[2L", b"\x1b[8;40t"
    read, unread = Emulator(20, 6), Emulator(20, 6)
    read.resize(20, 8)
    unread.resize(20, 8)
    for data in steps:
        read.feed(data)
        unread.feed(data)
        read.screen.display  # noqa: B018 - a renderer reads every row
    read.resize(20, 3)
    unread.resize(20, 3)
    assert screen_state(read.screen) == screen_state(unread.screen)
    assert [line.strip() for line in unread.screen.display] == ["", "", ""]


def test_a_snapshot_is_refused_inside_a_sequence_or_a_character() -> None:
    em = Emulator(10, 3)
    em.feed(b"ab\x1b[3")
    assert not em.at_rest
    with pytest.raises(ValueError):
        em.snapshot()
    em.feed(b"1m\xe4\xb8")  # half of 中
    assert not em.at_rest
    em.feed(b"\xad")
    assert em.at_rest and em.screen.display[0].startswith("ab中")


def test_a_packed_snapshot_is_small_and_restores_the_same() -> None:
    em = Emulator(200, 50)
    em.feed(b"".join(f"\x1b[3{k % 8}mline {k}\x1b[0m: some log text here\r\n".encode()
                     for k in range(100)) + b"\x1b7\x1b[5;20r\x1b[?25l")
    snap = em.snapshot()
    packed = snap.pack()
    assert len(packed) < 4096 and snap.cells() == 49 * len("line 50: some log text here")
    copy = Emulator(1, 1)
    copy.restore(Snapshot.unpack(packed))
    assert screen_state(copy.screen) == screen_state(em.screen)
    assert copy.screen.g0_charset is em.screen.g0_charset  # the fast path checks identity
    for e in (em, copy):
        e.feed(b"\x1b8after\x1b[1S")
    assert screen_state(copy.screen) == screen_state(em.screen)


def test_queries_get_no_answer_and_nothing_is_written(capfd: pytest.CaptureFixture[str]
                                                      ) -> None:
    em = Emulator(40, 5)
    answers: list[str] = []
    real = em.screen.write_process_input
    em.screen.write_process_input = lambda data: (answers.append(data), real(data))
    em.feed(b"\x1b[6n\x1b[5n\x1b[c\x1b[>c\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;pwned\x07ok")
    assert answers  # pyte did ask: the screen's answer is a no-op, not a writer
    assert real("\x1b[1;1R") is None
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert em.screen.display[0].startswith("ok") and em.screen.title == "pwned"


def test_what_a_recording_could_grow_is_capped() -> None:
    em = Emulator(20, 4)
    em.feed(b"\x1b7" * 10_000 + b"\x1b]2;" + b"T" * 100_000 + b"\x07")
    assert len(em.screen.savepoints) == MAX_SAVEPOINTS
    assert len(em.screen.title) == MAX_TITLE


def test_latin1_switch_is_ignored_so_utf8_stays_utf8() -> None:
    em = Emulator(20, 2)
    em.feed(b"\x1b%@caf\xc3\xa9")
    assert em.screen.display[0].startswith("café")
