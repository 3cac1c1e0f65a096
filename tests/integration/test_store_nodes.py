"""Several processes write one SQLite store at once (issue 17), each as a node with its own
lock, journal and chain, checkpointing into the shared file through SQLite's locking: verify
passes over what they wrote together, and a node killed with SIGKILL in the middle of its
writes loses no record it acknowledged, whether it comes back itself or another node finds
it lost and takes over the journal it left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from store import open_store, verify
from store import ops as O
from store import records as R
from store.errors import StoreLocked
from store.sqlite import journal_path
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

# A node that opens sessions and runs statements as an engine's recorder would (a commit per
# batch, a checkpoint every few batches), printing the last sequence number of each batch once
# apply() returned: what it acknowledged (a front end would now forward the statement).
WRITER = r"""
import sys
from pathlib import Path
from store import open_store
from tests.store.sample import session_open, statement_start, statement_end, session_close

path, node, sessions = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = open_store(path, node=node)
print("open", flush=True)
n = 0
while sessions == 0 or n < sessions:
    n += 1
    sid = f"{node}-{n}"
    batches = [[session_open(sid)]]
    for k in range(1, 6):
        batches.append([statement_start(sid, k, f"SELECT {k}"), statement_end(sid, k)])
    batches.append([session_close(sid)])
    for batch in batches:
        seq = store.apply(batch)[-1].seq
        print(seq, flush=True)
    if n % 3 == 0:
        store.checkpoint()
store.close()
print("closed", flush=True)
"""


def start_writer(path: Path, node: str, sessions: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), node, str(sessions)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def acknowledged(out: IO[str], until: int | None = None) -> int:
    """Read a writer's lines; returns the last sequence number it acknowledged (stops once
    it passed ``until``, or at the end of its output)."""
    last = 0
    for line in out:
        if line.strip().isdigit():
            last = int(line)
            if until is not None and last >= until:
                break
    return last


def test_two_processes_write_one_store_and_it_verifies(tmp_path: Path) -> None:
    path = tmp_path / "state" / "gatewatch.db"
    open_store(path, node="setup").close()  # the directory and schema, once
    writers = {node: start_writer(path, node, 40) for node in ("a", "b")}
    lasts = {}
    for node, proc in writers.items():
        assert proc.stdout is not None
        lasts[node] = acknowledged(proc.stdout)
        assert proc.wait(60) == 0
    reader = open_store(path, readonly=True)
    try:
        result = verify(reader)
        assert result.ok, result.problems
        assert result.chains == {"a": 40 * 12, "b": 40 * 12} == lasts  # 12 records a session
        assert len(reader.sessions(limit=1000)) == 80
        assert {n["name"]: bool(n["stopped_at"]) for n in reader.nodes()} == {
            "a": True, "b": True, "setup": True}
    finally:
        reader.close()
    for name in [p.name for p in path.parent.iterdir()]:
        assert (path.parent / name).stat().st_mode & 0o077 == 0, name
    assert path.parent.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("who", ["itself", "another node"])
def test_a_node_killed_mid_write_loses_nothing(tmp_path: Path, who: str) -> None:
    path = tmp_path / "state" / "gatewatch.db"
    open_store(path, node="setup").close()
    other = start_writer(path, "b", 30)  # writes the same store all along
    doomed = start_writer(path, "a", 0)
    assert doomed.stdout is not None
    acked = acknowledged(doomed.stdout, until=305)  # inside a session
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(10)
    acked = max(acked, acknowledged(doomed.stdout))  # what it said before it died
    assert journal_path(path, "a").exists()
    if who == "itself":
        store = open_store(path, node="a")  # replays its journal on start
        now = O.utc(time.time())
        records: list[R.Record] = [R.SessionClose(sid, ended_at=now, status="interrupted",
                                                  end_reason="engine restarted")
                   for sid in store.interrupted_sessions()]  # as the engine's recovery does
    else:
        store = open_store(path, node="c")
        assert "a" in store.lost_nodes(0)  # (b too while it runs: it sends no heartbeat)
        ended = store.end_lost_node("a", 0)  # its open session ends 'node lost', in c's chain
        assert ended is not None
        records = ended
        assert not journal_path(path, "a").exists()
    store.apply([r.op() for r in records])  # a killed mid-session leaves one open, or none
    store.checkpoint()
    try:
        assert [s for s in store.sessions(limit=1000) if s["status"] == "open"] == []
        assert store.audit_head("a")[0] >= acked  # every record it acknowledged is stored
        assert other.stdout is not None
        acknowledged(other.stdout)
        assert other.wait(60) == 0
        result = verify(store)
        assert result.ok, result.problems
        assert result.chains["b"] == 30 * 12
    finally:
        store.close()


def test_nodes_starting_together_create_one_store(tmp_path: Path) -> None:
    """No store yet: both create the directory and file, and migrate the schema once (each
    migration reads the version inside its own write transaction)."""
    path = tmp_path / "state" / "gatewatch.db"
    writers = [start_writer(path, node, 5) for node in ("a", "b", "c")]
    for proc in writers:
        assert proc.stdout is not None
        assert acknowledged(proc.stdout) == 5 * 12
        assert proc.wait(60) == 0
    reader = open_store(path, readonly=True)
    try:
        result = verify(reader)
        assert result.ok, result.problems
        assert result.chains == {"a": 60, "b": 60, "c": 60}
    finally:
        reader.close()


def test_a_node_name_is_held_by_one_process(tmp_path: Path) -> None:
    path = tmp_path / "state" / "gatewatch.db"
    holder = start_writer(path, "a", 0)
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreLocked, match=f"as node a \\(process {holder.pid} on "):
            open_store(path, node="a")
        open_store(path, node="b").close()
    finally:
        holder.kill()
        holder.wait(10)
    open_store(path, node="a").close()  # the kernel let go of it with the process
