"""Idle skipping: a play clock on which long silences are short.

A replay screen plays by advancing a *play* time at its speed and showing the session at the
matching *session* time. ``IdleMap`` makes every gap between two moments of activity longer
than ``max_idle`` last ``max_idle`` of play time — the gap is squeezed, not cut, so scrubbing
inside it still moves through it (fast) and the mapping is a bijection both ways. Speed stays
the screen's business: it multiplies play time, this only reshapes it.

What it costs: three floats per squeezed gap, built from the activity times in one pass.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable


class IdleMap:
    def __init__(self, activity: Iterable[float], duration: float, max_idle: float) -> None:
        if max_idle <= 0:
            raise ValueError("max_idle must be positive")
        self.duration = duration
        self.max_idle = max_idle
        # Squeezed gaps: where each starts in session and in play time, and how long it is.
        self._start = array("d")
        self._play_start = array("d")
        self._length = array("d")
        removed = 0.0
        last = 0.0
        for t in (*sorted(activity), duration):
            t = min(max(t, last), duration)
            gap = t - last
            if gap > max_idle:
                self._start.append(last)
                self._play_start.append(last - removed)
                self._length.append(gap)
                removed += gap - max_idle
            last = t
        self.play_duration = duration - removed

    def __len__(self) -> int:
        """The number of squeezed gaps."""
        return len(self._start)

    def to_play(self, t: float) -> float:
        """The play time of session time ``t``."""
        t = min(max(t, 0.0), self.duration)
        i = bisect_right(self._start, t) - 1
        if i < 0:
            return t
        start, play, length = self._start[i], self._play_start[i], self._length[i]
        if t < start + length:
            return play + (t - start) * self.max_idle / length
        return play + self.max_idle + (t - start - length)

    def to_session(self, p: float) -> float:
        """The session time of play time ``p``."""
        p = min(max(p, 0.0), self.play_duration)
        i = bisect_right(self._play_start, p) - 1
        if i < 0:
            return p
        start, play, length = self._start[i], self._play_start[i], self._length[i]
        if p < play + self.max_idle:
            return start + (p - play) * length / self.max_idle
        return start + length + (p - play - self.max_idle)
