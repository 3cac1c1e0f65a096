"""A small synchronous client of the control socket for the CLI (the TUI has its own)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class ControlRefused(Exception):
    """The engine answered with an error; the message is the engine's reason."""


class EngineUnreachable(Exception):
    """Nothing answers on the control socket."""


class ControlClient:
    def __init__(self, path: Path, token: str, timeout: float = 30) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as exc:
            self._sock.close()
            raise EngineUnreachable(
                f"no engine answers on {path} ({exc.strerror or exc}): is it running?"
            ) from exc
        self._file = self._sock.makefile("rwb")
        self._next = 0
        self.hello = self.call("hello", token=token)

    def call(self, op: str, **args: Any) -> Any:
        self._next += 1
        request = {"id": self._next, "op": op, **args}
        self._file.write(json.dumps(request).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise EngineUnreachable(f"the engine closed the control connection on {self.path}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise ControlRefused(str(answer.get("error")))
        return answer.get("result")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
