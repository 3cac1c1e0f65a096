"""``gatewatch engine``: run until SIGINT/SIGTERM, then end sessions and flush the store."""

from __future__ import annotations

import asyncio
import logging
import signal

from engine.config import Config
from engine.engine import Engine

log = logging.getLogger(__name__)


async def serve(config: Config) -> int:
    engine = Engine(config)
    await engine.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("engine ready (store %s)", config.engine.store)
    try:
        await stop.wait()
    finally:
        log.info("stopping: ending live sessions")
        await engine.stop()
    return 0
