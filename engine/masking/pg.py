"""Masking of PostgreSQL results: the values a client reads, rewritten before it reads them.

Sans-io, like the relay: ``ResultMasker.rewrite(messages)`` takes a buffer of complete backend
messages (what ``PgRelay.server_data`` hands back) and returns the bytes to send to the client,
with the number of values masked. One ``ResultMasker`` per session, because a DataRow means
nothing without the RowDescription before it.

- ``RowDescription`` ('T') sets the plan of each column: a column rule applies (the caller's
  ``column_rule`` decides, by name or by table and attribute number), or only the value detectors
  apply, or nothing can apply (binary values of scalar types).
- ``DataRow`` ('D') values are masked where the plan says so and the row is rebuilt with its new
  lengths; values left alone are byte-identical. A row nothing can touch (no column rule, and the
  detectors' ``screen`` finds nothing in its bytes) is forwarded without being parsed.
- ``CopyData`` ('d') of a text or CSV COPY TO STDOUT is split into its fields with the
  statement's own options (``engine.masking.copyline``): columns a rule masks become the COPY's
  NULL, the others are masked by the detectors field by field; a line that does not split into
  the COPY's number of columns is sent as NULLs only. A binary COPY carries no types (a card
  number cast to bigint is eight bytes), and options the gateway cannot read (an encoding whose
  bytes it cannot split, an unknown option): such a COPY is refused, the client gets an
  ErrorResponse instead of its CopyOutResponse, data and CommandComplete.
- ``NoticeResponse`` and ``ErrorResponse``: their message, detail, hint, context and internal
  query fields are masked (an input syntax error quotes the value it could not read).
- ``NotificationResponse``: the channel and the payload of a NOTIFY, by the detectors; where
  column rules apply both are masked whole (a channel name computed from a masked column,
  ``pg_notify('p1_' || substr(national_id, 1, 1), …)``, tells which of the channels a client
  listens to fired: the value, one guess at a time).

Which rows a description covers: the rows that follow it until the result ends (CommandComplete,
EmptyQueryResponse, ErrorResponse or ReadyForQuery); a PortalSuspended keeps it, as the next
Execute of that portal continues the same rows. Drivers that cache a prepared statement's
description (pgjdbc, asyncpg, Npgsql) execute it later without a new Describe; where column
rules apply the gateway describes every bound portal itself (``describes_portals``) and drops
the answer, so their rows are described too (every Execute of every portal). Rows that still
come without a description are counted in ``uninspected[UNDESCRIBED_ROW]``; with column rules
and ``describes_portals`` every value of such a row becomes NULL (failing closed: which column
a value belongs to is unknown), otherwise the detectors read every value as text.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from engine.masking import binary, copyline, sqlstates
from engine.masking.copyline import CopyFormat
from engine.masking.flow import COMPLETION_LINEAGE, Statement, StatementFlow
from engine.masking.lineage import UNKNOWN, Lineage, Missing, Source
from engine.masking.masker import ValueMasker
from engine.masking.pieces import PIECE, OverBudget, mask_in_pieces
from engine.masking.strategies import REDACT
from engine.wire import ProtocolViolation

# Reasons counted in ``ResultMasker.uninspected``: data that may hold what should be masked
# but that the gateway could not rewrite.
BINARY_COPY = "binary COPY data"
BINARY_VALUE = "binary value of a non-text type"
UNDESCRIBED_ROW = "row without a description (column rules not applied)"

TEXT, BINARY, UNKNOWN_FORMAT = 0, 1, -1

# Types whose binary representation is their text in UTF-8 (the gateway insists on
# client_encoding UTF8), so a binary value is masked like a text one. jsonb's binary form is a
# version byte (1) before the JSON text.
TEXT_LIKE_TYPES = frozenset({
    25,  # text
    1043,  # varchar
    1042,  # bpchar
    19,  # name
    114,  # json
    3802,  # jsonb
    705,  # unknown
    142,  # xml
})
_JSON_TYPES = frozenset({114, 3802})
# Binary values of these types are numbers, dates and flags: no text can hide in them, so a
# binary value of one is not even screened.
_SCALAR_TYPES = frozenset({
    16, 18, 20, 21, 23, 26, 700, 701, 790, 1082, 1083, 1114, 1184, 1186, 1266, 1700, 2950,
})
# Of those, the binary values that hold no digits a detector could read (flags, dates, times).
_NO_TEXT_TYPES = frozenset({16, 1082, 1083, 1114, 1184, 1186, 1266})

# What to do with a column's values (see ``_mode``).
_KEEP = 0  # nothing applies
_OPAQUE = 1  # binary value of a type the gateway cannot decode: NULL if it holds a finding
_DETECT = 2  # value detectors on the text
_DETECT_JSON = 3  # the same, after jsonb's version byte when there is one
_DETECT_BINARY = 4  # a binary value of a built-in type: decoded, masked, re-encoded (binary.py)
_DETECT_TYPED = 5  # text of a type that cannot hold a mask (numbers, uuids): NULL on a finding
_DETECT_BYTEA = 6  # bytea in text format: its bytes (hex) decoded, masked, re-encoded
_RULE = 7  # the column rule's strategy on the text
_RULE_JSON = 8  # the same, for json/jsonb: the result must stay JSON
_RULE_NULL = 9  # a column rule on a value of another type: NULL
_RULE_BYTEA = 10  # a column rule on a bytea: the masked text as bytes
_DECODED = frozenset({_OPAQUE, _DETECT_BINARY})  # raw bytes say nothing: always decoded
# Text-format types whose text a client reads as text even masked: arrays of text-like types
# and records (psycopg and asyncpg split them into strings).
_TEXT_CONTAINERS = frozenset({1009, 1015, 1014, 1003, 199, 3807, 143, 2249, 2287})
_USER_TYPES = 16384  # OIDs from here on are the database's own (enums, composites, domains)

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")
_FIELD = struct.Struct("!IhIhih")  # table oid, attnum, type oid, typlen, typmod, format
_NULL = _I32.pack(-1)
# Every text field of an error or notice (RAISE ... USING sets column, constraint, datatype,
# table and schema to any text); not severity, SQLSTATE, positions or the server's source.
_MASKED_FIELDS = frozenset(b"MDHWqstcdn")
_STATEMENT_FIELDS = frozenset(b"MDHWqstcdn")  # what a statement reading masked columns hides
LINEAGE_UNKNOWN = "lineage-unknown"
# Characters: a value this long is masked piece by piece (``pieces.PIECE`` at a time), within a
# budget. One search over a value of a MiB held the interpreter (and every session of a
# worker, even from its worker thread) for seconds (outside attack round 13, finding 5).
LARGE_VALUE = 2 * PIECE
VALUE_BUDGET = 5.0  # seconds of masking one value may take (in a worker thread: results.py)
VALUE_BUDGET_COUNT = "value-budget"  # a value refused: not masked within its budget
READS_MASKED = "reads-masked-column"  # an error of a statement that reads a masked column
# An integrity error's DETAIL quoting rows of a table (any row's, not only the statement's).
QUOTES_ROWS = "constraint-detail"
NOTIFICATION_MASKED = "notification"  # a NOTIFY channel or payload, masked whole
BINARY_COPY_REFUSED = "binary-copy-refused"  # a binary COPY TO STDOUT, whose rows were refused
COPY_OPTIONS_REFUSED = "copy-options-refused"  # a COPY TO STDOUT whose options cannot be read
COPY_LINE_UNREADABLE = "copy-line-unreadable"  # a COPY line not of its columns: sent as NULLs

_NO_COPY, _COPY_TEXT, _COPY_REFUSED, _COPY_REFUSED_DONE = range(4)
_NO_HIT = -2  # ``_data_row`` without the native prefilter's match
_LINEAGE_TAGS = frozenset({84, 0, 72, 69, 78})  # messages that need the statement's lineage
# Messages that move ``StatementFlow`` on.
_FLOW_TAGS = frozenset({84, 0, 110, 1, 72, 71, 87, 67, 73, 115, 69, 90, 49, 50, 51})


class TextMasker(Protocol):
    """What this module needs of the value detectors (``engine.masking.masker.ValueMasker``).

    ``screen`` is asked about raw protocol bytes: a whole buffer of messages, one message, one
    value. It must answer True whenever any part of them, decoded as UTF-8, could be changed by
    ``mask`` (a prefilter: a false positive costs time, a false negative leaks).
    """

    def mask(self, text: str) -> tuple[str, list[str]]:
        """The masked text and the names of the detectors that fired."""
        ...

    def screen(self, data: bytes) -> bool:
        """Could anything in ``data`` need masking?"""
        ...

    # Optional: ``screen_pattern``, a bytes regex such that whenever ``screen(value)`` is True
    # for a value inside a buffer, some match of the pattern in the buffer overlaps the value.
    # A pattern has that property when it has no negative look-around, no anchor and no word
    # boundary: what matches in the value alone then matches at the same place in the buffer
    # (positive look-behinds see the same bytes, or more). Given one, a DataRow is searched
    # once and only the values a match touches go to the detectors.
    # Optional too: ``prefilter`` (``engine.masking.prefilter.Prefilter``), whose ``first``
    # finds the end of a match in a slice of a buffer, with the same property; it is preferred
    # once ``compiled`` (rows are scanned in C, and a run of clean rows is skipped whole).


@dataclass(frozen=True, slots=True)
class ColumnAction:
    """A column rule that applies to a result column.

    ``strategy`` gets the value as text and returns the masked text, or None for SQL NULL. A
    value of a type that is not text-like (numbers, dates, uuids, arrays, enums, in text or
    binary format) becomes NULL without calling it: the masked text would not be a valid value
    of the type, clients fail the whole result on a value they cannot parse, and NULL is the one
    value every type accepts. In json and jsonb columns, a result that is not JSON is
    sent as a JSON string, so that the client can still decode the column.
    """

    rule: str
    strategy: Callable[[str], str | None]
    # What counts name the column by: the table column behind it ("customers.national_id")
    # when known, so that an alias does not scatter one column's counts; else its own name.
    source: str | None = None


class ColumnSource(NamedTuple):
    """The table column a result column was read from (``engine.pg.catalog`` finds it)."""

    schema: str
    table: str
    column: str


class Unavailable:
    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = Unavailable()
"""The source of a column whose table's catalog entry could not be read."""


ColumnRule = Callable[[str, int, int], ColumnAction | None]
"""``column_rule(name, table_oid, attnum)``: the rule for a result column, if any. For a
computed column (``table_oid`` 0) it must depend on the name alone: the answer is kept."""

LineageRule = Callable[[frozenset[Source]], ColumnAction | None]
"""``lineage_rule(sources)``: the rule for a result column computed from these table columns
(``UNKNOWN`` among them: fail closed). A function of ``sources`` alone: answers are kept."""


class ResultColumn(NamedTuple):
    name: str
    table_oid: int  # 0 when the column is not a table's column
    attnum: int
    type_oid: int
    format: int  # TEXT, BINARY or UNKNOWN_FORMAT (a prepared statement's description)
    action: ColumnAction | None


def _mode(column: ResultColumn) -> int:
    oid = column.type_oid
    text_like = oid in TEXT_LIKE_TYPES
    is_json = oid in _JSON_TYPES
    if column.action is not None:
        # Only a text-like type takes any text: "****" is no integer, date, uuid or array, and
        # a client that cannot parse a value fails the whole result. NULL fits every type;
        # a bytea takes any bytes.
        if text_like:
            return _RULE_JSON if is_json else _RULE
        if oid == binary.BYTEA and column.format != UNKNOWN_FORMAT:
            return _RULE_BYTEA
        return _RULE_NULL
    if column.format == BINARY:
        if text_like:
            return _DETECT_JSON if is_json else _DETECT
        if oid in _NO_TEXT_TYPES:
            return _KEEP
        return _DETECT_BINARY if binary.known(oid) else _OPAQUE
    if column.format == TEXT:
        if oid == binary.BYTEA:
            return _DETECT_BYTEA
        if not text_like and oid not in _TEXT_CONTAINERS and oid < _USER_TYPES:
            return _DETECT_TYPED
    # A value whose format is not known is read as text: a binary value of a non-text type
    # that a detector matches is unlikely, and masking it makes it unreadable, not leaky.
    return _DETECT_JSON if is_json else _DETECT


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a strategy returned a lone surrogate of its own
        return text.encode("utf-8", "replace")


def _malformed(what: str) -> ProtocolViolation:
    return ProtocolViolation(f"malformed {what} message from the target")


class ResultMasker:
    """Masks the results of one session. Feed it every backend message, in order."""

    def __init__(self, masker: TextMasker, column_rule: ColumnRule | None = None,
                 known_table: Callable[[int], bool] | None = None, *,
                 flow: StatementFlow | None = None,
                 lineage_rule: LineageRule | None = None) -> None:
        self._values = masker
        self._mask = self._bounded if isinstance(masker, ValueMasker) else masker.mask
        self._mask_inline = masker.mask  # the hot path checks the length itself
        self._screen = masker.screen
        # A value this long is masked in pieces (``engine.masking.pieces``: cut only where no
        # value can cross the cut, so masked as it is whole), within ``value_budget`` seconds.
        # A value not done when its budget is spent is refused: its result ends with an
        # ErrorResponse (``VALUE_BUDGET_ERROR``) and the rest of that result is dropped
        # (counted as ``value-budget``); in an error's or notice's text it is masked whole.
        self.value_budget = VALUE_BUDGET
        self._refused = False  # the result in progress was refused: drop it to its end
        self._column_rule = column_rule
        # Lineage (column rules only): which statement each result is of, and the rule for a
        # column computed from table columns. ``missing_names``: catalog names the last
        # ``rewrite`` stopped for (like ``missing``); ``names_failed``: the lookup failed, go
        # on failing closed.
        self.flow = flow
        self._lineage_rule = (_remembered(lineage_rule) if lineage_rule is not None
                              else None)
        # A computed column's rule depends on its name alone (no table, no catalog): kept.
        self._computed_rules: dict[str, ColumnAction | None] = {}
        self.missing_names: Missing | None = None
        self.names_failed = False
        self._hide_errors = False  # the statement in progress reads a masked column
        self._copy_actions: tuple[ColumnAction | None, ...] = ()
        self._copy_format: CopyFormat = copyline.TEXT
        self._copy_count = 0  # the COPY's columns
        self._copy_header = False  # the next CopyData is the CSV header (column names)
        # ``known_table(oid)``: whether ``column_rule`` can tell this table's columns apart now.
        # A RowDescription naming a table it does not know stops ``rewrite`` (see ``missing``).
        self._known_table = known_table
        self.missing: frozenset[int] = frozenset()  # tables the last ``rewrite`` stopped for
        self.stopped_at: int | None = None  # where in its input it stopped
        # Counts of each result that ended (CommandComplete, EmptyQueryResponse, ErrorResponse),
        # in order, for the caller to give to its statements; what the result in progress has
        # masked so far is carried over to the next ``rewrite``.
        self.ended: deque[Counter[tuple[str, str]]] = deque()
        self._carry: Counter[tuple[str, str]] = Counter()
        # ``engine.pg.relay.PgRelay.describe_portals``: each Execute is preceded by the
        # gateway's own Describe of the portal; its answer comes re-tagged (0: RowDescription,
        # 1: NoData), describes the rows of that Execute, and is dropped from what the client
        # reads. Rows with no description then fail closed when column rules apply.
        self.describes_portals = False
        self.uninspected: Counter[str] = Counter()  # reason → messages or values, cumulative
        # The message (M) of each error whose text the client got masked: original → masked,
        # for the statement's record (``recorded_error``), which the relay wrote from the
        # target's bytes. Bounded: a record not claimed (a session that ended) is dropped.
        self._errors: dict[str, str] = {}
        self.columns: tuple[ResultColumn, ...] | None = None  # the description in force
        self._modes: tuple[int, ...] = ()
        # One search over a whole DataRow tells which of its values could need masking (see
        # ``TextMasker.screen_pattern``), instead of a screen per value.
        pattern = getattr(masker, "screen_pattern", None)
        self._finditer: Callable[[bytes, int, int], Iterator[re.Match[bytes]]] | None = (
            pattern.finditer if pattern is not None else None)
        # Better still, the native prefilter (``engine.masking.prefilter``): a scan in C tells
        # whether a row could need masking, and where a match ends; rows it passes are not
        # parsed, and in a row it does not pass only values near a match are screened.
        self._native = getattr(masker, "prefilter", None)
        self._first: Callable[[bytes | memoryview, int, int | None], int] | None = (
            self._native.first if self._native is not None else None)
        self._rules = False  # a column rule applies to a column of the description
        self._detect = True  # the detectors may apply to a value (rows must be screened)
        self._statement_description = False  # after ParameterDescription: Describe statement
        self._copy = _NO_COPY

    def reset(self) -> None:
        """Forget the result in progress (done at each ReadyForQuery)."""
        self._describe(None)
        self._refused = False
        self._statement_description = False
        self._copy = _NO_COPY

    def _bounded(self, text: str) -> tuple[str, list[str]]:
        """``text`` masked; raises ``OverBudget`` for a long value not masked in its budget."""
        masker = self._values
        assert isinstance(masker, ValueMasker)
        if len(text) < LARGE_VALUE:
            return masker.mask(text)
        # Give the GIL away between pieces: in a worker thread (engine.pg.results), the
        # event loop of every other session then waits for one piece at most. (A value with
        # no place to cut, ``pieces.next_cut``, is still masked in one call.)
        return mask_in_pieces(masker, text, budget=self.value_budget, pause=_yield)

    def _whole_on_budget(self, text: str) -> tuple[str, list[str]]:
        """``text`` masked, or masked whole when it cannot be in its budget (an error's or a
        notice's text, a record: not data a client asked for)."""
        try:
            return self._mask(text)
        except OverBudget:
            return REDACT.mask, [VALUE_BUDGET_COUNT]

    def _refuse(self, exc: OverBudget, counts: Counter[tuple[str, str]]) -> bytes:
        """The ErrorResponse that replaces a row with a value not masked within its budget;
        the rest of its result is dropped (``_refused``)."""
        self._refused = True
        counts[(VALUE_BUDGET_COUNT, "")] += 1
        return _budget_error(exc)

    def _describe(self, columns: tuple[ResultColumn, ...] | None) -> None:
        self.columns = columns
        if columns is None:
            self._modes = ()
            self._rules, self._detect = False, True
            return
        self._modes = modes = tuple(_mode(c) for c in columns)
        self._rules = any(m >= _RULE for m in modes) or any(m in _DECODED for m in modes)
        self._detect = any(_OPAQUE <= m < _RULE for m in modes)

    def rewrite(self, messages: bytes) -> tuple[bytes, Counter[tuple[str, str]]]:
        """Masked ``messages`` (complete backend messages, back to back), and how many values
        were masked, by (rule or detector, column name or "")."""
        counts: Counter[tuple[str, str]] = Counter()
        mark: Counter[tuple[str, str]] = Counter()  # ``counts`` when the last result ended
        self.missing, self.stopped_at = frozenset(), None
        self.missing_names = None
        flow = self.flow
        n = len(messages)
        view: memoryview | None = None  # made when the first message changes
        pieces: list[bytes | memoryview] = []
        run = 0  # start of the bytes not copied to ``pieces`` yet
        pos = 0
        dirty: bool | None = None  # the screen of the whole buffer, asked when first needed
        first = self._first
        if self._native is not None and not self._native.compiled:
            first = None  # still compiling: the Python screen, as without hyperscan
        rows_end = 0  # the end of the run of DataRows screened last
        block_end = 0  # the end of the block of rows in hand, and whether it may need masking
        block_dirty = True
        unpack = _I32.unpack_from
        while pos < n:
            if n - pos < 5:
                raise ProtocolViolation("the masker was given an incomplete message")
            tag = messages[pos]
            end = pos + 1 + unpack(messages, pos + 1)[0]
            if end < pos + 5 or end > n:
                raise ProtocolViolation("the masker was given an incomplete message")
            new: bytes | None = None
            if flow is not None and (tag in _LINEAGE_TAGS or (
                    tag == 67 and _completion_lineage(flow.upcoming(tag)))):
                statement = flow.upcoming(tag)
                lineage = self._lineage(statement)
                if lineage is not None and not self.names_failed and (
                        lineage.missing.relations or lineage.missing.functions):
                    self.missing_names, self.stopped_at = lineage.missing, pos
                    n = pos
                    break
                if tag in (69, 78):
                    self._hide_errors = self._reads_masked(lineage, statement)
            if tag == 68:  # 'D' DataRow: the hot path
                detect = self._detect
                spans: list[tuple[int, int]] | None = None
                hit = _NO_HIT
                if detect and first is not None:
                    # The rows in a run, not the whole buffer: a description's column names
                    # and type OIDs would look like values to the screen. A run with a match
                    # is screened again in blocks of rows, so that a value among many clean
                    # rows does not make each of them a scan.
                    if pos >= rows_end:
                        rows_end = _rows_end(messages, pos, n)
                        if first(messages, pos, rows_end) >= 0:
                            block_end = _rows_end(messages, pos, rows_end, _BLOCK)
                            block_dirty = (block_end == rows_end
                                           or first(messages, pos, block_end) >= 0)
                        else:
                            block_end, block_dirty = rows_end, False
                    elif pos >= block_end:
                        block_end = _rows_end(messages, pos, rows_end, _BLOCK)
                        block_dirty = first(messages, pos, block_end) >= 0
                    if block_dirty:
                        hit = first(messages, pos + 5, end)
                        detect = hit >= 0
                    else:
                        detect = False
                        if not self._rules and (self.columns is not None
                                                or self._column_rule is None):
                            pos = block_end  # the whole block (or run) passes as it is
                            continue
                elif detect:
                    if dirty is None:
                        dirty = self._screen(messages)
                    if not dirty:
                        detect = False
                    elif self._finditer is not None:
                        spans = [m.span() for m in self._finditer(messages, pos + 5, end)]
                        detect = bool(spans)
                    else:
                        detect = self._screen(messages[pos + 5 : end])
                if self._refused:
                    new = b""  # the client got an error for this result instead
                elif detect or self._rules:  # (decoded binary values count as rules here)
                    try:
                        new = self._data_row(messages, pos + 5, end, detect, counts,
                                             spans if detect else None,
                                             hit if detect else _NO_HIT)
                    except OverBudget as exc:
                        new = self._refuse(exc, counts)
                elif self.columns is None and self._column_rule is not None:
                    self.uninspected[UNDESCRIBED_ROW] += 1
                    if self.describes_portals:
                        new = _null_row(messages, pos + 5, end, counts)
            elif tag == 100:  # 'd' CopyData
                if self._copy == _COPY_TEXT:
                    if dirty is None:
                        dirty = self._screen(messages)
                    actions = self._copy_actions
                    if self._copy_header:  # names, not values: only the detectors apply
                        self._copy_header, actions = False, ()
                    if dirty or actions:
                        try:
                            new = self._copy_line(messages, pos + 5, end, actions, counts)
                        except OverBudget as exc:
                            # Refused like a binary COPY: the rest of it is dropped.
                            self._copy = _COPY_REFUSED
                            counts[(VALUE_BUDGET_COUNT, "")] += 1
                            new = _budget_error(exc)
                elif self._copy == _COPY_REFUSED:
                    new = b""
            elif tag == 84 or tag == 0:  # 'T' RowDescription, or the gateway's own
                if self._known_table is not None:
                    missing = self._unknown_tables(messages, pos + 5, end)
                    if missing:  # the caller looks them up and gives us the rest again
                        self.missing, self.stopped_at = missing, pos
                        n = pos
                        break
                self._row_description(messages, pos + 5, end)
                if tag == 0:
                    new = b""  # the gateway asked, not the client: it never sees the answer
            elif tag == 116:  # 't' ParameterDescription: a RowDescription or NoData follows
                self._statement_description = True
            elif tag == 110:  # 'n' NoData
                self._statement_description = False
            elif tag == 1:  # NoData, answering the gateway's own Describe
                self._describe(None)
                new = b""
            elif tag in (67, 69, 115) and self._refused:
                # The refused result's own end ('s' PortalSuspended too): the client was told.
                new = b""
                self._refused = False
                self._describe(None)
                self._hide_errors = False
                mark = self._result_ended(counts, mark)
            elif tag == 69 and self._copy in (_COPY_REFUSED, _COPY_REFUSED_DONE):
                new = b""  # the client was told already: the refused COPY's own end
                self._describe(None)
                self._copy = _NO_COPY
                self._hide_errors = False
                mark = self._result_ended(counts, mark)
            elif tag in (69, 78):  # 'E' ErrorResponse, 'N' NoticeResponse
                if dirty is None:
                    dirty = self._screen(messages)
                if dirty or self._hide_errors:
                    new = self._fields(messages, pos, end, counts)
                self._hide_errors = False
                if tag == 69:  # the statement, and a COPY in progress, ended
                    self._describe(None)
                    self._copy = _NO_COPY
                    mark = self._result_ended(counts, mark)
            elif tag == 65:  # 'A' NotificationResponse: pg_notify payloads are free text
                if flow is not None:
                    # Column rules apply: a payload, or the name of a channel, may be computed
                    # from a masked column's value in any form, which no detector recognises;
                    # which statement of which session sent it is not known (fail closed).
                    new = self._notification(messages, pos, end, counts, whole=True)
                else:
                    if dirty is None:
                        dirty = self._screen(messages)
                    if dirty:
                        new = self._notification(messages, pos, end, counts)
            elif tag in (67, 73):  # 'C' CommandComplete, 'I' EmptyQueryResponse
                if self._copy == _COPY_REFUSED_DONE:
                    new = b""  # the client got an error for this COPY instead
                    self._copy = _NO_COPY
                self._describe(None)
                mark = self._result_ended(counts, mark)
            elif tag == 90:  # 'Z' ReadyForQuery
                self.reset()
                if flow is not None and end - pos >= 6:
                    flow.ready(messages[pos + 5])
            elif tag == 72:  # 'H' CopyOutResponse
                if end - pos < 6:
                    raise _malformed("CopyOutResponse")
                fmt = self._copy_format_of()
                if messages[pos + 5] != 0:
                    # Binary COPY data carries no type: a card number cast to bigint or
                    # numeric is a few bytes no detector or rule can tell (lineage knows its
                    # sources, not its type). Refused whole, with a reason (invariant 9).
                    self._copy = _COPY_REFUSED
                    counts[(BINARY_COPY_REFUSED, "")] += 1
                    new = _BINARY_COPY_ERROR
                elif fmt is None:
                    # Lines the gateway cannot split as PostgreSQL spelled them: refused the
                    # same way, not guessed at.
                    self._copy = _COPY_REFUSED
                    counts[(COPY_OPTIONS_REFUSED, "")] += 1
                    new = _COPY_OPTIONS_ERROR
                else:
                    self._copy = _COPY_TEXT
                    self._copy_format = fmt
                    self._copy_header = fmt.header
                    self._copy_plan(messages, pos + 5, end)
            elif tag == 99:  # 'c' CopyDone
                refused = self._copy == _COPY_REFUSED
                self._copy = _COPY_REFUSED_DONE if refused else _NO_COPY
                if refused:
                    new = b""
            if flow is not None and tag in _FLOW_TAGS:
                flow.advance(tag)
            if new is not None:
                if view is None:
                    view = memoryview(messages)
                if run < pos:
                    pieces.append(view[run:pos])
                pieces.append(new)
                run = end
            pos = end
        if counts:
            self._carry.update(counts - mark)
        if view is None:
            return (messages if n == len(messages) else messages[:n]), counts
        if run < n:
            pieces.append(view[run:n])
        return b"".join(pieces), counts

    def _result_ended(self, counts: Counter[tuple[str, str]],
                      mark: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
        result = self._carry
        if counts != mark:
            result.update(counts - mark)
            mark = counts.copy()
        self.ended.append(result)
        self._carry = Counter()
        return mark

    def _unknown_tables(self, buf: bytes, start: int, end: int) -> frozenset[int]:
        """Table OIDs of a RowDescription (at ``buf[start:end]``) that ``known_table`` does not
        know. A malformed message answers nothing: ``_row_description`` reports it."""
        known = self._known_table
        assert known is not None
        if end - start < 2:
            return frozenset()
        unknown: set[int] = set()
        p = start + 2
        for _ in range(_I16.unpack_from(buf, start)[0]):
            nul = buf.find(b"\x00", p, end)
            if nul < 0 or nul + 1 + _FIELD.size > end:
                break
            table = _I32.unpack_from(buf, nul + 1)[0] & 0xFFFFFFFF
            if table and not known(table):
                unknown.add(table)
            p = nul + 1 + _FIELD.size
        return frozenset(unknown)

    # --- messages ---------------------------------------------------------------------------

    def _row_description(self, buf: bytes, start: int, end: int) -> None:
        formats_known = not self._statement_description
        self._statement_description = False
        if end - start < 2:
            raise _malformed("RowDescription")
        count = _I16.unpack_from(buf, start)[0]
        rule = self._column_rule
        p = start + 2
        columns: list[ResultColumn] = []
        for _ in range(count):
            nul = buf.find(b"\x00", p, end)
            if nul < 0 or nul + 1 + _FIELD.size > end:
                raise _malformed("RowDescription")
            name = buf[p:nul].decode("utf-8", "replace")
            table, attnum, type_oid, _, _, fmt = _FIELD.unpack_from(buf, nul + 1)
            p = nul + 1 + _FIELD.size
            if not formats_known:
                # Describe of a prepared statement reports text for every column: the real
                # formats are chosen later, by the Bind that the gateway does not read here.
                fmt = UNKNOWN_FORMAT
            if rule is None:
                action = None
            elif table:  # a table's column: the catalog, which changes, decides
                action = rule(name, table, attnum)
            else:
                action = self._computed_rule(rule, name)
            columns.append(ResultColumn(name, table, attnum, type_oid, fmt, action))
        if p != end:
            raise _malformed("RowDescription")
        actions = self._lineage_actions(len(columns))
        if actions is not None:
            written: Callable[[str], frozenset[Source]] | None = None
            for i, (c, a) in enumerate(zip(columns, actions, strict=True)):
                if c.table_oid and c.action is not None and c.action.source is not None:
                    written = written or self._written_masked()
                    kept = written(c.action.source)
                    if kept:  # the column holds values written from masked columns
                        assert self._lineage_rule is not None
                        columns[i] = c._replace(action=a or self._lineage_rule(kept))
                elif c.action is None and a is not None:
                    columns[i] = c._replace(action=a)
        self._describe(tuple(columns))

    def _written_masked(self) -> Callable[[str], frozenset[Source]]:
        """``written("table.column")``: the masked sources of values written into that table
        column, by earlier statements (the catalog's ``derived``) or by the statement in
        progress (its ``writes``, which its RETURNING shows). A column rule that shows part
        of a value (``keep_last``, ``hash``) must not apply to such a column: a piece of a
        masked value written back into its own column (``'xxxx' || substr(card_number, 5,
        4)``), or another masked column's, would come back shown by the piece, and single
        characters written beside candidates would hash alike (outside attack on issue 14,
        round 13). Such a column is masked as computed from what was written (whole)."""
        flow, rule = self.flow, self._lineage_rule
        if flow is None or rule is None:
            return lambda _name: frozenset()
        derived = getattr(flow.analyzer.catalog, "derived", None)
        statement = flow.upcoming(84)
        lineage = self._lineage(statement)
        writes = lineage.writes if lineage is not None else ()

        def written(name: str) -> frozenset[Source]:
            table, _, column = name.lower().rpartition(".")
            kept: frozenset[Source] = (derived(table, column) if derived is not None
                                       else frozenset())
            for target, lin in writes:
                if target.table.lower() == table and target.column.lower() in (column, _ANY_COLUMN):
                    kept |= lin
            return kept if kept and rule(kept) is not None else frozenset()

        return written

    def _computed_rule(self, rule: ColumnRule, name: str) -> ColumnAction | None:
        rules = self._computed_rules
        if name in rules:
            return rules[name]
        if len(rules) >= _REMEMBERED:
            rules.clear()
        action = rules[name] = rule(name, 0, 0)
        return action

    # --- lineage -----------------------------------------------------------------------------

    def _lineage(self, statement: Statement | None) -> Lineage | None:
        if self.flow is None or statement is None:
            return None
        return self.flow.lineage(statement)

    def _reads_masked(self, lineage: Lineage | None, statement: Statement | None) -> bool:
        """Whether the statement in progress reads a masked column (or what it reads cannot
        be known): its errors and notices may quote such a value."""
        if self.flow is None or self._lineage_rule is None:
            return False
        if statement is None or self.flow.catalog_changed:
            return True  # which statement, or what its names mean, is unknown: fail closed
        if lineage is None:
            return False  # it does not parse: the server did not run it
        if statement.kind not in _READS_KNOWN:
            # DDL (CREATE INDEX, ALTER TABLE ... GENERATED), COMMIT (deferred constraints)...
            # read table values lineage does not follow: their errors quote them.
            return True
        return self._lineage_rule(lineage.reads) is not None

    def _lineage_actions(self, count: int) -> list[ColumnAction | None] | None:
        """The rule of each of ``count`` result columns of the statement in progress, by
        lineage; None when lineage does not apply."""
        flow, rule = self.flow, self._lineage_rule
        if flow is None or rule is None:
            return None
        statement = flow.upcoming(84)
        lineage = self._lineage(statement)
        if statement is None or lineage is None or flow.catalog_changed:
            # Which statement this is, or what its names mean (the transaction changed the
            # catalog), is unknown: every column is masked.
            return [rule(_UNKNOWN_LINEAGE)] * count
        cols = lineage.columns
        if cols is None or len(cols) != count:
            # The shape is not the one lineage saw (a FETCH of a cursor it could not follow,
            # a function's record, a statement it cannot account for): unknown, unless the
            # statement shows no table values (SHOW, EXPLAIN: what it reads decides).
            if cols is None and statement.kind in _ROWS_WITHOUT_VALUES:
                whole = rule(lineage.reads) if lineage.reads else None
            else:
                whole = rule(lineage.reads | _UNKNOWN_LINEAGE)
            return [whole] * count
        return [rule(c) if c else None for c in cols]

    def _copy_plan(self, buf: bytes, start: int, end: int) -> None:
        """A CopyOutResponse: which of its columns a rule masks, by the COPY's lineage."""
        self._copy_actions = ()
        if end - start < 3:
            return
        count = _I16.unpack_from(buf, start + 1)[0]
        self._copy_count = count
        actions = self._lineage_actions(count)
        if actions is not None and any(a is not None for a in actions):
            self._copy_actions = tuple(actions)

    def _copy_format_of(self) -> CopyFormat | None:
        """How the upcoming COPY's lines are spelled, from its statement's options; None when
        they cannot be read (or the statement is not known: its options are not either)."""
        if self.flow is None:
            return copyline.TEXT
        statement = self.flow.upcoming(72)
        tree = statement.tree if statement is not None else None
        node = tree.get("CopyStmt") if tree else None
        return copyline.copy_format(node) if isinstance(node, dict) else None

    def _data_row(self, buf: bytes, start: int, end: int, detect: bool,
                  counts: Counter[tuple[str, str]],
                  spans: list[tuple[int, int]] | None = None,
                  hit: int = -2) -> bytes | None:
        """The rebuilt DataRow whose body is ``buf[start:end]``, or None if no value changed.
        ``detect``: the row's bytes screened dirty; ``spans``: where ``screen_pattern`` matched
        in them (a value no span overlaps is clean), or None to screen each value; ``hit``:
        the end of a native prefilter match in the row (``_NO_HIT``: no native prefilter).

        With ``hit``, the values are walked with the prefilter: a value that a match ends in
        goes to the detectors; one before it is screened (the match reported need not be the
        first); after it, the rest of the row is scanned again from the value in hand, and
        when nothing matches there, every value left is clean."""
        if end - start < 2:
            raise _malformed("DataRow")
        ncols = _I16.unpack_from(buf, start)[0]
        columns = self.columns
        modes = self._modes
        if columns is None or ncols != len(modes):
            # No description, or not this row's (a statement executed without one): the
            # detectors read every value as text; column rules cannot be applied.
            if self._column_rule is not None:
                self.uninspected[UNDESCRIBED_ROW] += 1
                if self.describes_portals:
                    return _null_row(buf, start, end, counts)
            if columns is not None:  # came here for the rules: screen now
                detect = self._screen(buf[start:end])
            if not detect:
                return None
            columns = None
            modes = (_DETECT,) * ncols
        screen, mask, unpack = self._screen, self._mask_inline, _I32.unpack_from
        first = self._first
        screened = spans is not None  # ``dirty_value`` is the answer (no screen of the value)
        nspans = len(spans) if spans is not None else 0
        k = 0  # the first span that ends after the value in hand
        pieces: list[bytes] = []
        last = start  # start of the bytes not copied to ``pieces`` yet
        growth = 0
        p = start + 2
        for i, mode in enumerate(modes):
            if p + 4 > end:
                raise _malformed("DataRow")
            size = unpack(buf, p)[0]
            vstart = p + 4
            if size < 0:
                if size != -1:
                    raise _malformed("DataRow")
                p = vstart
                continue
            vend = p = vstart + size
            if vend > end:
                raise _malformed("DataRow")
            if detect and spans is not None:
                while k < nspans and spans[k][1] <= vstart:
                    k += 1
                dirty_value = k < nspans and spans[k][0] < vend
            elif hit != _NO_HIT and mode != _KEEP:
                if 0 <= hit <= vstart and first is not None:
                    hit = first(buf, vstart, end)  # what was found lies before this value
                # -1: nothing in the rest of the row. A match ending inside this value makes
                # it a candidate; one ending after it says nothing of it: screened below.
                dirty_value = hit > vstart
                screened = hit <= vend
            else:
                dirty_value = detect  # screened below, value by value
            if mode == _DETECT:  # the hot case, inlined: ``_value`` does the same
                if not dirty_value:
                    continue
                raw = buf[vstart:vend]
                # Most values stay as they are: the screen rejects them. Skipping it changes
                # nothing but the cost, as the detectors find nothing where it finds nothing.
                if not screened and not screen(raw):
                    continue
                text = raw.decode("utf-8", "surrogateescape")
                masked, fired = mask(text) if size < LARGE_VALUE else self._mask(text)
                if fired:
                    name = columns[i].name if columns is not None else ""
                    for detector in fired:
                        counts[(detector, name)] += 1
                if masked == text:
                    continue
                value: bytes | None = _encode(masked)
            else:
                if mode == _KEEP:
                    continue
                if mode < _RULE and mode not in _DECODED:  # the cheap checks first
                    if (not dirty_value
                            or (not screened and not screen(buf[vstart:vend]))):
                        continue
                raw = buf[vstart:vend]
                column = columns[i] if columns is not None else None
                value = self._value(mode, raw, column, counts)
                if value is raw:
                    continue
            pieces.append(buf[last : vstart - 4])
            if value is None:
                pieces.append(_NULL)
                growth -= size
            else:
                pieces.append(_I32.pack(len(value)))
                pieces.append(value)
                growth += len(value) - size
            last = vend
        if p != end:
            raise _malformed("DataRow")
        if not pieces:
            return None
        pieces.append(buf[last:end])
        pieces.insert(0, b"D" + _I32.pack(end - start + 4 + growth))
        return b"".join(pieces)

    def _value(self, mode: int, raw: bytes, column: ResultColumn | None,
               counts: Counter[tuple[str, str]]) -> bytes | None:
        """A value masked as its column's mode says: new bytes, None for NULL, or ``raw``
        itself when it stays as it is."""
        name = column.name if column is not None else ""
        if mode in _DECODED or mode in (_DETECT_BYTEA, _DETECT_TYPED):
            fired: list[str] = []
            type_oid = column.type_oid if column is not None else 0
            try:
                if mode == _DETECT_BINARY:
                    new = binary.mask_value(type_oid, raw, self._mask, fired)
                elif mode == _DETECT_BYTEA:
                    new = binary.bytea_text(raw, self._mask, fired)
                elif mode == _DETECT_TYPED:
                    text = raw.decode("utf-8", "surrogateescape")
                    masked_text, fired = self._mask(text)
                    new = raw if masked_text == text else None
                else:
                    new = binary.mask_opaque(raw, self._mask, fired)
            except binary.Undecodable:
                # Not what its type says: opaque, and NULL when it could hold a finding.
                self.uninspected[BINARY_VALUE] += 1
                new = binary.mask_opaque(raw, self._mask, fired)
            for detector in fired:
                counts[(detector, name)] += 1
            return new
        prefix = b""
        if mode in (_DETECT_JSON, _RULE_JSON) and raw[:1] == b"\x01":  # jsonb's version byte
            prefix = raw[:1]
        if mode <= _DETECT_JSON:
            text = raw[len(prefix) :].decode("utf-8", "surrogateescape")
            masked, fired = self._mask(text)
            for detector in fired:
                counts[(detector, name)] += 1
            if masked == text:
                return raw
            if mode == _DETECT_JSON and _is_json(text):
                # A value found inside a JSON number (``{"n": ****1111}``) is no JSON: the
                # client's parser would fail on it. Then the whole becomes a JSON string.
                masked = _as_json(masked)
            return prefix + _encode(masked)
        assert column is not None and column.action is not None
        action = column.action
        counts[(action.rule, action.source or name)] += 1
        if mode == _RULE_NULL:
            return None
        if mode == _RULE_BYTEA:
            data = raw
            if column.format == TEXT and raw.startswith(b"\\x"):
                try:
                    data = bytes.fromhex(raw[2:].decode("ascii"))
                except (ValueError, UnicodeDecodeError):
                    return None
            masked_bytes = action.strategy(data.decode("utf-8", "surrogateescape"))
            if masked_bytes is None:
                return None
            out = _encode(masked_bytes)
            return b"\\x" + out.hex().encode("ascii") if column.format == TEXT else out
        result = action.strategy(raw[len(prefix) :].decode("utf-8", "surrogateescape"))
        if result is None:
            return None
        if mode == _RULE_JSON:
            result = _as_json(result)
        return prefix + _encode(result)

    def _copy_line(self, buf: bytes, start: int, end: int,
                   actions: tuple[ColumnAction | None, ...],
                   counts: Counter[tuple[str, str]]) -> bytes | None:
        """A CopyData of a text or CSV COPY TO STDOUT, masked; its newline stays. Columns a
        rule masks (by the COPY's lineage) become the COPY's NULL, the detectors mask the
        others' values one by one (a value is not screened glued to its neighbours)."""
        data = buf[start:end]
        fmt = self._copy_format
        newline = data.endswith(b"\n")
        text = (data[:-1] if newline else data).decode("utf-8", "surrogateescape")
        fields = copyline.split(text, fmt)
        if fields is None or len(fields) != self._copy_count:
            # Not the line its options and columns describe: nothing of it is sent.
            counts[(COPY_LINE_UNREADABLE, "")] += 1
            masked = fmt.delimiter.join([fmt.null] * self._copy_count)
        else:
            parts: list[str] = []
            for i, field in enumerate(fields):
                action = actions[i] if i < len(actions) else None
                if action is not None:
                    counts[(action.rule, action.source or "")] += 1
                    parts.append(fmt.null)
                    continue
                value = field.value
                if value is None:
                    parts.append(field.raw)
                    continue
                new, fired = self._mask(value)
                for detector in fired:
                    counts[(detector, "")] += 1
                parts.append(field.raw if new == value else copyline.spell(new, fmt))
            masked = fmt.delimiter.join(parts)
        if masked == text:
            return None
        body = _encode(masked) + (b"\n" if newline else b"")
        return b"d" + _I32.pack(len(body) + 4) + body

    def _notification(self, buf: bytes, pos: int, end: int,
                      counts: Counter[tuple[str, str]], *, whole: bool = False) -> bytes | None:
        """A NotificationResponse (at ``buf[pos:end]``) with its channel and payload masked
        (``whole``: each replaced by the redaction mark unless empty)."""
        start, stop = _split_notification(buf, pos, end)
        parts: list[bytes] = [buf[pos + 5 : pos + 9]]
        changed = False
        for a, b in ((pos + 9, start - 1), (start, stop)):
            raw = buf[a:b]
            # The channel is one the client LISTENs to by that exact name, but which of them
            # fired may be computed too (``pg_notify(chan, …)``): the value, guess by guess.
            if whole:
                if raw:
                    counts[(NOTIFICATION_MASKED, "")] += 1
                    raw = REDACT.mask.encode()
                    changed = True
            elif self._screen(raw):
                text = raw.decode("utf-8", "surrogateescape")
                masked, fired = self._whole_on_budget(text)
                for detector in fired:
                    counts[(detector, "")] += 1
                if masked != text:
                    raw = _encode(masked.replace("\x00", ""))
                    changed = True
            parts.append(raw + b"\x00")
        if not changed:
            return None
        body = b"".join(parts)
        return b"A" + _I32.pack(len(body) + 4) + body

    def _fields(self, buf: bytes, pos: int, end: int,
                counts: Counter[tuple[str, str]]) -> bytes | None:
        """An ErrorResponse or NoticeResponse (at ``buf[pos:end]``) with its texts masked."""
        body = buf[pos + 5 : end]
        hide = self._hide_errors
        quotes = self._quotes_rows(body)
        if not hide and not quotes and not self._screen(body):
            return None
        fields: list[bytes] = []
        changed = False
        p = 0
        n = len(body)
        while p < n and body[p] != 0:
            stop = body.find(b"\x00", p + 1)
            if stop < 0:
                raise _malformed("ErrorResponse" if buf[pos] == 69 else "NoticeResponse")
            field = body[p : stop + 1]
            if hide and body[p] == 67 and body[p + 1:stop].decode("ascii", "replace") not in (
                    sqlstates.KNOWN):
                # RAISE … USING ERRCODE spells any five characters: kept only when it is a
                # code PostgreSQL raises itself (clients act on those).
                counts[(READS_MASKED, "")] += 1
                field = b"C" + sqlstates.RAISED.encode() + b"\x00"
                changed = True
            elif hide and body[p] in _STATEMENT_FIELDS and stop > p + 1:
                # The statement reads a masked column: any of its texts may quote a value.
                counts[(READS_MASKED, "")] += 1
                field = body[p : p + 1] + (HIDDEN_ERROR.encode()
                                           if body[p] == 77 else b"****") + b"\x00"
                changed = True
                if body[p] == 77 and buf[pos] == 69:
                    self._remember_error(body[p + 1 : stop], HIDDEN_ERROR)
            elif quotes and body[p] == 68 and stop > p + 1:
                # "Key (r)=(...) conflicts with existing key (r)=(...)", "Failing row contains
                # (...)": values of rows the statement itself may not read, of any column.
                counts[(QUOTES_ROWS, "")] += 1
                field = b"D****\x00"
                changed = True
            elif body[p] in _MASKED_FIELDS and self._screen(field):
                text = body[p + 1 : stop].decode("utf-8", "surrogateescape")
                masked, fired = self._whole_on_budget(text)
                for detector in fired:
                    counts[(detector, "")] += 1
                if masked != text:
                    # A NUL would end the C string early and shift every field after it.
                    field = body[p : p + 1] + _encode(masked.replace("\x00", "")) + b"\x00"
                    changed = True
                    if body[p] == 77 and buf[pos] == 69:
                        self._remember_error(body[p + 1 : stop], masked.replace("\x00", ""))
            fields.append(field)
            p = stop + 1
        if not changed:
            return None
        fields.append(b"\x00")
        new_body = b"".join(fields)
        return buf[pos : pos + 1] + _I32.pack(len(new_body) + 4) + new_body


    def _quotes_rows(self, body: bytes) -> bool:
        """Whether an error's DETAIL may quote table rows where column rules apply: an
        integrity constraint violation (SQLSTATE class 23) quotes the conflicting existing
        key or the failing row, read by the constraint, not by the statement's lineage."""
        if self.flow is None or self._lineage_rule is None:
            return False
        at = body.find(b"\x00C23")
        return at >= 0 or body.startswith(b"C23")

    def _remember_error(self, original: bytes, masked: str) -> None:
        if len(self._errors) >= _ERRORS_KEPT:
            self._errors.pop(next(iter(self._errors)))
        self._errors[original.decode("utf-8", "replace")] = masked

    def recorded_error(self, text: str) -> tuple[str, list[str]]:
        """An error message as the statement's record keeps it: as the client got it when
        this masker rewrote it, else read by the detectors (with the names that fired)."""
        masked = self._errors.pop(text, None)
        if masked is not None:
            return masked, []
        return self._whole_on_budget(text)


HIDDEN_ERROR = "**** (masked: the statement reads a masked column)"
_ERRORS_KEPT = 64

UNDESCRIBED = "undescribed-row"  # the count of values NULLed in rows without a description


_REMEMBERED = 4096  # rules remembered per session, by column name or by sources
_BLOCK = 32  # rows screened together inside a run that holds a match


def _remembered(rule: LineageRule) -> LineageRule:
    """``rule`` remembering its answers: the rule for a set of table columns is the policy's
    (it reads no catalog), and a session asks again for every result it reads."""
    answers: dict[frozenset[Source], ColumnAction | None] = {}

    def remembered(sources: frozenset[Source]) -> ColumnAction | None:
        if sources in answers:
            return answers[sources]
        if len(answers) >= _REMEMBERED:
            answers.clear()
        action = answers[sources] = rule(sources)
        return action

    return remembered


def _rows_end(buf: bytes, pos: int, n: int, most: int = -1) -> int:
    """Where the run of DataRows starting at ``pos`` ends (a message that is not one, the end
    of the buffer, or a malformed length, which the caller then reports), or its first
    ``most`` rows."""
    unpack = _I32.unpack_from
    while n - pos >= 5 and buf[pos] == 68 and most:
        most -= 1
        end = pos + 1 + unpack(buf, pos + 1)[0]
        if end < pos + 5 or end > n:
            break
        pos = end
    return pos


def _null_row(buf: bytes, start: int, end: int,
              counts: Counter[tuple[str, str]]) -> bytes:
    """A DataRow (body at ``buf[start:end]``) with every value NULL: column rules apply, and
    nothing says which column a value is."""
    if end - start < 2:
        raise _malformed("DataRow")
    ncols: int = _I16.unpack_from(buf, start)[0]
    if ncols < 0:
        raise _malformed("DataRow")
    counts[(UNDESCRIBED, "")] += ncols
    body: bytes = _I16.pack(ncols) + _NULL * ncols
    return b"D" + _I32.pack(len(body) + 4) + body


_UNKNOWN_LINEAGE = frozenset({UNKNOWN})
_ANY_COLUMN = "\0any"  # lineage's name for any column of a table (a write it cannot place)


def _error(sqlstate: str, message: str) -> bytes:
    body = b"".join(key + value.encode() + b"\x00" for key, value in (
        (b"S", "ERROR"), (b"V", "ERROR"), (b"C", sqlstate), (b"M", message))) + b"\x00"
    return b"E" + _I32.pack(len(body) + 4) + body


def _budget_error(exc: OverBudget) -> bytes:
    """What the client gets for a result with a value the gateway could not mask in time:
    SQLSTATE 54000 (program_limit_exceeded), as for a message over ``max_message_size``."""
    return _error("54000", f"the gateway refused this result: {exc} (engine."
                  "masking_value_budget); the statement itself ran. Select less of the "
                  "value (substr, left) or ask an administrator to raise the budget.")


def _yield() -> None:
    time.sleep(0)


_BINARY_COPY_ERROR = _error(
    "0A000", "COPY TO STDOUT in binary format is refused where masking applies, since its "
    "values cannot be masked: use FORMAT text or csv.")
_COPY_OPTIONS_ERROR = _error(
    "0A000", "COPY TO STDOUT with these options is refused where masking applies, since the "
    "gateway cannot read its lines to mask them: use FORMAT text or csv without ENCODING.")
# Statements whose rows show no table value (settings, plans).
_ROWS_WITHOUT_VALUES = frozenset({"VariableShowStmt", "ExplainStmt"})
# Statements whose ``Lineage.reads`` holds every table column they read.
_READS_KNOWN = frozenset({
    "SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CopyStmt",
    "DeclareCursorStmt", "PrepareStmt", "ExplainStmt", "CreateTableAsStmt", "FetchStmt",
    "ExecuteStmt", "CallStmt", "DoStmt", "VariableShowStmt",
})


def _completion_lineage(statement: Statement | None) -> bool:
    """Whether a statement's lineage is needed when it completes (what it wrote or declared,
    ``StatementFlow._learn``): its catalog names are looked up first."""
    return statement is not None and statement.kind in COMPLETION_LINEAGE


def _split_notification(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Where a NotificationResponse's payload starts and ends (its NUL)."""
    channel_end = buf.find(b"\x00", pos + 9, end)
    payload_end = buf.find(b"\x00", channel_end + 1, end) if channel_end >= 0 else -1
    if payload_end != end - 1:
        raise _malformed("NotificationResponse")
    return channel_end + 1, payload_end


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _as_json(text: str) -> str:
    try:
        json.loads(text)
    except ValueError:
        return json.dumps(text)
    return text
