"""The demo's engines: one node with the default workers, or (``--store postgres``) two nodes
sharing a PostgreSQL store in the demo's own cluster.

A node of the demo runs in the demo's process: a lone ``Engine`` when it has one worker, else
a ``Supervisor`` whose workers are processes of their own. Either way the demo needs the same
few things of it: start, stop, where it listens and where its metrics are.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import Config
from engine.engine import Engine
from engine.workers import Supervisor


class DemoNode:
    def __init__(self, config: Config, log: Path | None) -> None:
        """``log``: where workers' stderr goes while the TUI owns the terminal."""
        self.config = config
        count = config.worker_count()
        self._supervisor = Supervisor(config, count, log) if count > 1 else None
        self._engine = Engine(config) if self._supervisor is None else None

    @property
    def workers(self) -> int:
        return self._supervisor.count if self._supervisor is not None else 1

    async def start(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.start()
        else:
            assert self._engine is not None
            await self._engine.start()

    async def stop(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.stop()
        elif self._engine is not None:
            await self._engine.stop()

    @property
    def listeners(self) -> dict[str, tuple[str, int]]:
        if self._supervisor is not None:
            return self._supervisor.listeners
        assert self._engine is not None
        return self._engine.listeners

    @property
    def metrics(self) -> str | None:
        settings = self.config.engine.metrics
        if settings is None:
            return None
        host = f"[{settings.listen_host}]" if ":" in settings.listen_host else settings.listen_host
        return f"http://{host}:{settings.listen_port}/metrics"
