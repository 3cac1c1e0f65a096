"""Bugs found reviewing ``engine/ssh/bridge.py``, ``session.py``, ``server.py`` (and ``lines.py``).

Each test states the behaviour the gateway should have. Bugs that were fixed while the review
went on are kept as regression tests (a comment says what they caught); bugs still open are
marked ``xfail(strict=True)`` with the bug as the reason, so that a fix turns the test into a
failure until the mark is removed (the last section, "second round").
The real-gateway tests drive the gateway between asyncssh's client and OpenSSH's sshd (the
pattern of ``tests/integration/test_ssh_interactive.py``); the others drive the objects
directly, without sockets, where timing must be exact.

Commands that a rule should stop are chosen to do no harm if they run (the tests may run as
root): ``rm -rf`` of a path under /etc that does not exist, or ``echo`` of the forbidden word.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from unittest.mock import patch

import asyncssh
import pytest

from engine import tasks
from engine.config import Connection, SshSettings, Upstream
from engine.events import EventHub
from engine.guardrail.commands import Cwd, classify_command
from engine.guardrail.guard import Judgement
from engine.guardrail.rules import Verdict
from engine.guardrail.shellwords import ShellParseError
from engine.identity import Identity
from engine.session import SessionContext
from engine.ssh import session as ssh_session
from engine.ssh.bridge import ChannelBridge
from engine.ssh.lines import LineWatcher
from engine.ssh.session import SshSession
from engine.ssh.tape import HIGH_WATER
from store import Op, StoreError
from store import ops as O
from store.records import Record
from tests.integration.test_ssh_interactive import connect
from tests.sshgw import SshGateway

integration = pytest.mark.integration

NOWHERE = "/etc/gatewatch-review-does-not-exist"
# Blocked by the rule no-recursive-rm-of-system-paths (RM RECURSIVE of /etc/*) when it is
# judged; if it runs, it removes nothing and prints "ran-42" (the echo of the keys shows
# "ran-$((6*7))", never "ran-42").
RM_LINE = f"rm -rf {NOWHERE}; echo ran-$((6*7))"
# Blocked by the rule no-forbidden-word (a regex on the text) when judged; if it runs it prints
# the word in capitals, which the echo of the keys never shows.
FORBIDDEN_LINE = "echo forbidden-word | tr a-z A-Z"
OUTCOMES = ("[gatewatch] blocked", "ran-42", "FORBIDDEN-WORD")


# === against the real gateway and sshd ======================================================


class Terminal:
    """The client's view of an interactive shell through the gateway: everything read so far,
    and a position after the last thing waited for."""

    def __init__(self, process: asyncssh.SSHClientProcess) -> None:  # type: ignore[type-arg]
        self.process = process
        self.seen = ""
        self.pos = 0

    def type(self, keys: str) -> None:
        self.process.stdin.write(keys)

    async def _read(self, deadline: float, wanted: object) -> None:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r}; after: {self.seen[self.pos:]!r}"
        with contextlib.suppress(TimeoutError):
            self.seen += await asyncio.wait_for(self.process.stdout.read(4096), left)

    async def until(self, *texts: str, seconds: float = 10) -> str:
        """Wait for the first of ``texts`` after the position; move past it."""
        deadline = time.monotonic() + seconds
        while True:
            found = [(i, t) for t in texts if (i := self.seen.find(t, self.pos)) >= 0]
            if found:
                i, text = min(found)
                self.pos = i + len(text)
                return text
            await self._read(deadline, texts)

    async def outcome(self) -> str:
        """Whether the gateway blocked the line or the shell ran it, as the terminal shows."""
        return await self.until(*OUTCOMES)


async def open_shell(conn: asyncssh.SSHClientConnection) -> Terminal:
    """A shell with a terminal, its prompt set to "gw$ ", ready for keys (bash discards keys
    typed before its first prompt, so this waits for it)."""
    process = await conn.create_process(term_type="xterm", term_size=(80, 24),
                                        env={"LANG": "C.UTF-8"})
    term = Terminal(process)
    await term.until("# ", "$ ")
    term.type("export PS1='gw$ '; stty -echoctl 2>/dev/null; echo ready-$((2+3))\r")
    await term.until("ready-5")
    await term.until("gw$ ")
    return term


async def pending_for(gw: SshGateway, text: str) -> Any:
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in list(gw.engine.broker.pending.values())  # type: ignore[union-attr]
                 if text in r.statement]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no approval request for {text!r} appeared"
        await asyncio.sleep(0.05)


async def _withdraw(gw: SshGateway, request_id: str) -> None:
    gw.engine.broker.withdraw(request_id, "test cleanup")  # type: ignore[union-attr]


async def settled(check: Any, seconds: float = 5) -> None:
    """Until ``check()`` holds, for at most ``seconds`` (the caller asserts it again): what a
    session's end undoes takes the event loop a moment, not a fixed one."""
    deadline = time.monotonic() + seconds
    while True:
        if check() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)


async def _live_tasks(session_id: str) -> list[str]:
    return sorted(t.get_name() for t in tasks._running
                  if session_id in t.get_name() and not t.done())


@integration
# Regression (found in review, fixed): bridge.py _open/_from_client: a shell channel without a pty
# (ssh -T, a script piped into ssh) gets no LineWatcher and no admission, so every command on its
# stdin reaches the target unjudged (and before its 'i' record is committed)
async def test_a_shell_without_a_terminal_does_not_run_blocked_commands(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await conn.create_process()  # a shell request without a pty
        process.stdin.write(FORBIDDEN_LINE + "\n")
        process.stdin.write_eof()
        result = await asyncio.wait_for(process.wait(), 10)
    assert "FORBIDDEN-WORD" not in str(result.stdout)


@integration
# Regression (found in review, fixed): bridge.py _from_client: each physical line is judged alone,
# so a command continued with a backslash ('echo forbidden-\' Enter 'word') runs as one command
# that no judgement saw
async def test_a_command_continued_over_two_lines_is_judged_whole(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("echo forbidden-\\\r")
        await term.until("> ")
        term.type("word | tr a-z A-Z\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): lines.py line(): after Ctrl-L (clear-screen) the prompt row
# is above the cursor, so the prompt is not removed; 'gw$ rm -rf /etc/...' is classified as the
# command 'gw$', no rule matches, and the line runs
async def test_a_line_redrawn_by_ctrl_l_is_judged(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("echo one; echo two\r")
        await term.until("two\r\n")
        await term.until("gw$ ")
        term.type(RM_LINE)
        await term.until("ran-$((6*7))")
        term.type("\x0c")  # Ctrl-L: bash clears the screen, draws the prompt and line again
        await term.until("\x1b[2J")
        await asyncio.sleep(0.3)
        term.type("\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): lines.py line(): with the prompt on the bottom row, a
# command that wraps scrolls the screen; the prompt's recorded row is then the cursor's row and
# only the command's last row is judged (here a comment), so the rm before it runs
async def test_a_long_line_typed_at_the_bottom_of_the_screen_is_judged(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("seq 40\r")
        await term.until("40\r\n")
        await term.until("gw$ ")
        term.type(RM_LINE + " # " + "x" * 90 + "\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): bridge.py _from_client: full_screen is whatever the output
# says, so printf '\e[?1049h' at the prompt turns judgement off and every later line runs unjudged
# and unrecorded (the documented limit for vim/less is a switch the user controls)
async def test_printing_the_alternate_screen_switch_does_not_turn_judgement_off(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("printf '\\033[?1049h'; echo switched-$((1+1))\r")
        await term.until("switched-2")
        await term.until("gw$ ")
        term.type(FORBIDDEN_LINE + "\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): bridge.py _judge_line_inner/_release: Enter on an empty row
# (cat, read, an empty PS1) gives an empty line; _release feeds the same Enter back to
# _from_client, which judges it again, for ever (a task every 20 ms, even after the channel
# closes): the Enter and all later keys are held and the terminal hangs
async def test_enter_on_an_empty_row_reaches_the_program(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("cat\r")
        await term.until("cat\r\n")
        await asyncio.sleep(0.3)
        term.type("\r")  # an empty line for cat
        term.type("\x04")  # Ctrl-D: cat ends and the prompt comes back
        await term.until("gw$ ", seconds=5)


@integration
# Regression (found in review, fixed): lines.py typed()/line(): pyte's resize leaves the cursor
# below a screen made shorter, so the next key indexes screen.display out of range; the IndexError
# escapes data_received into asyncssh, which drops the client's whole connection: making the
# terminal window smaller and typing ends the session
async def test_typing_after_the_terminal_got_smaller(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(80, 40),
                                            env={"LANG": "C.UTF-8"})
        term = Terminal(process)
        await term.until("# ", "$ ")
        term.type("export PS1='gw$ '; seq 60\r")  # the prompt ends on the bottom row
        await term.until("60\r\n")
        await term.until("gw$ ")
        process.change_terminal_size(80, 20)
        await asyncio.sleep(0.5)
        term.type("echo still-$((1+1))\r")
        await term.until("still-2\r\n")


@integration
# Regression (found in review, fixed): session.py _review: Broker.withdraw ends the request with
# notify=False, so the future that _review awaits is never resolved when the session ends; the
# channel task (and with it the session, bridge and tape) lives for ever
async def test_a_client_leaving_during_an_approval_wait_leaves_no_task(
        gw: SshGateway) -> None:
    conn = await connect(gw)
    waiting = asyncio.ensure_future(conn.run("echo needs-review then-left", check=False))
    request = await pending_for(gw, "then-left")
    conn.abort()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(waiting, 5)
    await settled(lambda: request.id not in gw.engine.broker.pending  # type: ignore[union-attr]
                  and not gw.call(_live_tasks(request.session_id)))
    assert request.id not in gw.engine.broker.pending  # type: ignore[union-attr]
    assert gw.call(_live_tasks(request.session_id)) == []


@integration
# Regression (found in review, fixed): session.py waiting_for holds one request id: with two
# channels waiting for approval, SshSession.end withdraws only the last one; the other stays
# pending (and approvable) after its session is gone
async def test_every_pending_approval_of_a_session_is_withdrawn_at_its_end(
        gw: SshGateway) -> None:
    conn = await connect(gw)
    first = asyncio.ensure_future(conn.run("echo needs-review first-of-two", check=False))
    await pending_for(gw, "first-of-two")
    second = asyncio.ensure_future(conn.run("echo needs-review second-of-two", check=False))
    await pending_for(gw, "second-of-two")
    conn.abort()
    for waiting in (first, second):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(waiting, 5)
    await settled(lambda: not any(
        "-of-two" in r.statement
        for r in list(gw.engine.broker.pending.values())))  # type: ignore[union-attr]
    left = [r for r in list(gw.engine.broker.pending.values())  # type: ignore[union-attr]
            if "-of-two" in r.statement]
    for request in left:
        gw.call(_withdraw(gw, request.id))
    assert left == []


@integration
# Regression (found in review, fixed): bridge.py connection_lost: a client that closes an exec
# channel while its command waits for approval leaves the request pending (only the session's end
# withdraws one), so an operator may approve a command nobody waits for
async def test_closing_a_channel_during_an_approval_wait_withdraws_the_request(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        chan, _ = await conn.create_session(asyncssh.SSHClientSession,
                                            "echo needs-review channel-closed")
        request = await pending_for(gw, "channel-closed")
        chan.close()
        await settled(lambda: request.id not in gw.engine.broker.pending)  # type: ignore[union-attr]
        still = request.id in gw.engine.broker.pending  # type: ignore[union-attr]
        if still:
            gw.call(_withdraw(gw, request.id))
    assert not still


# === the objects driven directly ============================================================
#
# A real SshSession, ChannelBridge, InputGate and Tape; only the sockets are stand-ins:
# ``ClientChannel`` keeps asyncssh's rule that writing to a channel after exit()/close()
# raises BrokenPipeError, ``Readline`` plays the target's shell (echoes keys, runs its line at
# Enter) and ``RmGuard`` blocks what the real command classifier calls RM RECURSIVE.


async def until(condition: Callable[[], object], seconds: float = 3) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


class Recorder:
    """The recorder's interface; commits at the next turn of the loop, or when told to."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.ops: list[Op] = []
        self._waiting: list[Callable[[StoreError | None], None]] = []

    def commit(self, records: list[Record], done: Callable[[StoreError | None], None]) -> None:
        self.ops.extend(r.op() for r in records)
        if self.hold:
            self._waiting.append(done)
        else:
            asyncio.get_running_loop().call_soon(done, None)

    async def committed(self, records: list[Record]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(exc: StoreError | None) -> None:
            if not fut.done():
                fut.set_result(None) if exc is None else fut.set_exception(exc)

        self.commit(records, done)
        await fut

    def write(self, record: Record) -> None:
        self.ops.append(record.op())

    def settle(self) -> None:
        waiting, self._waiting = self._waiting, []
        for done in waiting:
            done(None)

    def kinds(self, kind: str) -> list[Op]:
        return [op for op in self.ops if op.kind == kind]

    @property
    def statements(self) -> list[str]:
        return [op.fields["text"] for op in self.kinds(O.STATEMENT_START)]


class RmGuard:
    def judge_command(self, text: str, cwd: Cwd = None) -> Judgement:
        try:
            blocked = "RM RECURSIVE" in classify_command(text, cwd).kinds
        except ShellParseError:
            blocked = True
        verdict = Verdict("block" if blocked else "allow", "no-rm" if blocked else None,
                          "RM RECURSIVE" if blocked else "no rule", text)
        return Judgement(verdict.action, verdict, (verdict,))


class ClientChannel:
    """The client's channel as the bridge sees it (asyncssh's SSHServerChannel)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.state = "open"  # open, close_pending (exit sent, the client's close not yet)
        self.exit_status: int | None = None
        self.paused = False

    def write(self, data: bytes, datatype: int | None = None) -> None:
        if self.state != "open":
            raise BrokenPipeError("Channel not open for sending")
        self.out += data

    def write_stderr(self, data: bytes) -> None:
        self.write(data, 1)

    def write_eof(self) -> None:
        pass

    def exit(self, status: int) -> None:
        if self.state == "open":
            self.exit_status = status
            self.state = "close_pending"

    def close(self) -> None:
        self.state = "close_pending"

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_environment(self) -> dict[str, str]:
        return {}


class Readline:
    """One channel on the target: a shell that echoes keys (``delay`` seconds later, in
    order) and runs its line at Enter."""

    def __init__(self, side: Any, delay: float, prompt: bytes = b"gw$ ") -> None:
        self.side = side
        self.delay = delay
        self.prompt = prompt
        self.line = bytearray()
        self.ran: list[str] = []
        self.eof = False
        self.closed = False
        self.paused = False
        self._queue: deque[bytes] = deque()
        self._emit(prompt)

    def _emit(self, data: bytes) -> None:
        self._queue.append(data)
        asyncio.get_running_loop().call_later(self.delay, self._deliver)

    def _deliver(self) -> None:
        data = self._queue.popleft()
        if not self.closed:
            self.side.data_received(data, None)

    def write(self, data: bytes) -> None:
        if self.closed:
            raise BrokenPipeError("Channel not open for sending")
        for key in (bytes([b]) for b in data):
            if key in (b"\r", b"\n", b"\x0f"):
                self.ran.append(self.line.decode())
                self.line.clear()
                self._emit(b"\r\n" + self.prompt)
            elif key == b"\x03":
                self.line.clear()
                self._emit(b"^C\r\n" + self.prompt)
            elif key == b"\x7f":
                if self.line:
                    self.line.pop()
                    self._emit(b"\b \b")
            else:
                self.line += key
                self._emit(key)

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def change_terminal_size(self, *size: int) -> None:
        pass


class Target:
    """The gateway's connection to the target: each session it opens is a ``Readline``;
    with ``gate`` set, opening waits until the test opens the gate."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.channels: list[Readline] = []
        self.opening = 0
        self.gate: asyncio.Event | None = None
        self.closed = False

    async def create_session(self, factory: Callable[[], Any],
                             **kwargs: Any) -> tuple[Readline, Any]:
        self.opening += 1
        if self.gate is not None:
            await self.gate.wait()
        side = factory()
        channel = Readline(side, self.delay)
        self.channels.append(channel)
        return channel, side

    def close(self) -> None:
        self.closed = True


class RmPolicy:
    """The engine's ``Guard`` as sessions see it: each session gets an ``RmGuard``."""

    def for_session(self, connection: str, identity: str, groups: frozenset[str]) -> RmGuard:
        return RmGuard()


async def make_session(target: Target, recorder: Recorder | None = None) -> SshSession:
    """A session opened for alice on connection "web" the way the server opens it, its
    target connection being ``target``."""
    recorder = recorder or Recorder()
    ctx = SessionContext(settings=None, identities=None,  # type: ignore[arg-type]
                         recorder=recorder,  # type: ignore[arg-type]
                         guard=RmPolicy(), broker=None,  # type: ignore[arg-type]
                         events=EventHub())
    conn = Connection(name="web", kind="ssh", listen_host="127.0.0.1", listen_port=0,
                      upstream=Upstream(host="10.0.0.9", port=22, user="deploy"),
                      allow_identities=frozenset({"alice"}), ssh=SshSettings())
    session = SshSession(ctx, conn, "review-session", "127.0.0.1:40000", "SSH-2.0-test")

    async def connected(upstream: Upstream) -> Target:
        return target

    holding, recorder.hold = recorder.hold, False  # the session's open record commits
    with patch.object(ssh_session, "connect_target", connected):
        await session.open(Identity("alice", frozenset()))
    recorder.hold = holding
    return session


async def shell_bridge(session: SshSession, number: int = 1) -> tuple[ChannelBridge,
                                                                      ClientChannel]:
    """A shell channel with a terminal, opened, its prompt on screen."""
    chan = ClientChannel()
    bridge = ChannelBridge(session, number)
    bridge.connection_made(chan)  # type: ignore[arg-type]
    bridge.pty_requested("xterm", (80, 24, 0, 0), {})
    assert bridge.shell_requested()
    bridge.session_started()
    await until(lambda: bridge.gate is not None and bridge.gate.watcher is not None
                and bridge.gate.watcher.screen.display[0].startswith("gw$"))
    return bridge, chan


def exec_bridge(session: SshSession, command: str) -> tuple[ChannelBridge, ClientChannel]:
    chan = ClientChannel()
    bridge = ChannelBridge(session, 1)
    bridge.connection_made(chan)  # type: ignore[arg-type]
    bridge.exec_requested(command)
    bridge.session_started()
    return bridge, chan


# The gate's own behaviour (echo waits, Enter alone, what follows a refused line) is tested as
# conversations in ``test_gate.py``; here the bridge carries out what the gate asks.


async def test_the_harness_runs_an_allowed_line_and_blocks_a_bad_one() -> None:
    """Not a bug: the stand-ins behave, so the failures below are the gateway's. Also the
    bridge's part of a line: the gate's wake-ups timed, the session's verdict awaited and fed
    back, the Enter sent or the line aborted."""
    target = Target()
    session = await make_session(target)
    bridge, chan = await shell_bridge(session)
    [shell] = target.channels
    bridge.data_received(b"ls -l /tmp\r", None)
    await until(lambda: shell.ran)
    bridge.data_received(b"rm -rf /etc/x\r", None)
    await until(lambda: b"[gatewatch] blocked" in chan.out)
    assert shell.ran == ["ls -l /tmp"]
    assert session.ctx.recorder.statements == ["ls -l /tmp", "rm -rf /etc/x"]  # type: ignore[attr-defined]


# Regression (found in review, fixed): lines.py line(): the cursor row is rstripped but the prompt
# keeps its trailing space, so a line typed and rubbed out (or empty) at the prompt 'gw$ ' reads
# as 'gw$'
def test_a_line_typed_and_rubbed_out_is_empty() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(b"gw$ ")
    watcher.typed()
    watcher.output(b"x\b \b")
    assert watcher.line().text == ""


# Regression (found in review, fixed): bridge.py _open / session.py _pressure: a channel opened
# while the tape is already pressed (above HIGH_WATER) never gets pressure(True) (the tape signals
# only on the crossing), so it reads the target at full speed while the store is behind: the
# uncommitted output grows without bound
async def test_a_channel_opened_under_store_pressure_does_not_read_the_target() -> None:
    target = Target()
    recorder = Recorder(hold=True)  # a store that has fallen behind
    session = await make_session(target, recorder)
    await shell_bridge(session, 1)
    session.tape.add(1, "o", b"x" * (HIGH_WATER + 1))
    assert session.tape.pressed and target.channels[0].paused
    await shell_bridge(session, 2)
    assert target.channels[1].paused


# Regression (found in review, fixed): bridge.py _open: _closed is checked after target() but not
# after create_session(); a client that closes the channel while the target channel is being
# opened leaves that target channel (and its command) running, never closed, until the session
# ends
async def test_a_target_channel_opened_after_the_client_left_is_closed() -> None:
    target = Target()
    target.gate = asyncio.Event()
    session = await make_session(target)
    bridge, _ = exec_bridge(session, "sleep 1000")
    await until(lambda: target.opening)
    bridge.connection_lost(None)  # the client closes the channel meanwhile
    target.gate.set()
    await until(lambda: target.channels)
    await asyncio.sleep(0.05)
    assert target.channels[0].closed


# Regression (found in review, fixed): bridge.py close_with: writing the goodbye to a channel that
# already sent exit (close pending: the client has not answered) raises BrokenPipeError out of
# SshSession.terminate before end() runs; an operator's kill, the engine's shutdown or a store
# failure (on_failure -> terminate) then leaves the session running, unrecorded
async def test_terminate_ends_the_session_even_with_a_closing_channel() -> None:
    target = Target()
    session = await make_session(target)
    _, chan = exec_bridge(session, "rm -rf /etc/x")  # blocked: exit(126), close pending
    await until(lambda: chan.exit_status is not None)
    try:
        session.terminate("killed by oncall: test", "the session was ended by oncall")
    except OSError as exc:
        pytest.fail(f"terminate raised {exc!r}; session ended: {session.ended}")
    assert session.ended


# Regression (found in review, fixed): session.py refused(): it reads self.seq again after
# awaiting its commit; when another command took a number meanwhile (ssh -R ... host cmd asks for
# both at once) it ends that number instead of its own, so its own record stays 'running' (then
# 'interrupted'), and of two refusals the first ends the second's record
async def test_a_refusal_ends_its_own_record() -> None:
    recorder = Recorder(hold=True)
    session = await make_session(Target(), recorder)
    refusal = asyncio.ensure_future(session.refused(
        "remote forward 0.0.0.0:8080", "gateway", "remote forwarding (-R) is not allowed"))
    command = asyncio.ensure_future(session.admit("uptime", "exec"))
    await until(lambda: len(recorder.kinds(O.STATEMENT_START)) == 2)
    recorder.settle()  # one group commit serves both
    await refusal
    admission = await command
    assert admission.allowed
    ends = {op.ref: op.fields for op in recorder.kinds(O.STATEMENT_END)}
    starts = {op.ref: op.fields["text"] for op in recorder.kinds(O.STATEMENT_START)}
    [refusal_seq] = [seq for seq, text in starts.items() if text.startswith("remote")]
    assert admission.seq not in ends, f"the allowed command was ended: {ends}"
    assert ends.get(refusal_seq, {}).get("status") == "blocked"


# Regression (found in review, fixed): bridge.py data_received -> _from_client: client input that
# arrives after asyncssh processed the target's CLOSE but before connection_lost (scheduled for
# the next turn) makes self.up.write raise BrokenPipeError inside asyncssh's callback; asyncssh
# takes it as an internal error and drops the client's whole connection with all its other
# channels (seen with the real sshd: a client trickling stdin into a short command)
async def test_input_racing_the_target_close_does_not_raise_into_asyncssh() -> None:
    target = Target()
    session = await make_session(target)
    bridge, _ = exec_bridge(session, "sleep 0.2")
    await until(lambda: bridge.up is not None)
    target.channels[0].closed = True  # the target's CLOSE is processed: writes now raise
    try:
        bridge.data_received(b"more input", None)  # the client's next packet, same turn
        bridge.eof_received()
    except OSError as exc:
        pytest.fail(f"{exc!r} escaped into asyncssh, which would drop the connection")


# Regression (found in review, fixed): lines.py typed()/line(): after resize() to fewer rows the
# cursor stays below the screen and screen.display[cursor.y] raises IndexError
@pytest.mark.parametrize("then", ["typed", "line"])
def test_reading_the_line_after_the_screen_got_smaller(then: str) -> None:
    watcher = LineWatcher(80, 40)
    watcher.output(b"".join(b"%d\r\n" % i for i in range(60)) + b"gw$ ")
    watcher.resize(80, 20)
    getattr(watcher, then)()


# === second round: open bugs in the reworked bridge (lines read off the screen) ==============
#
# Each of these runs a line that a rule blocks, through the gateway as it is now (queue,
# continuation, several readings of a line).


@integration
# Regression (found in review, fixed): bridge.py _judged: a line that reads as empty is let
# through without a judgement or a record; after `stty -echo` bash shows nothing of what is typed,
# so every line reads as empty and runs unjudged and unrecorded
async def test_a_shell_without_echo_still_has_its_lines_judged(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("stty -echo\r")
        await term.until("gw$ ")
        await asyncio.sleep(0.3)
        term.type(FORBIDDEN_LINE + "\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
@pytest.mark.xfail(run=False, reason=(
    "lines.py ENTER_KEYS / bridge.py _keys: only CR, Ctrl-J and Ctrl-O are taken as Enter, "
    "but readline's keys are the user's to bind: after `bind '\"\\C-t\": accept-line'` "
    "Ctrl-T runs the line and the gateway never judges it (the example policy blocks `bind` "
    "and key-binding files; not run: since the bind masks the connection's output whole, "
    "the terminal cannot show the outcome, and it waited out its whole deadline every run)"))
async def test_a_rebound_accept_line_key_does_not_skip_judgement(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("bind '\"\\C-t\": accept-line'\r")
        await term.until("gw$ ")
        await asyncio.sleep(0.3)
        term.type(FORBIDDEN_LINE + "\x14")  # Ctrl-T
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): bridge.py _ends_continued/_judged: any line ending in a
# backslash is taken as continued, but in a comment bash does not continue it; after '#\\' the
# gateway judges the next line as '#' + line (a comment: allowed) while bash runs the line itself
async def test_a_comment_ending_in_a_backslash_does_not_hide_the_next_line(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("#\\\r")
        await term.until("gw$ ")
        await asyncio.sleep(0.3)
        term.type(RM_LINE + "\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): bridge.py _judged: a shell without a terminal takes '#\\'
# as continued too, so the next line of the script is judged as a comment and runs
async def test_a_comment_ending_in_a_backslash_in_a_script(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await conn.create_process()  # a shell request without a pty
        process.stdin.write("#\\\n" + RM_LINE + "\n")
        process.stdin.write_eof()
        result = await asyncio.wait_for(process.wait(), 10)
    assert "ran-42" not in str(result.stdout)


@integration
# Regression (found in review, fixed): bridge.py _keys/lines.py typed(): Ctrl-C at the
# continuation prompt ends the line, but the prompt for the next one was taken at the Ctrl-C key
# (the '> ' row), so the next line is read as '> ' + that row + 'gw$ rm -rf ...' = 'gw$ rm -rf
# ...' and runs (before the first fix the stale 'echo ' was put in front of it instead)
async def test_an_abandoned_continuation_does_not_prefix_the_next_line(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("echo \\\r")
        await term.until("> ")
        term.type("\x03")
        await term.until("gw$ ")
        await asyncio.sleep(0.3)
        term.type(RM_LINE + "\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): lines.py line(): when the prompt cannot be found again
# (Ctrl-L cleared the screen) the other readings start only after '$ ', '# ', '> ' or '% '; with
# any other prompt (PS1='X ', a starship-style arrow) the only reading is 'X rm -rf ...', the
# command 'X', and it runs
async def test_a_line_redrawn_by_ctrl_l_under_another_prompt_is_judged(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("PS1='X '\r")
        await term.until("X ")
        await asyncio.sleep(0.3)
        term.type(RM_LINE)
        await term.until("ran-$((6*7))")
        term.type("\x0c")  # Ctrl-L
        await term.until("\x1b[2J")
        await asyncio.sleep(0.3)
        term.type("\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): lines.py line(): a line longer than the screen scrolls its
# start (and the prompt) off the top; only what was still on screen was read, so
# 'rm -rf /etc/... # xxxx…' was judged as 'xxxx…' and ran (oversized input must be refused)
async def test_a_line_longer_than_the_screen_is_judged_whole_or_refused(
        gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type(RM_LINE + " # " + "x" * 2500 + "\r")  # 80x24 holds 1920 characters
        assert await term.until("[gatewatch] ", "ran-42") == "[gatewatch] "


@integration
# Regression (found in review, fixed): bridge.py _pump: only a 'shell' request gets its lines
# judged; an exec of a shell ('ssh -t gw bash', or a script piped into 'ssh gw bash') is judged
# once as 'bash' and then every line typed or piped into it reaches the target unjudged
@pytest.mark.parametrize("pty", [True, False], ids=["with-pty", "without-pty"])
async def test_lines_given_to_a_shell_started_by_exec_are_judged(gw: SshGateway,
                                                                 pty: bool) -> None:
    async with connect(gw) as conn:
        if pty:
            process = await conn.create_process("bash --norc -i", term_type="xterm",
                                                term_size=(80, 24))
            term = Terminal(process)
            await term.until("$ ", "# ")
            await asyncio.sleep(0.3)
            term.type(FORBIDDEN_LINE + "\r")
            assert await term.outcome() == "[gatewatch] blocked"
        else:
            process = await conn.create_process("bash")
            process.stdin.write(FORBIDDEN_LINE + "\n")
            process.stdin.write_eof()
            result = await asyncio.wait_for(process.wait(), 10)
            assert "FORBIDDEN-WORD" not in str(result.stdout)


@integration
# Regression (found in review, fixed): bridge.py _pump records every non-shell channel's input as
# stream 'i', terminals included (the old rule was: a terminal's input is not recorded, for
# passwords); a password typed into sudo/read -s under 'ssh -t gw cmd' is stored in clear
async def test_what_is_typed_at_a_terminal_without_echo_is_not_recorded(
        gw: SshGateway) -> None:
    secret = f"pw-{time.monotonic_ns()}"
    # on a connection without masking: ${#pw} is computed by the shell, so where output is
    # masked this command's output is masked whole (engine/ssh/output.py)
    async with connect(gw, connection="web_exec_only") as conn:
        process = await conn.create_process(
            "read -s -p 'Password: ' pw; echo; echo got-${#pw}", term_type="xterm",
            term_size=(80, 24))
        term = Terminal(process)
        await term.until("Password: ")
        term.type(secret + "\r")
        await term.until(f"got-{len(secret)}")
    deadline = time.monotonic() + 10
    while not any(f"got-{len(secret)}".encode() in bytes(r["data"]) for r in gw.query(
            "SELECT data FROM ssh_output WHERE stream = 'o'")):
        assert time.monotonic() < deadline, "the channel's output was never recorded"
        await asyncio.sleep(0.1)
    typed = [bytes(r["data"]) for r in gw.query(
        "SELECT data FROM ssh_output WHERE stream = 'i'")]
    assert not any(secret.encode() in data for data in typed)


# Regression (found in review, fixed): bridge.py terminal_size_changed: a window-change that
# arrives while the target channel is being opened resizes the LineWatcher but is not forwarded
# (self.up is still None) and the pty was requested with the old size: the target and the watcher
# disagree from then on, so wrapped lines are read wrong
async def test_a_window_change_while_the_channel_opens_reaches_the_target() -> None:
    class SizedReadline(Readline):
        size: tuple[int, ...] = ()

        def change_terminal_size(self, *size: int) -> None:
            self.size = size[:2]

    class SizingTarget(Target):
        async def create_session(self, factory: Callable[[], Any],
                                 **kwargs: Any) -> tuple[Readline, Any]:
            self.opening += 1
            assert self.gate is not None
            await self.gate.wait()
            side = factory()
            channel = SizedReadline(side, self.delay)
            channel.size = tuple(kwargs["term_size"][:2])
            self.channels.append(channel)
            return channel, side

    target = SizingTarget()
    target.gate = asyncio.Event()
    session = await make_session(target)
    chan = ClientChannel()
    bridge = ChannelBridge(session, 1)
    bridge.connection_made(chan)  # type: ignore[arg-type]
    bridge.pty_requested("xterm", (80, 24, 0, 0), {})
    assert bridge.shell_requested()
    bridge.session_started()
    await until(lambda: target.opening)
    bridge.terminal_size_changed(120, 40, 0, 0)  # the user resizes the window meanwhile
    target.gate.set()
    await until(lambda: target.channels)
    await asyncio.sleep(0.05)
    assert bridge.gate is not None and bridge.gate.watcher is not None
    assert (bridge.gate.watcher.screen.columns, bridge.gate.watcher.screen.lines) == (120, 40)
    assert target.channels[0].size == (120, 40)  # type: ignore[attr-defined]


@integration
# Regression (found in review, fixed): bridge.py _reads_commands: an exec's input is judged line
# by line only when the command's programs are in the _SHELLS list; any other way to start a shell
# (perl's or python's exec, a copy of bash under another name, tmux, ssh to the target itself)
# gives an interactive shell whose lines reach the target unjudged
@pytest.mark.parametrize("command", [
    "perl -e 'exec \"/bin/bash\", \"--norc\", \"-i\"'",
    "/usr/bin/python3 -c 'import os; os.execv(\"/bin/bash\", [\"bash\", \"--norc\", \"-i\"])'",
], ids=["perl", "python"])
async def test_a_shell_started_through_an_interpreter_has_its_lines_judged(
        gw: SshGateway, command: str) -> None:
    async with connect(gw) as conn:
        process = await conn.create_process(command, term_type="xterm", term_size=(80, 24))
        term = Terminal(process)
        # the interpreter may have left state behind, so the session's output is masked whole
        # (issue 14): its prompt shows as stars
        await term.until("$ ", "# ", "* ")
        await asyncio.sleep(0.3)
        term.type(FORBIDDEN_LINE + "\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Regression (found in review, fixed): bridge.py _keys/lines.py typed(): the prompt is taken at
# the first key after output and kept until Enter; keys that make the shell start a fresh line
# without Enter (Ctrl-C, also Ctrl-D in some programs) leave it on the old row, so the next line
# is read as 'abc<spaces>gw$ rm -rf ...' (first word 'abc', no rule matches) and runs: type
# anything, Ctrl-C, then the command
async def test_the_line_after_a_ctrl_c_is_judged(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("abc")
        await term.until("abc")
        term.type("\x03")
        await term.until("gw$ ")
        await asyncio.sleep(0.3)
        term.type(RM_LINE + "\r")
        assert await term.outcome() == "[gatewatch] blocked"


@integration
# Found while moving the bridge's input logic into gate.py (fixed there): a paste of two lines
# sent the second line's keys right after the first one's Enter, before the shell drew its next
# prompt; the prompt was then taken on the first line's row, the second line read as 'one gw$ rm
# -rf …' (the command 'one'), and it ran
async def test_the_second_line_of_a_paste_is_judged(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        term = await open_shell(conn)
        term.type("echo one\r" + RM_LINE + "\r")
        assert await term.outcome() == "[gatewatch] blocked"
