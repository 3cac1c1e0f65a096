"""The engine's end of the checkpoint process, which moves a node's journal records into SQLite
outside the engine's interpreter (``store/checkpointd.py``: the process's end).

A checkpoint in a thread of the engine competed with the event loop for the GIL: folding the
records into rows, binding them, hashing — about a sixth of the engine's time under load. So
a SQLite writer starts one process of its own (``CheckpointProcess``) and keeps only the
coordination: it still decides when to checkpoint, rotates the journal, puts back files removed
under it and clears the rotated files once they are in the database (``SqliteStore``). A job
names the rotated files and the records to take from them — their first and last sequence
numbers, the hash before the first and the last one's hash — and the process reads the files,
checks that the records it found make exactly that piece of the chain (every number, every
link), and writes them through ``store.checkpoint`` in one transaction, as the engine's own
checkpoints do. The process says it is ready with a first line; a reply is one line:
``{"ok": true}``, ``{"error": ...}`` (the database refused: the store is broken until a
checkpoint succeeds, as before) or ``{"missing": ...}`` (the files do not hold those records).

Whenever the process is not there — it cannot start, has not said it is ready yet (starting
takes a moment, seconds on a loaded machine, and readers must not wait for it), it ended, or
the files lack the records — the engine writes the job itself from the records it keeps in
memory (first checking that the process did not commit them just before it ended), in its
checkpoint thread as before, so nothing depends on the process being alive.

The process inherits the node's lock (the same open file description, ``store/lock.py``): a
node's lock is free only once both the engine and its checkpoint process are gone, so an
engine started after a crash never replays a journal while the old one's process still
writes it. The process ends when its standard input closes (the engine stopped, or died);
it ignores SIGINT and SIGTERM, which a terminal or a service manager sends to the whole group,
and finishes the transaction it is in.
"""

from __future__ import annotations

import logging
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from store.lock import StoreLock

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[1]  # where ``store`` is importable from
STOP_TIMEOUT = 10.0
RESPAWN_AFTER = 5.0  # after the process ended: the engine checkpoints itself meanwhile
READY = b'{"ready":true}\n'  # the process's first line, once it can take jobs

Job = dict[str, Any]
Reply = dict[str, Any]


class CheckpointProcess:
    """The engine's end of a node's checkpoint process: started on first use (or
    ``start``), asked to run jobs one at a time (``run``, from the checkpoint thread: it
    blocks until the reply), stopped before the node's lock is released (``stop``)."""

    def __init__(self, path: Path, node: str, durability: str, lock: StoreLock) -> None:
        self._args = [str(path), node, durability]
        self._lock = lock
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False  # it said so: until then the engine writes the jobs itself
        self._guard = threading.Lock()
        self._retry_at = 0.0

    def start(self) -> bool:
        """Start the process unless it runs; False when it cannot be started now."""
        with self._guard:
            return self._started()

    def _started(self) -> bool:
        if self._proc is not None:
            return True
        fd = self._lock.fd
        if fd is None or time.monotonic() < self._retry_at:
            return False
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "store.checkpointd", *self._args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(fd,), cwd=_ROOT)
        except OSError as exc:
            log.warning("cannot start the store's checkpoint process (%s): checkpoints run in"
                        " the engine", exc)
            self._retry_at = time.monotonic() + RESPAWN_AFTER
            return False
        self._ready = False
        return True

    def run(self, job: Job) -> Reply | None:
        """The process's reply to ``job``; None when it is not there, not ready yet (it
        takes a moment to start, longer on a loaded machine: the checkpoints meanwhile are not
        held up by it) or ended meanwhile."""
        with self._guard:
            if not self._started():
                return None
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            line = b""
            try:
                if not self._ready:
                    if not select.select([proc.stdout], [], [], 0)[0]:
                        return None
                    line = proc.stdout.readline()
                    self._ready = line == READY
                if self._ready:
                    proc.stdin.write(orjson.dumps(job) + b"\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
            except OSError:
                line = b""
            if line and self._ready:
                try:
                    reply: Reply = orjson.loads(line)
                    return reply
                except orjson.JSONDecodeError:
                    pass
            self._reap(proc)
            log.warning("the store's checkpoint process ended (exit status %s): checkpoints run"
                        " in the engine for %.0f s, then it is started again", proc.returncode,
                        RESPAWN_AFTER)
            self._retry_at = time.monotonic() + RESPAWN_AFTER
            return None

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Start the process and wait until it can take jobs (tests); False if it cannot."""
        with self._guard:
            if not self._started():
                return False
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            if not self._ready and select.select([proc.stdout], [], [], timeout)[0]:
                self._ready = proc.stdout.readline() == READY
            return self._ready

    def stop(self) -> None:
        """Let the process finish and end (its input closes); killed if it takes too long."""
        with self._guard:
            if self._proc is not None:
                self._reap(self._proc, STOP_TIMEOUT)

    def kill(self) -> None:
        """End the process at once, as the engine's death would (tests of crashes)."""
        with self._guard:
            if self._proc is not None:
                self._proc.kill()
                self._reap(self._proc)

    def _reap(self, proc: subprocess.Popen[bytes], timeout: float = 1.0) -> None:
        self._proc = None
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
