"""The control socket: JSON lines that the TUI and the CLI will speak."""

from __future__ import annotations

import json
import socket
import stat
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway, Target, start_gateway

pytestmark = pytest.mark.integration


def ask(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"".join(line + b"\n" for line in lines))
        data = b""
        while data.count(b"\n") < len(lines):
            chunk = s.recv(65536)
            assert chunk, "the engine closed the control connection"
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_hello_and_live_sessions(gateway: Gateway) -> None:
    path = gateway.work / "control.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with psycopg.connect(gateway.dsn(application_name="watched")) as conn:
        conn.execute("select 1")
        hello, sessions = ask(path, b'{"id": 1, "op": "hello"}', b'{"id": 2, "op": "sessions"}')
        assert hello["ok"] and hello["id"] == 1
        assert hello["result"]["listeners"]["shop"] == f"127.0.0.1:{gateway.port()}"
        live = [s for s in sessions["result"] if s["application_name"] == "watched"]
        assert len(live) == 1
        assert live[0]["identity"] == "alice" and live[0]["statements"] == 2  # BEGIN, select
        assert live[0]["transaction_status"] == "T"  # psycopg opened a transaction
    deadline = time.monotonic() + 10
    while True:  # the engine sees the client's Terminate a moment after close() returns
        (after,) = ask(path, b'{"op": "sessions"}')
        if not [s for s in after["result"] if s["application_name"] == "watched"]:
            break
        assert time.monotonic() < deadline, "the ended session stayed in the live list"
        time.sleep(0.05)


def test_bad_requests_get_an_error_and_the_connection_goes_on(gateway: Gateway) -> None:
    path = gateway.work / "control.sock"
    bad, unknown, good = ask(path, b"not json", b'{"id": 7, "op": "frobnicate"}',
                             b'{"id": 8, "op": "hello"}')
    assert not bad["ok"] and "Expecting value" in bad["error"]
    assert not unknown["ok"] and unknown["id"] == 7 and "unknown op 'frobnicate'" in unknown[
        "error"]
    assert good["ok"] and good["id"] == 8


def test_a_second_engine_on_the_same_socket_refuses_to_start(
    gateway: Gateway, pg_target: Target, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("second")
    with pytest.raises(OSError, match="is in use: is an engine running"):
        start_gateway(pg_target, work, control=gateway.work / "control.sock")
    assert ask(gateway.work / "control.sock", b'{"op": "hello"}')[0]["ok"]
