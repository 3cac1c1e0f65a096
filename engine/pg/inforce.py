"""The settings in force on a session, read from the target when a statement is held.

An approver is shown every setting that changes what the held statement's literals and
expressions mean (a date under DateStyle, a bytea's text under bytea_output …) where it
differs from the value the server gave the session at login. The gateway cannot follow those
values from the text of what ran: a function's body, a view or a DEFAULT may call
``set_config``; a SET in a transaction is undone by a rollback, or by a COMMIT of a failed
block; ``set_config(…, true)`` lasts until the transaction ends; a SET clause of a function
only inside its calls (outside attack on issue 12, round 15: each made the approver read a
held ``setval`` as setting 2001 when it set 1). So they are read from the session itself,
right before the request is made, and again when it is approved (the statement runs only
under the settings its approver was shown).

The reading is one query of the gateway's own on the session's connection, behind everything
sent before the held statement (``Reading.message`` follows its answers, which never reach the
client). It reads settings only: no table, no lock, nothing a later statement can see.

- Between Queries (nothing owed): a simple Query.
- In the extended protocol, where the segment so far neither bound nor executed anything
  (a driver's Parse, then the held Bind): Parse, Bind, Execute and Closes under the gateway's
  reserved names, then a Sync. The Sync ends no transaction of the client's: its segment ran
  nothing yet (a block of its own stays open), and the client's unnamed statement outlives it.
- Where the segment executed or bound something already: the same messages and a Flush, in the
  segment's implicit transaction (a Sync would commit what ran before the held statement).

Where the settings cannot be read (an aborted transaction, an earlier message of the pipeline
that failed) the held statement is refused: nothing true can be shown.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pglast.parser import ParseError, parse_sql_json

from engine.pg import codec, messages

# Settings that change what a statement's literals and expressions mean, which an approver
# is shown (those that change how its text reads cannot be set at all: ``reading``).
# Lower case.
MEANING = frozenset({"datestyle", "intervalstyle", "timezone", "bytea_output",
                     "extra_float_digits", "default_text_search_config",
                     "timezone_abbreviations", "lc_numeric", "lc_time", "lc_monetary",
                     "quote_all_identifiers", "transform_null_equals", "array_nulls",
                     "xmloption", "backslash_quote", "xmlbinary"})
NAMES = tuple(sorted(MEANING))
# PostgreSQL's defaults of some, not worth an approver's attention where the login gave no
# value of its own (the time zone and the locales are the server's own: always shown).
DEFAULTS = {"datestyle": "iso, mdy", "intervalstyle": "postgres", "bytea_output": "hex",
            "extra_float_digits": "1", "default_text_search_config": "pg_catalog.english",
            "timezone_abbreviations": "default", "quote_all_identifiers": "off",
            "transform_null_equals": "off", "array_nulls": "on", "xmloption": "content",
            "backslash_quote": "safe_encoding", "xmlbinary": "base64"}

# One text value, a JSON array of the settings in ``NAMES`` order (also read in front of a
# counted write: ``rowcount.STAT``). Every name is pg_catalog's.
EXPRESSION: bytes = ("pg_catalog.json_build_array(" + ", ".join(
    f"pg_catalog.current_setting('{name}', true)" for name in NAMES)
    + ")::pg_catalog.text").encode()
SQL = b"SELECT " + EXPRESSION
SIMPLE = codec.message(b"Q", SQL + b"\x00")
EXTENDED_ANSWERS = 5  # Parse, Bind, Execute, two Closes (``rowcount.statement``); and a row


def values(raw: bytes | None) -> dict[str, str] | None:
    """The settings in an ``EXPRESSION``'s value, by lower-case name; None when it cannot
    be read."""
    if raw is None:
        return None
    try:
        read = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(read, list) or len(read) != len(NAMES):
        return None
    return {n: str(v) for n, v in zip(NAMES, read, strict=True) if v is not None}


class Reading:
    """The answers to one reading, fed one whole message at a time (``message``) until
    ``done``: then ``values`` (by lower-case name) or ``failed`` (why not)."""

    __slots__ = ("_left", "done", "failed", "how", "statement", "values")

    def __init__(self, how: str, statement: Any = None) -> None:
        self.how = how  # "simple", "synced" or "flushed"
        # A prepared statement read for at its Parse (``prepared.Statement.parsed``), or None:
        # read for the message waiting on it
        self.statement = statement
        self.values: dict[str, str] | None = None
        self.failed: str | None = None
        self.done = False
        self._left = EXTENDED_ANSWERS

    def message(self, tag: int, body: bytes) -> None:
        if tag == 68:  # 'D'
            row = messages.data_row(body)
            if len(row) == 1:
                self.values = values(row[0])
        elif tag == 69:  # 'E'
            fields = messages.error_fields(body)
            self.failed = fields.get("M", "the target answered an error")
            if self.how == "flushed":  # the target skips the rest, to the client's Sync
                self.done = True
        elif tag == 90:  # 'Z': the end of a simple Query's, or of a synced reading's
            self.done = True
        elif tag in (49, 50, 51, 67) and self.how == "flushed":
            self._left -= 1
            self.done = self._left == 0
        if self.done and self.values is None and self.failed is None:
            self.failed = "the target did not answer the reading"

    def skipped(self, why: str) -> None:
        """The target skips the reading (an earlier message of its pipeline failed)."""
        self.failed = why
        if self.how != "synced":  # a synced reading's Sync is still answered (with its Z)
            self.done = True


@functools.lru_cache(maxsize=256)
def has_literals(text: str) -> bool:
    """Whether a statement holds constants, whose meaning its parse fixes (a date read under
    DateStyle then); one the gateway cannot parse counts as holding some."""
    try:
        return '"A_Const"' in parse_sql_json(text)
    except ParseError:
        return True


def note(values: dict[str, str], baseline: dict[str, str]) -> tuple[str, ...]:
    """What an approver is told of the settings read: those that differ from the login's
    values (``baseline``), or from PostgreSQL's defaults where the login gave none."""
    shown = [f"{name} = {value}" for name, value in sorted(values.items())
             if (baseline[name] != value if name in baseline
                 else DEFAULTS.get(name, "\0") != value.strip().lower())]
    return (f"settings in force: {'; '.join(shown)}",) if shown else ()
