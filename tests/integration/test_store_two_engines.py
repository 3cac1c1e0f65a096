"""Two engines on one store (issue 15): the second is refused with exit status 2 and one line
naming the store and the engine that holds it; the first is not touched and goes on recording.
Read-only commands work beside it."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gatewatch.demo.pgcluster import free_port
from tests.conftest import ROOT, Target, write_policy
from tests.integration.test_recording import run_cli, start_engine_process

pytestmark = pytest.mark.integration


def store_state(work: Path) -> dict[str, object]:
    """What the store holds: its journal and lock files byte for byte, and every row of the
    database but the running engine's own heartbeat, which it writes while the second engine
    starts (the database's files change with it: a byte-for-byte comparison of the -wal
    failed when a heartbeat fell in between on a loaded machine)."""
    state: dict[str, object] = {
        p.name: p.read_bytes() for p in sorted(work.iterdir())
        if p.name.startswith("store.db") and not p.name.endswith(("-shm", "-wal"))
        and p.name != "store.db"}
    db = sqlite3.connect(f"file:{work / 'store.db'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            cur = db.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cur.description]
            rows = [tuple(v for n, v in zip(names, row, strict=True) if n != "heartbeat_at")
                    for row in cur]
            state[f"table {table}"] = sorted(rows, key=repr)
    finally:
        db.close()
    return state


def test_a_second_engine_is_refused_and_the_first_goes_on(
    pg_target: Target, tmp_path: Path,
) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    dsn = (f"host=127.0.0.1 port={port} dbname=shop user=alice "
           f"password={os.environ['GWTEST_ALICE_TOKEN']} sslmode=disable")
    first = start_engine_process(policy, port)
    try:
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("select 'before the second engine'")
        listed = run_cli("sessions", "--json", "-c", str(policy))
        assert [s["status"] for s in json.loads(listed.stdout)] == ["open"]
        before = store_state(tmp_path)

        second = subprocess.run([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert second.stdout == ""
        assert second.stderr.splitlines() == [
            f"gatewatch: the store {tmp_path / 'store.db'} is in use by another engine (process"
            f" {first.pid} on {os.uname().nodename}): stop that one first, or give this one a"
            " store of its own (engine.store)"]
        assert store_state(tmp_path) == before  # no recovery, no replay, no audit records

        conn.execute("select 'after the refusal'")  # the first goes on recording
        conn.close()
        listed = run_cli("sessions", "--json", "-c", str(policy))
        [session] = json.loads(listed.stdout)
        assert session["status"] != "interrupted"
        shown = json.loads(run_cli("show", session["id"], "--json", "-c", str(policy)).stdout)
        assert [s["text"] for s in shown["statements"]] == [
            "select 'before the second engine'", "select 'after the refusal'"]
        verified = run_cli("verify", "-c", str(policy))  # beside the running engine
        assert verified.returncode == 0, verified.stderr
        assert re.match(r"ok: (audit chain|\d+ audit chains) of", verified.stdout)  # per node
        exported = run_cli("export", session["id"], "--format", "jsonl", "-c", str(policy))
        assert exported.returncode == 0, exported.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    again = start_engine_process(policy, port)  # the lock went with the first engine
    again.send_signal(signal.SIGTERM)
    assert again.wait(30) == 0


def test_a_fresh_store_is_private(pg_target: Target, tmp_path: Path) -> None:
    """What `ls -l` of a fresh store shows (the README's operator section quotes it)."""
    work = tmp_path / "gw"
    work.mkdir()
    port = free_port()
    policy = write_policy(pg_target, work, shop_port=port)
    store = tmp_path / "state"
    policy.write_text(policy.read_text().replace(f"store: {work}/store.db",
                                                 f"store: {store}/gatewatch.db"))
    old = os.umask(0o022)
    try:
        engine = start_engine_process(policy, port)
    finally:
        os.umask(old)
    try:
        with psycopg.connect(f"host=127.0.0.1 port={port} dbname=shop user=alice password="
                             f"{os.environ['GWTEST_ALICE_TOKEN']} sslmode=disable") as conn:
            conn.execute("select 1")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in store.iterdir()}
        # the database and SQLite's files, and each node's journal and lock (a worker of the
        # engine is a node: gatewatch.db.<node>.journal)
        assert {"gatewatch.db", "gatewatch.db-wal", "gatewatch.db-shm"} <= modes.keys()
        assert any(name.endswith(".journal") for name in modes)
        assert any(name.endswith(".lock") for name in modes)
        assert all(name.startswith("gatewatch.db") for name in modes), modes
        assert set(modes.values()) == {0o600}, modes
        assert stat.S_IMODE(store.stat().st_mode) == 0o700
        print(subprocess.run(["ls", "-la", str(store)], capture_output=True, text=True).stdout)
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0


def test_an_engine_refuses_a_store_others_can_read(pg_target: Target, tmp_path: Path) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    engine = start_engine_process(policy, port)
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(30) == 0
    db = tmp_path / "store.db"
    db.chmod(0o644)
    refused = run_cli("engine", "-c", str(policy))
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"gatewatch: the store {db} is readable by other users (store.db is 0644): refusing"
        f" to start; run `chmod 600 {db}` (and consider what they may have read)"]
