"""Keyframes: snapshots of the terminal taken while the output is indexed, so that a seek
restores the nearest one at or before the target and replays only from there.

A keyframe is due after ``every_cost`` units of emulation work or ``every_seconds`` of session
time since the last one, whichever comes first, and is taken at the first point after that
where the emulator is at rest (between escape sequences, no half character pending) — inside
a chunk if need be: chunks reach 256 KiB, more than a seek should replay. Keyframes are kept
packed (``Snapshot.pack``): unpacking one costs a tenth of a millisecond, and keeps an hour
of 100 MB in a few MB instead of tens. Work is counted as
bytes plus ``ESCAPE_COST`` per escape and line feed, since pyte spends about as long on one
escape sequence or scroll as on a dozen printed characters: counting bytes alone would space
keyframes too far apart in colourful output. With the defaults a seek replays at most about
64 KiB of plain text (less of escape-heavy output): tens of milliseconds here.

Keyframes are built lazily, by a builder with an emulator of its own that walks the output
once, as far as a seek needs (``build(until)``) or to the end (``build()``, with a progress
callback). What it costs: one pass of the emulator over the output (about 2 MB/s on this
machine: a minute for 100 MB, paid as far as the operator seeks), and a few KiB per keyframe.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from recordings.emulator import Emulator, Snapshot
from recordings.replay.chunks import ChunkIndex

EVERY_COST = 64 * 1024
EVERY_SECONDS = 60.0
ESCAPE_COST = 16
_SLICE = 8 * 1024  # how often, inside a big chunk, the builder looks whether one is due

Progress = Callable[[int, int], None]  # (bytes indexed, bytes in all)


def work(data: bytes) -> int:
    """The emulation work of ``data``, in the units of ``EVERY_COST``."""
    return len(data) + ESCAPE_COST * (data.count(b"\x1b") + data.count(b"\n"))


@dataclass(frozen=True, slots=True)
class Keyframe:
    chunk: int  # chunks fed before it
    offset: int  # bytes of chunk ``chunk`` fed before it (a keyframe inside a chunk)
    t: float
    packed: bytes  # the Snapshot, packed: a tenth of its size as objects

    @property
    def key(self) -> int:
        return position(self.chunk, self.offset)

    def snapshot(self) -> Snapshot:
        return Snapshot.unpack(self.packed)


def position(chunk: int, offset: int = 0) -> int:
    """A point in the output, ordered: chunk number, then bytes into that chunk."""
    return (chunk << 32) | offset


class Keyframes:
    def __init__(self, index: ChunkIndex, cols: int = 80, rows: int = 24, *,
                 every_cost: int = EVERY_COST, every_seconds: float = EVERY_SECONDS) -> None:
        self._index = index
        self.every_cost = every_cost
        self.every_seconds = every_seconds
        self._emulator = Emulator(cols, rows)
        first = Keyframe(0, 0, 0.0, self._emulator.snapshot().pack())
        self.frames: list[Keyframe] = [first]
        self._keys = array("q", [first.key])
        self.frontier = 0  # chunks the builder has fed
        self._work = 0  # since the last keyframe
        self._last_t = 0.0

    def __len__(self) -> int:
        return len(self.frames)

    def best(self, chunk: int) -> Keyframe:
        """The last keyframe at or before the point where ``chunk`` chunks have been fed
        (build as far as ``chunk`` first for it to be the nearest)."""
        return self.frames[bisect_right(self._keys, position(chunk)) - 1]

    def build(self, until: int | None = None, progress: Progress | None = None,
              budget: float | None = None) -> bool:
        """Walk the output from where the builder stopped to chunk ``until`` (exclusive;
        default: the end), taking keyframes; with a ``budget``, for about that many seconds
        at most. True when it got there."""
        index = self._index
        until = len(index) if until is None else min(until, len(index))
        deadline = None if budget is None else time.monotonic() + budget
        while self.frontier < until:
            # a page at a time, so that a budget is checked and bytes are read as they go
            stop = min(until, self.frontier + 256)
            for i, payload in index.chunks(self.frontier, stop):
                if isinstance(payload, tuple):
                    self._emulator.resize(*payload)
                else:
                    self._feed(i, payload)
                self.frontier = i + 1
                if progress is not None and (i + 1 == until or index.size[i] > 0):
                    progress(index.offset[i] + index.size[i], index.total)
                if deadline is not None and time.monotonic() >= deadline:
                    return self.frontier >= until
        return True

    def _feed(self, chunk: int, data: bytes) -> None:
        emulator, t = self._emulator, self._index.t[chunk]
        if self._work and t - self._last_t >= self.every_seconds and emulator.at_rest:
            self._keep(chunk, 0, t)
        at = 0
        while at < len(data):
            piece = data[at:at + _SLICE]
            emulator.feed(piece)
            at += len(piece)
            self._work += work(piece)
            if self._work >= self.every_cost and emulator.at_rest:
                self._keep(*((chunk, at) if at < len(data) else (chunk + 1, 0)), t)

    def _keep(self, chunk: int, offset: int, t: float) -> None:
        frame = Keyframe(chunk, offset, t, self._emulator.snapshot().pack())
        self.frames.append(frame)
        self._keys.append(frame.key)
        self._work, self._last_t = 0, t

    def size(self) -> int:
        """Bytes of packed snapshots kept."""
        return sum(len(frame.packed) for frame in self.frames)
