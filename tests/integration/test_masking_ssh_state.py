"""Issue 14, state carried across lines (real OpenSSH ssh and sshd, ``ssh -tt`` at bash, lenient
and strict): a plain reader (``cat``, ``printenv``) is trusted to print a file or a variable as it
stands only while the gateway can follow what the shell and its files hold. A line that may leave
state behind — a file written by a transform, an in-place edit, a computed variable, an alias, a
function, ``source``, ``hash``, ``PATH``, ``trap``, ``PROMPT_COMMAND``, a program writing files
itself — masks the rest of the session whole; a line that writes a shell start-up file is refused
while output is masked; and a transform that prints a forged prompt switch does not get what
follows it shown. Values seeded on the target are checked against what the client saw and what
the store recorded (in clear, reversed, with separators inserted, hex, base64, od)."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_masking_ssh_commands import session
from tests.integration.test_masking_ssh_transfers import CARDS, EMAILS, leaked
from tests.integration.test_ssh_strict import Terminal
from tests.sshd import SshdTarget
from tests.sshgw import POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

SECRETS = "".join(f"{i},{EMAILS[i % 2]},{CARDS[i % 3]},note {i}\n" for i in range(6))
PASTE_ON, PASTE_OFF = "\x1b[?2004h", "\x1b[?2004l"
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def sgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    policy = POLICY.replace("    connections: [web]\n", "    connections: [web, web_strict]\n")
    # scripts and code the gateway cannot read are allowed here, so that what they leave
    # behind reaches the masking (the example policy reviews them)
    policy = policy.replace("    match: {{commands: [INTERPRETER CODE]}}\n", (
        "    match: {{commands: [INTERPRETER CODE]}}\n"
        "  - name: scripts-allowed-in-this-test\n    action: allow\n"
        "    match: {{commands: [SCRIPT FILE, EVAL]}}\n"))
    assert "scripts-allowed-in-this-test" in policy
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"), policy=policy)
    base = sshd.home / "state"
    (base / "evil").mkdir(parents=True, exist_ok=True)
    (base / "secrets.txt").write_text(SECRETS)
    cat = base / "evil" / "cat"  # a ``cat`` that PATH may find first
    cat.write_text('#!/bin/sh\nexec rev "$@"\n')
    cat.chmod(0o755)
    (base / "defs.sh").write_text("alias cat=rev\n")
    # rev prints a forged prompt switch (and prompt, and the switch a next line would bring),
    # then every line of the secrets backwards: a masker that believed the switch shows them
    forged = (PASTE_ON + "gw$ " + "\r\n" + PASTE_OFF)[::-1]
    (base / "forge.txt").write_text(forged + "\n" + SECRETS)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


@pytest.fixture(params=["web", "web_strict"])
def connection(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def exposed(data: bytes) -> list[str]:
    """Seeded values in ``data``, also once separators a transform inserted are taken out."""
    text = data.decode("utf-8", "replace")
    return leaked(data) + leaked(text.replace("-", "").replace(",", "").encode())


def recorded(gw: SshGateway) -> bytes:
    return b"".join(bytes(r["data"]) for r in gw.query("SELECT data FROM ssh_output"))


def settled(gw: SshGateway, done: Path) -> bytes:
    """The store's output once every session so far is closed (they reach SQLite within the
    checkpoint delay), and the target ran the lines (``done`` was written by the last)."""
    deadline = time.monotonic() + 15
    while gw.query("SELECT id FROM sessions WHERE ended_at IS NULL") or not done.exists():
        assert time.monotonic() < deadline, "the session never ended, or never ran its lines"
        time.sleep(0.02)
    return recorded(gw)


STATE = {
    "redirected transform": ["rev {s} > {d}/g", "cat {d}/g"],
    "in-place edit": ["cat {s} > {d}/f", "sed -i 's/./&-/g' {d}/f", "cat {d}/f"],
    "computed variable": ["x=$(rev {s})", "export x", "printenv x"],
    "tee": ["rev {s} | tee {d}/g > /dev/null", "cat {d}/g"],
    "copied": ["rev {s} > {d}/g", "cp {d}/g {d}/h", "mv {d}/h {d}/i", "cat {d}/i"],
    "interpreter writes a file": [
        "python3 -c 'import sys; open(sys.argv[2], \"w\")"
        ".write(open(sys.argv[1]).read()[::-1])' {s} {d}/g", "cat {d}/g"],
    "alias": ["alias cat=rev", "cat {s}"],
    "function": ["cat() {{ rev \"$@\"; }}", "cat {s}"],
    "source": ["source {b}/defs.sh", "cat {s}"],
    "dot": [". {b}/defs.sh", "cat {s}"],
    "hash": ["hash -p /usr/bin/rev cat", "cat {s}"],
    "PATH": ["PATH={b}/evil:$PATH", "cat {s}"],
    "PATH for one command": ["env PATH={b}/evil:/usr/bin:/bin cat {s}"],
    "trap": ["trap 'rev {s}' DEBUG", "true"],
    "PROMPT_COMMAND": ["PROMPT_COMMAND='rev {s}'", "true"],
}


@pytest.mark.parametrize("lines", list(STATE.values()), ids=list(STATE))
def test_state_left_by_a_line_masks_what_later_lines_print(
        sgw: SshGateway, connection: str, lines: list[str]) -> None:
    base = sgw.sshd.home / "state"
    work = base / f"run-{next(_COUNTER)}-{connection}"
    work.mkdir()
    done = work / "done"
    typed = [line.format(s=base / "secrets.txt", d=work, b=base) for line in lines]
    screen = session(sgw, connection, [*typed, f"echo ran > {done}"])
    assert not exposed(screen), screen[-600:]
    assert not exposed(settled(sgw, done))
    # what the lines printed was masked whole, not dropped
    after = screen.split(typed[-1].encode(), 1)[-1]
    assert b"*" * 10 in after, screen[-600:]
    # and the user is told why, once, in words the masking leaves alone
    assert screen.count(b"[gatewatch] from here on this connection's output is masked") == 1


def test_a_session_that_only_read_files_stays_readable(sgw: SshGateway, connection: str) -> None:
    base = sgw.sshd.home / "state"
    work = base / f"run-{next(_COUNTER)}-{connection}"
    work.mkdir()
    done = work / "done"
    screen = session(sgw, connection, [
        f"cd {base}", "ls", f"cat {base}/secrets.txt > {work}/copy", f"head -n 3 {work}/copy",
        f"od -An -c {base}/secrets.txt", "printf 'after-%s\\n' od", f"echo ran > {done}"])
    assert b"secrets.txt" in screen and b"note 0" in screen
    assert b"**** **** **** 1111" in screen  # masked the usual way, not whole
    assert b"after-od" in screen  # od cannot forge a prompt: its end is believed
    assert not exposed(screen) and not exposed(settled(sgw, done))


def test_a_forged_prompt_switch_shows_nothing_in_clear(sgw: SshGateway, connection: str) -> None:
    base = sgw.sshd.home / "state"
    work = base / f"run-{next(_COUNTER)}-{connection}"
    work.mkdir()
    done = work / "done"
    screen = session(sgw, connection, [f"rev {base}/forge.txt", f"cat {base}/secrets.txt",
                                       f"echo ran > {done}"])
    assert not exposed(screen), screen[-600:]
    assert not exposed(settled(sgw, done))
    assert b"note 0" not in screen  # the plain line after it is not believed either


STARTUP_WRITES = [
    "echo '# gatewatch test' >> ~/.bash_aliases",
    "cp {b}/defs.sh ~/.bash_aliases",
    "printf '# test\\n' | tee -a ~/.bash''_aliases",
    "f=~/.bash_aliases; echo '# test' >> \"$f\"",
    "f=.bash; echo '# test' >> ~/\"${{f}}_aliases\"",
    "cp {b}/evil/cat ~/.local/bin/cat",
]


@pytest.mark.parametrize("line", STARTUP_WRITES)
def test_a_line_that_writes_a_shell_start_up_file_is_refused(
        sgw: SshGateway, connection: str, line: str) -> None:
    home = sgw.sshd.home
    base = home / "state"
    work = base / f"run-{next(_COUNTER)}-{connection}"
    work.mkdir()
    done = work / "done"
    typed = line.format(b=base)
    terminal = Terminal(sgw, connection=connection)
    try:
        at = terminal.mark()
        terminal.keys(typed + "\r")  # refused: what was typed after it would be dropped
        # refused by the masking — or first by a guardrail rule, for a path only known at
        # run time that could be a device
        screen = terminal.wait_for(b"[gatewatch]", at)
        terminal.line(f"echo ran > {done}")
        terminal.keys("exit\r")
        terminal.proc.wait(60)
        assert not (home / ".bash_aliases").exists()
        assert not (home / ".local" / "bin" / "cat").exists()
        settled(sgw, done)
        # the line's record (its text is recorded masked): the last one refused
        rows = sgw.query("SELECT rule, error FROM statements WHERE verdict = 'block' "
                         "AND protocol = 'ssh' ORDER BY started_at DESC LIMIT 1")
        if b"start-up file" in screen:
            assert rows[0]["rule"] == "masking" and "start-up file" in rows[0]["error"]
        else:
            assert "$" in typed and rows[0]["rule"] != "masking", screen[-600:]
    finally:
        terminal.close()
        (home / ".bash_aliases").unlink(missing_ok=True)
        (home / ".local" / "bin" / "cat").unlink(missing_ok=True)


def test_reading_a_start_up_file_is_not_refused(sgw: SshGateway, connection: str) -> None:
    base = sgw.sshd.home / "state"
    work = base / f"run-{next(_COUNTER)}-{connection}"
    work.mkdir()
    done = work / "done"
    screen = session(sgw, connection, ["grep -c alias ~/.bashrc ~/.profile",
                                       "echo readable-after", f"echo ran > {done}"])
    assert b"start-up file" not in screen and b"readable-after" in screen


def test_a_taint_on_one_channel_masks_the_other_channels_of_the_connection(
        sgw: SshGateway, tmp_path: Path) -> None:
    """ssh's connection sharing (ControlMaster): one channel writes a transformed file, another
    channel of the same connection reads it."""
    base = sgw.sshd.home / "state"
    work = base / f"run-{next(_COUNTER)}-mux"
    work.mkdir()
    control = tmp_path / "mux"
    master = subprocess.Popen(
        sgw.ssh_argv(options=("-M", "-S", str(control), "-N")), env=sgw.env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not control.exists():
            assert master.poll() is None and time.monotonic() < deadline, "no master connection"
            time.sleep(0.05)

        def run(command: str) -> bytes:
            return subprocess.run(sgw.ssh_argv(command, options=("-S", str(control))),
                                  env=sgw.env(), capture_output=True, timeout=60,
                                  stdin=subprocess.DEVNULL).stdout

        plain = run(f"cat {base}/secrets.txt")
        assert b"note 0" in plain and not exposed(plain)  # readable before
        run(f"rev {base}/secrets.txt > {work}/g")
        assert (work / "g").exists()
        after = run(f"cat {work}/g")
        assert after.strip() and set(after) <= set(b"* \t\r\n"), after[:300]
        # a download over the same connection is refused now: its protocol cannot be starred
        copy = tmp_path / "copy"
        scp = subprocess.run(
            ["scp", "-P", str(sgw.port("web")), *sgw.client_options("web"), "-o",
             f"ControlPath={control}", f"alice@127.0.0.1:{work}/g", str(copy)],
            env=sgw.env(), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        assert scp.returncode != 0 and b"open a new connection" in scp.stderr, scp.stderr
        assert not (copy.exists() and exposed(copy.read_bytes()))
    finally:
        # the master is a client: how fast it leaves is not what this test is about, and a
        # master that sends its goodbye to a busy gateway may wait on it (CI saw > 10 s once)
        master.terminate()
        try:
            master.wait(10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait(10)
