"""Webhook notifications of new approval requests (Slack-compatible JSON).

Deliveries run in their own background task with a bounded queue: a slow or dead webhook never
delays a session (when the queue is full the oldest notification is dropped and logged). Each
delivery is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from engine import shown
from engine.events import ApprovalEvent, ApprovalRequested
from engine.tasks import spawn

log = logging.getLogger(__name__)

QUEUE_LIMIT = 100


class WebhookError(Exception):
    pass


class Webhook:
    def __init__(self, url: str, *, attempts: int = 4, first_delay: float = 0.5,
                 timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self._parts = parts
        self._attempts = attempts
        self._first_delay = first_delay
        self._timeout = timeout
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0

    def approval_event(self, event: ApprovalEvent) -> None:
        """Broker listener: announce new requests."""
        if not isinstance(event, ApprovalRequested):
            return
        request = event.request
        # Its lines kept (never re-flowed: a line after a ``--`` comment is not the comment's),
        # what a display acts on escaped; cut, the rest is counted.
        statement = shown.escaped(request["statement"])
        if len(statement) > 300:
            statement = f"{statement[:300]}… ({len(statement) - 300} more characters)"
        self.send({
            "text": (f"Gatewatch: {request['requester']} asks to run a statement on "
                     f"{request['connection']} (rule {request['rule']}). Approve with "
                     f"`gatewatch approve {request['id']}`.\n```{statement}```"),
            "gatewatch": {"event": event.name, "request": request},
        })

    def send(self, payload: dict[str, Any]) -> None:
        if len(self._queue) >= QUEUE_LIMIT:
            self._queue.popleft()
            log.warning("webhook queue full: dropped the oldest notification")
        self._queue.append(payload)
        self._wake.set()
        if self._task is None:
            self._task = spawn(self._run(), name="webhook")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                payload = self._queue.popleft()
                await self._deliver(payload)

    async def _deliver(self, payload: dict[str, Any]) -> None:
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            try:
                await self._post(json.dumps(payload).encode())
                self.delivered += 1
                return
            except (OSError, TimeoutError, WebhookError) as exc:
                log.warning("webhook %s: attempt %d failed: %s", self._parts.hostname, attempt,
                            exc)
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        self.failed += 1
        log.error("webhook %s: notification dropped after %d attempts", self._parts.hostname,
                  self._attempts)

    async def _post(self, body: bytes) -> None:
        parts = self._parts
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        async with asyncio.timeout(self._timeout):
            reader, writer = await asyncio.open_connection(
                parts.hostname, port, ssl=ssl.create_default_context() if https else None)
            try:
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                    "Content-Type: application/json\r\nUser-Agent: gatewatch\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
        fields = status_line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            raise WebhookError("no HTTP status line in the answer")
        status = int(fields[1])
        if not 200 <= status < 300:
            raise WebhookError(f"HTTP {status}")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
