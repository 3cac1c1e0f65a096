"""The terminal of a recorded SSH session at any time t.

``TerminalTimeline`` owns an ``Emulator`` whose ``screen`` always shows the session at
``position``; a replay screen renders that screen exactly as the live view renders its own
(``tui/widgets/terminal.py``: only cells reach the operator's terminal, never recorded
bytes). ``seek(t)`` moves it:

- forward by a little (playing, ``→``): the chunks between the current point and t are fed
  to the emulator as they are — no keyframe, no restart;
- anywhere else: the nearest keyframe at or before t is restored and only the output after
  it is fed (see ``keyframes.py``);
- beyond what has been indexed: the keyframe builder first walks that far (once).

The screen at t is the screen after every chunk with a time <= t (a chunk's time is that of
its first byte, and it spans at most 50 ms). Window sizes apply at their time.

What it costs (bench/replay_seek.py, an hour with 106 MB of output, on this 2-core machine):
opening reads the chunk index and markers (0.1-0.2 s); keyframes for the whole session take
about 50 s of emulation, paid once — by ``build()`` ahead of time or by the first seek that
goes that far; after that a random seek takes 7 ms at the median and about 25 ms at p99, and
the timeline holds about 6 MB.

Not thread-safe: call it from one thread at a time. A seek reads SQLite and may have to index
first, so a screen should call it off its event loop (in Textual, one exclusive thread worker
group), and can call ``build(budget=…)`` in slices between seeks in that same worker so that
seeks anywhere are fast soon after the replay opens.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pyte

from recordings.emulator import Emulator
from recordings.replay import search, source
from recordings.replay.chunks import ChunkIndex
from recordings.replay.idle import IdleMap
from recordings.replay.keyframes import EVERY_COST, EVERY_SECONDS, Keyframes, Progress, position
from recordings.replay.markers import COMMAND_KINDS, Kind, Marker, Markers
from recordings.replay.statements import Statement, statements
from store import SqliteStore

# Going forward, feed from where the screen is unless a keyframe ahead saves more bytes than
# this (restoring one costs about as much as feeding that many).
_RESTORE_WORTH = 16 * 1024
DEFAULT_SIZE = (80, 24)  # before the first recorded window size


class TerminalTimeline:
    def __init__(self, store: SqliteStore, session_id: str, *,
                 channels: Sequence[int] | None = None, every_cost: int = EVERY_COST,
                 every_seconds: float = EVERY_SECONDS) -> None:
        self.session = source.session_info(store, session_id)
        if self.session.protocol != "ssh":
            raise ValueError(f"session {self.session.id} is {self.session.protocol}, not SSH:"
                             " it has statements, not a terminal (StatementTimeline)")
        self._store = store
        self.index = ChunkIndex(store, self.session.id, channels)
        self.keyframes = Keyframes(self.index, *DEFAULT_SIZE, every_cost=every_cost,
                                   every_seconds=every_seconds)
        self.emulator = Emulator(*DEFAULT_SIZE)
        rows = source.statements(store, self.session.id)
        # the session's commands, as the statements table keeps them (the list a screen shows)
        self.statements: list[Statement] = statements(self.session, rows)
        self.markers = Markers.load(store, self.session, rows)
        self.duration = self._duration()
        self.position = 0.0
        self._applied = 0  # chunks fed to self.emulator

    # --- what there is --------------------------------------------------------------------

    @property
    def screen(self) -> pyte.Screen:
        """The screen at ``position``: render its ``buffer``, ``cursor``, ``lines``,
        ``columns`` (and ``title``) — the same object after every seek."""
        return self.emulator.screen

    def _duration(self) -> float:
        """Seconds from the start to the end (or to the last thing recorded, while live)."""
        last = max((m.t for m in self.markers), default=0.0)
        return max(self.session.length or 0.0, self.index.end_time, last)

    @property
    def indexed(self) -> float:
        """How much of the output has keyframes, from 0 to 1 (seeks there are fast)."""
        done = self.keyframes.frontier
        if done >= len(self.index):
            return 1.0
        return self.index.offset[done] / self.index.total if self.index.total else 0.0

    def refresh(self) -> None:
        """Pick up what a live session recorded since (chunks, commands, its end)."""
        self.index.refresh()
        self.session = source.session_info(self._store, self.session.id)
        rows = source.statements(self._store, self.session.id)
        self.statements = statements(self.session, rows)
        self.markers = Markers.load(self._store, self.session, rows)
        self.duration = self._duration()

    def build(self, progress: Progress | None = None, budget: float | None = None) -> bool:
        """Take the keyframes not taken yet (otherwise they are taken as seeks go further);
        True once all are. ``budget``: stop after about that many seconds, so that a screen
        can interleave building with seeks on its one worker thread."""
        return self.keyframes.build(progress=progress, budget=budget)

    # --- moving ---------------------------------------------------------------------------

    def seek(self, t: float) -> pyte.Screen:
        """The screen at time ``t`` (clamped to the session), and ``position = t``."""
        t = min(max(t, 0.0), self.duration)
        target = self.index.count_at(t)
        self.keyframes.build(until=target)
        frame = self.keyframes.best(target)
        here = self._applied
        skipped = self.index.offset_of(frame.chunk) + frame.offset - self.index.offset_of(here)
        if here <= target and (position(here) >= frame.key or skipped < _RESTORE_WORTH):
            self._feed(here, 0, target)
        else:
            self.emulator.restore(frame.snapshot())
            self._feed(frame.chunk, frame.offset, target)
        self._applied = target
        self.position = t
        return self.emulator.screen

    def _feed(self, first: int, offset: int, last: int) -> None:
        for i, payload in self.index.chunks(first, last):
            if isinstance(payload, tuple):
                self.emulator.resize(*payload)
            else:
                self.emulator.feed(payload[offset:] if i == first else payload)

    # --- finding --------------------------------------------------------------------------

    def next_activity(self, t: float) -> float | None:
        """The time of the first chunk after ``t`` (None after the last)."""
        i = self.index.count_at(t)
        return self.index.t[i] if i < len(self.index) else None

    def idle_map(self, max_idle: float) -> IdleMap:
        """A play clock on which silences longer than ``max_idle`` seconds last that long."""
        activity = [*self.index.t, *(m.t for m in self.markers)]
        return IdleMap(activity, self.duration, max_idle)

    def find(self, text: str, from_t: float, backwards: bool = False) -> float | None:
        """The time of the next (previous) chunk whose output completes a match of ``text``
        (case-insensitive; escapes stripped; see ``search.py``)."""
        return search.find(self.index, text, from_t, backwards)

    def next_marker(self, t: float,
                    kinds: Collection[Kind] = COMMAND_KINDS) -> Marker | None:
        return self.markers.next(t, kinds)

    def previous_marker(self, t: float,
                        kinds: Collection[Kind] = COMMAND_KINDS) -> Marker | None:
        return self.markers.previous(t, kinds)
