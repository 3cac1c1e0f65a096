"""Names of prepared statements and portals, as the target holds them at a point of the stream.

The gateway sees a message before the target runs it, and the messages before it may still
fail. So a change of what a name means (Parse, Close, Bind, SQL PREPARE / DEALLOCATE / DISCARD
ALL) is *pending* until the target confirms it, and applied then; a change the target refuses or
skips is dropped. Looking a name up then depends on where the pending changes are:

- in the segment still open (after the last Sync or Query sent): if any of them fails, the
  target skips every message up to the next Sync, the one being judged too; so the name means
  what they make it mean;
- in an earlier segment (and none in the open one): the target may have refused or skipped
  them, and still have the old meaning. When that could be another statement or portal (not
  just nothing), the answer is not known yet: the caller waits until that segment is answered.

Segments are counted by ``marks``: each Sync and Query sent is one (the ReadyForQuery that
answers it); the open segment's mark is the next one to be sent. A name is a key of bytes
(``SessionEncoding.name``); ``ALL`` changes every name (DEALLOCATE ALL, DISCARD ALL).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")
ALL = b"\x00all"  # never a name: names are C strings


class Change(Generic[T]):
    """A pending change of one name (``value`` None: the name is removed)."""

    __slots__ = ("key", "mark", "open", "tag", "value")

    def __init__(self, key: bytes, value: T | None, mark: int, tag: bytes = b"") -> None:
        self.key = key
        self.value = value
        self.mark = mark  # the mark of the segment it was sent in
        self.open = True
        self.tag = tag  # the CommandComplete tag that confirms an SQL statement's change


class Names(Generic[T]):
    __slots__ = ("live", "pending")

    def __init__(self) -> None:
        self.live: dict[bytes, T] = {}  # confirmed by the target
        self.pending: list[Change[T]] = []  # sent, in stream order

    def change(self, key: bytes, value: T | None, mark: int, tag: bytes = b"") -> Change[T]:
        change = Change(key, value, mark, tag)
        self.pending.append(change)
        return change

    def confirm(self, change: Change[T]) -> None:
        """The target did it."""
        if not change.open:
            return
        change.open = False
        self.pending.remove(change)
        if change.key == ALL:
            self.live.clear()
        elif change.value is None:
            self.live.pop(change.key, None)
        else:
            self.live[change.key] = change.value

    def drop(self, change: Change[T]) -> None:
        """The target refused or skipped it."""
        if change.open:
            change.open = False
            self.pending.remove(change)

    def lookup(self, key: bytes, mark: int, *, strict: bool = False) -> tuple[T | None, int]:
        """What ``key`` means to a message of the segment ``mark``: ``(value, 0)``, or
        ``(None, m)`` when it is not known until the segment ``m`` is answered. A name that
        may also not exist is not ambiguous (if the target has nothing by that name, the
        message fails there, and nothing runs), unless ``strict``."""
        value = self.live.get(key)
        if not self.pending:
            return value, 0
        wait = 0
        for change in self.pending:  # marks never decrease along the list
            if change.key != key and change.key != ALL:
                continue
            new = change.value if change.key == key else None
            if change.mark == mark:  # in the open segment: it decides, whatever came before
                value, wait = new, 0
            elif strict or (new is not None and value is not None and new is not value):
                value, wait = new, change.mark  # the old meaning or the new one
            elif new is not None:
                value = new  # this, or nothing at all
        return (None, wait) if wait else (value, 0)

    def settle(self, mark: int) -> None:
        """Segments up to ``mark`` are answered: what they left pending never happened."""
        if self.pending:
            for change in [c for c in self.pending if c.mark <= mark]:
                self.drop(change)

    def forget(self) -> None:
        """Every confirmed name is gone (portals at the end of a transaction); changes sent
        after that point stay pending."""
        self.live.clear()
