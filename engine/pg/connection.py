"""One client's PostgreSQL session: the only code of the front end that does I/O.

It runs the handshake (``startup``), then wires both ``Side`` protocols to a ``PgRelay`` by
callbacks: client bytes → relay → (commit the statements' records) → target; target bytes →
relay → client. While a commit is pending, reading from the client is paused, so order is kept
without a queue or a task per chunk. Flow control pauses the opposite side when a write buffer
fills up.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine import events as ev
from engine.approvals import ApprovalRequest, Broker
from engine.config import Connection, EngineSettings, MaskingRule
from engine.events import EventHub, SessionView
from engine.guardrail import Guard
from engine.identity import Identity, IdentityProvider
from engine.identity.expiry import EXPIRED, MESSAGE, watch_expiry
from engine.masking.pg import ResultMasker
from engine.masking.policy import SessionMasking, for_session
from engine.pg import codec, startup
from engine.pg.cancel import CancelKeys, UpstreamKey
from engine.pg.catalog import TableCatalog
from engine.pg.codec import MessageReader, ProtocolViolation
from engine.pg.relay import (
    Decision,
    Hold,
    PgRelay,
    StatementFinished,
    StatementStarted,
)
from engine.pg.side import PeerClosed, Side
from engine.recorder import Recorder
from engine.tasks import spawn
from store import Op, StoreError
from store import ops as O

log = logging.getLogger(__name__)


class _NoValues:
    """For sessions with column rules only: no value detector applies."""

    def mask(self, text: str) -> tuple[str, list[str]]:
        return text, []

    def screen(self, data: bytes) -> bool:
        return False


_NOTHING = _NoValues()

# Target login errors whose text helps the user and reveals nothing about the credential.
_RELAYED_LOGIN_ERRORS = ("3D000", "53300", "57P03", "55000")


@dataclass
class PgContext:
    """What every PostgreSQL session of the engine shares."""

    settings: EngineSettings
    identities: IdentityProvider
    recorder: Recorder
    cancel_keys: CancelKeys
    guard: Guard
    broker: Broker
    events: EventHub
    live: dict[str, PgConnection] = field(default_factory=dict)
    # Just-in-time access granted: (identity, connection, database) → until when.
    grants: dict[tuple[str, str, str], float] = field(default_factory=dict)
    tls: dict[str, ssl.SSLContext] = field(default_factory=dict)
    masking_rules: tuple[MaskingRule, ...] = ()
    masking_key: bytes = b""
    token_grace: float = 0.0  # a session outlives its OIDC token by this much
    # The table columns behind result columns, per (connection, database), for column rules.
    catalogs: dict[tuple[str, str], TableCatalog] = field(default_factory=dict)


def new_session_id() -> str:
    return uuid.uuid4().hex[:16]


class PgConnection:
    def __init__(self, ctx: PgContext, conn: Connection, client: Side) -> None:
        self.ctx = ctx
        self.conn = conn
        self.client = client
        self.upstream: Side | None = None
        self.session_id = new_session_id()
        self.identity: Identity | None = None
        self.params: dict[str, str] = {}
        self.started = time.time()
        self.relay = PgRelay(ctx.settings.max_message_size)
        self._recorded = False  # the session's open record is in the store
        self._ended = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cancel_pid: int | None = None
        self._statement_started: dict[int, float] = {}
        self._committing = False
        self._held: list[bytes] = []
        self.approval: ApprovalRequest | None = None  # the request this session waits on
        self._asking = False  # an approval request is being created
        self._canceled_while_asking = False
        self._auth_ok_sent = False
        self.masking: SessionMasking | None = None
        self.results: ResultMasker | None = None  # masking of results, notices and errors
        self.masked: Counter[str] = Counter()
        # Backend messages (and the statements they finish) held while the catalog is read.
        self._results_held: bytearray | None = None
        self._finished_held: list[StatementFinished] = []
        self._client_is_full = False
        self._catalog: TableCatalog | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def describe(self) -> SessionView:
        """What the control API shows of a live session."""
        ident = self.identity
        return SessionView(
            id=self.session_id, protocol="postgres", connection=self.conn.name,
            identity=ident.name if ident else None,
            identity_kind=ident.kind if ident else None,
            identity_vendor=ident.vendor if ident else None,
            client_addr=self.client.peer(),
            application_name=self.params.get("application_name"),
            database=self.params.get("database"), target=None,
            started_at=O.utc(self.started), statements=self.relay.statements,
            waiting_for=self.approval.id if self.approval is not None else None,
            masked=dict(self.masked),
            transaction_status=self.relay.transaction_status.decode(errors="replace"))

    # --- handshake ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._handshake_and_relay()
        except ProtocolViolation as exc:
            log.info("session %s: protocol violation from client: %s", self.session_id, exc)
            self._fatal(str(exc), exc.sqlstate)
            self._end("protocol violation", error=str(exc))
        except PeerClosed:
            self._end("client disconnected")
        except StoreError as exc:
            log.error("session %s refused: the store is not writable: %s", self.session_id, exc)
            self._fatal("the gateway cannot record sessions right now, so it admits none",
                        "58030", hint="Tell the operator: the gateway's store is not writable.")
            self._recorded = False
            self._end("store unwritable")
        except TimeoutError:
            log.info("session %s: client %s sent no startup in time", self.session_id,
                     self.client.peer())
            self._fatal("timeout expired during startup", "08006")
            self._end("startup timeout")
        except asyncio.CancelledError:
            self._end("engine stopped")
            raise
        except Exception:  # a bug in one session must not take the engine down
            log.exception("session %s failed", self.session_id)
            self._fatal("internal gateway error; the session is closed", "XX000")
            self._end("gateway error")

    async def _handshake_and_relay(self) -> None:
        settings = self.ctx.settings
        async with asyncio.timeout(settings.startup_timeout):
            hello = await startup.client_hello(self.client, self.ctx.tls.get(self.conn.name))
            if hello.cancel is not None:
                await self.ctx.cancel_keys.cancel(*hello.cancel)
                self.client.close()
                return
            self.params = hello.params
            user = hello.params["user"]
            token = await startup.read_password(self.client, settings.max_message_size)
        if not hello.tls:
            log.warning(
                "session %s: %s sent its token over a connection without TLS",
                self.session_id, user,
            )
        identity = await self.ctx.identities.authenticate(user, token)
        if identity is None:
            await self._reject("authentication failed", "28P01",
                               f'password authentication failed for user "{user}"')
            return
        self.identity = identity
        refusal = self._refusal(identity, hello.params["database"])
        if refusal is not None:
            await self._reject("not allowed", "28000", refusal)
            return
        await self._open_record("open")
        if self.conn.access_approval and not await self._access_granted(identity):
            return
        try:
            greeting = await startup.connect_upstream(
                self.conn.upstream, hello.params, settings.max_message_size
            )
        except startup.UpstreamUnavailable as exc:
            log.warning("session %s: connection %s: %s", self.session_id, self.conn.name, exc)
            if isinstance(exc, startup.UpstreamRefused) and exc.sqlstate in (
                _RELAYED_LOGIN_ERRORS
            ):
                self._fatal(exc.message, exc.sqlstate)
            else:
                self._fatal(
                    f'the target of connection "{self.conn.name}" is not available',
                    "08006",
                    hint="The gateway has logged the reason; try again later or tell the operator.",
                )
            self._end("upstream unavailable", error=str(exc))
            return
        self._start_relay(greeting)
        await self._done

    async def _access_granted(self, identity: Identity) -> bool:
        """Just-in-time access: ask for an approval unless a grant is still valid."""
        database = self.params.get("database", "")
        key = (identity.name, self.conn.name, database)
        if self.ctx.grants.get(key, 0.0) > time.time():
            return True
        decided: asyncio.Future[ApprovalRequest] = asyncio.get_running_loop().create_future()

        def on_decided(request: ApprovalRequest) -> None:
            if not decided.done():
                decided.set_result(request)

        req = await self.ctx.broker.request(
            session_id=self.session_id, requester=identity.name, connection=self.conn.name,
            statement=f"-- open sessions on {self.conn.name} as {identity.name} for "
                      f"{self.conn.access_grant / 60:g} min (database "
                      f"{self.params.get('database')})",
            rule="access-approval", reason="this connection opens only with an approval",
            on_decided=on_decided)
        self.approval = req
        # libpq takes notices only once authenticated: say so now, the rest follows approval.
        self.client.write(codec.auth_request(0))
        self._auth_ok_sent = True
        self.client.write(codec.notice_response(
            f"connection {self.conn.name} needs an approval before a session opens: request "
            f"{req.id} is waiting for an operator",
            hint=f"An operator approves it with: gatewatch approve {req.id}"))
        waits: set[asyncio.Future[Any]] = {decided, self.client.lost()}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        self.approval = None
        if not decided.done():
            self.ctx.broker.withdraw(req.id, "client disconnected while waiting")
            self._end("client disconnected")
            return False
        outcome = decided.result()
        if outcome.status == "approved":
            self.ctx.grants[key] = time.time() + self.conn.access_grant
            return True
        who = f" by {outcome.decided_by}" if outcome.status == "denied" else ""
        why = f": {outcome.decision_reason}" if outcome.decision_reason else ""
        self._fatal(f"access to connection {self.conn.name} {outcome.status}{who}{why}",
                    "28000")
        self._end(f"access {outcome.status}")
        return False

    def _refusal(self, identity: Identity, database: str) -> str | None:
        conn = self.conn
        allowed = (identity.name in conn.allow_identities) or bool(
            identity.groups & conn.allow_groups
        )
        if not allowed:
            return f'identity "{identity.name}" may not use connection "{conn.name}"'
        if conn.databases is not None and database not in conn.databases:
            return f'connection "{conn.name}" does not allow database "{database}"'
        return None

    async def _reject(self, reason: str, sqlstate: str, message: str) -> None:
        log.info("session %s: %s from %s: %s", self.session_id, reason, self.client.peer(),
                 message)
        self._fatal(message, sqlstate)
        await self._open_record("rejected", end_reason=reason)
        self.client.close()
        self._ended = True

    async def _open_record(self, status: str, end_reason: str | None = None) -> None:
        ident = self.identity
        fields: dict[str, Any] = {
            "protocol": "postgres",
            "connection": self.conn.name,
            "identity": ident.name if ident else self.params.get("user"),
            "identity_kind": ident.kind if ident else None,
            "identity_vendor": ident.vendor if ident else None,
            "client_addr": self.client.peer(),
            "application_name": self.params.get("application_name"),
            "database": self.params.get("database"),
            "started_at": O.utc(self.started),
            "status": status,
        }
        ops = [Op(O.SESSION_OPEN, self.session_id, 0, fields)]
        if end_reason is not None:
            ops.append(Op(O.SESSION_CLOSE, self.session_id, 0, {
                "ended_at": O.utc(time.time()), "status": status, "end_reason": end_reason}))
        await self.ctx.recorder.committed(ops)
        self._recorded = end_reason is None

    def _start_relay(self, greeting: startup.UpstreamGreeting) -> None:
        upstream = self.upstream = greeting.side
        host, port = self.conn.upstream.host, self.conn.upstream.port
        pid, secret = self.ctx.cancel_keys.issue(
            UpstreamKey(host, port, greeting.pid, greeting.secret), self._cancel_requested
        )
        assert self.identity is not None
        self.relay.guard = self.ctx.guard.for_session(
            self.conn.name, self.identity.name, self.identity.groups)
        masking = for_session(self.ctx.masking_rules, self.conn.name, self.identity.name,
                              self.identity.groups, self.ctx.masking_key)
        self.masking = masking
        if masking.active:
            catalog = None
            if masking.columns:
                database = self.params.get("database", "")
                catalog = self.ctx.catalogs.get((self.conn.name, database))
                if catalog is None:
                    catalog = self.ctx.catalogs[(self.conn.name, database)] = TableCatalog(
                        self.conn.upstream, database, self.ctx.settings.max_message_size)
                masking.sources = self._catalog = catalog
            self.results = ResultMasker(masking.values or _NOTHING,
                                        masking.column_rule if masking.columns else None,
                                        catalog.known if catalog is not None else None)
            # Column rules need every result described, also what a driver runs from a
            # prepared statement whose description it cached.
            self.relay.describe_portals = self.results.describes_portals = bool(masking.columns)
        self._cancel_pid = pid
        self.relay.transaction_status = greeting.transaction_status
        for tag, body in MessageReader(self.ctx.settings.max_message_size).feed(
                greeting.status_messages):
            if tag == ord("S"):
                name, _, rest = body.partition(b"\x00")
                self.relay.parameter_status(name.decode(errors="replace"),
                                            rest.rstrip(b"\x00").decode(errors="replace"))
        if self.relay.unreadable is not None:
            log.warning("session %s: %s; every statement will be refused", self.session_id,
                        self.relay.unreadable)
        self.ctx.live[self.session_id] = self
        self._expiry = watch_expiry(self.identity, self.ctx.token_grace, self._token_expired)
        self.ctx.events.publish(ev.SessionOpened(self.describe()))
        self.client.write(
            (b"" if self._auth_ok_sent else codec.auth_request(0))
            + greeting.status_messages
            + codec.backend_key_data(pid, secret)
            + codec.ready_for_query(greeting.transaction_status)
        )
        self.client.on_pause_writing = functools.partial(self._client_full, True)
        self.client.on_resume_writing = functools.partial(self._client_full, False)
        upstream.on_pause_writing = functools.partial(self._upstream_full, True)
        upstream.on_resume_writing = functools.partial(self._upstream_full, False)
        upstream.relay(self._server_data, self._upstream_lost)
        self.client.relay(self._client_data, self._client_lost)

    # --- relay ----------------------------------------------------------------------------

    def _client_data(self, data: bytes) -> None:
        if self._committing:
            self._held.append(data)
            return
        try:
            outcome = self.relay.client_data(data)
        except ProtocolViolation as exc:
            log.info("session %s: protocol violation from client: %s", self.session_id, exc)
            self._fatal(str(exc), exc.sqlstate)
            self._end("protocol violation", error=str(exc))
            return
        out, started, finished, reply, hold = outcome
        if not started:
            self._deliver(out, reply, hold)
            return
        sid = self.session_id
        ops = [
            Op(O.STATEMENT_START, sid, s.seq, {
                "protocol": s.protocol,
                "text": self._mask_text(s.text),
                "params": self._mask_text(s.params),
                "started_at": O.utc(s.started),
                "status": "running",
                "verdict": s.verdict,
                "rule": s.rule,
                "approval_id": s.approval,
            })
            for s in started
        ]
        # Reading goes on: what arrives meanwhile waits in _held, in order. Pausing the
        # transport would cost two system calls per statement for nothing.
        self._committing = True
        self.ctx.recorder.commit(
            ops, functools.partial(self._committed, out, started, ops, finished, reply, hold))

    def _committed(
        self, out: bytes, started: list[StatementStarted], ops: list[Op],
        finished: list[StatementFinished], reply: bytes, hold: Hold | None,
        exc: StoreError | None,
    ) -> None:
        self._committing = False
        if self._ended:
            return
        if exc is not None:
            # Fail closed: a statement that cannot be recorded does not run (invariant 1).
            log.error("session %s: statement not recorded, session ended: %s", self.session_id,
                      exc)
            self._fatal("the gateway could not record this statement, so it was not run",
                        "58030", hint="Tell the operator: the gateway's store is not writable.")
            self._end("store unwritable", error=str(exc))
            return
        refused = {f.seq for f in finished}
        for s in started:
            if s.seq not in refused:
                self._statement_started[s.seq] = s.started
        if self.ctx.events.active:
            for s, op in zip(started, ops, strict=True):
                self.ctx.events.publish(ev.StatementStarted(
                    self.session_id, s.seq, op.fields["text"],  # masked once, as recorded
                    s.protocol, s.verdict, s.rule, s.approval))
        if finished:
            for f in finished:
                self._statement_started[f.seq] = f.finished
            self._finish(finished)
        self._deliver(out, reply, hold)
        held, self._held = self._held, []
        for data in held:
            self._client_data(data)

    def _deliver(self, out: bytes, reply: bytes, hold: Hold | None) -> None:
        """What the relay decided for a chunk, once its statements are recorded."""
        if out and self.upstream is not None:
            self.upstream.write(out)
        if reply:
            if self._results_held is not None:
                # The gateway's own answer (a refused statement's error) comes after results
                # of earlier statements that wait for a catalog lookup, never before them.
                self._results_held += reply
            else:
                self.client.write(reply)
        if hold is not None:
            self._ask(hold)

    # --- approvals ------------------------------------------------------------------------

    def _ask(self, hold: Hold) -> None:
        self._asking = True
        spawn(self._request_approval(hold), name=f"approval-request-{self.session_id}")

    async def _request_approval(self, hold: Hold) -> None:
        assert self.identity is not None
        verdict = hold.judgement.verdict
        try:
            req = await self.ctx.broker.request(
                session_id=self.session_id, requester=self.identity.name,
                connection=self.conn.name, statement=self._mask_text(hold.text, count=False) or "",
                real_statement=hold.text, rule=verdict.rule, reason=verdict.reason,
                on_decided=self._decided)
        except StoreError as exc:
            log.error("session %s: approval request not recorded: %s", self.session_id, exc)
            self._asking = False
            self._resume(Decision(False, None, "the gateway could not record the approval "
                                  "request, so the statement was not run", "58030"))
            return
        self._asking = False
        if self._ended:
            self.ctx.broker.withdraw(req.id, "session ended")
            return
        self.approval = req
        if self._canceled_while_asking:  # the client's Ctrl-C came while we recorded it
            self._canceled_while_asking = False
            self._cancel_requested()
            return
        minutes = self.ctx.broker.settings.review_timeout / 60
        self.client.write(codec.notice_response(
            f'statement held for approval {req.id} (rule "{verdict.rule}": {verdict.reason});'
            f" waiting up to {minutes:g} min for an operator",
            hint=f"An operator approves it with: gatewatch approve {req.id}",
        ))

    def _decided(self, req: ApprovalRequest) -> None:
        self.approval = None
        if self._ended:
            return
        if req.status == "approved":
            self._resume(Decision(True, req.id))
            return
        if req.status == "denied":
            why = f": {req.decision_reason}" if req.decision_reason else ""
            message = f"statement denied by {req.decided_by}{why}"
        else:
            message = f"approval request {req.id} {req.status}: {req.decision_reason}"
        self._resume(Decision(False, req.id, message))

    def _resume(self, decision: Decision) -> None:
        self.relay.decide(decision)
        self._client_data(b"")

    def _cancel_requested(self) -> None:
        """A CancelRequest for this session: a held statement is withdrawn."""
        if self._asking:
            self._canceled_while_asking = True
            return
        req = self.approval
        if req is not None and not self._ended:
            self.approval = None
            self.ctx.broker.withdraw(req.id, "canceled by the client")
            self._resume(Decision(False, req.id, "canceling statement due to user request",
                                  "57014"))

    def _server_data(self, data: bytes) -> None:
        try:
            out, finished = self.relay.server_data(data)
        except ProtocolViolation as exc:
            self._target_broke_protocol(exc)
            return
        if self._results_held is not None:  # a catalog lookup is under way: keep the order
            self._results_held += out
            self._finished_held += finished
        else:
            self._deliver_results(out, finished)
        if self.relay.wants_input and not self._ended:
            self._client_data(b"")  # SQL that waited for the statements before it

    def _deliver_results(self, out: bytes, finished: list[StatementFinished]) -> None:
        """Mask ``out`` and send it to the client; record ``finished``. A result from a table
        the catalog does not know yet stops here: what comes before it is sent, the rest is
        held (and the target no longer read) until the lookup is done."""
        results = self.results
        if out and results is not None:
            try:
                masked, counts = results.rewrite(out)
            except ProtocolViolation as exc:
                self._target_broke_protocol(exc)
                return
            if counts:
                self._count(counts)
            if results.stopped_at is not None:
                self._results_held = bytearray(out[results.stopped_at:])
                self._finished_held = list(finished)
                if self.upstream is not None:
                    self.upstream.pause_reading()
                spawn(self._look_up_tables(results.missing),
                      f"pg session {self.session_id} catalog")
                if masked:
                    self.client.write(masked)
                return
            out = masked
        if finished:
            self._finish(finished)
        if out:
            self.client.write(out)

    async def _look_up_tables(self, tables: frozenset[int]) -> None:
        assert self._catalog is not None
        try:
            await self._catalog.resolve(tables)
        except Exception:  # resolve fails closed itself; a bug must not leave the session hung
            log.exception("session %s: catalog lookup failed", self.session_id)
            if not self._ended:
                self._fatal("the gateway could not check this result's columns", "XX000")
                self._end("catalog lookup failed")
            return
        held, finished = self._results_held, self._finished_held
        self._results_held, self._finished_held = None, []
        if self._ended or held is None:
            return
        self._deliver_results(bytes(held), finished)
        if self._results_held is None and not self._client_is_full and self.upstream is not None:
            self.upstream.resume_reading()
        if self.relay.wants_input and not self._ended:
            self._client_data(b"")

    def _target_broke_protocol(self, exc: ProtocolViolation) -> None:
        log.warning("session %s: the target broke the protocol: %s", self.session_id, exc)
        self._fatal("the target sent an invalid message; the session is closed", "08P01")
        self._end("upstream protocol violation", error=str(exc))

    def _finish(self, finished: list[StatementFinished]) -> None:
        events = self.ctx.events
        write = self.ctx.recorder.write
        sid = self.session_id
        started = self._statement_started
        # Each result the target ended (with its masking counts) belongs to the next statement
        # that finished with a result, in order: both come from the same backend messages.
        # Several results for one statement (a multi-statement Query) all go to it; a Bind
        # closed unexecuted at Sync, or a refused statement, had no result of its own.
        per: dict[int, Counter[tuple[str, str]]] = {}
        ended = self.results.ended if self.results is not None else None
        if ended:
            receivers = [i for i, f in enumerate(finished)
                         if f.status in ("ok", "error") and f.command != "BIND"]
            for i in receivers:
                if not ended:
                    break
                per[i] = ended.popleft()
            if receivers:
                last = per.setdefault(receivers[-1], Counter())
                while ended:
                    last.update(ended.popleft())
        for i, f in enumerate(finished):
            began = started.pop(f.seq, f.finished)
            counted = per.get(i)
            counts = self._count_keys(counted) if counted else None
            error = self._mask_text(f.error)  # it leaves the engine (events) and is recorded
            write(Op(O.STATEMENT_END, sid, f.seq, {
                "finished_at": O.utc(f.finished),
                "duration_ms": round((f.finished - began) * 1000, 3),
                "status": f.status,
                "command": f.command,
                "rows": f.rows,
                "sqlstate": f.sqlstate,
                "error": error,
                "masked": json.dumps(counts, sort_keys=True) if counts else None,
            }))
            if events.active:
                events.publish(ev.StatementFinished(sid, f.seq, f.status, f.rows, f.sqlstate,
                                                    error, counts or {}))

    # --- flow control ---------------------------------------------------------------------

    def _client_full(self, full: bool) -> None:
        """The client reads slower than the target answers: stop reading the target."""
        self._client_is_full = full
        if self.upstream is not None and (full or self._results_held is None):
            (self.upstream.pause_reading if full else self.upstream.resume_reading)()

    def _upstream_full(self, full: bool) -> None:
        """The target reads slower than the client sends (COPY FROM): stop reading the client."""
        (self.client.pause_reading if full else self.client.resume_reading)()

    # --- ending ---------------------------------------------------------------------------

    def _client_lost(self, exc: Exception | None) -> None:
        self._end("client quit" if self.relay.terminated else "client disconnected")

    def _upstream_lost(self, exc: Exception | None) -> None:
        if not self._ended:
            self._fatal("the connection to the target was lost", "08006")
        self._end("upstream lost")

    def terminate(self, reason: str, message: str, sqlstate: str = "57P01",
                  status: str = "closed") -> None:
        """End the session from outside (engine shutdown, an operator's kill)."""
        self._fatal(message, sqlstate)
        self._end(reason, status=status)

    def _token_expired(self) -> None:
        log.info("session %s: the token of %s expired", self.session_id,
                 self.identity.name if self.identity else "?")
        self.terminate(EXPIRED, MESSAGE, "57P01")

    def _fatal(self, message: str, sqlstate: str, hint: str | None = None) -> None:
        if not self._ended:
            self.client.write(codec.error_response(message, sqlstate, "FATAL", hint=hint))

    # --- masking ---------------------------------------------------------------------------

    def _count(self, counts: Counter[tuple[str, str]]) -> None:
        self.masked.update(self._count_keys(counts))

    def _count_keys(self, counts: Counter[tuple[str, str]]) -> dict[str, int]:
        """Counts by (rule or detector, column) as the store keeps them: "rule:detector/column"
        for a detector, "rule:column/column" for a column rule."""
        masking = self.masking
        assert masking is not None
        keyed: dict[str, int] = {}
        for (name, column), n in counts.items():
            key = masking.count_key(name) if name in masking.rule_of else f"{name}:column"
            key = f"{key}/{column}" if column else key
            keyed[key] = keyed.get(key, 0) + n
        return keyed

    def _mask_text(self, text: str | None, *, count: bool = True) -> str | None:
        """What is recorded of a statement (its text, parameters, error), and shown of it to
        operators, is masked too. ``count``: once per recorded text, not per showing."""
        masking = self.masking
        if text is None or masking is None or not masking.active or masking.values is None:
            return text
        masked, fired = masking.values.mask(text)
        if count:
            for name in fired:
                self.masked[masking.count_key(name) + "/recorded"] += 1
        return masked

    def _masked_json(self) -> str | None:
        masking = self.masking
        if masking is not None and masking.exempt_by:
            return json.dumps({f"{masking.exempt_by}:exempt": 1})
        return json.dumps(dict(self.masked), sort_keys=True) if self.masked else None

    def _end(self, reason: str, error: str | None = None, status: str = "closed") -> None:
        if self._ended:
            return
        self._ended = True
        self.ctx.live.pop(self.session_id, None)
        if self._expiry is not None:
            self._expiry.cancel()
        if self.approval is not None:
            self.ctx.broker.withdraw(self.approval.id, f"session ended: {reason}")
            self.approval = None
        if self._cancel_pid is not None:
            self.ctx.cancel_keys.release(self._cancel_pid)
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()
        if self._recorded:
            now = time.time()
            held, self._finished_held = self._finished_held, []
            if held:  # finished at the target; their results never reached the client
                self._finish(held)
            lost = [
                StatementFinished(seq, "lost", None, None, None, f"session ended: {reason}", now)
                for seq in self.relay.open_statements()
                if seq in self._statement_started
            ]
            self._finish(lost)
            self.ctx.recorder.write(Op(O.SESSION_CLOSE, self.session_id, 0, {
                "ended_at": O.utc(now), "status": status, "end_reason": reason,
                "masked": self._masked_json()}))
        if error:
            log.info("session %s ended: %s (%s)", self.session_id, reason, error)
        self.ctx.events.publish(ev.SessionClosed(self.session_id, status, reason,
                                                 dict(self.masked)))
        if not self._done.done():
            self._done.set_result(None)


async def serve_client(ctx: PgContext, conn: Connection, client: Side) -> None:
    """Entry point for one accepted connection."""
    await PgConnection(ctx, conn, client).run()
