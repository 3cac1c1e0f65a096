"""The engine: one asyncio process that owns the store, the listeners and the live sessions."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

import asyncssh

from engine.approvals import Broker, BrokerError, recovery_ops
from engine.config import Config, Connection
from engine.control import ControlError, ControlServer, Peer
from engine.events import EventHub
from engine.guardrail import Guard
from engine.identity import CombinedIdentities, Identity
from engine.masking.policy import masking_key
from engine.notify import Webhook
from engine.pg.cancel import CancelKeys
from engine.pg.connection import PgContext, serve_client
from engine.pg.side import Side
from engine.recorder import Recorder
from engine.session import Session, SessionContext
from engine.ssh.hostkey import load_or_create_host_key
from engine.ssh.server import GatewayServer
from engine.ssh.upstream import CLIENT_SIDE_CIPHERS
from engine.tasks import spawn
from store import SqliteStore, open_store
from store import ops as O
from store import records as R

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: SqliteStore | None = None
        self.recorder: Recorder | None = None
        self.sessions: SessionContext | None = None  # what every session shares
        self.pg: PgContext | None = None
        self._ssh_servers: list[asyncssh.SSHAcceptor] = []
        self.listeners: dict[str, tuple[str, int]] = {}
        self._servers: list[asyncio.Server] = []
        self._sessions: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self.started = time.time()
        # Static tokens and SSH keys (offline use), and OIDC tokens when identity.oidc is set.
        self.identities = CombinedIdentities.from_config(config)
        self.guard = Guard(config.rules, config.guardrails)
        self.events = EventHub()
        self.broker: Broker | None = None
        self.webhook: Webhook | None = None
        self.control = ControlServer(
            config.engine.control_socket,
            {
                "hello": self._hello,
                "sessions": self._list_sessions,
                "approvals": self._approvals,
                "approve": self._approve,
                "deny": self._deny,
                "kill": self._kill,
            },
            authenticate=self._operator,
            may_operate=lambda who: self.broker is not None and self.broker.may_decide(who),
            events=self.events,
        )

    async def start(self) -> None:
        settings = self.config.engine
        self.store = open_store(settings.store, durability=settings.durability)
        self.recorder = Recorder(self.store, settings.durability)
        await self.identities.warm_up()  # a provider that is down shows in the log now
        await self._recover()
        self.broker = Broker(self.recorder, self.config.guardrails)
        self.broker.listeners.append(self.events.publish)
        if self.config.guardrails.webhook:
            self.webhook = Webhook(self.config.guardrails.webhook)
            self.broker.outside_listeners.append(self.webhook.approval_event)
        key = masking_key(settings.masking_key_env)
        grace = self.config.oidc.session_grace if self.config.oidc is not None else 0.0
        self.sessions = SessionContext(
            settings=settings, identities=self.identities, recorder=self.recorder,
            guard=self.guard, broker=self.broker, events=self.events,
            masking_rules=self.config.masking, masking_key=key, token_grace=grace)
        self.pg = PgContext(self.sessions, CancelKeys())
        loop = asyncio.get_running_loop()
        try:
            await self.control.start()
            for conn in self.config.connections:
                if conn.kind == "ssh":
                    await self._listen_ssh(conn)
                    continue
                if conn.tls is not None:
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(conn.tls.cert, conn.tls.key)
                    self.pg.tls[conn.name] = ctx

                def factory(conn: Connection = conn) -> Side:
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

    async def _listen_ssh(self, conn: Connection) -> None:
        assert self.sessions is not None and conn.ssh is not None
        key = load_or_create_host_key(conn.ssh.host_key or self.config.engine.store.with_name(
            f"ssh_host_{conn.name}_ed25519_key"))
        ctx, identities = self.sessions, self.identities
        acceptor = await asyncssh.create_server(
            lambda: GatewayServer(ctx, conn, identities), conn.listen_host, conn.listen_port,
            server_host_keys=[key], encoding=None, line_editor=False,
            agent_forwarding=False, x11_forwarding=False, allow_scp=False,
            login_timeout=self.config.engine.startup_timeout, server_version="Gatewatch",
            encryption_algs=list(CLIENT_SIDE_CIPHERS),
            reuse_address=True)
        self._ssh_servers.append(acceptor)
        host, port = acceptor.sockets[0].getsockname()[:2]
        self.listeners[conn.name] = (host, port)
        log.info("connection %s (ssh) listening on %s:%d", conn.name, host, port)

    def live(self) -> dict[str, Session]:
        """Every live session, PostgreSQL and SSH, by id."""
        return dict(self.sessions.live) if self.sessions is not None else {}

    def _accept(self, conn: Connection, side: Side) -> None:
        assert self.pg is not None
        task = spawn(serve_client(self.pg, conn, side), name=f"pg-client-{side.peer()}")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _recover(self) -> None:
        """Sessions left open by a crash are marked interrupted (ARCHITECTURE.md invariant 3)."""
        assert self.store is not None and self.recorder is not None
        stale = self.store.pending_approvals()
        if stale:
            await self.recorder.committed(recovery_ops(stale))
            log.warning("expired %d approval requests left pending by a previous run",
                        len(stale))
        left_open = self.store.interrupted_sessions()
        if not left_open:
            return
        now = O.utc(time.time())
        await self.recorder.committed([
            R.SessionClose(sid, ended_at=now, status="interrupted", end_reason="engine restarted")
            for sid in left_open])
        log.warning("marked %d sessions left open by a previous run as interrupted",
                    len(left_open))

    # --- control API ----------------------------------------------------------------------

    async def _operator(self, request: dict[str, Any]) -> Identity:
        token = request.get("token")
        if not isinstance(token, str) or not token:
            raise ControlError("hello needs the operator's token")
        who = await self.identities.identify(token)
        if who is None:
            raise ControlError("authentication failed")
        return who

    async def _hello(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "engine": "gatewatch",
            "config": str(self.config.path),
            "store": str(self.config.engine.store),
            "uptime_s": round(time.time() - self.started, 3),
            "listeners": {name: f"{h}:{p}" for name, (h, p) in self.listeners.items()},
        }

    async def _list_sessions(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        live = self.live().values()
        limit = _limit(request)
        recent = (self.store.sessions(limit, _before(request)) if self.store is not None
                  else [])
        return {"live": [session.describe().to_dict() for session in live], "recent": recent}

    async def _approvals(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        assert self.broker is not None and self.store is not None
        return {
            "pending": [r.describe() for r in self.broker.pending.values()],
            "recent": self.store.approvals(limit=_limit(request), before=_before(request)),
        }

    async def _approve(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        return await self._decide(peer, request, approve=True)

    async def _deny(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        return await self._decide(peer, request, approve=False)

    async def _decide(self, peer: Peer, request: dict[str, Any], *,
                      approve: bool) -> dict[str, Any]:
        assert self.broker is not None and peer.identity is not None
        reason = request.get("reason")
        try:
            req = await self.broker.decide(str(request.get("request")), peer.identity, approve,
                                           str(reason) if reason else None)
        except BrokerError as exc:
            raise ControlError(str(exc)) from exc
        return req.describe()

    async def _kill(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        assert peer.identity is not None
        wanted = str(request.get("session", ""))
        live = self.live()
        matches = [sid for sid in live if sid.startswith(wanted)] if wanted else []
        if len(matches) != 1:
            raise ControlError(f"no live session {wanted!r}" if not matches else
                               f"session id prefix {wanted!r} is ambiguous")
        session = live[matches[0]]
        reason = str(request.get("reason") or "no reason given")
        session.terminate(f"killed by {peer.identity.name}: {reason}",
                          f"the session was ended by operator {peer.identity.name}: {reason}",
                          status="killed")
        return {"session": matches[0], "killed_by": peer.identity.name, "reason": reason}

    async def stop(self) -> None:
        await self.control.stop()
        if self.broker is not None:
            self.broker.expire_all("engine stopped")
        if self.webhook is not None:
            self.webhook.close()
        for server in self._servers:
            server.close()
        for session in list(self.live().values()):
            session.terminate("engine stopped", "the gateway is shutting down")
        for acceptor in self._ssh_servers:
            acceptor.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=5)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for acceptor in self._ssh_servers:
            await acceptor.wait_closed()
        self._ssh_servers.clear()
        await asyncio.sleep(0)  # let ended SSH sessions hand their last records over
        if self.recorder is not None:
            await self.recorder.drain()
            self.recorder.close()
        if self.store is not None:
            self.store.close()
            self.store = None
        self._stopped.set()




def _limit(request: dict[str, Any]) -> int:
    value = request.get("limit", 100)
    if not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ControlError("limit must be a whole number from 1 to 10000")
    return value


def _before(request: dict[str, Any]) -> str | None:
    """Paging: the started_at/created_at of the last row of the previous page."""
    value = request.get("before")
    if value is not None and not isinstance(value, str):
        raise ControlError("before must be a time as the previous page gave it")
    return value
