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
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import NamedTuple


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


class Journal:
    def __init__(self, path: Path, *, fsync: bool) -> None:
        self.path = path
        self._fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

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
        taken = {int(p.suffix[1:]) for p in self.rotated()}
        old = self.path.with_name(f"{self.path.name}.{max(taken, default=0) + 1}")
        fd = os.open(self.path.with_name(self.path.name + ".next"),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            os.rename(self.path, old)
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
        prefix = self.path.name + "."
        found = [p for p in self.path.parent.glob(prefix + "*")
                 if p.name[len(prefix):].isdigit()]
        return sorted(found, key=lambda p: int(p.name[len(prefix):]))

    def all_records(self) -> Iterator[JournalRecord]:
        """Rotated files' records, then the current file's (replay after a crash)."""
        for path in self.rotated():
            yield from _read(path)
        yield from self.records()

    def records(self) -> Iterator[JournalRecord]:
        """Complete records in the file. A torn last line (a crash in the middle of a write,
        which was never acknowledged) is cut off, so that later appends start on a clean line.
        Raises ValueError for a complete line that is not a record."""
        good = yield from _read(self.path)
        if good != self._size:
            os.ftruncate(self._fd, good)
            self._size = good

    def clear(self) -> None:
        os.ftruncate(self._fd, 0)
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        os.close(self._fd)


def _read(path: Path) -> Generator[JournalRecord, None, int]:
    """The complete records of one journal file; returns how many bytes they take. A torn last
    line is left out (the current file is cut there by its owner)."""
    good = 0
    with path.open("rb") as f:
        number = 0
        while raw := f.readline():
            number += 1
            if not raw.endswith(b"\n"):
                break  # torn tail
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
                        break  # torn tail inside the bytes
                    if data[-1:] != b"\n":
                        raise ValueError("bytes not followed by a newline")
                    blob, size = data[:-1], size + len(data)
                record = JournalRecord(int(seq), kind, sid, int(ref), prev, digest, body, blob)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"{path.name} record {number} is not a journal record") from exc
            good += size
            yield record
    return good
