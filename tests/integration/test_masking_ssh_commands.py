"""Issue 14, the outside attack after the deny-list: through the real OpenSSH client and sshd,
a command that is not a plain reader (sed, awk, tac, dd conv=swab, grep -o, perl, rev, fold, od,
xxd …) has its output masked whole, on exec channels and at an interactive shell (``ssh -tt``,
lenient and strict), and is recorded so; ``cat``, ``head`` and ``grep`` of the same file are
masked the usual way (partially), and the shell's prompt is not masked."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

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


@pytest.fixture(params=["web", "web_strict"])
def shell(mgw: SshGateway, request: pytest.FixtureRequest) -> Iterator[Terminal]:
    terminal = Terminal(mgw, connection=request.param)
    try:
        yield terminal
    finally:
        terminal.close()


def test_at_a_shell_transforming_commands_are_masked_whole_and_plain_ones_as_usual(
        mgw: SshGateway, shell: Terminal) -> None:
    path = mgw.sshd.home / "small.txt"

    def ran(n: int, command: str) -> bytes:
        """What the screen showed of ``command``, up to a plain line after it."""
        at = shell.mark()
        shell.keys(command.format(f=path) + "\r")
        return shell.wait_for(f"end-{n}".encode(), at) if shell.line(
            f"printf 'end-%s\\n' {n}", f"end-{n}".encode()) else b""

    for n, command in enumerate(TRANSFORMS):
        output = ran(n, command)
        assert not spaced_out(output), (command, output[-400:])
        run_by_it = output.split(b"\x1b[?2004l", 1)[1].split(b"\x1b[?2004h", 1)[0]
        assert run_by_it.strip() and set(run_by_it) <= set(b"* \t\r\n"), (command, output)
    for n, command in enumerate(PLAIN, len(TRANSFORMS)):  # masked as usual again after them
        screen = ran(n, command)
        assert b"note 0" in screen and b"**** **** **** 1111" in screen, (command, screen)
        assert not leaked(screen)
    deadline = time.monotonic() + 10
    while b"note 0" not in recorded(mgw):
        assert time.monotonic() < deadline, "the shell's output was never recorded"
        time.sleep(0.1)
    assert not spaced_out(recorded(mgw))
    shell.keys("exit\r")
