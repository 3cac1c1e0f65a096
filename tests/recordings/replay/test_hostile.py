"""A recording of hostile output replays safely: it renders as cells, asks nothing of
anyone, and seeks through it land where a straight replay does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from recordings.emulator import MAX_TITLE
from recordings.replay import TerminalTimeline
from tests.recordings.replay.build import Recording, new_store, screen_state, straight_replay

HOSTILE: list[bytes] = [
    b"\x1b]52;c;cm0gLXJmIH4vKg==\x07",  # OSC 52: write the operator's clipboard
    b"\x1b]52;p;?\x07",  # … and read it back
    b"\x1b]0;" + b"A" * 50_000 + b"\x07",  # an enormous title
    b"\x1b]2;\x1b[31mred title\x1b\\",
    b"\x1b[6n\x1b[5n\x1b[c\x1b[>c\x1b[=c\x1b[?6n",  # DSR, DA: ask the terminal to answer
    b"\x1b[21t\x1b[14t\x1b]10;?\x07\x1bP$q\"p\x1b\\",  # window title/size and colour reports
    b"\x1b[" + b"9" * 10_000 + b"m after a huge parameter",
    b"\x1b[" + b"1;" * 5_000 + b"H",
    b"\x1b[999999999;999999999H\x1b[999999999@",
    b"\x1b[?3h\x1b[?1049h\x1b[?2004h\x1b[?1000h",  # 132 columns, alternate screen, mouse
    b"\xc2\x9b6n\xc2\x9d0;c1 title\xc2\x9c",  # the same as C1 controls, in UTF-8
    b"\x1b%@\xe9\x1b%G",  # switch to Latin-1 and back
    b"\x1b7" * 5_000,
    b"\x00\x01\x02\x7f\x1b\x1b\x1b[",
    b"\x1b]8;;file:///etc/passwd\x1b\\link\x1b]8;;\x1b\\",  # a hyperlink
    b"\xff\xfe\xed\xa0\x80 invalid UTF-8",
]


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Recording, list[tuple[float, int, str, bytes]]]:
    rnd = random.Random(52)
    rec = Recording(new_store(tmp_path))
    chunks: list[tuple[float, int, str, bytes]] = [(0.0, 0, "r", b"80x24")]
    t = 0.0
    for round_ in range(6):
        for evil in rnd.sample(HOSTILE, len(HOSTILE)):
            t = round(t + 0.25, 6)
            cut = rnd.randint(0, len(evil))  # sequences cut across chunk boundaries too
            chunks += [(t, 0, "o", evil[:cut]), (round(t + 0.01, 6), 0, "o",
                                                    evil[cut:] + f" ok {round_}\r\n".encode())]
    for at, channel, stream, data in chunks:
        rec.out(at, data, channel, stream)
    rec.close(t + 1)
    return rec, chunks


def test_hostile_output_replays_as_a_straight_replay_would(
        hostile: tuple[Recording, list[tuple[float, int, str, bytes]]]) -> None:
    rec, chunks = hostile
    timeline = TerminalTimeline(rec.store, "s1", every_cost=2_000)
    rnd = random.Random(1)
    for t in [rnd.uniform(0, timeline.duration) for _ in range(40)] + [timeline.duration]:
        assert screen_state(timeline.seek(t)) == screen_state(straight_replay(chunks, t))
    assert len(timeline.keyframes) > 10


def test_hostile_output_renders_as_harmless_cells_and_answers_nobody(
        hostile: tuple[Recording, list[tuple[float, int, str, bytes]]],
        capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rec, _ = hostile
    timeline = TerminalTimeline(rec.store, "s1")
    answers: list[str] = []
    screen_class = type(timeline.screen)
    monkeypatch.setattr(screen_class, "write_process_input",
                        lambda self, data: answers.append(data))
    timeline.build()
    for t in (timeline.duration / 3, timeline.duration / 2, timeline.duration):
        screen = timeline.seek(t)
        for y in range(screen.lines):
            for x in range(screen.columns):
                for char in screen.buffer[y][x].data:
                    assert ord(char) >= 32 and not 0x7F <= ord(char) < 0xA0, (y, x)
        assert len(screen.title) <= MAX_TITLE and len(screen.savepoints) <= 16
    assert answers  # the queries reached the emulator's answer hook: a no-op in the real one
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_real_answer_hook_sends_nothing(
        hostile: tuple[Recording, list[tuple[float, int, str, bytes]]]) -> None:
    rec, _ = hostile
    timeline = TerminalTimeline(rec.store, "s1")
    screen = timeline.seek(timeline.duration)
    assert screen.write_process_input("\x1b[1;1R") is None
    assert not hasattr(timeline.emulator, "write") and not hasattr(screen, "output")
