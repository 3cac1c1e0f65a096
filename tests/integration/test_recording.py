"""Recording: invariant 1 (recorded before forwarded), fail closed, crash recovery, verify."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gatewatch.demo.pgcluster import free_port
from store.journal import JournalRecord
from store.ops import Op
from tests.conftest import ROOT, Gateway, Target, write_policy
from tests.integration.wire import Wire, first_error

pytestmark = pytest.mark.integration


def _running_on_target(target: Target, marker: str) -> bool:
    with psycopg.connect(target.superuser(), autocommit=True) as admin:
        row = admin.execute(
            "select count(*) from pg_stat_activity where query like %s and pid <>"
            " pg_backend_pid()", [f"%{marker}%"]).fetchone()
    return bool(row and row[0])


def test_statement_reaches_the_target_only_after_its_record_is_committed(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The statement's record is committed to the store and held there (the store's write does
    not return, so the recorder never says it is committed): the statement must not reach the
    target meanwhile. The recorder is compiled (its methods cannot be patched), so the hold is
    in the store's write, which runs in a thread of its own as with ``durability: full`` (the
    engine's loop runs on meanwhile)."""
    marker = "gw_marker_7f3a"
    recorder = gateway.engine.recorder
    store = gateway.engine.store
    assert recorder is not None and store is not None
    released = threading.Event()
    original = store.apply

    def held(ops: list[Op]) -> list[JournalRecord]:
        chained = original(ops)  # committed to the journal
        if any(marker in str(op.fields.get("text")) for op in ops):
            released.wait(30)
        return chained

    writer = ThreadPoolExecutor(1, "test-store")
    monkeypatch.setattr(store, "apply", held)
    monkeypatch.setattr(recorder, "_executor", writer)
    result: list[Any] = []
    try:
        with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
            worker = threading.Thread(target=lambda: result.append(
                conn.execute(f"select '{marker}' as m").fetchone()))
            worker.start()
            journal = gateway.work / "store.db.journal"
            deadline = time.monotonic() + 10
            while marker not in _committed_text(gateway, journal):
                assert time.monotonic() < deadline, "the statement's record was never committed"
                time.sleep(0.02)
            time.sleep(0.3)
            assert not _running_on_target(gateway.target, marker), "forwarded before the commit"
            assert not result
            released.set()
            worker.join(10)
    finally:
        released.set()
    assert result == [(marker,)]


def _committed_text(gateway: Gateway, journal: Path) -> str:
    text = journal.read_text() if journal.exists() else ""
    store = gateway.store()
    try:
        rows = store.conn.execute("select text from statements").fetchall()
    finally:
        store.close()
    return text + "\n".join(r[0] for r in rows)


def test_full_store_refuses_statements_and_loses_nothing(gateway: Gateway) -> None:
    store = gateway.engine.store
    assert store is not None

    # The database refuses a large write as a full one does: a trigger, seen by every
    # connection (the checkpoint process's too; a max_page_count would hold for one only).
    async def fill() -> None:
        store.writer.execute("CREATE TRIGGER store_full BEFORE INSERT ON statements"
                             " WHEN length(NEW.text) > 100000"
                             " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")

    async def unfill() -> None:
        store.writer.execute("DROP TRIGGER store_full")

    gateway.call(fill())
    big = "select 'kept' -- " + "x" * 200_000
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        conn.execute("create temp table probe (id int)")
        assert conn.execute(big).fetchone() == ("kept",)  # committed to the journal
        # the checkpoint into SQLite now fails (database or disk is full): until it has (a
        # fixed 0.3 s was not always enough on a loaded machine)
        deadline = time.monotonic() + 10
        while store.broken is None:
            assert time.monotonic() < deadline, "the checkpoint never failed"
            time.sleep(0.02)
        with pytest.raises(psycopg.OperationalError) as info:
            conn.execute("insert into probe values (1)")
        assert "could not record this statement, so it was not run" in str(info.value)
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn())
    assert "cannot record sessions right now" in str(info.value)
    gateway.call(unfill())
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    texts = gateway.wait_for(lambda s: [r[0] for r in s.conn.execute(
        "select text from statements where text like 'select ''kept''%'")])
    assert texts == [big]
    assert gateway.wait_for(lambda s: [r for r in s.sessions()
                                       if r["end_reason"] == "store unwritable"])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatewatch", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env or dict(os.environ))


def start_engine_process(policy: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            Wire(port, timeout=1).close()
            return proc
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _processes() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def crash(engine: subprocess.Popen[str]) -> None:
    """The machine's crash, as the engine sees it: the supervisor and every worker it runs
    SIGKILLed at once (a worker left alive a moment after its supervisor would still hold
    its port and its sessions)."""
    children = [pid for pid in _processes() if _parent(pid) == engine.pid]
    for pid in [engine.pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    engine.wait(10)
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in children):
        assert time.monotonic() < deadline, "the engine's workers outlived SIGKILL"
        time.sleep(0.05)


def test_engine_crash_marks_sessions_interrupted_and_keeps_records(
    pg_target: Target, tmp_path: Path,
) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    dsn = (f"host=127.0.0.1 port={port} dbname=shop user=alice "
           f"password={os.environ['GWTEST_ALICE_TOKEN']} sslmode=disable")
    engine = start_engine_process(policy, port)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("select 'before the crash'")
    crash(engine)  # no chance to checkpoint or close anything
    conn.close()
    engine = start_engine_process(policy, port)
    try:
        import json

        deadline = time.monotonic() + 15  # each worker replays the journal its node left
        while True:
            listed = run_cli("sessions", "--json", "-c", str(policy))
            assert listed.returncode == 0, listed.stderr
            sessions = json.loads(listed.stdout)
            # (listed open while the journal is replayed, then ended as interrupted)
            if ((sessions and all(s["status"] != "open" for s in sessions))
                    or time.monotonic() > deadline):
                break
            time.sleep(0.2)
        assert [s["status"] for s in sessions] == ["interrupted"]
        assert sessions[0]["end_reason"] == "engine restarted"
        shown = json.loads(run_cli("show", sessions[0]["id"][:6], "--json", "-c",
                                   str(policy)).stdout)
        assert [s["text"] for s in shown["statements"]] == ["select 'before the crash'"]
        verified = run_cli("verify", "-c", str(policy))
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.startswith("ok: audit chain of")
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0


def test_engine_stop_ends_live_sessions(pg_target: Target, tmp_path: Path) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    engine = start_engine_process(policy, port)
    wire = Wire(port)
    wire.login("alice", os.environ["GWTEST_ALICE_TOKEN"])
    engine.send_signal(signal.SIGTERM)
    err = first_error(wire)
    assert err["S"] == "FATAL" and err["C"] == "57P01"
    assert "shutting down" in err["M"]
    assert engine.wait(30) == 0
    sessions = run_cli("sessions", "-c", str(policy))
    assert "closed (engine stopped)" in sessions.stdout


def test_verify_detects_an_edited_statement(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        conn.execute("select 'evidence'")
    session = gateway.wait_for(lambda s: next((r for r in s.sessions() if r["ended_at"]),
                                              None))
    policy = str(gateway.work / "policies.yaml")
    assert run_cli("verify", "-c", policy).returncode == 0
    assert run_cli("verify", str(session["id"]), "-c", policy).returncode == 0
    db = sqlite3.connect(gateway.work / "store.db")
    db.execute("update statements set text = 'select ''nothing to see''' where text ="
               " 'select ''evidence'''")
    db.commit()
    db.close()
    result = run_cli("verify", "-c", policy)
    assert result.returncode == 1
    assert result.stderr.startswith("verification FAILED: statement 1 of session")
    assert "text differs" in result.stderr


def test_code_run_at_bind_is_recorded_first(gateway: Gateway) -> None:
    """Planning at Bind evaluates IMMUTABLE functions: the statement's record must exist
    even when the client never sends Execute (invariant 1)."""
    from engine.pg import codec

    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    wire.query("CREATE SEQUENCE pg_temp.hits; CREATE FUNCTION pg_temp.tick() RETURNS bigint"
               " LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN nextval('pg_temp.hits'); END $$")
    wire.send(codec.message(b"P", b"\x00SELECT pg_temp.tick()\x00\x00\x00")
              + codec.message(b"B", b"\x00\x00\x00\x00\x00\x00\x00\x00")
              + codec.message(b"S"))
    wire.until(b"Z")
    assert any(t == ord("D") for t, _ in wire.query("select last_value from pg_temp.hits"))
    wire.close()
    rows = gateway.wait_for(lambda s: [r for r in s.conn.execute(
        "select status, command from statements where text = 'SELECT pg_temp.tick()'")])
    assert rows == [("ok", "BIND")]
