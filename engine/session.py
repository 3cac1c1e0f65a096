"""One session, whatever the protocol: the piece both front ends share so that they cannot drift.

A front end (``engine.pg.connection``, ``engine.ssh.session``) does only its protocol's I/O and
hands the rest to a ``Session``: who the user is and whether they may use the connection
(allow-lists, just-in-time access), the session's open and close records, masking of the texts
it records and their counts, approval requests and the wait for them, the events operators
watch, and ending the session from outside (``terminate``). The front end gives the session a
``Transport``: how to tell its client something, how to refuse it, how to close it.

Records go through the ``Recorder`` (committed before anything reaches a target:
ARCHITECTURE.md invariant 1); events through the ``EventHub`` (never blocking).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.approvals import ApprovalRequest, Broker
from engine.config import Connection, EngineSettings, MaskingRule
from engine.events import (
    EventHub,
    SessionClosed,
    SessionOpened,
    SessionView,
    SessionWaiting,
    StatementFinished,
    StatementStarted,
)
from engine.guardrail import Guard
from engine.guardrail.guard import SessionGuard
from engine.identity import Identity, IdentityProvider
from engine.identity.expiry import EXPIRED, MESSAGE, watch_expiry
from engine.lockout import Lockouts
from engine.masking.lineage import Source
from engine.masking.policy import SessionMasking, for_session
from engine.masking.statements import (
    PASSWORD_MASK,
    TIED,
    mask_statement,
    names_any,
    runs_unseen,
)
from engine.recorder import Recorder
from engine.tasks import spawn
from engine.throttle import LoginThrottle, Unauthenticated
from store import ops as O
from store import records as R

_NAMED_KEPT = 256  # statement texts whose naming of masked columns (masking) is kept
_KEPT_TEXT = 4096  # longer statement texts are masked again at each execution
log = logging.getLogger(__name__)


class Transport(Protocol):
    """What a front end lets the session core do to its client."""

    def tell(self, message: str) -> None:
        """A notice the user sees, the session going on (PostgreSQL NoticeResponse, SSH
        stderr)."""

    def refuse(self, message: str, *, denied: bool = False) -> None:
        """The session ends: say why (PostgreSQL FATAL ErrorResponse, SSH disconnect).
        ``denied``: access was refused, as opposed to a session ended from outside."""

    def close(self, reason: str) -> Awaitable[None] | None:
        """The session ends (once): record what the protocol still has open (statements
        lost with the connection), release its connections. What it returns, if anything,
        is awaited before the session's close record is written (SSH: output still being
        recorded)."""

    def details(self) -> dict[str, Any]:
        """The protocol's own fields of ``SessionView`` (statements run, channels...)."""


@dataclass
class SessionContext:
    """What every session of the engine shares, PostgreSQL and SSH alike."""

    settings: EngineSettings
    identities: IdentityProvider
    recorder: Recorder
    guard: Guard
    broker: Broker
    events: EventHub
    live: dict[str, Session] = field(default_factory=dict)
    # Just-in-time access granted: (identity, connection, database) → until when.
    grants: dict[tuple[str, str, str], float] = field(default_factory=dict)
    masking_rules: tuple[MaskingRule, ...] = ()
    masking_key: bytes = b""
    token_grace: float = 0.0  # a session outlives its OIDC token by this much
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    unauthenticated: Unauthenticated = field(default_factory=Unauthenticated)
    # PostgreSQL bytes relayed by ended sessions, by (connection, direction): the metrics add
    # the live sessions' own counts at scrape time (nothing on the data path but a sum).
    relayed: Counter[tuple[str, str]] = field(default_factory=Counter)
    lockouts: Lockouts = field(default_factory=Lockouts)  # operators' lock-outs in force


class AccessRefused(Exception):
    """Just-in-time access was denied, expired or withdrawn: the message says which."""


def new_session_id() -> str:
    return uuid.uuid4().hex[:16]


def may_use(conn: Connection, identity: Identity, database: str | None = None) -> str | None:
    """Why ``identity`` may not use ``conn`` (and ``database``), or None when it may."""
    if identity.name not in conn.allow_identities and not identity.groups & conn.allow_groups:
        return f'identity "{identity.name}" may not use connection "{conn.name}"'
    if database is not None and conn.databases is not None and database not in conn.databases:
        return f'connection "{conn.name}" does not allow database "{database}"'
    return None


class Session:
    def __init__(self, ctx: SessionContext, conn: Connection, transport: Transport, *,
                 protocol: str, client_addr: str, application_name: str | None = None,
                 database: str | None = None, target: str | None = None,
                 session_id: str | None = None) -> None:
        self.ctx = ctx
        self.conn = conn
        self.transport = transport
        self.protocol = protocol
        self.id = session_id or new_session_id()
        self.client_addr = client_addr
        self.application_name = application_name
        self.database = database
        self.target = target
        self.started = time.time()
        self.identity: Identity | None = None
        self.guard: SessionGuard | None = None
        self.masking: SessionMasking | None = None
        self.masked: Counter[str] = Counter()  # "rule:detector[/column]" → values masked
        self._named: dict[str, bool] = {}  # statement text → whether it names a masked column
        # statement text → (the masking it was masked with, as recorded, what fired)
        self._statements: dict[str, tuple[SessionMasking | None, bool, str, list[str]]] = {}
        # statement text → the catalog's state when it was found not to reach a masked
        # column through code it does not show (``runs_unseen``)
        self._unseen_clear: dict[str, int] = {}
        self.waiting: list[str] = []  # approval requests the session waits on, oldest first
        self._decisions: dict[str, asyncio.Future[ApprovalRequest]] = {}
        self.recorded = False  # the open record is in the store: a close record follows
        self.ended = False
        self.refused: tuple[str, str] | None = None  # admission refused: (recorded, told)
        self._ending: tuple[str, str] = ("", "")  # why the session ended, and its status
        self._expiry: asyncio.TimerHandle | None = None
        self._started: dict[int, float] = {}  # statements recorded as running → when

    # --- identity and admission -----------------------------------------------------------

    def admit(self, identity: Identity) -> str | None:
        """Take ``identity`` for this session if it may use the connection; else why not."""
        self.identity = identity  # who tried, also when refused: the record says so
        refusal = may_use(self.conn, identity, self.database)
        if refusal is not None:
            self.refused = ("not allowed", refusal)
            return refusal
        lockout = self.ctx.lockouts.find(identity.name, self.conn.name)
        if lockout is not None:
            self.refused = (f"locked out ({lockout.id})", lockout.message())
            return self.refused[1]
        self.guard = self.ctx.guard.for_session(self.conn.name, identity.name, identity.groups)
        self.masking = for_session(self.ctx.masking_rules, self.conn.name, identity.name,
                                   identity.groups, self.ctx.masking_key)
        return None

    async def login_delay(self) -> None:
        """Before the token of a login is checked: the wait its address has earned by failing
        (``engine.throttle``)."""
        await self.ctx.throttle.wait(self.client_addr.rpartition(":")[0])

    def login_failed(self) -> None:
        self.ctx.throttle.note(self.client_addr.rpartition(":")[0])

    async def record_open(self, *, user: str | None = None,
                          rejected: str | None = None) -> None:
        """The session's open record, committed. ``rejected``: the reason the session was
        refused at login; it is closed in the same commit."""
        ident = self.identity
        # Refused at admission, the session is recorded as rejected whatever the front end
        # does next; one that went on regardless (SSH admits after its login) is refused here.
        enforce = rejected is None and self.refused is not None
        if self.refused is not None:
            rejected = self.refused[0]
        status = "rejected" if rejected is not None else "open"
        records: list[R.Record] = [R.SessionOpen(
            self.id, protocol=self.protocol, connection=self.conn.name,
            identity=ident.name if ident else user,
            identity_kind=ident.kind if ident else None,
            client_addr=self.client_addr,
            # The client chose it (a PostgreSQL startup parameter, an SSH client's version
            # string): a value in it is masked like any recorded text.
            application_name=self.mask_text(self.application_name),
            database=self.database, started_at=O.utc(self.started), status=status,
            target=self.target, identity_vendor=ident.vendor if ident else None)]
        if rejected is not None:
            records.append(R.SessionClose(self.id, ended_at=O.utc(time.time()), status=status,
                                          end_reason=rejected))
        await self.ctx.recorder.committed(records)
        if rejected is not None:
            self.ended = True
            if enforce and self.refused is not None:
                self.transport.refuse(self.refused[1], denied=True)
                pending = self.transport.close(rejected)
                if pending is not None:
                    await pending
            return
        self.recorded = True
        if self.ended:  # it ended while its open record was being committed
            self.write_close(*self._ending)

    def go_live(self) -> None:
        """The session is under way: operators see it, and its token's expiry ends it."""
        assert self.identity is not None
        self.ctx.live[self.id] = self
        self._expiry = watch_expiry(self.identity, self.ctx.token_grace, self._token_expired)
        self.ctx.events.publish(SessionOpened(self.describe()))

    async def access(self) -> None:
        """Just-in-time access: a connection that opens only with an approval asks for one,
        unless a grant for this identity is still valid. ``AccessRefused`` when it is not
        given (the session is then ended)."""
        identity = self.identity
        assert identity is not None
        if not self.conn.access_approval:
            return
        key = (identity.name, self.conn.name, self.database or "")
        if self.ctx.grants.get(key, 0.0) > time.time():
            return
        where = f" (database {self.database})" if self.database is not None else ""
        text = (f"-- open sessions on {self.conn.name} as {identity.name} for "
                f"{self.conn.access_grant / 60:g} min{where}")
        req, decided = await self.ask(text, "access-approval",
                                      "this connection opens only with an approval",
                                      exact=False)
        self.transport.tell(
            f"connection {self.conn.name} needs an approval before a session opens: request "
            f"{req.id} is waiting for an operator (gatewatch approve {req.id})")
        outcome = await self.wait(req, decided)
        if outcome.status == "approved":
            self.ctx.grants[key] = time.time() + self.conn.access_grant
            return
        who = f" by {outcome.decided_by}" if outcome.status == "denied" else ""
        why = f": {outcome.decision_reason}" if outcome.decision_reason else ""
        message = f"access to connection {self.conn.name} {outcome.status}{who}{why}"
        self.terminate(f"access {outcome.status}", message, denied=True)
        raise AccessRefused(message)

    # --- approvals ------------------------------------------------------------------------

    async def ask(self, text: str, rule: str | None, reason: str, *, exact: bool = True,
                  ) -> tuple[ApprovalRequest, asyncio.Future[ApprovalRequest]]:
        """Record an approval request for ``text`` (approvers see it exactly; the store and
        anything outside the engine see it masked) and a future for its decision.
        ``StoreError`` when it cannot be recorded."""
        assert self.identity is not None
        decided: asyncio.Future[ApprovalRequest] = asyncio.get_running_loop().create_future()

        def on_decided(req: ApprovalRequest) -> None:
            if not decided.done():
                decided.set_result(req)

        req = await self.ctx.broker.request(
            session_id=self.id, requester=self.identity.name, connection=self.conn.name,
            statement=self.mask_text(text, count=False, sql=self.protocol == "postgres") or "",
            real_statement=text if exact else None, rule=rule, reason=reason,
            on_decided=on_decided)
        if self.ended:
            self.ctx.broker.withdraw(req.id, "session ended")
        else:
            self.waiting.append(req.id)
            self._decisions[req.id] = decided
            self.ctx.events.publish(SessionWaiting(self.id, req.id))
        return req, decided

    async def wait(self, req: ApprovalRequest,
                   decided: asyncio.Future[ApprovalRequest]) -> ApprovalRequest:
        """The decision on ``req``; a wait cancelled (the client went away) withdraws it."""
        try:
            return await decided
        finally:
            self.done_waiting(req.id, "the client went away" if not decided.done()
                              or decided.cancelled() else None)

    def done_waiting(self, request_id: str, withdraw: str | None = None) -> None:
        """``request_id`` no longer waits; ``withdraw``: withdrawn for this reason, and
        whoever waits on its decision hears that it was (nothing waits forever)."""
        decided = self._decisions.pop(request_id, None)
        if request_id in self.waiting:
            self.waiting.remove(request_id)
            if withdraw is not None:
                req = self.ctx.broker.pending.get(request_id)
                self.ctx.broker.withdraw(request_id, withdraw)
                if req is not None and decided is not None and not decided.done():
                    decided.set_result(req)

    def held_message(self, req: ApprovalRequest, rule: str | None, reason: str) -> str:
        minutes = self.ctx.broker.settings.review_timeout / 60
        return (f'held for approval {req.id} (rule "{rule}": {reason}); waiting up to '
                f"{minutes:g} min for an operator")

    # --- statements and commands ----------------------------------------------------------

    def statement_record(self, seq: int, text: str | None, *, protocol: str | None = None,
                         params: str | None = None, verdict: str = "allow",
                         rule: str | None = None, approval: str | None = None,
                         at: float | None = None) -> R.StatementStart:
        """The record of a statement about to run: its text (and parameters) masked. The
        front end commits it before the statement reaches the target. ``protocol``: how it
        came (PostgreSQL: simple or extended), the session's protocol by default."""
        at = time.time() if at is None else at
        masking = self.masking
        if (params is not None and text is not None and self.protocol == "postgres"
                and masking is not None and masking.active and masking.columns
                and (self._names_masked(text) or self._runs_unseen(text))):
            # The parameters of a statement that names a masked column may be its values
            # (also through a prepared statement it executes, or a function it calls).
            params = PASSWORD_MASK
            self.masked[masking.count_key(TIED) + "/recorded"] += 1
        return R.StatementStart(
            self.id, seq, protocol=protocol or self.protocol,
            text=self.mask_text(text, sql=self.protocol == "postgres"),
            params=self.mask_text(params), started_at=O.utc(at), status="running",
            verdict=verdict, rule=rule, approval_id=approval)

    def running(self, record: R.StatementStart, at: float | None = None) -> None:
        """``record`` (from ``statement_record``) is committed: the statement runs (since
        ``at``)."""
        self._started[record.seq] = time.time() if at is None else at
        if self.ctx.events.active:
            self.ctx.events.publish(StatementStarted(
                self.id, record.seq, record.text, record.protocol, record.verdict, record.rule,
                record.approval_id))

    def finished(self, seq: int, status: str, *, command: str | None = None,
                 rows: int | None = None, sqlstate: str | None = None,
                 error: str | None = None, exit_status: int | None = None,
                 masked: dict[str, int] | None = None, at: float | None = None) -> None:
        """Close a statement's record (once: a second call does nothing)."""
        began = self._started.pop(seq, None)
        if began is None:
            return
        at = time.time() if at is None else at
        error = self.mask_text(error)  # it leaves the engine (events) and is recorded
        self.ctx.recorder.write(R.StatementEnd(
            self.id, seq, finished_at=O.utc(at), duration_ms=round((at - began) * 1000, 3),
            status=status, command=command, rows=rows, sqlstate=sqlstate, error=error,
            exit_status=exit_status,
            masked=json.dumps(masked, sort_keys=True) if masked else None))
        if self.ctx.events.active:
            self.ctx.events.publish(StatementFinished(self.id, seq, status, rows, sqlstate,
                                                      error, masked or {}))

    def is_running(self, seq: int) -> bool:
        return seq in self._started

    def running_statements(self) -> list[int]:
        return list(self._started)

    # --- masking of texts -----------------------------------------------------------------

    def mask_text(self, text: str | None, *, count: bool = True,
                  sql: bool = False) -> str | None:
        """A text as it is recorded and shown to operators (a statement, its parameters, an
        error, a command line): masked like results are. ``sql``: the text is SQL (a
        PostgreSQL statement), read by PostgreSQL's scanner; anything else (parameters,
        errors, shell lines) is masked as plain text. ``count``: once per recorded text, not
        per showing."""
        if text is None:
            return text
        masking = self.masking
        values = (masking.values if masking is not None and masking.active else None)
        if sql:
            # Literals the detectors find, and a role statement's password (always: a
            # credential in the record is a leak whatever the masking rules). A prepared
            # statement's text is recorded at each execution: its masking is kept.
            columns = masking is not None and masking.active and bool(masking.columns)
            tied = columns and self._runs_unseen(text)
            kept = self._statements.get(text)
            if kept is None or kept[0] is not masking or kept[1] != tied:
                kept = (masking, tied, *mask_statement(
                    text, values, masking.names_masked if masking is not None and columns
                    else None, tied=tied))
                if len(text) <= _KEPT_TEXT:
                    if len(self._statements) >= _NAMED_KEPT:
                        self._statements.clear()
                    self._statements[text] = kept
            _, _, masked, fired = kept
        elif values is not None:
            masked, fired = values.mask(text)
        else:
            return text
        if count and masking is not None:
            for name in fired:
                self.masked[masking.count_key(name) + "/recorded"] += 1
        return masked

    def _names_masked(self, text: str) -> bool:
        """``names_any`` of a statement's text, kept per text (a prepared statement's
        parameters are recorded at each execution)."""
        known = self._named.get(text)
        if known is None:
            masking = self.masking
            assert masking is not None
            known = names_any(text, masking.names_masked)
            if len(self._named) >= _NAMED_KEPT:
                self._named.clear()
            self._named[text] = known
        return known

    def _runs_unseen(self, text: str) -> bool:
        """``runs_unseen`` of a statement's text under this session's column rules: its
        literals and parameters may reach a masked column through a prepared statement it
        executes or a function it calls, by the function bodies the catalog last read."""
        masking = self.masking
        assert masking is not None
        catalog = masking.sources
        state = int(getattr(catalog, "changes", 0))
        if self._unseen_clear.get(text) == state:
            return False
        known = getattr(catalog, "last_known_functions", None)

        def bodies(name: str) -> list[str] | None:
            found = known(name) if known is not None else None
            return None if found is None else [f"{f.source}\n{f.definition}" for f in found]

        last_known = getattr(catalog, "last_known", None)
        derived = getattr(catalog, "derived", None)

        def holds_masked(name: str) -> bool:
            """A view naming a masked column, a table written from one; not known: may."""
            if last_known is None:
                return False  # no catalog: the words alone say
            found = last_known(name)
            if found is None:
                return True
            for rel in found:
                if rel.schema in ("pg_catalog", "information_schema"):
                    continue
                if rel.definition and names_any(rel.definition, masking.names_masked):
                    return True
                if any(masking.masked_source(Source(rel.schema, rel.name, c))
                       for c in rel.columns):
                    # A table with a column a rule names without its table part
                    # (``national_id``): ``INSERT INTO staff VALUES (…, '…')`` names neither
                    # the column nor the table a rule names (outside attack round 13).
                    return True
                if derived is not None and any(
                        masking.masked_source(s) for c in (*rel.columns, "*")
                        for s in derived(rel.name, c)):
                    return True
            return False

        if runs_unseen(text, masking.names_masked, bodies, holds_masked):
            return True
        if len(self._unseen_clear) >= _NAMED_KEPT:
            self._unseen_clear.clear()
        self._unseen_clear[text] = state
        return False

    def masked_json(self) -> str | None:
        masking = self.masking
        if masking is not None and masking.exempt_by:
            return json.dumps({f"{masking.exempt_by}:exempt": 1})
        return json.dumps(dict(self.masked), sort_keys=True) if self.masked else None

    # --- what operators see ---------------------------------------------------------------

    def describe(self) -> SessionView:
        ident = self.identity
        view = SessionView(
            id=self.id, protocol=self.protocol, connection=self.conn.name,
            identity=ident.name if ident else None,
            identity_kind=ident.kind if ident else None,
            identity_vendor=ident.vendor if ident else None,
            client_addr=self.client_addr,
            application_name=self.mask_text(self.application_name, count=False),
            database=self.database, target=self.target, started_at=O.utc(self.started),
            statements=0, waiting_for=self.waiting[0] if self.waiting else None,
            masked=dict(self.masked))
        return dataclasses.replace(view, **self.transport.details())

    # --- ending ---------------------------------------------------------------------------

    def terminate(self, reason: str, message: str, status: str = "closed", *,
                  denied: bool = False) -> None:
        """End the session from outside (engine shutdown, an operator's kill, an expired
        token, access refused): the client is told ``message``."""
        if not self.ended:
            self.transport.refuse(message, denied=denied)
        self.end(reason, status)

    def _token_expired(self) -> None:
        log.info("session %s: the token of %s expired", self.id,
                 self.identity.name if self.identity else "?")
        self.terminate(EXPIRED, MESSAGE)

    def end(self, reason: str, status: str = "closed") -> None:
        """Once: unregister, withdraw what waits, let the front end close, and write the
        close record."""
        if self.ended:
            return
        self.ended = True
        self._ending = (reason, status)
        self.ctx.live.pop(self.id, None)
        if self._expiry is not None:
            self._expiry.cancel()
        for request_id in list(self.waiting):
            self.done_waiting(request_id, f"session ended: {reason}")
        pending = self.transport.close(reason)
        if pending is None:
            self.write_close(reason, status)
        else:
            spawn(self._close_after(pending, reason, status), name=f"session-close-{self.id}")
        self.ctx.events.publish(SessionClosed(self.id, status, reason, dict(self.masked)))

    async def _close_after(self, pending: Awaitable[None], reason: str, status: str) -> None:
        try:
            await pending
        finally:
            self.write_close(reason, status)

    def write_close(self, reason: str, status: str) -> None:
        """Statements still running are recorded as interrupted, then the session closed."""
        if not self.recorded:
            return
        self.recorded = False
        now = time.time()
        for seq in list(self._started):
            self.finished(seq, "interrupted", error=f"session ended: {reason}", at=now)
        self.ctx.recorder.write(R.SessionClose(
            self.id, ended_at=O.utc(now), status=status, end_reason=reason,
            masked=self.masked_json()))
