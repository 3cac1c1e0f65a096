"""Issue 13 through the real OpenSSH client and sshd: what the gateway cannot read fails
closed, exec'd shells have their input judged, and strict terminal mode owns the line.

Every attack aims at a decoy directory under the target's scratch home, which the policy
(``tests/sshgw.py``'s ``STRICT_POLICY``) protects as the example protects system paths; each
test checks the decoy is still there, so a bug that let one through would harm nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE
from tests.sshd import SshdTarget
from tests.sshgw import STRICT_POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    # Nobody approves here: what is held is refused when its review expires, soon.
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw-strict"),
                                policy=STRICT_POLICY, review_timeout="200ms")
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


@pytest.fixture
def decoy(sshd: SshdTarget) -> Iterator[Path]:
    """A directory with one file, where the policy forbids deleting."""
    path = sshd.home / f"decoy-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    (path / "keep").write_text("keep me\n")
    path.chmod(0o750)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def intact(path: Path) -> bool:
    return (path / "keep").is_file() and (path.stat().st_mode & 0o777) == 0o750 \
        and (path / "keep").read_text() == "keep me\n"


def run(gw: SshGateway, command: str, stdin: bytes = b"", tty: bool = False,
        connection: str = "web") -> subprocess.CompletedProcess[bytes]:
    options = ("-tt",) if tty else ()
    return subprocess.run(gw.ssh_argv(command, connection=connection, options=options),
                          env=gw.env(), input=stdin, capture_output=True, timeout=60)


EXEC_ATTACKS = [
    # 1. program names the gateway does not see literally
    "/???/rm -rf {d}", "/bin/r? -rf {d}", "/usr/bin/r[m] -rf {d}", "{{rm,-rf,{d}}}",
    "x=rm; $x -rf {d}", "IFS=,; c=rm,-rf,{d}; $c", "$(echo rm) -rf {d}", "`printf rm` -rf {d}",
    "r\\m -r{{f,}} {d}", "sudo -n true; \"$(printf 'r%s' m)\" -rf {d}",
    # 2. paths the gateway does not see literally
    "cd {d}/.. && rm -rf {n}", "cd {p} ; rm -rf {n}", "rm -rf ~/{n}", "rm -rf \"$HOME/{n}\"",
    "rm -rf $(echo {d})", "d={d}; rm -rf $d", "rm -rf {p}/decoy-*", "rm -rf {p}/{n}/../{n}",
    # 3. destruction by other programs
    "find {d} -delete", "find {d} -exec rm -rf {{}} +", "find {p} -name {n} -exec rm -r {{}} \\;",
    "find {d} -exec chmod 777 {{}} +",
    "mkdir -p /tmp/gw-empty && rsync -a --delete /tmp/gw-empty/ {d}/",
    "tar cf /dev/null --remove-files {d}/keep", "chmod -R u=rwx,go=u {d}", "chmod -R 700 {d}",
    "ls {d} | xargs -I{{}} rm {d}/{{}}", "echo {d}/keep | xargs rm",
    # 4. code by other means
    "python3 -c \"import shutil; shutil.rmtree('{d}')\"", "perl -e 'system(\"rm -rf {d}\")'",
    "awk 'BEGIN{{system(\"rm -rf {d}\")}}'", "echo rm -rf {d} | awk '{{system($0)}}'",
    "printf 'rm -rf {d}\\n' > /tmp/gw-x.sh; sh /tmp/gw-x.sh",
    "printf 'rm -rf {d}\\n' | while read l; do eval \"$l\"; done",
    "echo {d} | xargs -I{{}} sh -c 'rm -rf {{}}'", "bash -c \"$(echo rm -rf {d})\"",
    "eval \"rm -rf $(echo {d})\"", "echo cm0gLXJmIHtkfQo= | base64 -d | sh",
]


@pytest.mark.parametrize("attack", EXEC_ATTACKS)
def test_exec_attacks_leave_the_decoy(gw: SshGateway, decoy: Path, attack: str) -> None:
    line = attack.format(d=decoy, p=decoy.parent, n=decoy.name)
    result = run(gw, line)
    assert intact(decoy), f"{line!r} reached the decoy: {result.stderr!r}"
    assert result.returncode in (1, 126), (line, result)


SHELL_STARTERS = ["find /tmp -maxdepth 0 -exec sh \\;", "awk 'BEGIN{system(\"sh\")}'",
                  "perl -e 'exec \"/bin/sh\"'", "xargs -I{} sh -c {}", "sh -s", "env bash",
                  "timeout 20 sh"]


@pytest.mark.parametrize("command", SHELL_STARTERS)
def test_what_an_exec_d_shell_reads_is_judged(gw: SshGateway, decoy: Path,
                                               command: str) -> None:
    result = run(gw, command, stdin=f"rm -rf {decoy}\necho after\n".encode())
    assert intact(decoy), (command, result)


def test_an_ordinary_exec_still_runs(gw: SshGateway, decoy: Path) -> None:
    result = run(gw, f"ls {decoy} && cd {decoy} && cat keep")
    assert result.returncode == 0 and result.stdout == b"keep\nkeep me\n", result


# --- strict terminal mode, through ssh -tt ---------------------------------------------------


# How a prompt for the next line ends: the test's PS1, bash's PS2, the attacks' own PS1 and
# bash's default one (a shell started by ``exec bash``).
PROMPT_ENDS = (b"gw$ ", b"> ", b"token: ", b"# ")


class Terminal:
    """ssh -tt with keys written by the test and the screen read as it comes."""

    def __init__(self, gw: SshGateway, connection: str = "web") -> None:
        self.proc = subprocess.Popen(
            gw.ssh_argv(connection=connection, options=("-tt",)), env=gw.env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.seen = b""
        self._lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # The shell's first prompt before any key, as a person waits for it: keys typed before
        # the shell echoes them are judged as lines the gateway could not see (fail closed).
        self.wait_for_any((b"$ ", b"# "))
        self.keys("export PS1='g''w$ '\r")
        self.wait_for(b"gw$ ")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            with self._lock:
                self.seen += chunk

    def keys(self, data: str | bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data.encode() if isinstance(data, str) else data)
        self.proc.stdin.flush()

    def mark(self) -> int:
        with self._lock:
            return len(self.seen)

    def wait_for_any(self, wanted: tuple[bytes, ...], seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                seen = self.seen
            if any(w in seen for w in wanted):
                return
            assert time.monotonic() < deadline, f"never saw {wanted!r}; screen: {seen[-600:]!r}"
            time.sleep(0.02)

    def wait_for(self, wanted: bytes, since: int = 0, seconds: float = 15) -> bytes:
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                seen = self.seen[since:]
            if wanted in seen:
                return seen
            assert time.monotonic() < deadline, f"never saw {wanted!r}; screen: {seen[-600:]!r}"
            time.sleep(0.02)

    def answered(self, since: int, seconds: float) -> None:
        """Wait until the line typed at ``since`` is answered as a person sees it: its newline,
        then a prompt for the next line (the shell's, or the gateway's after a refusal) and a
        moment without output. Gives up after ``seconds`` without failing: a full-screen
        program shows no prompt, and a line may leave the shell waiting on purpose."""
        deadline = time.monotonic() + seconds
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            with self._lock:
                seen = self.seen[since:]
            if len(seen) != last:
                last, quiet_since = len(seen), time.monotonic()
            tail = seen.removesuffix(b"\x1b[K")
            if (b"\n" in seen and tail.endswith(PROMPT_ENDS)
                    and time.monotonic() - quiet_since >= 0.05):
                return
            time.sleep(0.01)

    def line(self, text: str, wanted: bytes = b"gw$ ") -> bytes:
        at = self.mark()
        self.keys(text + "\r")
        return self.wait_for(wanted, at + 1)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.keys(b"\x04")
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def term(gw: SshGateway) -> Iterator[Terminal]:
    terminal = Terminal(gw)
    try:
        yield terminal
    finally:
        terminal.close()


STRICT_ATTACKS = [
    # history expansion and fc run a line the gateway does not see
    ["true rm -rf {d}", "!!:1-3"], ["true rm -rf {d}", "^true^"], ["rm -rf {p}/nothing-{n}",
                                                                   "fc -s nothing-{n}={n}"],
    ["echo rm -rf {d}", "$(!!)"],
    # a quote split over lines: judged whole
    ["echo '", "'; rm -rf {d}; echo '", "'"],
    ["cat <<EOF | sh", "rm -rf {d}", "EOF"],
    # readline bindings and macros: refused, and their keys are the editor's
    ["bind -x '\"\\C-t\":rm -rf {d}'", "\x14"],
    ["bind '\"\\C-t\":\"rm -rf {d}\\n\"'", "\x14"],
    # the working directory followed from judged lines
    ["cd {p}", "rm -rf {n}"], ["cd {d}", "chmod -R 777 ."], ["cd {d} && cd .. && rm -rf {n}"],
    # the alternate screen from anything but a known full-screen program changes nothing
    ["printf '\\033[?1049h'", "rm -rf {d}"],
]


@pytest.mark.parametrize("lines", STRICT_ATTACKS, ids=lambda lines: " ⏎ ".join(lines)[:60])
def test_strict_terminal_attacks_leave_the_decoy(gw: SshGateway, decoy: Path,
                                                 lines: list[str]) -> None:
    term = Terminal(gw)
    try:
        for line in lines:
            at = term.mark()
            term.keys(line.format(d=decoy, p=decoy.parent, n=decoy.name) + "\r")
            term.answered(at, 0.4)
        term.keys("\x03")
        term.line("echo done-$((40+2))", b"done-42")
    finally:
        term.close()
    assert intact(decoy), term.seen[-2000:]


def test_strict_terminal_feels_normal(term: Terminal, sshd: SshdTarget) -> None:
    """Editing keys, ↑ history, Ctrl-C of a running command, Ctrl-D."""
    out = term.line("echo $((6*7))-ok", b"42-ok")
    assert b"42-ok" in out
    at = term.mark()
    term.keys("echo abXd\x7f\x7fcd\x1b[Dx\x05-end\r")  # backspace, ←, insert, Ctrl-E
    assert b"abcxd-end" in term.wait_for(b"abcxd-end\r\n", at)
    at = term.mark()
    term.keys("\x1b[A\x1b[A\r")  # ↑ ↑: the line before the last one runs again
    term.wait_for(b"42-ok\r\n", at)
    at = term.mark()
    term.keys("sleep 30\r")
    time.sleep(0.5)
    started = time.monotonic()
    term.keys("\x03")
    term.wait_for(b"gw$ ", at + 10)
    assert time.monotonic() - started < 10
    term.line("echo after-interrupt", b"after-interrupt\r\n")
    at = term.mark()
    term.keys("\x04")
    term.proc.wait(10)
    assert term.proc.returncode == 0


def test_a_blocked_line_never_reaches_the_shell(term: Terminal, decoy: Path) -> None:
    out = term.line(f"rm -rf {decoy}", b"[gatewatch] blocked")
    assert b"no-deletes-of-decoys" in out
    term.line("echo still-here", b"still-here\r\n")
    assert intact(decoy)


def need_tool(*names: str) -> str:
    """The first of ``names`` installed on the target (this machine); .ci/setup installs
    vim-tiny and less, so with GATEWATCH_REQUIRE_INTEGRATION=1 a missing one fails."""
    found = next((n for n in names if shutil.which(n)), None)
    if found is None:
        reason = f"{names[0]} is not installed on the target (apt-get install vim-tiny less)"
        if REQUIRE:
            pytest.fail(f"GATEWATCH_REQUIRE_INTEGRATION=1 but {reason}")
        pytest.skip(reason)
    return found


def test_vim_and_less_work_in_strict_mode(term: Terminal, sshd: SshdTarget) -> None:
    vim = need_tool("vim", "vim.tiny")
    need_tool("less")
    note = sshd.home / f"note-{uuid.uuid4().hex[:6]}.txt"
    term.line(f"{vim} -u NONE -N {note}", b"")
    time.sleep(1.0)
    term.keys("ihello from vim\x1b")
    time.sleep(0.3)
    term.keys(":wq\r")
    term.wait_for(b"gw$ ", term.mark() - 10)
    deadline = time.monotonic() + 10
    while not (note.exists() and note.read_text() == "hello from vim\n"):
        assert time.monotonic() < deadline, "vim did not write the file"
        time.sleep(0.1)
    at = term.mark()
    term.keys(f"less {note}\r")
    term.wait_for(b"hello from vim", at)
    term.keys("q")
    term.line("echo back-from-less", b"back-from-less\r\n")


def test_a_shell_escape_inside_vim_is_judged(term: Terminal, decoy: Path) -> None:
    vim = need_tool("vim", "vim.tiny")
    term.line(f"{vim} -u NONE -N", b"")
    time.sleep(1.0)
    at = term.mark()
    term.keys(f":!rm -rf {decoy}\r")
    term.wait_for(b"[gatewatch] blocked", at)
    time.sleep(0.3)
    term.keys("\x1b:q!\r")
    term.wait_for(b"gw$ ", at)
    assert intact(decoy)


# --- issue 13, second round: the classes an outside attacker found ----------------------------

EXEC_ATTACKS_2 = [
    "for ((i=0;i<1;i++)); do rm -rf {d}; done", "printf 'rm -rf {d}\\n' | sh",
    "printf 'rm -rf {d}\\n' > /tmp/gw-s2; cat /tmp/gw-s2 | sh", "taskset 1 rm -rf {d}",
    "setarch $(uname -m) rm -rf {d}", "flock /tmp/gw-lock -c 'rm -rf {d}'",
    "sg $(id -gn) -c 'rm -rf {d}'", "git -c alias.x='!rm -rf {d}' x",
    "/usr/bin/@(rm) -rf {d}", "rm -rf {p}/+({n})", "mv {d} /tmp/gw-moved-{n}",
    "unlink {d}/keep", "truncate -s0 {d}/keep", "chgrp -R $(id -gn) {d} && chmod 777 {d}",
    "ln -s {d} /tmp/gw-l-{n} && rm -rf /tmp/gw-l-{n}/keep",
    "echo 'system \"rm -rf {d}\";' | perl",
]


@pytest.mark.parametrize("attack", EXEC_ATTACKS_2)
def test_exec_attack_classes_2_leave_the_decoy(gw: SshGateway, decoy: Path, attack: str) -> None:
    line = attack.format(d=decoy, p=decoy.parent, n=decoy.name)
    result = run(gw, line)
    assert intact(decoy), f"{line!r} reached the decoy: {result.stderr!r}"


def test_a_pipe_into_an_exec_d_wrapper_shell_is_judged(gw: SshGateway, decoy: Path) -> None:
    result = run(gw, "taskset 1 sh", stdin=f"rm -rf {decoy}\n".encode())
    assert intact(decoy), result


STRICT_ATTACKS_2 = [
    # finding 1: a prompt that turns the alternate screen on again after less
    ["PS1='\\[\\e[?1049h\\]gw$ '", "less /etc/hostname", "q", "rm -rf {d}"],
    ["export LESS=-FX PS1='\\[\\e[?1049h\\]gw$ '", "less /dev/null", "rm -rf {d}"],
    # finding 2: a readline macro read by a new shell
    ["printf '\"\\\\C-t\": \"\\\\C-a rm -rf {d} #\\\\C-m\"\\n' > /tmp/gw-irc-{n}",
     "cp /tmp/gw-irc-{n} ~/.inputrc", "exec bash", "echo \x14"],
    # finding 3: a prompt that looks like a password prompt
    ["PS1='token: '", "for ((i=0;i<1;i++)); do rm -rf {d}; done"],
    # finding 4: code in the prompt
    ["PS1='$(rm -rf {d})gw$ '"],
    # finding 8: history written, then expanded on a continuation line
    ["history -s rm -rf {d}", "{{ echo x # it's", "!!", "}}"],
    # finding 9: CDPATH spelled so that no substring test sees it
    ["declare -x CD\"\"PATH={p}", "cd /tmp && cd {n} && rm -rf ../{n}"],
]


@pytest.mark.parametrize("lines", STRICT_ATTACKS_2, ids=lambda lines: " ⏎ ".join(lines)[:60])
def test_strict_terminal_attack_classes_2_leave_the_decoy(gw: SshGateway, decoy: Path,
                                                          lines: list[str]) -> None:
    term = Terminal(gw)
    try:
        for line in lines:
            at = term.mark()
            term.keys(line.format(d=decoy, p=decoy.parent, n=decoy.name) + "\r")
            term.answered(at, 0.5)
    finally:
        term.close()
    assert intact(decoy), term.seen[-2000:]
