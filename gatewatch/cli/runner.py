"""Run a coroutine on uvloop when it is installed (a third more throughput), else asyncio."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coro)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    finally:
        # A Ctrl-C before the loop first ran ``coro`` (while uvloop loads, or the loop is
        # made) would leave it unawaited: Python prints "coroutine … was never awaited" on
        # the way out (issue 16). Closing a coroutine that ran is a no-op.
        coro.close()


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
