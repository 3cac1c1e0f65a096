"""``gatewatch backup DEST``: a consistent copy of the store while the engine runs, verified."""

from __future__ import annotations

import sys
from pathlib import Path

from store import StoreError, open_store, verify
from store.backup import backup


def backup_command(store: Path, dest: Path) -> int:
    """Exit 0 when the copy is written and verifies, 1 when the copy does not verify (the store
    itself does not: `gatewatch verify` says why), 2 when no copy could be made."""
    try:
        made = backup(store, dest)
        copy = open_store(dest, readonly=True)
    except StoreError as exc:
        print(f"gatewatch: {exc}", file=sys.stderr)
        return 2
    try:
        result = verify(copy)
    finally:
        copy.close()
    beside = (f" and {made.journal} in {', '.join(str(p) for p in made.journals)}"
              if made.journal else "")
    print(f"backed up {store} to {dest}: {made.records} audit records{beside}")
    if made.unreadable:
        print(f"note: {made.unreadable} bytes of the journal are not records and were not"
              " copied: `gatewatch verify` names them")
    if not result.ok:
        print(f"the copy does not verify: {result.problems[0]}", file=sys.stderr)
        return 1
    print(f"ok: the copy's audit chain of {result.records + result.pending} records is intact")
    return 0
