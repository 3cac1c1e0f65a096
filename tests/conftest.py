"""Shared fixtures: a throw-away PostgreSQL target and a Gatewatch engine in front of it.

Integration tests need PostgreSQL's server binaries and client tools. Without them they skip
with the reason; with GATEWATCH_REQUIRE_INTEGRATION=1 (CI sets it) they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import settings as hypothesis_settings

from engine.config import load_config
from engine.engine import Engine
from gatewatch.demo.pgcluster import PgCluster, free_port, missing_binaries
from gatewatch.demo.tls import self_signed
from store import SqliteStore, open_store
from tests.enginethread import run_engine
from tests.sshd import SshdTarget, missing_sshd, start_sshd
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

# Property tests explore new examples on every run where a developer runs them; where every
# test must pass for a change to land (CI sets GATEWATCH_REQUIRE_INTEGRATION), they run the
# same examples each time: a failure there is the change's, never a draw's.
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("GATEWATCH_REQUIRE_INTEGRATION") == "1":
    hypothesis_settings.load_profile("ci")

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
REQUIRE = os.environ.get("GATEWATCH_REQUIRE_INTEGRATION") == "1"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many processes run the suite (pyproject's ``-n auto --dist loadfile``): two, as CI's
    two cores, when a directory or several files are asked for; none for one file, which
    ``loadfile`` keeps in one process anyway, nor with ``-s`` (a worker's output is not
    shown). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` or ``-n N`` choose otherwise."""
    if config.option.capture == "no":
        return 0
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist reads it
    paths = {Path(str(arg).split("::", 1)[0]) for arg in config.args}
    if len(paths) <= 1 and all(path.suffix == ".py" for path in paths):
        return 0
    return min(2, len(os.sched_getaffinity(0)))


def need(*tools: str) -> None:
    """Skip (or, in CI, fail) when a real component the test drives is not installed."""
    missing = [t for t in tools if shutil.which(t) is None]
    if "postgres" in tools:
        missing = [t for t in missing if t not in ("postgres", "initdb", "pg_ctl")]
        missing += missing_binaries()
    if missing:
        reason = f"needs {', '.join(sorted(set(missing)))} (install postgresql / openssh)"
        if REQUIRE:
            pytest.fail(f"GATEWATCH_REQUIRE_INTEGRATION=1 but {reason}")
        pytest.skip(reason)


@dataclass
class Target:
    cluster: PgCluster
    passwords: dict[str, str]
    tls: tuple[Path, Path]

    def direct(self, user: str = "gw_scram", dbname: str = "shop") -> str:
        pw = self.passwords.get(user, "")
        return (f"host=127.0.0.1 port={self.cluster.port} dbname={dbname} user={user} "
                f"password={pw} sslmode=disable")

    def superuser(self, dbname: str = "shop") -> str:
        return self.cluster.dsn(dbname)


def running_on_target(target: Target, sql: str, timeout: float = 10) -> None:
    """Until ``sql`` runs on the target (an active backend in pg_stat_activity): where a test
    cancels or drops a statement in flight, instead of a fixed wait for it to get there."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(target.superuser(), autocommit=True) as admin:
        while not admin.execute("SELECT 1 FROM pg_stat_activity WHERE state = 'active'"
                                " AND query = %s", [sql]).fetchone():
            assert time.monotonic() < deadline, f"{sql!r} never ran on the target"
            time.sleep(0.02)


@pytest.fixture(scope="session")
def pg_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    need("postgres", "psql")
    tls = self_signed(tmp_path_factory.mktemp("target-tls"), "target")
    cluster = PgCluster(tls=tls)
    cluster.start()
    try:
        passwords = {"gw_scram": secrets.token_urlsafe(12), "gw_md5": secrets.token_urlsafe(12)}
        cluster.create_role("gw_scram", passwords["gw_scram"])
        cluster.create_role("gw_md5", passwords["gw_md5"], md5=True)
        cluster.create_role("gw_trust", None)
        cluster.sql('CREATE DATABASE shop OWNER gw_scram;')
        seed = resources.files("gatewatch.demo").joinpath("seed.sql").read_text()
        cluster.sql(
            f"SET ROLE gw_scram;\n{seed}\nRESET ROLE;\n"
            "GRANT ALL ON SCHEMA public TO gw_md5, gw_trust;\n"
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO gw_md5, gw_trust;\n"
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO gw_md5, gw_trust;\n",
            dbname="shop",
        )
        yield Target(cluster, passwords, tls)
    finally:
        cluster.stop()


POLICY = """\
version: 1
engine:
  store: {work}/store.db
  control_socket: {control}
  startup_timeout: {startup_timeout}
  max_message_size: {max_message_size}
identities:
  - name: alice
    groups: [engineering]
    token_env: GWTEST_ALICE_TOKEN
  - name: bob
    groups: [marketing]
    token_env: GWTEST_BOB_TOKEN
  - name: robot
    kind: agent
    groups: [agents]
    token_sha256: {robot_digest}
  - name: oncall
    groups: [operators]
    token_env: GWTEST_ONCALL_TOKEN
  - name: second
    groups: [operators, engineering]
    token_env: GWTEST_SECOND_TOKEN
guardrails:
  fallback: block
  review_timeout: {review_timeout}
  min_approvals: {min_approvals}
  approvers: {{groups: [operators]}}
  webhook: {webhook}
{rules}
masking:
  - name: personal-data
    detect: [email, payment_card, iban, us_ssn, phone, jwt, aws_access_key, aws_secret_key,
             private_key, secret_assignment, url_credentials]
    strategy: partial
    keep_last: 4
    connections: [shop_masked]
  - name: national-ids
    columns: [national_id]
    strategy: hash
    connections: [shop_masked]
  - name: order-status
    columns: [public.orders.status]
    strategy: redact
    connections: [shop_masked]
  - name: auditors-see-everything
    exempt: true
    identities: [second]
    connections: [shop_masked]
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:{shop_port}
    tls: {{cert: {cert}, key: {key}}}
    upstream: {{host: 127.0.0.1, port: {pg_port}, user: gw_scram,
               password_env: GWTEST_SCRAM_PASSWORD, sslmode: disable}}
    databases: [shop, postgres]
    allow: {{groups: [engineering, agents, operators]}}
  - name: shop_masked
    kind: postgres
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {pg_port}, user: gw_scram,
               password_env: GWTEST_SCRAM_PASSWORD, sslmode: disable}}
    allow: {{groups: [engineering, operators]}}
  - name: shop_md5
    kind: postgres
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {pg_port}, user: gw_md5,
               password_file: {work}/md5-password, sslmode: disable, auth: {md5_auth}}}
    allow: {{identities: [alice]}}
  - name: shop_plain
    kind: postgres
    listen: 127.0.0.1:0
    tls: optional
    upstream: {{host: 127.0.0.1, port: {pg_port}, user: gw_trust, sslmode: disable}}
    allow: {{identities: [alice]}}
  - name: shop_trust
    kind: postgres
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {pg_port}, user: gw_trust, sslmode: disable}}
    allow: {{identities: [alice]}}
  - name: shop_tls
    kind: postgres
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {pg_port}, user: gw_scram,
               password_env: GWTEST_SCRAM_PASSWORD, sslmode: require}}
    allow: {{identities: [alice]}}
  - name: shop_jit
    kind: postgres
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {pg_port}, user: gw_scram,
               password_env: GWTEST_SCRAM_PASSWORD, sslmode: disable}}
    access: {{approval: true, grant: 1m}}
    allow: {{identities: [alice]}}
  - name: nowhere
    kind: postgres
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {dead_port}, user: gw_scram,
               password_env: GWTEST_SCRAM_PASSWORD, sslmode: disable, connect_timeout: 3s}}
    allow: {{identities: [alice]}}
"""

TOKENS = {name: secrets.token_urlsafe(12)
          for name in ("alice", "bob", "robot", "oncall", "second")}


@dataclass
class Gateway:
    """A running engine in a background thread (uvloop, as in production)."""

    engine: Engine
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    work: Path
    target: Target
    tokens: dict[str, str] = field(default_factory=lambda: dict(TOKENS))

    def port(self, connection: str = "shop") -> int:
        return self.engine.listeners[connection][1]

    def dsn(self, connection: str = "shop", user: str = "alice", dbname: str = "shop",
            **extra: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port(connection)), "dbname": dbname,
                 "user": user, "password": self.tokens.get(user, "x"), "sslmode": "disable",
                 **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def env(self, user: str = "alice") -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.tokens[user]}

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def store(self) -> SqliteStore:
        return open_store(self.work / "store.db", readonly=True)

    def wait_for(self, check: Callable[[SqliteStore], T], timeout: float = 10) -> T:
        """Poll the store (records reach SQLite within the recorder's checkpoint delay)."""
        deadline = time.monotonic() + timeout
        last: T | None = None
        while time.monotonic() < deadline:
            if (self.work / "store.db").exists():
                store = self.store()
                try:
                    last = check(store)
                finally:
                    store.close()
                if last:
                    return last
            time.sleep(0.05)
        raise AssertionError(f"store never satisfied the check (last: {last!r})")

    def sessions(self) -> list[dict[str, Any]]:
        store = self.store()
        try:
            return store.sessions()
        finally:
            store.close()


def write_policy(target: Target, work: Path, **settings: Any) -> Path:
    """A policies file for ``target`` in ``work``; the tokens go into the environment."""
    import hashlib

    cert, key = self_signed(work / "tls", "gateway")
    (work / "md5-password").write_text(target.passwords["gw_md5"] + "\n")
    values = {"startup_timeout": "5s", "max_message_size": "16MiB", "shop_port": 0,
              "control": work / "control.sock", "review_timeout": "5m", "min_approvals": 1,
              "rules": "rules: []", "webhook": '""', "md5_auth": "[md5]", **settings}
    text = POLICY.format(
        work=work, cert=cert, key=key, pg_port=target.cluster.port, dead_port=free_port(),
        robot_digest=hashlib.sha256(TOKENS["robot"].encode()).hexdigest(), **values,
    )
    (work / "policies.yaml").write_text(text)
    os.environ["GWTEST_ALICE_TOKEN"] = TOKENS["alice"]
    os.environ["GWTEST_BOB_TOKEN"] = TOKENS["bob"]
    os.environ["GWTEST_ONCALL_TOKEN"] = TOKENS["oncall"]
    os.environ["GWTEST_SECOND_TOKEN"] = TOKENS["second"]
    os.environ["GWTEST_SCRAM_PASSWORD"] = target.passwords["gw_scram"]
    return work / "policies.yaml"


def start_gateway(target: Target, work: Path, **settings: Any) -> Gateway:
    engine, loop, thread = run_engine(load_config(write_policy(target, work, **settings)))
    return Gateway(engine, loop, thread, work, target)


def stop_gateway(gw: Gateway) -> None:
    if gw.thread.is_alive():
        asyncio.run_coroutine_threadsafe(gw.engine.stop(), gw.loop).result(30)
        gw.loop.call_soon_threadsafe(gw.loop.stop)
        gw.thread.join(30)
    gw.loop.close()


@pytest.fixture
def gateway(pg_target: Target, tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(pg_target, tmp_path)
    try:
        yield gw
    finally:
        stop_gateway(gw)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdTarget]:
    """A throw-away OpenSSH sshd, one per test module."""
    missing = missing_sshd()
    if missing:
        reason = f"needs {', '.join(sorted(missing))} (install openssh-server / rsync)"
        if REQUIRE:
            pytest.fail(f"GATEWATCH_REQUIRE_INTEGRATION=1 but {reason}")
        pytest.skip(reason)
    target = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="module")
def gw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    """A gateway with SSH connections in front of ``sshd``, one per test module."""
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"))
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


@pytest.fixture
def guarded(pg_target: Target, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway with the example policies.yaml's guardrail rules."""
    from tests.integration.guarded import start_guarded

    gw = start_guarded(pg_target, tmp_path)
    try:
        yield gw
    finally:
        stop_gateway(gw)
