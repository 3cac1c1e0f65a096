"""``gatewatch engine``: run until SIGINT/SIGTERM, then end sessions and flush the store.
SIGHUP reads the policies file again (``engine.reload``)."""

from __future__ import annotations

import asyncio
import logging
import signal

from engine.config import Config
from engine.engine import Engine
from engine.tasks import spawn

log = logging.getLogger(__name__)


async def serve(config: Config) -> int:
    engine = Engine(config)
    await engine.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: spawn(engine.reload("SIGHUP"), name="policy-reload"))
    log.info("engine ready (store %s)", config.engine.store)
    try:
        await stop.wait()
    finally:
        log.info("stopping: ending live sessions")
        await engine.stop()
    return 0
