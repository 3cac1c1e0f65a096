"""One writer per node of a store (ARCHITECTURE.md invariant 12): an exclusive lock on a file
beside it, one per node name.

A node takes ``<store>.<node>.lock`` (``store.nodes.node_lock``) with
``flock(LOCK_EX | LOCK_NB)`` before anything touches the store (migrations, journal replay,
recovery) and holds it for its life; other nodes hold their own. The kernel releases the
lock when the process ends, however it ends, so a crashed engine never leaves a stale lock: the
file's content (the holder's PID and host) is only there to name the holder in the refusal.
The lock file is never removed: removing it while another engine waits to open it would let
two engines lock two different files.

``flock`` locks belong to an open file description: a second open in the same process
conflicts like one in another process, which is what tests of a second engine rely on. The
descriptor is close-on-exec (Python's default), so a child the engine starts never holds it —
but for the node's checkpoint process (``store/checkpointer.py``), which is handed it on
purpose: the lock is free only once that process is gone too.
Read-only opens (the CLI, the TUI's history) never take the lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from store.errors import StoreLocked
from store.files import create_private
from store.nodes import default_node, node_lock


def lock_path(store: Path, node: str | None = None) -> Path:
    """The lock file of ``node`` (by default this host's node) on ``store``."""
    return node_lock(store, default_node() if node is None else node)


class StoreLock:
    """A node's lock on one store; ``release`` (or the process ending) gives it up."""

    def __init__(self, store: Path, fd: int, node: str) -> None:
        self.store = store
        self.node = node
        self.path = lock_path(store, node)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, store: Path, node: str) -> StoreLock:
        """Lock ``store`` as ``node`` for this process or raise ``StoreLocked`` naming who
        holds it. Raises OSError when the lock file cannot be created or opened."""
        path = lock_path(store, node)
        fd = create_private(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            other = node != default_node()
            raise StoreLocked(
                f"the store {store} is in use by another engine"
                f"{f' as node {node}' if other else ''} ({holder}): stop that one first, or"
                f" give this one{' a node name of its own (engine.node) or' if other else ''}"
                " a store of its own (engine.store)") from None
        except BaseException:
            os.close(fd)
            raise
        try:  # who holds it, for the refusal a second engine prints
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # a full file system: the lock holds all the same, unnamed
        return cls(store, fd, node)

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int | None:
        """The locked descriptor (None once released), for the checkpoint process."""
        return self._fd

    def still_ours(self) -> bool:
        """False when the lock file was removed or replaced since it was taken: another engine
        could then lock a new file at the same path."""
        if self._fd is None:
            return False
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def retake(self) -> None:
        """After the lock file was removed: lock a new one at the path, or raise StoreLocked
        when another engine got there first. The old lock is kept until the new one is held."""
        fresh = StoreLock.acquire(self.store, self.node)
        self.release()
        self._fd, fresh._fd = fresh._fd, None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no PID left behind to mislead anyone
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor releases the lock


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        text = []
    if len(text) >= 2 and text[0].isdigit():
        return f"process {text[0]} on {text[1]}"
    return "a process that has not written its PID yet"
