"""One client's PostgreSQL session: the only code of the front end that does I/O.

It runs the handshake (``startup``), hands who the user is, the records, approvals and
termination to the protocol-neutral ``engine.session.Session`` (this class is its
``Transport``), then wires both ``Side`` protocols to a ``PgRelay`` by callbacks: client bytes →
relay → (commit the statements' records) → target; target bytes → relay → ``ResultPath``
(masking) → client. While a commit is pending, what the client sends waits in order, so order
is kept without a queue or a task per chunk. Flow control pauses the opposite side when a write
buffer fills up.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from engine.config import Connection
from engine.guardrail import reading
from engine.guardrail.classify import catalog_later
from engine.masking.effects import EffectCheck
from engine.pg import codec, startup
from engine.pg.cancel import CancelKeys, UpstreamKey
from engine.pg.catalog import TableCatalog, taint_file
from engine.pg.codec import MessageReader, ProtocolViolation
from engine.pg.held import Held
from engine.pg.inforce import MEANING
from engine.pg.relay import Decision, Hold, PgRelay, StatementFinished, StatementStarted
from engine.pg.results import ResultPath
from engine.pg.side import PeerClosed, Side
from engine.pg.storedcode import StoredCode
from engine.session import AccessRefused, Session, SessionContext
from engine.tasks import spawn
from store import StoreError
from store.records import StatementStart

log = logging.getLogger(__name__)

# Target login errors whose text helps the user and reveals nothing about the credential.
_RELAYED_LOGIN_ERRORS = ("3D000", "53300", "57P03", "55000")


class _NoValues:
    """For sessions with column rules only: no value detector applies."""

    def mask(self, text: str) -> tuple[str, list[str]]:
        return text, []

    def screen(self, data: bytes) -> bool:
        return False


@dataclass
class PgContext:
    """What every PostgreSQL session of the engine shares (beyond every session's)."""

    sessions: SessionContext
    cancel_keys: CancelKeys
    tls: dict[str, ssl.SSLContext] = field(default_factory=dict)
    # The table columns behind result columns, per (connection, database), for column rules.
    catalogs: dict[tuple[str, str], TableCatalog] = field(default_factory=dict)


def _exists(catalog: TableCatalog, function: str) -> bool | None:
    """Whether the catalog knows a function of that name, or a relation (``rel:name``)
    (None: not read, or expired)."""
    if function.startswith("rel:"):
        relations = catalog.relations(function[4:])
        return None if relations is None else bool(relations)
    found = catalog.functions(function)
    return None if found is None else bool(found)


# Schemas whose functions, operators and casts are PostgreSQL's own.
_OWN_SCHEMAS = ("pg_catalog", "information_schema")


def _overloads(catalog: TableCatalog, name: str, fresh: bool) -> bool | None:
    """Whether the target has code of a user's under one of PostgreSQL's names: a function,
    aggregate or operator (``operator:=``) of that name outside pg_catalog, or a cast into
    the type (``type:t``) whose function is (``SessionGuard.overloads``). None: not read
    (within the cache's time to live when ``fresh``; else ever, and an expired entry is read
    again in the background for the statements after)."""
    found = catalog.functions(name)
    if found is None and not fresh:
        found = catalog.last_known_functions(name)
        if found is not None:
            catalog.look_up(name, function=True)
    if found is None:
        return None
    if not name.startswith("type:"):
        return any(f.schema not in _OWN_SCHEMAS for f in found)
    # A type's name means PostgreSQL's own type (a user's type of the same name, a table's
    # row type, is reached only with its schema, or once a schema comes before pg_catalog,
    # which counts anyway): only a user's cast into PostgreSQL's type runs a user's code.
    return any(f.schema in _OWN_SCHEMAS and any(not c.startswith("pg_catalog.")
                                                for c in f.source.split()) for f in found)


class PgConnection:
    def __init__(self, ctx: PgContext, conn: Connection, client: Side) -> None:
        self.ctx = ctx
        self.conn = conn
        self.client = client
        self.upstream: Side | None = None
        self.session = Session(ctx.sessions, conn, self, protocol="postgres",
                               client_addr=client.peer())
        self.relay = PgRelay(ctx.sessions.settings.max_message_size)
        self.path = ResultPath(self.session, client, None, None, broken=self._target_broke,
                               failed=self._lookup_failed, more_input=self._more_input)
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cancel_pid: int | None = None
        self._committing = False
        self._looking = False  # the catalog reads what a waiting statement names
        self._held: list[bytes] = []
        self.held = Held(self.session, client.write, self._resume)
        self._auth_ok_sent = False

    # --- Transport ------------------------------------------------------------------------

    def tell(self, message: str) -> None:
        if not self._auth_ok_sent:  # libpq takes notices only once authenticated
            self.client.write(codec.auth_request(0))
            self._auth_ok_sent = True
        self.client.write(codec.notice_response(message))

    def refuse(self, message: str, *, denied: bool = False) -> None:
        self._fatal(message, "28000" if denied else "57P01")

    def close(self, reason: str) -> None:
        self.held.forget()
        if self.session.recorded:
            self.path.drain_held()
            now = time.time()
            self.path.finish([
                StatementFinished(seq, "lost", None, None, None, f"session ended: {reason}", now)
                for seq in self.relay.open_statements() if self.session.is_running(seq)])
        for direction, count in self.relayed().items():
            self.ctx.sessions.relayed[(self.conn.name, direction)] += count
        if self._cancel_pid is not None:
            self.ctx.cancel_keys.release(self._cancel_pid)
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()
        if not self._done.done():
            self._done.set_result(None)

    def relayed(self) -> dict[str, int]:
        """Bytes this session relayed: from the client to the target and back."""
        return {"in": self.client.received, "out": self.client.sent}

    def details(self) -> dict[str, Any]:
        return {"statements": self.relay.statements,
                "transaction_status": self.relay.transaction_status.decode(errors="replace")}

    # --- handshake ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._handshake_and_relay()
        except ProtocolViolation as exc:
            log.info("session %s: protocol violation from client: %s", self.session.id, exc)
            self._fatal(str(exc), exc.sqlstate)
            self._end("protocol violation", error=str(exc))
        except PeerClosed:
            self._end("client disconnected")
        except StoreError as exc:
            log.error("session %s refused: the store is not writable: %s", self.session.id, exc)
            self._fatal("the gateway cannot record sessions right now, so it admits none",
                        "58030", hint="Tell the operator: the gateway's store is not writable.")
            self.session.recorded = False
            self._end("store unwritable")
        except TimeoutError:
            log.info("session %s: client %s sent no startup in time", self.session.id,
                     self.client.peer())
            self._fatal("timeout expired during startup", "08006")
            self._end("startup timeout")
        except AccessRefused:
            pass  # the session told the client and ended
        except asyncio.CancelledError:
            self._end("engine stopped")
            raise
        except Exception:  # a bug in one session must not take the engine down
            log.exception("session %s failed", self.session.id)
            self._fatal("internal gateway error; the session is closed", "XX000")
            self._end("gateway error")

    async def _handshake_and_relay(self) -> None:
        settings = self.ctx.sessions.settings
        async with asyncio.timeout(settings.startup_timeout):
            hello = await startup.client_hello(self.client, self.ctx.tls.get(self.conn.name))
            if hello.cancel is not None:
                await self.ctx.cancel_keys.cancel(*hello.cancel)
                self.client.close()
                return
            user = hello.params["user"]
            session = self.session
            session.database = hello.params["database"]
            session.application_name = hello.params.get("application_name")
            if not (hello.tls or self.conn.tls_optional or _loopback(self.client.peer())):
                # Refused before the token is asked for, so that it is never sent in clear.
                await self._reject(user, "no TLS", "28000",
                                   f'connection "{self.conn.name}" takes tokens only over TLS',
                                   hint="Connect with sslmode=require.", throttle=False)
                return
            token = await startup.read_password(self.client, settings.max_message_size)
        await session.login_delay()  # before the check: a quick answer says nothing
        identity = await self.ctx.sessions.identities.authenticate(user, token)
        if identity is None:
            await self._reject(user, "authentication failed", "28P01",
                               f'password authentication failed for user "{user}"')
            return
        refusal = session.admit(identity)
        if refusal is not None:
            await self._reject(user, "not allowed", "28000", refusal)
            return
        if session.guard is not None and any(catalog_later(v) for k, v in hello.params.items()
                                             if k.lower() == "search_path"):
            # A schema ahead of pg_catalog makes PostgreSQL's names in a DBA's code (a
            # trigger's ``<=``) a user's: a SET of it is held for review, a login cannot be.
            await self._reject(user, "search_path ahead of pg_catalog", "42501",
                               "a search_path that puts a schema ahead of pg_catalog cannot be "
                               "set at login", hint="SET it in the session (it is reviewed).",
                               throttle=False)
            return
        await session.record_open()
        if session.guard is not None and any(k.lower() == "search_path" for k in hello.params):
            session.guard.qualified_only = True  # a search_path of its own from the start
            session.guard.shadowed = any(catalog_later(v) for k, v in hello.params.items()
                                         if k.lower() == "search_path")
        session.go_live()  # operators see it (and may kill it) while it waits for access
        if not await self._access():
            return
        try:
            greeting = await startup.connect_upstream(
                self.conn.upstream, hello.params, settings.max_message_size)
        except startup.UpstreamUnavailable as exc:
            log.warning("session %s: connection %s: %s", session.id, self.conn.name, exc)
            if isinstance(exc, startup.UpstreamRefused) and exc.sqlstate in (
                    _RELAYED_LOGIN_ERRORS):
                self._fatal(exc.message, exc.sqlstate)
            else:
                self._fatal(
                    f'the target of connection "{self.conn.name}" is not available', "08006",
                    hint="The gateway has logged the reason; try again later or tell the operator.")
            self._end("upstream unavailable", error=str(exc))
            return
        if session.guard is not None and not await self._login_settings(greeting, hello.params):
            return
        self._start_relay(greeting)
        await self._done

    async def _login_settings(self, greeting: startup.UpstreamGreeting,
                              params: dict[str, str]) -> bool:
        """Read the settings the target gave the session at login that PostgreSQL does not
        report (a role's or database's default). The search_path: one ahead of pg_catalog
        makes PostgreSQL's names in a DBA's code a user's, as a SET of it would
        (``SessionGuard.shadowed``); any other than PostgreSQL's default makes the session's
        memory of its own code match qualified names only (``qualified_only``); one that
        cannot be read counts as both. A setting that changes how text reads
        (``transform_null_equals`` on …) makes every statement refused, as its SET would be;
        those that change what literals mean are shown to approvers. False: the target went
        away (the session ended)."""
        guard = self.session.guard
        assert guard is not None
        names = ["search_path", *sorted(MEANING)]
        try:
            async with asyncio.timeout(self.conn.upstream.connect_timeout):
                values = await startup.read_settings(
                    greeting.side, names, self.ctx.sessions.settings.max_message_size)
        except (startup.UpstreamUnavailable, TimeoutError, PeerClosed, OSError) as exc:
            greeting.side.close()
            log.warning("session %s: connection %s: reading the search_path: %s",
                        self.session.id, self.conn.name, exc)
            self._fatal(f'the target of connection "{self.conn.name}" is not available',
                        "08006", hint="The gateway has logged the reason; try again later "
                        "or tell the operator.")
            self._end("upstream unavailable", error=str(exc))
            return False
        self.relay.login_settings(params, {n: v for n, v in (values or {}).items()
                                           if n != "search_path"})
        why = reading.unsafe_change({n: v for n, v in (values or {}).items()
                                     if n != "search_path"})
        if why is not None and self.relay.unreadable is None:
            self.relay.unreadable = f"the session's role or database default {why}"
        if any(k.lower() == "search_path" for k in params):
            return True  # its own, judged at login
        value = None if values is None else values.get("search_path")
        if value is None or value.replace(" ", "") != '"$user",public':
            guard.qualified_only = True  # not PostgreSQL's default (pg_temp first, say)
        guard.shadowed = guard.shadowed or catalog_later(value)  # None: any may come first
        return True

    async def _access(self) -> bool:
        """Just-in-time access, given up when the client leaves while it waits."""
        waiting = spawn(self.session.access(), name=f"pg-access-{self.session.id}")
        lost = self.client.lost()
        await asyncio.wait({waiting, lost}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()  # withdraws the request
            self._end("client disconnected")
            return False
        waiting.result()  # AccessRefused: the session is over
        return True

    async def _reject(self, user: str, reason: str, sqlstate: str, message: str, *,
                      hint: str | None = None, throttle: bool = True) -> None:
        log.info("session %s: %s from %s: %s", self.session.id, reason, self.client.peer(),
                 message)
        if throttle:
            self.session.login_failed()
        self._fatal(message, sqlstate, hint=hint)
        await self.session.record_open(user=user, rejected=reason)
        self.client.close()

    def _catalog(self) -> TableCatalog:
        """The catalog cache of this connection's database, shared by its sessions."""
        key = (self.conn.name, self.session.database or "")
        catalog = self.ctx.catalogs.get(key)
        if catalog is None:
            catalog = self.ctx.catalogs[key] = TableCatalog(
                self.conn.upstream, key[1], self.ctx.sessions.settings.max_message_size,
                taint_file=taint_file(self.ctx.sessions.settings.store))
        return catalog

    def _start_relay(self, greeting: startup.UpstreamGreeting) -> None:
        session = self.session
        upstream = self.upstream = self.path.upstream = greeting.side
        host, port = self.conn.upstream.host, self.conn.upstream.port
        pid, secret = self.ctx.cancel_keys.issue(
            UpstreamKey(host, port, greeting.pid, greeting.secret), self.held.cancel)
        self._cancel_pid = pid
        self.relay.guard = session.guard
        masking = session.masking
        masked = masking is not None and masking.active and bool(masking.columns)
        if session.guard is not None and (masked or session.guard.counts):
            # Triggers, rules, views: code a rows_over count follows (engine.pg.storedcode).
            # Where masking keeps the catalog it checks it after every statement; elsewhere
            # the guard has what it does not know read in the background.
            cache = self._catalog()
            session.guard.stored_code = StoredCode(cache, None if masked else cache.look_up)
            session.guard.function_exists = functools.partial(_exists, cache)
            session.guard.overloads = functools.partial(_overloads, cache)
        if masking is not None and masking.active:
            catalog = None
            if masking.columns:
                catalog = self._catalog()
                masking.sources = self.path.catalog = catalog
            results = self.path.mask_with(masking, masking.values or _NoValues(), catalog,
                                          self.relay.encoding)
            results.value_budget = self.ctx.sessions.settings.masking_value_budget
            if results.flow is not None and session.guard is not None:
                # Effects other sessions observe, computed from a masked value, are refused
                # before the statement runs (results cannot hide them).
                session.guard.masked_effects = EffectCheck(results.flow,
                                                           masking.masked_source)
            # Masking needs every result described, also what a driver runs from a prepared
            # statement whose description it cached: the columns for column rules, the
            # formats (binary values are decoded by type) for the detectors.
            self.relay.describe_portals = results.describes_portals = True
            # The gateway's own errors among the target's answers pass the masker untouched.
            self.relay.marks_own = True
        self.relay.transaction_status = greeting.transaction_status
        for tag, body in MessageReader(self.ctx.sessions.settings.max_message_size).feed(
                greeting.status_messages):
            if tag == ord("S"):
                name, _, rest = body.partition(b"\x00")
                self.relay.parameter_status(name.decode(errors="replace"),
                                            rest.rstrip(b"\x00").decode(errors="replace"))
        if self.relay.unreadable is not None:
            log.warning("session %s: %s; every statement will be refused", session.id,
                        self.relay.unreadable)
        self.client.write(
            (b"" if self._auth_ok_sent else codec.auth_request(0))
            + greeting.status_messages
            + codec.backend_key_data(pid, secret)
            + codec.ready_for_query(greeting.transaction_status))
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
            out, started, finished, reply, hold = self.relay.client_data(data)
        except ProtocolViolation as exc:
            log.info("session %s: protocol violation from client: %s", self.session.id, exc)
            self._fatal(str(exc), exc.sqlstate)
            self._end("protocol violation", error=str(exc))
            return
        if not started:
            self._deliver(out, reply, hold)
            return
        record = self.session.statement_record
        ops = [record(s.seq, s.text, protocol=s.protocol, params=s.params, verdict=s.verdict,
                      rule=s.rule, approval=s.approval, at=s.started) for s in started]
        # Reading goes on: what arrives meanwhile waits in _held, in order. Pausing the
        # transport would cost two system calls per statement for nothing.
        self._committing = True
        self.ctx.sessions.recorder.commit(ops, functools.partial(
            self._committed, out, started, ops, finished, reply, hold))

    def _committed(self, out: bytes, started: list[StatementStarted],
                   ops: list[StatementStart],
                   finished: list[StatementFinished], reply: bytes, hold: Hold | None,
                   exc: StoreError | None) -> None:
        self._committing = False
        if self.session.ended:
            return
        if exc is not None:
            # Fail closed: a statement that cannot be recorded does not run (invariant 1).
            log.error("session %s: statement not recorded, session ended: %s",
                      self.session.id, exc)
            self._fatal("the gateway could not record this statement, so it was not run",
                        "58030", hint="Tell the operator: the gateway's store is not writable.")
            self._end("store unwritable", error=str(exc))
            return
        refused = {f.seq: f.finished for f in finished}
        for s, op in zip(started, ops, strict=True):
            self.session.running(op, refused.get(s.seq, s.started))
        if finished:
            self.path.finish(finished)
        self._deliver(out, reply, hold)
        held, self._held = self._held, []
        for data in held:
            self._client_data(data)

    def _deliver(self, out: bytes, reply: bytes, hold: Hold | None) -> None:
        """What the relay decided for a chunk, once its statements are recorded."""
        wire = self.relay.wire(out)  # with the gateway's own messages (rows_over counts)
        if wire and self.upstream is not None:
            if out:
                self.path.sent(out)
            self.upstream.write(wire)
        if reply:
            self.path.reply(reply)
        if hold is not None:
            self.held.ask(hold)
        if self.relay.lookup is not None and not self._looking:
            self._looking = True
            spawn(self._look_up(self.relay.lookup), f"session {self.session.id} catalog look-up")

    async def _look_up(self, names: frozenset[str]) -> None:
        """Have the catalog read relations a waiting statement names, then go on with it
        (``PgRelay.lookup``). A read that fails leaves them unknown: counted as carrying
        code (``SessionGuard._stored_code_counted``)."""
        try:
            await self._catalog().resolve_names(
                frozenset(n for n in names if not n.startswith("fn:")),
                frozenset(n[3:] for n in names if n.startswith("fn:")))
        finally:
            self._looking = False
            if self.session.guard is not None:
                self.session.guard.looked(names)
            self.relay.lookup = None
        if not self.session.ended:
            self._client_data(b"")

    def _server_data(self, data: bytes) -> None:
        try:
            out, finished = self.relay.server_data(data)
        except ProtocolViolation as exc:
            self._target_broke(exc)
            return
        ours = self.relay.upstream_data()  # ending a count of rows (rowcount)
        if ours and self.upstream is not None:
            self.upstream.write(ours)
        late = self.relay.seen_late()  # a counted write that stands: its results are masked
        if late:
            self.path.sent(late)
        self.path.own_errors += self.relay.own_errors
        self.relay.own_errors = 0
        self.path.deliver(out, finished)
        self._more_input()

    def _more_input(self) -> None:
        if self.relay.wants_input and not self.session.ended:
            self._client_data(b"")  # SQL that waited for the statements before it

    def _resume(self, decision: Decision) -> None:
        self.relay.decide(decision)
        self._client_data(b"")

    # --- flow control ---------------------------------------------------------------------

    def _client_full(self, full: bool) -> None:
        """The client reads slower than the target answers: stop reading the target."""
        self.path.client_full = full
        if self.upstream is not None and (full or self.path.held is None):
            (self.upstream.pause_reading if full else self.upstream.resume_reading)()

    def _upstream_full(self, full: bool) -> None:
        """The target reads slower than the client sends (COPY FROM): stop reading the client."""
        (self.client.pause_reading if full else self.client.resume_reading)()

    # --- ending ---------------------------------------------------------------------------

    def _client_lost(self, exc: Exception | None) -> None:
        self._end("client quit" if self.relay.terminated else "client disconnected")

    def _upstream_lost(self, exc: Exception | None) -> None:
        if self.relay.terminated:
            # The client sent Terminate, the target closed on it: that close may be seen
            # before the client's own (under load it was recorded as "upstream lost").
            self._end("client quit")
            return
        if not self.session.ended:
            self._fatal("the connection to the target was lost", "08006")
        self._end("upstream lost")

    def _target_broke(self, exc: ProtocolViolation) -> None:
        log.warning("session %s: the target broke the protocol: %s", self.session.id, exc)
        self._fatal("the target sent an invalid message; the session is closed", "08P01")
        self._end("upstream protocol violation", error=str(exc))

    def _lookup_failed(self, message: str) -> None:
        if not self.session.ended:
            self._fatal(message, "XX000")
            self._end("catalog lookup failed")

    def _fatal(self, message: str, sqlstate: str, hint: str | None = None) -> None:
        if not self.session.ended:
            self.client.write(codec.error_response(message, sqlstate, "FATAL", hint=hint))

    def _end(self, reason: str, error: str | None = None, status: str = "closed") -> None:
        if error and not self.session.ended:
            log.info("session %s ended: %s (%s)", self.session.id, reason, error)
        self.session.end(reason, status)


def _loopback(peer: str) -> bool:
    """Whether a client address ("host:port") is on this host's loopback."""
    try:
        return ipaddress.ip_address(peer.rpartition(":")[0].strip("[]")).is_loopback
    except ValueError:
        return False


async def serve_client(ctx: PgContext, conn: Connection, client: Side) -> None:
    """Entry point for one accepted connection."""
    await PgConnection(ctx, conn, client).run()
