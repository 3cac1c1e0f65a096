"""One client's SSH connection through the gateway: identity, target, record, judgement."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh

from engine import events as ev
from engine.approvals import ApprovalRequest, Broker
from engine.config import Connection, EngineSettings, MaskingRule
from engine.events import EventHub, SessionView
from engine.guardrail import Guard
from engine.guardrail.guard import Judgement, SessionGuard
from engine.guardrail.rules import SEVERITY, Verdict
from engine.identity import Identity
from engine.identity.expiry import EXPIRED, MESSAGE, watch_expiry
from engine.masking.policy import SessionMasking, for_session
from engine.recorder import Recorder
from engine.ssh.tape import Tape
from engine.ssh.upstream import TargetUnavailable, connect_target
from engine.tasks import spawn
from store import Op, StoreError
from store import ops as O

log = logging.getLogger(__name__)


class Bridge(Protocol):
    """What a session needs of each of its channels."""

    def pressure(self, on: bool) -> None: ...
    def close_with(self, message: str) -> None: ...
    def cancel(self) -> None: ...


@dataclass
class SshContext:
    settings: EngineSettings
    recorder: Recorder
    guard: Guard
    broker: Broker
    events: EventHub
    live: dict[str, SshSession] = field(default_factory=dict)
    masking_rules: tuple[MaskingRule, ...] = ()
    masking_key: bytes = b""
    token_grace: float = 0.0  # a session outlives its OIDC token by this much


@dataclass(frozen=True)
class Admission:
    """The gateway's answer to one command: run it (recorded as ``seq``) or not, and why.
    ``blocked``: refused by a rule or by the gateway itself (exit status 126), as opposed to
    denied by an approver, expired, or not recorded (exit status 1)."""

    allowed: bool
    seq: int
    message: str = ""
    blocked: bool = False


class SshSession:
    def __init__(self, ctx: SshContext, conn: Connection, session_id: str,
                 client_addr: str, client_version: str) -> None:
        self.ctx = ctx
        self.conn = conn
        self.session_id = session_id
        self.client_addr = client_addr
        self.client_version = client_version
        self.identity: Identity | None = None
        self.guard: SessionGuard | None = None
        self.started = time.time()
        self.seq = 0
        self.bridges: list[Bridge] = []
        self.ended = False
        self.waiting: list[str] = []  # approval requests this session's channels wait on
        self.client_conn: asyncssh.SSHServerConnection | None = None
        self._target: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self._command_started: dict[int, float] = {}
        self.masking: SessionMasking | None = None
        self.masked: Counter[str] = Counter()  # "rule:detector" → values masked
        self._expiry: asyncio.TimerHandle | None = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.tape = Tape(ctx.recorder, session_id, self.started, self._pressure, self._store_failed)

    # --- life -----------------------------------------------------------------------------

    async def open(self, identity: Identity) -> None:
        """Authenticated: record the session (before anything reaches the target), register
        it, and start connecting to the target. Channels wait for this (``wait_open``)."""
        self.identity = identity
        self.guard = self.ctx.guard.for_session(self.conn.name, identity.name, identity.groups)
        self.masking = for_session(self.ctx.masking_rules, self.conn.name, identity.name,
                                   identity.groups, self.ctx.masking_key)
        up = self.conn.upstream
        try:
            await self.ctx.recorder.committed([Op(O.SESSION_OPEN, self.session_id, 0, {
                "protocol": "ssh", "connection": self.conn.name, "identity": identity.name,
                "identity_kind": identity.kind, "identity_vendor": identity.vendor,
                "client_addr": self.client_addr,
                "application_name": self.client_version, "database": None,
                "started_at": O.utc(self.started), "status": "open",
                "target": f"{up.user}@{up.host}:{up.port}",
            })])
        except BaseException as exc:
            self._opened.set_exception(exc if isinstance(exc, Exception)
                                       else StoreError("session not recorded"))
            raise
        self._opened.set_result(None)
        if self.ended:
            return
        self.ctx.live[self.session_id] = self
        self._expiry = watch_expiry(identity, self.ctx.token_grace,
                                    lambda: self.terminate(EXPIRED, MESSAGE))
        self.ctx.events.publish(ev.SessionOpened(self.describe()))
        self._target = spawn(connect_target(up), name=f"ssh-target-{self.session_id}")
        self._target.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def wait_open(self) -> None:
        """Until the session's record is committed (StoreError if it could not be)."""
        await asyncio.shield(self._opened)

    async def target(self) -> asyncssh.SSHClientConnection:
        """The connection to the target (TargetUnavailable if it cannot be had)."""
        assert self._target is not None
        return await asyncio.shield(self._target)

    def end(self, reason: str, status: str = "closed") -> None:
        if self.ended:
            return
        self.ended = True
        self.ctx.live.pop(self.session_id, None)
        if self._expiry is not None:
            self._expiry.cancel()
        for bridge in list(self.bridges):
            bridge.cancel()
        for request_id in list(self.waiting):
            self.ctx.broker.withdraw(request_id, "session ended")
        spawn(self._close_record(reason, status), name=f"ssh-close-{self.session_id}")
        if self._target is not None:
            if self._target.done() and not self._target.cancelled() \
                    and self._target.exception() is None:
                self._target.result().close()
            else:
                self._target.cancel()
        if self.client_conn is not None:
            self.client_conn.close()
        self.ctx.events.publish(ev.SessionClosed(self.session_id, status, reason,
                                                 dict(self.masked)))

    async def _close_record(self, reason: str, status: str) -> None:
        try:
            await self.wait_open()
        except Exception:
            return  # never recorded as open: nothing to close
        now = time.time()
        for seq in list(self._command_started):
            self.end_command(seq, "interrupted", None, f"session ended: {reason}", now=now)
        await self.tape.drain()
        counts = dict(self.masked)
        if self.masking is not None and self.masking.exempt_by:
            counts = {f"{self.masking.exempt_by}:exempt": 1}
        masked = json.dumps(counts, sort_keys=True) if counts else None
        self.ctx.recorder.write(Op(O.SESSION_CLOSE, self.session_id, 0, {
            "ended_at": O.utc(now), "status": status, "end_reason": reason,
            "masked": masked}))

    def terminate(self, reason: str, message: str, sqlstate: str = "57P01",
                  status: str = "closed") -> None:
        """End the session from outside (engine shutdown, an operator's kill, an expired
        token). Open channels are told why on stderr; the disconnect says it too, for a
        client that had no channel open yet."""
        for bridge in list(self.bridges):
            bridge.close_with(message)
        if self.client_conn is not None:
            with contextlib.suppress(OSError, asyncssh.Error):
                self.client_conn.disconnect(asyncssh.DISC_BY_APPLICATION, message)
        self.end(reason, status)

    def describe(self) -> SessionView:
        ident = self.identity
        up = self.conn.upstream
        return SessionView(
            id=self.session_id, protocol="ssh", connection=self.conn.name,
            identity=ident.name if ident else None,
            identity_kind=ident.kind if ident else None,
            identity_vendor=ident.vendor if ident else None,
            client_addr=self.client_addr, application_name=self.client_version,
            database=None, target=f"{up.user}@{up.host}:{up.port}",
            started_at=O.utc(self.started), statements=self.seq,
            waiting_for=self.waiting[0] if self.waiting else None,
            masked=dict(self.masked), channels=len(self.bridges),
            recorded_bytes=self.tape.recorded_bytes)

    def _pressure(self, on: bool) -> None:
        for bridge in self.bridges:
            bridge.pressure(on)

    def _store_failed(self, exc: StoreError) -> None:
        log.error("session %s: output not recorded, session ended: %s", self.session_id, exc)
        self.terminate("store unwritable", "the gateway cannot record this session, so it "
                       "ends it", status="error")

    # --- commands -------------------------------------------------------------------------

    def judge(self, readings: tuple[str, ...], *, lenient: bool = False) -> Judgement:
        """The strictest verdict over every reading of a line (the first is the one shown).
        ``lenient``: a line that is not shell words (typed inside a full-screen program) is
        not refused for that alone; the other readings are guesses, so only the first one's
        parse failure counts."""
        assert self.guard is not None
        judgements = [self.guard.judge_command(r) for r in readings]
        first = judgements[0]
        counted = [first] if not (lenient and first.parse_error) else []
        counted += [j for j in judgements[1:] if not j.parse_error]
        if not counted:
            return Judgement("allow", Verdict("allow", None, "not shell words", readings[0]),
                             ())
        return max(counted, key=lambda j: SEVERITY[j.action])

    async def admit(self, text: str, kind: str,
                    on_held: Callable[[str], None] | None = None, *,
                    readings: tuple[str, ...] = (), lenient: bool = False) -> Admission:
        """Judge a command, record it, and wait for an approval when a rule asks for one.
        Nothing reaches the target before the record is committed (invariant 1)."""
        assert self.guard is not None and self.identity is not None
        judgement = (self.judge(readings or (text,), lenient=lenient)
                     if kind != "subsystem" else None)
        verdict = judgement.verdict if judgement is not None else None
        self.seq += 1
        seq = self.seq
        now = time.time()
        shown = self.mask_text(text)
        action = judgement.action if judgement else "allow"
        rule = verdict.rule if verdict else None
        fields = {
            "protocol": "ssh", "text": shown, "params": None, "started_at": O.utc(now),
            "status": "running", "verdict": action, "rule": rule, "approval_id": None,
        }
        await self.ctx.recorder.committed([Op(O.STATEMENT_START, self.session_id, seq, fields)])
        self._command_started[seq] = now
        self.ctx.events.publish(ev.StatementStarted(
            self.session_id, seq, shown, "ssh", action, rule, None))
        if judgement is None or verdict is None or judgement.action == "allow":
            return Admission(True, seq)
        hint = f" {verdict.hint}" if verdict.hint else ""
        if judgement.action == "block":
            message = f'blocked by rule "{verdict.rule}": {verdict.reason}.{hint}'
            self.end_command(seq, "blocked", None, message)
            return Admission(False, seq, message, blocked=True)
        return await self._review(seq, text, verdict.rule, verdict.reason, on_held, shown)

    async def refused(self, text: str, rule: str, reason: str) -> None:
        """Record something the gateway refused by its own settings, not by a rule."""
        self.seq += 1
        seq = self.seq
        now = time.time()
        self._command_started[seq] = now
        await self.ctx.recorder.committed([Op(O.STATEMENT_START, self.session_id, seq, {
            "protocol": "ssh", "text": self.mask_text(text), "params": None,
            "started_at": O.utc(now), "status": "running", "verdict": "block", "rule": rule,
            "approval_id": None})])
        self.end_command(seq, "blocked", None, reason, command=text.split(" ")[0])

    def note_refusal(self, text: str, reason: str) -> None:
        spawn(self.refused(text, "gateway", reason), name=f"ssh-refusal-{self.session_id}")

    async def _review(self, seq: int, text: str, rule: str | None, reason: str,
                      on_held: Callable[[str], None] | None, shown: str) -> Admission:
        assert self.identity is not None
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[ApprovalRequest] = loop.create_future()

        def on_decided(req: ApprovalRequest) -> None:
            if not decided.done():
                decided.set_result(req)

        try:
            req = await self.ctx.broker.request(
                session_id=self.session_id, requester=self.identity.name,
                connection=self.conn.name, statement=shown, real_statement=text, rule=rule,
                reason=reason, on_decided=on_decided)
        except StoreError as exc:
            message = "the gateway could not record the approval request, so it did not run"
            self.end_command(seq, "error", None, f"{message}: {exc}")
            return Admission(False, seq, message)
        self.waiting.append(req.id)
        self.ctx.events.publish(ev.SessionWaiting(self.session_id, req.id))
        if on_held is not None:
            minutes = self.ctx.broker.settings.review_timeout / 60
            on_held(f'held for approval {req.id} (rule "{rule}": {reason}); waiting up to '
                    f"{minutes:g} min for an operator")
        try:
            outcome = await decided
        finally:
            if req.id in self.waiting:
                self.waiting.remove(req.id)
            # the channel or session went away while it waited (a cancelled wait cancels
            # the future too)
            if not decided.done() or decided.cancelled():
                self.ctx.broker.withdraw(req.id, "the client went away")
                self.end_command(seq, "denied", None, "the client went away while it waited")
        if outcome.status == "approved":
            return Admission(True, seq, f"approved by {outcome.decided_by}")
        why = f": {outcome.decision_reason}" if outcome.decision_reason else ""
        message = (f"denied by {outcome.decided_by}{why}" if outcome.status == "denied"
                   else f"approval request {outcome.id} {outcome.status}{why}")
        self.end_command(seq, "denied", None, message)
        return Admission(False, seq, message)

    def mask_text(self, text: str) -> str:
        """A command line as it is recorded and shown to operators: masked like the output
        (``echo 4111…`` must not put the card number in the store)."""
        masking = self.masking
        if masking is None or not masking.active or masking.values is None:
            return text
        masked, fired = masking.values.mask(text)
        for name in fired:
            self.masked[masking.count_key(name) + "/recorded"] += 1
        return masked

    def end_command(self, seq: int, status: str, exit_status: int | None,
                    error: str | None, *, command: str | None = None,
                    now: float | None = None) -> None:
        began = self._command_started.pop(seq, None)
        if began is None:
            return
        now = time.time() if now is None else now
        self.ctx.recorder.write(Op(O.STATEMENT_END, self.session_id, seq, {
            "finished_at": O.utc(now), "duration_ms": round((now - began) * 1000, 3),
            "status": status, "command": command, "rows": None, "sqlstate": None,
            "error": error, "exit_status": exit_status,
        }))
        self.ctx.events.publish(ev.StatementFinished(self.session_id, seq, status, None, None,
                                                     error))


__all__ = ["Admission", "SshContext", "SshSession", "TargetUnavailable"]
