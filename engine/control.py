"""The control API: JSON lines over a Unix socket, for the operator's TUI and CLI.

One request per line, ``{"id": 1, "op": "sessions"}``; one answer per line,
``{"id": 1, "ok": true, "result": ...}`` or ``{"id": 1, "ok": false, "error": "..."}``.
Operations today: ``hello`` (engine and listeners) and ``sessions`` (live sessions). Approvals,
kill and the event stream arrive with the guardrails issue. The socket is created mode 0600:
only the engine's own user can attach until operator authentication exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024
Handler = Callable[[dict[str, Any]], Any]


class ControlError(Exception):
    """A request the engine cannot answer; the message goes back to the caller."""


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self._handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _in_use(self.path):
                raise OSError(f"control socket {self.path} is in use: is an engine running?")
            self.path.unlink()
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        self.path.chmod(0o600)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(self._answer(line) + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.info("control client dropped: %s", exc)
        finally:
            writer.close()

    def _answer(self, line: bytes) -> bytes:
        request_id = None
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("a request is a JSON object")
            request_id = request.get("id")
            handler = self._handlers.get(str(request.get("op")))
            if handler is None:
                raise ControlError(f"unknown op {request.get('op')!r}; "
                                   f"known: {', '.join(sorted(self._handlers))}")
            body = {"id": request_id, "ok": True, "result": handler(request)}
        except (ControlError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            body = {"id": request_id, "ok": False, "error": str(exc)}
        return json.dumps(body, default=str).encode()

    async def stop(self) -> None:
        if self._server is None:
            return  # never started: the path may be another engine's socket
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _in_use(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


