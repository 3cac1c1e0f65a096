"""``gatewatch export`` and ``gatewatch verify --export``: ``recordings.export`` on the
command line.

Both print one line and return the exit status: 0 done or matching, 1 a failed check (a file
that does not match, a store whose tables disagree with its chain), 2 a usage mistake (no such
session, a PostgreSQL session as asciicast, a file that cannot be written or read).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from recordings.export import ChainHead, ExportError, chain_head, export
from recordings.export.check import check_export
from recordings.export.events import StoreMismatch
from recordings.export.formats import Exported, progress_for
from recordings.export.progress import Progress
from recordings.sessions import find_session
from store import SqliteStore


def usage(message: str) -> int:
    print(f"gatewatch: {message}", file=sys.stderr)
    return 2


def failed(message: str) -> int:
    print(f"verification FAILED: {message}", file=sys.stderr)
    return 1


def export_command(store: SqliteStore, session_ref: str, fmt: str, output: Path | None,
                   channel: int | None) -> int:
    session = find_session(store, session_ref)
    if session is None:
        return usage(f"no session {session_ref!r} in {store.path}")
    head = chain_head(store, session["id"])  # the chain of the node that held it
    try:
        with progress_for(store, session, f"exporting {session['id']}") as progress:
            if output is None and sys.stdout.isatty():
                progress.enabled = False  # the export itself is scrolling past
            if output is None:
                export(store, session, fmt, sys.stdout.buffer, head, channel=channel,
                       progress=progress)
                sys.stdout.buffer.flush()
                return 0
            done = _to_file(store, session, fmt, output, head, channel, progress)
    except StoreMismatch as exc:
        print(f"gatewatch: export FAILED: {exc}", file=sys.stderr)
        return 1
    except ExportError as exc:
        return usage(str(exc))
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise  # `gatewatch export ... | head`: main() treats it as the reader's choice
        return usage(f"cannot write {output or 'the export'}: {exc.strerror or exc}")
    noun = {"asciicast": "event", "jsonl": "record", "csv": "statement"}[done.format]
    noun += "" if done.items == 1 else "s"
    print(f"wrote {output}: {done.format} export of session {done.session_id} as of audit "
          f"record {done.head.seq} ({done.items} {noun})")
    return 0


def _to_file(store: SqliteStore, session: dict[str, Any], fmt: str, output: Path, head: ChainHead,
             channel: int | None, progress: Progress) -> Exported:
    """Write beside ``output`` and rename into place: a failed export leaves no half file
    that could pass for evidence."""
    fd, partial = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.",
                                   suffix=".partial")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            done = export(store, session, fmt, f, head, channel=channel, progress=progress)
        os.replace(partial, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return done


def verify_export(store: SqliteStore, session_ref: str | None, path: Path) -> int:
    session_id = None
    if session_ref is not None:
        session = find_session(store, session_ref)
        if session is None:
            return usage(f"no session {session_ref!r} in {store.path}")
        session_id = session["id"]
    try:
        size = path.stat().st_size
        with Progress(f"verifying {path.name}", size) as progress:
            result = check_export(store, path, session_id, progress=progress)
    except OSError as exc:
        return usage(f"cannot read {path}: {exc.strerror or exc}")
    if not result.ok:
        return failed(result.message)
    print(result.message)
    return 0
