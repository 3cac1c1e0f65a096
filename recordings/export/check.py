"""Check an exported file against the store: is it what exporting its session gives?

An export is a pure function of the store's records up to the chain head the file carries
(``events``), so checking is recomputing: read the head and options from the file's first line,
make sure that head is a record of the store's chain and that the chain is intact, then export
the session again as of that head and compare, byte for byte, as the export streams — a
session that went on after the export still checks, and nothing is held in memory whole.

The first difference is reported by line: an edited event, a cut-off file, lines appended,
another session's file, a head the store never had. Formats are told apart by the first line:
asciicast's header (``"version": 2`` with a ``"gatewatch"`` key), jsonl's ``{"gatewatch": ...}``
line, CSV's ``# gatewatch {...}`` comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

from recordings.export.csvfile import COMMENT
from recordings.export.events import ChainHead, ExportError, node_of
from recordings.export.formats import export
from recordings.export.progress import Progress
from store import SqliteStore, verify

_HEADER_MAX = 1 << 20


class CheckResult(NamedTuple):
    ok: bool
    message: str


class FileMetadata(NamedTuple):
    format: str
    session_id: str
    head: ChainHead
    channel: int | None


class NotAnExport(Exception):
    """The file's first line is not an export's: the check fails (exit status 1)."""


def read_metadata(first: bytes) -> FileMetadata:
    """What the file says it is, from its first line."""
    if not first.endswith(b"\n"):
        raise NotAnExport("it has no complete first line")
    try:
        if first.startswith(COMMENT):
            fmt, meta = "csv", orjson.loads(first[len(COMMENT):])
        else:
            line = orjson.loads(first)
            if not isinstance(line, dict) or not isinstance(line.get("gatewatch"), dict):
                raise NotAnExport("its first line has no \"gatewatch\" object")
            fmt = "asciicast" if line.get("version") == 2 else "jsonl"
            meta = line["gatewatch"]
    except orjson.JSONDecodeError as exc:
        raise NotAnExport(f"its first line is not JSON ({exc})") from exc
    return _fields(fmt, meta)


def _fields(fmt: str, meta: Any) -> FileMetadata:
    try:
        if meta["format"] != fmt or meta["version"] != 1:
            raise NotAnExport(f"its header says format {meta['format']!r} version "
                              f"{meta['version']!r}, but it reads as {fmt} version 1")
        session_id, seq, digest = meta["session"]["id"], meta["chain"]["seq"], \
            meta["chain"]["hash"]
        channel = meta.get("channel")
    except (KeyError, TypeError) as exc:
        raise NotAnExport(f"its header lacks {exc}") from exc
    if (not isinstance(session_id, str) or not isinstance(seq, int)
            or not isinstance(digest, str) or not (channel is None or isinstance(channel, int))):
        raise NotAnExport("its header has a session, chain head or channel of the wrong type")
    return FileMetadata(fmt, session_id, ChainHead(seq, digest), channel)


def check_export(store: SqliteStore, path: Path, session_id: str | None = None, *,
                 progress: Progress | None = None) -> CheckResult:
    """``session_id``: the session the file must be of (None: the one it names).

    Raises OSError when the file cannot be read (a usage problem, not a failed check)."""
    with path.open("rb") as f:
        try:
            meta = read_metadata(f.readline(_HEADER_MAX))
        except NotAnExport as exc:
            return CheckResult(False, f"{path} is not a Gatewatch export: {exc}")
        if session_id is not None and meta.session_id != session_id:
            return CheckResult(False, f"{path} is an export of session {meta.session_id}, "
                                      f"not of session {session_id}")
        session = store.find_session(meta.session_id)
        if session is None or session["id"] != meta.session_id:
            return CheckResult(False, f"{path} is an export of session {meta.session_id}, "
                                      "which is not in this store")
        problem = _head_problem(store, meta)
        if problem:
            return CheckResult(False, f"{path}: {problem}")
        f.seek(0)
        comparer = _Comparer(f, progress)
        try:
            export(store, session, meta.format, comparer, meta.head, channel=meta.channel)
            comparer.finish()
        except _Differs as exc:
            return CheckResult(False, f"{path}: {exc}")
        except ExportError as exc:
            return CheckResult(False, f"{path} does not match the store: {exc}")
    return CheckResult(True, f"ok: {path} is the {meta.format} export of session "
                             f"{meta.session_id} as of audit record {meta.head.seq}; the store's "
                             "audit chain is intact and the file matches it")


def _head_problem(store: SqliteStore, meta: FileMetadata) -> str | None:
    result = verify(store, meta.session_id)
    if not result.ok:
        return f"the store itself does not verify: {result.problems[0]}"
    stored = store.audit_hash(meta.head.seq, node=node_of(store, meta.session_id))
    if stored is None:
        return (f"its chain head (audit record {meta.head.seq}) is not a record of this "
                "store's audit chain: the file comes from another store, or was edited")
    if stored != meta.head.hash:
        return (f"its chain head does not match audit record {meta.head.seq} of this store: "
                "the file comes from another store, or was edited")
    return None


class _Differs(Exception):
    pass


class _Comparer:
    """A sink that compares what the export writes with the file, and stops at the first
    difference (raising ``_Differs`` with the line it is in)."""

    def __init__(self, f: BinaryIO, progress: Progress | None) -> None:
        self._f = f
        self._progress = progress
        self._line = 1

    def write(self, data: bytes) -> None:
        got = self._f.read(len(data))
        if got != data:
            same = _common_prefix(got, data)
            line = self._line + data.count(b"\n", 0, same)
            if same == len(got):
                raise _Differs(f"the file ends in line {line}, where the store's export goes "
                               "on (truncated)")
            raise _Differs(f"line {line} differs from the store's records (edited)")
        self._line += data.count(b"\n")
        if self._progress is not None:
            self._progress.advance(len(data))

    def finish(self) -> None:
        if self._f.read(1):
            raise _Differs(f"the file goes on after line {self._line - 1}, where the store's "
                           "export ends (appended to)")


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


__all__ = ["CheckResult", "FileMetadata", "NotAnExport", "check_export",
           "read_metadata"]
