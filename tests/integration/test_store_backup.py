"""Backing up a store while the engine records, and restoring it, as the README tells an
operator to: `gatewatch backup DEST`, then the copy put in place of a lost store, verified,
and an engine started on it."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import threading
from pathlib import Path

import psycopg
import pytest

from engine.config import load_config
from gatewatch.demo.pgcluster import free_port
from store import open_store, reads
from tests.conftest import Target, write_policy
from tests.integration.test_recording import run_cli, start_engine_process

pytestmark = pytest.mark.integration


def statement_texts(policy: Path) -> list[str]:
    """The statements of every session ``gatewatch sessions`` and ``show`` list, read here (a
    CLI process for each session cost ~0.4 s; backup and verify still run as processes)."""
    store = open_store(load_config(policy).store_location(), readonly=True)
    try:
        return [s["text"] for session in store.sessions(1000)
                for s in reads.session_statements(store, session["id"])]
    finally:
        store.close()


def test_backup_while_recording_then_restore(pg_target: Target, tmp_path: Path) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    dsn = (f"host=127.0.0.1 port={port} dbname=shop user=alice "
           f"password={os.environ['GWTEST_ALICE_TOKEN']} sslmode=disable")
    engine = start_engine_process(policy, port)
    backups = tmp_path / "backups"
    backups.mkdir()
    dest = backups / "gatewatch.db"
    stop = threading.Event()

    def load() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                conn.execute(f"select 'during the backup {n}'")

    busy = threading.Thread(target=load)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("select 'before the backup'")
        busy.start()
        made = run_cli("backup", str(dest), "-c", str(policy))
        stop.set()
        busy.join(30)
        assert made.returncode == 0, made.stderr
        lines = made.stdout.splitlines()
        assert lines[0].startswith(f"backed up {tmp_path / 'store.db'} to {dest}: ")
        assert lines[-1].startswith("ok: the copy's audit chain of ")
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600
        refused = run_cli("backup", str(dest), "-c", str(policy))
        assert (refused.returncode, refused.stderr) == (
            2, f"gatewatch: {dest} exists: give the backup a new name\n")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("select 'after the backup'")
    finally:
        stop.set()
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0
    recorded = statement_texts(policy)
    assert "select 'after the backup'" in recorded

    # The store is lost; restore it from the backup as the README says.
    for lost in tmp_path.glob("store.db*"):
        if not lost.name.endswith(".lock"):
            lost.unlink()
    shutil.copy(dest, tmp_path / "store.db")
    (tmp_path / "store.db").chmod(0o600)
    if (backups / "gatewatch.db.journal").exists():
        shutil.copy(backups / "gatewatch.db.journal", tmp_path / "store.db.journal")
        (tmp_path / "store.db.journal").chmod(0o600)
    checked = run_cli("verify", "-c", str(policy))
    assert checked.returncode == 0, checked.stderr
    engine = start_engine_process(policy, port)
    try:
        restored = statement_texts(policy)
        assert "select 'before the backup'" in restored
        assert "select 'after the backup'" not in restored  # what came after is not in it
        during = [t for t in restored if t.startswith("select 'during the backup")]
        before = [t for t in recorded if t.startswith("select 'during the backup")]
        assert during == before[:len(during)]  # what was recorded up to the backup
        checked = run_cli("verify", "-c", str(policy))
        assert checked.returncode == 0, checked.stderr
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0
