"""``gatewatch engine``: run until SIGINT/SIGTERM, then end sessions and flush the store.
SIGHUP reads the policies file again (``engine.reload``).

With ``engine.workers`` above one (the default on a machine of several cores) this process is
the supervisor of that many engine processes (``engine/workers.py``); each of them, and a lone
engine, runs ``run_engine``.

The handlers are installed before ``Engine.start``: a SIGTERM while the engine starts (a
service manager stopping it at once, an operator's Ctrl-C while the store replays its journal)
would otherwise end the process on the spot, with listeners half open and the store not
closed. During the start a signal cancels it instead, and what was started is stopped.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from engine.config import Config
from engine.engine import Engine
from engine.node import Placement
from engine.tasks import spawn
from engine.workers import supervise

log = logging.getLogger(__name__)


async def serve(config: Config) -> int:
    if config.worker_count() > 1:
        return await supervise(config)
    return await run_engine(config)


async def run_engine(config: Config, placement: Placement | None = None,
                     ready: Callable[[Engine], None] | None = None,
                     before_listen: Callable[[], Awaitable[None]] | None = None) -> int:
    """One engine until a signal; ``ready`` is told once it takes sessions, and
    ``before_listen`` is awaited between its recovery and its first listener."""
    engine = Engine(config, placement, before_listen)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stop = asyncio.Event()
    starting = True

    def stop_signal() -> None:
        if starting and not stop.is_set():
            main.cancel()  # once: a second signal must not cut the stop of what started
        stop.set()

    def reload_signal() -> None:
        if starting:
            log.warning("SIGHUP while the engine starts: ignored (it reads the file now)")
            return
        spawn(engine.reload("SIGHUP"), name="policy-reload")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_signal)
    loop.add_signal_handler(signal.SIGHUP, reload_signal)
    try:
        try:
            await engine.start()
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            main.uncancel()
            log.info("stopped while starting")
            if engine.store is not None:  # cancelled before start's own clean-up could run
                await engine.stop()
            return 0
        starting = False
        log.info("engine ready (node %s, store %s)", engine.placement.node,
                 config.store_shown())
        if ready is not None:
            ready(engine)
        try:
            await stop.wait()
        finally:
            log.info("stopping: ending live sessions")
            await engine.stop()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
