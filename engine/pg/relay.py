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
Execute that follows is that statement, and further Executes of its portal continue it). Its text
comes from the Parse that named it, judged there; a statement that needs a review is held at
each Bind, so that one approval covers exactly one execution of one portal (invariant 10).
SQL-level PREPARE / EXECUTE / DEALLOCATE share the protocol's names (``sqlnames``, ``prepared``):
``EXECUTE x`` is judged as the statement ``x`` names, every time.

To know which response closes which statement, the relay keeps the queue of responses the
target owes — one entry per Parse, Bind, Describe, Execute, Close, Sync and Query — and pops it
as they arrive, following PostgreSQL's rule that after an error in the extended protocol
everything up to the next Sync is skipped. What a name (kept as bytes, ``encoding``) means
changes when the target confirms the change; a message that depends on a change not yet
answered in an earlier segment waits for that answer (``names``).

How the server reads SQL text depends on settings a statement may change without the gateway
seeing it (a function calling set_config): ``standard_conforming_strings`` and
``client_encoding``, which the server reports only at the next ReadyForQuery. Any statement may
(views, triggers, rules, defaults and operators run functions nobody named), so after one, new
text is judged only once that ReadyForQuery has come — unless it reads the same under any
setting (ASCII without a backslash, nearly all SQL: it goes on at once). When no ReadyForQuery
can come first (no Sync or Query sent since), such text is refused. Names of statements and
portals are held as their bytes converted from the client encoding, so a message with a
non-ASCII name waits (or is refused) the same way. A multi-statement Query needs
nothing more: PostgreSQL reads the whole string before running any of it. Text is decoded with
the session's client encoding.

A write a ``rows_over`` rule could hold (one UPDATE, DELETE or MERGE, alone in a simple
Query or a prepared statement) is counted before it stands (``rowcount``): the target gets it
behind the gateway's BEGIN or SAVEPOINT (``wire``; in the extended protocol, at each Execute of
its portal, as messages of the gateway's own whose answers the client never sees), what the
client sends behind it waits, and the gateway's COMMIT, RELEASE or ROLLBACK goes out after
``server_data`` (``upstream_data``); over the limit it is rolled back and held (``client_data``
hands the ``Hold`` on), and asked for again once decided (its Bind and Execute, in the extended
protocol: one approval, one execution). In the extended protocol a segment in no transaction
block runs in the gateway's own from the counted write on, committed in front of its Sync (and
rolled back after it when the segment failed, the client told it is idle), as PostgreSQL's
implicit transaction would end there. The result masker is handed a counted statement only
once it stands (``seen_late``).

A statement the gateway answers with an error in the target's place (blocked, denied,
expired, withdrawn, a shape it cannot count) fails on the target too: unless the target waits
idle outside a transaction, it gets a message of the gateway's own that fails there
(``FAILING_QUERY``, ``FAILING_PARSE``), whose error is replaced by the gateway's. What ran
before it in the segment, or in the client's block, then meets the fate an error gives it in
PostgreSQL (the implicit transaction rolled back at the Sync, the block aborted), and the
ReadyForQuery the client sees is the target's. With results masked those errors go tagged
``GATEWAY_ERROR``: they carry nothing of the target's, and pass the masker untouched. A write
held by its count and approved is counted again with the count its approver saw as its limit,
and refused over it (rows may have come to match while it waited).

Only complete messages cross the gateway (a later filter, masking, can rewrite whole messages);
large ones are gathered without quadratic copying. Anything that is not valid protocol raises
``ProtocolViolation``; the connection ends that session with an ErrorResponse and a recorded
reason.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn, cast

from engine.guardrail import Judgement, Verdict, reading
from engine.guardrail.guard import SessionGuard
from engine.guardrail.memory import Effects
from engine.pg import codec, heldtext, inforce, messages, rowcount
from engine.pg.codec import Gathering, ProtocolViolation, check_length
from engine.pg.encoding import SessionEncoding, reads_the_same
from engine.pg.names import Change, Names
from engine.pg.prepared import (
    ALLOWED,
    Judged,
    NotYet,
    Prepared,
    Statement,
    Use,
    executed,
    notes,
)
from engine.pg.sqlnames import name_uses

# What the target owes us, in order. _INJECT is the gateway's own answer (a blocked statement's
# error) that must reach the client between the target's answers to the messages around it.
_PARSE, _BIND, _DESCRIBE, _EXECUTE, _CLOSE, _SYNC, _SIMPLE, _INJECT = range(8)
# The gateway's own statements (``rowcount``): [answers still to come, whether a ReadyForQuery
# is one of them], dropped as they arrive;
# and where the answers of a counted Execute begin (what comes before is the usual path's).
_OURS, _COUNT = 8, 9
# A statement the gateway answered with an error in place of the target: the target got the
# gateway's own failing message instead (``_failing``), whose error is replaced by the
# gateway's (``(error, skip)``: skip, the extended protocol's skipping to the Sync follows).
_FAIL = 10
_OURS_TAGS = frozenset(b"123CNZ")
_GATEWAY = object()  # the record of a Describe the gateway sent itself (describe_portals)
# Tags of the answers to that Describe, as server_data hands them on. Never sent by a server
# (its tags are ASCII letters) and never to a client: ``engine.masking.pg`` drops them.
GATEWAY_ROW_DESCRIPTION = b"\x00"
GATEWAY_NO_DATA = b"\x01"
# The tag of an ErrorResponse of the gateway's own spliced among the target's answers, when
# results are masked (``marks_own``): the masker passes it untouched (it carries no target
# data, and is no answer to a statement the masker follows); ``results`` tags it 'E' again.
GATEWAY_ERROR = b"\x02"
# What the target gets in place of a statement the gateway answers with an error: a message
# that fails at once (a syntax error, before anything runs), so that the target's state is
# what the statement failing there would leave (its implicit transaction rolled back at the
# Sync, the client's block aborted). A named statement: the unnamed one is the client's.
REFUSED_SQL = b"gatewatch refused this statement"
FAILING_QUERY = codec.message(b"Q", REFUSED_SQL + b"\x00")
FAILING_PARSE = (codec.message(b"P", rowcount.RESERVED + b"\x00" + REFUSED_SQL + b"\x00\x00\x00")
               + b"H\x00\x00\x00\x04")
_EXTENDED_UNTIL_SYNC = frozenset((_PARSE, _BIND, _DESCRIBE, _EXECUTE, _CLOSE, _INJECT, _OURS,
                                  _COUNT, _FAIL))

_FRONTEND_PASS = frozenset(b"dcfH")  # CopyData, CopyDone, CopyFail, Flush: forwarded as they are
_FRONTEND_KNOWN = frozenset(b"QPBEDSCHXFdcf")
_FLUSH = b"H\x00\x00\x00\x04"
_SYNC_MESSAGE = b"S\x00\x00\x00\x04"
_SEGMENT_TEXTS = 256  # statements executed in one segment remembered as they are
_WAITING_LIMIT = 16 * 1024 * 1024
_BACKEND_KNOWN = frozenset(b"RKSZTDCENAI123tnsGHWdcVv")

SKIPPED = "not executed: an earlier message of the pipeline failed"
_UNSETTLED = ("it was sent behind a statement that may have changed how the server reads SQL "
              "(standard_conforming_strings or client_encoding), without a Sync in between, and "
              "it contains a backslash or non-ASCII characters: the gateway cannot know how the "
              "server will read it")


_UNSETTLED_NAME = ("it names a prepared statement or portal with non-ASCII bytes, sent behind a "
                   "statement that may have changed client_encoding, without a Sync in between: "
                   "the gateway cannot know which name the server will read")


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
    params: str | None = None  # a Bind's parameters (preview), shown to the approver
    # What else the approver must see: what each EXECUTE in it runs. Kept out of the verdict's
    # reason, which is stored as it is, while these go with the text, masked like it.
    notes: tuple[str, ...] = ()


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

    __slots__ = ("bound", "closed", "command", "error", "memo", "ops", "rows", "seq",
                 "sqlstate")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        # What it adds to the guard's memory of the session's own objects once it completes.
        self.memo: tuple[Effects, int] | None = None
        self.closed = False
        self.rows: int | None = None
        self.command: str | None = None
        self.sqlstate: str | None = None
        self.error: str | None = None
        self.bound: Change[_Portal] | None = None  # the portal its Bind makes
        # Name changes of its SQL (PREPARE, DEALLOCATE …), confirmed by their command tags.
        self.ops: list[tuple[Names[Any], Change[Any]]] | None = None

    def finish(self, status: str | None = None) -> StatementFinished:
        self.closed = True
        if status is None:
            status = "error" if self.sqlstate else "ok"
        error = SKIPPED if status == "skipped" else self.error
        return StatementFinished(
            self.seq, status, self.command, self.rows, self.sqlstate, error, time.time()
        )


class _Portal:
    """A portal a Bind made: one execution of a statement, approved (or not) as a whole."""

    __slots__ = ("bind", "counted", "executes", "judged", "limit", "params", "planned",
                 "ran", "record", "statement")

    def __init__(self, statement: Statement, params: str | None, record: _Open,
                 judged: Judged, executes: list[Statement | None]) -> None:
        self.statement, self.params, self.record, self.judged = (
            statement, params, record, judged)
        self.executes = executes  # what its EXECUTEs named when it was judged
        # A write a rows_over rule counts: its judgement, and its Bind, sent again when it is
        # held and approved (its portal is spent by then).
        self.counted: Judgement | None = None
        self.bind = b""
        self.limit: int | None = None  # approved: the count its approver saw
        # A counted write that calls code of the target's: the statistics read in front of
        # its Bind (filled as the answer comes), since planning may already run that code.
        self.planned: list[rowcount.Stat | None] | None = None
        self.ran = 0  # the relay's ``_ran`` right after its Bind was sent


# A reading of the settings in force owed by the target (``inforce.Reading``): answers of the
# gateway's own, dropped.
_PROBE = 11
_UNSEEN_BEFORE = ("a statement in front of it in its query string may change the settings "
                  "its approver is shown after they are read (it calls code, reads or writes "
                  "a relation, or sets a setting)")
# What ``_shown_params`` answers for parameters an approver cannot be shown whole.
TOO_LONG = "(parameters that cannot be shown)"
_UNSHOWN = (f"a parameter cannot be shown to an approver as the server reads it (longer than "
            f"{messages.SHOWN_CHARS} bytes, or binary of a type neither the Parse gave nor a "
            f"Describe of the statement answered)")
_UNSHOWN_HINT = ("Send shorter parameters, give binary parameters' types in the Parse (or "
                 "Describe the statement first), or have an operator run it.")


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


def _uncountable(judgement: Judgement) -> bytes:
    """For a write a rows_over rule counts, sent where the gateway cannot count it yet."""
    return codec.error_response(
        f'rule "{judgement.rule}" holds writes over {judgement.verdict.rows_over} rows, and '
        "the gateway counts rows only for one UPDATE, DELETE or MERGE alone in its Query or "
        "prepared statement", "0A000", hint="Send the statement on its own, or ask an "
        "operator.")


def _not_run(decision: Decision, *, counted: bool) -> bytes:
    """For a statement denied (expired, withdrawn): what became of it, truthfully. One held by
    its count did run once, to be counted, and was rolled back (``rowcount``): the client and
    the record are told so (outside attack, round 18: "The statement was not run" after such a
    run)."""
    if not counted:
        return codec.error_response(decision.message, decision.sqlstate,
                                    hint="The statement was not run.")
    return codec.error_response(
        f"{decision.message} (it was run once to count its rows, and rolled back)",
        decision.sqlstate, hint="It was not run again.")


def _not_counted(why: str, hint: str) -> bytes:
    """For a write a rows_over rule counts, in a shape the gateway cannot count soundly."""
    return codec.error_response(f"the gateway counts the rows of this write and {why}",
                                "0A000", hint=hint)


def _limits(text: str, judgement: Judgement) -> tuple[int | None, ...] | None:
    """For a Query of several statements with a counted write: the limit of each statement
    (None: not counted), or None when it cannot be counted soundly. Every statement must be
    allowed, or counted and allowed under its limit; none may be transaction control or COPY;
    each answers with one CommandComplete (``rowcount.plain_statements``)."""
    limits: list[int | None] = []
    for verdict in judgement.statements:
        if verdict.rows_over is not None:
            if verdict.under is not None and verdict.under.action != "allow":
                return None
            limits.append(verdict.rows_over)
        elif verdict.action == "allow":
            limits.append(None)
        else:
            return None
    if rowcount.plain_statements(text) != len(limits):
        return None
    return tuple(limits)


def _refusal(text: str, reason: str, hint: str | None = None) -> Judgement:
    verdict = Verdict("block", reading.RULE, reason, text, hint)
    return Judgement("block", verdict, (verdict,))


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
        self.encoding = SessionEncoding()
        self._client_in = Gathering()
        self._server_in = Gathering()
        self._owed: deque[tuple[int, Any]] = deque()
        self._prepared = Prepared(self.encoding)
        self._statements = self._prepared.names
        self._portals: Names[_Portal] = Names()
        self._bound: dict[int, _Open] = {}  # records of Binds whose Execute has not come
        self._discarding = False  # after a refused message: drop messages until Sync
        self._holding = False
        self._decision: Decision | None = None
        self._held: tuple[str, str | None, tuple[str, ...]] | None = None  # what was shown
        self.unreadable: str | None = None  # why statements cannot be judged (then refused)
        # The settings that change what a statement's literals and expressions mean
        # (``inforce.MEANING``) as the server chose them at login (its own, a role's or
        # database's defaults), where the client did not: what an approver need not be told
        # of (``login_settings``). What is in force is read when a statement is held.
        self._baseline: dict[str, str] = {}
        self._probe: inforce.Reading | None = None  # a reading under way
        self._probed: inforce.Reading | None = None  # its result, for the message it waits
        self._approved_under: dict[str, str] | None = None  # settings an approval was shown
        # Messages sent that may run code, and so change the settings in force: Queries and
        # Executes, and also a Parse (its analysis runs types' input functions: a literal of
        # an array or composite over a domain runs the domain's CHECK, which may call any
        # function), a Bind (planning evaluates IMMUTABLE functions of constants), a Describe
        # of a statement (one invalidated since its Parse is analysed again), a Close of a
        # portal (a suspended one is finished: the rest of its data-modifying WITH, its AFTER
        # triggers) and a Sync (a COMMIT fires deferred triggers). A prepared statement parsed
        # at another count than its Bind's may have been parsed under other settings than
        # those read at the Bind (outside attack round 18: a Bind of a statement calling an
        # IMMUTABLE function that ran set_config, between a held statement's Parse and Bind).
        self._ran = 0
        # A counted portal's Execute: whether nothing that may run code was sent between its
        # statement's Parse and its Bind, nor between its Bind and its Execute.
        self._count_fresh = False
        # Segments: each Sync and Query sent is a mark, answered by a ReadyForQuery (or skipped
        # after an error). A message sent now belongs to the segment of mark ``_sent + 1``.
        self._sent = 0
        self._done = 0  # marks answered or skipped
        self._reported = 0  # the last mark answered by a ReadyForQuery (settings reported)
        self._unsettled = 0  # the settings that shape reading are known once it is reported
        self._skipping = False  # the target skips what comes until the next Sync (an error)
        self._wait = 0  # the message at hand waits until this mark is done
        self.wants_input = False  # set when waiting input may go on (see server_data)
        # Relations the message at hand names that the catalog never read: it waits until the
        # connection had them read (``_looks_up``), so that code stored on them is judged.
        self.lookup: frozenset[str] | None = None
        # Column masking: right before each Execute the gateway sends a Describe of the portal
        # itself, so that the columns of the rows that follow are known even when the client
        # did not ask (drivers that cached a prepared statement's description do not), for
        # every portal and every Execute of it (a portal suspended and run again after Sync).
        # Its answer is handed on with the tag GATEWAY_ROW_DESCRIPTION or GATEWAY_NO_DATA, for
        # the masker to use and drop: the client never sees it.
        self.describe_portals = False
        # The portal the client itself described since the last message that could change
        # what it means (a Bind, a Close, a Query…): an Execute of it right after needs no
        # Describe of the gateway's (libpq describes every portal it executes).
        self._described: bytes | None = None
        self.marks_own = False  # tag the gateway's own errors GATEWAY_ERROR (results masked)
        self.own_errors = 0  # how many were tagged (``results`` counts them back)
        self._instead = b""  # the failing message sent in place of a refused one
        self._unmarked = False  # a message was sent since the last Sync or Query
        self._inject_before: bytes | None = None
        self._flush = False  # a refusal waits behind answers the target still owes
        # Per client_data call:
        self._out: list[bytes] = []
        self._reply: list[bytes] = []
        self._started: list[StatementStarted] = []
        self._finished: list[StatementFinished] = []
        self._hold: Hold | None = None
        # Counting the rows of a write (``rows_over``, ``rowcount``): the count under way, the
        # judgement and Query message it is of, the Query as the target gets it (``wire``),
        # what to send the target next (``upstream_data``), and a hold once it is over.
        self._count: rowcount.RowCount | rowcount.ExtendedCount | None = None
        self._to_count: Judgement | None = None
        self._count_query: tuple[str, bytes, str | None] | None = None  # text, unread, params
        self._wire: tuple[int, bytes] | None = None  # (before the last n bytes, insert)
        self._to_target = b""
        self._count_hold: Hold | None = None
        # The client's messages a count sends, handed to the result masker (``seen_late``)
        # only when the statement stands: over the limit, the target's answers never reach
        # the client, and the masker must not wait for them.
        self._count_sent = b""
        self._count_statement: Statement | None = None  # the counted portal's (extended)
        self._count_limits: tuple[int | None, ...] = ()  # a Query of several statements
        self._late = b""
        # The extended protocol (``rowcount.ExtendedCount``): whether the answers of the counted
        # Execute have begun (those owed before it take the usual path); the texts Executed in
        # the segment since the last Sync or Query, for whether it is in a transaction block;
        # and the block the gateway opened itself when it was not (1: open; 2: its COMMIT sent
        # before the Sync that ends the segment; 3: that segment failed, the gateway's
        # ROLLBACK is on its way).
        self._counting = False
        self._count_ended = False
        self._segment_ran = False  # an Execute was sent in this segment
        self._release = b""  # a counted write's RELEASE, sent in front of the next messages
        # A Bind over the limit, asked again once decided: the gateway's, so its BindComplete
        # is dropped (the client had one already).
        self._rebinding: Statement | None = None  # what it bound when it was counted
        # A counted portal bound and not executed yet (its raw name): until its Execute only
        # a Describe of it or a Flush may come (``_next_to_counted``).
        self._pinned_portal: bytes | None = None
        self._pinned = "counted"  # why: "counted", or "approved" (it runs right away)
        self._rebound: set[int] = set()
        self._segment: list[str] = []
        self._own_block = 0
        # An approval of a write held by its count: the limits it is counted again with (the
        # count its approver saw in place of the one it went over), and the decision, kept
        # while it waits for the answers in front of it.
        self._seen: tuple[int | None, ...] | None = None
        self._again: tuple[Decision, tuple[int | None, ...],
                           tuple[str, str | None, tuple[str, ...]]] | None = None

    # --- frontend -------------------------------------------------------------------------

    def client_data(self, data: bytes) -> ClientOutcome:
        buf = self._client_in.take(data)
        started: list[StatementStarted] = []
        self._out, self._reply, self._finished = [], [], []
        # Not narrowed to None (cast): ``_frontend`` below may hold a statement, and mypyc
        # would trust a narrowed None when ``_hold`` is read after it (store/compiled.py).
        self._hold = cast("Hold | None", None)
        self._started = started
        self.wants_input = False
        counted, self._count_hold = self._count_hold, None  # held once its count was over
        waiting = (self._holding or self._wait > self._done or self._count is not None
                   or self._own_block > 1 or self.lookup is not None
                   or self._probe is not None)
        if buf is None:  # the rest of a large message is still on its way
            if waiting and self._client_in.size > min(self.max_message_size, _WAITING_LIMIT):
                raise ProtocolViolation("too much data sent while a statement waits",
                                        sqlstate="54000")
            return ClientOutcome(b"", started, [], b"", counted)
        if waiting:
            # Reading goes on (so that a client that leaves is seen), but what may pile up
            # meanwhile is bounded: a held session must not eat the engine's memory.
            if len(buf) > min(self.max_message_size, _WAITING_LIMIT):
                raise ProtocolViolation("too much data sent while a statement waits",
                                        sqlstate="54000")
            self._client_in.keep(buf, 0)
            return ClientOutcome(b"", started, [], b"", counted)
        self._wait = 0
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
            if self._discarding and tag != 83:  # not Sync: PostgreSQL would skip it too
                keep = False
            elif tag in _FRONTEND_PASS:
                keep = True
            else:
                keep = self._frontend(tag, buf[pos + 5 : end])
                if keep and tag not in (81, 83):  # (a Sync or Query is a mark of its own)
                    self._unmarked = True
                if keep and self._probe is not None:  # a reading of the settings behind it
                    pos = end
                    break
                if (self._hold is not None or self._wait or self.lookup
                        or self._probe is not None):  # resume here later
                    break
                if self._inject_before is not None:  # the gateway's Describe, then Execute
                    self._out.append(buf[run:pos])
                    self._out.append(self._inject_before)
                    self._inject_before = None
                    run = pos
            if not keep:
                if pos > run:
                    self._out.append(buf[run:pos])
                if self._instead:
                    self._out.append(self._instead)
                    self._instead = b""
                if self._flush:  # the target must answer what came before the refusal
                    self._out.append(_FLUSH)
                    self._flush = False
                run = end
            pos = end
            if self._count is not None or self._own_block > 1:  # what follows waits
                break
        self._client_in.keep(buf[pos:] if pos else buf, need)
        if run == 0 and not self._out:
            out = buf[:pos] if pos != n else buf
        else:
            self._out.append(buf[run:pos])
            out = b"".join(self._out)
        return ClientOutcome(out, started, self._finished, b"".join(self._reply), self._hold)

    def wire(self, out: bytes) -> bytes:
        """``out`` (a ``ClientOutcome``'s) as the target gets it, with the gateway's own
        messages: a write being counted (in one Query behind the gateway's BEGIN or
        SAVEPOINT; an Execute behind them, then a Flush), the COMMIT in front of the Sync
        that ends a block the gateway opened. It may be longer than an empty ``out``. The
        masking of results reads ``out`` itself (then ``seen_late``), what the client sent."""
        wire, self._wire = self._wire, None
        if wire is not None:
            cut, inserted = wire
            at = len(out) - cut
            out = out[:at] + inserted + out[at:]
        if self._release and out:
            out, self._release = self._release + out, b""
        return out

    def seen_late(self) -> bytes:
        """The client's messages of a counted write that stands, for the result masker
        before the answers ``server_data`` hands on (they were not in ``out``)."""
        late, self._late = self._late, b""
        return late

    def upstream_data(self) -> bytes:
        """What the gateway itself sends the target after ``server_data``: the COMMIT,
        RELEASE or ROLLBACK that ends a count."""
        data, self._to_target = self._to_target, b""
        return data

    def decide(self, decision: Decision) -> None:
        """The held statement was decided; call ``client_data(b"")`` to go on."""
        self._holding = False
        self._decision = decision

    def parameter_status(self, name: str, value: str) -> None:
        """The target reports a setting (at login and whenever it changes)."""
        self.encoding.report(name, value)
        why = reading.unsafe_state(name, value) or (
            self.encoding.unreadable if name == "client_encoding" else None)
        if why is not None and self.unreadable is None:
            self.unreadable = why

    def login_settings(self, params: dict[str, str],
                       server: dict[str, str] | None = None) -> None:
        """The client's startup parameters, and the values the server gave the session at
        login (``server``, read by the gateway): those the client did not choose are the
        baseline an approver need not be told of."""
        chosen = {name.lower() for name in params}
        for name, value in (server or {}).items():
            if name.lower() in inforce.MEANING and name.lower() not in chosen:
                self._baseline[name.lower()] = value

    def _frontend(self, tag: int, body: bytes) -> bool:
        """Handle one message; False when it must not be forwarded. A handler that waits (an
        approval, or the answer to an earlier segment) sets ``_hold`` or ``_wait`` before
        anything else, and the message is handled again from the start when it may go on."""
        if self._pinned_portal is not None and not self._next_to_counted(tag, body):
            # Bound, not executed yet: anything else could run it uncounted (``FETCH p``,
            # ``cursor_to_xml('p', …)`` from another portal or a later Query).
            self._pinned_portal = None
            if self._pinned == "approved":  # it could run later, after what was shown changed
                self._refuse_extended(
                    f"-- {chr(tag)} message before an approved portal's Execute",
                    codec.error_response(
                        "an approved statement runs right after its Bind: another message "
                        "came before its Execute (what runs there could run it later, after "
                        "what its approver was shown changed)", "42501",
                        hint="Execute an approved portal right after its Bind (a Describe of "
                        "it may come between)."))
            else:
                self._refuse_extended(
                    f"-- {chr(tag)} message before a counted portal's Execute", _not_counted(
                        "a portal it counts was bound, and another message came before its "
                        "Execute (what runs there could run that portal uncounted)",
                        "Execute a portal whose rows are counted right after its Bind (a "
                        "Describe of it may come between)."))
            if tag != 83:
                return False
            # A Sync still ends the segment, the refusal's failure in front of it.
            self._inject_before, self._instead = self._instead or None, b""
        if tag not in (68, 69, 72):  # Describe, Execute, Flush
            self._described = None
        if tag == 81:  # 'Q'
            return self._query(body)
        if tag == 66:  # 'B'
            return self._bind(body)
        if tag == 69:  # 'E'
            return self._execute(body)
        if tag == 83:  # 'S'
            if body:
                raise ProtocolViolation("malformed Sync message: unexpected body")
            skipping = self._skipping
            self._discarding = self._skipping = False
            self._sent += 1
            self._ran += 1  # a COMMIT of the implicit transaction fires deferred triggers
            self._unmarked = False
            self._segment, self._segment_ran = [], False
            if self._own_block == 1:
                # The segment ran in the gateway's block: committed here, as PostgreSQL
                # commits its implicit transaction at Sync. After an error it is skipped, and
                # the Sync's answer says so (``_ready``). What follows waits for that answer.
                self._own_block = 2
                if not skipping:  # else the target skips it (and answers nothing)
                    self._wire = (len(_SYNC_MESSAGE), rowcount.COMMIT)
                    self._owed.append((_OURS, [rowcount.ANSWERS, False]))
            self._owed.append((_SYNC, None))
        elif tag == 80:  # 'P'
            return self._parse(body)
        elif tag == 68:  # 'D'
            kind, name = messages.describe_or_close(body, "Describe")
            described: Statement | None = None
            if kind == "P":
                self._described = name
            else:  # its ParameterDescription gives the types the Parse left to the server
                key = self.encoding.name(name)
                if key is not None:
                    described = self._statements.lookup(key, self._sent + 1)[0]
                self._ran += 1  # one invalidated since its Parse is analysed again
            self._owed.append((_DESCRIBE, described))
        elif tag == 67:  # 'C'
            kind, raw = messages.describe_or_close(body, "Close")
            if not self._names_settled(f"-- Close of {self.encoding.show(raw)!r}", raw):
                return False
            key = self.encoding.name(raw)
            change: tuple[Names[Any], Change[Any]] | None = None
            if key is not None:  # else the target cannot convert it either, and fails
                names: Names[Any] = self._statements if kind == "S" else self._portals
                change = (names, names.change(key, None, self._sent + 1))
            if kind != "S":
                self._ran += 1  # a suspended portal is run to its end (ExecutorFinish)
            self._owed.append((_CLOSE, change))
        elif tag == 88:  # 'X'
            self.terminated = True
        elif tag == 70:  # 'F'
            raise ProtocolViolation(
                "fast-path function calls are not allowed through the gateway", sqlstate="0A000"
            )
        else:
            _unknown_frontend(tag)
        return True

    def _query(self, body: bytes) -> bool:
        text = self._text(messages.query_text(body), "simple")
        if text is None:
            return False
        if self._looks_up(text):
            return False
        if self._own_block == 1:
            # It would end the implicit transaction of the pipeline before it, which runs in
            # the gateway's block since a write was counted: refused, the block left as it is.
            self._refuse(text, "simple", ("block", None, None), _not_counted(
                "the pipeline in front of this Query runs in a transaction block of the "
                "gateway's until its Sync", "Send a Sync before a simple Query."), simple=True)
            return False
        uses = name_uses(text)
        mark = self._sent + 1
        plan = None
        judgement = None
        if uses:
            try:
                plan = self._prepared.plan(uses, mark, self.guard)
                if self.guard is not None:
                    judgement = self._prepared.strictest(self._judge_text(text), plan, mark,
                                                         self.guard)
            except NotYet as wait:
                self._wait = wait.mark
                return False
        action, judged, error = self._decide(text, "simple", judgement, plan=plan)
        if action == "hold":
            return False
        if action == "probe":
            if not self._owed:
                self._read_settings("simple")
            elif self._owed[-1][0] in (_SYNC, _SIMPLE):
                self._wait = self._sent  # read once what was sent before it is answered
            else:
                self._refuse(text, "simple", ("block", judged[1], None), codec.error_response(
                    "a statement held for an approval cannot follow extended-protocol "
                    "messages without a Sync", "0A000", hint="Send a Sync first."),
                    simple=True)
            return False
        if action == "refuse":
            self._refuse(text, "simple", judged, error, simple=True)
            return False
        count = None
        if action == "count" and not self._skipping:
            if self._owed:  # its transaction status is known once everything is answered
                self._to_count = None  # judged again then
                if judged[0] == "approved" and self._again is not None:  # decided as it was
                    self._decision, self._seen, self._held = self._again
                if self._owed[-1][0] in (_SYNC, _SIMPLE):
                    self._wait = self._sent
                else:
                    self._refuse(text, "simple", judged, codec.error_response(
                        "a statement whose rows a rows_over rule counts cannot follow "
                        "extended-protocol messages without a Sync", "0A000",
                        hint="Send a Sync first."), simple=True)
                return False
            if self.transaction_status in (b"I", b"T"):  # aborted (E): it runs nothing
                in_transaction = self.transaction_status == b"T"
                assert self._to_count is not None and self._to_count.verdict.rows_over is not None
                statements = (self._to_count.statements if self._count_limits
                              else (self._to_count.verdict,))
                count = rowcount.RowCount(self._to_count.verdict.rows_over, in_transaction,
                                          min(self.max_message_size, _WAITING_LIMIT),
                                          self._count_limits,
                                          tuple(v.tag_counts for v in statements))
                count.recount = judged[0] == "approved"
                query = codec.message(b"Q", body)
                self._count_query = (text, query, None)
                self._count_sent = query
                self._wire = (0, rowcount.wrapped(body, in_transaction))
        if count is None:
            self._to_count = None  # nothing counted (an error came first): it runs as it is
        record = self._start(text, "simple", None, judged)
        if self._skipping:  # an error before it and no Sync since: the target skips it
            self._finished.append(record.finish("skipped"))
            return True
        self._sent = mark
        self._ran += 1
        self._prepared_here(text, plan, self._ran)
        self._unmarked = False
        self._unsettled = mark
        self._segment, self._segment_ran = [], False
        if plan:
            record.ops = self._prepared.changes(plan, mark, self._portals)
        self._owed.append((_SIMPLE, record))
        self._count = count
        return count is None  # a counted Query goes to the target as ``wire`` has it

    def _parse(self, body: bytes) -> bool:
        parsed = messages.parse(body)
        if not self._names_settled(self.encoding.show(parsed.query), parsed.name):
            return False
        key = self.encoding.name(parsed.name)
        if key is None:
            self._refuse_extended(self.encoding.show(parsed.query), codec.error_response(
                "the prepared statement's name is not valid in the session's client encoding",
                "22021"))
            return False
        mark = self._sent + 1
        existing = None
        if key:  # a name in use is refused; unless that is not known yet: the target decides
            existing, _ = self._statements.lookup(key, mark, strict=True)
        text = self._text(parsed.query, "extended")
        if text is None:
            return False
        if self._looks_up(text):
            return False
        typed = parsed.user_typed
        judgement = self._judge_text(text, typed=typed) if self.guard is not None else None
        if (judgement is not None and judgement.action == "block"
                and judgement.verdict.rows_over is None):  # a count is judged at its Bind
            self._refuse(text, "extended", ("block", judgement.rule, None),
                         _blocked(judgement), simple=False)
            self._discarding = True  # as PostgreSQL after an error: skip to Sync
            return False
        if existing is not None:
            # PostgreSQL refuses this too (42P05); answering it here keeps the gateway's
            # idea of what the name means the same as the target's.
            self._refuse_extended(text, codec.error_response(
                f'prepared statement "{self.encoding.show(parsed.name)}" already exists',
                "42P05"))
            return False
        # Not held here even when it needs a review: each Bind is judged. Its analysis may run
        # code (a domain's CHECK, through a type's input function): it counts as run.
        self._ran += 1
        entry = Statement(text, judgement, name_uses(text), typed=typed, types=parsed.types,
                          ran=self._ran)
        if (judgement is not None and judgement.action == "review" and not self._skipping
                and (judgement.verdict.rows_over is None or key)):
            # One to hold at its Bind: what its literals mean is fixed now (a date under
            # DateStyle), so the settings now are what an approver must see then. One a
            # count may hold is read in front of its Execute (``_over``), which is when an
            # unnamed one is parsed too; a named one may be bound again much later.
            self._owed.append((_PARSE, self._statements.change(key, entry, mark)))
            self._read_settings(self._reading_kind(), entry)  # behind the Parse
            return True
        self._owed.append((_PARSE, self._statements.change(key, entry, mark)))
        return True

    def _next_to_counted(self, tag: int, body: bytes) -> bool:
        """Whether a message may come between a counted portal's Bind and its Execute: what
        runs nothing (a Flush, a Parse, a Describe of it or of a statement, a Close of a
        statement), or that Execute or a Close of it (either ends the wait). Not a Query, a
        Sync (the portal would outlive it in a transaction), another Bind (planning may
        run code) or another Execute."""
        if tag in (72, 80):  # Flush, Parse
            return True
        if tag in (68, 67):  # Describe, Close
            if body[:1] == b"S" or body[1:-1] == self._pinned_portal:
                if tag == 67 and body[:1] == b"P":
                    self._pinned_portal = None
                return True
            return False
        if tag == 69 and messages.execute_portal(body) == self._pinned_portal:
            self._pinned_portal = None
            return True
        return False

    def _bind(self, body: bytes) -> bool:
        bind = messages.bind(body, self.encoding.codec)
        if not self._names_settled(f"-- Bind of {self.encoding.show(bind.statement)!r}",
                                   bind.statement, bind.portal):
            return False
        key = self.encoding.name(bind.statement)
        portal = self.encoding.name(bind.portal)
        mark = self._sent + 1
        statement = None
        if key is not None and portal is not None:
            statement, wait = self._statements.lookup(key, mark)
            if wait:
                self._wait = wait
                return False
        if statement is None:  # fail closed: never run what the gateway did not judge
            shown = self.encoding.show(bind.statement)
            self._refuse(f"-- Bind of {shown!r}", "extended", ("block", None, None),
                         codec.error_response(f'prepared statement "{shown}" does not exist',
                                              "26000"), simple=False)
            self._discarding = True
            return False
        if statement.types and bind.params is not None:  # binary ones read by their type
            bind = messages.bind(body, self.encoding.codec, statement.types)
        if self._rebinding is not None and statement is not self._rebinding:
            # Its name was given to another statement in the pipeline after the Bind: the
            # approval was of what it bound then (invariant 10).
            self._refuse_extended(statement.text, codec.error_response(
                "the prepared statement this write was bound from was replaced before it was "
                "approved, so the gateway did not run it", "42501", hint="Run it again."))
            return False
        judgement = statement.judgement
        if judgement is not None and (judgement.remembered or judgement.touches
                                      or judgement.builtins):
            # The memory may have changed, or what the catalog knows of the relations it
            # names (a trigger added since the Parse: a driver keeps its prepared
            # statements for the connection's life).
            judgement = self._judge_text(statement.text, typed=statement.typed)
        executes: list[Statement | None] = []
        counted = None
        plan: list[Use] | None = None
        if (statement.allowed is not None and self.unreadable is None
                and judgement is statement.judgement):
            judged = statement.allowed  # the common case: decided once, at Parse
        else:
            if statement.uses:
                try:
                    plan = self._prepared.plan(statement.uses, mark, self.guard)
                    if judgement is not None and self.guard is not None:
                        judgement = self._prepared.strictest(judgement, plan, mark, self.guard)
                except NotYet as wait:
                    self._wait = wait.mark
                    return False
                executes = executed(plan)
            action, judged, error = self._decide(
                statement.text, "extended", judgement, bind.params, plan,
                shown=functools.partial(self._shown_params, body, statement.types),
                prepared=statement)
            if action == "hold":
                return False
            if action == "probe":
                if self._skipping:  # an error before it: the target skips it, and the reading
                    self._probed = inforce.Reading("flushed")
                    self._probed.skipped("an earlier message of the pipeline failed")
                    return self._bind(body)
                self._read_settings(self._reading_kind())
                return False
            if action == "refuse":
                self._refuse(statement.text, "extended", judged, error, simple=False)
                self._discarding = True
                return False
            if action == "count":  # at its Execute (``_counter``)
                counted, self._to_count = self._to_count, None
        assert portal is not None
        # The record is made here, not at Execute: Bind plans the statement, and planning
        # can already run code (IMMUTABLE functions are evaluated), so nothing of it may
        # reach the target before its record is committed (invariant 1).
        record = self._start(statement.text, "extended", bind.params, judged)
        if self._rebinding is not None:
            self._rebinding = None
            self._rebound.add(record.seq)
        self._bound[record.seq] = record
        made = _Portal(statement, bind.params, record, judged, executes)
        if judged[0] == "approved" and counted is None:
            # Approved: it runs right away, or not at all (``_next_to_counted``).
            self._pinned_portal, self._pinned = bind.portal, "approved"
        if counted is not None:
            made.counted, made.bind = counted, codec.message(b"B", body)
            self._pinned_portal, self._pinned = bind.portal, "counted"
            if counted.verdict.calls_code:
                # PostgreSQL plans it at this Bind, and planning runs IMMUTABLE functions of
                # constants: the statistics are read in front of it too (``ExtendedCount``).
                made.planned = []
                self._inject_before = rowcount.STAT_
                self._owed.append((_OURS, [rowcount.ANSWERS, False, made.planned]))
            if judged[0] == "approved":  # counted again: over what the approver saw, refused
                made.limit = self._count_limits[0]
        record.bound = self._portals.change(portal, made, mark)
        self._owed.append((_BIND, record))
        self._unsettled = mark
        self._ran += 1  # planning evaluates IMMUTABLE functions of constants: code runs
        made.ran = self._ran
        return True

    def _execute(self, body: bytes) -> bool:
        raw = messages.execute_portal(body)
        if not self._names_settled(f"-- Execute of portal {self.encoding.show(raw)!r}", raw):
            return False
        key = self.encoding.name(raw)
        mark = self._sent + 1
        portal = None
        if key is not None:
            portal, wait = self._portals.lookup(key, mark)
            if wait:
                self._wait = wait
                return False
        count = None
        if (portal is not None and portal.judged[0] == "approved" and not self._skipping
                and body[len(raw) + 1 :] != b"\x00\x00\x00\x00"):
            # With a row limit it would stop and go on later, after other statements (a SET)
            # changed what its approver was shown.
            self._refuse_extended(portal.statement.text, codec.error_response(
                "an approved statement runs whole, at once: this Execute has a row limit",
                "42501", hint="Execute it without a row limit (fetch its rows as they come)."))
            return False
        if portal is not None and not self._skipping:
            if self._own_block == 1 and rowcount.transaction_effect(portal.statement.text):
                self._refuse_extended(portal.statement.text, _not_counted(
                    "the pipeline runs in a transaction block of the gateway's until its Sync, "
                    "which this statement would change", "Send a Sync before it."))
                return False
            if portal.counted is not None:
                if self._done < self._sent:  # the status its segment began with, first
                    self._wait = self._sent
                    return False
                count = self._counter(raw, body, portal)
                if count is None:
                    return False
        if portal is None:  # a cursor of SQL DECLARE (judged there), or nothing at all
            record = self._start(f"-- unknown portal {self.encoding.show(raw)!r}",
                                 "extended", None)
        elif portal.record.seq in self._bound:
            record = portal.record  # the Bind's record: this is its execution
            uses = portal.statement.uses
            if uses:
                # EXECUTE x finds x when it runs, not when it is bound: it must still name
                # what was judged (and approved) at the Bind.
                try:
                    plan = self._prepared.plan(uses, mark, self.guard)
                except NotYet as wait:
                    self._wait = wait.mark
                    return False
                if any(a is not b for a, b in zip(executed(plan), portal.executes,
                                                  strict=True)):
                    self._refuse_extended(portal.statement.text, codec.error_response(
                        "a prepared statement this portal executes was replaced after it was "
                        "bound", "42501", hint="Bind it again."))
                    return False
                record.ops = self._prepared.changes(plan, mark, self._portals)
                self._prepared_here(portal.statement.text, plan, self._ran + 1)
            del self._bound[record.seq]
        else:  # the same execution goes on (after PortalSuspended)
            record = self._start(portal.statement.text, "extended", portal.params,
                                 portal.judged)
        self._segment_ran = True
        self._ran += 1
        if portal is not None:
            self._executed(portal.statement.text)
        describe = b""
        described, self._described = self._described == raw, None
        if count is not None:
            self._owed.append((_COUNT, None))
        if self.describe_portals and not (described and count is None):
            # (A counted Execute has the gateway's statements between the client's Describe
            # and its rows: described again, right before them.)
            describe = codec.message(b"D", b"P" + raw + b"\x00")
            self._owed.append((_DESCRIBE, _GATEWAY))
        self._owed.append((_EXECUTE, record))
        self._unsettled = mark
        if count is None:
            self._inject_before = describe or None
            return True
        # Counted: behind the gateway's BEGIN (no block yet) and SAVEPOINT, then a Flush;
        # the count under way holds what the client sends next (``_counted``).
        assert portal is not None and portal.counted is not None
        execute = describe + codec.message(b"E", body)
        self._unmarked = True
        self._wire = (0, (rowcount.BEGIN if count.begins else b"")
                      + (rowcount.SAVEPOINT_ if count.savepoint else b"") + rowcount.STAT_
                      + execute + rowcount.IMMEDIATE_ + rowcount.STAT_ + _FLUSH)
        self._count, self._count_sent = count, execute
        self._to_count = portal.counted
        self._count_statement = portal.statement
        # (This Execute was counted in ``_ran`` already.)
        self._count_fresh = portal.ran == self._ran - 1 and (
            portal.ran == portal.statement.ran + 1)
        self._count_query = (portal.statement.text, portal.bind + codec.message(b"E", body),
                             self._shown_params(portal.bind[5:], portal.statement.types))
        return False

    def _prepared_here(self, text: str, plan: list[Use] | None, ran: int) -> None:
        """The SQL PREPAREs of a statement sent now (to run as the ``ran``-th) parse under
        the settings in force: read when it was approved, if it is its text's only
        statement; else not known."""
        under, self._approved_under = self._approved_under, None
        made = [step.prepared for step in plan or () if step.prepared is not None]
        if not made:
            return
        alone = under is not None and len(self._judge_text(text).statements) == 1
        for statement in made:
            statement.ran = ran
            statement.parsed = under if alone else None

    def _executed(self, text: str) -> None:
        """Remember what the segment executed; folded once it grows (a pipeline of many
        Executes without a Sync), keeping only whether it opened or closed a block."""
        segment = self._segment
        if segment and segment[-1] == text:
            return
        segment.append(text)
        if len(segment) > _SEGMENT_TEXTS:
            effect = self._segment_effect()
            segment.clear()
            if effect is not None:
                segment.append("BEGIN" if effect == rowcount.TRANSACTION_OPENS else "COMMIT")

    def _segment_effect(self) -> str | None:
        """Whether the statements executed in this segment leave a block open or closed,
        or None: they change nothing."""
        last = None
        for text in self._segment:
            effect = rowcount.transaction_effect(text)
            if effect is not None and effect != rowcount.TRANSACTION_SAME:
                last = effect
        return last

    def _counter(self, raw: bytes, body: bytes,
                 portal: _Portal) -> rowcount.ExtendedCount | None:
        """The count of a counted portal's Execute, everything before it answered; or None
        when it is refused: a shape the gateway cannot count soundly (fail closed)."""
        assert portal.counted is not None and portal.counted.verdict.rows_over is not None
        limit = portal.counted.verdict.rows_over if portal.limit is None else portal.limit
        if body[len(raw) + 1 :] != b"\x00\x00\x00\x00":
            error = _not_counted("a row limit on its Execute would leave it unfinished when "
                                 "counted", "Execute it without a row limit (max_rows 0).")
        elif (raw == rowcount.RESERVED or rowcount.RESERVED in self._statements.live
              or rowcount.RESERVED in self._portals.live) or any(
                c.key == rowcount.RESERVED for c in self._statements.pending) or any(
                c.key == rowcount.RESERVED for c in self._portals.pending):
            error = _not_counted(f"{rowcount.RESERVED.decode()} is a name it uses for that",
                                 "Name your statements and portals otherwise.")
        else:
            in_block = self._own_block == 1 or self.transaction_status != b"I"
            if not self._own_block:  # the status is the segment's start: what ran since
                effect = self._segment_effect()
                if effect is not None:
                    in_block = effect == rowcount.TRANSACTION_OPENS
            begins = not in_block
            if begins:
                self._own_block = 1
            # Nothing ran before it in a block of the gateway's: that block is the savepoint.
            count = rowcount.ExtendedCount(limit, begins, raw,
                                           min(self.max_message_size, _WAITING_LIMIT),
                                           savepoint=not begins or self._segment_ran,
                                           tag_counts=portal.counted.verdict.tag_counts)
            count.recount = portal.limit is not None
            count.planned = portal.planned
            return count
        self._refuse_extended(portal.statement.text, error)
        return None

    # --- reading and judging --------------------------------------------------------------

    def _text(self, raw: bytes, protocol: str) -> str | None:
        """SQL text as the server will read it, or None: waiting (``_wait``) or refused."""
        if self._unsettled > self._reported and self.guard is not None and (
                not self._skipping and not reads_the_same(raw)):
            if self._unsettled <= self._sent and self._sent > self._done:
                self._wait = self._done + 1  # an answer will come first: look again then
                return None
            # The statement is in the segment still open: no ReadyForQuery comes before the
            # server reads this text.
            shown = self.encoding.show(raw)
            judgement = _refusal(shown, _UNSETTLED, "Send a Sync (or wait for the results) "
                                 "before this statement.")
            self._refuse(shown, protocol, ("block", reading.RULE, None), _blocked(judgement),
                         simple=protocol == "simple")
            self._discarding = protocol != "simple"
            return None
        text = self.encoding.decode(raw)
        if text is None:
            if self.guard is None:
                return self.encoding.show(raw)  # the target will refuse it
            shown = self.encoding.show(raw)
            self._refuse(shown, protocol, ("block", None, None), codec.error_response(
                f'invalid byte sequence for encoding "{self.encoding.client}"', "22021"),
                simple=protocol == "simple")
            self._discarding = protocol != "simple"
        return text

    def _names_settled(self, shown: str, *raws: bytes) -> bool:
        """Whether a message's names can be looked up now: False when it waits (``_wait``)
        or was refused. A name is held as its bytes converted from the client encoding, so
        after a statement that may have changed client_encoding a non-ASCII name may be
        another name to the server (issue 12: b'\\xc3\\xa9' read as LATIN1 after a function
        set it named the UPDATE, not the SELECT the gateway looked up). It waits for the
        settings like SQL text does, whether or not the session is guarded: the record must
        say what ran (ARCHITECTURE.md invariants 10 and 11)."""
        if (self._unsettled <= self._reported or self._skipping
                or all(raw.isascii() for raw in raws)):
            return True
        if self._unsettled <= self._sent and self._sent > self._done:
            self._wait = self._done + 1  # an answer will come first: look again then
            return False
        judgement = _refusal(shown, _UNSETTLED_NAME, "Send a Sync (or wait for the results) "
                             "before this message.")
        self._refuse(shown, "extended", ("block", reading.RULE, None), _blocked(judgement),
                     simple=False)
        self._discarding = True
        return False

    def _looks_up(self, text: str) -> bool:
        """Whether ``text`` waits for relations it names to be read from the catalog first
        (``lookup``; the connection reads them and asks again): a trigger, rule or view
        made on the target is judged only from what the catalog says of it."""
        if self.guard is None or self.guard.stored_code is None or self.unreadable is not None:
            return False
        names = self.guard.unread(text)
        if names:
            self.lookup = names
            return True
        return False

    def _judge_text(self, text: str, *, typed: bool = False) -> Judgement:
        assert self.guard is not None
        if self.unreadable is not None:
            return _refusal(text, f"{self.unreadable}, so the gateway cannot read SQL as the "
                            "server does")
        return self.guard.judge(text, typed=typed)

    @property
    def reading(self) -> str | None:
        """How the settings in force are being read (``inforce.Reading.how``), or None."""
        return self._probe.how if self._probe is not None else None

    def _reading_kind(self) -> str:
        """How the settings are read inside a segment (``inforce``): behind a Sync of the
        gateway's where the segment bound and executed nothing yet, else behind a Flush."""
        return "flushed" if self._segment_ran or self._bound or self._own_block else "synced"

    def _unseen_before(self, text: str) -> bool:
        """Whether a statement in front of the last one to hold in ``text`` may change the
        settings in force after they are read (``heldtext.unseen_before``)."""
        verdicts = self._judge_text(text).statements
        held = max((i for i, v in enumerate(verdicts) if v.action != "allow"), default=0)
        if held == 0:
            return False
        guard = self.guard
        assert guard is not None
        return (heldtext.unseen_before(text, held, guard.shadowed)
                or guard.may_be_users(heldtext.front_names(text, held)))

    def _read_settings(self, how: str, statement: Statement | None = None) -> None:
        """Read the settings in force behind what was sent (``inforce``): for ``statement``
        (at its Parse), or for the message that asked, handled again once they are read
        (``_probed``)."""
        probe = inforce.Reading(how, statement)
        sql = (inforce.SIMPLE if how == "simple" else rowcount.statement(inforce.SQL)
               + (rowcount.SYNC if how == "synced" else _FLUSH))
        self._wire = (0, sql)
        self._probe = probe
        self._owed.append((_PROBE, probe))

    def _settings_read(self, probe: inforce.Reading) -> None:
        """A reading is done: the message that asked for it goes on."""
        self._probe = None
        if probe.statement is not None:
            probe.statement.parsed = probe.values
        else:
            self._probed = probe
        self.wants_input = True

    def _shown_params(self, body: bytes, types: tuple[int, ...]) -> str | None:
        """A Bind's parameters whole, for its approver (the record keeps a preview): what is
        approved is exactly what runs (outside attack on issue 12: a 17th parameter, or the
        end of a long one, ran unseen). One that cannot be shown as the server reads it
        (longer than ``messages.SHOWN_CHARS``, binary of a type not given) cannot be approved:
        ``TOO_LONG``, and the statement is refused."""
        shown = messages.bind(body, self.encoding.codec, types, full=True)
        return TOO_LONG if shown.cut else shown.params

    def _decide(self, text: str, protocol: str, judgement: Judgement | None,
                params: str | None = None, plan: list[Use] | None = None,
                shown: Callable[[], str | None] | None = None,
                prepared: Statement | None = None,
                ) -> tuple[str, Judged, bytes]:
        """``allow``, ``refuse`` (with the ErrorResponse to send) or ``hold`` for a statement
        about to be sent; or ``probe``: the settings in force are to be read first (its
        message is handled again once they are: ``_probed``). ``shown``: the parameters as
        an approver is to see them. ``prepared``: the prepared statement it binds."""
        decision, self._decision = self._decision, None
        seen, self._seen = self._seen, None  # (only what was held by its count has it)
        if self.guard is None:
            return "allow", ALLOWED, b""
        if judgement is None:
            judgement = self._judge_text(text)
        elif self.unreadable is not None:
            judgement = self._judge_text(text)
        action = judgement.action
        if decision is not None and not decision.approved:
            # A refusal is final, whatever the statement is judged now (what the catalog
            # knows of its tables may have changed since it was held).
            self._held = None
            return "refuse", ("denied", judgement.rule, decision.approval), _not_run(
                decision, counted=seen is not None)
        if action == "allow":
            return "allow", ("allow", judgement.rule, None), b""
        under = judgement.verdict.under
        if (judgement.verdict.rows_over is not None and decision is None
                and (under is None or under.action == "allow")):
            # (Where another rule would hold or refuse it under the limit too, no count can
            # let it run: it meets the counted rule's action, the stricter, at once.)
            limits = None
            if len(judgement.statements) != 1 and protocol == "simple" and not plan:
                limits = _limits(text, judgement)
            if (len(judgement.statements) != 1 and limits is None) or plan:
                return "refuse", ("block", judgement.rule, None), _uncountable(judgement)
            self._to_count, self._count_limits = judgement, limits or ()
            return "count", ("count", judgement.rule, None), b""
        if action == "block":
            return "refuse", ("block", judgement.rule, None), _blocked(judgement)
        if shown is not None:
            params = shown()
            if params is TOO_LONG:
                return "refuse", ("block", judgement.rule, None), codec.error_response(
                    f'statement held by rule "{judgement.rule}" refused: {_UNSHOWN}',
                    "42501", hint=_UNSHOWN_HINT)
        if protocol == "simple" and self._unseen_before(text):
            return "refuse", ("block", judgement.rule, None), codec.error_response(
                f'statement held by rule "{judgement.rule}" refused: {_UNSEEN_BEFORE}',
                "42501", hint="Send it in a query string of its own.")
        if any(heldtext.imitates_notes(t) for t in (
                text, params or "", *(s.text for s in executed(plan or []) if s is not None))):
            return "refuse", ("block", judgement.rule, None), codec.error_response(
                f'statement held by rule "{judgement.rule}" refused: a line or comment in it '
                "(in a string or a quoted name too) could pass for one of the lines the gateway "
                "adds for its approver", "42501",
                hint="Take it out (or write it in ASCII without the gateway's name, and no line "
                "beginning with -- after a blank other than a space or tab).")
        if heldtext.declares(text):
            return "refuse", ("block", judgement.rule, None), codec.error_response(
                f'statement held by rule "{judgement.rule}" refused: {heldtext.DECLARES}',
                "42501", hint="Run its query without a cursor to have it approved.")
        reading, self._probed = self._probed, None
        if reading is None:  # asked again once read: what was decided is kept for it
            self._decision, self._seen = decision, seen
            return "probe", ("review", judgement.rule, None), b""
        if reading.values is None:
            return "refuse", ("block", judgement.rule, None), codec.error_response(
                f'statement held by rule "{judgement.rule}" refused: the gateway could not '
                f"read the settings in force to show its approver ({reading.failed})",
                "42501", hint="End the failed transaction (ROLLBACK), then run it again.")
        if any(s is not None and s.ran != self._ran and s.parsed != reading.values
               and inforce.has_literals(s.text) for s in (prepared, *executed(plan or []))):
            # Parsed (and perhaps planned) after other settings were in force, or before
            # other statements ran and unread: its literals may mean what the approver is not
            # shown (a date read under another DateStyle).
            return "refuse", ("block", judgement.rule, None), codec.error_response(
                f'statement held by rule "{judgement.rule}" refused: it was prepared before '
                "other statements ran, under settings the gateway did not read or that are not "
                "those in force now, so an approver cannot be shown what its literals mean",
                "42501",
                hint="Prepare it again right before it runs (or run it unprepared).")
        shown_notes = notes(plan) + inforce.note(reading.values, self._baseline)
        if heldtext.stores_code(text):
            shown_notes += (heldtext.STORED,)
        about = (text, params, shown_notes)
        # An approval is about what the approver was shown (a name may have come to mean
        # something else meanwhile: a change skipped by the target); a refusal is final.
        if decision is None or (decision.approved and self._held != about):
            self._holding = True
            self._held = about
            self._hold = Hold(text, protocol, judgement, params, shown_notes)
            return "hold", ("review", judgement.rule, None), b""
        self._held = None
        if decision.approved:
            self._approved_under = reading.values
            if seen is not None and judgement.verdict.rows_over is not None:
                # Counted again at once: refused if it now writes more than was approved.
                self._to_count, self._count_limits = judgement, seen
                self._again = (decision, seen, about)
                return "count", ("approved", judgement.rule, decision.approval), b""
            return "allow", ("approved", judgement.rule, decision.approval), b""
        return "refuse", ("denied", judgement.rule, decision.approval), _not_run(
            decision, counted=seen is not None)

    def _refuse(self, text: str, protocol: str, judged: Judged, error: bytes, *,
                simple: bool) -> None:
        """Answer a statement the gateway will not send: record it and queue its error."""
        self._rebinding = None
        record = self._start(text, protocol, None, judged)
        fields = messages.error_fields(error[5:])
        record.sqlstate, record.error = fields.get("C"), fields.get("M")
        self._finished.append(record.finish("blocked" if judged[0] == "block" else "denied"))
        if not self._skipping and not self._idle():
            # The target fails in its place (``_failing``): what ran before it in the segment
            # or the client's block meets the fate PostgreSQL gives it after an error.
            if simple and self._own_block == 1:
                # In the middle of a pipeline the gateway runs in its block: that block fails
                # (rolled back at the Sync), and the client hears the Query's end at once.
                self._instead = self._failing(
                    error + codec.ready_for_query(self.transaction_status), skip=True)
            else:
                self._instead = self._failing(error, skip=not simple)
            return
        # The target skips what comes until the next Sync (an earlier error): nothing to fail.
        if self._owed:
            # After what the target owes: a Flush makes it answer now, as PostgreSQL answers
            # an error at once (the client may wait for it without a Sync).
            self._owed.append((_INJECT, (error, simple)))
            self._flush = True
        else:
            self._reply.append(error + (codec.ready_for_query(self.transaction_status)
                                        if simple else b""))

    def _idle(self) -> bool:
        """Whether the target waits at a ReadyForQuery that said it is in no transaction (or
        in an aborted one), with nothing sent since: a statement failing there changes
        nothing, and the gateway answers a refusal itself (no round trip)."""
        return (not self._owed and not self._unmarked and self._done == self._sent
                and not self._own_block and not self._release
                and self.transaction_status in (b"I", b"E"))

    def _own(self, error: bytes) -> bytes:
        """One of the gateway's own ErrorResponses as it goes among the target's answers
        (tagged as it is handed on: ``results`` counts the tags it restores)."""
        if not self.marks_own:
            return error
        self.own_errors += 1
        return GATEWAY_ERROR + error[1:]

    def _failing(self, reply: bytes, *, skip: bool) -> bytes:
        """The message the target gets in place of a statement the gateway answers with
        ``reply`` (an ErrorResponse first): a Query that fails (``skip`` False, a Query of the
        simple protocol), else a Parse that fails, and a Flush (the client may wait for the
        error without a Sync), after which the target skips to the Sync. Its error is dropped
        and ``reply`` goes to the client in its place; the ReadyForQuery is the target's."""
        self._owed.append((_FAIL, (reply, skip)))
        if skip:
            return FAILING_PARSE
        self._sent += 1  # a Query: a mark, answered by its ReadyForQuery
        self._unmarked = False
        self._segment, self._segment_ran = [], False
        self._owed.append((_SIMPLE, None))
        return FAILING_QUERY

    def _refuse_extended(self, text: str, error: bytes) -> None:
        self._refuse(text, "extended", ("block", None, None), error, simple=False)
        self._discarding = True

    def _start(self, text: str, protocol: str, params: str | None,
               judged: Judged = ALLOWED) -> _Open:
        self.statements += 1
        seq = self.statements
        self._started.append(StatementStarted(seq, text, protocol, params, time.time(),
                                              *judged))
        record = _Open(seq)
        if self.guard is not None:
            record.memo = self.guard.started(text)
        return record

    # --- backend --------------------------------------------------------------------------

    def server_data(self, data: bytes) -> tuple[bytes, list[StatementFinished]]:
        if self._count is None:
            return self._server_data(data)
        before = b""
        finished: list[StatementFinished] = []
        if isinstance(self._count, rowcount.ExtendedCount) and not self._counting:
            # Answers to what the client sent in front of the counted Execute: the usual path,
            # up to where the count's own answers begin (``_COUNT``).
            before, finished = self._server_data(data)
            data = b""
            if self._count_now() is None or self._owed[0][0] != _COUNT:
                return before, finished  # not yet; or given up (an error came first)
            self._owed.popleft()
            self._counting = True
        direct, data = self._counted(data, finished)
        if self._count_now() is not None:
            return before, finished
        self._counting = False
        out, more = self._server_data(data)
        return before + direct + out, finished + more

    def _count_now(self) -> rowcount.RowCount | rowcount.ExtendedCount | None:
        """``_count`` read anew after a call that may have ended it: read in place, mypy (and
        mypyc, which trusts it) would take it for what it was narrowed to before the call."""
        return self._count

    def _counted(self, data: bytes, finished: list[StatementFinished]) -> tuple[bytes, bytes]:
        """The target's answers while a write is counted: (bytes for the client now, bytes
        for the usual path once the count is done: the statement's answers as if it had run
        alone, and whatever followed them)."""
        count = self._count
        assert count is not None
        buf = self._server_in.take(data)
        if buf is None:
            return b"", b""
        n, pos, need, limit = len(buf), 0, 0, self.max_message_size
        while n - pos >= 5:
            tag = buf[pos]
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big", signed=True)
            if length < 4 or length - 4 > limit:
                check_length(tag, length, limit)
            end = pos + 1 + length
            if end > n:
                need = end - pos
                break
            if tag not in _BACKEND_KNOWN:
                shown = repr(chr(tag)) if 32 <= tag < 127 else f"0x{tag:02x}"
                raise ProtocolViolation(f"the target sent an invalid message type {shown}")
            if tag == 83:  # 'S' ParameterStatus: known at once (the usual path sees it again)
                self._parameter(buf[pos + 5 : end])
            count.message(tag, buf[pos:end])
            pos = end
            self._to_target += count.to_target
            count.to_target = b""
            if count.result is not None:
                break
        if count.result is None:
            self._server_in.keep(buf[pos:], need)
            return b"", b""
        self._server_in.keep(b"", 0)
        self._count = None
        if self.guard is not None and count.search_path is not None:
            # Code it ran may have put a schema ahead of pg_catalog (set_config in a view or
            # a function, an UPDATE of pg_settings): no ParameterStatus says so.
            self.guard.search_path_seen(count.search_path.decode(errors="replace"))
        self.wants_input = True  # what the client sent meanwhile goes on (or the hold)
        sent, self._count_sent = self._count_sent, b""
        if isinstance(count.result, bytes):
            if isinstance(count, rowcount.ExtendedCount) and count.released:
                # Sent in front of what the client sends next (its Sync, most often: one
                # write, one wake-up of the server), answered after the Execute's answers.
                self._release = rowcount.RELEASE
                self._owed.append((_OURS, [rowcount.ANSWERS, False]))
            self._to_count = self._count_query = None
            self._late = sent  # the statement stands (or failed): its answers are masked
            return b"", count.result + buf[pos:]
        extended = isinstance(count, rowcount.ExtendedCount)
        self._count_ended = isinstance(count, rowcount.ExtendedCount) and count.ended
        return self._over(count, count.result, finished, extended), buf[pos:]

    def _over(self, count: rowcount.RowCount | rowcount.ExtendedCount, over: rowcount.Over,
              finished: list[StatementFinished], extended: bool) -> bytes:
        """A counted write was rolled back: its record says so; it is held for an approval
        (and asked for again: ``client_data`` hands the hold on) or refused. In the extended
        protocol what is asked again is its Bind and Execute (its portal is spent), and a
        refusal skips to the Sync, as an error there would. An approved write counted again
        (``recount``) that now writes more rows than the approver saw is refused."""
        assert self._to_count is not None and self._count_query is not None
        if extended:
            if self._count_ended:  # its block rolled back whole: the segment's is implicit
                self._own_block = 0
            if self._owed[0][0] == _DESCRIBE:  # the gateway's own, answered and dropped
                self._owed.popleft()
            kind, record = self._owed.popleft()
            assert kind == _EXECUTE
            self._bound.pop(record.seq, None)
        else:
            kind, record = self._owed.popleft()
            assert kind == _SIMPLE
            self._done += 1
            self._reported = self._done
            self.transaction_status = over.status
        record.command, record.rows = over.command, over.rows
        judgement, (text, again, params) = self._to_count, self._count_query
        self._to_count = self._count_query = None
        verdict = judgement.verdict
        why = over.why
        if len(judgement.statements) > 1 and (
                judgement.statements[over.statement].rows_over is not None):
            verdict = judgement.statements[over.statement]  # that of the one that went over
            why = f"its statement {over.statement + 1}: {why}"
        prepared = self._count_statement if extended else None
        # Stale: other code may have run between its Parse and the reading in front of its
        # Execute (a Bind of another statement, or its own Bind's planning of an IMMUTABLE
        # function changing the settings read after it), so its literals may mean what the
        # approver is not shown.
        stale = (prepared is not None and inforce.has_literals(text) and (
            (not self._count_fresh and prepared.parsed != count.settings)
            or (isinstance(count, rowcount.ExtendedCount)
                and count.planned_settings != count.settings)))
        several = not extended and self._unseen_before(text)
        if verdict.action == "block" or count.recount or params is TOO_LONG or stale or several:
            hint = verdict.hint
            if several:
                message = (f'statement held by rule "{verdict.rule}" refused: {why}, and '
                           f"{_UNSEEN_BEFORE} (the gateway ran it and rolled it back)")
                hint = "Send it in a query string of its own."
            elif stale:
                message = (f'statement held by rule "{verdict.rule}" refused: {why}, and it '
                           "was prepared before other statements ran, under settings the "
                           "gateway did not read, so an approver cannot be shown what its "
                           "literals mean (the gateway ran it and rolled it back)")
                hint = "Prepare it again right before it runs (or run it unprepared)."
            elif params is TOO_LONG:
                message = (f'statement held by rule "{verdict.rule}" refused: {why}, and '
                           f"{_UNSHOWN} (the gateway ran it and rolled it back)")
                hint = _UNSHOWN_HINT
            elif count.recount:
                message = (f'statement approved under rule "{verdict.rule}" refused: {why}, '
                           "the count its approver saw (the gateway ran it again and rolled "
                           "it back)")
                hint = ("What it writes changed after it was approved; run it again to ask "
                        "for a new approval.")
            else:
                message = (f'statement blocked by rule "{verdict.rule}": {why} (the gateway '
                           "ran it and rolled it back)")
            record.sqlstate, record.error = "42501", message
            finished.append(record.finish("blocked"))
            error = codec.error_response(message, "42501", hint=hint)
            # The target fails in its place, as the write failing there would have: the
            # client's block aborted, the pipeline's implicit transaction rolled back.
            if not extended and over.status != b"T":  # no block left: nothing to fail
                return self._own(error) + codec.ready_for_query(over.status)
            if extended:
                self._discarding = True
            self._to_target += self._failing(error, skip=extended)
            return b""
        if prepared is not None:  # parsed under the settings read in front of the Execute
            prepared.parsed = count.settings
        record.error = f"rolled back by the gateway: {why}; held for an approval"
        finished.append(record.finish("rolled back"))
        self._holding = True
        read = count.settings
        settings = (inforce.note(read, self._baseline) if read is not None
                    else ("settings in force: not read (they are read again once it is "
                          "approved, and it is asked again if they were not these)",))
        self._held = (text, params, notes(None) + settings)
        # Approved, it is counted again with the count the approver saw as its limit (rows
        # may have come to match meanwhile). Only when it went over by its count: a count
        # that could not be read, or answers larger than the gateway keeps, run as approved.
        limits = list(count.limits if isinstance(count, rowcount.RowCount) else (count.limit,))
        limit = limits[over.statement] if over.statement < len(limits) else None
        self._seen = None
        if over.rows is not None and limit is not None and over.rows > limit:
            # Each counted statement of a Query is charged with what the Query wrote beside
            # its tag (``rowcount._beside``): the count seen is every one's limit.
            self._seen = tuple(None if n is None else max(n, over.rows) for n in limits)
        self._count_hold = Hold(
            text, "extended" if extended else "simple", judgement, params, notes=(
                f"statement {record.seq} ran and was rolled back by the gateway: {why}",
                *settings))
        self._client_in.unread(again)  # asked again once decided: it runs, or is refused
        if extended:
            self._rebinding = self._count_statement
        return b""

    def _server_data(self, data: bytes) -> tuple[bytes, list[StatementFinished]]:
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
            if owed and owed[0][0] == _COUNT:  # the rest is the count's (``server_data``)
                break
            if self._probe is not None and owed and owed[0][0] == _PROBE and tag not in b"SA":
                # The reading of the settings in force: the gateway's own, never the client's.
                probe = owed[0][1]
                probe.message(tag, buf[pos + 5 : end])
                if pieces is None:
                    pieces = []
                pieces.append(buf[run:pos])
                run = end
                pos = end
                if probe.done:
                    owed.popleft()
                    if tag == 90:
                        self.transaction_status = buf[pos - 1 : pos]
                    elif probe.failed is not None:  # the target skips to the client's Sync
                        self._skip_to_sync(finished, None)
                    self._settings_read(probe)
                continue
            if tag == 68:  # 'D' DataRow: the bulk of most results, nothing to track
                if owed and owed[0][0] == _OURS:  # the gateway's reading of the statistics
                    slot = owed[0][1]
                    if len(slot) > 2:
                        slot[2].append(rowcount.stat_value(buf[pos:end]))
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[run:pos])
                    run = end
                pos = end
                continue
            while tag == 90 and owed and owed[0][0] == _OURS and not owed[0][1][1]:
                owed.popleft()  # skipped by the target (an error came first): no answers
            if owed and owed[0][0] == _OURS and tag in _OURS_TAGS:
                # An answer to the gateway's own statement: the client never sees it.
                self._ours(tag, buf[pos + 5 : end])
                if pieces is None:
                    pieces = []
                pieces.append(buf[run:pos])
                run = end
            elif tag == 67:  # 'C' CommandComplete
                self._complete(buf[pos + 5 : end], finished)
            elif tag == 90:  # 'Z' ReadyForQuery
                self.transaction_status = buf[pos + 5 : end]
                self._ready(finished)
                if self.guard is not None:
                    self.guard.memory.ready(self.transaction_status)
                if self._own_block == 2:
                    self._own_block = 0
                    self.wants_input = True
                    if self.transaction_status == b"E":
                        # The segment failed in the gateway's block: where PostgreSQL would
                        # have ended its implicit transaction at this Sync, the gateway rolls
                        # its block back, and the client hears the session as idle. What it
                        # sends next waits for that (settings revert with it).
                        self._own_block = 3
                        self.wants_input = False
                        self._to_target += rowcount.ROLLBACK + _SYNC_MESSAGE
                        owed.append((_OURS, [rowcount.ANSWERS + 1, True]))
                        self.transaction_status = b"I"
                        self._portals.forget()
                        if pieces is None:
                            pieces = []
                        pieces.append(buf[run:pos])
                        pieces.append(codec.ready_for_query(b"I"))
                        run = end
            elif tag == 69:  # 'E'
                if self.guard is not None:  # its transaction, or statement, is rolled back
                    self.guard.memory.rolled_back()
                if owed and owed[0][0] == _FAIL:
                    # The gateway's failing message: its error in place of the target's.
                    reply, skip = owed.popleft()[1]
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[run:pos])
                    length = 1 + int.from_bytes(reply[1:5], "big")  # its error, then a Z
                    pieces.append(self._own(reply[:length]) + reply[length:])
                    run = end
                    if skip:
                        self._skip_to_sync(finished, None)
                else:
                    self._error(buf[pos + 5 : end], finished)
            elif tag in (49, 50, 51):  # '1' ParseComplete '2' BindComplete '3' CloseComplete
                if owed and owed[0][0] in (_PARSE, _BIND, _CLOSE):
                    kind, payload = owed.popleft()
                    self._confirmed(kind, payload)
                    if kind == _BIND and payload.seq in self._rebound:
                        self._rebound.discard(payload.seq)  # the gateway's Bind (``_over``)
                        if pieces is None:
                            pieces = []
                        pieces.append(buf[run:pos])
                        run = end
            elif tag in (84, 110):  # 'T' RowDescription, 'n' NoData
                if owed and owed[0][0] == _DESCRIBE and owed.popleft()[1] is _GATEWAY:
                    # The answer to the gateway's own Describe: re-tagged for the masker.
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[run:pos])
                    pieces.append((GATEWAY_ROW_DESCRIPTION if tag == 84 else GATEWAY_NO_DATA)
                                  + buf[pos + 1 : end])
                    run = end
            elif tag == 116:  # 't' ParameterDescription
                if owed and owed[0][0] == _DESCRIBE and isinstance(owed[0][1], Statement):
                    owed[0][1].described(messages.parameter_types(buf[pos + 5 : end]))
            elif tag == 83:  # 'S' ParameterStatus
                self._parameter(buf[pos + 5 : end])
            elif tag in (73, 115):  # 'I' EmptyQueryResponse, 's' PortalSuspended
                if owed and owed[0][0] == _EXECUTE:
                    self._close(owed.popleft()[1], finished)
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
                    error, simple = owed.popleft()[1]
                    pieces.append(self._own(error))
                    if simple:
                        pieces.append(codec.ready_for_query(self.transaction_status))
        self._server_in.keep(buf[pos:] if pos else buf, need)
        if self._wait and self._wait <= self._done:
            self.wants_input = True
        if pieces is not None:
            pieces.append(buf[run:pos])
            return b"".join(pieces), finished
        return (buf[:pos] if pos != n else buf), finished

    def _ours(self, tag: int, body: bytes) -> None:
        """An answer to the gateway's own statements (``_OURS``), dropped."""
        if tag == 78:  # a notice of the gateway's statement
            return
        left = self._owed[0][1]
        left[0] -= 1
        if not left[0]:
            self._owed.popleft()
        if tag == 90:  # the gateway's ROLLBACK of its failed block is done
            self.transaction_status = body
            self._own_block = 0
            self.wants_input = True

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
        if command == "ROLLBACK" and self.guard is not None:  # of a block or to a savepoint
            self.guard.memory.rolled_back()
        if rows is not None:
            record.rows = (record.rows or 0) + rows if kind == _SIMPLE else rows
        if record.ops:
            names, change = record.ops[0]
            if change.tag == body.rstrip(b"\x00"):  # the next name change took effect
                record.ops.pop(0)
                names.confirm(change)
                if change.tag == b"DISCARD ALL":
                    self._portals.forget()
        if kind == _EXECUTE:
            owed.popleft()
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
        if kind == _PARSE and record.key == b"":
            # PostgreSQL drops the unnamed statement before it parses the new one: after a
            # failed Parse there may be none. Fail closed: a Bind of it is refused.
            self._statements.live.pop(b"", None)
        # PostgreSQL now skips everything up to the next Sync. The error belongs to the first
        # Execute still owed: the failing message (Parse, Bind or Describe, say a division by
        # zero folded at Bind) was preparing that statement. Later statements never ran.
        self._skip_to_sync(finished, fields)

    def _skip_to_sync(self, finished: list[StatementFinished],
                      fields: dict[str, str] | None) -> None:
        """The target failed (``fields``, the error of the first statement still owed; None:
        the gateway's failing message, its statement recorded already) and skips to the Sync."""
        owed = self._owed
        first = fields is not None
        while owed and owed[0][0] != _SYNC:
            if owed[0][0] == _PROBE:
                reading = owed[0][1]
                reading.skipped("an earlier message of the pipeline failed")
                if not reading.done:
                    break  # its own Sync is still answered
                owed.popleft()
                self._settings_read(reading)
                continue
            kind, record = owed.popleft()
            if kind == _COUNT:  # the counted Execute is skipped too: nothing to count
                self._count = None
                self._to_count = self._count_query = None
                self._count_sent = b""
                self.wants_input = True
                continue
            if kind in (_PARSE, _CLOSE):
                self._unconfirmed(kind, record)
                continue
            if kind == _SIMPLE:  # a Query behind them: skipped, and no ReadyForQuery for it
                self._done += 1
                self._close(record, finished, "skipped")
                continue
            if not isinstance(record, _Open):
                continue  # an injected error of a later refused statement (PostgreSQL too
                # would report only the first error of the pipeline), or a Describe
            if kind == _BIND and record.bound is not None:
                self._portals.drop(record.bound)
            if first and fields is not None:
                record.sqlstate = fields.get("C")
                record.error = fields.get("M")
                self._close(record, finished)
                first = False
            else:
                self._close(record, finished, "skipped")
        # With no Sync sent since, what the client sends next is skipped too (its reading
        # does not matter). The settings are those before the failed transaction, reported
        # at the next ReadyForQuery: until then, reading stays unsettled.
        self._skipping = not owed

    def _ready(self, finished: list[StatementFinished]) -> None:
        owed = self._owed
        while owed:
            kind, record = owed.popleft()
            if kind == _SYNC:
                self._done += 1
                self._reported = self._done
                self._close_bound(finished)
                break
            if kind in (_PARSE, _CLOSE):  # never confirmed: the target skipped it
                self._unconfirmed(kind, record)
                continue
            if kind == _SIMPLE:
                self._done += 1
                self._reported = self._done
                self._close(record, finished)
                break
            if kind == _BIND and record.bound is not None:
                self._portals.drop(record.bound)
            if kind == _EXECUTE and record is not None:
                self._close(record, finished, "skipped")
        if self._statements.pending:
            self._statements.settle(self._done)
        portals = self._portals
        if portals.pending:
            portals.settle(self._done)
        if portals.live and self.transaction_status == b"I":  # the transaction is over,
            portals.forget()  # and its portals with it

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
        """The target accepted a Parse, a Bind or a Close: now the name means what it says."""
        if kind == _PARSE:
            self._statements.confirm(payload)
        elif kind == _BIND:
            if payload.bound is not None:
                self._portals.confirm(payload.bound)
        elif payload is not None:
            names, change = payload
            names.confirm(change)

    def _unconfirmed(self, kind: int, payload: Any) -> None:
        if kind == _PARSE:
            self._statements.drop(payload)
        elif payload is not None:
            names, change = payload
            names.drop(change)

    def _close(self, record: _Open | None, finished: list[StatementFinished],
               status: str | None = None) -> None:
        """Finish a statement's record once (a Bind's record is met again at its Execute)."""
        if record is None:
            return
        if not record.closed:
            done = record.finish(status)
            finished.append(done)
            if record.memo is not None and done.status == "ok" and self.guard is not None:
                self.guard.finished(record.memo)
        self._bound.pop(record.seq, None)

    def open_statements(self) -> list[int]:
        """Sequence numbers of statements forwarded and not yet answered."""
        seqs = {record.seq for kind, record in self._owed
                if isinstance(record, _Open) and not record.closed}
        seqs.update(seq for seq, record in self._bound.items() if not record.closed)
        return sorted(seqs)
