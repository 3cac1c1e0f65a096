"""The checkpoint process (``python -m store.checkpointd STORE NODE DURABILITY``): runs the
jobs its engine sends (``store/checkpointer.py``) — reads the records from the journal files
named, checks them against the chain the engine committed, writes them to SQLite — and ends
when its standard input closes. Never imported by the engine."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson

from store.chain import link
from store.checkpoint import BUSY_ATTEMPTS, busy, merge, write_once
from store.checkpointer import READY
from store.journal import JournalRecord, records_of

Job = dict[str, Any]
Reply = dict[str, Any]


def identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (device and inode), None when there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class _Writer:
    """The process's end: one write connection, opened again when the engine put the store
    file back (its identity changed)."""

    def __init__(self, path: Path, node: str, durability: str) -> None:
        self.path = path
        self.node = node
        self.durability = durability
        self.parent = os.getppid()
        self.conn: sqlite3.Connection | None = None
        self.file: tuple[int, int] | None = None

    def _connect(self) -> None:
        if self.conn is not None:
            self.conn.close()
        # mode=rw: a store file that is not there is never created here (the engine puts it back)
        self.conn = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, isolation_level=None,
                                    timeout=10)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.conn.execute(
            f"PRAGMA synchronous = {'FULL' if self.durability == 'full' else 'NORMAL'}")
        self.file = identity(self.path)

    def run(self, job: Job) -> Reply:
        file = tuple(job["file"]) if job.get("file") else None
        try:
            if self.conn is None or self.file != file:
                self._connect()
        except sqlite3.Error as exc:
            return {"error": str(exc)}
        if identity(self.path) != file or self.file != file:
            return {"error": "the store was removed or replaced while the engine ran"}
        try:
            records = self._records(job)
        except (OSError, ValueError) as exc:
            return {"missing": str(exc)}
        if isinstance(records, str):
            return {"missing": records}
        assert self.conn is not None
        merged = merge(records, self.node)
        for attempt in range(BUSY_ATTEMPTS):
            failed = write_once(self.conn, self.node, records, merged)
            if failed is None or not busy(failed) or attempt == BUSY_ATTEMPTS - 1:
                break
            if os.getppid() != self.parent:
                sys.exit(0)  # the engine is gone: its next run replays the journal
            time.sleep(0.05 * (attempt + 1))
        return {"ok": True} if failed is None else {"error": str(failed)}

    def _records(self, job: Job) -> list[tuple[JournalRecord, dict[str, Any]]] | str:
        """The job's records from its files, each checked against the chain the engine
        committed; a string saying what is wrong when they are not all there."""
        first, last = int(job["first"]), int(job["last"])
        found: dict[int, JournalRecord] = {}
        for record in records_of([Path(f) for f in job["files"]]):
            if first <= record.seq <= last:
                found.setdefault(record.seq, record)
        prev = str(job["prev"])
        out = []
        for seq in range(first, last + 1):
            if seq not in found:
                return f"record {seq} is not in the journal files"
            record = found[seq]
            if record.prev != prev or link(prev, seq, record.kind, record.session_id,
                                           record.ref, record.body.encode()) != record.hash:
                return f"record {seq} is not the one the engine committed"
            out.append((record, orjson.loads(record.body)))
            prev = record.hash
        if prev != job["hash"]:
            return f"record {last} is not the one the engine committed"
        return out


def serve(path: Path, node: str, durability: str, jobs: IO[bytes], replies: IO[bytes]) -> None:
    """Run the jobs that arrive on ``jobs`` until it closes."""
    writer = _Writer(path, node, durability)
    try:
        replies.write(READY)
        replies.flush()
        for line in jobs:
            replies.write(orjson.dumps(writer.run(orjson.loads(line))) + b"\n")
            replies.flush()
    except BrokenPipeError:
        pass  # the engine stopped (or died) before it read the reply: nothing to tell
    finally:
        if writer.conn is not None:
            writer.conn.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path, node, durability = sys.argv[1:4]
    serve(Path(path), node, durability, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
