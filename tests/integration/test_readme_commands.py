"""Every ``gatewatch`` command README.md shows, run as written against a running demo: a README
command that fails as written fails the suite (issue 16: ``policy explain`` as shown, and
``gatewatch sessions`` in the checkout, did).

The commands are read from README.md itself: each code span (and each line of a fenced block)
that starts with ``gatewatch`` (or with ``NAME=value`` words and then ``gatewatch``). A table's
syntax line stands for two commands, without its ``[optional]`` parts and with all of them, one
for each ``a|b`` alternative; a placeholder (``SESSION``, ``ID``, ``FILE``, ``<config>``…) becomes
a real one of the demo's — a live session for ``kill``, a held statement for ``approve``, an
SSH session for an asciicast. ``policies.yaml`` stands for the installation's file, which here
is the demo's, except in ``policy check`` and ``engine``, which take the checkout's own. The
two setup commands at the top (``bash .ci/setup && …``) are out of scope. A command that needs a
terminal or a person is skipped, each with its reason (``SKIP``).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gatewatch.cli.control_client import ControlClient
from gatewatch.demo.pgcluster import free_port
from store import open_store
from tests.conftest import ROOT, need
from tests.integration.test_demo import CLEAN_ENV, Demo, _ssh, base, connect

pytestmark = pytest.mark.integration

__all__ = ["base"]  # the demo's TMPDIR fixture, shared with test_demo

README = ROOT / "README.md"

# What cannot run here, by the command's first words, and why.
SKIP = {
    "demo": "opens the TUI: needs a terminal (walked in tmux; --headless is what this module "
            "runs)",
    "tui": "a full-screen UI: needs a terminal (tests/tui drive it with Pilot; a wrong token "
           "is tested without one in tests/tui/test_pilot.py)",
    "replay": "a full-screen UI: needs a terminal (tests/tui/test_replay.py)",
    "login": "the device flow waits for a person to open the URL and enter the code "
             "(tests/gatewatch exercise it against a provider)",
    "connect": "starts an interactive psql or ssh: needs a terminal and a token that "
               "gatewatch login cached",
}


def readme_commands(text: str) -> list[str]:
    """The command lines README.md shows, in order, each once (a code span may wrap)."""
    found: list[str] = []
    prose: list[str] = []
    fenced = False
    pieces: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            pieces.append(line.strip())
        else:
            prose.append(line)
    for paragraph in "\n".join(prose).split("\n\n"):
        pieces += [" ".join(p.split()) for p in re.findall(r"`([^`]+)`", paragraph)]
    for piece in pieces:
        head = list(itertools.dropwhile(lambda w: "=" in w or w.startswith("<")
                                        or w.endswith(">"), piece.split()))
        if head[:1] == ["gatewatch"] and len(head) > 1 and piece not in found:
            found.append(piece)
    return found


def expand(syntax: str) -> list[str]:
    """A syntax line as the commands it stands for: without its [optional] parts, with all of
    them; one per alternative of ``a\\|b``."""
    syntax = syntax.replace("\\|", "|")
    forms = {re.sub(r"\s*\[[^\]]*\]", "", syntax).strip(),
             re.sub(r"\[([^\]]*)\]", r"\1", syntax).strip()}
    commands: list[str] = []
    for form in sorted(forms, key=len):
        alternatives = re.search(r"(\S+\|\S+)", form)
        variants = ([form.replace(alternatives.group(1), a)
                     for a in alternatives.group(1).split("|")] if alternatives else [form])
        commands += [v for v in variants if v not in commands]
    return commands


def test_the_extraction_sees_the_commands() -> None:
    """A guard on the parser above: README's table and prose commands are all found."""
    commands = readme_commands(README.read_text())
    assert "gatewatch policy check policies.yaml" in commands
    assert any(c.startswith("gatewatch kill SESSION --lock-out") for c in commands)
    assert any(c.startswith("GATEWATCH_TOKEN=<operator token> gatewatch tui") for c in commands)
    assert expand("gatewatch export SESSION --format asciicast\\|jsonl [-o FILE]") == [
        "gatewatch export SESSION --format asciicast", "gatewatch export SESSION --format jsonl",
        "gatewatch export SESSION --format asciicast -o FILE",
        "gatewatch export SESSION --format jsonl -o FILE"]
    assert len(commands) >= 30


COMMANDS = list(dict.fromkeys(
    c for syntax in readme_commands(README.read_text()) for c in expand(syntax)))


class Sandbox:
    """The demo, and the things README's placeholders stand for, made when a command asks.

    What the sandbox itself looks up while making them (sessions, requests, lock-outs) it asks
    the demo's store and control socket here, as the CLI would: a CLI process for each look
    cost ~0.4 s to start. The commands under test run as written, each in its own process."""

    def __init__(self, info: dict[str, Any], work: Path) -> None:
        self.info = info
        self.work = work
        self.env = {**CLEAN_ENV, **info["env"]}
        self._held: list[threading.Thread] = []
        self._open: list[psycopg.Connection[Any]] = []
        self._count = itertools.count()
        self._made: dict[str, str] = {}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gatewatch", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def sessions(self) -> list[dict[str, Any]]:
        """What ``gatewatch sessions --json`` lists (it prints the store's rows as they are)."""
        store = open_store(Path(self.info["store"]), readonly=True)
        try:
            return store.sessions(1000)
        finally:
            store.close()

    def control(self) -> ControlClient:
        return ControlClient(Path(self.info["control"]), self.info["env"]["GATEWATCH_TOKEN"])

    def wait(self, what: str, find: Any) -> Any:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = find()
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {what} within 20 s")

    def recorded_session(self) -> str:
        """A closed PostgreSQL session with a statement (one for all: the commands that
        name it only read it)."""
        if "recorded" not in self._made:
            self._made["recorded"] = self._recorded_session()
        return self._made["recorded"]

    def ssh_session(self) -> str:
        """A closed SSH exec session (``ssh host cmd``: no terminal), one for all."""
        if "ssh" not in self._made:
            self._made["ssh"] = self._ssh_session()
        return self._made["ssh"]

    def _recorded_session(self) -> str:
        name = f"readme-{next(self._count)}"
        with connect(self.info["postgres"], sslmode="require", application_name=name) as conn:
            conn.execute("select count(*) from customers")
        return str(self.wait("recorded session", lambda: next(
            (s["id"] for s in self.sessions()
             if s["application_name"] == name and s["ended_at"]), None)))

    def _ssh_session(self) -> str:
        before = {s["id"] for s in self.sessions()}
        done = _ssh(self.info["ssh"], self.work, "echo readme-$((6*7))")
        assert "readme-42" in done.stdout, done.stderr
        return str(self.wait("SSH session", lambda: next(
            (s["id"] for s in self.sessions() if s["id"] not in before
             and s.get("protocol") == "ssh" and s["ended_at"]), None)))

    def live_session(self) -> str:
        """An open PostgreSQL session of report-bot's, to kill (lock-outs lifted first, so
        that report-bot may connect)."""
        self.lift_lockouts()
        name = f"readme-live-{next(self._count)}"
        entry = {**self.info["postgres"], "user": "report-bot",
                 "password": self.info["tokens"]["report-bot"]}
        conn = connect(entry, sslmode="require", application_name=name, autocommit=True)
        conn.execute("select 1")
        self._open.append(conn)
        return str(self.wait("live session", lambda: next(
            (s["id"] for s in self.sessions()
             if s["application_name"] == name and not s["ended_at"]), None)))

    def lift_lockouts(self) -> None:
        with self.control() as client:
            for lockout in client.call("lockouts")["in_force"]:
                client.call("unlock", lockout=lockout["id"], reason=None)

    def lockout(self) -> str:
        session = self.live_session()
        with self.control() as client:
            killed = client.call("kill", session=session, reason=None, lock_out="30m",
                                 scope="connection")
        return str(killed["lockout"]["id"])

    def held_request(self) -> str:
        """A statement of alice's held for approval (the demo's approver decides it)."""
        def held() -> None:
            with connect(self.info["postgres"], sslmode="require") as conn:
                try:
                    conn.execute("DELETE FROM orders WHERE false OR true")
                except psycopg.Error:
                    pass  # denied, or the demo went away: the command's exit status tells
        thread = threading.Thread(target=held, daemon=True)
        thread.start()
        self._held.append(thread)

        def pending() -> str | None:
            with self.control() as client:
                return next((r["id"] for r in client.call("approvals")["pending"]), None)
        return str(self.wait("held statement", pending))

    def close(self) -> None:
        for conn in self._open:
            conn.close()
        for thread in self._held:
            thread.join(30)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    need("postgres", "psql", "ssh")
    where = Path(tempfile.mkdtemp(prefix="gatewatch-readme-test-"))
    where.chmod(0o755)
    work = tmp_path_factory.mktemp("readme")
    demo = Demo(where, work / "demo.stderr")
    try:
        box = Sandbox(demo.info(), work)
        try:
            yield box
        finally:
            box.close()
        assert demo.stop(signal.SIGTERM) == 0
    finally:
        demo.kill()
        subprocess.run(["rm", "-rf", str(where)], check=False)


def substitute(command: str, box: Sandbox) -> tuple[list[str], dict[str, str]]:
    """The command with its placeholders made real, and the environment to run it in."""
    work = box.work
    words = shlex.split(command.replace("<operator token>", "TOKEN")
                        .replace("<config>", "CONFIG").replace('"…"', '"SQL"'))
    env = dict(box.env)
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "gatewatch"
    args = words[1:]
    verb = " ".join(args[:2]) if args[0] == "policy" else args[0]
    own_file = verb in ("policy check", "engine")
    made: dict[str, str] = {}

    def real(word: str, before: str | None) -> str:
        if word == "TOKEN":
            return str(box.info["env"]["GATEWATCH_TOKEN"])
        if word == "CONFIG" or (word == "policies.yaml" and not own_file):
            return str(box.info["config"])
        if word == "FILE":
            if own_file:
                return str(ROOT / "policies.yaml")
            if before == "-o":
                return str(work / f"out-{next(box._count)}")
            if before == "--export":  # an export of the session the command names, or any
                exported = work / f"export-{next(box._count)}.jsonl"
                session = made.get("SESSION") or box.recorded_session()
                assert box.cli("export", session, "--format", "jsonl", "-o",
                               str(exported)).returncode == 0
                return str(exported)
        if word == "SESSION" or (word == "[SESSION]"):
            made["SESSION"] = (box.live_session() if verb == "kill"
                               else box.ssh_session() if "asciicast" in args
                               else box.recorded_session())
            return made["SESSION"]
        if word == "ID":
            return box.lockout() if verb == "unlock" else box.held_request()
        if word == "DEST" or word.startswith("/backups/"):
            return str(work / f"backup-{next(box._count)}" / Path(word).name)
        if word == "NAME" and before == "--connection":
            return "shop"
        if word == "U":
            return "alice"
        if word == "SQL":
            return "DELETE FROM orders"
        if word == "TEXT":
            return "from the README test"
        if word == "N" and before == "--channel":  # the channel the session's output is on
            cast = box.cli("export", made["SESSION"], "--format", "asciicast")
            return str(json.loads(cast.stdout.splitlines()[0])["gatewatch"]["channel"])
        if word == "N":
            return "10"
        return word

    out: list[str] = []
    for i, word in enumerate(args):
        out.append(real(word, args[i - 1] if i else None))
    for value in out:  # a backup's directory exists; its file does not
        if value.startswith(str(work / "backup-")):
            Path(value).parent.mkdir(exist_ok=True)
    if env.get("GATEWATCH_STORE", "").startswith("/backups/"):
        env["GATEWATCH_STORE"] = str(work / "backup-restored" / "gatewatch.db")
    return out, env


def _engine_of_the_checkout(args: list[str], env: dict[str, str], work: Path) -> None:
    """``gatewatch engine -c policies.yaml``: the checkout's file starts an engine; it is
    stopped with SIGTERM once it says it is ready (its ports and store moved into the
    test's directory through the file's own ${…} variables)."""
    shop, web = free_port(), free_port()
    state = Path(tempfile.mkdtemp(prefix="gw-engine-", dir=work))
    state.chmod(0o700)
    env = {**{k: v for k, v in env.items() if k not in ("GATEWATCH_CONFIG", "GATEWATCH_TOKEN")},
           "GATEWATCH_STORE": str(state / "gatewatch.db"),
           "GATEWATCH_CONTROL": str(state / "control.sock"),
           "GATEWATCH_SHOP_LISTEN": f"127.0.0.1:{shop}", "GATEWATCH_WEB_LISTEN":
           f"127.0.0.1:{web}", "GATEWATCH_WEB_KNOWN_HOSTS": str(state / "known_hosts")}
    (state / "known_hosts").write_text("")
    with open(state / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "gatewatch", *args], cwd=ROOT, env=env,
                                stderr=stderr, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):  # ready: its signal handlers are in place
            if "engine ready" in (state / "stderr").read_text() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, (state / "stderr").read_text()
        assert (state / "control.sock").exists(), "the engine did not start in 20 s"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (state / "stderr").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_written(command: str, sandbox: Sandbox) -> None:
    words = [w for w in command.split() if "=" not in w and not w.startswith("<")
             and not w.endswith(">")]
    verb = words[1]
    if verb in SKIP and not (verb == "demo" and "--headless" in words):
        pytest.skip(SKIP[verb])
    if verb == "demo":  # the sandbox fixture ran it and read its JSON line
        for key in ("postgres", "postgres_direct", "ssh", "ssh_direct", "approver", "tokens",
                    "oidc", "store", "control", "config", "dir", "env"):
            assert key in sandbox.info, key
        return
    args, env = substitute(command, sandbox)
    if verb == "engine":
        _engine_of_the_checkout(args, env, sandbox.work)
        return
    done = subprocess.run([sys.executable, "-m", "gatewatch", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_sessions_in_the_checkout_without_c() -> None:
    """``gatewatch sessions`` typed in the checkout, with nothing set: the checkout's
    policies.yaml, and its store or the news that nothing is recorded yet."""
    done = subprocess.run([sys.executable, "-m", "gatewatch", "sessions"], cwd=ROOT,
                          env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_policy_explain_as_the_readme_shows_it_in_the_checkout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gatewatch", "policy", "explain", "--connection", "shop",
         "--user", "alice", "--sql", "DELETE FROM orders"], cwd=ROOT, env=CLEAN_ENV,
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("verdict: REVIEW")
