"""``engine.metrics`` for an engine of several workers: the supervisor serves ``/metrics``,
``/healthz`` and ``/readyz`` on the configured address, from what each worker serves on a
private loopback port.

``/metrics`` is every worker's exposition summed, series by series (the same name and labels
add up: sessions, statements, bytes, histogram buckets; a counter's ``_created`` time is the
earliest), so that a scrape counts the whole engine whichever worker a session reached.
``/readyz`` is ready when every worker is (the first reason otherwise); ``/healthz`` says the
supervisor answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_MAX_HEAD = 8192
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def _get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` from a worker's metrics port: (status, body)."""
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 502
    return status, body


def summed(expositions: list[bytes]) -> bytes:
    """Prometheus text expositions added up series by series, in first-seen order."""
    lines: dict[str, float | None] = {}  # a comment line (None) or a series and its value
    for text in expositions:
        for line in text.decode().splitlines():
            if not line or line.startswith("#"):
                lines.setdefault(line, None)
                continue
            series, _, value = line.rpartition(" ")
            number = float(value)
            seen = lines.get(series)
            if seen is None:
                lines[series] = number
            elif series.split("{", 1)[0].endswith("_created"):
                lines[series] = min(seen, number)
            else:
                lines[series] = seen + number
    out = [key if value is None else f"{key} {value!r}" for key, value in lines.items() if key]
    return ("\n".join(out) + "\n").encode()


class MetricsFanout:
    def __init__(self, host: str, port: int, ports: Callable[[], list[int | None]]) -> None:
        self.host, self.port = host, port
        self._ports = ports
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  reuse_address=True, limit=_MAX_HEAD)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        log.info("metrics of every worker on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass  # the headers: nothing here needs them
            status, ctype, body = await self.answer(request)
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head if request.startswith(b"HEAD ") else head + body)
            await writer.drain()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def answer(self, request: bytes) -> tuple[str, str, bytes]:
        parts = request.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split("?", 1)[0]
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path not in ("/metrics", "/readyz"):
            return "404 Not Found", "text/plain", b"/metrics, /healthz or /readyz\n"
        ports = self._ports()
        try:
            answers = await asyncio.gather(*(_get(p, path) for p in ports if p is not None))
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            return "503 Service Unavailable", "text/plain", f"not ready: {exc}\n".encode()
        if path == "/metrics":
            return "200 OK", _CONTENT_TYPE, summed([body for _, body in answers])
        down = ports.count(None)
        if down:
            return ("503 Service Unavailable", "text/plain",
                    f"not ready: {down} worker(s) not running\n".encode())
        for status, body in answers:
            if status != 200:
                return "503 Service Unavailable", "text/plain", body
        return "200 OK", "text/plain", b"ready\n"
