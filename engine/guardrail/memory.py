"""What a session created that its later statements may rely on: its own functions and tables.

A migration sent statement by statement (``psql -f``) creates a table, then a function that
maintains it, then a trigger that binds the function. Judged text by text with no memory, the
trigger binds a body the gateway never saw (opaque, held) and the function's ``UPDATE`` of the
new table may write any number of rows (held by a ``rows_over`` rule). With this memory, a
later text is judged knowing:

- ``functions``: each function the session created (by identity, ``s.f(int4)``) with what its
  body does, so a trigger that binds it is judged by that body;
- ``tables``: each table the session created (by name as written), whose rows are only what
  the session put there since: writes to them alone do not meet ``rows_over`` rules.

What the memory holds is only ever what the target confirmed and kept:

- an entry is added when the statement that created it completed without an error
  (``finished``), and only if nothing was forgotten since it was judged (``epoch``);
- an error from the target or a ``ROLLBACK`` (of a transaction or to a savepoint) takes the
  memory back to what the last transaction end committed (``rolled_back``), and a
  ReadyForQuery outside a transaction block commits it (``ready``);
- everything is forgotten when the session runs a statement that could change what a name
  means or run code the gateway has not read (``classify``'s ``keeps``: anything but creating
  tables, functions, triggers, indexes on columns, comments, transaction control, and writes
  of the session's own tables that call nothing). A name may then mean something else.

What it does not see: another session (or a direct connection to the target) replacing,
renaming or dropping one of these objects between two of this session's statements, and
unqualified names in a function body, which PostgreSQL resolves with the caller's
``search_path`` when the function runs (README's guardrail section).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.guardrail.classify import Facts


@dataclass(frozen=True, slots=True)
class Known:
    """The session's own functions and tables, as a text is judged against them."""

    functions: Mapping[str, Facts] = field(default_factory=dict)
    tables: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.functions or self.tables)


EMPTY = Known()


@dataclass(frozen=True, slots=True)
class Effects:
    """What running one text does to the memory: ``forgets`` (a statement in it keeps
    nothing), then adds what the statements after the last such one created."""

    forgets: bool = False
    functions: Mapping[str, Facts] = field(default_factory=dict)
    tables: frozenset[str] = frozenset()
    # It may change the search_path: from then on, unqualified function names never match.
    qualified_only: bool = False
    # It may put a schema ahead of pg_catalog: from then on, a name without its schema may
    # be a user's function or operator (``classify.shadows``).
    shadowed: bool = False

    @property
    def adds(self) -> bool:
        return bool(self.functions or self.tables)


NOTHING = Effects()
FORGETS = Effects(forgets=True)


class SessionMemory:
    """One session's memory; ``generation`` changes whenever ``known`` does, so that verdicts
    judged against another memory are not taken from a cache."""

    def __init__(self) -> None:
        self.known = EMPTY
        self._committed = EMPTY
        self.epoch = 0  # what was judged before the last forgetting may not be added
        self.generation = 0

    def _set(self, known: Known) -> None:
        if known != self.known:
            self.known = known
            self.generation += 1

    def started(self, effects: Effects) -> int:
        """A text goes to the target: forget now if it forgets (its additions wait for its
        completion). The epoch it ran in, for ``finished``."""
        if effects.forgets:
            self.forget()
        return self.epoch

    def finished(self, effects: Effects, epoch: int) -> None:
        """The text completed without an error."""
        if not effects.adds or epoch != self.epoch:
            return
        known = self.known
        self._set(Known({**known.functions, **effects.functions},
                        known.tables | effects.tables))

    def forget(self) -> None:
        self.epoch += 1
        self._committed = EMPTY
        self._set(EMPTY)

    def rolled_back(self) -> None:
        """An error or a ROLLBACK: back to what was committed (what was created since may
        be gone, and what completed but is still to be confirmed is dropped)."""
        self.epoch += 1
        self._set(self._committed)

    def ready(self, status: bytes) -> None:
        """ReadyForQuery: outside a transaction block, what the memory holds is committed."""
        if status == b"I":
            self._committed = self.known
