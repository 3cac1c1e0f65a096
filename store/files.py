"""The store's files on disk are the engine's user's alone (ARCHITECTURE.md invariant 12).

The store (``gatewatch.db``), SQLite's ``-wal`` and ``-shm``, the journal and its rotated files
and the lock file are 0600, in a 0700 directory, whatever the umask: files are created with
mode 0600 and set to it exactly (a umask may take bits away, never add them, but an odd umask
such as 0277 would leave the engine unable to write its own file). SQLite creates ``-wal`` and
``-shm`` with the database file's own mode, so creating the database file first, 0600, is what
keeps them private.

A writer refuses a store or directory that others can read, with the command that fixes it,
rather than tightening the modes itself: files that were readable may already have been read,
and an operator should know.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from store.errors import ExposedStore

FILE_MODE = 0o600
DIR_MODE = 0o700

def private_directory(path: Path) -> None:
    """Create ``path`` 0700 when it does not exist (its parents with the umask's default)."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return  # created meanwhile: checked like any existing directory
    os.chmod(path, DIR_MODE)


def create_private(path: Path, flags: int = os.O_WRONLY) -> int:
    """Open ``path``, creating it 0600 when absent; returns the descriptor."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE and os.fstat(fd).st_size == 0:
            os.fchmod(fd, FILE_MODE)  # new (empty) file: the umask took bits away
    except OSError:
        os.close(fd)
        raise
    return fd


def touch_private(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist."""
    os.close(create_private(path))


def store_files(store: Path) -> list[Path]:
    """The files of the store at ``store`` that exist: database, SQLite's, every node's
    journals and lock (and those of an engine from before nodes)."""
    names = [store.name + suffix for suffix in ("", "-wal", "-shm", "-journal")]
    found = [store.with_name(n) for n in names if store.with_name(n).exists()]
    found += sorted(p for p in store.parent.glob(store.name + ".*")
                    if p.is_file() and (p.suffix in (".journal", ".lock") or ".journal." in p.name
                                        or p.name.endswith(".journal")))
    return found


def _mode(path: Path) -> int | None:
    """A file's permission bits; None when it went meanwhile (another node's checkpoint
    process closing the database removes its -wal and -shm between the listing and the
    look)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def check_private(store: Path) -> None:
    """Raise ``ExposedStore`` when the store's directory or one of its files is open to
    group or others; the message gives the command that fixes it."""
    directory = store.parent
    info = os.stat(directory)
    open_dir = stat.S_IMODE(info.st_mode) & 0o077
    files = [(p, mode) for p in store_files(store) if (mode := _mode(p)) is not None]
    open_files = [(p, mode) for p, mode in files if mode & 0o077]
    if not open_dir and not open_files:
        return
    if open_dir and (info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX
                     or not _holds_only_gatewatch(store)):
        # /tmp, /var/lib, a home directory: shared with others, so chmod is not the answer.
        raise ExposedStore(
            f"the store {store} is in {directory}, a directory shared with other users (mode"
            f" {stat.S_IMODE(info.st_mode):04o}): give it a directory of its own, e.g."
            f" `mkdir -m 700 {shlex.quote(str(directory / 'gatewatch'))}` and engine.store:"
            f" {directory / 'gatewatch' / store.name}")
    what = [f"{p.name} is {mode:04o}" for p, mode in open_files]
    if open_dir:
        what.append(f"its directory is {stat.S_IMODE(info.st_mode):04o}")
    fix = []
    if open_files:
        fix.append("chmod 600 " + " ".join(shlex.quote(str(p)) for p, _ in open_files))
    if open_dir:
        fix.append(f"chmod 700 {shlex.quote(str(directory))}")
    raise ExposedStore(
        f"the store {store} is readable by other users ({', '.join(what)}): refusing to start;"
        f" run `{'; '.join(fix)}` (and consider what they may have read)")


def _holds_only_gatewatch(store: Path) -> bool:
    """True when the store's directory holds nothing but the engine's own files (the store's,
    SSH host keys the engine made beside it, a control socket): then ``chmod 700`` on it
    takes nothing from anyone."""
    for entry in store.parent.iterdir():
        name = entry.name
        if not (name.startswith((store.name, "ssh_host_")) or name.endswith(".sock")):
            return False
    return True
