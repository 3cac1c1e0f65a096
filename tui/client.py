"""The TUI's side of the control API: requests, and the event stream as typed events.

The control socket carries JSON lines; ``events()`` is where they become ``engine.events`` types
(``decode``), so that nothing above this module sees an event as a dict or its kind as a string.
Reconnection with backoff is the App's (``GatewatchApp.listen``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from engine.events import Event, decode


class EngineGone(Exception):
    """The engine is not reachable (not started, restarted, or stopped)."""


class Refused(Exception):
    """The engine answered with an error (the message is its reason)."""


def refused_message(reason: str) -> str:
    """What to tell an operator whose hello the engine refused (a wrong token, one that is not
    an approver's, or a demo's token from an earlier run)."""
    return (f"the engine refused the operator token ({reason}): give an approver's token "
            "with --token or GATEWATCH_TOKEN (a demo's tokens change each time it starts)")


class ControlConnection:
    """One connection to the control socket, authenticated with the operator's token."""

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self._token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._next = 0
        self.hello: dict[str, Any] = {}

    async def connect(self) -> dict[str, Any]:
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(self.path), limit=16 * 1024 * 1024)
        except OSError as exc:
            raise EngineGone(f"no engine on {self.path}: {exc.strerror or exc}") from exc
        self.hello = await self.call("hello", token=self._token)
        return self.hello

    async def call(self, op: str, **args: Any) -> Any:
        if self._writer is None or self._reader is None:
            raise EngineGone("not connected")
        async with self._lock:
            self._next += 1
            request_id = self._next
            try:
                self._writer.write(json.dumps({"id": request_id, "op": op, **args}).encode()
                                   + b"\n")
                await self._writer.drain()
                while True:
                    # A call cancelled while it waited (a worker replaced by a newer one)
                    # leaves its answer behind: skip answers to other requests.
                    line = await self._reader.readline()
                    if not line:
                        raise EngineGone("the engine closed the connection")
                    answer = json.loads(line)
                    if answer.get("id") == request_id:
                        break
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise EngineGone(f"lost the engine: {exc}") from exc
        if not answer.get("ok"):
            raise Refused(str(answer.get("error")))
        return answer.get("result")

    async def events(self) -> AsyncIterator[Event]:
        """Subscribe; yields events until the engine goes away (then raises EngineGone). A line
        that is no event this TUI knows comes as ``Unknown``."""
        await self.call("subscribe")
        assert self._reader is not None
        while True:
            try:
                line = await self._reader.readline()
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise EngineGone(f"lost the engine: {exc}") from exc
            if not line:
                raise EngineGone("the engine closed the event stream")
            body = json.loads(line)
            yield decode(body if isinstance(body, dict) else {})

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
