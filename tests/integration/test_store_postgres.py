"""The PostgreSQL store (issue 17) against a real, throw-away PostgreSQL: nodes writing at
once each in its own chain, verify passing and catching tampering, one engine per node name
on any machine, a lost node's sessions ended by another, a node killed with SIGKILL losing no
acknowledged record, fleet commands by LISTEN/NOTIFY, and the reads the CLI and TUI use."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from store import NODE_LOST, SqliteStore, StoreError, open_store, reads, verify
from store import ops as O
from store.errors import StoreLocked
from store.postgres import PostgresStore, pg_sql
from tests.conftest import ROOT, Target
from tests.integration.test_store_nodes import WRITER, acknowledged
from tests.store.sample import T0, a_session, session_open, statement_start

pytestmark = pytest.mark.integration


@pytest.fixture
def url(pg_target: Target, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own and a role whose password reaches libpq as PGPASSWORD."""
    name = "gwstore_" + secrets.token_hex(4)
    password = secrets.token_urlsafe(12)
    pg_target.cluster.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}';"
                          f" CREATE DATABASE {name} OWNER {name};")
    monkeypatch.setenv("PGPASSWORD", password)
    yield f"postgresql://{name}@127.0.0.1:{pg_target.cluster.port}/{name}"


def node(url: str, name: str, tmp_path: Path) -> PostgresStore:
    """Node ``name`` as if on a machine of its own: its local files in a directory of its own."""
    store = open_store(url, node=name, local=tmp_path / name / "local.db")
    assert isinstance(store, PostgresStore)
    return store


def approval_request(rid: str, sid: str) -> O.Op:
    return O.Op(O.APPROVAL_REQUEST, rid, 0, {
        "session_id": sid, "requester": "alice", "connection": "shop",
        "statement": "DELETE FROM orders", "statement_hash": "h", "rule": "review",
        "reason": "deletes", "created_at": O.utc(T0 + 1), "expires_at": O.utc(T0 + 600),
        "status": "pending"})


def test_parameters_are_psycopgs_and_literals_are_left_alone() -> None:
    assert pg_sql("SELECT ? WHERE a = :a AND b LIKE '50%:x?' AND c::text = '%'") == (
        "SELECT %s WHERE a = %(a)s AND b LIKE '50%%:x?' AND c::text = '%%'")
    assert pg_sql("SELECT 1 WHERE x LIKE 'a' || ? AND y % 2 = 0") == (
        "SELECT 1 WHERE x LIKE 'a' || %s AND y %% 2 = 0")


def test_two_nodes_write_at_once_and_verify_catches_tampering(
        url: str, tmp_path: Path, pg_target: Target) -> None:
    a, b = node(url, "a", tmp_path), node(url, "b", tmp_path)
    try:
        def write(store: PostgresStore, prefix: str) -> None:
            for n in range(30):
                store.apply(a_session(f"{prefix}{n}", statements=3))
                if n % 5 == 0:
                    store.checkpoint()
            store.apply([O.output_op(f"{prefix}0", 1, T0, 0, "o", b"hello"),
                         O.output_op(f"{prefix}0", 2, T0 + 1, 0, "o", bytes(range(256)))])
            store.checkpoint()

        threads = [threading.Thread(target=write, args=(s, s.node)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result = verify(a)
        assert result.ok, result.problems
        assert set(result.chains) == {"a", "b"} and result.sessions == 60
        session = a.find_session("b1")
        assert session is not None and session["node"] == "b"
        assert [s["seq"] for s in a.statements("b1")] == [1, 2, 3]
        assert a.output("a0") and reads.statistics(a)["by_connection"] == [("shop", 60)]
    finally:
        a.close()
        b.close()
    reader = open_store(url, readonly=True, local=tmp_path / "reader" / "local.db")
    try:
        assert verify(reader).ok
        assert sorted(n["name"] for n in reader.nodes()) == ["a", "b"]
    finally:
        reader.close()
    db = url.rsplit("/", 1)[1]
    for n, tamper in enumerate((
            "UPDATE statements SET text = 'SELECT 0' WHERE session_id = 'a3' AND seq = 1",
            "DELETE FROM audit WHERE node = 'b' AND seq = 7",
            "UPDATE audit SET body = replace(body, 'SELECT 2', 'SELECT 9')"
            " WHERE node = 'a' AND seq = 4",
            "UPDATE ssh_output SET data = 'x'::bytea WHERE session_id = 'a0'",
            "UPDATE sessions SET node = 'a' WHERE id = 'b2'",
            "UPDATE audit SET node = 'c' WHERE node = 'b';"  # a chain relabelled whole
            " UPDATE sessions SET node = 'c' WHERE node = 'b'")):
        copy = f"{db}_{n}"
        pg_target.cluster.sql(f"CREATE DATABASE {copy} TEMPLATE {db} OWNER {db};")
        pg_target.cluster.sql(f"{tamper};", dbname=copy)
        reader = open_store(url.rsplit("/", 1)[0] + "/" + copy, readonly=True,
                            local=tmp_path / "reader" / "local.db")
        try:
            assert not verify(reader).ok, tamper
        finally:
            reader.close()


def test_one_engine_per_node_name_on_any_machine(url: str, tmp_path: Path) -> None:
    a = node(url, "a", tmp_path)
    try:
        with pytest.raises(StoreLocked, match="as node a"):
            open_store(url, node="a", local=tmp_path / "elsewhere" / "local.db")
    finally:
        a.close()
    node(url, "a", tmp_path / "later").close()  # let go with the engine


def test_a_wrong_password_says_so(url: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(StoreError, match="password authentication failed"):
        node(url, "a", tmp_path)


def test_a_lost_node_is_ended_by_another_and_its_own_records_stay_its_own(
        url: str, tmp_path: Path) -> None:
    a = node(url, "a", tmp_path)
    a.apply([session_open("s1"), statement_start("s1", 1, "DELETE FROM orders",
                                                 verdict="review", approval_id="r1"),
             approval_request("r1", "s1")])
    a.checkpoint()
    assert a._holder is not None
    a._holder.close()  # as a machine that died: its advisory lock goes with the connection
    b = node(url, "b", tmp_path)
    try:
        assert b.interrupted_sessions() == [] and b.pending_approvals() == []
        assert b.lost_nodes(0) == ["a"]
        records = b.end_lost_node("a", 0)
        assert records is not None and b.end_lost_node("a", 0) is None
        b.apply([r.op() for r in records])
        b.checkpoint()
        session = b.find_session("s1")
        assert session is not None and (session["status"], session["end_reason"]) == (
            "interrupted", NODE_LOST)
        assert b.approvals()[0]["status"] == "expired"
        result = verify(b)
        assert result.ok, result.problems
        assert result.chains == {"a": 3, "b": 2}
    finally:
        b.close()


def test_fleet_commands_by_listen_and_notify(url: str, tmp_path: Path) -> None:
    a, b = node(url, "a", tmp_path), node(url, "b", tmp_path)

    async def exchange() -> list[dict[str, object]]:
        got: list[dict[str, object]] = []

        async def take() -> None:
            async for command in a.listen():
                got.append(command)
                if len(got) == 2:
                    return

        task = asyncio.ensure_future(take())
        await asyncio.sleep(0.3)
        b.notify("b", {"op": "not for a"})
        b.notify("a", {"op": "approve", "request": "r1"})
        b.notify("a", {"op": "kill", "session": "s1"})
        await asyncio.wait_for(task, 10)
        return got

    try:
        assert [c["op"] for c in asyncio.run(exchange())] == ["approve", "kill"]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("who", ["itself", "another node of its machine"])
def test_a_node_killed_mid_write_loses_nothing(url: str, tmp_path: Path, who: str) -> None:
    local = tmp_path / "machine" / "local.db"  # the machine's engine.local_store
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GW_LOCAL": str(local)}
    script = WRITER.replace("store = open_store(path, node=node)",
                            "import os\nstore = open_store(sys.argv[1], node=node,"
                            " local=Path(os.environ['GW_LOCAL']))")
    open_store(url, node="setup", local=tmp_path / "setup" / "local.db").close()
    proc = subprocess.Popen([sys.executable, "-c", script, url, "a", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    acked = acknowledged(proc.stdout, until=305)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    acked = max(acked, acknowledged(proc.stdout))
    store: SqliteStore
    if who == "itself":
        store = open_until_free(url, "a", local)  # replays its local journal
    else:
        store = open_store(url, node="b", local=local)
        records = None
        for _ in range(200):  # until the server has ended the dead node's connection
            records = store.end_lost_node("a", 0)
            if records is not None:
                break
            time.sleep(0.05)
        assert records is not None
        store.apply([r.op() for r in records])
        store.checkpoint()
    try:
        assert store.audit_head("a")[0] >= acked
        assert [s for s in store.sessions(limit=1000) if s["status"] == "open"
                and s["node"] == "a" and who != "itself"] == []
        result = verify(store)
        assert result.ok, result.problems
    finally:
        store.close()


def open_until_free(url: str, name: str, local: Path) -> PostgresStore:
    """Open node ``name`` once the server has ended its killed engine's connection."""
    for _ in range(200):
        try:
            store = open_store(url, node=name, local=local)
        except StoreLocked:
            time.sleep(0.05)
            continue
        assert isinstance(store, PostgresStore)
        return store
    raise AssertionError(f"node {name}'s lock was never let go")


def test_nodes_starting_together_create_the_schema_once(url: str, tmp_path: Path) -> None:
    opened: list[PostgresStore] = []
    failed: list[BaseException] = []

    def start(name: str) -> None:
        try:
            opened.append(node(url, name, tmp_path))
        except BaseException as exc:  # reported below
            failed.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert failed == [] and len(opened) == 3
        for store in opened:
            store.apply(a_session(f"s-{store.node}"))
            store.checkpoint()
        assert verify(opened[0]).chains == {"a": 6, "b": 6, "c": 6}
    finally:
        for store in opened:
            store.close()


def test_the_reads_of_the_cli_and_tui(url: str, tmp_path: Path) -> None:
    a = node(url, "a", tmp_path)
    try:
        a.register_node({"listeners": {"shop": 6432}})
        a.heartbeat()
        a.apply([session_open("s1", protocol="ssh"),
                 O.output_op("s1", 1, T0, 0, "r", b"80x24"),
                 O.output_op("s1", 2, T0 + 1, 0, "o", b"\x1b[1mhello\xff"),
                 statement_start("s1", 1, "ls", masked='{"personal-data:email/recorded": 2}'),
                 O.Op(O.SESSION_CLOSE, "s1", 0, {
                     "ended_at": O.utc(T0 + 9), "status": "closed", "end_reason": "client quit",
                     "masked": '{"personal-data:email/email": 3, "x:exempt": 1}'})])
        a.checkpoint()
        [row] = a.nodes()
        assert row["info"] == '{"listeners": {"shop": 6432}}' and row["pid"] == os.getpid()
        assert reads.terminal_channels(a, "s1") == [0]
        assert [r[:5] for r in reads.chunk_rows(a, "s1", 0, 10)] == [
            (1, T0, 0, "r", 5), (2, T0 + 1, 0, "o", 10)]
        assert reads.chunk_bytes(a, "s1", 1, 2, [0]) == {2: b"\x1b[1mhello\xff"}
        assert a.output_size("s1") == 15
        stats = reads.statistics(a)
        assert stats["masked"] == [("personal-data:email", 3), ("x:exempt", 1)]
        assert stats["masked_columns"] == [("email", 3)]
        assert stats["masked_per_hour"][0][1] == 5
        found = a.find_session("s")
        assert found is not None and found["id"] == "s1" and found["statements"] == 1
        assert reads.session_statements(a, "s1")[0]["outcome"] == "allow"
        assert verify(a, "s1").ok
    finally:
        a.close()


def test_connections_the_server_ended_are_opened_again(
        url: str, tmp_path: Path, pg_target: Target) -> None:
    a = node(url, "a", tmp_path)
    db = url.rsplit("/", 1)[1]

    def terminate(application: str) -> None:
        pg_target.cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              f" WHERE datname = '{db}' AND application_name = '{application}'")

    try:
        a.apply(a_session("s1"))
        a.checkpoint()
        terminate("gatewatch-store")  # the reading, writing and control connections
        assert len(a.sessions()) == 1  # a read opens its connection again
        a.apply(a_session("s2"))
        a.checkpoint()  # so does a checkpoint, never half a transaction on each
        assert sorted(s["id"] for s in a.sessions()) == ["s1", "s2"]
        terminate("gatewatch-node")  # the connection that holds the node's lock
        assert a._holder is not None
        with pytest.raises(psycopg.OperationalError):
            a._holder.execute("SELECT 1")  # the client learns it at its next use
        a.apply(a_session("s3"))
        with pytest.raises(StoreError, match="hold on node a"):
            a.checkpoint()  # nothing is written while another engine could take the name
        with pytest.raises(StoreError, match="hold on node a"):
            a.apply([statement_start("s3", 9)])  # and statements are refused
        a.heartbeat()  # takes it again
        a.checkpoint()
        with pytest.raises(StoreLocked):
            open_store(url, node="a", local=tmp_path / "elsewhere" / "local.db")
        result = verify(a)
        assert result.ok and result.sessions == 3, result.problems
    finally:
        a.close()


def test_a_listener_whose_connection_was_lost_listens_again(
        url: str, tmp_path: Path, pg_target: Target) -> None:
    a, b = node(url, "a", tmp_path), node(url, "b", tmp_path)
    db = url.rsplit("/", 1)[1]

    async def exchange() -> list[object]:
        got: list[object] = []
        listening = a.listen()
        b.notify("a", {"op": "approve"})
        got.append((await asyncio.wait_for(listening.__anext__(), 10))["op"])
        await asyncio.to_thread(
            pg_target.cluster.sql, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{db}' AND application_name = 'gatewatch-fleet'")
        b.notify("a", {"op": "kill"})
        got.append((await asyncio.wait_for(listening.__anext__(), 10))["op"])
        await listening.aclose()
        return got

    try:
        assert asyncio.run(exchange()) == ["approve", "kill"]
    finally:
        a.close()
        b.close()


async def test_the_operators_tui_replays_a_session_of_a_postgresql_store(
        url: str, tmp_path: Path) -> None:
    """Replay read SQLite only: on a fleet's PostgreSQL store, Enter on a recorded session
    opened its statements instead of its replay."""
    from tests.tui.fixtures import NOW, fixed_source
    from tests.tui.test_replay import press
    from tui.app import GatewatchApp
    from tui.screens.replay import ReplayScreen
    from tui.widgets.terminal import TerminalView

    a = node(url, "a", tmp_path)
    try:
        a.apply([session_open("s1", protocol="ssh"),
                 O.output_op("s1", 1, T0, 0, "r", b"80x24"),
                 O.output_op("s1", 2, T0 + 1, 0, "o", b"$ ls\r\n"),
                 O.output_op("s1", 3, T0 + 2, 0, "o", b"notes.txt\r\n"),
                 O.Op(O.SESSION_CLOSE, "s1", 0, {
                     "ended_at": O.utc(T0 + 9), "status": "closed", "end_reason": "client quit",
                     "masked": "{}"})])
        a.checkpoint()
        source = fixed_source()
        source._store = url
        source._sessions = {"live": [], "recent": [
            {"id": "s1", "protocol": "ssh", "identity": "alice", "connection": "box",
             "client_addr": "10.0.0.1:5000", "application_name": None, "database": None,
             "started_at": O.utc(T0), "ended_at": O.utc(T0 + 9), "statements": 0,
             "status": "closed", "end_reason": "client quit"}]}
        app = GatewatchApp(source, clock=lambda: NOW, live=False)
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await press(pilot, "enter")
            await pilot.pause()
            assert isinstance(app.screen, ReplayScreen)
            await press(pilot, "end")
            assert "notes.txt" in app.screen.query_one("#terminal", TerminalView).text()
            await press(pilot, "escape")
    finally:
        a.close()
