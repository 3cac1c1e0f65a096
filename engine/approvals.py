"""The approvals broker: statements held for a human decision.

A request is committed before the client is told it waits; decisions are committed before
they take effect. Rules: nobody decides their own request; only approvers (groups or
identities in ``guardrails.approvers``) decide; ``min_approvals`` distinct approvers are needed
to approve, one denial ends it; a request expires after ``review_timeout``; a client's cancel or
disconnect withdraws it; on engine start every request left pending is expired (fail closed).
A request is bound to one session and the exact statement (its SHA-256).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.events import ApprovalDecided, ApprovalEvent, ApprovalRequested, ApprovalVoted
from engine.guardrail import GuardrailSettings
from engine.guardrail.guard import statement_hash
from engine.identity import Identity
from engine.recorder import Recorder
from store import ops as O
from store import records as R

log = logging.getLogger(__name__)


class BrokerError(Exception):
    """A decision the broker refuses; the message says why (for the operator)."""


@dataclass
class ApprovalRequest:
    id: str
    session_id: str
    requester: str
    connection: str
    statement: str
    rule: str | None
    reason: str
    created: float
    expires: float
    status: str = "pending"  # pending | approved | denied | expired | withdrawn
    approvers: list[str] = field(default_factory=list)
    decided_by: str | None = None
    decision_reason: str | None = None
    decided: float | None = None
    on_decided: Callable[[ApprovalRequest], None] | None = None
    timer: asyncio.TimerHandle | None = None
    # What will run when it is approved, exactly; ``statement`` is what the store keeps
    # (masked). Kept in memory only, for the approvers who decide (the control API is theirs
    # alone): masking can hide syntax — ``'api_key: ' OR true --'`` reads ``'api_key: ****`` —
    # and nobody should approve what they cannot see.
    exact: str | None = None

    def describe(self, *, exact: bool = True) -> dict[str, Any]:
        """As approvers see it on the control API: the exact statement; ``exact=False`` for
        anything that leaves the engine otherwise (a webhook): as recorded, masked."""
        return {
            "id": self.id, "session_id": self.session_id, "requester": self.requester,
            "connection": self.connection,
            "statement": (self.exact or self.statement) if exact else self.statement,
            "rule": self.rule,
            "reason": self.reason, "created_at": O.utc(self.created),
            "expires_at": O.utc(self.expires), "status": self.status,
            "approvals": list(self.approvers), "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
        }


def new_request_id() -> str:
    return "a" + secrets.token_hex(4)


class Broker:
    def __init__(self, recorder: Recorder, settings: GuardrailSettings) -> None:
        self._recorder = recorder
        self.settings = settings
        self.pending: dict[str, ApprovalRequest] = {}
        self.listeners: list[Callable[[ApprovalEvent], None]] = []  # approvers only
        # Listeners outside the engine (webhooks): they get the statement masked.
        self.outside_listeners: list[Callable[[ApprovalEvent], None]] = []
        # Decisions are taken one at a time: each is worked out from the state left by the
        # one before it, and committed before the next starts.
        self._deciding = asyncio.Lock()

    def may_decide(self, who: Identity) -> bool:
        s = self.settings
        return who.name in s.approver_identities or bool(who.groups & s.approver_groups)

    async def request(self, *, session_id: str, requester: str, connection: str, statement: str,
                      rule: str | None, reason: str,
                      on_decided: Callable[[ApprovalRequest], None],
                      real_statement: str | None = None) -> ApprovalRequest:
        """``statement`` is what the store keeps (masked, where masking applies);
        ``real_statement`` is what will run: its hash is recorded, and approvers see it."""
        now = time.time()
        req = ApprovalRequest(new_request_id(), session_id, requester, connection, statement,
                              rule, reason, now, now + self.settings.review_timeout,
                              on_decided=on_decided, exact=real_statement)
        await self._recorder.committed([R.ApprovalOpen(
            req.id, session_id=session_id, requester=requester, connection=connection,
            statement=statement, statement_hash=statement_hash(real_statement or statement),
            rule=rule, reason=reason, created_at=O.utc(req.created),
            expires_at=O.utc(req.expires), status="pending")])
        self.pending[req.id] = req
        req.timer = asyncio.get_running_loop().call_later(
            self.settings.review_timeout, self._expire, req.id)
        self._emit(ApprovalRequested, req)
        log.info("approval %s requested by %s on %s (rule %s)", req.id, requester, connection,
                 rule)
        return req

    async def decide(self, request_id: str, who: Identity, approve: bool,
                     reason: str | None) -> ApprovalRequest:
        async with self._deciding:
            return await self._decide(request_id, who, approve, reason)

    async def _decide(self, request_id: str, who: Identity, approve: bool,
                      reason: str | None) -> ApprovalRequest:
        req = self.pending.get(request_id)
        if req is None:
            raise BrokerError(f"no pending approval request {request_id!r} (decided, expired "
                              "or unknown)")
        if not self.may_decide(who):
            raise BrokerError(f"{who.name} is not an approver")
        if who.name == req.requester:
            raise BrokerError("nobody approves their own request")
        if who.name in req.approvers:
            raise BrokerError(f"{who.name} has already approved {request_id}")
        if approve:
            approvers = [*req.approvers, who.name]
            status = "approved" if len(approvers) >= self.settings.min_approvals else "pending"
        else:
            approvers, status = list(req.approvers), "denied"
        now = time.time()
        await self._recorder.committed([R.ApprovalUpdate(
            req.id, status=status, approvals=",".join(approvers) or None,
            decided_at=O.utc(now) if status != "pending" else None,
            decided_by=who.name, decision_reason=reason)])
        if self.pending.get(request_id) is not req or req.status != "pending":
            raise BrokerError(f"approval request {request_id} ended while deciding")
        req.approvers = approvers
        req.decided_by, req.decision_reason = who.name, reason
        if status != "pending":
            self._finish(req, status, now)
        else:
            self._emit(ApprovalVoted, req)
        return req

    def withdraw(self, request_id: str, why: str) -> None:
        req = self.pending.get(request_id)
        if req is not None:
            req.decision_reason = why
            self._write_end(req, "withdrawn", None, why)
            self._finish(req, "withdrawn", time.time(), notify=False)

    def _expire(self, request_id: str) -> None:
        req = self.pending.get(request_id)
        if req is not None:
            why = f"no decision within {self.settings.review_timeout:g} s"
            req.decision_reason = why
            self._write_end(req, "expired", None, why)
            self._finish(req, "expired", time.time())

    def _write_end(self, req: ApprovalRequest, status: str, by: str | None, why: str) -> None:
        self._recorder.write(R.ApprovalUpdate(
            req.id, status=status, approvals=",".join(req.approvers) or None,
            decided_at=O.utc(time.time()), decided_by=by, decision_reason=why))

    def _finish(self, req: ApprovalRequest, status: str, when: float, *,
                notify: bool = True) -> None:
        req.status, req.decided = status, when
        self.pending.pop(req.id, None)
        if req.timer is not None:
            req.timer.cancel()
        self._emit(ApprovalDecided, req)
        log.info("approval %s %s (%s)", req.id, status, req.decided_by or req.decision_reason)
        if notify and req.on_decided is not None:
            req.on_decided(req)

    def _emit(self, kind: type[ApprovalEvent], req: ApprovalRequest) -> None:
        event = kind(req.describe())
        for listener in list(self.listeners):
            listener(event)
        if self.outside_listeners:
            masked = kind(req.describe(exact=False))
            for listener in list(self.outside_listeners):
                listener(masked)

    def expire_all(self, why: str) -> None:
        for request_id in list(self.pending):
            req = self.pending[request_id]
            req.decision_reason = why
            self._write_end(req, "expired", None, why)
            self._finish(req, "expired", time.time())


def recovery_ops(pending_ids: list[str]) -> list[R.ApprovalUpdate]:
    """Requests a previous run left pending expire on start (ARCHITECTURE.md invariant 3)."""
    now = O.utc(time.time())
    return [R.ApprovalUpdate(rid, status="expired", approvals=None, decided_at=now,
                             decided_by=None, decision_reason="engine restarted")
            for rid in pending_ids]
