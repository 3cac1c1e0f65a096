"""Where the TUI's data comes from: the engine's control API (live) and its store (history).

The app reads through a ``Source`` (in workers) and hands what it read to the screens;
``LiveSource`` is the real one: requests and typed events over the control socket, history from
the store opened read-only, in a thread. Snapshot tests give the app a ``FixedSource`` with
deterministic data (fixed clock, fixed rows), so the look is pinned without an engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from engine.events import Event
from store import SqliteStore, open_store, reads
from store.reads import Statistics
from tui.client import ControlConnection, EngineGone

# A recorded piece of an SSH session: (seq, seconds from start, channel, stream, bytes).
Chunk = tuple[int, float, int, str, bytes]

T = TypeVar("T")


class Source(Protocol):
    identity: str

    async def connect(self) -> None: ...
    async def sessions(self) -> dict[str, Any]: ...
    async def approvals(self) -> dict[str, Any]: ...
    async def decide(self, request_id: str, approve: bool, reason: str | None) -> Any: ...
    async def kill(self, session_id: str, reason: str | None, lock_out: str | None = None,
                   scope: str = "identity") -> Any:
        """End a live session; ``lock_out`` (``30m``): keep its identity out that long, of
        every connection (``scope`` identity) or of its own (connection)."""
        ...
    async def statements(self, session_id: str) -> list[dict[str, Any]]: ...
    async def output(self, session_id: str, after: int) -> list[Chunk]: ...
    async def stats(self) -> Statistics: ...
    async def next_events(self) -> list[Event]: ...
    def store_path(self) -> Path | str | None:
        """The store to replay recorded sessions from: a SQLite file, or a PostgreSQL store's
        URL (libpq finds its password as for the other reads); None: replay is not
        available."""
        ...


class LiveSource:
    def __init__(self, control: Path, token: str) -> None:
        self._control = control
        self._token = token
        self._requests = ControlConnection(control, token)
        self._events: ControlConnection | None = None
        self._stream: AsyncIterator[Event] | None = None
        self._store: Path | str | None = None  # a PostgreSQL store: its URL
        self.identity = ""

    async def connect(self) -> None:
        await self._requests.close()
        self._requests = ControlConnection(self._control, self._token)
        hello = await self._requests.connect()
        self.identity = str(hello.get("identity"))
        url = str(hello["store"]).startswith(("postgresql://", "postgres://"))
        self._store = str(hello["store"]) if url else Path(hello["store"])
        if self._events is not None:
            await self._events.close()
        self._events = ControlConnection(self._control, self._token)
        await self._events.connect()
        self._stream = self._events.events().__aiter__()

    async def sessions(self) -> dict[str, Any]:
        return _with_node(dict(await self._requests.call("sessions", limit=1000)), "live",
                          "client_addr")

    async def approvals(self) -> dict[str, Any]:
        return _with_node(dict(await self._requests.call("approvals", limit=200)), "pending",
                          "connection")

    async def decide(self, request_id: str, approve: bool, reason: str | None) -> Any:
        return await self._requests.call("approve" if approve else "deny", request=request_id,
                                         reason=reason)

    async def kill(self, session_id: str, reason: str | None, lock_out: str | None = None,
                   scope: str = "identity") -> Any:
        extra = {"lock_out": lock_out, "scope": scope} if lock_out else {}
        return await self._requests.call("kill", session=session_id, reason=reason, **extra)

    async def statements(self, session_id: str) -> list[dict[str, Any]]:
        # with each one's outcome: "withdrawn" where the store's verdict says "denied"
        return await asyncio.to_thread(self._read,
                                       lambda s: reads.session_statements(s, session_id))

    async def output(self, session_id: str, after: int) -> list[Chunk]:
        return await asyncio.to_thread(self._read, lambda s: s.output(session_id, after))

    async def stats(self) -> Statistics:
        return await asyncio.to_thread(self._read, reads.statistics)

    def store_path(self) -> Path | str | None:
        return self._store

    def _read(self, fn: Callable[[SqliteStore], T]) -> T:
        """``fn`` on the store, opened read-only for it (in a thread: SQLite blocks)."""
        if self._store is None:
            raise EngineGone("not connected")
        store = open_store(self._store, readonly=True)
        try:
            return fn(store)
        finally:
            store.close()

    async def next_events(self) -> list[Event]:
        if self._stream is None:
            raise EngineGone("not connected")
        return [await self._stream.__anext__()]


def _with_node(answer: dict[str, Any], key: str, column: str) -> dict[str, Any]:
    """Live rows say which node (worker) holds them, after a column the screens show and only
    show (a session's client, a request's connection): ``127.0.0.1:5000 @gw1-w0``."""
    answer[key] = [{**row, column: f"{row.get(column) or '-'} @{row['node']}"}
                   if row.get("node") else row for row in answer.get(key, [])]
    return answer


class FixedSource:
    """Deterministic data for snapshot tests and for trying the UI without an engine."""

    def __init__(self, sessions: dict[str, Any], approvals: dict[str, Any],
                 statements: dict[str, list[dict[str, Any]]], stats: Statistics,
                 output: dict[str, list[Chunk]] | None = None,
                 store: Path | str | None = None) -> None:
        self._sessions, self._approvals = sessions, approvals
        self._store = store  # a real store holding recorded sessions, for replay
        self._output = output or {}
        self._statements, self._stats = statements, stats
        self.identity = "oncall"
        self.decisions: list[tuple[str, bool, str | None]] = []
        self.kills: list[tuple[str, str | None, str | None, str]] = []
        self.events: list[Event] = []  # handed out once, in one batch (tests)

    async def connect(self) -> None:
        return None

    async def sessions(self) -> dict[str, Any]:
        return self._sessions

    async def approvals(self) -> dict[str, Any]:
        return self._approvals

    async def decide(self, request_id: str, approve: bool, reason: str | None) -> Any:
        self.decisions.append((request_id, approve, reason))
        self._approvals = {**self._approvals, "pending": [
            r for r in self._approvals["pending"] if r["id"] != request_id]}
        return {"id": request_id, "status": "approved" if approve else "denied"}

    async def kill(self, session_id: str, reason: str | None, lock_out: str | None = None,
                   scope: str = "identity") -> Any:
        self.kills.append((session_id, reason, lock_out, scope))
        return {"session": session_id, "killed_by": self.identity, "reason": reason,
                "lockout": None}

    async def statements(self, session_id: str) -> list[dict[str, Any]]:
        return self._statements.get(session_id, [])

    async def stats(self) -> Statistics:
        return self._stats

    async def output(self, session_id: str, after: int) -> list[Chunk]:
        return [c for c in self._output.get(session_id, []) if c[0] > after]

    async def next_events(self) -> list[Event]:
        if self.events:
            batch, self.events = self.events, []
            return batch
        await asyncio.Event().wait()  # never again: fixed data does not change
        return []

    def store_path(self) -> Path | str | None:
        return self._store
