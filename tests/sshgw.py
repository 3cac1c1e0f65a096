"""A Gatewatch engine with SSH connections in front of a throw-away OpenSSH sshd.

The OpenSSH client reaches the gateway with the identity's token as the password, supplied
through ``SSH_ASKPASS`` (``SSH_ASKPASS_REQUIRE=force``), as a person's ssh would.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.config import load_config
from engine.engine import Engine
from gatewatch.demo.pgcluster import free_port
from store import SqliteStore, open_store
from tests.enginethread import run_engine
from tests.sshd import SshdTarget, known_hosts_line, make_client_key

T = TypeVar("T")

POLICY = """\
version: 1
engine:
  store: {work}/store.db
  control_socket: {work}/control.sock
  startup_timeout: 5s
identities:
  - name: alice
    groups: [engineering]
    token_env: GWSSH_ALICE_TOKEN
    ssh_keys: ["{alice_key}"]
  - name: bob
    groups: [marketing]
    token_env: GWSSH_BOB_TOKEN
  - name: oncall
    groups: [operators]
    token_env: GWSSH_ONCALL_TOKEN
guardrails:
  fallback: block
  review_timeout: {review_timeout}
  approvers: {{groups: [operators]}}
rules:
  - name: no-recursive-rm-of-system-paths
    action: block
    match: {{commands: [RM RECURSIVE], paths: ["/", "/etc", "/etc/*", "/usr", "/usr/*",
                                                "/var", "/var/*", "/home", "/root"]}}
    message: Ask for a reviewed change instead.
  - name: no-destruction
    action: block
    match: {{commands: [MKFS, DD TO DEVICE, POWER, DOWNLOAD TO SHELL, DECODE TO SHELL,
                        CHMOD 777 RECURSIVE, FIREWALL FLUSH]}}
  - name: review-kubectl-delete
    action: review
    match: {{commands: [KUBECTL DELETE]}}
  - name: review-marked
    action: review
    match: {{regex: "needs-review"}}
  - name: no-forbidden-word
    action: block
    match: {{regex: "forbidden-word"}}
  # Inline interpreter code is allowed here (the example policy reviews it), so that tests can
  # start a shell through an interpreter and see its lines judged.
  - name: interpreters-allowed-in-tests
    action: allow
    match: {{commands: [INTERPRETER CODE]}}
masking:
  - name: personal-data
    detect: [email, payment_card, aws_secret_key, private_key, secret_assignment,
             url_credentials]
    strategy: partial
    keep_last: 4
    connections: [web]
connections:
  - name: web
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    ssh:
      forward: [{{to: 127.0.0.1/32, ports: [{forward_port}]}}]
      max_channels: 5
      login_attempts: 3
    allow: {{groups: [engineering, operators]}}
  - name: web_strict
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    ssh: {{interactive: strict, forward: [{{to: 127.0.0.1/32, ports: [{forward_port}]}}]}}
    allow: {{groups: [engineering, operators]}}
  - name: web_exec_only
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    ssh: {{shell: false}}
    allow: {{groups: [engineering]}}
  - name: web_wrong_host_key
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {work}/wrong_known_hosts}}
    allow: {{groups: [engineering]}}
  - name: web_jit
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    access: {{approval: true, grant: 1m}}
    allow: {{groups: [engineering]}}
  - name: web_down
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {dead_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}, connect_timeout: 3s}}
    allow: {{groups: [engineering]}}
"""

# Strict terminal mode with the example policy's command rules, protecting decoys under the
# target's scratch home ({home}/decoy*) as the example protects system paths: what a test
# tries to destroy is a decoy, so a bug that let it through would harm nothing.
STRICT_POLICY = """\
version: 1
engine:
  store: {work}/store.db
  control_socket: {work}/control.sock
  startup_timeout: 5s
identities:
  - name: alice
    groups: [engineering]
    token_env: GWSSH_ALICE_TOKEN
    ssh_keys: ["{alice_key}"]
  - name: oncall
    groups: [operators]
    token_env: GWSSH_ONCALL_TOKEN
  - name: bob
    groups: [marketing]
    token_env: GWSSH_BOB_TOKEN
guardrails:
  fallback: block
  review_timeout: {review_timeout}
  approvers: {{groups: [operators]}}
rules:
  - name: no-deletes-of-decoys
    action: block
    match:
      commands: [RM, RM RECURSIVE, RM FORCE, RM NO PRESERVE ROOT, FIND DELETE, RSYNC DELETE,
                 TAR REMOVE FILES, CHMOD RECURSIVE, CHMOD 777, CHOWN RECURSIVE]
      paths: ["/", "/etc", "/etc/*", "{home}/decoy*", "{home}/decoy*/*"]
  - name: no-disks-or-power
    action: block
    match: {{commands: [MKFS, DD TO DEVICE, WRITE TO DEVICE, POWER, FORK BOMB]}}
  - name: no-code-piped-into-a-shell
    action: block
    match: {{commands: [DOWNLOAD TO SHELL, DECODE TO SHELL, NETWORK REDIRECT]}}
  - name: no-wide-open-permissions-or-firewall
    action: block
    match: {{commands: [CHMOD 777 RECURSIVE, FIREWALL FLUSH, HISTORY OFF]}}
  - name: no-rebinding-keys
    action: block
    match: {{commands: [KEY BINDING]}}
  - name: review-kubectl-delete
    action: review
    match: {{commands: [KUBECTL DELETE]}}
  - name: review-code-the-gateway-cannot-read
    action: review
    match: {{commands: [INTERPRETER CODE, SCRIPT FILE, EVAL, COMMAND IN OPTION]}}
connections:
  - name: web
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    ssh: {{interactive: strict}}
    allow: {{groups: [engineering, operators]}}
  - name: web_lenient
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    ssh: {{interactive: lenient}}
    allow: {{groups: [engineering, operators]}}
"""

TOKENS = {name: secrets.token_urlsafe(12) for name in ("alice", "bob", "oncall")}


@dataclass
class SshGateway:
    engine: Engine
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    work: Path
    sshd: SshdTarget
    alice_key: Path
    forward_port: int
    tokens: dict[str, str] = field(default_factory=lambda: dict(TOKENS))

    def port(self, connection: str = "web") -> int:
        return self.engine.listeners[connection][1]

    def host_key_line(self, connection: str = "web") -> str:
        pub = (self.work / f"ssh_host_{connection}_ed25519_key.pub").read_text()
        return known_hosts_line("127.0.0.1", self.port(connection), pub)

    def client_options(self, connection: str = "web", *, key: bool = False) -> list[str]:
        known = self.work / f"known_hosts_{connection}"
        known.write_text(self.host_key_line(connection) + "\n")
        auth = (["-i", str(self.alice_key), "-o", "IdentitiesOnly=yes",
                 "-o", "PreferredAuthentications=publickey"] if key else
                ["-o", "PubkeyAuthentication=no",
                 "-o", "PreferredAuthentications=password,keyboard-interactive"])
        return ["-F", "/dev/null", "-o", f"UserKnownHostsFile={known}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "LogLevel=ERROR", "-o", "NumberOfPasswordPrompts=1", *auth]

    def ssh_argv(self, *command: str, user: str = "alice", connection: str = "web",
                 options: tuple[str, ...] = (), key: bool = False) -> list[str]:
        return ["ssh", "-p", str(self.port(connection)), *self.client_options(connection, key=key),
                *options, f"{user}@127.0.0.1", *command]

    def env(self, user: str = "alice", token: str | None = None) -> dict[str, str]:
        """The environment that makes OpenSSH's client type the token itself."""
        askpass = self.work / "askpass.sh"
        if not askpass.exists():
            askpass.write_text('#!/bin/sh\nprintf "%s\\n" "$GWSSH_TOKEN"\n')
            askpass.chmod(askpass.stat().st_mode | stat.S_IXUSR)
        return {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
                "DISPLAY": "gatewatch-test", "GWSSH_TOKEN": token or self.tokens[user]}

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def store(self) -> SqliteStore:
        return open_store(self.work / "store.db", readonly=True)

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        store = self.store()
        try:
            return list(store.db.query(sql, list(args)))
        finally:
            store.close()


def start_ssh_gateway(sshd: SshdTarget, work: Path, *, forward_port: int = 0,
                      review_timeout: str = "1m", policy: str = POLICY) -> SshGateway:
    work.mkdir(mode=0o700, parents=True, exist_ok=True)  # the store lives here: 0700
    work.chmod(0o700)  # the store refuses a directory others can read
    alice_key = work / "alice_key"
    alice_pub = make_client_key(alice_key)
    wrong = work / "wrong_known_hosts"
    wrong_key = work / "wrong_host_key"
    wrong.write_text(known_hosts_line(sshd.host, sshd.port, make_client_key(wrong_key)) + "\n")
    text = policy.format(
        work=work, home=sshd.home, alice_key=alice_pub, review_timeout=review_timeout,
        sshd_port=sshd.port,
        sshd_user=sshd.user, client_key=sshd.client_key, known_hosts=sshd.known_hosts,
        forward_port=forward_port or free_port(), dead_port=free_port())
    (work / "policies.yaml").write_text(text)
    for name, token in TOKENS.items():
        os.environ[f"GWSSH_{name.upper()}_TOKEN"] = token
    engine, loop, thread = run_engine(load_config(work / "policies.yaml"))
    return SshGateway(engine, loop, thread, work, sshd, alice_key, forward_port)


def stop_ssh_gateway(gw: SshGateway) -> None:
    if gw.thread.is_alive():
        asyncio.run_coroutine_threadsafe(gw.engine.stop(), gw.loop).result(30)
        gw.loop.call_soon_threadsafe(gw.loop.stop)
        gw.thread.join(30)
    gw.loop.close()
