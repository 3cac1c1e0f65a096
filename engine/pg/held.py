"""The statement a PostgreSQL session holds for an approval, and the client's Ctrl-C on it.

A session holds at most one statement at a time (the relay stops reading behind it). ``Held``
records the request through the session core, tells the client that it waits, and turns the
operator's decision, the request's expiry or the client's CancelRequest into the relay's
``Decision``, exactly once. A statement of the extended protocol is held at its Bind: the
approver sees its parameters too (the preview the record keeps), since one approval covers that
one execution; and for an EXECUTE, what the prepared statement runs. Both go with the text,
which the session core masks for the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from engine.approvals import ApprovalRequest
from engine.pg import codec
from engine.pg.relay import Decision, Hold
from engine.session import Session
from engine.tasks import spawn
from store import StoreError

log = logging.getLogger(__name__)
# How each line the gateway adds for the approver begins; a client's text that could pass for
# one is not held (``heldtext.imitates_notes``).
NOTE = "-- gatewatch: "


class Held:
    def __init__(self, session: Session, notice: Callable[[bytes], None],
                 resume: Callable[[Decision], None]) -> None:
        self.session = session
        self._notice = notice  # a message to the client
        self._resume = resume  # the decision, to the relay
        self.approval: ApprovalRequest | None = None  # the request the statement waits on
        self._asking = False  # the request is being recorded
        self._canceled_while_asking = False

    def ask(self, hold: Hold) -> None:
        self._asking = True
        spawn(self._request(hold), name=f"approval-request-{self.session.id}")

    async def _request(self, hold: Hold) -> None:
        verdict = hold.judgement.verdict
        text = hold.text
        if hold.params is not None:
            text += f"\n{NOTE}parameters: {hold.params}"
        for note in hold.notes:
            text += f"\n{NOTE}{note}"
        try:
            req, decided = await self.session.ask(text, verdict.rule, verdict.reason)
        except StoreError as exc:
            log.error("session %s: approval request not recorded: %s", self.session.id, exc)
            self._asking = False
            self._resume(Decision(False, None, "the gateway could not record the approval "
                                  "request, so the statement was not run", "58030"))
            return
        self._asking = False
        if self.session.ended:
            return
        self.approval = req
        decided.add_done_callback(self._decided)
        if self._canceled_while_asking:  # the client's Ctrl-C came while we recorded it
            self._canceled_while_asking = False
            self.cancel()
            return
        self._notice(codec.notice_response(
            f"statement {self.session.held_message(req, verdict.rule, verdict.reason)}",
            hint=f"An operator approves it with: gatewatch approve {req.id}"))

    def _decided(self, decided: asyncio.Future[ApprovalRequest]) -> None:
        if decided.cancelled():
            return
        req = decided.result()
        if self.approval is not req:
            return  # withdrawn by the client: already answered
        self.approval = None
        self.session.done_waiting(req.id)
        if self.session.ended:
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

    def cancel(self) -> bool:
        """A CancelRequest for this session: a held statement is withdrawn. True when there
        was one: the client's statement is the held one, and the cancel goes no further (sent
        on to the target, it would cancel whatever the client runs next)."""
        if self._asking:
            self._canceled_while_asking = True
            return True
        req = self.approval
        if req is not None and not self.session.ended:
            self.approval = None
            self.session.done_waiting(req.id, "canceled by the client")
            self._resume(Decision(False, req.id, "canceling statement due to user request",
                                  "57014"))
            return True
        return False

    def forget(self) -> None:
        """The session ended (its requests are withdrawn by the core)."""
        self.approval = None
