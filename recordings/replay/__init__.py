"""The replay model: a recorded session as something to scrub through in time.

No user interface here (and no ``textual``): the TUI's replay screen, the CLI and tests drive
these objects and render what they return.

- ``TerminalTimeline`` (SSH): ``seek(t)`` returns the pyte screen as it was at t — rendered
  the way ``tui/widgets/terminal.py`` renders the live one, through cells, never by writing
  recorded bytes to the operator's terminal (ARCHITECTURE.md invariant 7). Behind it: the chunk
  index read without the bytes (``chunks.py``), keyframes taken as the output is indexed so a
  seek replays only from the nearest one (``keyframes.py``, snapshots from
  ``recordings.emulator``), output search (``search.py``).
- ``StatementTimeline`` (PostgreSQL): the statements at their times; ``seek(t)`` → the index
  of the statement current at t.
- Both: ``duration``, ``statements`` (the session's statements or commands, as
  ``Statement``), ``markers`` (commands, blocks, approvals, masking, kill/end;
  ``markers.py``) with ``next_marker``/``previous_marker`` for n/p, and ``session``
  (``source.SessionInfo``). ``IdleMap`` (``idle.py``) squeezes long silences for playing.

``open_timeline(store, session_id)`` picks the right one. All reads go through a store the
caller keeps open (``open_store(path, readonly=True)``) for as long as the replay is shown.
"""

from __future__ import annotations

from recordings.replay.idle import IdleMap
from recordings.replay.keyframes import Keyframe, Keyframes
from recordings.replay.markers import COMMAND_KINDS, KINDS, Kind, Marker, Markers
from recordings.replay.source import SessionInfo, SessionNotFound, session_info
from recordings.replay.statements import Statement, StatementTimeline
from recordings.replay.terminal import TerminalTimeline
from store import SqliteStore

Timeline = TerminalTimeline | StatementTimeline


def open_timeline(store: SqliteStore, session_id: str) -> Timeline:
    """The replay of a session, by id or unambiguous prefix: a terminal for SSH sessions, a
    statement list for PostgreSQL ones. ``SessionNotFound`` when there is no such session."""
    info = session_info(store, session_id)
    if info.protocol == "ssh":
        return TerminalTimeline(store, info.id)
    return StatementTimeline.open(store, info.id)


__all__ = [
    "COMMAND_KINDS",
    "KINDS",
    "IdleMap",
    "Keyframe",
    "Keyframes",
    "Kind",
    "Marker",
    "Markers",
    "SessionInfo",
    "SessionNotFound",
    "Statement",
    "StatementTimeline",
    "TerminalTimeline",
    "Timeline",
    "open_timeline",
]
