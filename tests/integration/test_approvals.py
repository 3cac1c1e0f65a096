"""Held statements: approve, deny, expire, cancel, disconnect, kill, and the broker's rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from gatewatch.cli.control_client import ControlRefused
from gatewatch.demo.pgcluster import free_port
from tests.conftest import Gateway, Target, stop_gateway, write_policy
from tests.integration.guarded import (
    cli_env,
    example_rules,
    operator,
    start_guarded,
    wait_for_request,
)
from tests.integration.test_recording import run_cli, start_engine_process

pytestmark = pytest.mark.integration

HELD = "create temp table t as select 1 as a; delete from t"




def psql_held(gateway: Gateway, user: str = "alice", sql: str = HELD) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["psql", "-X", "-d", gateway.dsn(user=user), "-c", sql],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_approve_from_the_cli_runs_the_held_statement(guarded: Gateway) -> None:
    client = psql_held(guarded)
    request = wait_for_request(guarded)
    assert request["requester"] == "alice" and request["rule"] == "review-unbounded-writes"
    assert request["statement"] == HELD
    listed = run_cli("approvals", env=cli_env(guarded))
    assert listed.returncode == 0 and request["id"] in listed.stdout and HELD in listed.stdout
    approved = run_cli("approve", request["id"], "--reason", "temp table only",
                       env=cli_env(guarded))
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == f"{request['id']}: approved"
    out, err = client.communicate(timeout=30)
    assert client.returncode == 0, err
    assert out.split() == ["SELECT", "1", "DELETE", "1"]
    assert f"statement held for approval {request['id']}" in err
    row = guarded.wait_for(lambda s: next(iter(s.approvals("approved")), None))
    assert row["decided_by"] == "oncall" and row["decision_reason"] == "temp table only"
    statements = guarded.wait_for(lambda s: [r for r in s.conn.execute(
        "select verdict, approval_id, status from statements where text = ?"
        " and status <> 'running'", [HELD])])
    assert statements == [("approved", request["id"], "ok")]
    assert run_cli("verify", env=cli_env(guarded)).returncode == 0


def test_deny_with_a_reason(guarded: Gateway) -> None:
    client = psql_held(guarded)
    request = wait_for_request(guarded)
    denied = run_cli("deny", request["id"], "--reason", "not during the sale",
                     env=cli_env(guarded))
    assert denied.returncode == 0 and denied.stdout.strip() == f"{request['id']}: denied"
    _, err = client.communicate(timeout=30)
    assert client.returncode == 1
    assert "statement denied by oncall: not during the sale" in err


def test_nobody_approves_their_own_request_and_only_operators_decide(
    guarded: Gateway,
) -> None:
    client = psql_held(guarded, user="second")  # an operator who is also an engineer
    request = wait_for_request(guarded)
    own = run_cli("approve", request["id"], env=cli_env(guarded, "second"))
    assert own.returncode == 1
    assert own.stderr == "gatewatch: nobody approves their own request\n"
    outsider = run_cli("approve", request["id"], env=cli_env(guarded, "alice"))
    assert outsider.returncode == 1 and outsider.stderr == "gatewatch: alice is not an operator\n"
    unknown = run_cli("approve", "a00000000", env=cli_env(guarded))
    assert unknown.returncode == 1 and "no pending approval request 'a00000000'" in unknown.stderr
    no_token = run_cli("approvals", env={**cli_env(guarded), "GATEWATCH_TOKEN": ""})
    assert no_token.returncode == 1 and "no operator token" in no_token.stderr
    assert run_cli("approve", request["id"], env=cli_env(guarded)).returncode == 0
    out, _ = client.communicate(timeout=30)
    assert out.split() == ["SELECT", "1", "DELETE", "1"]


def test_expired_request_fails_the_statement(pg_target: Target, tmp_path: Path) -> None:
    gw = start_guarded(pg_target, tmp_path, review_timeout="1s")
    try:
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("create temp table t (a int)")
            with pytest.raises(errors.InsufficientPrivilege, match="expired"):
                conn.execute("delete from t")
            assert conn.execute("select 1").fetchone() == (1,)
        row = gw.wait_for(lambda s: next(iter(s.approvals("expired")), None))
        assert row["decision_reason"] == "no decision within 1 s"
    finally:
        stop_gateway(gw)


def test_cancel_withdraws_the_request(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("create temp table t (a int)")

        def cancel_once_held() -> None:  # (it had waited a fixed second)
            try:
                wait_for_request(guarded)
            finally:
                conn.cancel_safe()

        canceller = threading.Thread(target=cancel_once_held)
        canceller.start()
        with pytest.raises(errors.QueryCanceled):
            conn.execute("delete from t")
        canceller.join(30)
        assert conn.execute("select 1").fetchone() == (1,)
    row = guarded.wait_for(lambda s: next(iter(s.approvals("withdrawn")), None))
    assert row["decision_reason"] == "canceled by the client"
    with operator(guarded) as client:
        assert client.call("approvals")["pending"] == []


def test_disconnect_withdraws_the_request(guarded: Gateway) -> None:
    client = psql_held(guarded)
    request = wait_for_request(guarded)
    client.kill()
    client.wait()
    row = guarded.wait_for(lambda s: next(iter(s.approvals("withdrawn")), None))
    assert row["id"] == request["id"] and row["decision_reason"].startswith("session ended")
    refused = run_cli("approve", request["id"], env=cli_env(guarded))
    assert refused.returncode == 1


def test_two_approvers_needed(pg_target: Target, tmp_path: Path) -> None:
    gw = start_guarded(pg_target, tmp_path, min_approvals=2)
    try:
        client = psql_held(gw)
        request = wait_for_request(gw)
        first = run_cli("approve", request["id"], env=cli_env(gw, "oncall"))
        assert "more approvers are needed" in first.stdout
        again = run_cli("approve", request["id"], env=cli_env(gw, "oncall"))
        assert again.returncode == 1 and "already approved" in again.stderr
        assert client.poll() is None  # still waiting
        second = run_cli("approve", request["id"], env=cli_env(gw, "second"))
        assert second.stdout.strip() == f"{request['id']}: approved"
        out, _ = client.communicate(timeout=30)
        assert out.split() == ["SELECT", "1", "DELETE", "1"]
    finally:
        stop_gateway(gw)


def test_held_statement_in_the_extended_protocol(guarded: Gateway) -> None:
    result: list[Any] = []
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("create temp table t (a int)")
        conn.execute("insert into t values (1), (2)")

        def run() -> None:
            result.append(conn.execute("delete from t returning a").fetchall())

        worker = threading.Thread(target=run)
        worker.start()
        request = wait_for_request(guarded)
        with operator(guarded) as client:
            with pytest.raises(ControlRefused, match="no pending approval request"):
                client.call("approve", request="x")
            client.call("approve", request=request["id"], reason="ok")
        worker.join(30)
        assert sorted(result[0]) == [(1,), (2,)]
        assert conn.execute("select count(*) from t").fetchone() == (0,)


def test_kill_ends_the_session(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(application_name="doomed"), autocommit=True) as conn:
        conn.execute("select 1")
        with operator(guarded) as client:
            live = client.call("sessions")["live"]
            session = next(s for s in live if s["application_name"] == "doomed")
        killed = run_cli("kill", session["id"][:8], "--reason", "runaway job",
                         env=cli_env(guarded))
        assert killed.returncode == 0, killed.stderr
        with pytest.raises(psycopg.OperationalError, match="ended by operator oncall"):
            conn.execute("select 1")
    row = guarded.wait_for(lambda s: s.find_session(session["id"])
                           if s.find_session(session["id"])["ended_at"] else None)
    assert row["status"] == "killed" and row["end_reason"] == "killed by oncall: runaway job"
    again = run_cli("kill", session["id"], env=cli_env(guarded))
    assert again.returncode == 1 and "no live session" in again.stderr


def test_engine_restart_expires_pending_requests(pg_target: Target, tmp_path: Path) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port, rules=example_rules())
    engine = start_engine_process(policy, port)
    dsn = (f"host=127.0.0.1 port={port} dbname=shop user=alice "
           f"password={os.environ['GWTEST_ALICE_TOKEN']}")
    client = subprocess.Popen(["psql", "-X", "-d", dsn, "-c", HELD], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    env = {**os.environ, "GATEWATCH_TOKEN": os.environ["GWTEST_ONCALL_TOKEN"]}
    deadline = time.monotonic() + 15
    while True:
        listed = run_cli("approvals", "--json", "-c", str(policy), env=env)
        if listed.returncode == 0 and json.loads(listed.stdout)["pending"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    engine.send_signal(signal.SIGKILL)
    engine.wait(10)
    client.wait(10)
    engine = start_engine_process(policy, port)
    try:
        # The listener may answer before the control socket does (workers start first).
        deadline = time.monotonic() + 15
        while (answer := run_cli("approvals", "--json", "-c", str(policy), env=env)
               ).returncode != 0:
            assert time.monotonic() < deadline, answer.stderr
            time.sleep(0.1)
        listed = json.loads(answer.stdout)
        assert listed["pending"] == []
        assert [(r["status"], r["decision_reason"]) for r in listed["recent"]] == [
            ("expired", "engine restarted")]
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(30)


class _Hook:
    """A local webhook receiver that fails its first delivery, to exercise the retry."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict[str, Any]] = []
        calls: list[int] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                calls.append(1)
                if len(calls) == 1:
                    self.send_response(503)
                else:
                    received.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.received, self.calls = received, calls
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/gatewatch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_webhook_announces_requests_with_retry(pg_target: Target, tmp_path: Path) -> None:
    hook = _Hook()
    gw = start_guarded(pg_target, tmp_path, webhook=hook.url)
    try:
        client = psql_held(gw)
        request = wait_for_request(gw)
        deadline = time.monotonic() + 15
        while not hook.received:
            assert time.monotonic() < deadline, "the webhook was never delivered"
            time.sleep(0.05)
        assert len(hook.calls) == 2  # the first attempt got 503 and was retried
        message = hook.received[0]
        assert f"gatewatch approve {request['id']}" in message["text"]
        assert message["gatewatch"]["request"]["requester"] == "alice"
        run_cli("deny", request["id"], env=cli_env(gw))
        client.communicate(timeout=30)
    finally:
        stop_gateway(gw)
        hook.server.shutdown()


def test_dead_webhook_never_delays_the_session(pg_target: Target, tmp_path: Path) -> None:
    gw = start_guarded(pg_target, tmp_path, webhook=f"http://127.0.0.1:{free_port()}/x")
    try:
        client = psql_held(gw)
        request = wait_for_request(gw)
        assert run_cli("approve", request["id"], env=cli_env(gw)).returncode == 0
        out, _ = client.communicate(timeout=30)
        assert out.split() == ["SELECT", "1", "DELETE", "1"]
    finally:
        stop_gateway(gw)


def test_just_in_time_access(guarded: Gateway) -> None:
    client = subprocess.Popen(["psql", "-X", "-At", "-d", guarded.dsn("shop_jit"), "-c",
                               "select 'in'"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    request = wait_for_request(guarded)
    assert request["rule"] == "access-approval"
    assert request["statement"].startswith("-- open sessions on shop_jit as alice for 1 min")
    assert run_cli("approve", request["id"], env=cli_env(guarded)).returncode == 0
    out, err = client.communicate(timeout=30)
    assert out.strip() == "in", err
    assert f"request {request['id']} is waiting for an operator" in err
    # The grant lets alice open more sessions without asking again.
    with psycopg.connect(guarded.dsn("shop_jit"), connect_timeout=10) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_just_in_time_access_denied(guarded: Gateway) -> None:
    client = subprocess.Popen(["psql", "-X", "-d", guarded.dsn("shop_jit"), "-c", "select 1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    request = wait_for_request(guarded)
    assert run_cli("deny", request["id"], "--reason", "use the replica",
                   env=cli_env(guarded)).returncode == 0
    _, err = client.communicate(timeout=30)
    assert client.returncode == 2
    assert "access to connection shop_jit denied by oncall: use the replica" in err
    session = guarded.wait_for(lambda s: next(
        (r for r in s.sessions() if r["connection"] == "shop_jit" and r["ended_at"]), None))
    assert session["end_reason"] == "access denied"
