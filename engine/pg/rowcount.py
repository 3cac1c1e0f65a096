"""Counting the rows a write changes before it is let stand (``rows_over``), without sockets.

Simple protocol (``RowCount``); the extended protocol's ``ExtendedCount`` is further down.

A statement a ``rows_over`` rule may hold is sent as one simple Query with the gateway's own
statement in front: ``BEGIN;`` in autocommit, ``SAVEPOINT gatewatch_rows;`` inside the client's
transaction. In one query string an error stops the rest, so the write never runs outside the
transaction or savepoint. ``RowCount`` is then fed the target's answers, one whole message at a
time: it drops the answer to what the gateway added, keeps the statement's own answers (its
RETURNING rows too, up to ``keep`` bytes), reads the count from its CommandComplete and says
what to send next: ``COMMIT`` or ``RELEASE SAVEPOINT`` under the limit, ``ROLLBACK`` (``TO
SAVEPOINT``, then released) over it or when the count cannot be read. Once that is answered,
``result`` is either the bytes the client would have had from the statement alone (kept
answers, an error at COMMIT in place of the CommandComplete as PostgreSQL reports a deferred
constraint, and the ReadyForQuery), for the relay's usual path (records, masking), or a count
over the limit, for the relay to hold or refuse.

Once approved, the write is counted again (``recount``), with the count its approver saw as
its limit: over it, the relay refuses it rather than holding it again.

What the tag does not count — rows that triggers, rules and foreign keys' cascades write
because of the statement — is read from the transaction's own statistics: the gateway's
statement in front also reads them (``STAT``: rows updated and deleted so far in the
transaction, savepoints included), and a second Query right behind the client's (sent at
once, no round trip of its own) reads it again. What the statement wrote beyond its tag's count
is added to each counted statement's count (errs strict: ``_beside``); a difference that
cannot be read, or a server that keeps no counts (``track_counts`` off), counts as over the
limit.

An error inside the client's transaction leaves that transaction aborted, as it would be
without the gateway: nothing is rolled back to hide it. Cost: one round trip more per counted
write (``bench/rows_over.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pglast
from pglast.enums.parsenodes import TransactionStmtKind

from engine.pg import codec, inforce, messages

SAVEPOINT = b"gatewatch_rows"
# Rows updated or deleted, and rows inserted, so far in the transaction, by anything
# (triggers, rules, cascades), in every table a user created (OIDs from FirstNormalObjectId:
# no system catalog) but temporary ones (the session's own, gone with it); NULL when the
# server keeps no such counts (track_counts off). And which file holds each table's rows
# (``oid:relfilenode,…``): a TRUNCATE or a rewrite (ALTER TABLE … TYPE, a volatile DEFAULT)
# gives it a new one and resets its counts, and a DROP takes it away, so a table of the first
# reading whose file changed or went means rows changed that no count shows (a new table does
# not: ``rewritten``). And the session's search_path: code the statement ran may have changed
# it (a view or function calling set_config, an UPDATE of pg_settings), which no
# ParameterStatus reports (``search_path``); and the settings that change what literals mean,
# shown to the approver of a write held by its count (``settings``). Every name, type and
# operator is pg_catalog's, whatever the session's search_path. Cheaper than the
# pg_stat_xact_user_tables view (~60 µs against ~400 on this machine).
_COUNTING = b"pg_catalog.current_setting('track_counts')::pg_catalog.bool"
STAT = (b"SELECT CASE WHEN " + _COUNTING + b" THEN COALESCE(pg_catalog.sum("
        b"pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) OPERATOR(pg_catalog.+) "
        b"pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid)), 0) END AS gatewatch_rows, "
        b"CASE WHEN " + _COUNTING + b" THEN COALESCE(pg_catalog.sum("
        b"pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid)), 0) END AS gatewatch_inserted, "
        b"COALESCE(pg_catalog.string_agg(c.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' "
        b"OPERATOR(pg_catalog.||) c.relfilenode::pg_catalog.text, ',' ORDER BY c.oid), '') "
        b"AS gatewatch_files, pg_catalog.current_setting('search_path') AS gatewatch_path, "
        + inforce.EXPRESSION + b" AS gatewatch_settings "
        b"FROM pg_catalog.pg_class c "
        b"WHERE c.oid OPERATOR(pg_catalog.>=) '16384'::pg_catalog.oid "
        b"AND c.relkind OPERATOR(pg_catalog.=) 'r'::pg_catalog.\"char\" "
        b"AND c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\"")
# Deferred constraint triggers of what ran fire now, before the second reading, not at a
# COMMIT after it (the constraints stay immediate for the rest of the transaction).
IMMEDIATE = b"SET CONSTRAINTS ALL IMMEDIATE"
_BEGIN = b"BEGIN;" + STAT + b";"
_SAVEPOINT = b"SAVEPOINT " + SAVEPOINT + b";" + STAT + b";"
_COMMIT = b"COMMIT"
_RELEASE = b"RELEASE SAVEPOINT " + SAVEPOINT
_ROLLBACK = b"ROLLBACK"
_ROLLBACK_TO = b"ROLLBACK TO SAVEPOINT " + SAVEPOINT + b"; RELEASE SAVEPOINT " + SAVEPOINT
_TERMINATION = "2D000"  # invalid_transaction_termination
# INSERT: an INSERT … ON CONFLICT DO UPDATE (``INSERT 0 n``: rows inserted and updated).
_COUNTED_TAGS = frozenset({"UPDATE", "DELETE", "MERGE", "INSERT"})


@dataclass(frozen=True, slots=True)
class Over:
    """The write was rolled back: it wrote ``rows`` rows (None: the count could not be read),
    or its answers were more than the gateway keeps; ``status``: the transaction's now."""

    rows: int | None
    command: str | None
    why: str
    status: bytes
    statement: int = 0  # which statement of the Query went over


def wrapped(query_body: bytes, in_transaction: bool) -> bytes:
    """The Queries to send instead of the client's (its body: the text and its NUL): the
    client's behind the gateway's statements, then the second reading of the statistics."""
    return (codec.message(b"Q", (_SAVEPOINT if in_transaction else _BEGIN) + query_body)
            + codec.message(b"Q", IMMEDIATE + b";" + STAT + b"\x00"))


# Rows updated or deleted, rows inserted, the tables' files, the search_path, the settings
# that change what literals mean (``inforce.EXPRESSION``) (None: not in the row).
Stat = tuple[int, int, bytes, bytes | None, bytes | None]


def stat_value(row: bytes) -> Stat | None:
    """The counts in a DataRow of ``STAT`` (the whole message), or None."""
    body = row[5:]
    columns = int.from_bytes(body[:2], "big") if len(body) >= 2 else 0
    if columns not in (3, 4, 5):
        return None
    values: list[bytes] = []
    pos = 2
    for _ in range(columns):
        if len(body) < pos + 4:
            return None
        size = int.from_bytes(body[pos : pos + 4], "big", signed=True)
        value = body[pos + 4 : pos + 4 + size] if size >= 0 else b""
        if size < 0 or len(value) != size:
            return None
        values.append(value)
        pos += 4 + size
    if not (values[0].isdigit() and values[1].isdigit()):
        return None
    return (int(values[0]), int(values[1]), values[2], values[3] if columns > 3 else None,
            values[4] if columns > 4 else None)


REWRITTEN = ("a table was emptied or rewritten (TRUNCATE, or ALTER TABLE rewriting its rows) "
             "by what it ran: the target's counts cannot show how many rows changed")


PLANNED = ("the code it calls wrote rows when PostgreSQL planned the statement (at its Bind, "
           "before the count began): the gateway cannot count them")


def rewritten(before: Stat | None, after: Stat | None) -> bool:
    """Whether a table of the first reading got a new file, or went, by the second
    (``STAT``); tables created meanwhile (here or by another session) do not count."""
    if before is None or after is None or before[2] == after[2]:
        return False
    now = dict(_files(after[2]))
    return any(now.get(oid) != node for oid, node in _files(before[2]))


def _files(listed: bytes) -> list[tuple[bytes, bytes]]:
    return [(oid, node) for oid, _, node in (e.partition(b":") for e in listed.split(b",")
                                             if e)]


def _beside(before: Stat | None, after: Stat | None, completes: list[bytes],
            counted: list[bool], i: int) -> int | None:
    """Rows updated or deleted that the ``i``-th statement's tag does not count, charged to it
    (None: unknown): everything the Query updated or deleted beyond that tag — its other
    statements' too, since a tag may count rows nothing wrote (a view's INSTEAD OF trigger
    that does nothing) — so several counted writes in one Query are held when together they
    go over. An UPDATE's or DELETE's tag counts rows updated or deleted; a MERGE's or an
    upsert's (a counted INSERT) counts inserts too, in a split the tag does not tell: taken as
    the most inserts the statistics allow beside the plain INSERTs' (errs strict).
    ``counted``: whether each statement's tag counts (a statement counted only for the code
    it calls, ``SELECT f()``, has ``False``: all the Query updated or deleted is charged to
    it, its own inserts are plain)."""
    if before is None or after is None:
        return None
    updated, inserted = after[0] - before[0], after[1] - before[1]
    if not counted[i]:
        return max(updated, 0)
    plain = 0
    for complete, is_counted in zip(completes, counted, strict=False):
        command, rows = messages.command_rows(complete[5:])
        if rows is not None and command and command.startswith("INSERT") and not is_counted:
            plain += rows
    command, rows = messages.command_rows(completes[i][5:])
    verb = command.split(" ", 1)[0] if command else ""
    if rows is None:
        return None
    if verb in ("UPDATE", "DELETE"):
        return max(updated - rows, 0)
    inserts = min(rows, max(inserted - plain, 0))  # MERGE, or an upsert
    return max(updated - (rows - inserts), 0)


def prefix_length(in_transaction: bool) -> int:
    return len(_SAVEPOINT if in_transaction else _BEGIN)


class RowCount:
    """``limits``: for a Query of several statements, each one's limit (None: not counted);
    their answers are kept in order, and a failed COMMIT takes the last one's
    CommandComplete's place, as PostgreSQL commits the Query's implicit transaction before
    it answers its last statement."""

    def __init__(self, limit: int, in_transaction: bool, keep: int,
                 limits: tuple[int | None, ...] = (), tags: tuple[bool, ...] = ()) -> None:
        self.limit = limit
        self.limits = limits or (limit,)
        # Whether each statement's own tag counts (``_beside``): False where only the code
        # it calls is counted.
        self.tags = tags or (True,) * len(self.limits)
        self.in_transaction = in_transaction
        self._keep = keep
        self._shift = prefix_length(in_transaction)
        # 0: the gateway's own statements; 1: the write; 4: the statistics read again;
        # 2: the finishing Query
        self._phase = 0
        self._prefix_left = 2  # CommandCompletes of the gateway's statements in front
        self._before: Stat | None = None
        self._after: Stat | None = None
        self._status = b""  # the transaction's, once the write was answered
        self._kept: list[bytes] = []
        self._size = 0
        self._overflow = False
        self._completes: list[bytes] = []  # each statement's CommandComplete, in order
        self._last: int | None = None  # where the last one sits in ``_kept``
        self._failed = False  # the write (or what the gateway put in front) failed
        self._finish_error: bytes | None = None
        self._over: Over | None = None
        self.to_target = b""  # the finishing Query, once the write is answered
        self.result: bytes | Over | None = None  # set when done
        self.recount = False  # an approved write counted again (over: refused, not held)
        # Which statement failed because it ends transactions itself (a procedure's COMMIT
        # inside the gateway's BEGIN): it cannot be counted, so it is held, not failed.
        self._ends_itself: int | None = None

    @property
    def search_path(self) -> bytes | None:
        """The session's search_path at the second reading, or None (not read)."""
        return self._after[3] if self._after is not None else None

    @property
    def settings(self) -> dict[str, str] | None:
        """The settings that change what literals mean, at the first reading (those the
        write runs under once approved: what it set was rolled back), or None."""
        return inforce.values(self._before[4]) if self._before is not None else None

    def message(self, tag: int, msg: bytes) -> None:
        """One whole backend message (tag, length and body)."""
        if self._phase == 0:
            if tag == 67:  # CommandComplete of BEGIN or SAVEPOINT, then of the statistics
                self._prefix_left -= 1
                if not self._prefix_left:
                    self._phase = 1
                return
            if tag == 68:
                self._before = stat_value(msg)
                return
            if tag not in (69, 84):  # a notice or a setting
                self._hold(msg)
                return
            if tag == 84:  # the statistics' RowDescription
                return
            self._phase = 1  # it failed: the write did not run; the client hears why
        if self._phase == 4:  # the statistics read again: answered, or failed with the write
            if tag == 68:
                self._after = stat_value(msg)
            elif tag == 90:
                self._written(msg[5:] if self._failed else self._status)
            elif tag == 69 and not self._failed:
                # A deferred constraint failing as its triggers fire early: the statement's
                # error in place of its CommandComplete, as PostgreSQL reports one at COMMIT.
                self._failed = True
                if self._last is not None:
                    del self._kept[self._last]
                    self._last = None
                self._hold(msg)
            elif tag not in (67, 69, 84):
                self._hold(msg)
            return
        if self._phase == 1:
            if tag == 90:  # ReadyForQuery: the write is answered; the statistics next
                self._status, self._phase = msg[5:], 4
            elif tag == 67:
                self._completes.append(msg)
                self._hold(msg)
                self._last = len(self._kept) - 1
            else:
                if tag == 69:
                    self._failed = True
                    if (not self.in_transaction and self._ends_itself is None
                            and messages.error_fields(msg[5:]).get("C") == _TERMINATION):
                        self._ends_itself = len(self._completes)
                    msg = _shift_position(msg, self._shift)
                self._hold(msg)
            return
        # The finishing Query's answers: its CommandCompletes go, an error stays (a deferred
        # constraint failing at COMMIT is the statement's error), notices and settings pass.
        if tag == 90:
            self._done(msg)
        elif tag == 69:
            self._finish_error = msg
        elif tag != 67:
            self._hold(msg)

    def _hold(self, msg: bytes) -> None:
        self._size += len(msg)
        if self._size > self._keep:
            self._overflow = True
            self._kept = []
        if not self._overflow or msg[0] in (67, 69):  # an error always reaches the client
            self._kept.append(msg)

    def _written(self, status: bytes) -> None:
        self._phase = 2
        if self._failed:
            # In the client's transaction it stays aborted; in autocommit ours is ended.
            if status == b"E" and not self.in_transaction:
                self.to_target = codec.message(b"Q", _ROLLBACK + b"\x00")
                if self._ends_itself is not None:
                    self._over = Over(None, None, "it ends transactions itself (a COMMIT or "
                                      "ROLLBACK inside the procedure it calls), so the gateway "
                                      "cannot count what it writes", b"", self._ends_itself)
            else:
                self._phase = 3
                self.result = self._answers(codec.ready_for_query(status))
            return
        self._over = None
        if len(self._completes) != len(self.limits):
            self._over = Over(None, None, "its count cannot be read (the server answered "
                              f"{len(self._completes)} of its {len(self.limits)} statements)",
                              b"")
        if self._over is None and rewritten(self._before, self._after):
            self._over = Over(None, None, REWRITTEN, b"")
        counted = [limit is not None and tag for limit, tag in zip(self.limits, self.tags,
                                                                   strict=True)]
        for i, limit in enumerate(self.limits):
            if self._over is not None:
                break
            if limit is not None:
                beside = _beside(self._before, self._after, self._completes, counted, i)
                over = _verdict(self._completes[i], limit, self._overflow, self._keep, beside,
                                len(self._completes) > 1, self.tags[i])
                if over is not None:
                    self._over = Over(over.rows, over.command, over.why, b"", i)
        if self._over is not None:
            finish = _ROLLBACK_TO if self.in_transaction else _ROLLBACK
        else:
            finish = _RELEASE if self.in_transaction else _COMMIT
        self.to_target = codec.message(b"Q", finish + b"\x00")

    def _done(self, ready: bytes) -> None:
        self._phase = 3
        status = ready[5:]
        if self._over is not None and self._finish_error is None:
            over = self._over
            self.result = Over(over.rows, over.command, over.why, status, over.statement)
            return
        if (self._over is not None or self._finish_error is not None) and (
                self._last is not None):
            # PostgreSQL reports the failed commit in the last CommandComplete's place (the
            # rollback failing says so too: it does not, short of a broken server).
            del self._kept[self._last]
        self.result = self._answers(ready)

    def _answers(self, ready: bytes) -> bytes:
        out = list(self._kept)
        if self._finish_error is not None:
            out.append(self._finish_error)
        out.append(ready)
        return b"".join(out)


def _shift_position(msg: bytes, shift: int) -> bytes:
    """An ErrorResponse's cursor position (P) as in the client's own text."""
    fields = msg[5:].split(b"\x00")
    for i, field in enumerate(fields):
        if field[:1] == b"P" and field[1:].isdigit():
            fields[i] = b"P" + str(max(int(field[1:]) - shift, 1)).encode()
            return codec.message(b"E", b"\x00".join(fields))
    return msg


# --- the extended protocol -----------------------------------------------------------------
#
# In the extended protocol the gateway's statements go as messages of their own, under a
# statement and portal name of the gateway (``RESERVED``): the unnamed ones are the client's
# (a Bind of the unnamed statement after ours would run our SAVEPOINT), and a simple Query in
# the middle of a pipeline would end its implicit transaction and drop the unnamed portal.
# Each is Parse, Bind, Execute and two Closes: five answers, all dropped.

RESERVED = b"_gatewatch_rows_"
ANSWERS = 5
FLUSH = b"H\x00\x00\x00\x04"
SYNC = b"S\x00\x00\x00\x04"
_ANSWER_TAGS = frozenset(b"123C")  # ParseComplete, BindComplete, CloseComplete, CommandComplete


def statement(sql: bytes) -> bytes:
    """One statement of the gateway's own, in the extended protocol (``ANSWERS`` answers)."""
    name = RESERVED + b"\x00"
    return (codec.message(b"P", name + sql + b"\x00\x00\x00")
            + codec.message(b"B", name + name + b"\x00\x00\x00\x00\x00\x00")
            + codec.message(b"E", name + b"\x00\x00\x00\x00")
            + codec.message(b"C", b"S" + name) + codec.message(b"C", b"P" + name))


BEGIN = statement(b"BEGIN")
SAVEPOINT_ = statement(b"SAVEPOINT " + SAVEPOINT)
RELEASE = statement(_RELEASE)
ROLLBACK_TO = statement(b"ROLLBACK TO SAVEPOINT " + SAVEPOINT)
COMMIT = statement(_COMMIT)
ROLLBACK = statement(_ROLLBACK)
STAT_ = statement(STAT)  # answered with a DataRow besides the ``ANSWERS``
IMMEDIATE_ = statement(IMMEDIATE)


def _verdict(complete: bytes | None, limit: int, overflow: bool, keep: int,
             hidden: int | None, others: bool = False, tag_counts: bool = True) -> Over | None:
    """Whether a write stands by its CommandComplete and the rows written beside it
    (``hidden``): None under the limit, else why not. ``tag_counts``: False for a statement
    counted only for the code it calls, whose own tag (SELECT 1, CALL) counts nothing."""
    command, rows = (messages.command_rows(complete[5:]) if complete is not None
                     else (None, None))
    verb = command.split(" ", 1)[0] if command else None
    if not tag_counts and complete is not None and hidden is not None:
        if hidden > limit:
            return Over(hidden, command, f"the code it calls writes {hidden} rows (through "
                        f"functions, procedures, triggers, rules or foreign keys"
                        f"{', or the Query' + chr(39) + 's other statements' if others else ''}"
                        f"), more than {limit}", b"")
        rows = 0
    elif verb not in _COUNTED_TAGS or rows is None:
        why = f"its count cannot be read (the server answered {command or 'no count'})"
        return Over(None, command, why, b"")
    if hidden is None:
        return Over(None, command, "the rows written through triggers, rules and foreign keys "
                    "cannot be read", b"")
    if rows + hidden > limit:
        beside = (f" ({hidden} of them through triggers, rules or foreign keys"
                  f"{', or by the Query' + chr(39) + 's other statements' if others else ''})"
                  if hidden else "")
        return Over(rows + hidden, command,
                    f"it writes {rows + hidden} rows{beside}, more than {limit}", b"")
    if overflow:
        return Over(rows, command, f"its result is larger than the {keep} bytes the gateway "
                    "keeps while it counts", b"")
    return None


class ExtendedCount:
    """One Execute of the extended protocol counted, fed the target's answers one whole
    message at a time, after the answers to what the client sent before it. Sent: the
    gateway's BEGIN (the session was in no transaction block) and SAVEPOINT (none when
    nothing ran before it in the gateway's new block: that block is the savepoint), the client's
    Execute (the gateway's Describe of its portal in front when results are masked), and a
    Flush. Their answers are dropped, the Execute's kept (``keep`` bytes at most); then
    under the limit ``result`` is at once the Execute's answers, for the relay's usual path,
    and RELEASE is for the relay to send (``released``) and drop its answers; over it, ROLLBACK TO,
    RELEASE and a Close of the portal (bound again when approved) go out, their answers are
    dropped here, and ``result`` is an ``Over``. An error of the Execute, or of the gateway's own
    statements, ends it at once: the target now skips everything up to the next Sync (which
    ends the gateway's transaction block too: ``relay``), and the client hears the error."""

    def __init__(self, limit: int, begin: bool, portal: bytes, keep: int,
                 savepoint: bool = True, tag_counts: bool = True) -> None:
        self.limit = limit
        self.tag_counts = tag_counts  # False: only what the code it calls writes counts
        self.begins = begin
        # Without a savepoint (the gateway's BEGIN, and nothing ran before in the segment):
        # under the limit nothing is left to release; over it the block is rolled back whole.
        self.savepoint = savepoint
        self.ended = False  # over the limit, the gateway's block was rolled back whole
        self._keep = keep
        self._portal = portal
        self._expect = ANSWERS * (int(begin) + int(savepoint) + 1)  # and the statistics
        # 0: the gateway's statements; 1: the Execute; 4: the statistics read again;
        # 2: the finishing ones
        self._phase = 0
        self._before: Stat | None = None
        self._after: Stat | None = None
        self._kept: list[bytes] = []
        self._size = 0
        self._overflow = False
        self._complete: bytes | None = None
        self._over: Over | None = None
        self.to_target = b""
        self.released = False  # under the limit: RELEASE goes out with the client's next
        self.result: bytes | Over | None = None
        self.recount = False  # an approved write counted again (over: refused, not held)
        # The statistics read in front of its Bind (``relay``), when it calls code that its
        # planning may run: rows written there, before this count began, hold it.
        self.planned: list[Stat | None] | None = None

    @property
    def search_path(self) -> bytes | None:
        """The session's search_path at the second reading, or None (not read)."""
        return self._after[3] if self._after is not None else None

    @property
    def settings(self) -> dict[str, str] | None:
        """The settings that change what literals mean, at the first reading (those the
        write runs under once approved: what it set was rolled back), or None."""
        return inforce.values(self._before[4]) if self._before is not None else None

    @property
    def planned_settings(self) -> dict[str, str] | None:
        """The settings read in front of its Bind where that was read (``planned``), else
        those of the first reading: its planning may have changed them (an IMMUTABLE
        function calling set_config) after its literals were read."""
        if self.planned is None:
            return self.settings
        early = self.planned[0] if self.planned else None
        return inforce.values(early[4]) if early is not None else None

    def message(self, tag: int, msg: bytes) -> None:
        if self._phase == 0:
            if tag in _ANSWER_TAGS:
                self._expect -= 1
                if self._expect == 0:
                    self._phase = 1
            elif tag == 68:
                self._before = stat_value(msg)
            elif tag == 69:
                self._end(msg)
            elif tag != 78:  # a notice of the gateway's statements is the gateway's
                self._hold(msg)
            return
        if self._phase == 1:
            if tag == 67:
                self._complete = msg
                self._phase, self._expect = 4, 2 * ANSWERS  # SET CONSTRAINTS, the statistics
            elif tag == 69:
                self._end(msg)
            elif tag in (73, 115):  # EmptyQueryResponse, PortalSuspended: no count
                self._phase, self._expect = 4, 2 * ANSWERS
            else:
                self._hold(msg)
            return
        if self._phase == 4:
            if tag in _ANSWER_TAGS:
                self._expect -= 1
                if self._expect == 0:
                    self._counted()
            elif tag == 68:
                self._after = stat_value(msg)
            elif tag == 69:  # a deferred constraint failed, or the reading: nothing stands
                self._over = Over(None, None, "the rows it wrote cannot be read", b"")
                self._complete = None
                self._end(msg)
            elif tag != 78:
                self._hold(msg)
            return
        if tag in _ANSWER_TAGS:
            self._expect -= 1
            if self._expect == 0:
                self._phase = 3
                self.result = self._over if self._over is not None else self._answers(b"")
        elif tag == 69:
            # The gateway's RELEASE or ROLLBACK TO failed (short of a broken server, never):
            # the client hears it, after the statement's answers when it was to stand.
            self._end(msg)
        elif tag != 78:
            self._hold(msg)

    def _hold(self, msg: bytes) -> None:
        self._size += len(msg)
        if self._size > self._keep:
            self._overflow = True
            self._kept = []
        if not self._overflow:
            self._kept.append(msg)

    def _answers(self, tail: bytes) -> bytes:
        """The Execute's answers (its CommandComplete unless rolled back), then ``tail``."""
        complete = self._complete if self._over is None and self._complete else b""
        return b"".join(self._kept) + complete + tail

    def _end(self, error: bytes) -> None:
        self._phase = 3
        self.result = self._answers(error)

    def _planned_wrote(self) -> bool:
        """Whether rows were written (or a table emptied) between the reading in front of
        the Bind and this count's own (or either cannot be read)."""
        if self.planned is None:
            return False
        early = self.planned[0] if self.planned else None
        if early is None or self._before is None:
            return True
        return early[:2] != self._before[:2] or rewritten(early, self._before)

    def _counted(self) -> None:
        beside = (_beside(self._before, self._after, [self._complete], [self.tag_counts], 0)
                  if self._complete is not None else None)
        self._over = (Over(None, None, PLANNED, b"")
                      if self._planned_wrote() else
                      Over(None, None, REWRITTEN, b"")
                      if rewritten(self._before, self._after) else
                      _verdict(self._complete, self.limit, self._overflow, self._keep, beside,
                               tag_counts=self.tag_counts))
        if self._over is None:
            # It stands: released without waiting for the answer (a round trip saved on
            # every write under the limit), in front of what the client sends next (the
            # relay's ``wire``), which drops the RELEASE's answers as they come.
            self.released = self.savepoint
            self._phase = 3
            self.result = self._answers(b"")
        else:
            close = codec.message(b"C", b"P" + self._portal + b"\x00")
            if self.savepoint:
                self.to_target = ROLLBACK_TO + RELEASE + close + FLUSH
                self._expect = 2 * ANSWERS + 1
            else:
                self.to_target, self._expect = ROLLBACK + close + FLUSH, ANSWERS + 1
                self.ended = True
            self._phase = 2


TRANSACTION_OPENS, TRANSACTION_CLOSES, TRANSACTION_SAME = "opens", "closes", "same"


@functools.lru_cache(maxsize=256)
def plain_statements(text: str) -> int | None:
    """How many statements a Query holds, when each answers with one CommandComplete (or an
    error) inside the implicit transaction its string runs in; None when one is transaction
    control (the gateway's BEGIN would change what it means) or COPY (data would flow while
    the gateway counts)."""
    try:
        trees = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    if any(isinstance(raw.stmt, pglast.ast.TransactionStmt | pglast.ast.CopyStmt)
           for raw in trees):
        return None
    return len(trees)


@functools.lru_cache(maxsize=256)
def transaction_effect(text: str) -> str | None:
    """What a statement does to the transaction block: opens one (BEGIN, START TRANSACTION),
    closes it (COMMIT, ROLLBACK, PREPARE TRANSACTION), leaves it as it is (SAVEPOINT,
    RELEASE, ROLLBACK TO, AND CHAIN, COMMIT PREPARED); None: it is no transaction statement.
    Nothing else opens or closes a block (a procedure's COMMIT never leaves one open)."""
    try:
        trees = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    effect = None
    for raw in trees:
        node = raw.stmt
        if not isinstance(node, pglast.ast.TransactionStmt):
            continue
        kind = node.kind
        if kind in (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START):
            effect = TRANSACTION_OPENS
        elif kind in (TransactionStmtKind.TRANS_STMT_COMMIT,
                      TransactionStmtKind.TRANS_STMT_ROLLBACK,
                      TransactionStmtKind.TRANS_STMT_PREPARE) and not node.chain:
            effect = TRANSACTION_CLOSES
        elif effect is None:
            effect = TRANSACTION_SAME
    return effect
