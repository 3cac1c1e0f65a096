"""``engine.workers: N``: N engine processes on the same listeners, and their supervisor.

One asyncio process uses one core; a gateway on a machine of several cores would leave the
others idle while clients wait. So with ``engine.workers`` above one, ``gatewatch engine`` is a
supervisor: it decides once what every worker must share, starts the workers
(``python -m engine.worker``), restarts one that dies, forwards SIGTERM and SIGHUP, and serves
the operator's control socket for all of them (``engine/fanout.py``).

What is decided once, here, and why:

- **The listening sockets.** For each connection, one socket per worker, bound to the same
  address with SO_REUSEPORT (the kernel spreads new connections over them); a port 0 is chosen
  once. The supervisor keeps them: a restarted worker takes over its predecessor's accept queue,
  and connections that arrived meanwhile wait in it rather than being refused.
- **The masking key.** Without ``engine.masking_key_env`` each process would draw its own, and
  one value would hash two ways depending on the worker a client reached.
- **The SSH host keys**, generated once before any worker reads them.

Each worker is a node of its own in the store (``<node>-w<i>``): its own journal and audit
chain, and a start-up that recovers only its own records, so a worker that starts (or restarts)
never marks a sibling's sessions interrupted or expires its approvals.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import Config
from engine.engine import host_key_path, recover_node
from engine.fanout import Fanout
from engine.masking.policy import masking_key
from engine.metrics_fanout import MetricsFanout
from engine.node import sibling_path, worker_node
from engine.ssh.hostkey import load_or_create_host_key
from engine.tasks import spawn
from store import StoreError, StoreLocked
from store.lock import StoreLock

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[1]  # where ``engine`` is importable from
READY_TIMEOUT = 120.0  # a worker replays its journal before it is ready
STOP_TIMEOUT = 30.0
ORPHAN_WAIT = 10.0  # how long a killed supervisor's workers may take to die  # then SIGKILL
RESTART_DELAY = (0.5, 30.0)  # the first and the longest wait before a restart


def _die_with_parent() -> None:
    """In the worker, before it runs: the kernel kills it when the supervisor ends, however the
    supervisor ends (SIGKILL included), as if the whole engine had been killed; no worker
    outlives its engine holding the store and the port (for the moment it takes to die: a
    client may still connect in that moment, and is dropped)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class WorkersError(OSError):
    """The workers could not be started; one line for the operator."""


class _Process:
    """A worker process, started with ``subprocess`` and followed from asyncio: its exit and its
    stdout lines are handed to the loop by threads (the same on uvloop and asyncio)."""

    def __init__(self, popen: subprocess.Popen[bytes], on_line: Callable[[bytes], None]) -> None:
        self.popen = popen
        loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[int] = loop.create_future()

        def settle(code: int) -> None:
            if not self._ended.done():
                self._ended.set_result(code)

        def waiter() -> None:
            code = popen.wait()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, code)

        def reader() -> None:
            assert popen.stdout is not None
            for line in popen.stdout:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(on_line, line)

        threading.Thread(target=reader, name=f"worker-{popen.pid}-out", daemon=True).start()
        threading.Thread(target=waiter, name=f"worker-{popen.pid}-wait", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self._ended.result() if self._ended.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    def send_signal(self, sig: int) -> None:
        if not self._ended.done():
            self.popen.send_signal(sig)

    def tell(self, line: bytes) -> None:
        """A line on the worker's stdin (a few bytes: the pipe never fills)."""
        assert self.popen.stdin is not None
        with contextlib.suppress(OSError):
            self.popen.stdin.write(line)
            self.popen.stdin.flush()


@dataclass
class Worker:
    index: int
    node: str
    control: Path
    proc: _Process | None = None
    started: float = 0.0
    restarts: int = 0
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    failure: tuple[str, str] | None = None  # ("store" or "os", message): why it did not start
    metrics_port: int | None = None  # where the worker serves its metrics (loopback)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def listening_sockets(config: Config, count: int) -> dict[str, list[socket.socket]]:
    """``count`` sockets per connection, each bound with SO_REUSEPORT to its address (port 0:
    one port, chosen by the first bind). They do not listen yet: each worker makes its own
    listen when it is ready (asyncio's server does), so that a connection is never queued
    for a worker still replaying its journal; a socket then listens until the supervisor
    closes it, across restarts of its worker."""
    out: dict[str, list[socket.socket]] = {}
    try:
        for conn in config.connections:
            family = socket.getaddrinfo(conn.listen_host, conn.listen_port,
                                        type=socket.SOCK_STREAM,
                                        flags=socket.AI_PASSIVE)[0][0]
            port = conn.listen_port
            socks = out.setdefault(conn.name, [])
            for _ in range(count):
                sock = socket.socket(family, socket.SOCK_STREAM)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((conn.listen_host, port))
                sock.setblocking(False)  # bound only: a worker listens once it is ready
                sock.set_inheritable(True)
                port = sock.getsockname()[1]
    except OSError as exc:
        for socks in out.values():
            for sock in socks:
                sock.close()
        raise WorkersError(f"cannot listen for the workers: {exc}") from exc
    return out


class Supervisor:
    def __init__(self, config: Config, count: int, log: Path | None = None) -> None:
        """``log``: a file the workers' stderr is appended to (by default they share the
        supervisor's stderr)."""
        self.config = config
        self.count = count
        self.log = log
        node = config.node_name()
        control = config.engine.control_socket
        self.workers = [Worker(i, worker_node(node, i), sibling_path(control, i, "control"))
                        for i in range(count)]
        self.cancel_paths = [sibling_path(control, i, "cancel") for i in range(count)]
        self.sockets: dict[str, list[socket.socket]] = {}
        self.key = b""
        self.fanout = Fanout(control, [(w.node, w.control) for w in self.workers])
        self.metrics = (MetricsFanout(config.engine.metrics.listen_host,
                                      config.engine.metrics.listen_port, self._metrics_ports)
                        if config.engine.metrics is not None else None)
        self.listeners: dict[str, tuple[str, int]] = {}
        self._lock: StoreLock | None = None
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def _check_locks(self) -> None:
        """Refuse, with the store's own message, when an engine runs as one of the workers'
        nodes: before any socket is bound, since a second engine's sockets would join the
        first's on the same ports (SO_REUSEPORT) and take some of its clients. A worker of a
        supervisor that was just killed takes a moment to notice and die: its lock is waited
        for a few seconds."""
        if self.config.engine.store_url is not None:
            return  # the PostgreSQL store refuses a second writer of a node when it opens
        deadline = time.monotonic() + ORPHAN_WAIT
        for worker in self.workers:
            while True:
                try:
                    StoreLock.acquire(self.config.engine.store, worker.node).release()
                    break
                except StoreLocked:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
                except OSError:
                    return  # no store directory yet: the worker makes it (and says what fails)

    async def start(self) -> None:
        # First what a lone engine does first, under the engine's own node name (which no
        # worker writes): open the store — a second engine is refused here, with the store's
        # own message, before it touches anything — and recover what a previous run left
        # (a lone engine's sessions, or its journal), then hold that node's lock.
        await recover_node(self.config, self.config.node_name())
        if self.config.engine.store_url is None:
            self._lock = StoreLock.acquire(self.config.engine.store, self.config.node_name())
        try:
            await self._check_locks()
            await self.fanout.start()  # it fails when another engine serves this socket
        except BaseException:
            self._release()
            raise
        try:
            self.key = masking_key(self.config.engine.masking_key_env)
            for conn in self.config.connections:
                if conn.kind == "ssh":
                    load_or_create_host_key(host_key_path(self.config, conn))
            self.sockets = listening_sockets(self.config, self.count)
            for name, socks in self.sockets.items():
                self.listeners[name] = socks[0].getsockname()[:2]
            for worker in self.workers:
                self._spawn(worker)
            # Every worker recovers its own records before any listens: once the port takes
            # connections, what the previous run left open is marked as a lone engine marks it.
            await self._all(lambda w: w.recovered, "did not recover its records")
            for worker in self.workers:
                self._listen(worker)
            await self._all(lambda w: w.ready, "did not start")
            if self.metrics is not None:
                await self.metrics.start()
        except BaseException:
            await self.stop()
            raise
        for name, (host, port) in self.listeners.items():
            log.info("connection %s listening on %s:%d (%d workers)", name, host, port,
                     self.count)
        self._watchers = [spawn(self._watch(w), name=f"worker-{w.index}-watch")
                          for w in self.workers]

    def _spawn(self, worker: Worker) -> None:
        fds = {name: socks[worker.index].fileno() for name, socks in self.sockets.items()}
        setup = {
            "config": str(self.config.path), "node": worker.node, "index": worker.index,
            "count": self.count, "masking_key": self.key.hex(), "sockets": fds,
            "cancel_paths": [str(p) for p in self.cancel_paths],
            "control_socket": str(worker.control), "log_level": self.config.engine.log_level,
            "nodes": [w.node for w in self.workers],
        }
        worker.ready, worker.recovered = asyncio.Event(), asyncio.Event()
        worker.started = time.monotonic()
        stderr = (os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                  if self.log is not None else None)
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "engine.worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=stderr, pass_fds=tuple(fds.values()),
                cwd=_ROOT, preexec_fn=_die_with_parent,
                # A process group of its own: a terminal's Ctrl-C or hang-up is the
                # supervisor's to forward. Not a session of its own: with the kernel's
                # autogroup scheduling each session shares the CPU as one, and workers in
                # sessions of their own took CPU from the targets and clients beside them.
                process_group=0)
        finally:
            if stderr is not None:
                os.close(stderr)  # the worker has its own copy
        worker.proc = _Process(popen, lambda line: self._state(worker, line))
        worker.proc.tell(json.dumps(setup).encode() + b"\n")

    @staticmethod
    def _state(worker: Worker, line: bytes) -> None:
        """What the worker says on its stdout: ``recovered``, then ``ready``; or why it could
        not start (``failed store|os MESSAGE``)."""
        word, _, rest = line.decode(errors="replace").strip().partition(" ")
        if word == "recovered":
            worker.recovered.set()
        elif word == "ready":
            worker.metrics_port = int(rest) if rest.strip().isdigit() else None
            worker.ready.set()
        elif word == "failed":
            kind, _, message = rest.partition(" ")
            worker.failure = (kind, message)

    @staticmethod
    def _listen(worker: Worker) -> None:
        """Let the worker listen (it waits for this line once it has recovered)."""
        if worker.proc is not None:
            worker.proc.tell(b"listen\n")

    async def _all(self, state: Callable[[Worker], asyncio.Event], failed: str) -> None:
        """Every worker reaches ``state``, or the start fails with the first that ended."""
        async with asyncio.timeout(READY_TIMEOUT):
            for worker in self.workers:
                assert worker.proc is not None
                reached = asyncio.ensure_future(state(worker).wait())
                ended = asyncio.ensure_future(worker.proc.wait())
                await asyncio.wait({reached, ended}, return_when=asyncio.FIRST_COMPLETED)
                reached.cancel()
                if not state(worker).is_set():
                    await ended
                    await asyncio.sleep(0.1)  # its last words, read by its reader thread
                    if worker.failure is not None:  # as a lone engine would have said it
                        kind, message = worker.failure
                        raise StoreError(message) if kind == "store" else WorkersError(message)
                    raise WorkersError(f"worker {worker.index} ({worker.node}) {failed} "
                                       f"(exit status {worker.proc.returncode}; see its log)")
                ended.cancel()

    async def _watch(self, worker: Worker) -> None:
        """Restart the worker when it ends while the engine runs (after a pause that grows
        while it keeps dying at once)."""
        delay = RESTART_DELAY[0]
        while not self._stopping:
            assert worker.proc is not None
            status = await worker.proc.wait()
            if self._stopping:
                return
            lived = time.monotonic() - worker.started
            delay = RESTART_DELAY[0] if lived > 60 else min(delay * 2, RESTART_DELAY[1])
            log.error("worker %d (%s) ended (status %s) after %.0f s; restarting in %.1f s",
                      worker.index, worker.node, status, lived, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            worker.restarts += 1
            try:
                self._spawn(worker)
                await self._restarted(worker)
            except OSError as exc:
                log.error("worker %d could not be restarted: %s", worker.index, exc)

    async def _restarted(self, worker: Worker) -> None:
        """A restarted worker listens as soon as it has recovered its own records."""
        assert worker.proc is not None
        reached = asyncio.ensure_future(worker.recovered.wait())
        ended = asyncio.ensure_future(worker.proc.wait())
        await asyncio.wait({reached, ended}, return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
        ended.cancel()
        if worker.recovered.is_set():
            self._listen(worker)

    def signal_workers(self, sig: int) -> None:
        for worker in self.workers:
            if worker.proc is not None and worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(sig)  # (a worker that just ended: nothing to do)

    def _metrics_ports(self) -> list[int | None]:
        """Each worker's metrics port; None for one that is not running and ready."""
        return [w.metrics_port if w.ready.is_set() and w.proc is not None
                and w.proc.returncode is None else None for w in self.workers]

    async def stop(self) -> None:
        self._stopping = True
        if self.metrics is not None:
            await self.metrics.stop()
        for task in self._watchers:
            task.cancel()
        await self.fanout.stop()
        self.signal_workers(signal.SIGTERM)
        procs = [w.proc for w in self.workers if w.proc is not None]
        if procs:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in procs], timeout=STOP_TIMEOUT)
            if pending:
                log.error("%d workers did not stop within %.0f s: killed", len(pending),
                          STOP_TIMEOUT)
                self.signal_workers(signal.SIGKILL)
                await asyncio.wait(pending)
        for socks in self.sockets.values():
            for sock in socks:
                sock.close()
        self.sockets.clear()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


async def supervise(config: Config) -> int:
    """Run ``engine.workers`` engines until SIGINT/SIGTERM (forwarded to them); SIGHUP makes
    each read the policies file again."""
    supervisor = Supervisor(config, config.worker_count())
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stop = asyncio.Event()
    starting = True

    def stop_signal() -> None:
        if starting and not stop.is_set():
            main.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_signal)
    loop.add_signal_handler(signal.SIGHUP, supervisor.signal_workers, signal.SIGHUP)
    try:
        try:
            await supervisor.start()
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            main.uncancel()
            log.info("stopped while starting")
            return 0
        starting = False
        log.info("engine ready: %d workers (node %s, store %s)", supervisor.count,
                 config.node_name(), config.store_shown())
        await stop.wait()
        log.info("stopping: ending live sessions in every worker")
        await supervisor.stop()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


__all__ = ["Supervisor", "WorkersError", "listening_sockets", "supervise"]
