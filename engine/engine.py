"""The engine: one asyncio process that owns the listeners and the live sessions, and writes the
store as one node (of one machine's workers, or of a fleet)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh

from engine.approvals import Broker, BrokerError, recovery_ops
from engine.audit_stream import AuditStream
from engine.config import Config, Connection
from engine.control import ControlError, ControlServer, Peer, resolve_id
from engine.events import ApprovalDecided, ApprovalEvent, EventHub
from engine.fleet import Fleet, FleetGrants, GrantKey
from engine.fleet import Handler as FleetHandler
from engine.guardrail import Guard
from engine.identity import CombinedIdentities, Identity
from engine.lockout import SCOPES, Lockout, LockoutError, new_lockout_id, parse_duration
from engine.masking.policy import masking_key
from engine.metrics import Metrics, MetricsServer, StreamStats
from engine.node import Placement
from engine.notify import Webhook
from engine.pg.cancel import CancelKeys
from engine.pg.connection import PgConnection, PgContext, serve_client
from engine.pg.side import Side
from engine.recorder import Recorder
from engine.reload import PolicyReloader, ReloadResult
from engine.session import Session, SessionContext
from engine.siblings import CancelListener, forward_cancel
from engine.ssh.hostkey import load_or_create_host_key
from engine.ssh.server import GatewayServer
from engine.ssh.upstream import CLIENT_SIDE_CIPHERS
from engine.tasks import spawn
from store import SqliteStore, open_store
from store import lockouts as stored_lockouts
from store import ops as O
from store import records as R

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: Config, placement: Placement | None = None,
                 before_listen: Callable[[], Awaitable[None]] | None = None) -> None:
        self.config = config
        self._before_listen = before_listen  # a worker waits for its siblings to recover
        # A lone engine is one node of one worker; a worker gets its place from its supervisor.
        self.placement = placement or Placement(config.node_name())
        self._cancel_listener: CancelListener | None = None
        self.fleet: Fleet | None = None
        self._fleet_cancels = (0.0, 0)  # (second, count): CancelRequests offered to the fleet
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
        # engine.metrics: counters fed by the recorder, served beside the listeners.
        self.metrics = (Metrics() if config.engine.metrics is not None and self.placement.metrics
                        else None)
        self.metrics_server: MetricsServer | None = None
        self.audit_stream: AuditStream | None = None
        self.reloader: PolicyReloader | None = None
        self._stopping = False
        # Requests decided lately, oldest first: a second decision says what became of one
        # before the store has it (records reach SQLite a moment after the journal).
        self._decided: dict[str, dict[str, Any]] = {}
        self.control = ControlServer(
            self.placement.control_socket or config.engine.control_socket,
            {
                "hello": self._hello,
                "sessions": self._list_sessions,
                "approvals": self._approvals,
                "approve": self._approve,
                "deny": self._deny,
                "kill": self._kill,
                "lockouts": self._lockouts,
                "unlock": self._unlock,
                "reload": self._reload,
                # A sibling worker's lock-out, put in force (lifted) here too (engine/fanout.py).
                "lockout.adopt": self._adopt_lockout,
                "lockout.forget": self._forget_lockout,
            },
            authenticate=self._operator,
            may_operate=lambda who: self.broker is not None and self.broker.may_decide(who),
            events=self.events,
        )

    async def start(self) -> None:
        settings = self.config.engine
        self.store = _open_store(self.config, self.placement.node)
        self.recorder = Recorder(self.store, settings.durability)
        self._observe(self.store, self.recorder)
        await self.identities.warm_up()  # a provider that is down shows in the log now
        await self._recover()
        self.broker = Broker(self.recorder, self.config.guardrails)
        self.broker.listeners.append(self.events.publish)
        self.broker.listeners.append(self._remember_decision)
        if self.config.guardrails.webhook:
            self.webhook = Webhook(self.config.guardrails.webhook)
            self.broker.outside_listeners.append(self.webhook.approval_event)
        # Workers hash with the key their supervisor chose once: equal values hash equally
        # whichever worker a client reached.
        key = self.placement.masking_key or masking_key(settings.masking_key_env)
        grace = self.config.oidc.session_grace if self.config.oidc is not None else 0.0
        self.sessions = SessionContext(
            settings=settings, identities=self.identities, recorder=self.recorder,
            guard=self.guard, broker=self.broker, events=self.events,
            masking_rules=self.config.masking, masking_key=key, token_grace=grace)
        self._load_lockouts()
        self.fleet = Fleet(self.store, self.recorder, self.placement.node,
                           heartbeat=settings.heartbeat, timeout=settings.node_timeout,
                           handlers=self._fleet_handlers())
        self.sessions.grants = FleetGrants(self._tell_grant)
        self.pg = PgContext(self.sessions, self._cancel_keys())
        if self.metrics is not None:
            self.metrics.pg_bytes = self._pg_bytes
        self.reloader = PolicyReloader(self.config, self.guard, self.broker, self.sessions,
                                       self.recorder, self.events)
        loop = asyncio.get_running_loop()
        try:
            if self._before_listen is not None:
                await self._before_listen()
            await self.control.start()
            if self.placement.worker:
                self._cancel_listener = CancelListener(
                    self.placement.cancel_paths[self.placement.index], self.pg.cancel_keys)
                await self._cancel_listener.start()
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

                sock = self.placement.sockets.get(conn.name)
                if sock is not None:  # the supervisor's, shared with the other workers
                    server = await loop.create_server(factory, sock=sock)
                else:
                    server = await loop.create_server(
                        factory, conn.listen_host, conn.listen_port, reuse_address=True
                    )
                self._servers.append(server)
                host, port = server.sockets[0].getsockname()[:2]
                self.listeners[conn.name] = (host, port)
                log.info("connection %s listening on %s:%d", conn.name, host, port)
            if self.metrics is not None and settings.metrics is not None:
                # a worker's on a private port: its supervisor serves the sum of them all
                host, port = (("127.0.0.1", 0) if self.placement.worker else
                              (settings.metrics.listen_host, settings.metrics.listen_port))
                self.metrics_server = MetricsServer(self.metrics, host, port, self._not_ready)
                await self.metrics_server.start()
            await asyncio.to_thread(self.store.register_node, {
                "listeners": {n: f"{h}:{p}" for n, (h, p) in self.listeners.items()},
                "control": str(self.control.path), "worker": self.placement.index,
                "workers": self.placement.count})
            self.fleet.start()
        except BaseException:
            await self.stop()
            raise

    def _cancel_keys(self) -> CancelKeys:
        """Keys for this worker's share of the key space; a sibling's key goes to it."""
        place = self.placement

        async def forward(slot: int, pid: int, secret: int) -> bool:
            return await forward_cancel(place.cancel_paths[slot], pid, secret)

        if not place.worker:
            return CancelKeys(elsewhere=self._cancel_elsewhere)
        return CancelKeys(place.index, place.count, forward, self._cancel_elsewhere)

    async def _cancel_elsewhere(self, pid: int, secret: int) -> bool:
        """A key none of this engine's workers knows: offer it to the fleet's other nodes (at
        most 20 a second: anyone can send CancelRequests, and each is a write per node)."""
        if self.fleet is None:
            return False
        second, count = self._fleet_cancels
        now = int(time.time())
        if now != second:
            second, count = now, 0
        if count >= 20:
            log.info("CancelRequest with an unknown key ignored (too many this second)")
            return False
        self._fleet_cancels = (second, count + 1)
        try:
            sent = await self.fleet.broadcast({"op": "cancel", "pid": pid, "secret": secret},
                                              but=self.placement.own_nodes())
        except Exception as exc:
            log.warning("could not offer a CancelRequest to the fleet: %s", exc)
            return False
        if not sent:
            log.info("CancelRequest with an unknown key ignored")
        return sent > 0

    def _observe(self, store: SqliteStore, recorder: Recorder) -> None:
        """Metrics and the audit stream listen to what the recorder commits (from the first
        record: recovery's too)."""
        stream = self.config.engine.audit_stream
        if self.metrics is not None:
            recorder.listeners.append(self.metrics.committed)
            self.metrics.backlog = lambda: store.pending
        if stream is not None:
            stats = StreamStats()
            if self.metrics is not None:
                self.metrics.stream = stats
            self.audit_stream = AuditStream(stream, recorder.write, stats)
            self.audit_stream.start()  # OSError: a sink that cannot be opened stops the start
            recorder.listeners.append(self.audit_stream.committed)

    def _not_ready(self) -> str | None:
        """Why the engine does not take sessions now (``/readyz``), or None."""
        if self._stopping:
            return "the engine is stopping"
        if self.store is None:
            return "the store is not open"
        if self.store.broken is not None:
            return f"the store is not writable: {self.store.broken}"
        down = [c.name for c in self.config.connections if c.name not in self.listeners]
        if down:
            return f"connection {down[0]} is not listening"
        return None

    async def reload(self, by: str) -> ReloadResult:
        """Read the policies file again (SIGHUP, ``gatewatch reload``): ``engine.reload``."""
        assert self.reloader is not None
        result = await self.reloader.reload(by)
        self.config = self.reloader.config
        return result

    async def _listen_ssh(self, conn: Connection) -> None:
        assert self.sessions is not None and conn.ssh is not None
        key = load_or_create_host_key(host_key_path(self.config, conn))
        ctx, identities = self.sessions, self.identities
        sock = self.placement.sockets.get(conn.name)
        where: dict[str, Any] = ({"sock": sock} if sock is not None else {
            "host": conn.listen_host, "port": conn.listen_port, "reuse_address": True})
        acceptor = await asyncssh.create_server(
            lambda: GatewayServer(ctx, conn, identities),
            server_host_keys=[key], encoding=None, line_editor=False,
            agent_forwarding=False, x11_forwarding=False, allow_scp=False,
            login_timeout=self.config.engine.startup_timeout, server_version="Gatewatch",
            encryption_algs=list(CLIENT_SIDE_CIPHERS), **where)
        self._ssh_servers.append(acceptor)
        host, port = acceptor.sockets[0].getsockname()[:2]
        self.listeners[conn.name] = (host, port)
        log.info("connection %s (ssh) listening on %s:%d", conn.name, host, port)

    def _pg_bytes(self) -> dict[tuple[str, str], int]:
        """PostgreSQL bytes relayed: by ended sessions, and so far by live ones."""
        if self.sessions is None:
            return {}
        totals = Counter(self.sessions.relayed)
        for session in self.sessions.live.values():
            if isinstance(session.transport, PgConnection):
                for direction, count in session.transport.relayed().items():
                    totals[(session.conn.name, direction)] += count
        return dict(totals)

    def live(self) -> dict[str, Session]:
        """Every live session, PostgreSQL and SSH, by id."""
        return dict(self.sessions.live) if self.sessions is not None else {}

    def _accept(self, conn: Connection, side: Side) -> None:
        assert self.pg is not None
        task = spawn(serve_client(self.pg, conn, side), name=f"pg-client-{side.peer()}")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _recover(self) -> None:
        assert self.store is not None and self.recorder is not None
        await recover(self.store, self.recorder)

    def _load_lockouts(self) -> None:
        """The lock-outs still in force: a restart does not lift them."""
        assert self.store is not None and self.sessions is not None
        now = time.time()
        for row in stored_lockouts.lockouts(self.store, in_force_at=O.utc(now), limit=10_000):
            self.sessions.lockouts.add(Lockout(
                row["id"], row["identity"], row["connection"], _epoch(row["until"]),
                _epoch(row["created_at"]), row["created_by"], row["reason"],
                row["session_id"]))
        if self.sessions.lockouts.active:
            log.info("%d lock-outs in force", len(self.sessions.lockouts.active))

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
            "node": self.placement.node,
            "config": str(self.config.path),
            # what the operator's TUI reads history from (a URL without its password: the
            # TUI's libpq environment or passfile gives it)
            "store": self.config.store_shown(),
            "uptime_s": round(time.time() - self.started, 3),
            "listeners": {name: f"{h}:{p}" for name, (h, p) in self.listeners.items()},
        }

    async def _list_sessions(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        live = [{**session.describe().to_dict(), "node": self.placement.node}
                for session in self.live().values()]
        limit = _limit(request)
        recent = (self.store.sessions(limit, _before(request)) if self.store is not None
                  else [])
        if self.fleet is not None:  # the other nodes' (as the store has them)
            live += self.fleet.remote_sessions(self.placement.own_nodes())
        return {"live": live, "recent": recent}

    async def _approvals(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        assert self.broker is not None and self.store is not None
        pending = [{**r.describe(), "node": self.placement.node}
                   for r in self.broker.pending.values()]
        if self.fleet is not None:
            pending += self.fleet.remote_pending(self.placement.own_nodes())
        return {
            "pending": pending,
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
            request_id = resolve_id("approval request", request.get("request"),
                                    self.broker.pending)
        except KeyError as exc:
            elsewhere = await self._decide_elsewhere(peer.identity, request, approve)
            if elsewhere is not None:
                return elsewhere
            raise ControlError(self._not_pending(str(exc.args[0]))) from None
        try:
            req = await self.broker.decide(request_id, peer.identity, approve,
                                           str(reason) if reason else None)
        except BrokerError as exc:
            raise ControlError(str(exc)) from exc
        return req.describe()

    def _remember_decision(self, event: ApprovalEvent) -> None:
        if isinstance(event, ApprovalDecided):
            self._decided[event.request["id"]] = {**event.request,
                                                  "decided_at": O.utc(time.time())}
            if len(self._decided) > 1000:
                del self._decided[next(iter(self._decided))]

    def _not_pending(self, wanted: str) -> str:
        """Why a request id names nothing pending: what became of it, if the engine or the
        store knows."""
        assert self.store is not None
        known = {r["id"]: r for r in self.store.approvals(limit=10_000)} | self._decided
        found = [r for rid, r in known.items() if rid.startswith(wanted)]
        if len(found) != 1:
            return f"no pending approval request {wanted!r} (see gatewatch approvals)"
        r = found[0]
        by = f" by {r['decided_by']}" if r.get("decided_by") else ""
        at = f" at {r['decided_at'][:19].replace('T', ' ')} UTC" if r.get("decided_at") else ""
        why = f": {r['decision_reason']}" if r.get("decision_reason") else ""
        return f"approval request {r['id']} is no longer pending: {r['status']}{by}{at}{why}"

    async def _kill(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        """End a live session; with ``lock_out``, first record a lock-out of its identity (of
        every connection, or with ``scope: connection`` of this one), so that the client's
        reconnection is refused."""
        assert peer.identity is not None and self.sessions is not None
        live = self.live()
        try:
            sid = resolve_id("session", request.get("session"), live)
        except KeyError as exc:
            elsewhere = await self._kill_elsewhere(peer.identity, request)
            if elsewhere is not None:
                return elsewhere
            raise ControlError(f"no live session {exc.args[0]!r} (see gatewatch sessions)"
                               ) from None
        session = live[sid]
        reason = str(request.get("reason") or "no reason given")
        who = peer.identity.name
        lockout = None
        if request.get("lock_out"):
            if session.identity is None:
                raise ControlError(f"session {sid} has no identity yet: nothing to lock out")
            lockout = await self._lock_out(who, session.identity.name, session.conn.name,
                                           request, reason, sid)
        told = f"the session was ended by operator {who}: {reason}"
        if lockout is not None:
            told += f"; {lockout.message()}"
        session.terminate(f"killed by {who}: {reason}", told, status="killed")
        now = time.time()
        answer: dict[str, Any] = {"session": sid, "killed_by": who, "reason": reason,
                                  "lockout": lockout.describe(now) if lockout else None}
        if lockout is not None:  # what the lock-out does not end: the operator decides
            answer["still_live"] = [
                s.id for s in self.live().values() if s.identity is not None
                and lockout.covers(s.identity.name, s.conn.name, now)]
        return answer

    async def _lock_out(self, who: str, identity: str, connection: str,
                        request: dict[str, Any], reason: str,
                        session_id: str | None) -> Lockout:
        """Record a lock-out, then put it in force (a lock-out is in the store before it
        refuses anyone, as every record is before it takes effect)."""
        assert self.sessions is not None and self.recorder is not None
        scope = str(request.get("scope") or "identity")
        if scope not in SCOPES:
            raise ControlError(f"scope {scope!r}: identity (every connection) or connection "
                               "(only the session's)")
        try:
            seconds = parse_duration(str(request["lock_out"]))
        except LockoutError as exc:
            raise ControlError(str(exc)) from None
        now = time.time()
        lockout = Lockout(new_lockout_id(), identity,
                          connection if scope == "connection" else None, now + seconds, now,
                          who, reason, session_id)
        await self.recorder.committed([R.LockoutSet(
            lockout.id, identity=identity, connection=lockout.connection,
            until=O.utc(lockout.until), created_at=O.utc(now), created_by=who, reason=reason,
            session_id=session_id)])
        self.sessions.lockouts.add(lockout)
        self._tell_fleet({"op": "lockout.adopt", "lockout": lockout.describe(now)})
        log.info("lock-out %s: %s kept out of %s until %s by %s", lockout.id, identity,
                 lockout.connection or "every connection", O.utc(lockout.until), who)
        return lockout

    async def _lockouts(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        assert self.sessions is not None and self.store is not None
        now = time.time()
        answer: dict[str, Any] = {
            "in_force": [lo.describe(now) for lo in self.sessions.lockouts.current(now)]}
        if request.get("all"):
            answer["recent"] = stored_lockouts.lockouts(self.store, limit=_limit(request))
        return answer

    async def _unlock(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        assert peer.identity is not None and self.sessions is not None
        assert self.recorder is not None
        lockouts = self.sessions.lockouts
        try:
            lid = resolve_id("lock-out", request.get("lockout"),
                             [lo.id for lo in lockouts.current()])
        except KeyError as exc:
            raise ControlError(f"no lock-out {exc.args[0]!r} in force (see gatewatch lockouts)"
                               ) from None
        reason = request.get("reason")
        await self.recorder.committed([R.LockoutLift(
            lid, lifted_at=O.utc(time.time()), lifted_by=peer.identity.name,
            lift_reason=str(reason) if reason else None)])
        lifted = lockouts.lift(lid)
        assert lifted is not None
        self._tell_fleet({"op": "lockout.forget", "lockout": lid})
        log.info("lock-out %s of %s lifted by %s", lid, lifted.identity, peer.identity.name)
        return {**lifted.describe(time.time()), "lifted_by": peer.identity.name,
                "lift_reason": reason}

    async def _adopt_lockout(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        """A lock-out another worker of this engine recorded: in force here too (it is already
        in the store, which this worker reads at its next start)."""
        assert self.sessions is not None
        try:
            lockout = _lockout(request.get("lockout"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError(f"lockout.adopt: not a lock-out ({exc})") from None
        self.sessions.lockouts.add(lockout)
        return {"adopted": lockout.id}

    async def _forget_lockout(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        """A lock-out another worker of this engine lifted (and recorded lifting)."""
        assert self.sessions is not None
        lifted = self.sessions.lockouts.lift(str(request.get("lockout")))
        return {"forgotten": lifted.id if lifted is not None else None}

    async def _reload(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        assert peer.identity is not None
        return (await self.reload(f"operator {peer.identity.name}")).to_dict()

    # --- the fleet ------------------------------------------------------------------------

    async def _decide_elsewhere(self, who: Identity, request: dict[str, Any],
                                approve: bool) -> dict[str, Any] | None:
        """A request pending on another node: that node decides it (the decision travels
        through the store's command channel); the request as the store then has it. None when
        no other node holds such a request."""
        if self.fleet is None:
            return None
        pending = {r["id"]: r for r in self.fleet.remote_pending(self.placement.own_nodes())}
        try:
            rid = resolve_id("approval request", request.get("request"), pending)
        except KeyError:
            return None
        node, before = pending[rid]["node"], pending[rid].get("approvals")
        reason = request.get("reason")
        await self.fleet.send(node, {"op": "decide", "request": rid, "approve": approve,
                                     "by": who.name, "groups": sorted(who.groups),
                                     "reason": str(reason) if reason else None})
        row = await self._until_stored(lambda: next(  # decided, or one more approval of several
            (r for r in self._stored_approvals() if r["id"] == rid
             and (r["status"] != "pending" or r.get("approvals") != before)), None))
        if row is None:
            raise ControlError(f"approval request {rid} is held by node {node}, which has not "
                               "decided it (it refuses a requester's own approval and anyone "
                               "who is not an approver there): see its log")
        approvals = [a for a in (row.get("approvals") or "").split(",") if a]  # as recorded
        return {**row, "approvals": approvals, "node": node}

    def _stored_approvals(self) -> list[dict[str, Any]]:
        return self.store.approvals(limit=1000) if self.store is not None else []

    async def _kill_elsewhere(self, who: Identity, request: dict[str, Any]
                              ) -> dict[str, Any] | None:
        """A session another node holds: that node ends it; with ``lock_out``, the lock-out is
        recorded here and put in force fleet-wide first."""
        if self.fleet is None:
            return None
        live = {r["id"]: r for r in self.fleet.remote_sessions(self.placement.own_nodes())}
        try:
            sid = resolve_id("session", request.get("session"), live)
        except KeyError:
            return None
        row, node = live[sid], live[sid]["node"]
        reason = str(request.get("reason") or "no reason given")
        lockout = None
        if request.get("lock_out"):
            if not row.get("identity"):
                raise ControlError(f"session {sid} has no identity yet: nothing to lock out")
            lockout = await self._lock_out(who.name, row["identity"], row["connection"],
                                           request, reason, sid)
        await self.fleet.send(node, {"op": "kill", "session": sid, "by": who.name,
                                     "reason": reason,
                                     "lockout": lockout.message() if lockout else None})
        ended = await self._until_stored(lambda: next(
            (s for s in self.store.sessions(1000) if s["id"] == sid
             and s["status"] != "open"), None) if self.store is not None else None)
        if ended is None:
            raise ControlError(f"session {sid} is held by node {node}, which has not ended it "
                               "yet: see its log")
        return {"session": sid, "killed_by": who.name, "reason": reason, "node": node,
                "lockout": lockout.describe(time.time()) if lockout else None}

    @staticmethod
    async def _until_stored(found: Callable[[], Any]) -> Any:
        """Poll the store for up to 5 s (another node's records reach it a moment after its
        journal); None when ``found`` never found it."""
        deadline = time.monotonic() + 5.0
        while True:
            value = found()
            if value is not None or time.monotonic() > deadline:
                return value
            await asyncio.sleep(0.05)

    def _fleet_handlers(self) -> dict[str, FleetHandler]:
        return {"decide": self._fleet_decide, "kill": self._fleet_kill,
                "lockout.adopt": self._fleet_adopt, "lockout.forget": self._fleet_forget,
                "grant": self._fleet_grant, "cancel": self._fleet_cancel}

    def _tell_fleet(self, command: dict[str, Any]) -> None:
        """Tell every other live node (this engine's sibling workers too), in the background."""
        if self.fleet is None:
            return
        fleet = self.fleet

        async def tell() -> None:
            try:
                await fleet.broadcast(command)
            except Exception as exc:
                log.warning("could not tell the fleet (%s): %s", command.get("op"), exc)

        spawn(tell(), name=f"fleet-{command.get('op')}")

    def _tell_grant(self, key: GrantKey, until: float) -> None:
        self._tell_fleet({"op": "grant", "key": list(key), "until": until})

    async def _fleet_decide(self, command: dict[str, Any]) -> None:
        assert self.broker is not None
        who = Identity(str(command["by"]), frozenset(map(str, command.get("groups") or [])),
                       source=f"node {command.get('from')}")
        await self.broker.decide(str(command["request"]), who, bool(command["approve"]),
                                 command.get("reason"))

    async def _fleet_kill(self, command: dict[str, Any]) -> None:
        session = self.live().get(str(command["session"]))
        if session is None:
            return  # it ended meanwhile
        who, reason = command.get("by"), command.get("reason")
        told = f"the session was ended by operator {who}: {reason}"
        if command.get("lockout"):
            told += f"; {command['lockout']}"
        session.terminate(f"killed by {who} (through node {command.get('from')}): {reason}",
                          told, status="killed")

    async def _fleet_adopt(self, command: dict[str, Any]) -> None:
        assert self.sessions is not None
        self.sessions.lockouts.add(_lockout(command.get("lockout")))

    async def _fleet_forget(self, command: dict[str, Any]) -> None:
        assert self.sessions is not None
        self.sessions.lockouts.lift(str(command.get("lockout")))

    async def _fleet_grant(self, command: dict[str, Any]) -> None:
        assert self.sessions is not None
        grants = self.sessions.grants
        identity, connection, database = (str(part) for part in command["key"])
        if isinstance(grants, FleetGrants):
            grants.adopt((identity, connection, database), float(command["until"]))

    async def _fleet_cancel(self, command: dict[str, Any]) -> None:
        assert self.pg is not None
        await self.pg.cancel_keys.cancel(int(command["pid"]), int(command["secret"]),
                                         forwarded=True)

    async def stop(self) -> None:
        self._stopping = True
        if self.fleet is not None:
            await self.fleet.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.control.stop()
        if self._cancel_listener is not None:
            await self._cancel_listener.stop()
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
        if self.audit_stream is not None:  # before the drain: its last gap record goes in
            await self.audit_stream.stop()
        if self.recorder is not None:
            await self.recorder.drain()
            self.recorder.close()
        if self.store is not None:
            self.store.close()
            self.store = None
        self._stopped.set()




async def recover(store: SqliteStore, recorder: Recorder) -> None:
    """Sessions a previous run of this node left open are marked interrupted, and its pending
    requests expire (ARCHITECTURE.md invariant 3): this node's only, never another's."""
    stale = store.pending_approvals()
    if stale:
        await recorder.committed(recovery_ops(stale))
        log.warning("expired %d approval requests left pending by a previous run (node %s)",
                    len(stale), store.node)
    left_open = store.interrupted_sessions()
    if not left_open:
        return
    now = O.utc(time.time())
    await recorder.committed([
        R.SessionClose(sid, ended_at=now, status="interrupted", end_reason="engine restarted")
        for sid in left_open])
    log.warning("marked %d sessions left open by a previous run as interrupted (node %s)",
                len(left_open), store.node)


async def recover_node(config: Config, node: str) -> None:
    """Open the store as ``node``, recover what a previous run of it left (its journal replayed
    by the store, then ``recover``), and close it, stopped cleanly: the supervisor does this for
    the engine's own node name, which its workers do not write (``engine/workers.py``)."""
    store = _open_store(config, node)
    try:
        recorder = Recorder(store, config.engine.durability)
        try:
            await recover(store, recorder)
            await recorder.drain()
        finally:
            recorder.close()
    finally:
        store.close()


def host_key_path(config: Config, conn: Connection) -> Path:
    """The SSH host key of ``conn``: the one given, or one made once beside the store (every
    worker of an engine loads the one its supervisor made)."""
    assert conn.ssh is not None
    return conn.ssh.host_key or config.engine.store.with_name(
        f"ssh_host_{conn.name}_ed25519_key")


def _open_store(config: Config, node: str) -> SqliteStore:
    """The store, opened as this node (a PostgreSQL store's node keeps its journal beside
    ``engine.local_store``)."""
    return open_store(config.store_location(), node=node,
                      durability=config.engine.durability,
                      local=config.engine.store if config.engine.store_url else None)


def _lockout(row: object) -> Lockout:
    """A lock-out as ``Lockout.describe`` gave it (from a sibling or another node)."""
    if not isinstance(row, dict):
        raise TypeError("a lock-out is an object")
    return Lockout(str(row["id"]), str(row["identity"]), row.get("connection"),
                   _epoch(row["until"]), _epoch(row["created_at"]), str(row["created_by"]),
                   str(row["reason"]), row.get("session_id"))


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


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
