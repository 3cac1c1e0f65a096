"""Issue 14, outside attack round 10 through the SSH gateway (real OpenSSH client and sshd):
cards written with ``/``, ``:`` or other separators, or the first group in parentheses, came
back in clear and were recorded so (F6); a reversed secret left in the pipe that feeds a
detached ``sleep`` was read back on a later connection with ``cat /proc/PID/fd/0`` (F5).
None reaches the client or the recorded output. (The tests of this module run in order: the
later ones leave marks that mask alice's later output whole.)"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
SEPARATED = ["4012/8888/8888/1881", "4012:8888:8888:1881", "(4012)888888881881",
             "4012|8888;8888#1881", "4012/888888881881", "4012 8888-8888 1881"]
REVERSED = CARD[::-1]


def run(gw: SshGateway, command: str) -> bytes:
    result = subprocess.run(gw.ssh_argv(command), env=gw.env(), capture_output=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result.stdout


def recorded(gw: SshGateway, marker: str) -> bytes:
    """The recorded output of the last session that ran ``marker``, once it has ended."""
    deadline = time.monotonic() + 15
    while True:
        rows = gw.query("SELECT s.id FROM statements t JOIN sessions s ON s.id = t.session_id"
                        " WHERE t.text LIKE ? AND s.ended_at IS NOT NULL", f"%{marker}%")
        if rows:
            return b"".join(bytes(r["data"]) for r in gw.query(
                "SELECT data FROM ssh_output WHERE session_id = ?", rows[-1]["id"]))
        assert time.monotonic() < deadline, f"the session of {marker} was never recorded"
        time.sleep(0.02)


def statements(gw: SshGateway, marker: str) -> list[str]:
    return [r["text"] for r in gw.query("SELECT text FROM statements WHERE text LIKE ?",
                                        f"%{marker}%")]


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit() or ch == "\n")


def test_cards_with_any_separator_are_masked(gw: SshGateway) -> None:
    home = gw.sshd.home
    (home / "sep10.txt").write_text("\n".join(SEPARATED) + "\n")
    shown = run(gw, f"cat {home}/sep10.txt").decode()
    assert shown.count("\n") == len(SEPARATED), shown
    assert CARD not in digits(shown), shown
    assert "1881" in shown  # partly shown, the last four kept
    assert CARD not in digits(recorded(gw, "sep10.txt").decode("utf-8", "replace"))
    # typed into the command line: neither shown nor recorded in clear
    shown = run(gw, 'echo "4012/8888/8888/1881 4012:8888:8888:1881 sep10-echo"').decode()
    assert "sep10-echo" in shown and CARD not in digits(shown), shown
    assert CARD not in digits(recorded(gw, "sep10-echo").decode("utf-8", "replace"))
    for text in statements(gw, "sep10-echo"):
        assert "4012/8888" not in text and "4012:8888" not in text, text


def _pids(argument: str) -> list[int]:
    """The processes on this machine whose last argument is ``argument`` (a unique sleep)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv[0].endswith(b"sleep") and argument.encode() in argv:
                found.append(int(entry.name))
    return found


@pytest.fixture
def parked(gw: SshGateway) -> Iterator[Path]:
    """The secret file, and every sleep the test parks in the background ended after it."""
    secret = gw.sshd.home / "s2.txt"
    secret.write_text(f"card {CARD}\n")
    yield secret
    for duration in ("91.25", "92.25"):
        for pid in _pids(duration):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _wait_for(duration: str) -> int:
    deadline = time.monotonic() + 15
    while not (pids := _pids(duration)):
        assert time.monotonic() < deadline, f"sleep {duration} never started"
        time.sleep(0.05)
    return pids[0]


@pytest.mark.parametrize("reader", [
    "timeout 1 cat /proc/{pid}/fd/0",
    "timeout 1 cat /proc/{pid}/f[d]/0",
    "cd /proc/{pid}/fd && timeout 1 cat 0",
    "timeout 1 cat /proc/{pid}/task/{pid}/fd/0",
    "timeout 1 cat < /proc/{pid}/fd/0",
])
def test_a_pipe_parked_elsewhere_is_not_read_back_through_proc(
        gw: SshGateway, parked: Path, reader: str) -> None:
    """Whatever put it there (here the test itself, out of the gateway's sight), another
    process's stdin read through /proc comes back masked whole: it may hold anything."""
    parker = subprocess.Popen(  # rev s2.txt | sleep 91.25, not through the gateway
        ["sh", "-c", f"rev {parked} | exec sleep 91.25"], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid = _wait_for("91.25")
        marker = f"proc10-{abs(hash(reader)) % 10**6}"
        shown = run(gw, f"{reader.format(pid=pid)}; echo {marker}").decode("utf-8", "replace")
        assert REVERSED not in shown and CARD not in digits(shown), (reader, shown)
        stored = recorded(gw, marker).decode("utf-8", "replace")
        assert REVERSED not in stored and CARD not in digits(stored), (reader, stored)
    finally:
        os.killpg(parker.pid, signal.SIGTERM)
        parker.wait(10)


def test_a_copy_of_another_process_stdin_is_remembered(gw: SshGateway, parked: Path) -> None:
    """Copied to a file on one connection, read on the next: the copy is marked as written
    by a line whose output the gateway could not read."""
    parker = subprocess.Popen(
        ["sh", "-c", f"rev {parked} | exec sleep 91.25"], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    copy = gw.sshd.home / "copied10.txt"
    try:
        pid = _wait_for("91.25")
        run(gw, f"timeout 1 cp /proc/{pid}/fd/0 {copy}; echo proc10-cp")
    finally:
        os.killpg(parker.pid, signal.SIGTERM)
        parker.wait(10)
    assert REVERSED in copy.read_text()  # the copy was made
    shown = run(gw, f"cat {copy}; echo proc10-cat").decode("utf-8", "replace")
    assert REVERSED not in shown and CARD not in digits(shown), shown
    stored = recorded(gw, "proc10-cat").decode("utf-8", "replace")
    assert REVERSED not in stored, stored


def test_a_transform_parked_in_a_pipe_is_not_read_back(gw: SshGateway, parked: Path) -> None:
    """The attack as it came: the reversed secret left in the pipe of a detached sleep, its
    pid found with a plain listing, its stdin read on a later connection."""
    run(gw, f"rev {parked} | setsid timeout 60 sleep 92.25 >/dev/null 2>&1 &")
    pid = _wait_for("92.25")
    # the listing that finds it (its text may be masked whole by now: the readers above named
    # run-time values on connections masked whole, which marks alice's names)
    run(gw, "ls -l /proc/[0-9]*/fd/0 2>/dev/null; echo proc10-list")
    shown = run(gw, f"timeout 1 cat /proc/{pid}/fd/0; echo proc10-d").decode("utf-8", "replace")
    assert REVERSED not in shown and CARD not in digits(shown), shown
    stored = recorded(gw, "proc10-d").decode("utf-8", "replace")
    assert REVERSED not in stored and CARD not in digits(stored), stored
