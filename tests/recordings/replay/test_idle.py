"""Idle skipping: long silences squeezed on the play clock, both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recordings.replay import IdleMap


def test_gaps_longer_than_the_limit_last_the_limit() -> None:
    idle = IdleMap([1.0, 2.0, 62.0, 63.0], duration=100.0, max_idle=5.0)
    # 0-1 and 1-2: kept; 2-62 (60 s) → 5 s; 62-63 kept; 63-100 (37 s) → 5 s
    assert len(idle) == 2
    assert idle.play_duration == pytest.approx(1 + 1 + 5 + 1 + 5)
    assert idle.to_play(2.0) == pytest.approx(2.0)
    assert idle.to_play(32.0) == pytest.approx(4.5)  # half way through the squeezed gap
    assert idle.to_play(62.0) == pytest.approx(7.0)
    assert idle.to_play(63.0) == pytest.approx(8.0)
    assert idle.to_session(7.5) == pytest.approx(62.5)
    assert idle.to_play(1000.0) == pytest.approx(idle.play_duration)


def test_no_gap_no_change() -> None:
    idle = IdleMap([0.5, 1.0, 1.5], duration=2.0, max_idle=1.0)
    assert len(idle) == 0 and idle.to_play(1.2) == 1.2 and idle.to_session(1.7) == 1.7


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        IdleMap([], 10.0, 0)


@given(st.lists(st.floats(0, 500), max_size=30), st.floats(0.1, 30), st.floats(0, 500))
def test_play_time_maps_back_and_keeps_the_order(activity: list[float], limit: float,
                                                t: float) -> None:
    duration = max([*activity, 1.0])
    idle = IdleMap(activity, duration, limit)
    t = min(t, duration)
    assert idle.to_session(idle.to_play(t)) == pytest.approx(t, abs=1e-6)
    assert idle.to_play(t) <= idle.to_play(min(t + 1, duration)) + 1e-9
    assert idle.play_duration <= duration + 1e-9
