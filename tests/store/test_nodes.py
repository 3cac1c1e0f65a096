"""Nodes (issue 17): several engines write one store, each as a named node with its own lock,
journal and audit chain; a starting node recovers only its own records; a node that finds
another lost ends that one's sessions in its own chain."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from store import NODE_LOST, SqliteStore, StoreError, open_store, verify
from store import ops as O
from store.backup import backup
from store.chain import GENESIS, canonical, link
from store.errors import StoreLocked
from store.nodes import default_node
from store.records import Record
from store.schema import MIGRATIONS
from store.sqlite import journal_path
from tests.store.sample import T0, a_session, crash, session_close, session_open, statement_start


def approval_request(rid: str, sid: str) -> O.Op:
    return O.Op(O.APPROVAL_REQUEST, rid, 0, {
        "session_id": sid, "requester": "alice", "connection": "shop",
        "statement": "DELETE FROM orders", "statement_hash": "h", "rule": "review-deletes",
        "reason": "deletes", "created_at": O.utc(T0 + 1), "expires_at": O.utc(T0 + 600),
        "status": "pending"})


def held(db_path: Path, node: str, sid: str, rid: str) -> SqliteStore:
    """Node ``node`` with session ``sid`` open and its request ``rid`` pending."""
    store = open_store(db_path, node=node)
    store.apply([session_open(sid), statement_start(sid, 1, "DELETE FROM orders",
                                                    verdict="review", approval_id=rid),
                 approval_request(rid, sid)])
    store.checkpoint()
    return store


def test_two_nodes_write_one_store_each_in_its_own_chain(db_path: Path) -> None:
    a = open_store(db_path, node="a")
    b = open_store(db_path, node="b")
    try:
        a.apply(a_session("s1"))
        b.apply(a_session("s2"))
        a.apply(a_session("s3"))
        a.checkpoint()
        b.checkpoint()
        assert journal_path(db_path, "a") == db_path.with_name("gatewatch.db.a.journal")
        assert a.audit_head()[0] == 12 and b.audit_head()[0] == 6
        assert {r["id"]: r["node"] for r in a.sessions()} == {"s1": "a", "s2": "b", "s3": "a"}
        result = verify(a)
        assert result.ok, result.problems
        assert result.chains == {"a": 12, "b": 6}
        assert [n["name"] for n in a.nodes()] == ["a", "b"]
    finally:
        a.close()
        b.close()
    assert all(n["stopped_at"] for n in open_store(db_path, readonly=True).nodes())


def test_a_second_engine_under_the_same_node_name_is_refused(db_path: Path) -> None:
    a = open_store(db_path, node="a")
    try:
        with pytest.raises(StoreLocked, match=r"as node a .*engine\.node"):
            open_store(db_path, node="a")
        open_store(db_path, node="b").close()  # another name is another writer
    finally:
        a.close()


def test_an_invalid_node_name_is_refused(db_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid node name"):
        open_store(db_path, node="../x")


def test_a_starting_node_recovers_its_own_records_never_a_siblings(db_path: Path) -> None:
    a = held(db_path, "a", "s1", "r1")
    crash(a)
    b = open_store(db_path, node="b")  # a sibling starting while a's records are left open
    try:
        assert b.interrupted_sessions() == [] and b.pending_approvals() == []
    finally:
        b.close()
    again = open_store(db_path, node="a")
    try:
        assert again.interrupted_sessions() == ["s1"] and again.pending_approvals() == ["r1"]
    finally:
        again.close()


def ended_by(store: SqliteStore, records: list[Record]) -> None:
    store.apply([r.op() for r in records])
    store.checkpoint()


def test_a_lost_nodes_journal_is_replayed_and_its_sessions_ended_by_another(
        db_path: Path) -> None:
    a = held(db_path, "a", "s1", "r1")
    a.apply([statement_start("s1", 2, "SELECT 2")])  # in a's journal only when it dies
    crash(a)
    b = open_store(db_path, node="b")
    try:
        assert b.lost_nodes(3600) == []
        assert b.lost_nodes(0) == ["a"]
        records = b.end_lost_node("a", 0)
        assert records is not None
        assert b.end_lost_node("a", 0) is None  # claimed once
        assert [s["seq"] for s in b.statements("s1")] == [1, 2]  # replayed from a's journal
        assert not journal_path(db_path, "a").exists()
        ended_by(b, records)
        session = b.find_session("s1")
        assert session is not None
        assert (session["status"], session["end_reason"], session["node"]) == (
            "interrupted", NODE_LOST, "a")
        assert b.approvals()[0]["status"] == "expired"
        assert b.lost_nodes(0) == []
        result = verify(b)
        assert result.ok, result.problems
        assert result.chains == {"a": 4, "b": 2}
    finally:
        b.close()


def test_a_node_whose_process_holds_its_lock_is_not_ended(db_path: Path) -> None:
    a = held(db_path, "a", "s1", "r1")
    b = open_store(db_path, node="b")
    try:
        assert b.lost_nodes(0) == ["a"]  # no heartbeat since now
        assert b.end_lost_node("a", 0) is None
        a.heartbeat()
        assert b.lost_nodes(0.5) == []
        assert b.find_session("s1")["status"] == "open"  # type: ignore[index]
    finally:
        b.close()
        a.close()


def test_a_nodes_own_close_replayed_after_another_ended_it_stands(db_path: Path) -> None:
    """PostgreSQL's case: the lost node's journal is on its own disk, so the others end its
    sessions without it; when it comes back its replayed close is the session's."""
    a = held(db_path, "a", "s1", "r1")
    a.apply([session_close("s1", "client quit")])
    crash(a)
    aside = journal_path(db_path, "a").rename(db_path.with_name("aside"))
    b = open_store(db_path, node="b")
    try:
        records = b.end_lost_node("a", 0)
        assert records is not None
        ended_by(b, records)
        assert b.find_session("s1")["end_reason"] == NODE_LOST  # type: ignore[index]
        aside.rename(journal_path(db_path, "a"))
        again = open_store(db_path, node="a")
        again.close()
        assert b.find_session("s1")["end_reason"] == "client quit"  # type: ignore[index]
        result = verify(b)
        assert result.ok, result.problems
    finally:
        b.close()


def test_tampering_in_any_chain_is_caught(db_path: Path) -> None:
    a = open_store(db_path, node="a")
    b = open_store(db_path, node="b")
    a.apply(a_session("s1"))
    b.apply(a_session("s2"))
    a.close()
    b.close()
    for sql in ("DELETE FROM audit WHERE node = 'b' AND seq = 3",
                "UPDATE audit SET body = replace(body, 'SELECT 1', 'SELECT 9')"
                " WHERE node = 'a' AND seq = 2",
                "UPDATE audit SET node = 'a', seq = 7 WHERE node = 'b' AND seq = 6",
                "UPDATE sessions SET node = 'b' WHERE id = 's1'",
                "INSERT INTO audit SELECT 'c', seq, kind, session_id, ref, body, prev, hash"
                " FROM audit WHERE node = 'a' AND seq = 1",
                # a whole chain relabelled as a node that never wrote, with its sessions
                "UPDATE audit SET node = 'c' WHERE node = 'b';"
                " UPDATE sessions SET node = 'c' WHERE node = 'b'"):
        copy = db_path.with_name("copy.db")
        copy.unlink(missing_ok=True)
        src = sqlite3.connect(db_path)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        dst.executescript(sql)
        dst.commit()
        dst.close()
        reader = open_store(copy, readonly=True)
        try:
            assert not verify(reader).ok, sql
        finally:
            reader.close()


def test_a_store_from_before_nodes_is_the_default_nodes_chain(db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(db_path)
    for migration in MIGRATIONS[:8]:
        conn.executescript(migration)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '8')")
    head = GENESIS
    for seq, op in enumerate([session_open("old")], start=1):
        body = canonical(op.fields)
        digest = link(head, seq, op.kind, op.session_id, op.ref, body)
        conn.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?)",
                     (seq, op.kind, op.session_id, op.ref, body.decode(), head, digest))
        head = digest
    conn.execute("INSERT INTO sessions (id, protocol, connection, identity, identity_kind,"
                 " client_addr, application_name, database, started_at, status) VALUES"
                 " ('old', 'postgres', 'shop', 'alice', 'person', '127.0.0.1:50000', 'psql',"
                 " 'shop', ?, 'open')", (O.utc(T0),))
    conn.commit()
    conn.close()
    db_path.chmod(0o600)
    worker = open_store(db_path, node="w1")  # a worker migrates it: not its records
    try:
        assert worker.interrupted_sessions() == []
        assert worker.lost_nodes(0) == [default_node()]  # never heartbeat: taken over
        records = worker.end_lost_node(default_node(), 0)
        assert records is not None and [r.op().session_id for r in records] == ["old"]
        ended_by(worker, records)
        result = verify(worker)
        assert result.ok, result.problems
        assert result.chains == {default_node(): 1, "w1": 1}
    finally:
        worker.close()


def test_fleet_commands_reach_the_node_they_are_for_once(db_path: Path) -> None:
    a = open_store(db_path, node="a")
    b = open_store(db_path, node="b")

    async def exchange() -> list[dict[str, object]]:
        got: list[dict[str, object]] = []

        async def take() -> None:
            async for command in a.listen():
                got.append(command)
                if len(got) == 2:
                    return

        task = asyncio.ensure_future(take())
        await asyncio.sleep(0.1)
        b.notify("b", {"op": "not for a"})
        first = b.notify("a", {"op": "approve", "request": "r1"})
        b.notify("a", {"op": "kill", "session": "s1"})
        await asyncio.wait_for(task, 5)
        assert got[0]["id"] == first
        return got

    try:
        got = asyncio.run(exchange())
        assert [c["op"] for c in got] == ["approve", "kill"]
    finally:
        a.close()
        b.close()


def test_a_backup_carries_every_nodes_journal(db_path: Path, tmp_path: Path) -> None:
    a = open_store(db_path, node="a")
    b = open_store(db_path)  # the default node, beside a
    try:
        a.apply(a_session("s1"))
        b.apply(a_session("s2"))
        a.checkpoint()
        b.checkpoint()
        a.apply([session_open("s3")])  # committed to the journals only
        b.apply([session_open("s4"), statement_start("s4", 1)])
        made = backup(db_path, tmp_path / "copy.db")
        assert (made.records, made.journal) == (12, 3)
        assert sorted(p.name for p in made.journals) == ["copy.db.a.journal", "copy.db.journal"]
        copy = open_store(tmp_path / "copy.db", readonly=True)
        try:
            result = verify(copy)
            assert result.ok and result.pending == 3, result.problems
        finally:
            copy.close()
    finally:
        a.close()
        b.close()


def test_gatewatch_verify_names_each_nodes_chain(db_path: Path) -> None:
    from gatewatch.cli.records import verify_store

    a = open_store(db_path, node="a")
    b = open_store(db_path, node="b")
    a.apply(a_session("s1"))
    b.apply(a_session("s2", statements=1))
    a.close()
    b.close()
    reader = open_store(db_path, readonly=True)
    try:
        assert verify_store(reader, None) == (True, "ok: 2 audit chains of 10 records intact"
                                              " (node a: 6, node b: 4); 2 sessions match them")
    finally:
        reader.close()


def test_a_nodes_open_session_is_listed_however_many_started_since(db_path: Path) -> None:
    """The fleet's live sessions of other nodes came from the store's 2,000 newest: a session
    open on B for longer than A took to record 2,000 more vanished from every list and could
    not be killed through A."""
    a = open_store(db_path, node="a")
    b = open_store(db_path, node="b")
    try:
        b.apply([session_open("old-on-b", started_at=O.utc(T0 - 3600))])
        b.checkpoint()
        a.apply([op for i in range(2100) for op in (
            session_open(f"s{i:05d}", started_at=O.utc(T0 + i)),
            session_close(f"s{i:05d}"))])
        a.apply([session_open("open-on-a", started_at=O.utc(T0 + 5000))])
        a.checkpoint()
        assert [r["id"] for r in a.open_sessions(["a"])] == ["old-on-b"]
        assert [r["id"] for r in a.open_sessions()] == ["open-on-a", "old-on-b"]
        assert not [r for r in b.open_sessions(["a", "b"])]
    finally:
        a.close()
        b.close()
