"""The control API: JSON lines over a Unix socket, for the operator's TUI and the CLI.

Protocol version 1. One request per line, ``{"id": 1, "op": "approvals", ...}``; one answer
per line, ``{"id": 1, "ok": true, "result": ...}`` or ``{"id": 1, "ok": false, "error": "..."}``.
A connection first says ``hello`` with an operator's token (the same identities as users; the
socket's mode 0600 is not an identity); only approvers (``guardrails.approvers``) get an answer:
any other token, valid or not, gets one error and the connection closes, having learnt nothing
about the engine (ARCHITECTURE.md invariant 13).
Operations: ``hello``, ``sessions``, ``approvals``, ``approve``, ``deny``, ``kill`` (with
``lock_out``: a duration such as ``30m``, and ``scope``: ``identity`` or ``connection``),
``lockouts``, ``unlock`` and ``subscribe``, after which the connection carries
``{"event": ..., "data": ...}`` lines (with ``"dropped": N`` when a slow reader missed events)
until it closes. Ids are given whole or as a unique prefix of at least ``MIN_PREFIX``
characters (``resolve_id``), for every operation alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from engine.events import Dropped, EventHub
from engine.identity import Identity

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_REQUEST = 1024 * 1024


class ControlError(Exception):
    """A request the engine refuses or cannot answer; the message goes back to the caller."""


MIN_PREFIX = 4  # `kill c` once killed a session from one character (issue 16)


def resolve_id(what: str, wanted: object, ids: Iterable[str]) -> str:
    """The one id of ``ids`` that ``wanted`` names: the whole id, or a unique prefix of at least
    ``MIN_PREFIX`` characters. ``KeyError`` when none starts so (the caller knows where else to
    look); ``ControlError`` for a prefix that does but is too short or ambiguous."""
    text = str(wanted or "").strip()
    if not text:
        raise ControlError(f"which {what}? give its id")
    known = list(ids)
    if text in known:
        return text
    matches = sorted(i for i in known if i.startswith(text))
    if matches and len(text) < MIN_PREFIX:
        raise ControlError(f"{what} id {text!r} is too short: give at least {MIN_PREFIX} of its "
                           "characters")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
        raise ControlError(f"{what} id {text!r} is ambiguous ({shown}): give more characters")
    if not matches:
        raise KeyError(text)
    return matches[0]


class Peer:
    """One control connection's state."""

    def __init__(self) -> None:
        self.identity: Identity | None = None
        self.refused = False  # a hello that failed: the connection closes after the answer


Handler = Callable[[Peer, dict[str, Any]], Awaitable[Any]]


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler],
                 authenticate: Callable[[dict[str, Any]], Awaitable[Identity]],
                 may_operate: Callable[[Identity], bool], events: EventHub) -> None:
        self.path = path
        self._handlers = handlers
        self._authenticate = authenticate
        self._may_operate = may_operate
        self._events = events
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers_running: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await serve_private(self.path, self._client)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer()
        self._clients.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers_running.add(task)
        try:
            while line := await reader.readline():
                answer, subscribe = await self._answer(peer, line)
                writer.write(answer + b"\n")
                await writer.drain()
                if peer.refused:
                    return
                if subscribe:
                    await self._stream(writer, reader)
                    return
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.info("control client dropped: %s", exc)
        except asyncio.CancelledError:
            # stop() cancels the handlers it started and waits for them. Ending here instead of
            # re-raising is deliberate: on Python 3.11 the streams server's done-callback calls
            # task.exception() on a cancelled handler, which prints a CancelledError traceback
            # over the operator's terminal on every `q` (issue 16).
            return
        finally:
            self._clients.discard(writer)
            if task is not None:
                self._handlers_running.discard(task)
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        sub = self._events.subscribe()
        closed = asyncio.ensure_future(reader.read())  # returns when the client goes away
        waiter: asyncio.Future[Any] = asyncio.ensure_future(asyncio.sleep(0))
        try:
            while not closed.done():
                waiter = asyncio.ensure_future(sub.next_batch())
                await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    break
                batch, dropped = waiter.result()
                if dropped:
                    writer.write(json.dumps(Dropped(dropped).to_wire(time.time()))
                                 .encode() + b"\n")
                for event in batch:
                    writer.write(json.dumps(event, default=str).encode() + b"\n")
                await writer.drain()
        finally:
            self._events.unsubscribe(sub)
            closed.cancel()
            if not waiter.done():
                waiter.cancel()

    async def _answer(self, peer: Peer, line: bytes) -> tuple[bytes, bool]:
        request_id = None
        subscribe = False
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("a request is a JSON object")
            request_id = request.get("id")
            op = str(request.get("op"))
            if op == "hello":
                peer.identity, peer.refused = None, True  # unless this hello succeeds
                who = await self._authenticate(request)
                if not self._may_operate(who):
                    log.info("control: %s is not an operator; connection closed", who.name)
                    raise ControlError(f"{who.name} is not an operator")
                peer.identity, peer.refused = who, False
                result: Any = {"protocol": PROTOCOL_VERSION, "identity": who.name,
                               "operator": True}
                result.update(await self._handlers["hello"](peer, request))
            else:
                handler = self._handlers.get(op)
                if handler is None and op != "subscribe":
                    known = ", ".join(sorted([*self._handlers, "subscribe"]))
                    raise ControlError(f"unknown op {op!r}; known: {known}")
                if peer.identity is None:
                    raise ControlError("say hello with an operator token first")
                if not self._may_operate(peer.identity):
                    raise ControlError(f"{peer.identity.name} is not an operator")
                if handler is None:  # subscribe: this connection now carries events
                    subscribe, result = True, {"subscribed": True}
                else:
                    result = await handler(peer, request)
            body = {"id": request_id, "ok": True, "result": result}
        except (ControlError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            body = {"id": request_id, "ok": False, "error": str(exc)}
        return json.dumps(body, default=str).encode(), subscribe

    async def stop(self) -> None:
        if self._server is None:
            return  # never started: the path may be another engine's socket
        self._server.close()
        for writer in list(self._clients):  # attached TUIs see the engine go and reconnect
            writer.close()
        for task in list(self._handlers_running):
            task.cancel()
        if self._handlers_running:
            await asyncio.gather(*self._handlers_running, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def serve_private(path: Path, client: Callable[
        [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> asyncio.AbstractServer:
    """A control socket at ``path`` that only the engine's user can open (0600, created under
    umask 077 so it is never reachable by others, not even for a moment). A socket left by an
    engine that died is replaced; one that answers is an engine running: refused."""
    _make_room(path)
    old = os.umask(0o077)
    try:
        server = await asyncio.start_unix_server(client, path=str(path), limit=MAX_REQUEST)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return server


def _make_room(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if _in_use(path):
            raise OSError(f"control socket {path} is in use: is an engine running?")
        path.unlink()


def _in_use(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True
