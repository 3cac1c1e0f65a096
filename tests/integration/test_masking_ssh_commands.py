"""Issue 14, the outside attack after the deny-list: through the real OpenSSH client and sshd,
a command that is not a plain reader (sed, awk, tac, dd conv=swab, grep -o, perl, rev, fold, od,
xxd …) has its output masked whole, on exec channels and at an interactive shell (``ssh -tt``,
lenient and strict), and is recorded so — at a shell with the rest of the channel when its output
could forge the shell's next prompt; ``cat``, ``head`` and ``grep`` of the same file are masked
the usual way (partially), and the shell's prompt is not masked."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from engine.ssh.output import PASTE_OFF, PASTE_ON, prints_no_escapes
from engine.ssh.shellstate import leaves_state
from tests.integration.test_masking_ssh_transfers import CARDS, EMAILS, leaked
from tests.integration.test_ssh_strict import Terminal
from tests.sshd import SshdTarget
from tests.sshgw import POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

SMALL = "".join(f"{i},{EMAILS[i % 2]},{CARDS[i % 3]},note {i}\n" for i in range(6))
TRANSFORMS = [
    "sed 's/./& /g' {f}", "awk '{{print substr($0,1,12); print substr($0,13)}}' {f}",
    "tac -r -s '[0-9]' {f}", "dd conv=swab if={f} status=none", "sort {f} | sed 's/1/I/g'",
    "sed 's/@/ AT /' {f}", "grep -o '[0-9 ]*' {f}", "perl -pe 's/(.)/$1 /g' {f}",
    "python3 -c 'import sys; print(open(sys.argv[1]).read()[::-1])' {f}", "rev {f}",
    "fold -w5 {f}", "od -c {f}", "xxd {f}", "x=$(cat {f}); echo ${{x:0:9}}; echo ${{x:9}}",
    "head -c 20 {f}; echo; tail -c +21 {f}",
]
PLAIN = ["cat {f}", "head -n 3 {f}", "grep note {f}"]


def spaced_out(data: bytes) -> list[str]:
    """Seeded values in ``data`` once spaces, ' AT ' and I-for-1 are undone too."""
    text = data.decode("utf-8", "replace").replace(" AT ", "@").replace("I", "1")
    return leaked(text.encode()) + leaked("".join(text.split()).encode())


@pytest.fixture(scope="module")
def mgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    policy = POLICY.replace("    connections: [web]\n", "    connections: [web, web_strict]\n")
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"), policy=policy)
    (sshd.home / "small.txt").write_text(SMALL)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def run(gw: SshGateway, command: str, tty: bool = False) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(gw.ssh_argv(command, options=("-tt",) if tty else ()),
                          env=gw.env(), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def recorded(gw: SshGateway) -> bytes:
    return b"".join(bytes(r["data"]) for r in gw.query("SELECT data FROM ssh_output"))


@pytest.mark.parametrize("tty", [False, True], ids=["exec", "exec-tty"])
@pytest.mark.parametrize("command", TRANSFORMS)
def test_exec_of_a_transforming_command_is_masked_whole(mgw: SshGateway, command: str,
                                                        tty: bool) -> None:
    result = run(mgw, command.format(f=mgw.sshd.home / "small.txt"), tty=tty)
    assert result.stdout.strip(), result.stderr
    assert not spaced_out(result.stdout), result.stdout[:300]
    assert set(result.stdout) <= set(b"* \t\r\n"), result.stdout[:300]


@pytest.mark.parametrize("command", PLAIN)
def test_exec_of_a_plain_reader_is_masked_as_usual(mgw: SshGateway, command: str) -> None:
    result = run(mgw, command.format(f=mgw.sshd.home / "small.txt"))
    assert result.returncode == 0 and not leaked(result.stdout), result.stdout
    assert b"note 0" in result.stdout and b"**** **** **** 1111" in result.stdout


def session(gw: SshGateway, connection: str, lines: list[str]) -> bytes:
    """Everything the client's screen got for ``lines`` typed at a shell, then ``exit``: each
    typed once the line before it is answered, as a person does (keys typed ahead are echoed
    by the shell into the output of the command before, where the gateway cannot tell them
    from it, and it masks the rest of the session whole: fail closed)."""
    terminal = Terminal(gw, connection=connection)
    try:
        for line in lines:
            since = terminal.mark()
            terminal.keys(line + "\r")
            _settled(terminal, since)
        terminal.keys("exit\r")
        try:
            terminal.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the shell never ended; screen: {terminal.seen[-800:]!r}") from None
        terminal.reader.join(10)  # it has taken the last bytes once the client's output ends
        return terminal.seen
    finally:
        terminal.close()


def _settled(terminal: Terminal, since: int, quiet: float = 0.15, limit: float = 5) -> None:
    """Wait until the line typed at ``since`` has its newline and the screen has then been
    quiet a moment (a prompt may be masked: the session masked whole stars it too)."""
    deadline = time.monotonic() + limit
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        seen = terminal.seen[since:]
        if len(seen) != last:
            last, quiet_since = len(seen), time.monotonic()
        elif b"\n" in seen and time.monotonic() - quiet_since >= quiet:
            return
        time.sleep(0.01)


@pytest.fixture(params=["web", "web_strict"])
def connection(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("command", TRANSFORMS)
def test_at_a_shell_a_transforming_command_is_masked_whole(mgw: SshGateway, connection: str,
                                                           command: str) -> None:
    """What the command prints is masked whole; after a command whose output could forge the
    shell's next prompt (anything but od, xxd, base64 …), so is the rest of the channel."""
    typed = command.format(f=mgw.sshd.home / "small.txt")
    screen = session(mgw, connection, [typed, "printf 'end-%s\\n' 1"])
    assert not spaced_out(screen), (command, screen[-400:])
    after_prompt = screen.split(PASTE_OFF, 1)[1].split(PASTE_ON, 1)[1]  # the test's prompt
    if leaves_state(typed):  # the session is masked whole before the line is sent, its echo too
        assert b"end-1" not in after_prompt and b"*****" in after_prompt, screen[-400:]
        return
    run_by_it = after_prompt.split(PASTE_OFF, 1)[1]
    if prints_no_escapes(typed):  # its end is believed: the prompt and what follows as usual
        assert b"end-1" in run_by_it, (command, screen[-400:])
        run_by_it = run_by_it.split(PASTE_ON, 1)[0]
    for echoed in (b"printf 'end-%s\\n' 1", b"exit"):  # strict: the gateway's own line editor
        run_by_it = run_by_it.replace(echoed, b"")
    run_by_it = re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"", run_by_it)
    assert b"*" in run_by_it and set(run_by_it) <= set(b"* \t\r\n"), (command, screen[-400:])


def test_at_a_shell_plain_readers_are_masked_as_usual(mgw: SshGateway, connection: str) -> None:
    path = mgw.sshd.home / "small.txt"
    screen = session(mgw, connection, [c.format(f=path) for c in PLAIN])
    assert screen.count(b"note 0") >= 2 and b"**** **** **** 1111" in screen, screen[-400:]
    assert not leaked(screen)
    deadline = time.monotonic() + 10
    while b"note 0" not in recorded(mgw):
        assert time.monotonic() < deadline, "the shell's output was never recorded"
        time.sleep(0.02)
    assert not spaced_out(recorded(mgw))
