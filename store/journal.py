"""The store's commit log: one append-only file next to the SQLite database.

Committing a batch is one ``write()`` (plus ``fdatasync`` with ``durability: full``); the
records are moved into SQLite afterwards in large transactions (``SqliteStore.checkpoint``)
and the journal is emptied. On this machine a SQLite transaction costs about 100 µs — mostly
system calls — against about 15 µs for one append, and the difference is the gateway's
throughput. On open, records the database does not have yet are replayed from the journal.

A line is ``seq \\t kind \\t session \\t ref \\t prev \\t hash \\t body-json \\n``; bodies are
JSON, so they never contain a raw tab or newline.

A checkpoint that runs in a worker thread first ``rotate``s the journal: the file is renamed
``<journal>.<n>`` and a new one takes the appends that arrive while the thread writes SQLite.
The rotated files are removed once their records are in the database; until then (and after a
crash) they are replayed before the current file, oldest first.

A record that carries bytes (an SSH output chunk) ends its line with ``\\t #<length>`` and is
followed by the bytes themselves and a newline: copied as they are (base64 took a third of the
engine's time when a session streamed bulk output).

Replay reads the files with ``scan``, which changes nothing: besides the records it yields a
``Leftover`` for bytes that are not records — a torn tail (a write a crash cut short) or lines
that cannot be read — so that the store keeps them aside instead of dropping them. ``moved``
tells whether the file at the journal's path is still the one being appended to (someone may
have removed it); ``reopen`` starts a new one there. Readers beside a running engine (verify,
backup) take a ``read_snapshot``, read again while the engine rotates the files under them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from store.files import create_private


class JournalRecord(NamedTuple):
    seq: int
    kind: str
    session_id: str
    ref: int
    prev: str
    hash: str
    body: str
    blob: bytes | None = None

    def line(self) -> bytes:
        head = (
            f"{self.seq}\t{self.kind}\t{self.session_id}\t{self.ref}\t{self.prev}\t{self.hash}\t"
            f"{self.body}"
        ).encode()
        if self.blob is None:
            return head + b"\n"
        return b"".join((head, b"\t#%d\n" % len(self.blob), self.blob, b"\n"))


class Leftover(NamedTuple):
    """Bytes of a journal file that are not complete records, from ``offset`` to its end."""

    path: Path
    offset: int
    data: bytes
    torn: bool  # a write cut short by a crash (True), or lines that are not records (False)
    reason: str


class Journal:
    def __init__(self, path: Path, *, fsync: bool) -> None:
        self.path = path
        self._fsync = fsync
        self._fd = create_private(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._last: int | None = None  # the last rotated file's number (read at the first)

    def append(self, records: list[JournalRecord]) -> None:
        """Write the records durably, or raise OSError leaving the file as it was."""
        data = b"".join(r.line() for r in records)
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "short write to the journal (disk full?)")
            if self._fsync:
                os.fdatasync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def rotate(self) -> Path | None:
        """Move the records written so far to a file of their own (returned, or None when there
        are none) and go on appending to a fresh journal."""
        if self._size == 0:
            return None
        if self._last is None:  # numbers only grow: the directory is listed once
            self._last = max((int(p.suffix[1:]) for p in self.rotated()), default=0)
        old = self.path.with_name(f"{self.path.name}.{self._last + 1}")
        fd = create_private(self.path.with_name(self.path.name + ".next"),
                            os.O_WRONLY | os.O_TRUNC | os.O_APPEND)
        try:
            os.rename(self.path, old)
            self._last += 1  # taken, whatever happens next
            os.rename(self.path.with_name(self.path.name + ".next"), self.path)
        except OSError:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd, self._size = fd, 0
        if self._fsync:  # the renames must survive a crash as the records do
            dirfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        return old

    def rotated(self) -> list[Path]:
        """Rotated files not yet removed, oldest first."""
        return rotated_files(self.path)

    def scan(self) -> Iterator[tuple[Path, JournalRecord | Leftover]]:
        """Rotated files' records, then the current file's, each file's leftover after its
        records, with the file they are in (replay after a crash). Reads only: the caller
        clears the files once it has kept what they hold."""
        return scan(self.path)

    def moved(self) -> bool:
        """True when the file at the journal's path is no longer the one being appended to
        (removed, or replaced): appends would go where no replay finds them."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return True
        held = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino)

    def reopen(self) -> None:
        """Go on appending to a new, empty file at the journal's path (after ``moved``)."""
        fd = create_private(self.path, os.O_WRONLY | os.O_APPEND)
        os.close(self._fd)
        self._fd, self._size = fd, os.fstat(fd).st_size

    def clear(self) -> None:
        os.ftruncate(self._fd, 0)
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        os.close(self._fd)


@dataclass
class JournalSnapshot:
    """What the journal files held, read while no file was renamed, removed or cut."""

    path: Path
    records: list[tuple[Path, JournalRecord]] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)  # not records, except a torn tail
    steady: bool = True  # False: a running engine kept rotating it while it was read


def _files(path: Path) -> dict[str, tuple[int, int]]:
    """The journal's files now: name -> (inode, size)."""
    found = {}
    for file in [*rotated_files(path), path]:
        try:
            info = os.stat(file)
        except FileNotFoundError:
            continue
        found[file.name] = (info.st_ino, info.st_size)
    return found


def read_snapshot(path: Path, attempts: int = 20) -> JournalSnapshot:
    """Every journal file's records, read while no file was renamed, removed or cut (a running
    engine rotates its journal at each checkpoint), without changing anything: for readers
    beside a running engine (verify, backup). The current file's torn tail is a write in
    progress and is left out. Read it before the database: a record leaves the journal only
    once it is in the database, so the two together miss nothing."""
    journal = JournalSnapshot(path)
    for _ in range(attempts):
        journal = JournalSnapshot(path)
        before = _files(path)
        try:
            for file, found in scan(path):
                if isinstance(found, JournalRecord):
                    journal.records.append((file, found))
                elif not (found.torn and file == path):
                    journal.leftovers.append(found)
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        after = _files(path)
        if before.keys() == after.keys() and all(
                after[name][0] == ino and after[name][1] >= size
                for name, (ino, size) in before.items()):
            return journal
        time.sleep(0.01)
    journal.steady = False
    return journal


def rotated_files(path: Path) -> list[Path]:
    """The journal ``path``'s rotated files that exist, oldest first."""
    prefix = path.name + "."
    found = [p for p in path.parent.glob(prefix + "*") if p.name[len(prefix):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(prefix):]))


def scan(path: Path) -> Iterator[tuple[Path, JournalRecord | Leftover]]:
    """What the journal ``path`` and its rotated files hold, oldest first (see
    ``Journal.scan``); a file removed meanwhile raises FileNotFoundError."""
    for file in [*rotated_files(path), path]:
        if file is path and not path.exists():
            return
        reading = _read(file)
        while True:
            try:
                record = next(reading)
            except StopIteration as end:
                if end.value is not None:
                    yield file, end.value
                break
            yield file, record


def records_of(files: list[Path]) -> Iterator[JournalRecord]:
    """The complete records of the journal files ``files``, in order, without what follows
    them (the checkpoint process reads the files the engine rotated)."""
    for file in files:
        yield from _read(file)


def _read(path: Path) -> Generator[JournalRecord, None, Leftover | None]:
    """The complete records of one journal file; returns what follows them, if anything: a
    torn last record, or the rest of the file from the first line that is not a record (what
    follows such a line cannot be told apart from a blob's bytes)."""
    good = 0
    with path.open("rb") as f:
        number = 0
        while raw := f.readline():
            number += 1
            if not raw.endswith(b"\n"):
                return _leftover(f, path, good, True, f"record {number} was cut short")
            size = len(raw)
            try:
                seq, kind, sid, ref, prev, digest, rest = raw[:-1].decode().split("\t", 6)
                body, tab, marker = rest.partition("\t")
                blob = None
                if tab:
                    if not marker.startswith("#") or not marker[1:].isdigit():
                        raise ValueError("bad blob marker")
                    length = int(marker[1:])
                    data = f.read(length + 1)
                    if len(data) < length + 1:
                        return _leftover(f, path, good, True,
                                         f"record {number} was cut short in its bytes")
                    if data[-1:] != b"\n":
                        raise ValueError("bytes not followed by a newline")
                    blob, size = data[:-1], size + len(data)
                record = JournalRecord(int(seq), kind, sid, int(ref), prev, digest, body, blob)
            except (ValueError, UnicodeDecodeError):
                return _leftover(f, path, good, False,
                                 f"line {number} and what follows are not journal records")
            good += size
            yield record
    return None


def _leftover(f: BinaryIO, path: Path, offset: int, torn: bool, reason: str) -> Leftover:
    f.seek(offset)
    return Leftover(path, offset, f.read(), torn, reason)
