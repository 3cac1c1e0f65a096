"""Bring up the demo and tear it down: a PostgreSQL target seeded with sample data, an SSH
target, an OpenID provider, TLS, tokens, and the engine with the example policies; then the TUI
as the approver, or (headless) one JSON line on stdout and a wait for a signal.

Each demo is a sandbox of its own, so that two run side by side on one checkout:

- ``/tmp/gatewatch-demo-XXXX/`` (0700, the engine's user): the policies file the engine runs
  (``policies.py``), the store and its journal, the control socket, the gateway's SSH host key,
  TLS, the target passwords (``*.password``) and ``operator.env`` (the approver's token, for
  ``gatewatch approvals`` from another terminal);
- ``…/gatewatch-demo-XXXX.pg/``: the throw-away cluster, its Unix socket in a 0700 directory
  and no password-less login over TCP;
- ``…/gatewatch-demo-XXXX.home/``: the SSH target's home, owned by the account its shells run
  as (``account.py``: ``gatewatch-demo`` when we are root), which can read none of the above.

The three go away on every way out: ``q`` in the TUI, SIGINT, SIGTERM and SIGHUP (the terminal
closed), also while the demo is still starting. Only SIGKILL leaves them behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import json
import os
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from engine.config import Config, load_config
from engine.engine import host_key_path
from gatewatch.demo.account import target_account
from gatewatch.demo.nodes import DemoNode
from gatewatch.demo.oidc import DemoOidcProvider
from gatewatch.demo.pgcluster import PgCluster, free_port
from gatewatch.demo.policies import DemoPolicies, PoliciesError, Sandbox, Target
from gatewatch.demo.sshtarget import DemoSshTarget
from gatewatch.demo.tls import self_signed

T = TypeVar("T")

DEMO_DB = "shop"
DEMO_ROLE = "gatewatch"
DEMO_USER = "alice"         # the identity the hints connect as
DEMO_APPROVER = "oncall"    # the identity the TUI decides approvals as
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_policies() -> Path:
    """The example policies.yaml at the repository root (next to the packages)."""
    return Path(__file__).resolve().parents[2] / "policies.yaml"


class _Shutdown:
    """What a signal does: while the demo starts, cancel the start (the exit stack then undoes
    what was done); once it runs, ``interrupt`` (end the wait, close the TUI); while it cleans
    up, nothing — a second Ctrl-C must not leave a server running half-stopped."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.signal: int | None = None
        self.interrupt: Callable[[], object] = task.cancel

    def signalled(self, signum: int) -> None:
        if self.signal is None:
            self.signal = signum
            self.interrupt()

    def running(self, stop: Callable[[], object]) -> None:
        """The demo is up: from now on a signal calls ``stop``. (Signal handlers run between
        steps of the event loop, so none is missed between the start and this call.)"""
        self.interrupt = stop


async def run_demo(policies: Path, *, headless: bool, store: str = "sqlite") -> int:
    """``store``: ``sqlite`` (one node, the default workers) or ``postgres`` (two nodes, one
    worker each, sharing a store in the demo's cluster)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    shutdown = _Shutdown(task)
    for sig in SIGNALS:
        loop.add_signal_handler(sig, shutdown.signalled, sig)
    try:
        async with contextlib.AsyncExitStack() as cleanup:
            try:
                info = await _bring_up(policies, cleanup, headless=headless, store=store)
            except asyncio.CancelledError:
                if shutdown.signal is None:
                    raise
                task.uncancel()
                _say("gatewatch demo: interrupted while starting; cleaning up.")
                return 128 + shutdown.signal
            if headless:
                stop = asyncio.Event()
                shutdown.running(stop.set)
                print(json.dumps(info), flush=True)
                await stop.wait()
                _say("stopping…")
            else:
                from gatewatch.demo.tui import run_tui

                await run_tui(info, shutdown.running)
            shutdown.running(_nothing)
        if not headless:
            _say(f"Gatewatch demo: stopped; {info['dir']} (store, control socket, targets, keys "
                 "and tokens) removed.")
        return 0
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


async def _bring_up(source: Path, cleanup: contextlib.AsyncExitStack, *, headless: bool,
                    store: str) -> dict[str, Any]:
    """Start everything, registering each piece's undoing before it starts."""
    load_config(source)     # a broken file fails here, with the loader's file:line: message
    policies = DemoPolicies(source)
    for name in (DEMO_USER, DEMO_APPROVER):
        if name not in policies.identities:
            raise PoliciesError(f"{source}: the demo needs an identity named {name}")
    pg_name, ssh_name = policies.first("postgres"), policies.first("ssh")
    account = await _blocking(target_account)

    work = Path(tempfile.mkdtemp(prefix="gatewatch-demo-"))     # 0700
    cleanup.callback(shutil.rmtree, work, ignore_errors=True)
    pg_base, home = _sibling(work, "pg", cleanup), _sibling(work, "home", cleanup)

    cluster = PgCluster(pg_base, trust_tcp=False)
    cleanup.push_async_callback(asyncio.to_thread, cluster.stop)
    target_password = secrets.token_urlsafe(24)
    await _blocking(lambda: _prepare_target(cluster, target_password))

    ssh_target = DemoSshTarget(home, run_as=account)
    cleanup.push_async_callback(ssh_target.stop)
    await ssh_target.start()

    idp = DemoOidcProvider()
    cleanup.push_async_callback(asyncio.to_thread, idp.stop)
    await _blocking(idp.start)

    known_hosts = work / "ssh_known_hosts"
    known_hosts.write_text(ssh_target.known_hosts_line() + "\n")
    tokens = {name: secrets.token_urlsafe(18) for name in policies.identities}
    config_path = work / "policies.yaml"
    sandbox = Sandbox(
        store=work / "gatewatch.db",
        control_socket=work / "control.sock",
        tokens=tokens,
        listen={name: f"127.0.0.1:{free_port()}" for name, _ in policies.connections},
        postgres=Target(cluster.host, cluster.port, DEMO_ROLE,
                        _secret(work / "postgres.password", target_password)),
        ssh=Target(ssh_target.host, ssh_target.port, ssh_target.user,
                   _secret(work / "ssh.password", ssh_target.password)),
        ssh_known_hosts=known_hosts,
        tls=self_signed(work / "tls"),
        oidc_issuer=idp.issuer,
        metrics_listen=f"127.0.0.1:{free_port()}",
    )
    log = None if headless else work / "engine.log"  # workers' stderr, under the TUI
    second: tuple[Config, DemoNode] | None = None
    if store == "postgres":
        url = await _blocking(lambda: _store_database(cluster, work))
        # one local base for the machine: each node's journal beside it, where the other node
        # finds it if this one is lost
        sandbox = dataclasses.replace(sandbox, store=work / "local.db", store_url=url,
                                      node="demo-a", workers=1)
        second_path = work / "policies-b.yaml"
        policies.write(second_path, dataclasses.replace(
            sandbox, node="demo-b",
            control_socket=work / "control-b.sock", metrics_listen=None,
            listen={name: f"127.0.0.1:{free_port()}" for name, _ in policies.connections}))
        second_config = load_config(second_path)
        second = (second_config, DemoNode(second_config, log))
    policies.write(config_path, sandbox)
    config = load_config(config_path)
    engine = DemoNode(config, log)
    cleanup.push_async_callback(engine.stop)
    await engine.start()
    nodes = [_node_info(config, engine)]
    if second is not None:
        _same_host_keys(config, second[0])  # one gateway to SSH clients, whichever node
        cleanup.push_async_callback(second[1].stop)
        await second[1].start()
        nodes.append(_node_info(*second))

    approver = tokens[DEMO_APPROVER]
    _secret(work / "operator.env",
            f"export GATEWATCH_CONFIG={shlex.quote(str(config_path))}\n"
            f"export GATEWATCH_TOKEN={shlex.quote(approver)}\n")
    if account is None:
        _say(f"gatewatch demo: not running as root, so the SSH target's shells run as you "
             f"({getpass.getuser()}) and can read this demo's files and memory; as root they "
             "run as an account of their own.")
    host, port = engine.listeners[pg_name]
    ssh_host, ssh_port = engine.listeners[ssh_name]
    return {
        "config": str(config_path),
        "store": config.store_shown(),
        # Each node of the demo (two with --store postgres): its control socket, its listeners.
        "nodes": nodes,
        "control": str(config.engine.control_socket),
        "dir": str(work),
        # What another terminal needs for `gatewatch sessions`, `approvals`, `approve`…
        "env": {"GATEWATCH_CONFIG": str(config_path), "GATEWATCH_TOKEN": approver},
        "postgres": {"host": host, "port": port, "dbname": DEMO_DB, "user": DEMO_USER,
                     "password": tokens[DEMO_USER]},
        "postgres_direct": {"host": cluster.host, "port": cluster.port, "dbname": DEMO_DB,
                            "user": DEMO_ROLE, "password": target_password},
        "ssh": {"host": ssh_host, "port": ssh_port, "user": DEMO_USER,
                "password": tokens[DEMO_USER], "host_key": _gateway_host_key(config, ssh_name)},
        "ssh_direct": {"host": ssh_target.host, "port": ssh_target.port,
                       "user": ssh_target.user, "password": ssh_target.password,
                       "host_key": ssh_target.known_hosts_line().split(" ", 1)[1],
                       # the OS account the target's shells and transfers run as
                       "runs_as": account.pw_name if account else getpass.getuser()},
        "approver": {"user": DEMO_APPROVER, "token": approver},
        # Every identity's token, made at start (the agent report-bot's among them).
        "tokens": tokens,
        # A client-credentials token from here, as the password of pg_user on the
        # postgres listener, opens a session as the agent.
        "oidc": idp.demo_info(),
        # Prometheus exposition (/healthz and /readyz beside it).
        "metrics": engine.metrics,
    }


STORE_ROLE = "gatewatch_store"


def _store_database(cluster: PgCluster, work: Path) -> str:
    """A database of the demo's cluster for the nodes' shared store; its URL (the password is
    in a libpq passfile in the sandbox, not in the policies file)."""
    password = secrets.token_urlsafe(24)
    cluster.create_role(STORE_ROLE, password)
    cluster.sql(f'CREATE DATABASE {STORE_ROLE} OWNER "{STORE_ROLE}";')
    passfile = _secret(work / "store.pgpass",
                       f"{cluster.host}:{cluster.port}:{STORE_ROLE}:{STORE_ROLE}:{password}\n")
    return (f"postgresql://{STORE_ROLE}@{cluster.host}:{cluster.port}/{STORE_ROLE}"
            f"?passfile={passfile}")


def _same_host_keys(first: Config, second: Config) -> None:
    """The second node presents the first node's SSH host key (clients pin one key)."""
    for conn in first.connections:
        other = second.connection(conn.name)
        if conn.kind != "ssh" or other is None:
            continue
        src, dst = host_key_path(first, conn), host_key_path(second, other)
        if src == dst:
            continue  # one file already (both nodes keep their keys beside one local base)
        for suffix in ("", ".pub"):
            source = src.with_name(src.name + suffix)
            _secret(dst.with_name(dst.name + suffix), source.read_text())


def _node_info(config: Config, node: DemoNode) -> dict[str, Any]:
    return {"node": config.node_name(), "workers": node.workers,
            "control": str(config.engine.control_socket),
            "listen": {name: f"{h}:{p}" for name, (h, p) in node.listeners.items()}}


def _prepare_target(cluster: PgCluster, password: str) -> None:
    cluster.start()
    cluster.create_role(DEMO_ROLE, password)
    cluster.sql(f'CREATE DATABASE {DEMO_DB} OWNER "{DEMO_ROLE}";')
    seed = resources.files("gatewatch.demo").joinpath("seed.sql").read_text()
    cluster.sql(f'SET ROLE "{DEMO_ROLE}";\n{seed}', dbname=DEMO_DB)


async def _blocking(step: Callable[[], T]) -> T:
    """Run a blocking step in a thread. A signal cancels the wait, not the thread: let the step
    finish first, so that the cleanup that follows sees all it did (a server it started)."""
    future = asyncio.get_running_loop().run_in_executor(None, step)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def _sibling(work: Path, suffix: str, cleanup: contextlib.AsyncExitStack) -> Path:
    """``<work>.<suffix>``, made here (0700, failing if it exists) and removed on the way out."""
    path = work.with_name(f"{work.name}.{suffix}")
    path.mkdir(mode=0o700)
    cleanup.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def _secret(path: Path, text: str) -> Path:
    """Write ``text`` to a new file only its owner reads."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _gateway_host_key(config: Config, connection: str) -> str:
    """The gateway's SSH host key as a known_hosts entry's "type base64" (to pin it)."""
    pub = config.engine.store.with_name(f"ssh_host_{connection}_ed25519_key.pub")
    return " ".join(pub.read_text().split()[:2])


def _say(line: str) -> None:
    """A line on stderr; the terminal may be gone (SIGHUP), which must not stop the cleanup."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


def _nothing() -> None:
    """A signal while the demo cleans up: the cleanup is already under way."""
