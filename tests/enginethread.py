"""Run a Gatewatch engine in a background thread (uvloop, as in production) for tests."""

from __future__ import annotations

import asyncio
import threading

import uvloop

from engine.config import Config
from engine.engine import Engine


def run_engine(config: Config) -> tuple[Engine, asyncio.AbstractEventLoop, threading.Thread]:
    """Start an engine for ``config``; returns once it accepts connections (or raises what
    stopped it from starting)."""
    loop = uvloop.new_event_loop()
    engine = Engine(config)
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(engine.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="gatewatch-engine", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    return engine, loop, thread
