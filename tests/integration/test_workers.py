"""``engine.workers: 2`` on the embedded SQLite store (issue 17): two processes accept on the
same ports, and what a client sees does not depend on the worker the kernel picked.

- a CancelRequest reaches whichever worker the kernel picks, and still cancels the statement of
  a session the other worker holds;
- the hash masking strategy gives one value one hash in both workers (one key, chosen once);
- the operator's control socket lists both workers' sessions, each with its node, and a kill
  reaches the worker holding the session.

Which worker holds a session is read off the key the gateway handed the client (its process id
is ``n * workers + worker``), so each test picks sessions on both workers rather than hoping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gatewatch.cli.control_client import ControlClient, ControlRefused, EngineUnreachable
from gatewatch.demo.pgcluster import free_port
from store import open_store
from tests.conftest import ROOT, TOKENS, Target, running_on_target, write_policy
from tests.integration.guarded import example_rules

pytestmark = pytest.mark.integration

WORKERS = 2


class Workers:
    def __init__(self, proc: subprocess.Popen[bytes], work: Path, listeners: dict[str, str],
                 nodes: list[str]) -> None:
        self.proc, self.work, self.listeners, self.nodes = proc, work, listeners, nodes

    def dsn(self, connection: str = "shop") -> str:
        port = self.listeners[connection].rpartition(":")[2]
        return (f"host=127.0.0.1 port={port} dbname=shop user=alice "
                f"password={TOKENS['alice']} sslmode=disable")

    def control(self) -> ControlClient:
        return ControlClient(self.work / "control.sock", TOKENS["oncall"])

    def log(self) -> str:
        return (self.work / "engine.log").read_text(errors="replace")


def with_workers(policy: Path, count: int) -> None:
    text = policy.read_text()
    policy.write_text(text.replace("engine:\n", f"engine:\n  workers: {count}\n", 1))


@pytest.fixture(scope="module")
def workers(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    work = tmp_path_factory.mktemp("workers")
    policy = write_policy(pg_target, work, shop_port=free_port(), rules=example_rules())
    with_workers(policy, WORKERS)
    log = (work / "engine.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            cwd=ROOT, stdout=log, stderr=log)
    try:
        hello = _wait_hello(work / "control.sock", proc)
        yield Workers(proc, work, hello["listeners"], hello["workers"])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (work / "engine.log").read_text()
        log.close()


def _wait_hello(path: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The supervisor's answer once every worker answers behind it."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "the engine ended while starting"
        try:
            with ControlClient(path, TOKENS["oncall"], timeout=5) as client:
                hello: dict[str, Any] = client.hello
                return hello
        except (EngineUnreachable, ControlRefused, OSError):
            assert time.monotonic() < deadline, "the workers never all answered"
            time.sleep(0.1)


def worker_of(conn: psycopg.Connection[Any]) -> int:
    return conn.info.backend_pid % WORKERS


def on_each_worker(dsn: str) -> list[psycopg.Connection[Any]]:
    """Connections until one is held by each worker (the kernel spreads them by address)."""
    held: dict[int, psycopg.Connection[Any]] = {}
    spare: list[psycopg.Connection[Any]] = []
    for _ in range(64):
        conn = psycopg.connect(dsn, autocommit=True)
        if worker_of(conn) in held:
            spare.append(conn)
        else:
            held[worker_of(conn)] = conn
        if len(held) == WORKERS:
            break
    for conn in spare:
        conn.close()
    assert sorted(held) == list(range(WORKERS)), "the kernel gave every connection one worker"
    return [held[i] for i in range(WORKERS)]


def test_both_workers_take_sessions_and_the_hello_names_them(workers: Workers) -> None:
    assert len(workers.nodes) == WORKERS and len(set(workers.nodes)) == WORKERS
    conns = on_each_worker(workers.dsn())
    try:
        for conn in conns:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        for conn in conns:
            conn.close()


def test_a_cancel_reaching_either_worker_cancels(workers: Workers, pg_target: Target) -> None:
    """Each CancelRequest arrives on a new connection, which the kernel gives either worker;
    every one cancels, and some had to be handed from one worker to the other."""
    handed_before = workers.log().count("handed to it")
    for i in range(12):
        sql = f"select pg_sleep(60) as cancel_{i}"
        conn = psycopg.connect(workers.dsn(), autocommit=True)
        errors: list[BaseException] = []

        def sleep(conn: psycopg.Connection[Any] = conn, errors: list[BaseException] = errors,
                  sql: str = sql) -> None:
            try:
                conn.execute(sql.encode())
            except BaseException as exc:
                errors.append(exc)

        runner = threading.Thread(target=sleep)
        runner.start()
        running_on_target(pg_target, sql)
        conn.cancel()
        runner.join(30)
        assert not runner.is_alive(), "the cancel did not cancel"
        assert [type(e) for e in errors] == [psycopg.errors.QueryCanceled]
        conn.close()
    # 12 cancels spread over 2 workers: every one of them reaching its own worker would be a
    # 1-in-4096 chance; the handing-over is what this test is for.
    assert workers.log().count("handed to it") > handed_before


def test_a_hash_is_the_same_in_every_worker(workers: Workers) -> None:
    conns = on_each_worker(workers.dsn("shop_masked"))
    try:
        hashes = [conn.execute("select national_id from customers where id = 1").fetchone()
                  for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert hashes[0] is not None and str(hashes[0][0]).startswith("h:")
    assert all(h == hashes[0] for h in hashes)


def test_the_control_socket_lists_and_kills_in_every_worker(workers: Workers) -> None:
    conns = on_each_worker(workers.dsn())
    try:
        pids = {conn.info.backend_pid for conn in conns}
        with workers.control() as client:
            live = client.call("sessions")["live"]
            nodes = {s["node"] for s in live}
            assert nodes == set(workers.nodes)
            # kill the session the second worker holds, through the supervisor
            target = next(s for s in live if s["node"] == workers.nodes[1])
            answer = client.call("kill", session=target["id"], reason="test")
            assert answer["session"] == target["id"]
        deadline = time.monotonic() + 10
        ended = conns[1]
        while not ended.closed and time.monotonic() < deadline:
            try:
                ended.execute("select 1")
            except psycopg.OperationalError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the killed session still runs statements")
        assert conns[0].execute("select 2").fetchone() == (2,)  # the other worker's goes on
        assert pids
    finally:
        for conn in conns:
            conn.close()


def test_a_worker_restarted_leaves_its_siblings_sessions_and_requests(workers: Workers) -> None:
    """SIGKILL one worker: the supervisor starts another in its place, which marks its own
    sessions interrupted and never a sibling's; the sibling's held statement is still pending
    and runs once approved."""
    conns = on_each_worker(workers.dsn())
    held_conn, lost_conn = conns
    outcome: list[Any] = []

    def held() -> None:
        try:
            held_conn.execute("create temp table t as select 1 as a")
            outcome.append(held_conn.execute("delete from t").rowcount)  # held for review
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=held)
    runner.start()
    try:
        with workers.control() as client:
            deadline = time.monotonic() + 20
            while not (pending := client.call("approvals")["pending"]):
                assert time.monotonic() < deadline, "nothing held"
                time.sleep(0.1)
            [request] = pending
            assert request["node"] == workers.nodes[0]
        lost_sid = next(s["id"] for s in _live(workers) if s["node"] == workers.nodes[1])
        store = open_store(workers.work / "store.db", readonly=True)
        try:
            pid = next(n["pid"] for n in store.nodes() if n["name"] == workers.nodes[1])
        finally:
            store.close()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # the supervisor restarts it: its node has a new process
            store = open_store(workers.work / "store.db", readonly=True)
            try:
                row = next(n for n in store.nodes() if n["name"] == workers.nodes[1])
                lost = next(r for r in store.sessions() if r["id"] == lost_sid)
            finally:
                store.close()
            if row["pid"] != pid and lost["status"] != "open":
                break
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.2)
        assert (lost["status"], lost["end_reason"]) == ("interrupted", "engine restarted")
        with workers.control() as client:
            assert [r["id"] for r in client.call("approvals")["pending"]] == [request["id"]]
            assert client.call("approve", request=request["id"], reason="ok")["status"] == \
                "approved"
        runner.join(30)
        assert outcome == [1]
        assert held_conn.execute("select 2").fetchone() == (2,)  # the sibling's session lives
        with pytest.raises(psycopg.OperationalError):
            lost_conn.execute("select 3")
    finally:
        runner.join(30)
        for conn in conns:
            conn.close()


def _live(workers: Workers) -> list[dict[str, Any]]:
    with workers.control() as client:
        return list(client.call("sessions")["live"])
