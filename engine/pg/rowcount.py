"""Counting the rows a write changes before it is let stand (``rows_over``), without sockets.

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

An error inside the client's transaction leaves that transaction aborted, as it would be
without the gateway: nothing is rolled back to hide it. Cost: one round trip more per counted
write (``bench/rows_over.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.pg import codec, messages

SAVEPOINT = b"gatewatch_rows"
_BEGIN = b"BEGIN;"
_SAVEPOINT = b"SAVEPOINT " + SAVEPOINT + b";"
_COMMIT = b"COMMIT"
_RELEASE = b"RELEASE SAVEPOINT " + SAVEPOINT
_ROLLBACK = b"ROLLBACK"
_ROLLBACK_TO = b"ROLLBACK TO SAVEPOINT " + SAVEPOINT + b"; RELEASE SAVEPOINT " + SAVEPOINT
_COUNTED_TAGS = frozenset({"UPDATE", "DELETE", "MERGE"})


@dataclass(frozen=True, slots=True)
class Over:
    """The write was rolled back: it wrote ``rows`` rows (None: the count could not be read),
    or its answers were more than the gateway keeps; ``status``: the transaction's now."""

    rows: int | None
    command: str | None
    why: str
    status: bytes


def wrapped(query_body: bytes, in_transaction: bool) -> bytes:
    """The Query to send instead of the client's (its body: the text and its NUL)."""
    return codec.message(b"Q", (_SAVEPOINT if in_transaction else _BEGIN) + query_body)


def prefix_length(in_transaction: bool) -> int:
    return len(_SAVEPOINT if in_transaction else _BEGIN)


class RowCount:
    def __init__(self, limit: int, in_transaction: bool, keep: int) -> None:
        self.limit = limit
        self.in_transaction = in_transaction
        self._keep = keep
        self._shift = prefix_length(in_transaction)
        self._phase = 0  # 0: the gateway's own statement; 1: the write; 2: the finishing Query
        self._kept: list[bytes] = []
        self._size = 0
        self._overflow = False
        self._complete: bytes | None = None  # the write's CommandComplete
        self._failed = False  # the write (or what the gateway put in front) failed
        self._finish_error: bytes | None = None
        self._over: Over | None = None
        self.to_target = b""  # the finishing Query, once the write is answered
        self.result: bytes | Over | None = None  # set when done

    def message(self, tag: int, msg: bytes) -> None:
        """One whole backend message (tag, length and body)."""
        if self._phase == 0:
            if tag == 67:  # CommandComplete of BEGIN or SAVEPOINT
                self._phase = 1
                return
            if tag != 69:  # a notice or a setting
                self._hold(msg)
                return
            self._phase = 1  # it failed: the write did not run; the client hears why
        if self._phase == 1:
            if tag == 90:  # ReadyForQuery: the write is answered
                self._written(msg[5:])
            elif tag == 67 and self._complete is None:
                self._complete = msg
            else:
                if tag == 69:
                    self._failed = True
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
        if not self._overflow or msg[0] == 69:  # an error always reaches the client
            self._kept.append(msg)

    def _written(self, status: bytes) -> None:
        self._phase = 2
        if self._failed:
            # In the client's transaction it stays aborted; in autocommit ours is ended.
            if status == b"E" and not self.in_transaction:
                self.to_target = codec.message(b"Q", _ROLLBACK + b"\x00")
            else:
                self._phase = 3
                self.result = self._answers(codec.ready_for_query(status))
            return
        command, rows = (messages.command_rows(self._complete[5:])
                         if self._complete is not None else (None, None))
        verb = command.split(" ", 1)[0] if command else None
        if verb not in _COUNTED_TAGS or rows is None:
            why = f"its count cannot be read (the server answered {command or 'no count'})"
            self._over = Over(None, command, why, b"")
        elif rows > self.limit:
            self._over = Over(rows, command, f"it writes {rows} rows, more than {self.limit}",
                              b"")
        elif self._overflow:
            self._over = Over(rows, command, f"its result is larger than the {self._keep} "
                              "bytes the gateway keeps while it counts", b"")
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
            self.result = Over(over.rows, over.command, over.why, status)
            return
        if self._over is not None:
            # The rollback failed (it does not, short of a broken server): say so, ran nothing.
            self._complete = None
        elif self._finish_error is not None:
            self._complete = None  # PostgreSQL reports the failed commit in its place
        self.result = self._answers(ready)

    def _answers(self, ready: bytes) -> bytes:
        out = list(self._kept)
        if self._complete is not None:
            out.append(self._complete)
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
