"""Recorded sessions built through the store's own write path (ops + ``apply``), and a
comparable picture of a screen."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyte

from recordings.emulator import Emulator
from store import Op, SqliteStore, open_store
from store import ops as O

T0 = 1_790_000_000.0


def new_store(tmp_path: Path) -> SqliteStore:
    return open_store(tmp_path / "gatewatch.db")


class Recording:
    """One session written as the engine writes it: open, output chunks, commands, close."""

    def __init__(self, store: SqliteStore, sid: str = "s1", protocol: str = "ssh") -> None:
        self.store, self.sid = store, sid
        self.seq = 0
        self.statement = 0
        store.apply([Op(O.SESSION_OPEN, sid, 0, {
            "protocol": protocol, "connection": "box", "identity": "alice",
            "identity_kind": "person", "client_addr": "127.0.0.1:50000",
            "application_name": None, "database": None, "started_at": O.utc(T0),
            "status": "open", "target": "box" if protocol == "ssh" else None})])

    def out(self, t: float, data: bytes, channel: int = 0, stream: str = "o") -> None:
        self.seq += 1
        self.store.apply([O.output_op(self.sid, self.seq, t, channel, stream, data)])

    def size(self, t: float, cols: int, rows: int, channel: int = 0) -> None:
        self.out(t, f"{cols}x{rows}".encode(), channel, "r")

    def command(self, t: float, text: str, verdict: str = "allow", *, rule: str | None = None,
                status: str = "ok", masked: dict[str, int] | None = None,
                duration: float = 0.5, **end: Any) -> int:
        self.statement += 1
        n = self.statement
        self.store.apply([
            Op(O.STATEMENT_START, self.sid, n, {
                "protocol": "ssh", "text": text, "params": None, "started_at": O.utc(T0 + t),
                "status": "running", "verdict": verdict, "rule": rule, "approval_id": None}),
            Op(O.STATEMENT_END, self.sid, n, {
                "finished_at": O.utc(T0 + t + duration), "duration_ms": duration * 1000,
                "status": status, "command": None, "rows": None, "sqlstate": None,
                "error": None, "exit_status": None,
                "masked": None if not masked else _json(masked), **end})])
        return n

    def approval(self, rid: str, t: float, decided: float, status: str, text: str,
                 by: str = "bob", reason: str | None = None) -> None:
        self.store.apply([
            Op(O.APPROVAL_REQUEST, rid, 0, {
                "session_id": self.sid, "requester": "alice", "connection": "box",
                "statement": text, "statement_hash": "h", "rule": "r", "reason": "why",
                "created_at": O.utc(T0 + t), "expires_at": O.utc(T0 + t + 300),
                "status": "pending"}),
            Op(O.APPROVAL_UPDATE, rid, 0, {
                "status": status, "approvals": by if status == "approved" else None,
                "decided_at": O.utc(T0 + decided), "decided_by": by,
                "decision_reason": reason})])

    def close(self, t: float, reason: str = "client quit") -> None:
        self.store.apply([Op(O.SESSION_CLOSE, self.sid, 0, {
            "ended_at": O.utc(T0 + t), "status": "closed", "end_reason": reason,
            "masked": None})])
        self.store.checkpoint()


def _json(value: dict[str, int]) -> str:
    import json
    return json.dumps(value, sort_keys=True)


def screen_state(screen: pyte.Screen) -> tuple[Any, ...]:
    """What a renderer can see of a screen: every cell with its attributes, the cursor, the
    size, the modes and margins, the title."""
    cells = tuple(tuple(screen.buffer[y][x] for x in range(screen.columns))
                  for y in range(screen.lines))
    c = screen.cursor
    return (screen.columns, screen.lines, cells, (c.x, c.y, c.attrs, c.hidden),
            frozenset(screen.mode), screen.margins, screen.title)


def straight_replay(chunks: Iterable[tuple[float, int, str, bytes]], t: float,
                    channels: Iterable[int] = (0,)) -> pyte.Screen:
    """The screen after feeding every chunk with a time <= t to a fresh emulator, whole, in
    order: what a seek must equal. Chunks: (t, channel, stream, data)."""
    em = Emulator(80, 24)
    shown = set(channels)
    for at, channel, stream, data in chunks:
        if at > t:
            break
        if channel not in shown:
            continue
        if stream == "r":
            cols, _, rows = data.partition(b"x")
            em.resize(int(cols), int(rows))
        elif stream in ("o", "e"):
            em.feed(data)
    return em.screen
