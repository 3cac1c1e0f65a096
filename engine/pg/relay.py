"""The state machine of an authenticated PostgreSQL session, without sockets.

``PgRelay`` is fed the bytes each side sends and answers with what to do next:

- ``client_data(data)`` → ``ClientOutcome``: the bytes of complete frontend messages to
  forward, the ``StatementStarted`` records that must be committed *before* those bytes are
  forwarded (ARCHITECTURE.md invariant 1), the statements the gateway refused itself (with the
  ErrorResponse to send), and a ``Hold`` when a statement waits for an approval;
- ``server_data(data)`` → ``(to_client, finished)``: the bytes of complete backend messages to
  pass on (with the gateway's own errors spliced in where the protocol expects them), and the
  ``StatementFinished`` records they close.

A statement is one Query message (simple protocol; all of its statements share the record) or
one Bind (extended protocol: Bind plans the statement, and planning can already run code; the
Execute that follows is that statement; its text comes from the Parse that named it, judged by
the guard at Parse). To know which response closes which statement, the relay keeps the queue of
responses the target owes — one entry per Parse, Bind, Describe, Execute, Close, Sync and Query
— and pops it as they arrive, following PostgreSQL's rule that after an error in the extended
protocol everything up to the next Sync is skipped. Names of prepared statements take effect
when the target confirms them. New SQL text waits while statements are in flight, so that it is
judged as the server will read it. Only complete messages cross the gateway (a later filter,
masking, can rewrite whole messages); large ones are gathered without quadratic copying.

Anything that is not valid protocol raises ``ProtocolViolation``; the connection ends that
session with an ErrorResponse and a recorded reason.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from engine.guardrail import Judgement, Verdict, reading
from engine.guardrail.guard import SessionGuard
from engine.pg import codec, messages
from engine.pg.codec import ProtocolViolation, check_length

# What the target owes us, in order. _INJECT is the gateway's own answer (a blocked statement's
# error) that must reach the client between the target's answers to the messages around it.
_PARSE, _BIND, _DESCRIBE, _EXECUTE, _CLOSE, _SYNC, _SIMPLE, _INJECT = range(8)
_GATEWAY = object()  # the record of a Describe the gateway sent itself (describe_portals)
# Tags of the answers to that Describe, as server_data hands them on. Never sent by a server
# (its tags are ASCII letters) and never to a client: ``engine.masking.pg`` drops them.
GATEWAY_ROW_DESCRIPTION = b"\x00"
GATEWAY_NO_DATA = b"\x01"
_EXTENDED_UNTIL_SYNC = frozenset((_PARSE, _BIND, _DESCRIBE, _EXECUTE, _CLOSE, _INJECT))

_FRONTEND_PASS = frozenset(b"dcfH")  # CopyData, CopyDone, CopyFail, Flush: forwarded as they are
_FRONTEND_KNOWN = frozenset(b"QPBEDSCHXFdcf")
_FLUSH = b"H\x00\x00\x00\x04"
_WAITING_LIMIT = 16 * 1024 * 1024
_BACKEND_KNOWN = frozenset(b"RKSZTDCENAI123tnsGHWdcVv")

SKIPPED = "not executed: an earlier message of the pipeline failed"


@dataclass(slots=True)
class StatementStarted:
    seq: int
    text: str
    protocol: str  # "simple" or "extended"
    params: str | None
    started: float
    verdict: str = "allow"  # allow | block | review (then approved or denied)
    rule: str | None = None
    approval: str | None = None


@dataclass(slots=True)
class Hold:
    """A statement that needs an approval: nothing from the client goes on until decided."""

    text: str
    protocol: str
    judgement: Judgement


@dataclass(slots=True)
class Decision:
    """How a held statement was decided (``PgRelay.decide``)."""

    approved: bool
    approval: str | None
    message: str = ""
    sqlstate: str = "42501"


class ClientOutcome(NamedTuple):
    out: bytes  # forward to the target (after committing ``started``)
    started: list[StatementStarted]
    finished: list[StatementFinished]  # statements the gateway answered itself (blocked)
    reply: bytes  # send to the client after ``out``
    hold: Hold | None


@dataclass(slots=True)
class StatementFinished:
    seq: int
    status: str  # "ok", "error" or "skipped"
    command: str | None
    rows: int | None
    sqlstate: str | None
    error: str | None
    finished: float


class _Open:
    """A statement that has been forwarded and not yet answered."""

    __slots__ = ("closed", "command", "error", "rows", "seq", "sqlstate")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.closed = False
        self.rows: int | None = None
        self.command: str | None = None
        self.sqlstate: str | None = None
        self.error: str | None = None

    def finish(self, status: str | None = None) -> StatementFinished:
        self.closed = True
        if status is None:
            status = "error" if self.sqlstate else "ok"
        error = SKIPPED if status == "skipped" else self.error
        return StatementFinished(
            self.seq, status, self.command, self.rows, self.sqlstate, error, time.time()
        )


_Judged = tuple[str, str | None, str | None]  # verdict, rule, approval id
_ALLOWED: _Judged = ("allow", None, None)


class _Incoming:
    """Bytes of one direction not parsed yet. A large message that arrives in many chunks is
    gathered in a list and joined once it is complete: concatenating on every chunk would
    copy it over and over (quadratic in its size, and every session on the loop would wait)."""

    __slots__ = ("chunks", "need", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.need = 0

    def take(self, data: bytes) -> bytes | None:
        """What to parse now, or None while a message is still incomplete."""
        if not self.chunks:
            return data
        self.chunks.append(data)
        self.size += len(data)
        if self.size < self.need:
            return None
        joined = b"".join(self.chunks)
        self.chunks, self.size, self.need = [], 0, 0
        return joined

    def keep(self, rest: bytes, need: int) -> None:
        """Remember unparsed bytes; ``need``: how many the message they begin needs."""
        if rest:
            self.chunks, self.size, self.need = [rest], len(rest), need
        else:
            self.chunks, self.size, self.need = [], 0, 0


class _Prepared:
    """A prepared statement as the gateway judged it."""

    __slots__ = ("executed", "judged", "name", "text")

    def __init__(self, name: str, text: str, judged: _Judged) -> None:
        self.name, self.text, self.judged = name, text, judged
        self.executed = False


def _blocked(judgement: Judgement) -> bytes:
    """The ErrorResponse for a statement the guard blocks (or cannot parse)."""
    if judgement.parse_error is not None:
        return codec.error_response(
            judgement.parse_error, "42601",
            hint="Gatewatch could not classify this statement, so it did not run it.")
    v = judgement.verdict
    return codec.error_response(
        f'statement blocked by rule "{v.rule}": {v.reason}', "42501",
        hint=v.hint or "Ask the on-call operator if you need this to run; "
        "`gatewatch policy explain` shows why it was blocked.",
    )


def _unknown_frontend(tag: int) -> NoReturn:
    shown = repr(chr(tag)) if 32 <= tag < 127 else f"0x{tag:02x}"
    raise ProtocolViolation(f"invalid frontend message type {shown}")


class PgRelay:
    def __init__(self, max_message_size: int, guard: SessionGuard | None = None) -> None:
        self.max_message_size = max_message_size
        self.guard = guard
        self.transaction_status = b"I"
        self.statements = 0
        self.terminated = False  # the client sent Terminate
        self._client_in = _Incoming()
        self._server_in = _Incoming()
        self._owed: deque[tuple[int, Any]] = deque()
        # Statement and portal names → text and how the statement was judged at Parse.
        # A name is live once the target confirmed it (ParseComplete, CloseComplete): a Parse
        # the target refuses must not change what a later Bind is recorded and judged as.
        self._prepared: dict[str, _Prepared] = {}
        self._parsing: dict[str, _Prepared] = {}  # sent, not yet confirmed (latest per name)
        self._portals: dict[str, tuple[_Prepared, str | None, _Open]] = {}
        self._bound: dict[int, _Open] = {}  # records of Binds whose Execute has not come
        self._discarding = False  # after a refused Parse: drop messages until Sync
        self._holding = False
        self._decision: Decision | None = None
        self.unreadable: str | None = None  # why statements cannot be judged (then refused)
        self._running = 0  # statements (Query, Execute) sent and not yet answered
        self._deferred = False  # new SQL text waits until they are answered
        self.wants_input = False  # set when deferred input may go on (see server_data)
        # Column masking: right before each Execute the gateway sends a Describe of the portal
        # itself, so that the columns of the rows that follow are known even when the client
        # did not ask (drivers that cached a prepared statement's description do not), for
        # every portal and every Execute of it (a portal suspended and run again after Sync).
        # Its answer is handed on with the tag GATEWAY_ROW_DESCRIPTION or GATEWAY_NO_DATA, for
        # the masker to use and drop: the client never sees it.
        self.describe_portals = False
        self._inject_before: bytes | None = None
        # Per client_data call:
        self._out: list[bytes] = []
        self._reply: list[bytes] = []
        self._finished: list[StatementFinished] = []
        self._hold: Hold | None = None

    # --- frontend -------------------------------------------------------------------------

    def client_data(self, data: bytes) -> ClientOutcome:
        buf = self._client_in.take(data)
        started: list[StatementStarted] = []
        self._out, self._reply, self._finished, self._hold = [], [], [], None
        self.wants_input = False
        waiting = self._holding or (self._deferred and self._running)
        if buf is None:  # the rest of a large message is still on its way
            if waiting and self._client_in.size > min(self.max_message_size, _WAITING_LIMIT):
                raise ProtocolViolation("too much data sent while a statement waits",
                                        sqlstate="54000")
            return ClientOutcome(b"", started, [], b"", None)
        if waiting:
            # Reading goes on (so that a client that leaves is seen), but what may pile up
            # meanwhile is bounded: a held session must not eat the engine's memory.
            if len(buf) > min(self.max_message_size, _WAITING_LIMIT):
                raise ProtocolViolation("too much data sent while a statement waits",
                                        sqlstate="54000")
            self._client_in.keep(buf, 0)
            return ClientOutcome(b"", started, [], b"", None)
        self._deferred = False
        n = len(buf)
        pos = 0
        need = 0  # length of a message that has begun but not fully arrived
        run = 0  # start of the run of messages forwarded as they are
        limit = self.max_message_size
        while pos < n:
            tag = buf[pos]
            if tag not in _FRONTEND_KNOWN:  # judged on its first byte, as PostgreSQL does
                _unknown_frontend(tag)
            if n - pos < 5:
                break
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big", signed=True)
            if length < 4 or length - 4 > limit:
                check_length(tag, length, limit)
            end = pos + 1 + length
            if end > n:
                need = end - pos
                break
            if tag in (81, 80) and self._running and self.guard is not None and (
                    not self._discarding):
                # New SQL text waits until the statements before it are answered: one of them
                # could change how the server reads SQL (standard_conforming_strings, say),
                # and the guard must judge this text as the server will read it. A Flush
                # makes the target send what it owes even when the client has not synced.
                self._deferred = True
                self._out.append(buf[run:pos])
                self._out.append(_FLUSH)
                run = pos
                break
            if self._discarding and tag != 83:  # not Sync: PostgreSQL would skip it too
                keep = False
            elif tag in _FRONTEND_PASS:
                keep = True
            else:
                keep = self._frontend(tag, buf[pos + 5 : end], started)
                if self._hold is not None:  # stop here; resume after the decision
                    break
                if self._inject_before is not None:  # the gateway's Describe, then Execute
                    self._out.append(buf[run:pos])
                    self._out.append(self._inject_before)
                    self._inject_before = None
                    run = pos
            if not keep:
                if pos > run:
                    self._out.append(buf[run:pos])
                run = end
            pos = end
        self._client_in.keep(buf[pos:] if pos else buf, need)
        if run == 0 and not self._out:
            out = buf[:pos] if pos != n else buf
        else:
            self._out.append(buf[run:pos])
            out = b"".join(self._out)
        return ClientOutcome(out, started, self._finished, b"".join(self._reply), self._hold)

    def decide(self, decision: Decision) -> None:
        """The held statement was decided; call ``client_data(b"")`` to go on."""
        self._holding = False
        self._decision = decision

    def parameter_status(self, name: str, value: str) -> None:
        """The target reports a setting (at login and whenever it changes)."""
        why = reading.unsafe_state(name, value)
        if why is not None and self.unreadable is None:
            self.unreadable = why

    def _judge(self, text: str, protocol: str) -> tuple[str, _Judged, bytes]:
        """``allow``, ``refuse`` (with the ErrorResponse to send) or ``hold`` for a statement
        about to be sent."""
        decision, self._decision = self._decision, None
        if self.guard is None:
            return "allow", _ALLOWED, b""
        if self.unreadable is not None:
            verdict = Verdict("block", reading.RULE, f"{self.unreadable}, so the gateway "
                              "cannot read SQL as the server does", text)
            return "refuse", ("block", reading.RULE, None), _blocked(
                Judgement("block", verdict, (verdict,)))
        judgement = self.guard.judge(text)
        action = judgement.action
        if action == "allow":
            return "allow", ("allow", judgement.rule, None), b""
        if action == "block":
            return "refuse", ("block", judgement.rule, None), _blocked(judgement)
        if decision is None:
            self._holding = True
            self._hold = Hold(text, protocol, judgement)
            return "hold", ("review", judgement.rule, None), b""
        if decision.approved:
            return "allow", ("approved", judgement.rule, decision.approval), b""
        return "refuse", ("denied", judgement.rule, decision.approval), codec.error_response(
            decision.message, decision.sqlstate, hint="The statement was not run.")

    def _refuse(self, text: str, protocol: str, judged: _Judged, error: bytes,
                started: list[StatementStarted], *, simple: bool) -> None:
        """Answer a statement the gateway will not send: record it and queue its error."""
        record = self._start(text, protocol, None, started, judged)
        fields = messages.error_fields(error[5:])
        record.sqlstate, record.error = fields.get("C"), fields.get("M")
        self._finished.append(record.finish("blocked" if judged[0] == "block" else "denied"))
        if self._owed:
            self._owed.append((_INJECT, (error, simple)))
        else:
            self._reply.append(error + (codec.ready_for_query(self.transaction_status)
                                        if simple else b""))

    def _frontend(self, tag: int, body: bytes, started: list[StatementStarted]) -> bool:
        """Handle one message; False when it must not be forwarded."""
        owed = self._owed
        if tag == 81:  # 'Q'
            text = messages.query_text(body)
            action, judged, error = self._judge(text, "simple")
            if action == "hold":
                return False
            if action == "refuse":
                self._refuse(text, "simple", judged, error, started, simple=True)
                return False
            record = self._start(text, "simple", None, started, judged)
            owed.append((_SIMPLE, record))
            self._running += 1
        elif tag == 66:  # 'B'
            bind = messages.bind(body)
            prepared = self._parsing.get(bind.statement) or self._prepared.get(bind.statement)
            error = None
            if prepared is None:  # fail closed: never run what the gateway did not judge
                error = codec.error_response(
                    f'prepared statement "{bind.statement}" does not exist', "26000",
                    hint="Statements prepared with SQL PREPARE run with SQL EXECUTE through "
                    "the gateway.")
            elif prepared.judged[0] == "approved" and prepared.executed:
                error = codec.error_response(
                    f"approval {prepared.judged[2]} covered one execution of this statement",
                    "42501", hint="Send it again to ask for a new approval.")
            if error is not None:
                text = prepared.text if prepared else f"-- Bind of {bind.statement!r}"
                judged = prepared.judged if prepared else ("block", None, None)
                self._refuse(text, "extended", ("block", judged[1], judged[2]), error, started,
                             simple=False)
                self._discarding = True
                return False
            assert prepared is not None
            # The record is made here, not at Execute: Bind plans the statement, and planning
            # can already run code (IMMUTABLE functions are evaluated), so nothing of it may
            # reach the target before its record is committed (invariant 1).
            record = self._start(prepared.text, "extended", bind.params, started,
                                 prepared.judged)
            self._bound[record.seq] = record
            self._portals[bind.portal] = (prepared, bind.params, record)
            owed.append((_BIND, record))
        elif tag == 69:  # 'E'
            portal = messages.execute_portal(body)
            found = self._portals.get(portal)
            if found is None:
                prepared = _Prepared("", f"-- unknown portal {portal!r}", _ALLOWED)
                params, bound = None, None
            else:
                prepared, params, bound = found
            prepared.executed = True
            if bound is not None and self._bound.pop(bound.seq, None) is bound:
                record = bound  # the Bind's record: this is its execution
            else:  # a portal executed again (after PortalSuspended), or unknown
                record = self._start(prepared.text, "extended", params, started,
                                     prepared.judged)
            if self.describe_portals:
                self._inject_before = codec.message(b"D", b"P" + codec.cstr(portal))
                owed.append((_DESCRIBE, _GATEWAY))
            owed.append((_EXECUTE, record))
            self._running += 1
        elif tag == 83:  # 'S'
            if body:
                raise ProtocolViolation("malformed Sync message: unexpected body")
            self._discarding = False
            owed.append((_SYNC, None))
        elif tag == 80:  # 'P'
            parsed = messages.parse(body)
            action, judged, error = self._judge(parsed.query, "extended")
            if action == "hold":
                return False
            if action == "refuse":
                self._refuse(parsed.query, "extended", judged, error, started, simple=False)
                self._discarding = True  # as PostgreSQL after an error: skip to Sync
                return False
            if parsed.name and (parsed.name in self._prepared or parsed.name in self._parsing):
                # PostgreSQL refuses this too (42P05); answering it here keeps the gateway's
                # idea of what the name means the same as the target's.
                self._refuse(parsed.query, "extended", ("block", None, None),
                             codec.error_response(f'prepared statement "{parsed.name}" '
                                                  "already exists", "42P05"),
                             started, simple=False)
                self._discarding = True
                return False
            entry = _Prepared(parsed.name, parsed.query, judged)
            self._parsing[parsed.name] = entry
            owed.append((_PARSE, entry))
        elif tag == 68:  # 'D'
            messages.describe_or_close(body, "Describe")
            owed.append((_DESCRIBE, None))
        elif tag == 67:  # 'C'
            kind, name = messages.describe_or_close(body, "Close")
            owed.append((_CLOSE, (kind, name)))
        elif tag == 88:  # 'X'
            self.terminated = True
        elif tag == 70:  # 'F'
            raise ProtocolViolation(
                "fast-path function calls are not allowed through the gateway", sqlstate="0A000"
            )
        else:
            _unknown_frontend(tag)
        return True

    def _start(
        self, text: str, protocol: str, params: str | None, started: list[StatementStarted],
        judged: _Judged = _ALLOWED,
    ) -> _Open:
        self.statements += 1
        seq = self.statements
        started.append(StatementStarted(seq, text, protocol, params, time.time(), *judged))
        return _Open(seq)

    # --- backend --------------------------------------------------------------------------

    def server_data(self, data: bytes) -> tuple[bytes, list[StatementFinished]]:
        finished: list[StatementFinished] = []
        gathered = self._server_in.take(data)
        if gathered is None:
            return b"", finished
        buf = gathered
        n = len(buf)
        pos = 0
        need = 0
        run = 0
        pieces: list[bytes] | None = None  # only when the gateway's own answers are spliced in
        limit = self.max_message_size
        owed = self._owed
        while n - pos >= 5:
            tag = buf[pos]
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big", signed=True)
            if length < 4 or length - 4 > limit:
                check_length(tag, length, limit)
            end = pos + 1 + length
            if end > n:
                need = end - pos
                break
            if tag == 68:  # 'D' DataRow: the bulk of most results, nothing to track
                pos = end
                continue
            if tag == 67:  # 'C' CommandComplete
                self._complete(buf[pos + 5 : end], finished)
            elif tag == 90:  # 'Z' ReadyForQuery
                self.transaction_status = buf[pos + 5 : end]
                self._ready(finished)
            elif tag == 69:  # 'E'
                self._error(buf[pos + 5 : end], finished)
            elif tag in (49, 50, 51):  # '1' ParseComplete '2' BindComplete '3' CloseComplete
                if owed and owed[0][0] in (_PARSE, _BIND, _CLOSE):
                    self._confirmed(*self._pop())
            elif tag in (84, 110):  # 'T' RowDescription, 'n' NoData
                if owed and owed[0][0] == _DESCRIBE and self._pop()[1] is _GATEWAY:
                    # The answer to the gateway's own Describe: re-tagged for the masker.
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[run:pos])
                    pieces.append((GATEWAY_ROW_DESCRIPTION if tag == 84 else GATEWAY_NO_DATA)
                                  + buf[pos + 1 : end])
                    run = end
            elif tag == 83:  # 'S' ParameterStatus
                self._parameter(buf[pos + 5 : end])
            elif tag in (73, 115):  # 'I' EmptyQueryResponse, 's' PortalSuspended
                if owed and owed[0][0] == _EXECUTE:
                    _, record = self._pop()
                    if record is not None:
                        self._close(record, finished)
            elif tag not in _BACKEND_KNOWN:
                shown = repr(chr(tag)) if 32 <= tag < 127 else f"0x{tag:02x}"
                raise ProtocolViolation(f"the target sent an invalid message type {shown}")
            pos = end
            if owed and owed[0][0] == _INJECT:
                if pieces is None:
                    pieces = []
                pieces.append(buf[run:pos])
                run = pos
                while owed and owed[0][0] == _INJECT:
                    error, simple = self._pop()[1]
                    pieces.append(error)
                    if simple:
                        pieces.append(codec.ready_for_query(self.transaction_status))
        self._server_in.keep(buf[pos:] if pos else buf, need)
        if self._deferred and not self._running:
            self.wants_input = True
        if pieces is not None:
            pieces.append(buf[run:pos])
            return b"".join(pieces), finished
        return (buf[:pos] if pos != n else buf), finished

    def _parameter(self, body: bytes) -> None:
        name, _, rest = body.partition(b"\x00")
        self.parameter_status(name.decode("utf-8", "replace"),
                              rest.rstrip(b"\x00").decode("utf-8", "replace"))

    def _complete(self, body: bytes, finished: list[StatementFinished]) -> None:
        owed = self._owed
        if not owed:
            return
        kind, record = owed[0]
        if record is None or kind not in (_EXECUTE, _SIMPLE):
            return
        command, rows = messages.command_rows(body)
        record.command = command
        if rows is not None:
            record.rows = (record.rows or 0) + rows if kind == _SIMPLE else rows
        if kind == _EXECUTE:
            self._pop()
            self._close(record, finished)

    def _error(self, body: bytes, finished: list[StatementFinished]) -> None:
        owed = self._owed
        if not owed:
            return
        fields = messages.error_fields(body)
        kind, record = owed[0]
        if kind == _SIMPLE:
            if record is not None:
                record.sqlstate = fields.get("C")
                record.error = fields.get("M")
            return
        if kind not in _EXTENDED_UNTIL_SYNC:
            return
        # PostgreSQL now skips everything up to the next Sync. The error belongs to the first
        # Execute still owed: the failing message (Parse, Bind or Describe, say a division by
        # zero folded at Bind) was preparing that statement. Later Executes never ran.
        first = True
        while owed and owed[0][0] != _SYNC:
            kind, record = self._pop()
            if kind == _PARSE:
                if isinstance(record, _Prepared) and self._parsing.get(record.name) is record:
                    del self._parsing[record.name]  # refused or skipped by the target
                continue
            if not isinstance(record, _Open) or kind in (_INJECT, _CLOSE):
                continue  # an injected error of a later refused statement (PostgreSQL too
                # would report only the first error of the pipeline), or a Describe
            if first:
                record.sqlstate = fields.get("C")
                record.error = fields.get("M")
                self._close(record, finished)
                first = False
            else:
                self._close(record, finished, "skipped")

    def _ready(self, finished: list[StatementFinished]) -> None:
        owed = self._owed
        while owed:
            kind, record = self._pop()
            if kind == _SYNC:
                self._close_bound(finished)
                return
            if kind == _PARSE:  # never confirmed: the target skipped it
                if isinstance(record, _Prepared) and self._parsing.get(record.name) is record:
                    del self._parsing[record.name]
                continue
            if record is None or kind not in (_SIMPLE, _EXECUTE):
                continue
            if kind == _SIMPLE:
                self._close(record, finished)
                return
            self._close(record, finished, "skipped")

    def _close_bound(self, finished: list[StatementFinished]) -> None:
        """At a Sync's ReadyForQuery: Binds that were never executed are done (planned only)."""
        if not self._bound or any(k in (_BIND, _EXECUTE) for k, _ in self._owed):
            return
        for record in list(self._bound.values()):
            if not record.closed:
                record.command = "BIND"
                finished.append(record.finish("ok"))
        self._bound.clear()

    def _confirmed(self, kind: int, payload: Any) -> None:
        """The target accepted a Parse or a Close: now the name means what it says."""
        if kind == _PARSE:
            entry: _Prepared = payload
            if self._parsing.get(entry.name) is entry:
                del self._parsing[entry.name]
            self._prepared[entry.name] = entry
        elif kind == _CLOSE:
            what, name = payload
            (self._prepared if what == "S" else self._portals).pop(name, None)

    def _close(self, record: _Open, finished: list[StatementFinished],
               status: str | None = None) -> None:
        """Finish a statement's record once (a Bind's record is met again at its Execute)."""
        if not record.closed:
            finished.append(record.finish(status))
        self._bound.pop(record.seq, None)

    def _pop(self) -> tuple[int, Any]:
        entry = self._owed.popleft()
        if entry[0] in (_SIMPLE, _EXECUTE):
            self._running -= 1
        return entry

    def open_statements(self) -> list[int]:
        """Sequence numbers of statements forwarded and not yet answered."""
        seqs = {record.seq for kind, record in self._owed
                if isinstance(record, _Open) and not record.closed}
        seqs.update(seq for seq, record in self._bound.items() if not record.closed)
        return sorted(seqs)
