"""The store under faults, with a real engine, PostgreSQL and psycopg (issue 15): SIGKILL under
load, a full file system, store files made unwritable or removed while the engine runs, a torn
journal. Whatever happens, nothing reaches the target unrecorded (invariant 1), nothing
committed is lost, and ``gatewatch verify`` tells the truth.

The full file system is a small tmpfs and the unwritable files are ext4's immutable flag
(``chattr +i``, which stops writes through descriptors already open, even root's): both need
root. Without it these tests skip with the reason; with GATEWATCH_REQUIRE_INTEGRATION=1 they
fail instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from engine.config import load_config
from gatewatch.demo.pgcluster import free_port
from store import open_store, reads
from tests.conftest import Gateway, Target, start_gateway, stop_gateway, write_policy
from tests.fullfs import cannot, fill, tmpfs
from tests.integration.test_recording import run_cli, start_engine_process

pytestmark = pytest.mark.integration


@pytest.fixture
def table(pg_target: Target) -> Iterator[str]:
    """A table in the target that only the gateway's statements write to."""
    name = f"faults_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(pg_target.superuser(), autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {name} (v int)")
        admin.execute(f"GRANT ALL ON {name} TO gw_scram")
    yield name
    with psycopg.connect(pg_target.superuser(), autocommit=True) as admin:
        admin.execute(f"DROP TABLE {name}")


def in_target(target: Target, table: str) -> set[int]:
    with psycopg.connect(target.superuser(), autocommit=True) as admin:
        return {v for (v,) in admin.execute(f"SELECT v FROM {table}")}


def recorded_values(policy: Path, table: str) -> set[int]:
    """The values of every INSERT INTO ``table`` the store recorded, whatever came of it: what
    ``gatewatch sessions`` and ``gatewatch show`` list, read here (a CLI process for each
    session cost ~0.4 s; ``gatewatch verify`` still runs as a process)."""
    values: set[int] = set()
    store = open_store(load_config(policy).store_location(), readonly=True)
    try:
        for session in store.sessions(10000):
            for statement in reads.session_statements(store, session["id"]):
                found = re.fullmatch(rf"insert into {table} values \((\d+)\)",
                                     statement["text"])
                if found:
                    values.add(int(found[1]))
    finally:
        store.close()
    return values


def checkpointed(gateway: Gateway, table: str, value: int) -> None:
    """Until the INSERT of ``value`` is in the store's database, out of the journal (a fixed
    0.2 s had been taken for it)."""
    text = f"insert into {table} values ({value})"
    gateway.wait_for(lambda s: s.conn.execute("select 1 from statements where text = ?",
                                              [text]).fetchone())


def verified(policy: Path) -> str:
    result = run_cli("verify", "-c", str(policy))
    assert result.returncode == 0, result.stderr
    assert re.match(r"ok: (audit chain|\d+ audit chains) of", result.stdout)  # per node
    return result.stdout


# --- SIGKILL under load ----------------------------------------------------------------------


def test_sigkill_under_load_loses_no_record(pg_target: Target, tmp_path: Path,
                                            table: str) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    dsn = (f"host=127.0.0.1 port={port} dbname=shop user=alice "
           f"password={os.environ['GWTEST_ALICE_TOKEN']} sslmode=disable")
    engine = start_engine_process(policy, port)
    stop = threading.Event()

    def client(n: int) -> None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(1_000_000):
                if stop.is_set():
                    return
                conn.execute(f"insert into {table} values ({n * 1_000_000 + i})")

    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in clients:
        thread.start()
    time.sleep(1)
    engine.send_signal(signal.SIGKILL)  # in the middle of it: no checkpoint, no close
    engine.wait(10)
    stop.set()
    for thread in clients:
        thread.join(30)
    ran = in_target(pg_target, table)
    assert len(ran) > 500, "the load never got going"
    engine = start_engine_process(policy, port)
    try:
        recorded = recorded_values(policy, table)
        assert ran <= recorded, f"{len(ran - recorded)} rows reached the target unrecorded"
        print(f"SIGKILL under load: {len(ran)} rows inserted by 8 clients, {len(recorded)}"
              " recorded")
        verified(policy)
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0


def checkpoint_processes(pid: int) -> set[int]:
    """The store's checkpoint processes among the descendants of ``pid``."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                for child in map(int, (task / "children").read_text().split()):
                    pending.append(child)
                    with contextlib.suppress(OSError):
                        if b"store.checkpointd" in Path(f"/proc/{child}/cmdline").read_bytes():
                            found.add(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie, reaped by nobody until init does, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_checkpoint_processes_end_with_a_killed_engine(pg_target: Target, tmp_path: Path,
                                                       table: str) -> None:
    """The checkpoint processes hold their nodes' locks: they end when the engine dies,
    however it dies, and the engine starts again on the same store with nothing lost."""
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    dsn = (f"host=127.0.0.1 port={port} dbname=shop user=alice "
           f"password={os.environ['GWTEST_ALICE_TOKEN']} sslmode=disable")
    engine = start_engine_process(policy, port)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"insert into {table} values (1)")
        deadline = time.monotonic() + 30
        while not (children := checkpoint_processes(engine.pid)):
            assert time.monotonic() < deadline, "no checkpoint process was started"
            time.sleep(0.1)
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children):
        assert time.monotonic() < deadline, "a checkpoint process outlived its engine"
        time.sleep(0.1)
    engine = start_engine_process(policy, port)
    try:
        assert recorded_values(policy, table) == {1}
        verified(policy)
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0


# --- a full file system ----------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, 0700, mounted for this test."""
    with tmpfs(tmp_path / "fs", "8m") as mount:
        yield mount


def refused_or_ran(gateway: Gateway, table: str, values: range) -> tuple[list[int], str]:
    """Insert ``values`` one by one until one is refused; returns those that were answered
    and the refusal."""
    answered: list[int] = []
    try:
        with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
            for v in values:
                conn.execute(f"insert into {table} values ({v})")
                answered.append(v)
    except psycopg.OperationalError as exc:
        return answered, f"{exc.sqlstate}: {exc}"
    return answered, ""


def test_a_full_file_system_refuses_statements_and_service_returns(
    pg_target: Target, small_fs: Path, table: str,
) -> None:
    gateway = start_gateway(pg_target, small_fs)
    policy = small_fs / "policies.yaml"
    try:
        answered = []
        with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            filler = fill(small_fs)
            with pytest.raises(psycopg.OperationalError) as refused:
                for v in range(2, 200):  # the journal's last page may hold a few more
                    conn.execute(f"insert into {table} values ({v})")
                    answered.append(v)
        assert refused.value.sqlstate == "58030"
        assert "could not record this statement, so it was not run" in str(refused.value)
        time.sleep(0.3)
        with pytest.raises(psycopg.OperationalError, match="cannot record sessions right now"):
            psycopg.connect(gateway.dsn())
        assert in_target(pg_target, table) == {1, *answered}  # nothing ran unrecorded
        filler.unlink()  # space again: service returns without a restart
        deadline = time.monotonic() + 10
        while True:
            again, refusal = refused_or_ran(gateway, table, range(1000, 1003))
            if not refusal:
                break
            assert time.monotonic() < deadline, refusal
            time.sleep(0.1)
        assert again == [1000, 1001, 1002]
        assert gateway.wait_for(lambda s: len(s.statements(s.sessions()[0]["id"])) == 3)
        assert in_target(pg_target, table) <= recorded_values(policy, table)
        verified(policy)
    finally:
        stop_gateway(gateway)
    assert in_target(pg_target, table) <= recorded_values(policy, table)
    verified(policy)


# --- store files made unwritable or removed while running ------------------------------------


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """ext4's immutable flag: writes fail even through descriptors already open."""
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True, check=False)
        cannot(f"chattr +i does not work here (needs root and ext4): {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_store_files_made_unwritable_refuse_statements_until_writable(
    pg_target: Target, tmp_path: Path, table: str,
) -> None:
    if shutil.which("chattr") is None:
        cannot("needs chattr (e2fsprogs) to make the store's files unwritable")
    gateway = start_gateway(pg_target, tmp_path)
    policy = tmp_path / "policies.yaml"
    files = [tmp_path / name for name in ("store.db", "store.db-wal", "store.db.journal")]
    try:
        with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            checkpointed(gateway, table, 1)
            with immutable(*files):
                with pytest.raises(psycopg.OperationalError) as refused:
                    conn.execute(f"insert into {table} values (2)")
                assert refused.value.sqlstate == "58030"
                assert in_target(pg_target, table) == {1}
                with pytest.raises(psycopg.OperationalError, match="cannot record sessions"):
                    psycopg.connect(gateway.dsn())
        again, refusal = refused_or_ran(gateway, table, range(3, 5))  # writable again
        assert (again, refusal) == ([3, 4], "")
        assert in_target(pg_target, table) == {1, 3, 4}
        gateway.wait_for(lambda s: len(s.sessions()) == 2)
        # (the last record reaches the file within the recorder's delay: waited for)
        gateway.wait_for(lambda s: recorded_values(policy, table) == {1, 3, 4})
        assert recorded_values(policy, table) == {1, 3, 4}  # 2 could not be recorded: not run
        verified(policy)
    finally:
        stop_gateway(gateway)


def test_a_store_removed_while_running_is_put_back_with_nothing_lost(
    pg_target: Target, tmp_path: Path, table: str,
) -> None:
    gateway = start_gateway(pg_target, tmp_path)
    policy = tmp_path / "policies.yaml"
    try:
        with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            checkpointed(gateway, table, 1)
            for name in ("store.db", "store.db-wal", "store.db-shm", "store.db.journal"):
                (tmp_path / name).unlink()
            conn.execute(f"insert into {table} values (2)")  # recorded: the journal is back
            conn.execute(f"insert into {table} values (3)")
        assert gateway.wait_for(lambda s: len(s.statements(s.sessions()[0]["id"])) == 3)
        assert (tmp_path / "store.db").stat().st_mode & 0o777 == 0o600
        assert recorded_values(policy, table) == {1, 2, 3}
        verified(policy)
    finally:
        stop_gateway(gateway)
    assert recorded_values(policy, table) == {1, 2, 3}
    verified(policy)


# --- a torn journal --------------------------------------------------------------------------


def test_a_torn_journal_is_kept_aside_and_the_engine_starts(
    pg_target: Target, tmp_path: Path, table: str,
) -> None:
    port = free_port()
    policy = write_policy(pg_target, tmp_path, shop_port=port)
    # one process, the default node: its journal is store.db.journal
    policy.write_text(policy.read_text().replace("engine:\n", "engine:\n  workers: 1\n", 1))
    dsn = (f"host=127.0.0.1 port={port} dbname=shop user=alice "
           f"password={os.environ['GWTEST_ALICE_TOKEN']} sslmode=disable")
    engine = start_engine_process(policy, port)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"insert into {table} values (1)")
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
    journal = tmp_path / "store.db.journal"
    torn = b"99\tstatement.start\tcafe\t1\t" + b"0" * 40
    with journal.open("ab") as f:  # a write the crash cut short
        f.write(torn)
    engine = start_engine_process(policy, port)
    try:
        assert recorded_values(policy, table) == {1}
        report = verified(policy)
        assert (f"note: {len(torn)} bytes of store.db.journal: a write cut short by a crash"
                in report)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"insert into {table} values (2)")
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0
    assert recorded_values(policy, table) == {1, 2}
