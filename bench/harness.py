"""Shared set-up for benchmarks: a throw-away target, a policies file, an engine process."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gatewatch.demo.pgcluster import PgCluster, free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Setup:
    cluster: PgCluster
    work: Path
    target_password: str
    token: str
    gateway_port: int

    def direct_dsn(self) -> str:
        return (f"host=127.0.0.1 port={self.cluster.port} dbname=bench user=bench "
                f"password={self.target_password} sslmode=disable")

    def gateway_dsn(self) -> str:
        return (f"host=127.0.0.1 port={self.gateway_port} dbname=bench user=bencher "
                f"password={self.token} sslmode=disable")


POLICY = """\
version: 1
engine:
  store: {store}
  control_socket: {control}
  durability: {durability}
  log_level: WARNING
identities:
  - name: bencher
    groups: [bench]
    token_env: BENCH_TOKEN
{guardrails}
{masking}
connections:
  - name: bench
    kind: postgres
    listen: 127.0.0.1:{port}
    upstream:
      host: 127.0.0.1
      port: {pg_port}
      user: bench
      password_env: BENCH_PG_PASSWORD
      sslmode: disable
    allow:
      groups: [bench]
"""


@contextlib.contextmanager
def target() -> Iterator[Setup]:
    # A benchmark stopped with SIGTERM (timeout, Ctrl-C from a wrapper) still removes its
    # throw-away cluster: turn the signal into SystemExit so that the finally below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="gatewatch-bench-"))
    cluster = PgCluster(work / "pg")
    cluster.start()
    try:
        password = secrets.token_urlsafe(16)
        cluster.create_role("bench", password)
        cluster.sql('CREATE DATABASE bench OWNER bench;')
        yield Setup(cluster, work, password, secrets.token_urlsafe(16), free_port())
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def example_guardrails() -> str:
    """The guardrails and rules of the repository's policies.yaml, as shipped."""
    text = (ROOT / "policies.yaml").read_text()
    start = text.index("\nguardrails:\n") + 1
    end = text.index("\n# Masking", start)
    return text[start:end]


def example_masking() -> str:
    """The masking rules of the repository's policies.yaml, as shipped."""
    text = (ROOT / "policies.yaml").read_text()
    return text[text.index("\nmasking:\n") + 1:]


@contextlib.contextmanager
def engine(setup: Setup, durability: str = "normal", *, guardrails: bool = False,
           masking: bool = False, port: int | None = None, root: Path = ROOT,
           workers: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """An engine process; ``root``: the checkout it runs from (another one to compare);
    ``workers``: ``engine.workers`` (None: the default, one per core)."""
    name = (f"{durability}{'-rules' if guardrails else ''}{'-masking' if masking else ''}"
            f"{'' if root == ROOT else '-' + root.name}")
    port = port or setup.gateway_port
    policy = setup.work / f"policies-{name}.yaml"
    private = setup.work / f"engine-{name}"  # the store's own 0700 directory (the work
    private.mkdir(mode=0o700, exist_ok=True)  # directory is open to the cluster's user)
    policy.write_text(POLICY.format(
        store=private / "store.db", control=private / "control.sock",
        durability=durability, port=port, pg_port=setup.cluster.port,
        guardrails=example_guardrails() if guardrails else "",
        masking=example_masking() if masking else "",
    ).replace("  log_level: WARNING\n",
              "  log_level: WARNING\n" + (f"  workers: {workers}\n" if workers else "")))
    env = {**os.environ, "BENCH_TOKEN": setup.token, "BENCH_PG_PASSWORD": setup.target_password}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            env=env, cwd=root)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """(the main thread's, the other threads', the live child processes') user + system CPU
    time of a process so far. The engine's other threads are its store's workers (fdatasync,
    the checkpoint's), its child the store's checkpoint process (``store/checkpointer.py``)."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # a thread that ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    # Threads that ended count in the process's own total only.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    total = (int(fields[11]) + int(fields[12])) / tick
    return main, max(total - main, other), children_cpu(pid)


def children_cpu(pid: int) -> float:
    """User + system seconds of the live descendants of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                for child in (task / "children").read_text().split():
                    fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
                    total += (int(fields[11]) + int(fields[12])) / tick
                    pending.append(int(child))
        except OSError:
            continue
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


__all__ = ["Setup", "cpu_seconds", "engine", "free_port", "rss_kib", "target"]
