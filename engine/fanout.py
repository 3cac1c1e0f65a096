"""The supervisor's control socket: one control API for all the workers of an engine.

The operator (the TUI, ``gatewatch approvals``…) talks to ``engine.control_socket`` as to a lone
engine (protocol of ``engine/control.py``). For each operator connection the supervisor opens one
connection to each worker's private control socket and says the operator's ``hello`` there, so
each worker authenticates the operator itself (the supervisor holds no identities and decides
nothing). Then:

- ``sessions`` and ``approvals``: every worker's live sessions and pending requests, each marked
  with its ``node``; the store's recent rows come from one worker (they share the store);
- ``approve``, ``deny`` and ``kill``: the id is resolved among every worker's pending requests
  (live sessions), so a prefix that two workers' ids share is ambiguous as it would be in one
  engine, and the request goes to the worker that holds the item;
- a lock-out that ``kill`` records, or ``unlock`` lifts, in one worker is put in force (lifted)
  in the others (``lockout.adopt``, ``lockout.forget``);
- ``reload``: every worker reads the file;
- ``subscribe``: the events of every worker, merged as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from engine.control import MAX_REQUEST, ControlError, resolve_id

log = logging.getLogger(__name__)


class WorkerGone(ControlError):
    """A worker's private socket did not answer (it is restarting)."""


class _Upstream:
    """One operator connection's connection to one worker."""

    def __init__(self, node: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.node, self.reader, self.writer = node, reader, writer
        self._next = 0

    @classmethod
    async def open(cls, node: str, path: Path) -> _Upstream:
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_REQUEST)
        except OSError as exc:
            raise WorkerGone(f"worker {node} does not answer ({exc}); try again") from None
        return cls(node, reader, writer)

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """The worker's whole answer (``ok``, ``result`` or ``error``)."""
        self._next += 1
        try:
            self.writer.write(json.dumps({**request, "id": self._next}).encode() + b"\n")
            await self.writer.drain()
            line = await self.reader.readline()
        except (OSError, ValueError) as exc:
            raise WorkerGone(f"worker {self.node} went away ({exc}); try again") from None
        if not line:
            raise WorkerGone(f"worker {self.node} went away; try again")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def result(self, request: dict[str, Any]) -> Any:
        answer = await self.call(request)
        if not answer.get("ok"):
            raise ControlError(str(answer.get("error")))
        return answer.get("result")

    def close(self) -> None:
        self.writer.close()


class Fanout:
    def __init__(self, path: Path, workers: list[tuple[str, Path]]) -> None:
        self.path = path
        self.workers = workers  # (node, private control socket), by index
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        from engine.control import serve_private  # the same socket as a lone engine's

        self._server = await serve_private(self.path, self._client)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        ups: list[_Upstream] = []
        try:
            while line := await reader.readline():
                request_id: Any = None
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ControlError("a request is a JSON object")
                    request_id = request.get("id")
                    op = str(request.get("op"))
                    if op == "hello":
                        for up in ups:
                            up.close()
                        ups = []
                        result = await self._hello(ups, request)
                    elif not ups:
                        raise ControlError("say hello with an operator token first")
                    elif op == "subscribe":
                        for up in ups:
                            await up.result({"op": "subscribe"})
                        writer.write(json.dumps({"id": request_id, "ok": True,
                                                 "result": {"subscribed": True}}).encode()
                                     + b"\n")
                        await writer.drain()
                        await self._stream(ups, reader, writer)
                        return
                    else:
                        result = await self._op(ups, op, request)
                    body: dict[str, Any] = {"id": request_id, "ok": True, "result": result}
                except (ControlError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                    body = {"id": request_id, "ok": False, "error": str(exc)}
                writer.write(json.dumps(body, default=str).encode() + b"\n")
                await writer.drain()
                if not ups:  # a failed hello closes the connection, as a lone engine does
                    return
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.info("control client dropped: %s", exc)
        except asyncio.CancelledError:
            return  # stop(): see ControlServer._client
        finally:
            for up in ups:
                up.close()
            writer.close()
            if task is not None:
                self._clients.discard(task)

    async def _hello(self, ups: list[_Upstream], request: dict[str, Any]) -> Any:
        opened = [await _Upstream.open(node, path) for node, path in self.workers]
        answers = await asyncio.gather(*(up.call(request) for up in opened))
        refused = next((a for a in answers if not a.get("ok")), None)
        if refused is not None:
            for up in opened:
                up.close()
            raise ControlError(str(refused.get("error")))
        ups.extend(opened)
        result: dict[str, Any] = dict(answers[0]["result"])
        result["workers"] = [a["result"].get("node") for a in answers]
        result.pop("node", None)
        return result

    async def _op(self, ups: list[_Upstream], op: str, request: dict[str, Any]) -> Any:
        if op == "sessions":
            return _merged(ups, await _each(ups, request), "live")
        if op == "approvals":
            return _merged(ups, await _each(ups, request), "pending")
        if op in ("approve", "deny"):
            pending = await _each(ups, {"op": "approvals", "limit": 1})
            holder = _holder(ups, pending, "pending", "approval request",
                             request.get("request"))
            if holder is None:  # not pending anywhere: one worker says what became of it
                return await ups[0].result(request)
            up, rid = holder
            return await up.result({**request, "request": rid})
        if op == "kill":
            live = await _each(ups, {"op": "sessions", "limit": 1})
            holder = _holder(ups, live, "live", "session", request.get("session"))
            if holder is None:
                raise ControlError(f"no live session {request.get('session')!r} "
                                   "(see gatewatch sessions)")
            up, sid = holder
            answer = await up.result({**request, "session": sid})
            if isinstance(answer, dict) and answer.get("lockout"):
                await _others(ups, up, {"op": "lockout.adopt", "lockout": answer["lockout"]})
            return answer
        if op == "unlock":
            answer = await ups[0].result(request)
            await _others(ups, ups[0], {"op": "lockout.forget", "lockout": answer["id"]})
            return answer
        if op == "reload":
            answers = await _each(ups, request)
            return next((a for a in answers if a.get("status") != "applied"), answers[0])
        return await ups[0].result(request)

    async def _stream(self, ups: list[_Upstream], reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        """Every worker's events to the operator, until the operator or a worker goes."""
        lines: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)

        async def pump(up: _Upstream) -> None:
            while line := await up.reader.readline():
                await lines.put(line)

        pumps = [asyncio.ensure_future(pump(up)) for up in ups]
        closed = asyncio.ensure_future(reader.read())
        try:
            while True:
                getter = asyncio.ensure_future(lines.get())
                done, _ = await asyncio.wait({getter, closed, *pumps},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return  # the operator left, or a worker did (the TUI reconnects)
                writer.write(getter.result())
                while not lines.empty():
                    writer.write(lines.get_nowait())
                await writer.drain()
        finally:
            closed.cancel()
            for p in pumps:
                p.cancel()


async def _each(ups: list[_Upstream], request: dict[str, Any]) -> list[Any]:
    """Every worker's result, in the workers' order."""
    return list(await asyncio.gather(*(up.result(request) for up in ups)))


async def _others(ups: list[_Upstream], but: _Upstream, request: dict[str, Any]) -> None:
    for up in ups:
        if up is not but:
            try:
                await up.result(request)
            except ControlError as exc:
                log.error("worker %s did not take %s: %s", up.node, request.get("op"), exc)


def _merged(ups: list[_Upstream], answers: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """One answer: the lists under ``key`` of every worker, each row once with its node, and
    the rest (the store's rows) from the first."""
    out = dict(answers[0])
    rows: dict[str, dict[str, Any]] = {}
    for up, answer in zip(ups, answers, strict=True):
        for row in answer.get(key, []):  # another engine's, from the store, comes from each
            rows.setdefault(row["id"], {**row, "node": row.get("node") or up.node})
    out[key] = list(rows.values())
    return out


def _holder(ups: list[_Upstream], answers: list[dict[str, Any]], key: str, what: str,
            wanted: object) -> tuple[_Upstream, str] | None:
    """The worker holding the item ``wanted`` names among every worker's ``key`` rows, and its
    whole id; None when none holds it."""
    owner = {row["id"]: up for up, a in zip(ups, answers, strict=True)
             for row in a.get(key, [])}
    try:
        found = resolve_id(what, wanted, owner)
    except KeyError:
        return None
    return owner[found], found
