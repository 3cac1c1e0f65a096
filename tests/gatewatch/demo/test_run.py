"""What ``run_demo`` does around its pieces: a signal during a blocking step of the start lets
the step finish before the cleanup runs (so a server it started is seen and stopped)."""

from __future__ import annotations

import asyncio
import threading

from gatewatch.demo.run import _blocking


async def test_a_cancelled_blocking_step_finishes_before_the_cancellation_goes_on() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def step() -> str:
        started.set()
        release.wait(5)
        done.append("step")
        return "step"

    task = asyncio.create_task(_blocking(step))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()                  # still waiting for the step, not abandoning it
    release.set()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the cancellation was swallowed")
    assert done == ["step"]
