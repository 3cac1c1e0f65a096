"""The control socket: JSON lines that the TUI and the CLI will speak."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gatewatch.cli.control_client import ControlRefused
from tests.conftest import Gateway, Target, start_gateway, stop_gateway

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


def hello(gateway: Gateway, who: str = "oncall") -> bytes:
    return json.dumps({"id": 1, "op": "hello", "token": gateway.tokens[who]}).encode()


def test_hello_and_live_sessions(gateway: Gateway) -> None:
    path = gateway.work / "control.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with psycopg.connect(gateway.dsn(application_name="watched")) as conn:
        conn.execute("select 1")
        greeting, sessions = ask(path, hello(gateway), b'{"id": 2, "op": "sessions"}')
        assert greeting["ok"] and greeting["id"] == 1
        assert greeting["result"]["identity"] == "oncall" and greeting["result"]["operator"]
        assert greeting["result"]["protocol"] == 1
        assert greeting["result"]["listeners"]["shop"] == f"127.0.0.1:{gateway.port()}"
        live = [s for s in sessions["result"]["live"] if s["application_name"] == "watched"]
        assert len(live) == 1
        assert live[0]["identity"] == "alice" and live[0]["statements"] == 2  # BEGIN, select
        assert live[0]["transaction_status"] == "T"  # psycopg opened a transaction
    deadline = time.monotonic() + 10
    while True:  # the engine sees the client's Terminate a moment after close() returns
        _, after = ask(path, hello(gateway), b'{"op": "sessions"}')
        if not [s for s in after["result"]["live"] if s["application_name"] == "watched"]:
            break
        assert time.monotonic() < deadline, "the ended session stayed in the live list"
        time.sleep(0.05)


def test_bad_requests_get_an_error_and_the_connection_goes_on(gateway: Gateway) -> None:
    path = gateway.work / "control.sock"
    early, bad, unknown, good = ask(path, b'{"id": 6, "op": "sessions"}', b"not json",
                                    b'{"id": 7, "op": "frobnicate"}', hello(gateway))
    assert not early["ok"] and early["error"] == "say hello with an operator token first"
    assert not bad["ok"] and "Expecting value" in bad["error"]
    assert not unknown["ok"] and unknown["id"] == 7 and "unknown op 'frobnicate'" in unknown[
        "error"]
    assert good["ok"] and good["id"] == 1


def test_only_operators_with_a_valid_token_get_in(gateway: Gateway) -> None:
    path = gateway.work / "control.sock"
    for token in (b'"nope"', json.dumps(gateway.tokens["alice"]).encode()):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(path))
            s.sendall(b'{"op": "hello", "token": ' + token + b'}\n{"op": "sessions"}\n')
            lines = s.makefile("rb").read().splitlines()  # the engine closes the connection
        [answer] = [json.loads(line) for line in lines]  # one error, nothing else
        assert not answer["ok"] and "result" not in answer
        assert answer["error"] in ("authentication failed", "alice is not an operator")
        assert str(gateway.work) not in answer["error"]


def test_a_second_engine_on_the_same_socket_refuses_to_start(
    gateway: Gateway, pg_target: Target, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("second")
    with pytest.raises(OSError, match="is in use: is an engine running"):
        start_gateway(pg_target, work, control=gateway.work / "control.sock")
    assert ask(gateway.work / "control.sock", hello(gateway))[0]["ok"]


def test_subscribe_streams_session_and_statement_events(gateway: Gateway) -> None:
    path = gateway.work / "control.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(hello(gateway) + b"\n" + b'{"id": 2, "op": "subscribe"}\n')
        reader = s.makefile("rb")
        assert json.loads(reader.readline())["ok"]
        assert json.loads(reader.readline())["result"] == {"subscribed": True}
        with psycopg.connect(gateway.dsn(application_name="streamed"), autocommit=True) as conn:
            conn.execute("select 42")
        seen: list[dict[str, Any]] = []
        while not any(e["event"] == "session.closed" for e in seen):
            seen.append(json.loads(reader.readline()))
    kinds = [e["event"] for e in seen]
    assert kinds == ["session.opened", "statement.started", "statement.finished",
                     "session.closed"]
    assert seen[0]["data"]["application_name"] == "streamed"
    assert seen[1]["data"]["text"] == "select 42" and seen[1]["data"]["verdict"] == "allow"
    assert seen[2]["data"]["status"] == "ok" and seen[2]["data"]["rows"] == 1


def test_sessions_page_back_with_before(gateway: Gateway) -> None:
    for n in range(3):
        with psycopg.connect(gateway.dsn(application_name=f"page{n}")) as conn:
            conn.execute("select 1")
            time.sleep(0.01)
    gateway.wait_for(lambda s: len([r for r in s.sessions()
                                    if (r["application_name"] or "").startswith("page")]) == 3)
    path = gateway.work / "control.sock"
    _, first = ask(path, hello(gateway), b'{"op": "sessions", "limit": 2}')
    names = [r["application_name"] for r in first["result"]["recent"]]
    assert names == ["page2", "page1"]
    before = json.dumps(first["result"]["recent"][-1]["started_at"])
    _, second = ask(path, hello(gateway),
                    f'{{"op": "sessions", "limit": 2, "before": {before}}}'.encode())
    assert [r["application_name"] for r in second["result"]["recent"]] == ["page0"]
    _, bad = ask(path, hello(gateway), b'{"op": "sessions", "before": 5}')
    assert not bad["ok"] and "before must be" in bad["error"]


def test_ids_are_whole_or_unique_prefixes_and_a_second_decision_says_what_became_of_it(
        pg_target: Target, tmp_path: Path) -> None:
    """Issue 16: `kill c` killed a session from one character; `approve` took no prefix; a
    second approval said only "decided, expired or unknown"."""
    from tests.integration.guarded import operator, start_guarded, wait_for_request

    gateway = start_guarded(pg_target, tmp_path)
    try:
        held = subprocess.Popen(
            ["psql", "-X", "-d", gateway.dsn(), "-c",
             "create temp table t as select 1 as a; delete from t"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        request = wait_for_request(gateway)["id"]
        with operator(gateway) as client:
            with pytest.raises(ControlRefused, match="too short: give at least 4"):
                client.call("approve", request=request[:2])
            client.call("approve", request=request[:4], reason="checked")
            held.communicate(timeout=30)
            with pytest.raises(ControlRefused, match=(
                    f"approval request {request} is no longer pending: approved by oncall at "
                    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: checked")):
                client.call("approve", request=request[:4])
            with pytest.raises(ControlRefused, match="no live session 'ffffffff'"):
                client.call("kill", session="ffffffff")
    finally:
        stop_gateway(gateway)
