"""``Tape``: an SSH session's bytes batched into chunks and handed to the recorder, with
back-pressure and fail-closed on a store error.

The recorder is a plain stand-in with the real interface (``commit(ops, done)`` and
``committed(ops)``, see ``engine/recorder.py``); it keeps each commit so that a test plays the
store and calls ``done`` when it likes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from engine.ssh import tape as tape_module
from engine.ssh.tape import FLUSH_BYTES, FLUSH_DELAY, HIGH_WATER, LOW_WATER, Tape
from store import Op, StoreError
from store import ops as O
from store.records import Record

Done = Callable[[StoreError | None], None]


class FakeRecorder:
    """Keeps what it is handed; nothing is committed until the test calls ``done``."""

    def __init__(self) -> None:
        self.commits: list[tuple[list[Op], Done]] = []
        self.awaited: list[list[Op]] = []

    def commit(self, records: list[Record], done: Done) -> None:
        self.commits.append(([r.op() for r in records], done))

    async def committed(self, records: list[Record]) -> None:
        self.awaited.append([r.op() for r in records])

    @property
    def ops(self) -> list[Op]:
        return [op for ops, _ in self.commits for op in ops]

    def settle(self, exc: StoreError | None = None) -> None:
        """The store commits (or fails) everything handed over so far, in order."""
        pending, self.commits = self.commits, []
        for _, done in pending:
            done(exc)


class Harness:
    def __init__(self) -> None:
        self.recorder = FakeRecorder()
        self.pressure: list[bool] = []
        self.failures: list[StoreError] = []
        self.tape = Tape(self.recorder, "sess-1", time.time(), self.pressure.append,  # type: ignore[arg-type]
                         self.failures.append)


@pytest.fixture
async def h() -> Harness:
    return Harness()


def chunks(ops: list[Op]) -> list[tuple[int, str, bytes]]:
    return [(op.fields["channel"], op.fields["stream"], op.blob or b"") for op in ops]


# --- chunks ----------------------------------------------------------------------------------


async def test_runs_of_the_same_channel_and_stream_make_one_chunk(h: Harness) -> None:
    t = h.tape
    t.add(1, "o", b"he")
    t.add(1, "o", b"llo")
    t.add(1, "e", b"oops")
    t.add(1, "e", b"!")
    t.add(2, "o", b"other channel")
    t.add(1, "o", b"back")
    t.flush()
    assert len(h.recorder.commits) == 1
    assert chunks(h.recorder.ops) == [(1, "o", b"hello"), (1, "e", b"oops!"),
                                      (2, "o", b"other channel"), (1, "o", b"back")]


async def test_chunks_are_output_ops_of_the_session(h: Harness) -> None:
    h.tape.add(3, "i", b"typed")
    h.tape.flush()
    [op] = h.recorder.ops
    assert op.kind == O.SSH_OUTPUT
    assert op.session_id == "sess-1"
    assert op.fields["size"] == 5
    assert op.fields["stream"] == "i"
    assert op.fields["t"] >= 0


async def test_chunk_time_is_when_its_first_bytes_came(h: Harness) -> None:
    h.tape.add(1, "o", b"a")
    await asyncio.sleep(0.02)
    h.tape.add(1, "e", b"b")
    h.tape.flush()
    first, second = h.recorder.ops
    assert second.fields["t"] - first.fields["t"] >= 0.015


async def test_sequence_numbers_go_up_by_one(h: Harness) -> None:
    t = h.tape
    for i in range(5):
        t.add(1, "o" if i % 2 else "e", b"x")
    t.flush()
    t.mark_size(1, 80, 24)
    t.add(2, "o", b"y")
    t.flush()
    assert [op.ref for op in h.recorder.ops] == list(range(1, 8))
    assert t.seq == 7


async def test_empty_data_makes_no_chunk(h: Harness) -> None:
    h.tape.add(1, "o", b"")
    h.tape.flush()
    assert h.recorder.commits == []
    assert h.tape.seq == 0


async def test_flush_with_nothing_gathered_commits_nothing(h: Harness) -> None:
    h.tape.flush()
    h.tape.flush()
    assert h.recorder.commits == []


# --- window size -----------------------------------------------------------------------------


async def test_mark_size_is_its_own_chunk(h: Harness) -> None:
    t = h.tape
    t.add(1, "o", b"before")
    t.mark_size(1, 132, 43)
    t.add(1, "o", b"after")
    t.flush()
    assert chunks(h.recorder.ops) == [(1, "o", b"before"), (1, "r", b"132x43"),
                                      (1, "o", b"after")]


async def test_two_sizes_in_a_row_stay_two_chunks(h: Harness) -> None:
    h.tape.mark_size(1, 80, 24)
    h.tape.mark_size(1, 100, 30)
    h.tape.flush()
    assert chunks(h.recorder.ops) == [(1, "r", b"80x24"), (1, "r", b"100x30")]


# --- when chunks are handed over -------------------------------------------------------------


async def test_nothing_is_handed_over_before_the_delay(h: Harness) -> None:
    h.tape.add(1, "o", b"x")
    await asyncio.sleep(0)
    assert h.recorder.commits == []


async def test_the_timer_flushes_after_flush_delay(h: Harness) -> None:
    h.tape.add(1, "o", b"x")
    h.tape.add(1, "o", b"y")
    await asyncio.sleep(FLUSH_DELAY / 2)
    assert h.recorder.commits == []
    await asyncio.sleep(FLUSH_DELAY)
    assert chunks(h.recorder.ops) == [(1, "o", b"xy")]
    await asyncio.sleep(FLUSH_DELAY * 2)
    assert len(h.recorder.commits) == 1  # one timer, one commit


async def test_the_timer_starts_at_the_first_bytes_not_the_last(h: Harness) -> None:
    started = time.monotonic()
    h.tape.add(1, "o", b"x")
    while not h.recorder.commits:
        await asyncio.sleep(FLUSH_DELAY / 5)
        h.tape.add(1, "o", b"more")  # a steady trickle does not postpone the flush
        assert time.monotonic() - started < FLUSH_DELAY * 10
    assert time.monotonic() - started < FLUSH_DELAY * 3


async def test_a_shorter_delay_is_honoured(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tape_module, "FLUSH_DELAY", 0.005)
    h.tape.add(1, "o", b"x")
    await asyncio.sleep(0.03)
    assert len(h.recorder.commits) == 1


async def test_flush_bytes_hands_over_at_once(h: Harness) -> None:
    h.tape.add(1, "o", b"a" * (FLUSH_BYTES - 1))
    assert h.recorder.commits == []
    h.tape.add(1, "o", b"b")
    assert len(h.recorder.commits) == 1
    assert chunks(h.recorder.ops) == [(1, "o", b"a" * (FLUSH_BYTES - 1) + b"b")]


async def test_flush_bytes_counts_closed_chunks_too(h: Harness) -> None:
    half = FLUSH_BYTES // 2
    h.tape.add(1, "o", b"o" * half)
    h.tape.add(1, "e", b"e" * (half - 1))
    assert h.recorder.commits == []
    h.tape.add(2, "o", b"!")
    assert len(h.recorder.commits) == 1
    assert [len(c[2]) for c in chunks(h.recorder.ops)] == [half, half - 1, 1]


async def test_a_flush_by_size_cancels_the_timer(h: Harness) -> None:
    h.tape.add(1, "o", b"x")
    h.tape.add(1, "o", b"y" * FLUSH_BYTES)
    assert len(h.recorder.commits) == 1
    await asyncio.sleep(FLUSH_DELAY * 2)
    assert len(h.recorder.commits) == 1


# --- back-pressure ---------------------------------------------------------------------------


async def test_pressure_on_above_high_water_and_off_below_low_water(h: Harness) -> None:
    t = h.tape
    piece = b"z" * FLUSH_BYTES
    while t.outstanding + len(piece) <= HIGH_WATER:
        t.add(1, "o", piece)
    assert t.outstanding == HIGH_WATER
    assert h.pressure == []  # at the mark, not above it
    t.add(1, "o", b"!")
    t.flush()
    assert h.pressure == [True]
    assert t.pressed
    t.add(1, "o", piece)  # more while pressed: no second signal
    assert h.pressure == [True]

    commits = h.recorder.commits
    h.recorder.commits = []
    for _, done in commits:
        done(None)
        if t.outstanding >= LOW_WATER:
            assert h.pressure == [True], t.outstanding
        else:
            break
    assert h.pressure == [True, False]
    assert t.outstanding < LOW_WATER
    assert not t.pressed


async def test_pressure_signals_once_each_way(h: Harness) -> None:
    t = h.tape
    piece = b"z" * FLUSH_BYTES
    while t.outstanding <= HIGH_WATER:
        t.add(1, "o", piece)
    h.recorder.settle()
    assert h.pressure == [True, False]
    assert t.outstanding == 0
    assert t.recorded_bytes == 33 * FLUSH_BYTES


async def test_pressure_comes_back_when_the_store_falls_behind_again(h: Harness) -> None:
    t = h.tape
    piece = b"z" * FLUSH_BYTES
    for _ in range(2):
        while not t.pressed:
            t.add(1, "o", piece)
        h.recorder.settle()
    assert h.pressure == [True, False, True, False]


async def test_outstanding_and_recorded_bytes(h: Harness) -> None:
    t = h.tape
    t.add(1, "o", b"12345")
    t.flush()
    assert (t.outstanding, t.recorded_bytes) == (5, 0)
    t.add(1, "e", b"678")
    t.flush()
    assert (t.outstanding, t.recorded_bytes) == (8, 0)
    h.recorder.settle()
    assert (t.outstanding, t.recorded_bytes) == (0, 8)


# --- a failing store -------------------------------------------------------------------------


async def test_a_failed_commit_calls_on_failure_once_and_drops_later_bytes(h: Harness) -> None:
    t = h.tape
    t.add(1, "o", b"first")
    t.flush()
    t.add(1, "o", b"second")
    t.flush()
    error = StoreError("disk full")
    h.recorder.settle(error)
    assert h.failures == [error]
    assert t.failed is error
    assert t.outstanding == 0
    assert t.recorded_bytes == 0

    t.add(1, "o", b"after the failure")
    t.mark_size(1, 80, 24)
    t.flush()
    await asyncio.sleep(FLUSH_DELAY * 2)
    assert h.recorder.commits == []
    h.recorder.settle(StoreError("again"))
    assert h.failures == [error]


async def test_a_failure_after_a_success_keeps_what_was_recorded(h: Harness) -> None:
    t = h.tape
    t.add(1, "o", b"ok")
    t.flush()
    t.add(1, "o", b"lost")
    t.flush()
    (_, ok), (_, lost) = h.recorder.commits
    ok(None)
    lost(StoreError("io error"))
    assert t.recorded_bytes == 2
    assert len(h.failures) == 1


async def test_a_failure_while_pressed_does_not_release_the_pressure(h: Harness) -> None:
    t = h.tape
    while not t.pressed:
        t.add(1, "o", b"z" * FLUSH_BYTES)
    h.recorder.settle(StoreError("gone"))
    assert h.pressure == [True]  # the session ends instead
    assert len(h.failures) == 1


# --- drain -----------------------------------------------------------------------------------


async def test_drain_flushes_and_waits_for_outstanding_commits(h: Harness) -> None:
    t = h.tape
    t.add(1, "o", b"last words")
    drain = asyncio.ensure_future(t.drain())
    await asyncio.sleep(0.01)
    assert chunks(h.recorder.ops) == [(1, "o", b"last words")]  # flushed at once
    assert not drain.done()
    h.recorder.settle()
    await asyncio.wait_for(drain, 1)
    assert t.recorded_bytes == len(b"last words")


async def test_drain_waits_for_every_commit(h: Harness) -> None:
    t = h.tape
    for word in (b"a", b"bb", b"ccc"):
        t.add(1, "o", word)
        t.flush()
    drain = asyncio.ensure_future(t.drain())
    first, second, third = h.recorder.commits
    first[1](None)
    third[1](None)
    await asyncio.sleep(0.01)
    assert not drain.done()
    second[1](None)
    await asyncio.wait_for(drain, 1)


async def test_drain_with_nothing_outstanding_returns_at_once(h: Harness) -> None:
    await asyncio.wait_for(h.tape.drain(), 0.5)
    assert h.recorder.commits == []


async def test_drain_returns_after_a_failed_commit(h: Harness) -> None:
    h.tape.add(1, "o", b"x")
    drain = asyncio.ensure_future(h.tape.drain())
    await asyncio.sleep(0)
    h.recorder.settle(StoreError("broken"))
    await asyncio.wait_for(drain, 1)
    assert len(h.failures) == 1
