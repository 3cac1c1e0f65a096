"""Finer SSH cases with the asyncssh client: terminals, judged command lines, approvals,
forwarding, channel limits, a client that stops reading, kills and abrupt ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncssh
import pytest

from engine.ssh.session import SshSession
from engine.throttle import LoginThrottle
from tests.sshd import SshdTarget
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration


class Echo:
    """A TCP echo server: the destination of allowed port forwards."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return

            def echo(c: object = conn) -> None:
                with c:  # type: ignore[attr-defined]
                    while data := c.recv(65536):  # type: ignore[attr-defined]
                        c.sendall(data)  # type: ignore[attr-defined]

            threading.Thread(target=echo, daemon=True).start()


@pytest.fixture(scope="module")
def echo() -> Echo:
    return Echo()


@pytest.fixture(scope="module")
def gw(sshd: SshdTarget, echo: Echo,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"), forward_port=echo.port)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def connect(gw: SshGateway, user: str = "alice",
            connection: str = "web") -> asyncssh.connection._ConnectionContext:  # type: ignore[name-defined]
    known = asyncssh.import_known_hosts(gw.host_key_line(connection) + "\n")
    return asyncssh.connect("127.0.0.1", gw.port(connection), username=user,
                            password=gw.tokens[user], known_hosts=known, client_keys=None,
                            agent_path=None, config=None, preferred_auth="password")


async def read_until(process: asyncssh.SSHClientProcess, wanted: str,  # type: ignore[type-arg]
                     seconds: float = 10) -> str:
    seen = ""
    deadline = time.monotonic() + seconds
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r}; screen so far: {seen!r}"
        try:
            seen += await asyncio.wait_for(process.stdout.read(4096), left)
        except TimeoutError:
            continue
    return seen


async def shell(conn: asyncssh.SSHClientConnection,
                size: tuple[int, int] = (80, 24)) -> asyncssh.SSHClientProcess:  # type: ignore[type-arg]
    process = await conn.create_process(term_type="xterm", term_size=size,
                                        env={"LANG": "C.UTF-8"})
    # The first prompt (readline ready, and its text drawn) before typing: typed ahead of
    # it under load, the line was read with the shell's start-up text, or with the prompt's
    # text in front ("root@vm:/root# export …"), and refused.
    seen = await read_until(process, "\x1b[?2004h")
    while not seen.rstrip(" ").endswith(("#", "$")):
        seen += await read_until(process, " ")
    # Quoted apart, so that the echo of this line is not mistaken for the prompt it sets.
    process.stdin.write("export PS1='g''w$ '; stty -echoctl 2>/dev/null\n")
    await read_until(process, "gw$ ")
    return process


async def test_shell_with_a_terminal_behaves_as_direct(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await shell(conn)
        # printenv, not echo $TERM: where output is masked, a word the shell computes has the
        # line's output masked whole (engine/ssh/output.py)
        process.stdin.write("printenv TERM; stty size\n")
        out = await read_until(process, "24 80")
        assert "xterm" in out
        process.change_terminal_size(100, 30)
        await asyncio.sleep(0.2)
        process.stdin.write("stty size\n")
        await read_until(process, "30 100")
        process.stdin.write("sleep 30\n")
        await asyncio.sleep(0.5)
        started = time.monotonic()
        process.stdin.write("\x03")
        # the prompt first: a line typed ahead of it is read off the screen with the prompt
        # in front ("gw$ echo …"), a line the gateway cannot judge as typed, which masks the
        # channel (and so its exit status) as state it cannot follow
        await read_until(process, "gw$ ")
        process.stdin.write("echo after-interrupt\n")
        out = await read_until(process, "after-interrupt\r\n")
        assert time.monotonic() - started < 10
        if "gw$ " not in out.partition("after-interrupt\r\n")[2]:
            await read_until(process, "gw$ ")  # (as above: not typed ahead of the prompt)
        process.stdin.write("exit 7\n")
        await asyncio.wait_for(process.wait_closed(), 10)
        assert process.exit_status == 7


async def test_a_blocked_line_is_not_run_and_the_shell_goes_on(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await shell(conn)
        process.stdin.write("echo $((6*7)) forbidden-word\n")
        out = await read_until(process, "[gatewatch] blocked by rule")
        process.stdin.write("echo $((6*8)) fine\n")
        out += await read_until(process, "48 fine\r\n")
        assert "42 forbidden-word" not in out
        process.stdin.write("exit\n")
        await asyncio.wait_for(process.wait_closed(), 10)
    deadline = time.monotonic() + 10
    while not any(r["verdict"] == "block" and r["status"] == "blocked" for r in gw.query(
            "SELECT verdict, status FROM statements WHERE text LIKE ?", "%forbidden-word")):
        assert time.monotonic() < deadline, "the blocked line was never recorded as blocked"
        await asyncio.sleep(0.05)


async def test_a_line_typed_with_editing_keys_is_judged_as_shown(gw: SshGateway) -> None:
    """Keystrokes say `echo forbiddXn-word`, backspaces fix it: the screen shows the truth."""
    async with connect(gw) as conn:
        process = await shell(conn)
        process.stdin.write("echo $((2*3))-forbiddX\x7fen-word\n")
        out = await read_until(process, "[gatewatch] blocked by rule")
        assert "6-forbidden-word" not in out.split("[gatewatch]")[0].split("\n", 1)[-1]
        process.stdin.write("exit\n")


async def test_review_holds_a_command_until_an_operator_approves(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        task = asyncio.ensure_future(conn.run("echo needs-review approved-ran", check=False))
        request = await _pending(gw)
        assert request.statement == "echo needs-review approved-ran"
        oncall = gw.engine.identities.identity("oncall")
        assert oncall is not None
        gw.call(gw.engine.broker.decide(request.id, oncall, True, None))  # type: ignore[union-attr]
        result = await asyncio.wait_for(task, 20)
        assert result.stdout == "needs-review approved-ran\n"
        assert "held for approval" in str(result.stderr)


async def test_review_denied_does_not_run(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        task = asyncio.ensure_future(conn.run("echo needs-review denied-ran", check=False))
        request = await _pending(gw)
        oncall = gw.engine.identities.identity("oncall")
        assert oncall is not None
        gw.call(gw.engine.broker.decide(request.id, oncall, False, "not now"))  # type: ignore[union-attr]
        result = await asyncio.wait_for(task, 20)
        assert result.exit_status == 1
        assert "denied by oncall: not now" in str(result.stderr)
        assert "denied-ran" not in str(result.stdout)


async def _pending(gw: SshGateway) -> object:
    deadline = time.monotonic() + 10
    while True:
        pending = list(gw.engine.broker.pending.values())  # type: ignore[union-attr]
        if pending:
            return pending[0]
        assert time.monotonic() < deadline, "no approval request appeared"
        await asyncio.sleep(0.05)


async def test_forwarding_only_to_allowed_destinations(gw: SshGateway, echo: Echo) -> None:
    # web_strict masks nothing (web masks: its forwards are refused, below)
    async with connect(gw, connection="web_strict") as conn:
        reader, writer = await conn.open_connection("127.0.0.1", echo.port)
        writer.write(b"ping through the target")
        assert await asyncio.wait_for(reader.readexactly(23), 10) == b"ping through the target"
        writer.close()
        with pytest.raises(asyncssh.ChannelOpenError, match="outside the connection's allowed"):
            await conn.open_connection("127.0.0.1", 22)
        with pytest.raises(asyncssh.ChannelOpenError, match="outside the connection's allowed"):
            await conn.open_connection("10.1.2.3", echo.port)
    verdicts: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while len(verdicts) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        rows = gw.query("SELECT text, verdict FROM statements WHERE text LIKE 'forward to %'")
        verdicts = {r["text"]: r["verdict"] for r in rows}
    assert verdicts[f"forward to 127.0.0.1:{echo.port}"] == "allow"
    assert verdicts["forward to 127.0.0.1:22"] == "block"


async def test_a_masked_session_gets_no_forward(gw: SshGateway, echo: Echo) -> None:
    """Issue 14: a tunnel's bytes are not read, so an identity whose output is masked cannot
    open one, even to an allowed destination (anything on the target can listen there and
    send a secret file through it); the refusal is recorded and says why."""
    async with connect(gw) as conn:
        with pytest.raises(asyncssh.ChannelOpenError, match="data is masked"):
            await conn.open_connection("127.0.0.1", echo.port)
    rows: list[dict[str, object]] = []
    deadline = time.monotonic() + 10
    while not rows and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        rows = gw.query("SELECT text, verdict, rule FROM statements WHERE rule = 'masking' "
                        "AND text = ?", f"forward to 127.0.0.1:{echo.port}")
    assert rows and rows[0]["verdict"] == "block"


async def test_remote_forwarding_is_refused(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.start_server(lambda *a: None, "127.0.0.1", 0)


async def test_a_client_opening_many_channels_gets_a_bounded_number(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        opened, refused = [], 0
        for _ in range(100):
            try:
                chan, _ = await conn.create_session(asyncssh.SSHClientSession, "sleep 60")
                opened.append(chan)
            except asyncssh.ChannelOpenError:
                refused += 1
        assert len(opened) == 5 and refused == 95
        for chan in opened:
            chan.close()
        await asyncio.sleep(0.5)
        result = await asyncio.wait_for(conn.run("echo still-fine", check=False), 10)
        assert result.stdout == "still-fine\n"


async def test_a_client_that_stops_reading_does_not_grow_the_gateway(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await conn.create_process("cat /dev/zero", encoding=None)
        await process.stdout.read(1)
        process.stdout.channel.pause_reading()
        await asyncio.sleep(2)
        held = gw.call(_gateway_buffers(gw))
        assert held < 16 * 1024 * 1024, f"the gateway holds {held} bytes for a stalled client"
        process.stdout.channel.resume_reading()
        await process.stdout.readexactly(1 << 20)
        process.close()


async def _gateway_buffers(gw: SshGateway) -> int:
    total = 0
    for live in gw.engine.live().values():
        session = live.transport
        assert isinstance(session, SshSession)
        total += session.tape.outstanding
        for bridge in session.bridges:
            chan = bridge.chan  # type: ignore[attr-defined]
            total += chan.get_write_buffer_size() if chan is not None else 0
    return total


async def test_kill_from_the_operator_ends_the_session(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await shell(conn)
        [sid] = [s for s, v in gw.engine.live().items()
                 if v.identity and v.identity.name == "alice"]
        oncall = gw.engine.identities.identity("oncall")
        from engine.control import Peer

        peer = Peer.__new__(Peer)
        peer.identity = oncall
        gw.call(gw.engine._kill(peer, {"session": sid, "reason": "runaway"}))
        out = await read_until(process, "runaway")
        assert "killed by oncall" in out or "ended by operator oncall" in out
        await asyncio.wait_for(process.wait_closed(), 10)
    deadline = time.monotonic() + 10
    while gw.query("SELECT status FROM sessions WHERE id = ?", sid)[0]["status"] == "open":
        assert time.monotonic() < deadline, "the session's end was never recorded"
        await asyncio.sleep(0.05)
    row = gw.query("SELECT status, end_reason FROM sessions WHERE id = ?", sid)[0]
    assert row["status"] == "killed"
    assert row["end_reason"] == "killed by oncall: runaway"


async def test_abrupt_client_disconnect_closes_the_record(gw: SshGateway) -> None:
    conn = await connect(gw)
    process = await shell(conn)
    sid = next(s for s, v in gw.engine.live().items() if v.identity)
    conn.abort()
    del process
    deadline = time.monotonic() + 10
    while True:
        rows = gw.query("SELECT status, ended_at FROM sessions WHERE id = ?", sid)
        if rows and rows[0]["ended_at"]:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    async with connect(gw) as again:  # and the gateway carries on
        assert (await again.run("echo ok", check=False)).stdout == "ok\n"


async def test_target_side_dying_mid_command_ends_the_channel(gw: SshGateway) -> None:
    # without masking: kill -9 $PPID is no plain reader, so where output is masked it is
    # masked whole (engine/ssh/output.py)
    async with connect(gw, connection="web_exec_only") as conn:
        # the target's per-session sshd process dies: the channel ends, the client is told
        result = await asyncio.wait_for(
            conn.run("echo before; sleep 1; kill -9 $PPID; sleep 5; echo after", check=False), 20)
        assert "before" in str(result.stdout) and "after" not in str(result.stdout)
    async with connect(gw) as again:
        assert (await again.run("echo ok", check=False)).stdout == "ok\n"



async def test_repeated_wrong_tokens_are_slowed_and_then_disconnected(gw: SshGateway) -> None:
    assert gw.engine.sessions is not None  # failures of earlier tests would slow this one
    gw.engine.sessions.throttle = LoginThrottle()
    tries: list[float] = []

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str | None:
            tries.append(time.monotonic())
            return f"guess-{len(tries)}" if len(tries) <= 10 else None

    known = asyncssh.import_known_hosts(gw.host_key_line() + "\n")
    with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError)):
        await asyncssh.connect("127.0.0.1", gw.port(), username="alice", known_hosts=known,
                               client_factory=Guesser, client_keys=None, agent_path=None,
                               config=None, preferred_auth="password")
    assert len(tries) == 3  # login_attempts: 3, then the gateway hangs up
    # The address has earned a wait before its next logins are even checked.
    assert gw.engine.sessions is not None
    assert gw.engine.sessions.throttle.penalty("127.0.0.1") > 0
    async with connect(gw) as conn:  # the right token still gets in at once
        assert (await conn.run("echo in", check=False)).stdout == "in\n"


async def test_an_unregistered_key_is_refused(gw: SshGateway) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    known = asyncssh.import_known_hosts(gw.host_key_line() + "\n")
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect("127.0.0.1", gw.port(), username="alice", known_hosts=known,
                               client_keys=[stranger], agent_path=None, config=None,
                               preferred_auth="publickey")


async def test_terminal_output_is_masked_and_prompts_still_appear(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        process = await shell(conn)  # the prompt appeared: held-back output is released
        process.stdin.write("printf '%s@%s card %s\\n' bob example.com 4242424242424242\n")
        out = await read_until(process, "gw$ ")
        assert "bob@example.com" not in out and "4242424242424242" not in out
        assert "************4242" in out
        process.stdin.write("exit\n")
        await asyncio.wait_for(process.wait_closed(), 10)


async def test_command_lines_are_recorded_masked_and_shown_exactly_to_approvers(
        gw: SshGateway) -> None:
    """The card number a command line carries is masked in the record (and for webhooks);
    approvers see the line exactly, the approval is bound to it (its hash), and it runs."""
    from engine.guardrail.guard import statement_hash

    line = "echo needs-review 4111111111111111"
    async with connect(gw) as conn:
        task = asyncio.ensure_future(conn.run(line, check=False))
        request = await _pending(gw)
        assert "4111111111111111" not in request.statement and "1111" in request.statement
        # approvers see exactly what would run (masking could hide syntax); the store does not
        assert request.describe()["statement"] == line
        assert "4111111111111111" not in request.describe(exact=False)["statement"]
        oncall = gw.engine.identities.identity("oncall")
        assert oncall is not None
        gw.call(gw.engine.broker.decide(request.id, oncall, True, None))  # type: ignore[union-attr]
        result = await asyncio.wait_for(task, 20)
        assert result.exit_status == 0
    [row] = gw.query("SELECT statement, statement_hash FROM approvals WHERE id = ?", request.id)
    assert "4111111111111111" not in row["statement"]
    assert row["statement_hash"] == statement_hash(line)
    deadline = time.monotonic() + 10
    while not (rows := gw.query("SELECT text FROM statements WHERE text LIKE ?",
                                "echo needs-review %1111")):
        assert time.monotonic() < deadline, "the command was never recorded"
        await asyncio.sleep(0.05)
    assert all("4111111111111111" not in r["text"] for r in rows)
