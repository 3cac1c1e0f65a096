"""A copy of a store that a running engine goes on writing (``gatewatch backup DEST``).

The journal is read first (``read_snapshot``), then the database is copied with SQLite's online
backup, in one read transaction. A record leaves the journal only once it is in the database,
so the copy and what was read of the journal together hold every record committed when the
backup began; each node's journal records that the copied database lacks are written to that
node's journal beside DEST (``DEST.<node>.journal``), where an engine started on DEST as that
node replays them from, and where ``verify`` looks. The files are created 0600 (ARCHITECTURE.md
invariant 12). A backup never takes a node's lock: it reads, as the CLI does.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from store.errors import StoreError
from store.files import create_private, touch_private
from store.journal import read_snapshot
from store.nodes import journals, node_journal
from store.sqlite import open_store


@dataclass(frozen=True)
class Backup:
    path: Path
    records: int  # audit records in the copied database
    journal: int  # records committed to a journal only, copied to the journals beside DEST
    unreadable: int  # bytes of the journal that are not records, not copied (verify names them)
    journals: tuple[Path, ...] = ()  # the journals beside DEST that hold them


def backup(store: Path, dest: Path) -> Backup:
    """Copy ``store`` to ``dest`` (and, for each node whose journal holds records the database
    does not have yet, that node's journal beside ``dest``). Raises StoreError; never
    overwrites a file."""
    names = journals(store)
    for path in (dest, *(node_journal(dest, node) for node in names)):
        if path.exists():
            raise StoreError(f"{path} exists: give the backup a new name")
    if not dest.parent.is_dir():
        raise StoreError(f"no directory {dest.parent} for the backup")
    snapshots = {node: read_snapshot(path) for node, path in names.items()}
    if not all(j.steady for j in snapshots.values()):
        raise StoreError("the engine rotated its journal all the time the backup read it: try"
                         " again")
    source = open_store(store, readonly=True)
    try:
        try:
            touch_private(dest)  # SQLite writes into it as it is: 0600
            target = sqlite3.connect(dest)
            try:
                source.conn.backup(target)
                heads = dict(target.execute("SELECT node, max(seq) FROM audit GROUP BY node"))
            finally:
                target.close()
        except (OSError, sqlite3.Error) as exc:
            dest.unlink(missing_ok=True)
            raise StoreError(f"cannot write the backup {dest}: {exc}") from exc
    finally:
        source.close()
    written, files = 0, []
    for node, journal in snapshots.items():
        head = int(heads.get(node) or 0)
        later: dict[int, bytes] = {}
        for _, record in journal.records:
            if record.seq > head:
                later.setdefault(record.seq, record.line())
        if later:
            fd = create_private(node_journal(dest, node), os.O_WRONLY | os.O_EXCL)
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(later[seq] for seq in sorted(later)))
                os.fsync(f.fileno())
            written += len(later)
            files.append(node_journal(dest, node))
    return Backup(dest, sum(int(n or 0) for n in heads.values()), written,
                  sum(len(x.data) for j in snapshots.values() for x in j.leftovers),
                  tuple(files))
