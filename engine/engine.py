"""The engine: one asyncio process that owns the store, the listeners and the live sessions."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

from engine.config import Config
from engine.control import ControlServer
from engine.identity import StaticTokens
from engine.pg.cancel import CancelKeys
from engine.pg.connection import PgContext, serve_client
from engine.pg.side import Side
from engine.recorder import Recorder
from engine.tasks import spawn
from store import Op, SqliteStore, open_store
from store import ops as O

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: SqliteStore | None = None
        self.recorder: Recorder | None = None
        self.pg: PgContext | None = None
        self.listeners: dict[str, tuple[str, int]] = {}
        self._servers: list[asyncio.Server] = []
        self._sessions: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self.started = time.time()
        self.control = ControlServer(config.engine.control_socket, {
            "hello": self._hello,
            "sessions": self._live_sessions,
        })

    async def start(self) -> None:
        settings = self.config.engine
        self.store = open_store(settings.store, durability=settings.durability)
        self.recorder = Recorder(self.store, settings.durability)
        await self._recover()
        self.pg = PgContext(
            settings=settings,
            identities=StaticTokens(self.config.identities),
            recorder=self.recorder,
            cancel_keys=CancelKeys(),
        )
        loop = asyncio.get_running_loop()
        try:
            await self.control.start()
            for conn in self.config.connections:
                if conn.tls is not None:
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(conn.tls.cert, conn.tls.key)
                    self.pg.tls[conn.name] = ctx

                def factory(conn: object = conn) -> Side:
                    return Side(on_made=lambda side: self._accept(conn, side))

                server = await loop.create_server(
                    factory, conn.listen_host, conn.listen_port, reuse_address=True
                )
                self._servers.append(server)
                host, port = server.sockets[0].getsockname()[:2]
                self.listeners[conn.name] = (host, port)
                log.info("connection %s listening on %s:%d", conn.name, host, port)
        except BaseException:
            await self.stop()
            raise

    def _accept(self, conn: object, side: Side) -> None:
        assert self.pg is not None
        task = spawn(serve_client(self.pg, conn, side), name=f"pg-client-{side.peer()}")  # type: ignore[arg-type]
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _recover(self) -> None:
        """Sessions left open by a crash are marked interrupted (DESIGN.md invariant 3)."""
        assert self.store is not None and self.recorder is not None
        left_open = self.store.interrupted_sessions()
        if not left_open:
            return
        now = O.utc(time.time())
        ops = [
            Op(O.SESSION_CLOSE, sid, 0,
               {"ended_at": now, "status": "interrupted", "end_reason": "engine restarted"})
            for sid in left_open
        ]
        await self.recorder.committed(ops)
        log.warning("marked %d sessions left open by a previous run as interrupted",
                    len(left_open))

    def _hello(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "engine": "gatewatch",
            "config": str(self.config.path),
            "store": str(self.config.engine.store),
            "uptime_s": round(time.time() - self.started, 3),
            "listeners": {name: f"{h}:{p}" for name, (h, p) in self.listeners.items()},
        }

    def _live_sessions(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        live = self.pg.live.values() if self.pg is not None else []
        return [session.describe() for session in live]

    async def stop(self) -> None:
        await self.control.stop()
        for server in self._servers:
            server.close()
        if self.pg is not None:
            for session in list(self.pg.live.values()):
                session.terminate("engine stopped", "the gateway is shutting down")
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=5)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self.recorder is not None:
            await self.recorder.drain()
            self.recorder.close()
        if self.store is not None:
            self.store.close()
            self.store = None
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


