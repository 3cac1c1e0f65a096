"""Seeking a recorded terminal: the screen at t is the screen a straight replay shows at t."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recordings.replay import SessionNotFound, TerminalTimeline, open_timeline
from recordings.replay.keyframes import position
from store import StoreError
from tests.recordings.replay.build import Recording, new_store, screen_state, straight_replay

Chunk = tuple[float, int, str, bytes]


def record(tmp_path: Path, chunks: list[Chunk], end: float | None = None,
           sid: str = "s1") -> Recording:
    rec = Recording(new_store(tmp_path), sid)
    for t, channel, stream, data in chunks:
        rec.out(t, data, channel, stream)
    if end is not None:
        rec.close(end)
    else:
        rec.store.checkpoint()
    return rec


def noisy_session(seed: int, n: int = 300) -> list[Chunk]:
    """Colour, scrolling, cursor moves, full-screen redraws, resizes, big and tiny chunks."""
    rnd = random.Random(seed)
    chunks: list[Chunk] = [(0.0, 0, "r", b"60x12")]
    t = 0.05
    for i in range(n):
        t = round(t + rnd.choice([0.001, 0.05, 0.3, 2.0]), 6)  # as the store keeps it
        pick = rnd.random()
        if pick < 0.05:
            chunks.append((t, 0, "r", f"{rnd.randint(10, 90)}x{rnd.randint(3, 30)}".encode()))
        elif pick < 0.15:
            screen = b"".join(f"\x1b[{y};1H\x1b[4{y % 8}m row {y} {i}\x1b[K".encode()
                              for y in range(1, 14))
            chunks.append((t, 0, "o", b"\x1b[?1049h\x1b[H\x1b[2J" + screen + b"\x1b[?1049l"))
        elif pick < 0.2:
            chunks.append((t, 0, "o", b"".join(
                f"\x1b[1;3{k % 8}mbuild step {k}\x1b[0m: ok\r\n".encode()
                for k in range(rnd.randint(50, 400)))))
        else:
            chunks.append((t, 0, "o", f"$ echo {i}\r\n{i}\r\n\x1b[32m{'é' * (i % 5)}"
                           f"\x1b[0m".encode()[: rnd.randint(1, 60)]))
    return chunks


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10_000), st.sampled_from([300, 2_000, 50_000]),
       st.lists(st.floats(0, 400), min_size=5, max_size=25))
def test_seek_equals_a_straight_replay(tmp_path_factory: pytest.TempPathFactory, seed: int,
                                       every: int, times: list[float]) -> None:
    chunks = noisy_session(seed, 120)
    rec = record(tmp_path_factory.mktemp("s"), chunks)
    timeline = TerminalTimeline(rec.store, "s1", every_cost=every, every_seconds=10)
    chunk_times = [c[0] for c in chunks]
    # also exactly at chunk times, just before them, and at the start and the end
    for t in [*times, *random.Random(seed).sample(chunk_times, 5),
              *(x - 1e-4 for x in chunk_times[:3]), 0.0, timeline.duration]:
        screen = timeline.seek(t)
        expected = straight_replay(chunks, min(max(t, 0.0), timeline.duration))
        assert screen_state(screen) == screen_state(expected), t
    rec.store.close()


def test_keyframes_are_taken_inside_big_chunks_and_seeks_restore_them(
        tmp_path: Path) -> None:
    big = b"".join(f"\x1b[3{k % 8}mline {k}\x1b[0m\r\n".encode() for k in range(20_000))
    chunks: list[Chunk] = [(0.0, 0, "r", b"80x24"), (1.0, 0, "o", big), (2.0, 0, "o", b"end")]
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1", every_cost=20_000)
    timeline.build()
    inside = [k for k in timeline.keyframes.frames if k.offset]
    assert len(inside) > 5  # the 300 KB chunk holds many keyframes, each at rest
    assert screen_state(timeline.seek(1.5)) == screen_state(straight_replay(chunks, 1.5))
    assert screen_state(timeline.seek(2.0)) == screen_state(straight_replay(chunks, 2.0))


def test_playing_forward_feeds_on_and_never_restores(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = noisy_session(7, 200)
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1", every_cost=500)
    timeline.build()
    assert len(timeline.keyframes) > 20
    restores: list[object] = []
    real = timeline.emulator.restore
    monkeypatch.setattr(timeline.emulator, "restore", lambda s: (restores.append(s), real(s)))
    t = 0.0
    while t < timeline.duration:  # 10 frames a second of session time
        timeline.seek(t)
        t += 0.1
    assert restores == []
    assert screen_state(timeline.screen) == screen_state(straight_replay(chunks, t - 0.1))
    timeline.seek(1.0)  # backwards: from a keyframe
    assert len(restores) == 1


def test_a_forward_jump_over_much_output_restores_the_keyframe_ahead(tmp_path: Path) -> None:
    chunks = noisy_session(11, 300)
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1", every_cost=500)
    timeline.build()
    timeline.seek(1.0)
    far = chunks[-1][0]
    frame = timeline.keyframes.best(timeline.index.count_at(far))
    assert frame.key > position(timeline.index.count_at(1.0))
    assert screen_state(timeline.seek(far)) == screen_state(straight_replay(chunks, far))


def test_keyframes_are_built_only_as_far_as_seeks_need(tmp_path: Path) -> None:
    chunks = noisy_session(3, 300)
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1", every_cost=500)
    assert timeline.keyframes.frontier == 0 and timeline.indexed == 0.0
    middle = chunks[150][0]
    timeline.seek(middle)
    assert timeline.keyframes.frontier == timeline.index.count_at(middle)
    assert 0 < timeline.indexed < 1
    seen: list[tuple[int, int]] = []
    timeline.build(progress=lambda done, total: seen.append((done, total)))
    assert timeline.indexed == 1.0
    assert seen[-1] == (timeline.index.total, timeline.index.total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_building_in_slices_of_time_between_seeks(tmp_path: Path) -> None:
    chunks = noisy_session(5, 300)
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1", every_cost=500)
    rounds = done = 0
    while not timeline.build(budget=0.0):  # one chunk per call: the least it does
        assert timeline.keyframes.frontier == done + 1
        done, rounds = done + 1, rounds + 1
        if rounds % 40 == 0:  # a seek in between (it may build further itself)
            t = chunks[rounds * 3 % len(chunks)][0]
            assert screen_state(timeline.seek(t)) == screen_state(straight_replay(chunks, t))
            done = timeline.keyframes.frontier
    assert timeline.indexed == 1.0 and rounds > 100
    assert timeline.build() is True


def test_time_based_keyframes_in_a_quiet_session(tmp_path: Path) -> None:
    chunks: list[Chunk] = [(float(t), 0, "o", f"tick {t}\r\n".encode()) for t in range(0, 600, 7)]
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1", every_seconds=60)
    timeline.build()
    gaps = [b.t - a.t for a, b in zip(timeline.keyframes.frames[1:],
                                       timeline.keyframes.frames[2:], strict=False)]
    assert len(timeline.keyframes) >= 9 and all(60 <= g < 70 for g in gaps)


def test_only_terminal_channels_are_shown(tmp_path: Path) -> None:
    chunks: list[Chunk] = [
        (0.0, 1, "r", b"40x5"), (0.1, 1, "o", b"shell$ "),
        (0.2, 2, "o", b"SFTP-BINARY\x00\x01"), (0.3, 2, "i", b"put file"),
        (0.4, 1, "e", b"err\r\n"), (0.5, 1, "i", b"typed"),
    ]
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1")
    assert timeline.index.channels == {1}
    text = "\n".join(timeline.seek(1.0).display)
    assert "shell$ err" in text and "SFTP" not in text and "typed" not in text


def test_a_size_of_zero_is_no_size(tmp_path: Path) -> None:
    rec = record(tmp_path, [(0.0, 0, "r", b"0x0"), (0.1, 0, "r", b"junk"),
                            (0.2, 0, "o", b"still 80 columns")])
    screen = TerminalTimeline(rec.store, "s1").seek(1)
    assert (screen.columns, screen.lines) == (80, 24)
    assert screen.display[0].startswith("still 80 columns")


def test_a_session_without_a_terminal_shows_its_output_with_line_breaks(
        tmp_path: Path) -> None:
    rec = record(tmp_path, [(0.0, 1, "o", b"one\ntwo\n"), (0.5, 1, "e", b"oops\n")])
    display = TerminalTimeline(rec.store, "s1").seek(1).display
    assert [line.rstrip() for line in display[:3]] == ["one", "two", "oops"]


def test_duration_and_activity(tmp_path: Path) -> None:
    chunks: list[Chunk] = [(0.5, 0, "r", b"80x24"), (1.0, 0, "o", b"a"), (9.0, 0, "o", b"b")]
    rec = record(tmp_path, chunks, end=12.0)
    timeline = TerminalTimeline(rec.store, "s1")
    assert timeline.duration == pytest.approx(12.0)
    assert timeline.next_activity(0.0) == 0.5
    assert timeline.next_activity(1.0) == 9.0
    assert timeline.next_activity(9.0) is None
    idle = timeline.idle_map(2.0)
    assert idle.play_duration == pytest.approx(0.5 + 0.5 + 2.0 + 2.0)
    assert idle.to_session(idle.to_play(9.0)) == pytest.approx(9.0)
    assert timeline.seek(99).display[0].startswith("ab") and timeline.position == 12.0


def test_a_clock_that_steps_back_keeps_the_recorded_order(tmp_path: Path) -> None:
    chunks: list[Chunk] = [(5.0, 0, "o", b"first "), (4.0, 0, "o", b"second")]
    rec = record(tmp_path, chunks)
    timeline = TerminalTimeline(rec.store, "s1")
    assert list(timeline.index.t) == [5.0, 5.0]
    assert timeline.seek(4.5).display[0].strip() == ""
    assert timeline.seek(5.0).display[0].startswith("first second")


def test_a_live_session_grows_on_refresh(tmp_path: Path) -> None:
    rec = record(tmp_path, [(0.0, 0, "r", b"30x3"), (1.0, 0, "o", b"one ")])
    timeline = TerminalTimeline(rec.store, "s1")
    timeline.seek(10)
    rec.out(2.0, b"two")
    rec.command(1.5, "echo two")
    rec.store.checkpoint()
    timeline.refresh()
    assert timeline.seek(10).display[0].startswith("one two")
    assert [m.label for m in timeline.markers] == ["echo two"]


def test_open_timeline_by_prefix_and_unknown_sessions(tmp_path: Path) -> None:
    rec = record(tmp_path, [(0.0, 0, "o", b"x")], sid="abcdef")
    assert isinstance(open_timeline(rec.store, "abcd"), TerminalTimeline)
    with pytest.raises(StoreError, match="too short: give at least 4"):
        open_timeline(rec.store, "abc")  # one rule for ids everywhere (issue 16)
    with pytest.raises(SessionNotFound):
        open_timeline(rec.store, "zzz")
    pg = Recording(rec.store, "pg1", protocol="postgres")
    pg.store.checkpoint()
    with pytest.raises(ValueError, match="not SSH"):
        TerminalTimeline(rec.store, "pg1")


def test_the_replay_model_imports_no_user_interface() -> None:
    code = ("import sys, recordings.replay; bad = [m for m in sys.modules if m.split('.')[0] in"
            " ('textual', 'tui')]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[3], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
