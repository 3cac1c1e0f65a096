"""Failed logins are answered late, later for an address that keeps failing; successes never."""

from __future__ import annotations

import pytest

import engine.throttle as throttle_module
from engine.throttle import FREE_FAILURES, MAX_ADDRESSES, MAX_DELAY, WINDOW, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(throttle_module.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(throttle_module.asyncio, "sleep", clock.sleep)
    return clock


async def test_each_failure_from_one_address_doubles_the_wait_of_its_next_logins(
        clock: Clock) -> None:
    throttle = LoginThrottle()
    await throttle.wait("10.0.0.1")
    assert clock.slept == []  # an address that never failed does not wait
    for _ in range(FREE_FAILURES - 1):
        throttle.note("10.0.0.1")
        await throttle.wait("10.0.0.1")
    assert clock.slept == []  # a mistyped token or two costs nothing
    for _ in range(8):
        throttle.note("10.0.0.1")
        await throttle.wait("10.0.0.1")
    assert clock.slept == [0.2, 0.4, 0.8, 1.6, 3.2, MAX_DELAY, MAX_DELAY, MAX_DELAY]
    await throttle.wait("10.0.0.2")
    assert len(clock.slept) == 8  # another address is not slowed


async def test_failures_are_forgotten_after_the_window(clock: Clock) -> None:
    throttle = LoginThrottle()
    for _ in range(FREE_FAILURES + 2):
        throttle.note("10.0.0.1")
    clock.now += WINDOW + 1
    assert throttle.penalty("10.0.0.1") == 0.0
    for _ in range(FREE_FAILURES):
        throttle.note("10.0.0.1")
    await throttle.wait("10.0.0.1")
    assert clock.slept == [0.2]


async def test_memory_is_bounded(clock: Clock) -> None:
    throttle = LoginThrottle()
    for n in range(MAX_ADDRESSES + 5):
        clock.now += 0.001
        for _ in range(FREE_FAILURES):
            throttle.note(f"host-{n}")
    assert throttle.penalty("host-0") == 0.0  # the oldest were forgotten
    assert throttle.penalty(f"host-{MAX_ADDRESSES + 4}") > 0


def test_connections_not_logged_in_are_counted_per_address_up_to_the_cap() -> None:
    from engine.throttle import Unauthenticated

    pending = Unauthenticated()
    assert [pending.enter("10.0.0.1", 2) for _ in range(3)] == [True, True, False]
    assert pending.enter("10.0.0.2", 2)  # another address has its own count
    pending.leave("10.0.0.1")
    assert pending.enter("10.0.0.1", 2)
    pending.leave("10.0.0.1")
    pending.leave("10.0.0.1")
    assert pending.count("10.0.0.1") == 0
